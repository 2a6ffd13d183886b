internal import COpenSSL

/// AES-GCM with a 16-byte tag over OpenSSL EVP (AES-128, -192 or -256 by key length).
///
/// An instance owns one cipher context and is meant for one task or thread at a time;
/// the static functions create a context per call.
public final class AESGCM: @unchecked Sendable {
    // Owns an EVP_CIPHER_CTX that must not be used from two threads at once; each task
    // creates its own instance. Hence @unchecked Sendable (it may be moved, not shared).
    public static let tagLength = 16
    public static let standardNonceLength = 12
    /// Nonces of 1 to 128 bytes are supported (OpenSSL 3's GCM limit). ShardVault itself
    /// only uses 12-byte nonces.
    public static let maximumNonceLength = 128

    private let context: OpaquePointer
    private let keyLength: Int
    private var keyed: (encrypt: Bool, nonceLength: Int)?
    private let key: SecureBytes

    /// Creates a context for `key` (16, 24 or 32 bytes).
    public init(key: SecureBytes) throws {
        guard Algorithms.gcm(keyLength: key.count) != nil else {
            throw CryptoError(.invalidParameter, "AES-GCM key must be 16, 24 or 32 bytes, not \(key.count)")
        }
        guard let context = EVP_CIPHER_CTX_new() else {
            throw OpenSSLError.failure(.libraryFailure, "EVP_CIPHER_CTX_new failed")
        }
        self.context = context
        self.keyLength = key.count
        self.key = key
    }

    deinit { EVP_CIPHER_CTX_free(context) }

    private func prepare(encrypt: Bool, nonce: UnsafeRawBufferPointer) throws {
        guard nonce.count > 0 && nonce.count <= Self.maximumNonceLength else {
            throw CryptoError(.invalidParameter, "AES-GCM nonce must be 1 to \(Self.maximumNonceLength) bytes, not \(nonce.count)")
        }
        let enc: Int32 = encrypt ? 1 : 0
        if keyed == nil || keyed!.encrypt != encrypt || keyed!.nonceLength != nonce.count {
            keyed = nil // if re-keying fails part-way, the next call starts from scratch
            try ossl(EVP_CipherInit_ex(context, Algorithms.gcm(keyLength: keyLength), nil, nil, nil, enc), "EVP_CipherInit_ex (cipher)")
            try ossl(EVP_CIPHER_CTX_ctrl(context, EVP_CTRL_GCM_SET_IVLEN, Int32(nonce.count), nil),
                     .invalidParameter, "AES-GCM rejects a nonce of \(nonce.count) bytes")
            try key.withUnsafeBytes { k in
                try ossl(EVP_CipherInit_ex(context, nil, nil, k.baseAddress!.assumingMemoryBound(to: UInt8.self),
                                           nonce.baseAddress!.assumingMemoryBound(to: UInt8.self), enc), "EVP_CipherInit_ex (key)")
            }
            keyed = (encrypt, nonce.count)
        } else {
            try ossl(EVP_CipherInit_ex(context, nil, nil, nil, nonce.baseAddress!.assumingMemoryBound(to: UInt8.self), enc),
                     "EVP_CipherInit_ex (nonce)")
        }
    }

    private func feedAAD(_ aad: UnsafeRawBufferPointer) throws {
        guard aad.count > 0 else { return }
        var outLength: Int32 = 0
        try ossl(EVP_CipherUpdate(context, nil, &outLength, aad.baseAddress!.assumingMemoryBound(to: UInt8.self), Int32(aad.count)),
                 "AES-GCM AAD update")
    }

    /// Encrypts `plaintext` into `output` (same length) and writes the tag into `tag` (16 bytes).
    public func seal(nonce: UnsafeRawBufferPointer, aad: UnsafeRawBufferPointer, plaintext: UnsafeRawBufferPointer,
                     output: UnsafeMutableRawBufferPointer, tag: UnsafeMutableRawBufferPointer) throws {
        precondition(output.count >= plaintext.count && tag.count >= Self.tagLength, "output buffers too small")
        guard plaintext.count < Int(Int32.max) else { throw CryptoError(.invalidParameter, "AES-GCM input too long") }
        try prepare(encrypt: true, nonce: nonce)
        try feedAAD(aad)
        var outLength: Int32 = 0
        if plaintext.count > 0 {
            try ossl(EVP_CipherUpdate(context, output.baseAddress!.assumingMemoryBound(to: UInt8.self), &outLength,
                                      plaintext.baseAddress!.assumingMemoryBound(to: UInt8.self), Int32(plaintext.count)),
                     "AES-GCM encrypt update")
        }
        var finalLength: Int32 = 0
        try ossl(EVP_CipherFinal_ex(context, output.baseAddress.map { $0.assumingMemoryBound(to: UInt8.self) + Int(outLength) }, &finalLength),
                 "AES-GCM encrypt final")
        try ossl(EVP_CIPHER_CTX_ctrl(context, EVP_CTRL_GCM_GET_TAG, Int32(Self.tagLength), tag.baseAddress), "AES-GCM get tag")
    }

