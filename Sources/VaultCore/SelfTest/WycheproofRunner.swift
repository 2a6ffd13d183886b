import Foundation
import VaultCrypto

/// What running one file of test vectors showed.
///
/// Every vector is counted exactly once: as passed (every check held), failed (the reason
/// is in `failures`) or skipped (only for inputs the schema lets an implementation reject;
/// the reason is in `skips`). A skipped vector is never counted as passed.
public struct VectorFileReport: Sendable, CustomStringConvertible {
    /// The file's name (or a label for built-in answers).
    public let file: String
    public let algorithm: String
    /// `numberOfTests` as the file declares it, if it does.
    public let declaredTests: Int?
    public internal(set) var passed = 0
    public internal(set) var failed = 0
    public internal(set) var skipped = 0
    /// One line per failed vector: tcId, comment and what went wrong.
    public internal(set) var failures: [String] = []
    /// One line per skipped vector: tcId, comment and why.
    public internal(set) var skips: [String] = []

    public init(file: String, algorithm: String, declaredTests: Int? = nil) {
        self.file = file
        self.algorithm = algorithm
        self.declaredTests = declaredTests
    }

    /// Vectors run or skipped.
    public var total: Int { passed + failed + skipped }

    /// No failures, and every declared vector was found and accounted for.
    public var isSuccess: Bool { failed == 0 && (declaredTests == nil || declaredTests == total) }

    public var description: String {
        var text = "\(file) [\(algorithm)]: \(passed) passed, \(failed) failed, \(skipped) skipped"
        if let declaredTests, declaredTests != total { text += " (file declares \(declaredTests) tests, found \(total))" }
        return text
    }

    mutating func record(_ label: String, _ outcome: VectorOutcome) {
        switch outcome {
        case .pass:
            passed += 1
        case .fail(let reason):
            failed += 1
            failures.append("\(label): \(reason)")
        case .skip(let reason):
            skipped += 1
            skips.append("\(label): \(reason)")
        }
    }
}

enum VectorOutcome: Equatable {
    case pass
    case fail(String)
    case skip(String)
}

/// Runs published test vectors (Wycheproof v1 JSON, and the transcribed RFC 4231 and
/// RFC 5869 files) against VaultCrypto.
///
/// The algorithm is chosen by the file's `schema` and `algorithm` and each group's `type`:
/// AeadTest (AES-GCM), MacTest (HMACSHA256), HkdfTest (HKDF-SHA-256), KeywrapTest
/// (AES-WRAP for RFC 3394 KW, AES-KWP for RFC 5649 KWP) and ChunkedEncryption
/// (Cobblestone-256); a file with top-level `tests` and algorithm HMAC-SHA-256 or
/// HKDF-SHA-256 is read as an RFC transcription. "valid" vectors must succeed and match,
/// "invalid" ones must fail, "acceptable" ones pass either way.
public enum WycheproofRunner {
    /// Runs every vector in the file at `path`.
    public static func run(file path: String) throws -> VectorFileReport {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw VaultError(.noInput, "cannot read test vector file", location: path, underlying: error)
        }
        return try run(json: [UInt8](data), name: URL(fileURLWithPath: path).lastPathComponent)
    }

    /// Runs every vector in a JSON document; `name` labels the report.
    public static func run(json: [UInt8], name: String) throws -> VectorFileReport {
        let file: VectorFile
        do {
            file = try JSONDecoder().decode(VectorFile.self, from: Data(json))
        } catch {
            throw VaultError(.dataError, "not a test vector file this runner understands", location: name, underlying: error)
        }
        let kind = try Kind(file: file, name: name)
        var report = VectorFileReport(file: name, algorithm: file.algorithm ?? kind.label, declaredTests: file.numberOfTests)
        if let tests = file.tests {
            for test in tests { report.record(test.label, VectorChecks.check(test, kind: kind, group: nil)) }
        }
        for group in file.testGroups ?? [] {
            guard kind.accepts(groupType: group.type) else {
                throw VaultError(.dataError, "test group of type '\(group.type ?? "none")' in a \(kind.label) file", location: name)
            }
            if case .chunked = kind {
                guard group.aead == nil || group.aead == "AEAD_AES_256_GCM", group.sha == nil || group.sha == "SHA-512" else {
                    throw VaultError(.dataError, "chunked encryption group with AEAD \(group.aead ?? "?") and hash \(group.sha ?? "?") is not Cobblestone-256",
                                     location: name)
                }
            }
            for test in group.tests { report.record(test.label, VectorChecks.check(test, kind: kind, group: group)) }
        }
        return report
    }

    /// Which checks a file's vectors get.
    enum Kind {
        case aesGCM, hmacSHA256, hkdfSHA256, keyWrap(AESKeyWrap.Mode), chunked

        var label: String {
            switch self {
            case .aesGCM: return "AES-GCM"
            case .hmacSHA256: return "HMAC-SHA-256"
            case .hkdfSHA256: return "HKDF-SHA-256"
            case .keyWrap(let mode): return mode == .kw ? "AES-KW" : "AES-KWP"
            case .chunked: return "Cobblestone-256"
            }
        }

        var groupType: String {
            switch self {
            case .aesGCM: return "AeadTest"
            case .hmacSHA256: return "MacTest"
            case .hkdfSHA256: return "HkdfTest"
            case .keyWrap: return "KeywrapTest"
            case .chunked: return "ChunkedEncryption"
            }
        }

        func accepts(groupType type: String?) -> Bool { type == nil || type == groupType }

        init(file: VectorFile, name: String) throws {
            let algorithm = file.algorithm ?? ""
            let schema = file.schema ?? ""
            let groupType = file.testGroups?.first?.type ?? ""
            func unsupported() -> VaultError {
                VaultError(.dataError, "unsupported test vectors: schema '\(schema)', algorithm '\(algorithm)', group type '\(groupType)'",
                           location: name)
            }
            switch (schema, groupType) {
            case ("aead_test_schema_v1.json", _), ("", "AeadTest"):
                guard algorithm == "AES-GCM" else { throw unsupported() }
                self = .aesGCM
            case ("mac_test_schema_v1.json", _), ("", "MacTest"):
                guard algorithm == "HMACSHA256" else { throw unsupported() }
                self = .hmacSHA256
            case ("hkdf_test_schema_v1.json", _), ("", "HkdfTest"):
                guard algorithm == "HKDF-SHA-256" else { throw unsupported() }
                self = .hkdfSHA256
            case ("keywrap_test_schema_v1.json", _), ("", "KeywrapTest"):
                switch algorithm {
                case "AES-WRAP", "AES-KW": self = .keyWrap(.kw)
                case "AES-KWP": self = .keyWrap(.kwp)
                default: throw unsupported()
                }
            case ("c2sp_chunked_encryption_schema.json", _), ("", "ChunkedEncryption"):
                guard algorithm == "Cobblestone-256" else { throw unsupported() }
                self = .chunked
            case ("", ""):
                // The RFC transcriptions: top-level tests, no schema.
                guard file.tests != nil else { throw unsupported() }
                switch algorithm {
                case "HMAC-SHA-256", "HMACSHA256": self = .hmacSHA256
                case "HKDF-SHA-256": self = .hkdfSHA256
                default: throw unsupported()
                }
            default:
                throw unsupported()
            }
        }
    }
}

