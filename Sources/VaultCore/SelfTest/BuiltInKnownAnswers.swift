import VaultCrypto

/// Known-answer tests compiled into the binary, so that `shardvault selftest` can check the
/// crypto before anything else, with no test files at hand.
///
/// - RFC 4231 section 4, test cases 1-7 (HMAC-SHA-256; case 5 truncated to 128 bits).
/// - RFC 5869 appendix A, test cases 1-3 (HKDF-SHA-256, PRK and OKM).
/// - One AES-256-GCM vector: Wycheproof aes_gcm_test.json tcId 100.
/// - Cobblestone-256: Wycheproof c2sp_chunked_encryption_aes_256_gcm_test.json tcId 9
///   (non-empty context), and a two-chunk round trip with a fixed salt whose ciphertext was
///   frozen after the implementation passed all 35 published vectors (and was reproduced
///   independently with Python's `cryptography` package).
public enum BuiltInKnownAnswers {
    public static func run() -> [VectorFileReport] {
        [hmac(), hkdf(), aesGCM(), cobblestone()]
    }

    static let label = "built-in"

    private static func report(_ algorithm: String, _ kind: WycheproofRunner.Kind, _ tests: [VectorTest]) -> VectorFileReport {
        var report = VectorFileReport(file: label, algorithm: algorithm, declaredTests: tests.count)
        for test in tests { report.record(test.label, VectorChecks.check(test, kind: kind, group: nil)) }
        return report
    }

    // MARK: RFC 4231

    static func hmac() -> VectorFileReport {
        let aa131 = String(repeating: "aa", count: 131)
        return report("HMAC-SHA-256 (RFC 4231)", .hmacSHA256, [
            VectorTest(tcId: 1, comment: "RFC 4231 4.2 test case 1", key: "0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b",
                       msg: "4869205468657265",
                       tag: "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7", tagSizeBits: 256),
            VectorTest(tcId: 2, comment: "RFC 4231 4.3 test case 2", key: "4a656665",
                       msg: "7768617420646f2079612077616e7420666f72206e6f7468696e673f",
                       tag: "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843", tagSizeBits: 256),
            VectorTest(tcId: 3, comment: "RFC 4231 4.4 test case 3", key: "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                       msg: String(repeating: "dd", count: 50),
                       tag: "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe", tagSizeBits: 256),
            VectorTest(tcId: 4, comment: "RFC 4231 4.5 test case 4", key: "0102030405060708090a0b0c0d0e0f10111213141516171819",
                       msg: String(repeating: "cd", count: 50),
                       tag: "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b", tagSizeBits: 256),
            VectorTest(tcId: 5, comment: "RFC 4231 4.6 test case 5 (truncated to 128 bits)",
                       key: "0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c", msg: "546573742057697468205472756e636174696f6e",
                       tag: "a3b6167473100ee06e0c796c2955552b", tagSizeBits: 128),
            VectorTest(tcId: 6, comment: "RFC 4231 4.7 test case 6", key: aa131,
                       msg: "54657374205573696e67204c6172676572205468616e20426c6f636b2d53697a65204b6579202d2048617368204b6579204669727374",
                       tag: "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54", tagSizeBits: 256),
            VectorTest(tcId: 7, comment: "RFC 4231 4.8 test case 7", key: aa131,
                       msg: "5468697320697320612074657374207573696e672061206c6172676572207468616e20626c6f636b2d73697a65206b6579"
                           + "20616e642061206c6172676572207468616e20626c6f636b2d73697a6520646174612e20546865206b6579206e65656473"
                           + "20746f20626520686173686564206265666f7265206265696e6720757365642062792074686520484d414320616c676f72"
                           + "6974686d2e",
                       tag: "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2", tagSizeBits: 256),
        ])
    }

    // MARK: RFC 5869

    static func hkdf() -> VectorFileReport {
        report("HKDF-SHA-256 (RFC 5869)", .hkdfSHA256, [
            VectorTest(tcId: 1, comment: "RFC 5869 A.1 test case 1", ikm: "0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b",
                       salt: "000102030405060708090a0b0c", info: "f0f1f2f3f4f5f6f7f8f9", size: 42,
                       okm: "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865",
                       prk: "077709362c2e32df0ddc3f0dc47bba6390b6c73bb50f9c3122ec844ad7c2b3e5"),
            VectorTest(tcId: 2, comment: "RFC 5869 A.2 test case 2", ikm: sequenceHex(0x00, 80), salt: sequenceHex(0x60, 80),
                       info: sequenceHex(0xb0, 80), size: 82,
                       okm: "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c59045a99cac7827271cb41c65e590e09"
                           + "da3275600c2f09b8367793a9aca3db71cc30c58179ec3e87c14c01d5c1f3434f1d87",
                       prk: "06a6b88c5853361a06104c9ceb35b45cef760014904671014a193f40c15fc244"),
            VectorTest(tcId: 3, comment: "RFC 5869 A.3 test case 3 (empty salt and info)",
                       ikm: "0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b", salt: "", info: "", size: 42,
                       okm: "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8",
                       prk: "19ef24a32c717b167f33a91d6f648bdf96596776afdb6377ac434c1c293ccb04"),
        ])
    }

    /// Hex of `count` consecutive byte values starting at `first` (RFC 5869 case 2's inputs).
    private static func sequenceHex(_ first: Int, _ count: Int) -> String {
        VectorChecks.hex((0..<count).map { UInt8(truncatingIfNeeded: first + $0) })
    }

