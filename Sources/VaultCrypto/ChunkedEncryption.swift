/// C2SP chunked encryption (c2sp.org/chunked-encryption), Cobblestone-256 instantiation:
/// HKDF-Expand-SHA-512 key derivation with key commitment, AES-256-GCM, 16 KiB chunks, the
/// final chunk always shorter than 16 KiB, nonce = base nonce XOR chunk counter.
///
/// Ciphertext layout: salt (24) || commitment (32) || sealed chunks (chunk || 16-byte tag).
public enum ChunkedEncryption {
    public static let chunkSize = 16_384
    public static let tagLength = AESGCM.tagLength
    public static let sealedChunkSize = chunkSize + tagLength
    public static let saltLength = 24
    public static let commitmentLength = 32
    public static let headerLength = saltLength + commitmentLength
    public static let keyLength = 32
    public static let nonceLength = 12
    /// The spec's ceiling on chunks per message (2^38, 4 PiB).
    public static let maximumChunkCount: UInt64 = 1 << 38
    public static let aeadName = "AEAD_AES_256_GCM"
    static let infoPrefix = Array("c2sp.org/chunked-encryption@v1+".utf8)

    /// The per-message AEAD key, base nonce and commitment.
    public struct DerivedKeys: Sendable {
        public let aeadKey: SecureBytes
        public let baseNonce: [UInt8]
        public let commitment: [UInt8]
    }

    /// key || base nonce || commitment = HKDF-Expand-SHA-512(prk = key,
    /// info = "c2sp.org/chunked-encryption@v1+" || aead || 0x00 || salt || context).
    public static func deriveKeys(key: SecureBytes, salt: [UInt8], context: [UInt8]) throws -> DerivedKeys {
        guard key.count == keyLength else {
            throw CryptoError(.invalidParameter, "chunked encryption key must be \(keyLength) bytes, not \(key.count)")
        }
        guard salt.count == saltLength else {
            throw CryptoError(.invalidParameter, "chunked encryption salt must be \(saltLength) bytes, not \(salt.count)")
        }
        var info = infoPrefix
        info.append(contentsOf: Array(aeadName.utf8))
        info.append(0)
        info.append(contentsOf: salt)
        info.append(contentsOf: context)
        let okm = try HKDF.expand(.sha512, pseudorandomKey: key, info: info, length: keyLength + nonceLength + commitmentLength)
        return DerivedKeys(aeadKey: okm.slice(0..<keyLength),
                          baseNonce: Array(okm.slice(keyLength..<keyLength + nonceLength).unsafeExportedBytes()),
                          commitment: okm.slice(keyLength + nonceLength..<okm.count).unsafeExportedBytes())
    }

    /// The ciphertext length, header included, of a message of `plaintextLength` bytes.
    public static func ciphertextLength(plaintextLength: Int) -> Int {
        headerLength + (plaintextLength / chunkSize + 1) * tagLength + plaintextLength
    }

    /// The layout of a chunk body (ciphertext after the 56-byte header) of a given length.
    public struct Layout: Sendable, Equatable {
        /// Number of chunks, the final short one included.
        public let chunkCount: UInt64
        /// Sealed length of the final chunk (tag included), in 16...16399+16.
        public let finalSealedLength: Int
        public var plaintextLength: Int { Int(chunkCount - 1) * ChunkedEncryption.chunkSize + finalSealedLength - ChunkedEncryption.tagLength }

        /// Validates a body length: it must end in a final chunk of tagLength...sealedChunkSize-1 bytes.
        public init(bodyLength: Int) throws {
            guard bodyLength >= 0 else { throw CryptoError(.malformedInput, "negative length") }
            let full = bodyLength / ChunkedEncryption.sealedChunkSize
            let rest = bodyLength % ChunkedEncryption.sealedChunkSize
            guard rest >= ChunkedEncryption.tagLength else {
                throw CryptoError(.malformedInput, rest == 0
                    ? "ciphertext is truncated: it has no final short chunk"
                    : "ciphertext is truncated: the final chunk is shorter than its tag")
            }
            guard UInt64(full) + 1 <= ChunkedEncryption.maximumChunkCount else {
                throw CryptoError(.malformedInput, "ciphertext has more than 2^38 chunks")
            }
            chunkCount = UInt64(full) + 1
            finalSealedLength = rest
        }

        /// Byte range of chunk `index` within the body.
        public func range(ofChunk index: UInt64) -> Range<Int> {
            let start = Int(index) * ChunkedEncryption.sealedChunkSize
            let length = index == chunkCount - 1 ? finalSealedLength : ChunkedEncryption.sealedChunkSize
            return start..<start + length
        }
    }

