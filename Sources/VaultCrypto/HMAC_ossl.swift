internal import COpenSSL

/// HMAC-SHA256 over OpenSSL EVP_MAC, one-shot or streaming.
public final class HMACSHA256: @unchecked Sendable {
    // Owns an EVP_MAC_CTX used by one task at a time; hence @unchecked Sendable.
    public static let outputLength = 32
    private let context: OpaquePointer

    public init(key: SecureBytes) throws {
        guard let context = EVP_MAC_CTX_new(Algorithms.hmac) else {
            throw OpenSSLError.failure(.libraryFailure, "EVP_MAC_CTX_new failed")
        }
        self.context = context
        let params = ParamBuilder()
        params.utf8("digest", "SHA256")
        // SecureBytes always has at least one allocated byte, so the pointer is non-null
        // even for an empty key, as OpenSSL wants.
        try key.withUnsafeBytes { k in
            try params.withParams { p in
                try ossl(EVP_MAC_init(context, k.baseAddress!.assumingMemoryBound(to: UInt8.self), k.count, p), .invalidParameter, "HMAC key setup")
            }
        }
    }

    deinit { EVP_MAC_CTX_free(context) }

    /// Starts a new message under the same key (after `finalize`, or to discard input).
    public func reset() {
        let ok = EVP_MAC_init(context, nil, 0, nil)
        precondition(ok == 1, "EVP_MAC_init (reset) failed")
    }

    public func update(_ bytes: UnsafeRawBufferPointer) {
        guard bytes.count > 0 else { return }
        let ok = EVP_MAC_update(context, bytes.baseAddress!.assumingMemoryBound(to: UInt8.self), bytes.count)
        precondition(ok == 1, "EVP_MAC_update failed")
    }

    public func update<B: ContiguousBytes>(_ bytes: B) {
        bytes.withUnsafeBytes { update($0) }
    }

    /// Returns the 32-byte tag. The instance may not be updated afterwards.
    public func finalize() -> [UInt8] {
        var out = [UInt8](repeating: 0, count: Self.outputLength)
        var length = 0
        let ok = out.withUnsafeMutableBufferPointer { EVP_MAC_final(context, $0.baseAddress, &length, Self.outputLength) }
        precondition(ok == 1 && length == Self.outputLength, "EVP_MAC_final failed")
        return out
    }

    public static func authenticate<B: ContiguousBytes>(key: SecureBytes, _ message: B) throws -> [UInt8] {
        let mac = try HMACSHA256(key: key)
        mac.update(message)
        return mac.finalize()
    }

    /// Checks `tag` in constant time. A tag shorter than 32 bytes is compared against the
    /// same-length prefix of the MAC (truncated tags, RFC 4231 section 4.6); tags under
    /// 16 bytes are refused.
    public static func verify<B: ContiguousBytes>(key: SecureBytes, _ message: B, tag: [UInt8]) throws -> Bool {
        guard tag.count >= 16 && tag.count <= outputLength else { return false }
        let full = try authenticate(key: key, message)
        return ConstantTime.equals(Array(full.prefix(tag.count)), tag)
    }
}
