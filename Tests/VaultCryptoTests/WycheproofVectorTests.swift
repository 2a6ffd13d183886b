import Foundation
import Testing
import VaultCore

/// Runs every published vector file through `WycheproofRunner` and checks that nothing
/// failed and that every vector was accounted for, with the exact counts.
@Suite("Published test vectors: Wycheproof and RFC known answers")
struct WycheproofVectorTests {
    // One test per file (not a parameterized test: a cancelled test case is reported as
    // passed, which would hide that the file was missing).

    @Test("HMAC-SHA-256: 174 Wycheproof vectors pass, full and truncated tags")
    func hmacSHA256() throws { try expectClean("wycheproof/hmac_sha256_test.json", total: 174) }

    @Test("HKDF-SHA-256: 86 Wycheproof vectors pass, the 3 oversized outputs refused")
    func hkdfSHA256() throws { try expectClean("wycheproof/hkdf_sha256_test.json", total: 86) }

    @Test("AES-KW (RFC 3394): 165 Wycheproof vectors pass")
    func aesKeyWrap() throws { try expectClean("wycheproof/aes_wrap_test.json", total: 165) }

    @Test("AES-KWP (RFC 5649): 254 Wycheproof vectors pass")
    func aesKeyWrapPadded() throws { try expectClean("wycheproof/aes_kwp_test.json", total: 254) }

    @Test("Cobblestone-256: 35 C2SP vectors pass, 0 skipped")
    func cobblestone() throws { try expectClean("wycheproof/c2sp_chunked_encryption_aes_256_gcm_test.json", total: 35) }

    @Test("RFC 4231: 7 HMAC-SHA-256 test cases pass")
    func rfc4231() throws { try expectClean("rfc/rfc4231_hmac_sha256.json", total: 7) }

    @Test("RFC 5869: 3 HKDF-SHA-256 test cases pass, PRK and OKM")
    func rfc5869() throws { try expectClean("rfc/rfc5869_hkdf_sha256.json", total: 3) }

