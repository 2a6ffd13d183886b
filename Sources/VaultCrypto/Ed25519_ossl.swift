internal import COpenSSL

/// Ed25519 signatures (RFC 8032) over OpenSSL EVP_PKEY, for signed audit checkpoints.
public enum Ed25519 {
    public static let seedLength = 32
    public static let publicKeyLength = 32
    public static let signatureLength = 64
    /// DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410): SEQUENCE { SEQUENCE { OID 1.3.101.112 }, BIT STRING }.
    static let spkiPrefix: [UInt8] = [0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00]

    /// A new private key (its 32-byte seed), from the CSPRNG.
    public static func generateSeed() throws -> SecureBytes {
        try SecureBytes.random(count: seedLength)
    }

    private static func privateKey(_ seed: SecureBytes) throws -> OpaquePointer {
        guard seed.count == seedLength else {
            throw CryptoError(.invalidParameter, "Ed25519 private key must be \(seedLength) bytes, not \(seed.count)")
        }
        let key = seed.withUnsafeBytes { s in
            EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, nil, s.baseAddress!.assumingMemoryBound(to: UInt8.self), s.count)
        }
        guard let key else { throw OpenSSLError.failure(.invalidParameter, "Ed25519 private key rejected") }
        return key
    }

    /// The public key of a private key.
    public static func publicKey(seed: SecureBytes) throws -> [UInt8] {
        let key = try privateKey(seed)
        defer { EVP_PKEY_free(key) }
        var out = [UInt8](repeating: 0, count: publicKeyLength)
        var length = publicKeyLength
        try ossl(EVP_PKEY_get_raw_public_key(key, &out, &length), "Ed25519 public key export")
        return out
    }

    /// Signs `message` (pure Ed25519, no pre-hash).
    public static func sign(_ message: [UInt8], seed: SecureBytes) throws -> [UInt8] {
        let key = try privateKey(seed)
        defer { EVP_PKEY_free(key) }
        guard let context = EVP_MD_CTX_new() else { throw OpenSSLError.failure(.libraryFailure, "EVP_MD_CTX_new failed") }
        defer { EVP_MD_CTX_free(context) }
        try ossl(EVP_DigestSignInit(context, nil, nil, nil, key), "Ed25519 sign init")
        var signature = [UInt8](repeating: 0, count: signatureLength)
        var length = signatureLength
        try message.withUnsafeBufferPointer { m in
            try ossl(EVP_DigestSign(context, &signature, &length, m.baseAddress, m.count), "Ed25519 sign")
        }
        return signature
    }

    /// Verifies a signature under a raw 32-byte public key. Returns false for any mismatch,
    /// malformed key or wrong-length signature.
    public static func verify(_ signature: [UInt8], message: [UInt8], publicKey: [UInt8]) -> Bool {
        guard signature.count == signatureLength, publicKey.count == publicKeyLength else { return false }
        guard let key = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, nil, publicKey, publicKey.count) else {
            OpenSSLError.clear()
            return false
        }
        defer { EVP_PKEY_free(key) }
        guard let context = EVP_MD_CTX_new() else { return false }
        defer { EVP_MD_CTX_free(context) }
        guard EVP_DigestVerifyInit(context, nil, nil, nil, key) == 1 else {
            OpenSSLError.clear()
            return false
        }
        let ok = message.withUnsafeBufferPointer { m in EVP_DigestVerify(context, signature, signature.count, m.baseAddress, m.count) }
        if ok != 1 { OpenSSLError.clear() }
        return ok == 1
    }

    /// The public key as PEM (SubjectPublicKeyInfo), as `openssl pkeyutl -verify -pubin` reads it.
    public static func publicKeyPEM(_ publicKey: [UInt8]) -> String {
        let der = spkiPrefix + publicKey
        let base64 = Base64.encode(der)
        return "-----BEGIN PUBLIC KEY-----\n\(base64)\n-----END PUBLIC KEY-----\n"
    }
}

/// Standard base64 (RFC 4648), without line breaks.
public enum Base64 {
    static let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/".utf8)

    public static func encode(_ bytes: [UInt8]) -> String {
        var out = [UInt8]()
        out.reserveCapacity((bytes.count + 2) / 3 * 4)
        var i = 0
        while i + 3 <= bytes.count {
            let v = UInt32(bytes[i]) << 16 | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2])
            for shift in [18, 12, 6, 0] { out.append(alphabet[Int((v >> UInt32(shift)) & 63)]) }
            i += 3
        }
        let rest = bytes.count - i
        if rest > 0 {
            let v = UInt32(bytes[i]) << 16 | (rest == 2 ? UInt32(bytes[i + 1]) << 8 : 0)
            out.append(alphabet[Int((v >> 18) & 63)])
            out.append(alphabet[Int((v >> 12) & 63)])
            out.append(rest == 2 ? alphabet[Int((v >> 6) & 63)] : UInt8(ascii: "="))
            out.append(UInt8(ascii: "="))
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Decodes strict standard base64 (padding required, no whitespace); nil if malformed.
    public static func decode(_ text: String) -> [UInt8]? {
        let chars = Array(text.utf8)
        guard chars.count % 4 == 0 else { return nil }
        var table = [Int8](repeating: -1, count: 256)
        for (i, c) in alphabet.enumerated() { table[Int(c)] = Int8(i) }
        var out = [UInt8]()
        out.reserveCapacity(chars.count / 4 * 3)
        var i = 0
        while i < chars.count {
            let last = i + 4 == chars.count
            var v: UInt32 = 0
            var pad = 0
            for j in 0..<4 {
                let c = chars[i + j]
                if c == UInt8(ascii: "=") && last && j >= 2 {
                    pad += 1
                    v <<= 6
                    continue
                }
                guard pad == 0, table[Int(c)] >= 0 else { return nil }
                v = v << 6 | UInt32(table[Int(c)])
            }
            out.append(UInt8((v >> 16) & 0xff))
            if pad < 2 { out.append(UInt8((v >> 8) & 0xff)) }
            if pad < 1 { out.append(UInt8(v & 0xff)) }
            i += 4
        }
        return out
    }
}
