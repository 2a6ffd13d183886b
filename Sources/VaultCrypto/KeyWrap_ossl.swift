internal import COpenSSL

/// AES key wrap: RFC 3394 (KW) and RFC 5649 (KWP, with padding), over OpenSSL EVP.
/// ShardVault wraps data keys with AES-GCM (see `KeyWrapping` in VaultCore); these are here
/// for interoperability and so that selftest can check them against published vectors.
public enum AESKeyWrap {
    public enum Mode: Sendable { case kw, kwp }

    public static func wrap(_ mode: Mode, kek: SecureBytes, key: SecureBytes) throws -> [UInt8] {
        var input = key.unsafeExportedBytes()
        defer { secureWipe(&input) }
        return try run(mode, kek: kek, input: input, encrypt: true)
    }

    public static func unwrap(_ mode: Mode, kek: SecureBytes, wrapped: [UInt8]) throws -> SecureBytes {
        var out = try run(mode, kek: kek, input: wrapped, encrypt: false)
        defer { secureWipe(&out) }
        return SecureBytes(copying: out)
    }

    private static func cipherName(_ mode: Mode, keyLength: Int) -> String? {
        guard [16, 24, 32].contains(keyLength) else { return nil }
        return "AES-\(keyLength * 8)-\(mode == .kw ? "WRAP" : "WRAP-PAD")"
    }

    private static func run(_ mode: Mode, kek: SecureBytes, input: [UInt8], encrypt: Bool) throws -> [UInt8] {
        guard let name = cipherName(mode, keyLength: kek.count) else {
            throw CryptoError(.invalidParameter, "AES key wrap KEK must be 16, 24 or 32 bytes, not \(kek.count)")
        }
        if mode == .kw && (input.count % 8 != 0 || input.count < (encrypt ? 16 : 24)) {
            throw CryptoError(encrypt ? .invalidParameter : .authenticationFailed, "AES-KW input of \(input.count) bytes is not valid")
        }
        if !encrypt && (input.count % 8 != 0 || input.count < 16) {
            throw CryptoError(.authenticationFailed, "wrapped key of \(input.count) bytes is not valid")
        }
        if encrypt && input.isEmpty { throw CryptoError(.invalidParameter, "cannot wrap an empty key") }
        guard let cipher = EVP_CIPHER_fetch(nil, name, nil) else {
            throw OpenSSLError.failure(.libraryFailure, "cipher \(name) unavailable")
        }
        defer { EVP_CIPHER_free(cipher) }
        guard let context = EVP_CIPHER_CTX_new() else { throw OpenSSLError.failure(.libraryFailure, "EVP_CIPHER_CTX_new failed") }
        defer { EVP_CIPHER_CTX_free(context) }
        try kek.withUnsafeBytes { k in
            try ossl(EVP_CipherInit_ex(context, cipher, nil, k.baseAddress!.assumingMemoryBound(to: UInt8.self), nil, encrypt ? 1 : 0),
                     "key wrap init")
        }
        var out = [UInt8](repeating: 0, count: input.count + 16)
        var length: Int32 = 0
        let ok = input.withUnsafeBufferPointer { i in
            out.withUnsafeMutableBufferPointer { o in
                EVP_CipherUpdate(context, o.baseAddress, &length, i.baseAddress, Int32(i.count))
            }
        }
        guard ok == 1, length > 0 else {
            OpenSSLError.clear()
            secureWipe(&out)
            throw CryptoError(encrypt ? .invalidParameter : .authenticationFailed,
                              encrypt ? "key wrap failed" : "key unwrap failed: integrity check did not pass")
        }
        var finalLength: Int32 = 0
        let done = out.withUnsafeMutableBufferPointer { EVP_CipherFinal_ex(context, $0.baseAddress! + Int(length), &finalLength) }
        guard done == 1 else {
            OpenSSLError.clear()
            secureWipe(&out)
            throw CryptoError(.authenticationFailed, "key unwrap failed")
        }
        out.removeSubrange(Int(length + finalLength)...)
        return out
    }
}