    /// Every vector in the file passes; none is skipped or missing.
    func expectClean(_ path: String, total: Int, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let url = try TestData.require(path, sourceLocation: sourceLocation)
        let report = try WycheproofRunner.run(file: url.path)
        #expect(report.failed == 0, "\(report)\n\(report.failures.joined(separator: "\n"))", sourceLocation: sourceLocation)
        #expect(report.skipped == 0, "\(report.skips.joined(separator: "\n"))", sourceLocation: sourceLocation)
        #expect(report.passed == total, "\(report)", sourceLocation: sourceLocation)
        #expect(report.total == total, sourceLocation: sourceLocation)
        if let declared = report.declaredTests { #expect(declared == total, sourceLocation: sourceLocation) }
    }

    @Test("AES-GCM: all 316 vectors accounted for; only the 6 zero-length and 3 over-128-byte IVs skipped, each confirmed rejected")
    func aesGCM() throws {
        let url = try TestData.require("wycheproof/aes_gcm_test.json")
        let report = try WycheproofRunner.run(file: url.path)
        #expect(report.total == 316)
        #expect(report.declaredTests == 316)
        #expect(report.skipped == 9)
        #expect(report.skips.filter { $0.contains("ZeroLengthIv") && $0.contains("zero-length IV") }.count == 6,
                "\(report.skips.joined(separator: "\n"))")
        #expect(report.skips.filter { $0.contains("LongIv") && $0.contains("above AESGCM's 128-byte limit") }.count == 3,
                "\(report.skips.joined(separator: "\n"))")
        #expect(report.failed == 0, "\(report.failures.joined(separator: "\n"))")
        #expect(report.passed == 307)
    }

    @Test("the built-in known answers all pass")
    func builtInKnownAnswers() {
        let reports = BuiltInKnownAnswers.run()
        #expect(reports.map(\.total) == [7, 3, 2, 2])
        for report in reports {
            #expect(report.isSuccess, "\(report)\n\(report.failures.joined(separator: "\n"))")
            #expect(report.skipped == 0)
        }
    }

    // MARK: The runner can fail

    @Test("a valid HMAC tag altered in a copy of the file makes exactly that vector fail")
    func alteredTagFails() throws {
        let url = try TestData.require("wycheproof/hmac_sha256_test.json")
        let copy = try Self.modifiedCopy(of: url) { test in
            guard test["tcId"] as? Int == 1, let tag = test["tag"] as? String else { return }
            test["tag"] = String(tag.dropLast()) + (tag.hasSuffix("0") ? "1" : "0")
        }
        defer { try? FileManager.default.removeItem(at: copy.deletingLastPathComponent()) }
        let report = try WycheproofRunner.run(file: copy.path)
        #expect(report.failed == 1)
        #expect(report.passed == 173)
        #expect(report.failures.first?.hasPrefix("tcId 1 ") == true, "\(report.failures)")
    }

    @Test("an altered AES-GCM tag, and chunked vectors with flipped results, fail")
    func alteredVectorsFail() throws {
        let gcm = try TestData.require("wycheproof/aes_gcm_test.json")
        let gcmCopy = try Self.modifiedCopy(of: gcm) { test in
            guard test["tcId"] as? Int == 1, let tag = test["tag"] as? String else { return }
            test["tag"] = "ff" + tag.dropFirst(2)
        }
        defer { try? FileManager.default.removeItem(at: gcmCopy.deletingLastPathComponent()) }
        let gcmReport = try WycheproofRunner.run(file: gcmCopy.path)
        let failing = Set(gcmReport.failures.compactMap { Int($0.dropFirst("tcId ".count).prefix { $0.isNumber }) })
        #expect(failing == [1], "\(gcmReport.failures)")
        #expect(gcmReport.failed == 1)

        let chunked = try TestData.require("wycheproof/c2sp_chunked_encryption_aes_256_gcm_test.json")
        let chunkedCopy = try Self.modifiedCopy(of: chunked) { test in
            switch test["tcId"] as? Int {
            case 2: test["result"] = "invalid"  // a valid message decrypts, so "must fail" fails
            case 12: test["result"] = "valid"   // a corrupted final chunk must not decrypt
            case 14: test["msgLength"] = 0      // the stream emits a 16 KiB prefix before failing
            default: break
            }
        }
        defer { try? FileManager.default.removeItem(at: chunkedCopy.deletingLastPathComponent()) }
        let report = try WycheproofRunner.run(file: chunkedCopy.path)
        #expect(report.failed == 3, "\(report.failures)")
        #expect(report.passed == 32)
        #expect(report.failures.contains { $0.hasPrefix("tcId 14 ") && $0.contains("more than the 0-byte valid prefix") },
                "\(report.failures)")
    }

    @Test("a file of an unsupported kind is refused, not silently passed")
    func unsupportedFile() throws {
        let json = #"{"algorithm": "ChaCha20-Poly1305", "schema": "aead_test_schema_v1.json", "numberOfTests": 0, "testGroups": []}"#
        #expect(throws: (any Error).self) { try WycheproofRunner.run(json: Array(json.utf8), name: "chacha.json") }
        #expect(throws: (any Error).self) { try WycheproofRunner.run(json: Array("not json".utf8), name: "junk.json") }
    }

    /// Writes a copy of a vector file, with `change` applied to every test, to a new
    /// temporary folder.
    static func modifiedCopy(of url: URL, _ change: (inout [String: Any]) -> Void) throws -> URL {
        var root = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
        var groups = try #require(root["testGroups"] as? [[String: Any]])
        for g in groups.indices {
            var tests = try #require(groups[g]["tests"] as? [[String: Any]])
            for t in tests.indices { change(&tests[t]) }
            groups[g]["tests"] = tests
        }
        root["testGroups"] = groups
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("vectors-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let copy = folder.appendingPathComponent(url.lastPathComponent)
        try JSONSerialization.data(withJSONObject: root).write(to: copy)
        return copy
    }
}
