internal import COpenSSL

/// HKDF (RFC 5869) over OpenSSL EVP_KDF, with SHA-256 or SHA-512.
public enum HKDF {
    /// HKDF-Extract: returns the pseudorandom key. An empty salt means HashLen zero bytes.
    public static func extract(_ hash: Digest.Algorithm, salt: [UInt8], inputKeyMaterial: SecureBytes) throws -> SecureBytes {
        try derive(hash, mode: EVP_KDF_HKDF_MODE_EXTRACT_ONLY, key: inputKeyMaterial, salt: salt, info: [],
                   length: hash.outputLength)
    }

    /// HKDF-Expand: `length` bytes from a pseudorandom key. Fails when `length` exceeds 255 * HashLen.
    public static func expand(_ hash: Digest.Algorithm, pseudorandomKey: SecureBytes, info: [UInt8], length: Int) throws -> SecureBytes {
        try derive(hash, mode: EVP_KDF_HKDF_MODE_EXPAND_ONLY, key: pseudorandomKey, salt: nil, info: info, length: length)
    }

    /// Extract then expand.
    public static func deriveKey(_ hash: Digest.Algorithm, inputKeyMaterial: SecureBytes, salt: [UInt8], info: [UInt8],
                                 length: Int) throws -> SecureBytes {
        try derive(hash, mode: EVP_KDF_HKDF_MODE_EXTRACT_AND_EXPAND, key: inputKeyMaterial, salt: salt, info: info, length: length)
    }

    private static func derive(_ hash: Digest.Algorithm, mode: Int32, key: SecureBytes, salt: [UInt8]?, info: [UInt8],
                               length: Int) throws -> SecureBytes {
        guard length > 0 && length <= 255 * hash.outputLength else {
            throw CryptoError(.invalidParameter, "HKDF output length \(length) is outside 1...\(255 * hash.outputLength)")
        }
        guard let context = EVP_KDF_CTX_new(Algorithms.hkdf) else {
            throw OpenSSLError.failure(.libraryFailure, "EVP_KDF_CTX_new failed")
        }
        defer { EVP_KDF_CTX_free(context) }
        let params = ParamBuilder()
        params.utf8("digest", hash == .sha256 ? "SHA256" : "SHA512")
        params.int("mode", mode)
        key.withUnsafeBytes { params.octets("key", $0) }
        if let salt {
            // RFC 5869: a missing salt is HashLen zero bytes; say so explicitly.
            let effective = salt.isEmpty ? [UInt8](repeating: 0, count: hash.outputLength) : salt
            effective.withUnsafeBytes { params.octets("salt", $0) }
        }
        if !info.isEmpty { info.withUnsafeBytes { params.octets("info", $0) } }
        let out = SecureBytes(zeroedCount: length)
        try out.withUnsafeMutableBytes { o in
            try params.withParams { p in
                try ossl(EVP_KDF_derive(context, o.baseAddress!.assumingMemoryBound(to: UInt8.self), length, p),
                         .invalidParameter, "HKDF derive")
            }
        }
        return out
    }
}