    // MARK: AES-256-GCM

    static func aesGCM() -> VectorFileReport {
        report("AES-256-GCM", .aesGCM, [
            VectorTest(tcId: 100, comment: "Wycheproof aes_gcm_test.json tcId 100 (AES-256, 96-bit IV)",
                       key: "b279f57e19c8f53f2f963f5f2519fdb7c1779be2ca2b3ae8e1128b7d6c627fc4", iv: "98bc2c7438d5cd7665d76f6e",
                       aad: "c0", msg: "fcc515b294408c8645c9183e3f4ecee5127846d1", ct: "eb5500e3825952866d911253f8de860c00831c81",
                       tag: "ecb660e1fb0541ec41e8d68a64141b3a"),
            // The same vector with the tag's last bit flipped must be refused.
            VectorTest(tcId: 101, comment: "tcId 100 with a modified tag", result: "invalid",
                       key: "b279f57e19c8f53f2f963f5f2519fdb7c1779be2ca2b3ae8e1128b7d6c627fc4", iv: "98bc2c7438d5cd7665d76f6e",
                       aad: "c0", msg: "fcc515b294408c8645c9183e3f4ecee5127846d1", ct: "eb5500e3825952866d911253f8de860c00831c81",
                       tag: "ecb660e1fb0541ec41e8d68a64141b3b"),
        ])
    }

    // MARK: Cobblestone-256

    static func cobblestone() -> VectorFileReport {
        let published = VectorTest(tcId: 9, comment: "Wycheproof c2sp_chunked_encryption_aes_256_gcm_test.json tcId 9 (non-empty context)",
                       key: "59454c4c4f57205355424d4152494e452059454c4c4f57205355424d4152494e",
                       ct: "78da004f00b0ffdbedaefc1c35dc6c0f22b743b03e488747166a51f33479e7ceb8b7e11cc0d2710f624a127501bc4aea7d0af6f8"
                           + "3cfe359b9e69415aa537f36adf86eb35b070475baa039bb7791432adbca49578bbd3010000ffff2fed280a",
                       ctx: "7465737420636f6e74657874", aeadKey: "580dd69d5b20db77593dd1d6d48cfc766f87f8256039a744647da02670e32e06",
                       baseNonce: "2baf384a0102fd69155740f4", msgLength: 7,
                       msgSha512: "e85f32a85f1d4f7c9b2d36d20eca8435d81253e7075e9dea069eb1b6da48daf92ef1797367b520d8a46c4f72cecb85b1"
                           + "daff8887fcb41721d39943d1952fc180")
        var result = VectorFileReport(file: label, algorithm: "Cobblestone-256", declaredTests: 2)
        result.record(published.label, VectorChecks.check(published, kind: .chunked, group: nil))
        result.record("fixed-salt round trip (17000 bytes, two chunks)", fixedSaltRoundTrip())
        return result
    }

    // Frozen answer for the fixed-salt round trip.
    static let roundTripHeader = "404142434445464748494a4b4c4d4e4f5051525354555657"
        + "6142085f353b5edfe96ae91d46ab9afbb65e2facd27186f0b4107ce12bf890ee"
    static let roundTripSHA256 = "38ddef78ac076b6b3078786eccc3dab9967e3195118bcc2089725ee1a9842419"
    static let roundTripLength = 17_088

    /// Key 00..1f, context "shardvault selftest v1", salt 40..57, message byte i = 31*i+7.
    static func fixedSaltRoundTrip() -> VectorOutcome {
        let key = SecureBytes(copying: (0..<32).map { UInt8($0) })
        let context = Array("shardvault selftest v1".utf8)
        let salt = (0x40..<0x58).map { UInt8($0) }
        let message = (0..<17_000).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
        do {
            let sealer = try ChunkedSealer(key: key, context: context, salt: salt)
            var ciphertext = sealer.header
            var buffer = [UInt8](repeating: 0, count: ChunkedEncryption.sealedChunkSize)
            var offset = 0
            while true {
                let length = Swift.min(ChunkedEncryption.chunkSize, message.count - offset)
                let isFinal = length < ChunkedEncryption.chunkSize
                let written = try message.withUnsafeBytes { m in
                    try buffer.withUnsafeMutableBytes { b in
                        try sealer.sealChunk(UnsafeRawBufferPointer(rebasing: m[offset..<offset + length]), isFinal: isFinal, into: b)
                    }
                }
                ciphertext += buffer[0..<written]
                offset += length
                if isFinal { break }
            }
            var problems: [String] = []
            if ciphertext.count != roundTripLength { problems.append("ciphertext is \(ciphertext.count) bytes, expected \(roundTripLength)") }
            if VectorChecks.hex(Array(ciphertext.prefix(ChunkedEncryption.headerLength))) != roundTripHeader {
                problems.append("header (salt and commitment) differs from the frozen answer")
            }
            if VectorChecks.hex(Digest.sha256(ciphertext)) != roundTripSHA256 {
                problems.append("SHA-256 of the ciphertext differs from the frozen answer")
            }
            let opened = try ChunkedEncryption.open(ciphertext, key: key, context: context)
            if opened.unsafeExportedBytes() != message { problems.append("decryption did not give the message back") }
            if (try? ChunkedEncryption.open(ciphertext, key: key, context: context + [0])) != nil {
                problems.append("decryption with another context succeeded")
            }
            return problems.isEmpty ? .pass : .fail(problems.joined(separator: "; "))
        } catch {
            return .fail("unexpected error: \(error)")
        }
    }
}
