import Testing
import VaultCrypto

/// Direct checks of the VaultCrypto primitives, beyond the published vectors.
@Suite("VaultCrypto primitives")
struct CryptoPrimitiveTests {
    static func pattern(_ count: Int, seed: UInt8 = 1) -> [UInt8] {
        (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 131 &+ Int(seed) &* 7) }
    }

    static func code(_ body: () throws -> Any) -> CryptoError.Code? {
        do {
            _ = try body()
            return nil
        } catch let error as CryptoError {
            return error.code
        } catch {
            return nil
        }
    }

    // MARK: AES-GCM

    @Test("AES-GCM: any change to ciphertext, tag, AAD, nonce or key is rejected")
    func gcmTamper() throws {
        let key = SecureBytes(copying: Self.pattern(32))
        let gcm = try AESGCM(key: key)
        let nonce = Self.pattern(12, seed: 3)
        let aad = Array("shard 7".utf8)
        let message = Self.pattern(1000, seed: 5)
        let sealed = try gcm.seal(nonce: nonce, plaintext: message, aad: aad)
        #expect(sealed.count == message.count + 16)
        #expect(try gcm.open(nonce: nonce, sealed: sealed, aad: aad).unsafeExportedBytes() == message)

        for index in [0, 500, 999] {
            var tampered = sealed
            tampered[index] ^= 0x01
            #expect(Self.code { try gcm.open(nonce: nonce, sealed: tampered, aad: aad) } == .authenticationFailed, "ciphertext byte \(index)")
        }
        for index in sealed.count - 16..<sealed.count {
            var tampered = sealed
            tampered[index] ^= 0x80
            #expect(Self.code { try gcm.open(nonce: nonce, sealed: tampered, aad: aad) } == .authenticationFailed, "tag byte \(index)")
        }
        #expect(Self.code { try gcm.open(nonce: nonce, sealed: sealed, aad: Array("shard 8".utf8)) } == .authenticationFailed)
        #expect(Self.code { try gcm.open(nonce: nonce, sealed: sealed, aad: []) } == .authenticationFailed)
        var otherNonce = nonce
        otherNonce[11] ^= 1
        #expect(Self.code { try gcm.open(nonce: otherNonce, sealed: sealed, aad: aad) } == .authenticationFailed)
        #expect(Self.code { try gcm.open(nonce: nonce + [0], sealed: sealed, aad: aad) } == .authenticationFailed)
        let otherKey = try AESGCM(key: SecureBytes(copying: Self.pattern(32, seed: 9)))
        #expect(Self.code { try otherKey.open(nonce: nonce, sealed: sealed, aad: aad) } == .authenticationFailed)
        #expect(Self.code { try gcm.open(nonce: nonce, sealed: Array(sealed.suffix(15)), aad: aad) } == .authenticationFailed)
        #expect(Self.code { try gcm.open(nonce: nonce, sealed: Array(sealed.dropLast()), aad: aad) } == .authenticationFailed)
        // The context still works after failures (it is re-keyed per call).
        #expect(try gcm.open(nonce: nonce, sealed: sealed, aad: aad).unsafeExportedBytes() == message)
    }

    @Test("AES-GCM: 128-, 192- and 256-bit keys work; other sizes and empty nonces are refused")
    func gcmParameters() throws {
        for size in [16, 24, 32] {
            let gcm = try AESGCM(key: SecureBytes(copying: Self.pattern(size)))
            let sealed = try gcm.seal(nonce: Self.pattern(12), plaintext: Self.pattern(33))
            #expect(try gcm.open(nonce: Self.pattern(12), sealed: sealed).unsafeExportedBytes() == Self.pattern(33))
        }
        for size in [0, 15, 31, 33, 64] {
            #expect(Self.code { try AESGCM(key: SecureBytes(copying: Self.pattern(size))) } == .invalidParameter, "\(size)-byte key")
        }
        let gcm = try AESGCM(key: SecureBytes(copying: Self.pattern(32)))
        #expect(Self.code { try gcm.seal(nonce: [], plaintext: [1, 2, 3]) } == .invalidParameter)
        // Nonces of other lengths (GHASH-derived counters) round-trip, and differ from 12-byte ones.
        for length in [1, 8, 16, 60, 128] {
            let sealed = try gcm.seal(nonce: Self.pattern(length), plaintext: Self.pattern(40))
            #expect(try gcm.open(nonce: Self.pattern(length), sealed: sealed).unsafeExportedBytes() == Self.pattern(40))
        }
    }

    // MARK: HMAC-SHA-256

    @Test("HMAC-SHA-256: a wrong key, message or tag is rejected; truncation has a floor")
    func hmac() throws {
        let key = SecureBytes(copying: Self.pattern(32))
        let message = Array("audit entry 42".utf8)
        let tag = try HMACSHA256.authenticate(key: key, message)
        #expect(tag.count == 32)
        #expect(try HMACSHA256.verify(key: key, message, tag: tag))
        #expect(try !HMACSHA256.verify(key: SecureBytes(copying: Self.pattern(32, seed: 2)), message, tag: tag))
        #expect(try !HMACSHA256.verify(key: key, Array("audit entry 43".utf8), tag: tag))
        var flipped = tag
        flipped[31] ^= 1
        #expect(try !HMACSHA256.verify(key: key, message, tag: flipped))
        #expect(try HMACSHA256.verify(key: key, message, tag: Array(tag.prefix(16))))
        #expect(try !HMACSHA256.verify(key: key, message, tag: Array(tag.prefix(15))))
        #expect(try !HMACSHA256.verify(key: key, message, tag: []))
        #expect(try !HMACSHA256.verify(key: key, message, tag: tag + [0]))
        // Streaming equals one-shot; an empty key is a valid HMAC key.
        let mac = try HMACSHA256(key: key)
        mac.update(Array(message.prefix(5)))
        mac.update(Array(message.dropFirst(5)))
        #expect(mac.finalize() == tag)
        #expect(try HMACSHA256.authenticate(key: SecureBytes(copying: []), message).count == 32)
    }

    // MARK: SecureBytes and ConstantTime

    @Test("SecureBytes never shows its bytes when printed")
    func secureBytesRedacted() {
        let secret = SecureBytes(copying: [0xDE, 0xAD, 0xBE, 0xEF, 0x42])
        let renderings = [secret.description, secret.debugDescription, "\(secret)", String(describing: secret),
                          String(reflecting: secret)]
        for text in renderings {
            #expect(text == "SecureBytes(5 bytes, redacted)")
            for leak in ["dead", "DEAD", "beef", "BEEF", "222", "173", "190", "239", "0x"] {
                #expect(!text.contains(leak), "\(text) reveals \(leak)")
            }
        }
        #expect(secret.count == 5)
        #expect(secret.unsafeExportedBytes() == [0xDE, 0xAD, 0xBE, 0xEF, 0x42])
        #expect(secret.slice(1..<3).unsafeExportedBytes() == [0xAD, 0xBE])
        #expect(secret.constantTimeEquals(SecureBytes(copying: [0xDE, 0xAD, 0xBE, 0xEF, 0x42])))
        #expect(!secret.constantTimeEquals(SecureBytes(copying: [0xDE, 0xAD, 0xBE, 0xEF, 0x43])))
        #expect(!secret.constantTimeEquals(SecureBytes(copying: [0xDE, 0xAD, 0xBE, 0xEF])))
    }

    @Test("ConstantTime.equals compares length and every byte")
    func constantTime() {
        let a = Self.pattern(64)
        #expect(ConstantTime.equals(a, a))
        #expect(ConstantTime.equals([UInt8](), [UInt8]()))
        #expect(ConstantTime.equals(a, a[0..<64]))
        for index in [0, 31, 63] {
            var b = a
            b[index] ^= 0x01
            #expect(!ConstantTime.equals(a, b), "differs at \(index)")
        }
        #expect(!ConstantTime.equals(a, Array(a.dropLast())))
        #expect(!ConstantTime.equals(Array(a.dropLast()), a))
        #expect(!ConstantTime.equals([UInt8](), [0]))
    }

    // MARK: HKDF

    @Test("HKDF: output length must be 1...255*HashLen")
    func hkdfLimits() throws {
        let ikm = SecureBytes(copying: Self.pattern(32))
        #expect(try HKDF.deriveKey(.sha256, inputKeyMaterial: ikm, salt: [], info: [], length: 1).count == 1)
        #expect(try HKDF.deriveKey(.sha256, inputKeyMaterial: ikm, salt: [], info: [], length: 255 * 32).count == 8160)
        #expect(Self.code { try HKDF.deriveKey(.sha256, inputKeyMaterial: ikm, salt: [], info: [], length: 8161) } == .invalidParameter)
        #expect(Self.code { try HKDF.deriveKey(.sha256, inputKeyMaterial: ikm, salt: [], info: [], length: 0) } == .invalidParameter)
        #expect(Self.code { try HKDF.deriveKey(.sha256, inputKeyMaterial: ikm, salt: [], info: [], length: -1) } == .invalidParameter)
        #expect(try HKDF.expand(.sha512, pseudorandomKey: ikm, info: [], length: 255 * 64).count == 16320)
        #expect(Self.code { try HKDF.expand(.sha512, pseudorandomKey: ikm, info: [], length: 16321) } == .invalidParameter)
        // Extract-then-expand equals deriveKey; a longer output extends a shorter one.
        let prk = try HKDF.extract(.sha256, salt: Array("salt".utf8), inputKeyMaterial: ikm)
        let long = try HKDF.expand(.sha256, pseudorandomKey: prk, info: Array("info".utf8), length: 100).unsafeExportedBytes()
        let derived = try HKDF.deriveKey(.sha256, inputKeyMaterial: ikm, salt: Array("salt".utf8), info: Array("info".utf8), length: 40)
        #expect(derived.unsafeExportedBytes() == Array(long.prefix(40)))
    }

    // MARK: Chunked encryption

    static let chunkedLengths = [0, 1, 16383, 16384, 16385, 32768, 100_000]

    @Test("chunked encryption round-trips; wrong key or context is refused at the header", arguments: chunkedLengths)
    func chunkedRoundTrip(_ length: Int) throws {
        let key = SecureBytes(copying: Self.pattern(32, seed: 4))
        let context = Array("dataset=demo shard=3".utf8)
        let message = Self.pattern(length, seed: 6)
        let sealed = try ChunkedEncryption.seal(message, key: key, context: context)
        #expect(sealed.count == ChunkedEncryption.ciphertextLength(plaintextLength: length))
        #expect(sealed.count == 56 + length + (length / 16384 + 1) * 16)
        #expect(try ChunkedEncryption.open(sealed, key: key, context: context).unsafeExportedBytes() == message)

        // Two encryptions of the same message differ (random salt).
        #expect(try ChunkedEncryption.seal(message, key: key, context: context) != sealed)

        #expect(Self.code { try ChunkedEncryption.open(sealed, key: key, context: context + [0]) } == .authenticationFailed)
        #expect(Self.code { try ChunkedEncryption.open(sealed, key: key, context: []) } == .authenticationFailed)
        let wrongKey = SecureBytes(copying: Self.pattern(32, seed: 5))
        #expect(Self.code { try ChunkedEncryption.open(sealed, key: wrongKey, context: context) } == .authenticationFailed)
        #expect(Self.code { try ChunkedEncryption.open(sealed, key: SecureBytes(copying: Self.pattern(16)), context: context) } == .invalidParameter)
        // The header check happens before any chunk: the same error with the body removed.
        let headerOnly = Array(sealed.prefix(ChunkedEncryption.headerLength))
        #expect(Self.code { try ChunkedEncryption.open(headerOnly, key: wrongKey, context: context) } == .authenticationFailed)

        // Truncation, a trailing byte and a flipped body byte are all refused.
        #expect(Self.code { try ChunkedEncryption.open(Array(sealed.dropLast()), key: key, context: context) } != nil)
        #expect(Self.code { try ChunkedEncryption.open(sealed + [0], key: key, context: context) } != nil)
        var flipped = sealed
        flipped[ChunkedEncryption.headerLength + length / 2] ^= 0x04
        #expect(Self.code { try ChunkedEncryption.open(flipped, key: key, context: context) } == .authenticationFailed)

        // The streaming opener agrees, fed in uneven pieces.
        let stream = ChunkedStreamOpener(key: key, context: context)
        var output: [UInt8] = []
        try sealed.withUnsafeBytes { all in
            var offset = 0
            var step = 1
            while offset < all.count {
                let end = Swift.min(offset + step, all.count)
                try stream.update(UnsafeRawBufferPointer(rebasing: all[offset..<end])) { output += $0 }
                offset = end
                step = step * 3 + 1
            }
        }
        try stream.finish { output += $0 }
        #expect(output == message)
    }
}
