import VaultCrypto

/// The checks applied to one vector of each kind; shared by the file runner and the
/// built-in known answers.
enum VectorChecks {
    /// A vector field that is missing or not hex.
    struct BadField: Error, CustomStringConvertible {
        let description: String
    }

    static func check(_ test: VectorTest, kind: WycheproofRunner.Kind, group: VectorGroup?) -> VectorOutcome {
        guard ["valid", "invalid", "acceptable"].contains(test.result) else {
            return .fail("unknown result '\(test.result)'")
        }
        do {
            switch kind {
            case .aesGCM: return try aesGCM(test)
            case .hmacSHA256: return try hmac(test, group: group)
            case .hkdfSHA256: return try hkdf(test)
            case .keyWrap(let mode): return try keyWrap(test, mode: mode)
            case .chunked: return try chunked(test)
            }
        } catch let error as BadField {
            return .fail("malformed vector: \(error)")
        } catch {
            return .fail("unexpected error: \(error)")
        }
    }

    // MARK: AES-GCM

    static func aesGCM(_ t: VectorTest) throws -> VectorOutcome {
        let key = try bytes(t.key, "key")
        let iv = try bytes(t.iv, "iv")
        let aad = try bytes(t.aad, "aad")
        let msg = try bytes(t.msg, "msg")
        let sealed = try bytes(t.ct, "ct") + bytes(t.tag, "tag")
        if iv.isEmpty || iv.count > AESGCM.maximumNonceLength {
            // The schema lets an implementation reject a zero-length IV (ZeroLengthIv) and
            // restrict the range of long IVs (LongIv: "some implementations restrict the
            // range of the IV sizes"); AESGCM takes 1 to 128 bytes. The skip is only honest
            // if AESGCM really refuses the IV.
            do {
                let gcm = try AESGCM(key: SecureBytes(copying: key))
                _ = try gcm.open(nonce: iv, sealed: sealed, aad: aad)
                return .fail("an IV of \(iv.count) bytes was accepted")
            } catch {
                return .skip(iv.isEmpty ? "zero-length IV, which AESGCM rejects (allowed by the schema): \(error)"
                                        : "IV of \(iv.count) bytes, above AESGCM's 128-byte limit, which it rejects (allowed by the schema's LongIv note): \(error)")
            }
        }
        let gcm: AESGCM
        do {
            gcm = try AESGCM(key: SecureBytes(copying: key))
        } catch {
            return t.result == "valid" ? .fail("key of \(key.count) bytes rejected: \(error)") : .pass
        }
        switch t.result {
        case "valid":
            let produced: [UInt8]
            do { produced = try gcm.seal(nonce: iv, plaintext: msg, aad: aad) } catch {
                return .fail("encryption failed: \(error)")
            }
            guard produced == sealed else {
                return .fail("encryption gave ct||tag \(hex(produced)), expected \(hex(sealed))")
            }
            let opened: SecureBytes
            do { opened = try gcm.open(nonce: iv, sealed: sealed, aad: aad) } catch {
                return .fail("decryption failed: \(error)")
            }
            guard opened.unsafeExportedBytes() == msg else { return .fail("decryption gave the wrong plaintext") }
            return .pass
        case "invalid":
            if (try? gcm.open(nonce: iv, sealed: sealed, aad: aad)) != nil {
                return .fail("decryption succeeded but must fail")
            }
            return .pass
        default:
            _ = try? gcm.open(nonce: iv, sealed: sealed, aad: aad)
            return .pass
        }
    }

    // MARK: HMAC-SHA-256

    static func hmac(_ t: VectorTest, group: VectorGroup?) throws -> VectorOutcome {
        let key = try bytes(t.key, "key")
        let msg = try bytes(t.msg, "msg")
        let tag = try bytes(t.tag, "tag")
        let tagBits = t.tagSizeBits ?? group?.tagSize ?? 256
        guard tagBits % 8 == 0, (128...256).contains(tagBits) else {
            return t.result == "valid" ? .fail("tag size of \(tagBits) bits is not supported") : .pass
        }
        let secret = SecureBytes(copying: key)
        // A tag of the wrong length for its group is rejected before comparing prefixes.
        let verified = tag.count == tagBits / 8 && ((try? HMACSHA256.verify(key: secret, msg, tag: tag)) ?? false)
        switch t.result {
        case "valid":
            let full = try HMACSHA256.authenticate(key: secret, msg)
            guard Array(full.prefix(tagBits / 8)) == tag else {
                return .fail("HMAC is \(hex(Array(full.prefix(tagBits / 8)))), expected \(hex(tag))")
            }
            return verified ? .pass : .fail("verify rejected a valid tag")
        case "invalid":
            return verified ? .fail("verify accepted an invalid tag") : .pass
        default:
            return .pass
        }
    }