    static func nonce(base: [UInt8], counter: UInt64, into out: inout [UInt8]) {
        for i in 0..<nonceLength { out[i] = base[i] }
        var c = counter
        var i = nonceLength - 1
        while c != 0 && i >= 0 {
            out[i] ^= UInt8(truncatingIfNeeded: c)
            c >>= 8
            i -= 1
        }
    }

    /// One-shot encryption of a whole message (header included).
    public static func seal(_ message: [UInt8], key: SecureBytes, context: [UInt8]) throws -> [UInt8] {
        let sealer = try ChunkedSealer(key: key, context: context)
        var out = sealer.header
        out.reserveCapacity(ciphertextLength(plaintextLength: message.count))
        var buffer = [UInt8](repeating: 0, count: sealedChunkSize)
        try message.withUnsafeBytes { m in
            var offset = 0
            while true {
                let length = Swift.min(chunkSize, m.count - offset)
                let isFinal = length < chunkSize
                let written = try buffer.withUnsafeMutableBytes { b in
                    try sealer.sealChunk(UnsafeRawBufferPointer(rebasing: m[offset..<offset + length]), isFinal: isFinal, into: b)
                }
                out.append(contentsOf: buffer[0..<written])
                offset += length
                if isFinal { break }
            }
        }
        return out
    }

    /// One-shot decryption of a whole message (header included).
    public static func open(_ ciphertext: [UInt8], key: SecureBytes, context: [UInt8]) throws -> SecureBytes {
        try ciphertext.withUnsafeBytes { c in
            guard c.count >= headerLength else {
                throw CryptoError(.malformedInput, "ciphertext of \(c.count) bytes is shorter than the \(headerLength)-byte header")
            }
            let opener = try ChunkedOpener(key: key, context: context, header: UnsafeRawBufferPointer(rebasing: c[0..<headerLength]))
            return try opener.openAll(body: UnsafeRawBufferPointer(rebasing: c[headerLength...]))
        }
    }
}

/// Streaming encryptor: call `sealChunk` for each full 16 KiB chunk, then once with
/// `isFinal: true` for the final, shorter (possibly empty) chunk.
public final class ChunkedSealer: @unchecked Sendable {
    // Holds a cipher context used by one task at a time; hence @unchecked Sendable.
    public let header: [UInt8]
    private let gcm: AESGCM
    private let baseNonce: [UInt8]
    private var counter: UInt64 = 0
    private var finished = false
    private var nonce = [UInt8](repeating: 0, count: ChunkedEncryption.nonceLength)

    public init(key: SecureBytes, context: [UInt8], salt: [UInt8]? = nil) throws {
        let salt = try salt ?? SystemRandom.bytes(ChunkedEncryption.saltLength)
        let keys = try ChunkedEncryption.deriveKeys(key: key, salt: salt, context: context)
        header = salt + keys.commitment
        gcm = try AESGCM(key: keys.aeadKey)
        baseNonce = keys.baseNonce
    }

    /// Number of chunks sealed so far.
    public var chunksSealed: UInt64 { counter }

    /// Seals one chunk into `output` (at least `plaintext.count + 16` bytes); returns bytes written.
    public func sealChunk(_ plaintext: UnsafeRawBufferPointer, isFinal: Bool, into output: UnsafeMutableRawBufferPointer) throws -> Int {
        guard !finished else { throw CryptoError(.invalidParameter, "the final chunk was already sealed") }
        if isFinal {
            guard plaintext.count < ChunkedEncryption.chunkSize else {
                throw CryptoError(.invalidParameter, "the final chunk must be shorter than \(ChunkedEncryption.chunkSize) bytes")
            }
        } else {
            guard plaintext.count == ChunkedEncryption.chunkSize else {
                throw CryptoError(.invalidParameter, "a non-final chunk must be exactly \(ChunkedEncryption.chunkSize) bytes")
            }
        }
        guard counter < ChunkedEncryption.maximumChunkCount else {
            throw CryptoError(.invalidParameter, "message exceeds 2^38 chunks")
        }
        ChunkedEncryption.nonce(base: baseNonce, counter: counter, into: &nonce)
        try nonce.withUnsafeBytes { n in
            try gcm.seal(nonce: n, aad: UnsafeRawBufferPointer(start: nil, count: 0), plaintext: plaintext,
                         output: UnsafeMutableRawBufferPointer(rebasing: output[0..<plaintext.count]),
                         tag: UnsafeMutableRawBufferPointer(rebasing: output[plaintext.count..<plaintext.count + ChunkedEncryption.tagLength]))
        }
        counter += 1
        if isFinal { finished = true }
        return plaintext.count + ChunkedEncryption.tagLength
    }
}