// MARK: - File model

/// The parts of a Wycheproof v1 file (or an RFC transcription) the runner reads.
struct VectorFile: Decodable {
    var algorithm: String?
    var schema: String?
    var numberOfTests: Int?
    var testGroups: [VectorGroup]?
    var tests: [VectorTest]?
}

struct VectorGroup: Decodable {
    var type: String?
    var keySize: Int?
    var ivSize: Int?
    var tagSize: Int?
    var aead: String?
    var sha: String?
    var tests: [VectorTest]
}

/// One vector; which fields are present depends on the schema. Byte strings are hex.
struct VectorTest: Decodable, Sendable {
    var tcId: Int
    var comment: String?
    var flags: [String]?
    var result: String
    // AEAD, MAC, key wrap, chunked encryption
    var key: String?
    var iv: String?
    var aad: String?
    var msg: String?
    var ct: String?
    var tag: String?
    var tagSizeBits: Int?
    // HKDF
    var ikm: String?
    var salt: String?
    var info: String?
    var size: Int?
    var okm: String?
    var prk: String?
    // chunked encryption
    var ctx: String?
    var aeadKey: String?
    var baseNonce: String?
    var msgLength: Int?
    var msgSha512: String?

    init(tcId: Int, comment: String? = nil, flags: [String]? = nil, result: String = "valid", key: String? = nil,
         iv: String? = nil, aad: String? = nil, msg: String? = nil, ct: String? = nil, tag: String? = nil,
         tagSizeBits: Int? = nil, ikm: String? = nil, salt: String? = nil, info: String? = nil, size: Int? = nil,
         okm: String? = nil, prk: String? = nil, ctx: String? = nil, aeadKey: String? = nil, baseNonce: String? = nil,
         msgLength: Int? = nil, msgSha512: String? = nil) {
        self.tcId = tcId
        self.comment = comment
        self.flags = flags
        self.result = result
        self.key = key
        self.iv = iv
        self.aad = aad
        self.msg = msg
        self.ct = ct
        self.tag = tag
        self.tagSizeBits = tagSizeBits
        self.ikm = ikm
        self.salt = salt
        self.info = info
        self.size = size
        self.okm = okm
        self.prk = prk
        self.ctx = ctx
        self.aeadKey = aeadKey
        self.baseNonce = baseNonce
        self.msgLength = msgLength
        self.msgSha512 = msgSha512
    }

    var label: String {
        var text = "tcId \(tcId)"
        if let comment, !comment.isEmpty { text += " (\(comment))" }
        if let flags, !flags.isEmpty { text += " [\(flags.joined(separator: ", "))]" }
        return text
    }

    func has(_ flag: String) -> Bool { flags?.contains(flag) ?? false }
}
