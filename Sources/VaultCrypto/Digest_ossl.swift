internal import COpenSSL

/// Streaming SHA-256 or SHA-512.
public final class Digest: @unchecked Sendable {
    // Owns an EVP_MD_CTX used by one task at a time; hence @unchecked Sendable.
    public enum Algorithm: Sendable {
        case sha256, sha512
        public var outputLength: Int { self == .sha256 ? 32 : 64 }
        var md: OpaquePointer? { self == .sha256 ? Algorithms.sha256 : Algorithms.sha512 }
    }

    public let algorithm: Algorithm
    private let context: OpaquePointer

    public init(_ algorithm: Algorithm) throws {
        guard let context = EVP_MD_CTX_new() else { throw OpenSSLError.failure(.libraryFailure, "EVP_MD_CTX_new failed") }
        self.context = context
        self.algorithm = algorithm
        try ossl(EVP_DigestInit_ex(context, algorithm.md, nil), "EVP_DigestInit_ex")
    }

    deinit { EVP_MD_CTX_free(context) }

    public func update(_ bytes: UnsafeRawBufferPointer) {
        guard bytes.count > 0 else { return }
        // EVP_DigestUpdate cannot fail for a software digest with a valid context.
        let ok = EVP_DigestUpdate(context, bytes.baseAddress, bytes.count)
        precondition(ok == 1, "EVP_DigestUpdate failed")
    }

    public func update<B: ContiguousBytes>(_ bytes: B) {
        bytes.withUnsafeBytes { update($0) }
    }

    /// Returns the digest and resets the context for reuse.
    public func finalize() -> [UInt8] {
        var out = [UInt8](repeating: 0, count: algorithm.outputLength)
        var length: UInt32 = 0
        let ok = out.withUnsafeMutableBufferPointer { EVP_DigestFinal_ex(context, $0.baseAddress, &length) }
        precondition(ok == 1, "EVP_DigestFinal_ex failed")
        let again = EVP_DigestInit_ex(context, algorithm.md, nil)
        precondition(again == 1, "EVP_DigestInit_ex failed")
        return out
    }

    public static func hash<B: ContiguousBytes>(_ algorithm: Algorithm, _ bytes: B) -> [UInt8] {
        // Context creation only fails when memory is exhausted.
        guard let digest = try? Digest(algorithm) else { fatalError("cannot create digest context") }
        digest.update(bytes)
        return digest.finalize()
    }

    public static func sha256<B: ContiguousBytes>(_ bytes: B) -> [UInt8] { hash(.sha256, bytes) }
    public static func sha512<B: ContiguousBytes>(_ bytes: B) -> [UInt8] { hash(.sha512, bytes) }
}