/// Decryptor with random access by chunk. Creating one checks the header's length and the
/// key commitment, before any chunk is decrypted.
public final class ChunkedOpener: @unchecked Sendable {
    // Holds a cipher context used by one task at a time; hence @unchecked Sendable.
    private let gcm: AESGCM
    private let baseNonce: [UInt8]
    private var nonce = [UInt8](repeating: 0, count: ChunkedEncryption.nonceLength)

    public init(key: SecureBytes, context: [UInt8], header: UnsafeRawBufferPointer) throws {
        guard header.count == ChunkedEncryption.headerLength else {
            throw CryptoError(.malformedInput, "chunked header must be \(ChunkedEncryption.headerLength) bytes, not \(header.count)")
        }
        let salt = Array(header[0..<ChunkedEncryption.saltLength])
        let keys = try ChunkedEncryption.deriveKeys(key: key, salt: salt, context: context)
        let stored = UnsafeRawBufferPointer(rebasing: header[ChunkedEncryption.saltLength...])
        guard keys.commitment.withUnsafeBytes({ ConstantTime.equals($0, stored) }) else {
            throw CryptoError(.authenticationFailed, "key commitment does not match: wrong key, wrong context or modified header")
        }
        gcm = try AESGCM(key: keys.aeadKey)
        baseNonce = keys.baseNonce
    }

    /// Raw mode (the spec's appendix): the AEAD key and base nonce are given directly.
    public init(rawAEADKey: SecureBytes, baseNonce: [UInt8]) throws {
        guard rawAEADKey.count == ChunkedEncryption.keyLength, baseNonce.count == ChunkedEncryption.nonceLength else {
            throw CryptoError(.invalidParameter, "raw mode needs a 32-byte key and a 12-byte nonce")
        }
        gcm = try AESGCM(key: rawAEADKey)
        self.baseNonce = baseNonce
    }

    /// Opens chunk `index` (`sealed` is the chunk and its tag) into `output`; returns the
    /// plaintext length. A non-final chunk must be full; a final chunk must be short.
    public func openChunk(index: UInt64, sealed: UnsafeRawBufferPointer, isFinal: Bool,
                          into output: UnsafeMutableRawBufferPointer) throws -> Int {
        guard index < ChunkedEncryption.maximumChunkCount else {
            throw CryptoError(.malformedInput, "chunk index exceeds 2^38")
        }
        if isFinal {
            guard sealed.count >= ChunkedEncryption.tagLength && sealed.count < ChunkedEncryption.sealedChunkSize else {
                throw CryptoError(.malformedInput, "final chunk \(index) has an invalid length of \(sealed.count) bytes")
            }
        } else {
            guard sealed.count == ChunkedEncryption.sealedChunkSize else {
                throw CryptoError(.malformedInput, "chunk \(index) has \(sealed.count) bytes, not \(ChunkedEncryption.sealedChunkSize)")
            }
        }
        let length = sealed.count - ChunkedEncryption.tagLength
        ChunkedEncryption.nonce(base: baseNonce, counter: index, into: &nonce)
        do {
            try nonce.withUnsafeBytes { n in
                try gcm.open(nonce: n, aad: UnsafeRawBufferPointer(start: nil, count: 0),
                             ciphertext: UnsafeRawBufferPointer(rebasing: sealed[0..<length]),
                             tag: UnsafeRawBufferPointer(rebasing: sealed[length...]),
                             output: UnsafeMutableRawBufferPointer(rebasing: output[0..<length]))
            }
        } catch let error as CryptoError where error.code == .authenticationFailed {
            throw CryptoError(.authenticationFailed, "chunk \(index) failed authentication")
        }
        return length
    }

    /// Decrypts every chunk of `body` (the ciphertext after the header) in order, handing
    /// each authenticated plaintext chunk to `emit`. Nothing unauthenticated is emitted.
    public func open(body: UnsafeRawBufferPointer, emit: (UnsafeRawBufferPointer) throws -> Void) throws {
        let layout = try ChunkedEncryption.Layout(bodyLength: body.count)
        var buffer = SecureBytes(zeroedCount: ChunkedEncryption.chunkSize)
        defer { buffer = SecureBytes(zeroedCount: 0) }
        for index in 0..<layout.chunkCount {
            let range = layout.range(ofChunk: index)
            try buffer.withUnsafeMutableBytes { out in
                let n = try openChunk(index: index, sealed: UnsafeRawBufferPointer(rebasing: body[range]),
                                      isFinal: index == layout.chunkCount - 1, into: out)
                try emit(UnsafeRawBufferPointer(rebasing: out[0..<n]))
            }
        }
    }