    // MARK: HKDF-SHA-256

    static func hkdf(_ t: VectorTest) throws -> VectorOutcome {
        let ikm = SecureBytes(copying: try bytes(t.ikm, "ikm"))
        let salt = try bytes(t.salt, "salt")
        let info = try bytes(t.info, "info")
        guard let size = t.size else { throw BadField(description: "missing field 'size'") }
        switch t.result {
        case "valid":
            let okm = try bytes(t.okm, "okm")
            let derived: [UInt8]
            do { derived = try HKDF.deriveKey(.sha256, inputKeyMaterial: ikm, salt: salt, info: info, length: size).unsafeExportedBytes() } catch {
                return .fail("derivation of \(size) bytes failed: \(error)")
            }
            guard derived == okm else { return .fail("OKM is \(hex(derived)), expected \(hex(okm))") }
            if let prkHex = t.prk {
                let prk = try bytes(prkHex, "prk")
                let extracted = try HKDF.extract(.sha256, salt: salt, inputKeyMaterial: ikm)
                guard extracted.unsafeExportedBytes() == prk else {
                    return .fail("PRK is \(hex(extracted.unsafeExportedBytes())), expected \(hex(prk))")
                }
                let expanded = try HKDF.expand(.sha256, pseudorandomKey: SecureBytes(copying: prk), info: info, length: size)
                guard expanded.unsafeExportedBytes() == okm else { return .fail("expand(PRK) does not give the OKM") }
            }
            return .pass
        case "invalid":
            if (try? HKDF.deriveKey(.sha256, inputKeyMaterial: ikm, salt: salt, info: info, length: size)) != nil {
                return .fail("derivation of \(size) bytes succeeded but must fail")
            }
            return .pass
        default:
            return .pass
        }
    }

    // MARK: AES key wrap

    static func keyWrap(_ t: VectorTest, mode: AESKeyWrap.Mode) throws -> VectorOutcome {
        let kek = SecureBytes(copying: try bytes(t.key, "key"))
        let msg = try bytes(t.msg, "msg")
        let ct = try bytes(t.ct, "ct")
        // A KEK or input size that AESKeyWrap refuses is a failed unwrap.
        let unwrapped = try? AESKeyWrap.unwrap(mode, kek: kek, wrapped: ct)
        switch t.result {
        case "valid":
            let wrapped: [UInt8]
            do { wrapped = try AESKeyWrap.wrap(mode, kek: kek, key: SecureBytes(copying: msg)) } catch {
                return .fail("wrapping failed: \(error)")
            }
            guard wrapped == ct else { return .fail("wrapping gave \(hex(wrapped)), expected \(hex(ct))") }
            guard let unwrapped else { return .fail("unwrapping a valid wrapped key failed") }
            guard unwrapped.unsafeExportedBytes() == msg else { return .fail("unwrapping gave the wrong key") }
            return .pass
        case "invalid":
            return unwrapped == nil ? .pass : .fail("unwrapping succeeded but must fail")
        default:
            return .pass
        }
    }

    // MARK: Cobblestone-256 (C2SP chunked encryption)

    static func chunked(_ t: VectorTest) throws -> VectorOutcome {
        let key = SecureBytes(copying: try bytes(t.key, "key"))
        let context = try bytes(t.ctx, "ctx")
        let ct: [UInt8]
        do { ct = try Inflate.zlib(try bytes(t.ct, "ct")) } catch let error as DecompressionError {
            throw BadField(description: "field 'ct' does not decompress: \(error)")
        }
        var problems: [String] = []
        if t.result == "valid" {
            checkValidChunked(t, key: key, context: context, ct: ct, problems: &problems)
        } else if t.result == "invalid" {
            checkInvalidChunked(t, key: key, context: context, ct: ct, problems: &problems)
        } else {
            return .pass
        }
        return problems.isEmpty ? .pass : .fail(problems.joined(separator: "; "))
    }