    /// Decrypts and authenticates. Throws `.authenticationFailed` when the tag does not match;
    /// in that case `output` holds no usable plaintext and is zeroed.
    public func open(nonce: UnsafeRawBufferPointer, aad: UnsafeRawBufferPointer, ciphertext: UnsafeRawBufferPointer,
                     tag: UnsafeRawBufferPointer, output: UnsafeMutableRawBufferPointer) throws {
        precondition(output.count >= ciphertext.count, "output buffer too small")
        guard tag.count == Self.tagLength else {
            throw CryptoError(.authenticationFailed, "AES-GCM tag must be \(Self.tagLength) bytes, not \(tag.count)")
        }
        guard ciphertext.count < Int(Int32.max) else { throw CryptoError(.invalidParameter, "AES-GCM input too long") }
        try prepare(encrypt: false, nonce: nonce)
        try feedAAD(aad)
        var outLength: Int32 = 0
        if ciphertext.count > 0 {
            try ossl(EVP_CipherUpdate(context, output.baseAddress!.assumingMemoryBound(to: UInt8.self), &outLength,
                                      ciphertext.baseAddress!.assumingMemoryBound(to: UInt8.self), Int32(ciphertext.count)),
                     "AES-GCM decrypt update")
        }
        try ossl(EVP_CIPHER_CTX_ctrl(context, EVP_CTRL_GCM_SET_TAG, Int32(Self.tagLength), UnsafeMutableRawPointer(mutating: tag.baseAddress)),
                 "AES-GCM set tag")
        var finalLength: Int32 = 0
        let ok = EVP_CipherFinal_ex(context, output.baseAddress.map { $0.assumingMemoryBound(to: UInt8.self) + Int(outLength) }, &finalLength)
        if ok != 1 {
            OpenSSLError.clear()
            if ciphertext.count > 0 { OPENSSL_cleanse(output.baseAddress, ciphertext.count) }
            throw CryptoError(.authenticationFailed, "AES-GCM tag mismatch")
        }
    }

    // MARK: Array conveniences

    /// Returns ciphertext || tag.
    public func seal(nonce: [UInt8], plaintext: [UInt8], aad: [UInt8] = []) throws -> [UInt8] {
        var out = [UInt8](repeating: 0, count: plaintext.count + Self.tagLength)
        try nonce.withUnsafeBytes { n in
            try aad.withUnsafeBytes { a in
                try plaintext.withUnsafeBytes { p in
                    try out.withUnsafeMutableBytes { o in
                        try seal(nonce: n, aad: a, plaintext: p,
                                 output: UnsafeMutableRawBufferPointer(rebasing: o[0..<plaintext.count]),
                                 tag: UnsafeMutableRawBufferPointer(rebasing: o[plaintext.count...]))
                    }
                }
            }
        }
        return out
    }

    /// Takes ciphertext || tag; returns the plaintext as secret bytes.
    public func open(nonce: [UInt8], sealed: [UInt8], aad: [UInt8] = []) throws -> SecureBytes {
        guard sealed.count >= Self.tagLength else {
            throw CryptoError(.authenticationFailed, "AES-GCM input shorter than its tag")
        }
        let length = sealed.count - Self.tagLength
        let out = SecureBytes(zeroedCount: length)
        try nonce.withUnsafeBytes { n in
            try aad.withUnsafeBytes { a in
                try sealed.withUnsafeBytes { s in
                    try out.withUnsafeMutableBytes { o in
                        try open(nonce: n, aad: a, ciphertext: UnsafeRawBufferPointer(rebasing: s[0..<length]),
                                 tag: UnsafeRawBufferPointer(rebasing: s[length...]), output: o)
                    }
                }
            }
        }
        return out
    }
}