    /// Decrypts the whole body into secret bytes.
    public func openAll(body: UnsafeRawBufferPointer) throws -> SecureBytes {
        let layout = try ChunkedEncryption.Layout(bodyLength: body.count)
        let out = SecureBytes(zeroedCount: layout.plaintextLength)
        try out.withUnsafeMutableBytes { o in
            var offset = 0
            try open(body: body) { chunk in
                if chunk.count > 0 { (o.baseAddress! + offset).copyMemory(from: chunk.baseAddress!, byteCount: chunk.count) }
                offset += chunk.count
            }
        }
        return out
    }

    /// Authenticates the message length by decrypting the final chunk, as a random-access
    /// reader must before trusting the length. Returns the plaintext length.
    public func authenticateLength(body: UnsafeRawBufferPointer) throws -> Int {
        let layout = try ChunkedEncryption.Layout(bodyLength: body.count)
        let last = layout.chunkCount - 1
        let scratch = SecureBytes(zeroedCount: ChunkedEncryption.chunkSize)
        _ = try scratch.withUnsafeMutableBytes { out in
            try openChunk(index: last, sealed: UnsafeRawBufferPointer(rebasing: body[layout.range(ofChunk: last)]), isFinal: true, into: out)
        }
        return layout.plaintextLength
    }
}

/// Push-based streaming decryption for input that arrives in pieces of any size. Full
/// sealed chunks are decrypted and emitted as soon as they are complete (a full-size chunk
/// can never be the final one); `finish` decrypts the final short chunk. After any failure
/// every later call fails too.
public final class ChunkedStreamOpener: @unchecked Sendable {
    // Used by one task at a time; hence @unchecked Sendable.
    private let key: SecureBytes
    private let context: [UInt8]
    private var opener: ChunkedOpener?
    private var pending: [UInt8] = []
    private var index: UInt64 = 0
    private var failure: CryptoError?
    private var done = false
    private let output = SecureBytes(zeroedCount: ChunkedEncryption.chunkSize)

    public init(key: SecureBytes, context: [UInt8]) {
        self.key = key
        self.context = context
    }

    deinit { secureWipe(&pending) }

    private func fail(_ error: CryptoError) -> CryptoError {
        failure = error
        secureWipe(&pending)
        pending = []
        return error
    }

    public func update(_ bytes: UnsafeRawBufferPointer, emit: (UnsafeRawBufferPointer) throws -> Void) throws {
        if let failure { throw failure }
        guard !done else { throw fail(CryptoError(.malformedInput, "data after the end of the message")) }
        pending.append(contentsOf: bytes)
        do {
            if opener == nil {
                guard pending.count >= ChunkedEncryption.headerLength else { return }
                opener = try pending.withUnsafeBytes {
                    try ChunkedOpener(key: key, context: context, header: UnsafeRawBufferPointer(rebasing: $0[0..<ChunkedEncryption.headerLength]))
                }
                pending.removeFirst(ChunkedEncryption.headerLength)
            }
            var consumed = 0
            while pending.count - consumed >= ChunkedEncryption.sealedChunkSize {
                try pending.withUnsafeBytes { p in
                    try output.withUnsafeMutableBytes { o in
                        let range = consumed..<consumed + ChunkedEncryption.sealedChunkSize
                        let n = try opener!.openChunk(index: index, sealed: UnsafeRawBufferPointer(rebasing: p[range]), isFinal: false, into: o)
                        try emit(UnsafeRawBufferPointer(rebasing: o[0..<n]))
                    }
                }
                index += 1
                consumed += ChunkedEncryption.sealedChunkSize
            }
            if consumed > 0 { pending.removeFirst(consumed) }
        } catch let error as CryptoError {
            throw fail(error)
        }
    }

    /// Decrypts the final chunk. Fails if the input ended without a valid short final chunk.
    public func finish(emit: (UnsafeRawBufferPointer) throws -> Void) throws {
        if let failure { throw failure }
        guard !done else { throw fail(CryptoError(.malformedInput, "finish called twice")) }
        guard let opener else {
            throw fail(CryptoError(.malformedInput, "ciphertext ended inside the \(ChunkedEncryption.headerLength)-byte header"))
        }
        do {
            try pending.withUnsafeBytes { p in
                try output.withUnsafeMutableBytes { o in
                    let n = try opener.openChunk(index: index, sealed: p, isFinal: true, into: o)
                    try emit(UnsafeRawBufferPointer(rebasing: o[0..<n]))
                }
            }
            done = true
            secureWipe(&pending)
        } catch let error as CryptoError {
            throw fail(error)
        }
    }
}