    private static func checkValidChunked(_ t: VectorTest, key: SecureBytes, context: [UInt8], ct: [UInt8], problems: inout [String]) {
        let header = ChunkedEncryption.headerLength
        guard let length = t.msgLength, let sha = try? bytes(t.msgSha512, "msgSha512"),
              let aeadKey = try? bytes(t.aeadKey, "aeadKey"), let baseNonce = try? bytes(t.baseNonce, "baseNonce") else {
            problems.append("valid vector lacks msgLength, msgSha512, aeadKey or baseNonce")
            return
        }
        // 1. Whole-message decryption.
        let plaintext: [UInt8]
        do {
            plaintext = try ChunkedEncryption.open(ct, key: key, context: context).unsafeExportedBytes()
        } catch {
            problems.append("decryption failed: \(error)")
            return
        }
        if plaintext.count != length { problems.append("decryption gave \(plaintext.count) bytes, expected \(length)") }
        if Digest.sha512(plaintext) != sha { problems.append("SHA-512 of the plaintext does not match msgSha512") }

        // 2. Key derivation from the salt.
        do {
            let keys = try ChunkedEncryption.deriveKeys(key: key, salt: Array(ct[0..<ChunkedEncryption.saltLength]), context: context)
            if keys.aeadKey.unsafeExportedBytes() != aeadKey { problems.append("derived AEAD key differs from aeadKey") }
            if keys.baseNonce != baseNonce { problems.append("derived base nonce differs from baseNonce") }
            if keys.commitment != Array(ct[ChunkedEncryption.saltLength..<header]) {
                problems.append("derived commitment differs from the header's")
            }
        } catch {
            problems.append("key derivation failed: \(error)")
        }

        let body = Array(ct[header...])
        body.withUnsafeBytes { body in
            // 3. Raw mode over the body.
            do {
                let raw = try ChunkedOpener(rawAEADKey: SecureBytes(copying: aeadKey), baseNonce: baseNonce)
                let opened = try raw.openAll(body: body).unsafeExportedBytes()
                if opened != plaintext { problems.append("raw mode decrypted different bytes") }
            } catch {
                problems.append("raw mode failed: \(error)")
            }
            // 4. Random access: each chunk alone (last first), and 5. the length check.
            do {
                let opener = try ct.withUnsafeBytes {
                    try ChunkedOpener(key: key, context: context, header: UnsafeRawBufferPointer(rebasing: $0[0..<header]))
                }
                let layout = try ChunkedEncryption.Layout(bodyLength: body.count)
                if layout.plaintextLength != length { problems.append("layout gives a length of \(layout.plaintextLength)") }
                let scratch = SecureBytes(zeroedCount: ChunkedEncryption.chunkSize)
                for index in (0..<layout.chunkCount).reversed() {
                    let n = try scratch.withUnsafeMutableBytes {
                        try opener.openChunk(index: index, sealed: UnsafeRawBufferPointer(rebasing: body[layout.range(ofChunk: index)]),
                                             isFinal: index == layout.chunkCount - 1, into: $0)
                    }
                    let start = Int(index) * ChunkedEncryption.chunkSize
                    let matches = start + n <= plaintext.count
                        && scratch.withUnsafeBytes { Array($0[0..<n]) } == Array(plaintext[start..<start + n])
                    if !matches {
                        problems.append("chunk \(index) opened alone gave the wrong bytes")
                        break
                    }
                }
                let authenticated = try opener.authenticateLength(body: body)
                if authenticated != length { problems.append("authenticateLength gave \(authenticated), expected \(length)") }
            } catch {
                problems.append("random access failed: \(error)")
            }
        }
        // 6. Streaming in 1000-byte pieces.
        let stream = streamOpen(ct, key: key, context: context)
        if let error = stream.error { problems.append("streaming decryption failed: \(error)") }
        if stream.emitted != length { problems.append("streaming gave \(stream.emitted) bytes, expected \(length)") }
        if stream.sha512 != sha { problems.append("streaming output's SHA-512 does not match msgSha512") }
    }

    private static func checkInvalidChunked(_ t: VectorTest, key: SecureBytes, context: [UInt8], ct: [UInt8], problems: inout [String]) {
        let header = ChunkedEncryption.headerLength
        let headerFailure = t.has("HeaderFailure")
        // 1. Whole-message decryption must fail.
        if (try? ChunkedEncryption.open(ct, key: key, context: context)) != nil {
            problems.append("decryption succeeded but must fail")
        }
        // 2. The header: refused for HeaderFailure vectors (before any chunk), accepted
        //    otherwise, in which case the length check must fail unless the final chunk is valid.
        let body = ct.count > header ? Array(ct[header...]) : []
        do {
            let opener = try ct.withUnsafeBytes {
                try ChunkedOpener(key: key, context: context, header: UnsafeRawBufferPointer(rebasing: $0[0..<Swift.min(header, ct.count)]))
            }
            if headerFailure {
                problems.append("the header was accepted but must be rejected")
            } else {
                let lengthAuthenticated = (try? body.withUnsafeBytes { try opener.authenticateLength(body: $0) }) != nil
                if lengthAuthenticated && !t.has("ValidFinalChunk") {
                    problems.append("authenticateLength succeeded but must fail")
                }
            }
        } catch {
            if !headerFailure { problems.append("the header was rejected (\(error)) but only the body is invalid") }
        }
        if !headerFailure, let aeadKey = try? bytes(t.aeadKey, "aeadKey"), let baseNonce = try? bytes(t.baseNonce, "baseNonce") {
            if let keys = try? ChunkedEncryption.deriveKeys(key: key, salt: Array(ct.prefix(ChunkedEncryption.saltLength)), context: context) {
                if keys.aeadKey.unsafeExportedBytes() != aeadKey || keys.baseNonce != baseNonce {
                    problems.append("derived AEAD key or base nonce differs from the vector's")
                }
            } else {
                problems.append("key derivation failed")
            }
            // 3. Raw mode must fail too.
            let rawOpened = try? body.withUnsafeBytes {
                try ChunkedOpener(rawAEADKey: SecureBytes(copying: aeadKey), baseNonce: baseNonce).openAll(body: $0)
            }
            if rawOpened != nil { problems.append("raw mode decryption succeeded but must fail") }
        }
        // 4. Streaming: at most the valid prefix comes out, then it fails and keeps failing.
        let allowed = t.msgLength ?? 0
        let stream = streamOpen(ct, key: key, context: context)
        if stream.error == nil { problems.append("streaming decryption succeeded but must fail") }
        if stream.emitted > allowed {
            problems.append("streaming emitted \(stream.emitted) bytes before failing, more than the \(allowed)-byte valid prefix")
        }
        if let length = t.msgLength, stream.emitted == length, let sha = try? bytes(t.msgSha512, "msgSha512"), stream.sha512 != sha {
            problems.append("the \(length) bytes emitted before the failure do not match msgSha512")
        }
        if stream.error != nil && !stream.keptFailing { problems.append("the stream opener did not keep failing after its error") }
    }

    private struct StreamResult {
        var emitted = 0
        var sha512: [UInt8] = []
        var error: (any Error)?
        var keptFailing = false
    }

    /// Feeds `ct` to a `ChunkedStreamOpener` in 1000-byte pieces.
    private static func streamOpen(_ ct: [UInt8], key: SecureBytes, context: [UInt8]) -> StreamResult {
        var result = StreamResult()
        let stream = ChunkedStreamOpener(key: key, context: context)
        guard let digest = try? Digest(.sha512) else {
            result.error = BadField(description: "cannot create a SHA-512 context")
            return result
        }
        let emit: (UnsafeRawBufferPointer) -> Void = { piece in
            result.emitted += piece.count
            digest.update(piece)
        }
        ct.withUnsafeBytes { all in
            do {
                var offset = 0
                while offset < all.count {
                    let end = Swift.min(offset + 1000, all.count)
                    try stream.update(UnsafeRawBufferPointer(rebasing: all[offset..<end]), emit: emit)
                    offset = end
                }
                try stream.finish(emit: emit)
            } catch {
                result.error = error
            }
        }
        result.sha512 = digest.finalize()
        if result.error != nil {
            let one: [UInt8] = [0]
            let updateFails = (try? one.withUnsafeBytes { try stream.update($0) { _ in } }) == nil
            let finishFails = (try? stream.finish { _ in }) == nil
            result.keptFailing = updateFails && finishFails
        }
        return result
    }

    // MARK: Hex

    static func bytes(_ text: String?, _ field: String) throws -> [UInt8] {
        guard let text else { throw BadField(description: "missing field '\(field)'") }
        let utf8 = Array(text.utf8)
        guard utf8.count % 2 == 0 else { throw BadField(description: "field '\(field)' has an odd number of hex digits") }
        var out = [UInt8]()
        out.reserveCapacity(utf8.count / 2)
        var i = 0
        while i < utf8.count {
            guard let high = nibble(utf8[i]), let low = nibble(utf8[i + 1]) else {
                throw BadField(description: "field '\(field)' is not lowercase hex")
            }
            out.append(high << 4 | low)
            i += 2
        }
        return out
    }

    private static func nibble(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): return c - UInt8(ascii: "a") + 10
        default: return nil
        }
    }

    static func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        out.reserveCapacity(bytes.count * 2)
        for b in bytes {
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 0xF)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}
