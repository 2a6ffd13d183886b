import Foundation
import VaultCrypto

/// Files the `policy` and `csv` targets parse: one folder per user, reused by every run, and
/// each file removed after it is parsed.
let fuzzScratchFolder = NSTemporaryDirectory() + "/shardvault-fuzz-scratch-\(getuid())"

/// Entry points for fuzzing every parser of untrusted input (Fuzz/, scripts/fuzz.sh): each
/// takes arbitrary bytes and must return or throw, never crash, hang or trap. Errors are the
/// expected outcome and are discarded.
public enum FuzzTargets {
    public static let names = ["job-spec", "policy", "shard-header", "manifest", "audit-entry", "checkpoint", "csv", "fhir-resource", "fhir-bundle",
                                    "plaintext"]

    /// State reused across runs of one process (a fuzzer calls `run` millions of times).
    final class Scratch: @unchecked Sendable {
        // Used under `lock` only: the tape and the scratch files are shared, and the tests
        // run several targets at once (libFuzzer runs one thread).
        let lock = NSLock()
        let tape = JSONTape(capacity: 1 << 16)
        let folder: String = {
            try? FileManager.default.createDirectory(atPath: fuzzScratchFolder, withIntermediateDirectories: true)
            return fuzzScratchFolder
        }()
        let verifier = try? NoteVerifier(name: "fuzz", publicKey: [UInt8](repeating: 7, count: 32))
        /// A spec that reads every column the engine can read.
        let engineSpec = try? JobSpec.parse(#"{"dataset": "fuzz", "purpose": "HRESCH", "asOf": "2024-01-01", "cohort": {"conditions": {"anyOf": ["0"]}, "#
                                            + #""medications": {"anyOf": ["0"]}, "observations": [{"code": "0-0", "min": 0}]}, "groupBy": ["sex", "state"], "#
                                            + #""measures": [{"name": "n", "count": "patients"}, {"name": "v", "observation": "0-0", "stats": ["mean"]}]}"#,
                                            file: "fuzz")
    }
    static let scratch = Scratch()

    public static func run(_ name: String, _ data: UnsafeRawBufferPointer) {
        scratch.lock.lock()
        defer { scratch.lock.unlock() }
        let bytes = [UInt8](data)
        let text = String(decoding: bytes, as: UTF8.self)
        switch name {
        case "job-spec":
            _ = try? JobSpec.parse(text, file: "fuzz")
        case "policy":
            let path = scratch.folder + "/policy/fuzz.yaml"
            try? FileManager.default.createDirectory(atPath: scratch.folder + "/policy", withIntermediateDirectories: true)
            guard (try? Data(bytes).write(to: URL(fileURLWithPath: path))) != nil else { return }
            defer { unlink(path) }
            _ = try? PolicySet.load(directory: scratch.folder + "/policy")
        case "shard-header":
            var block = Array(bytes.prefix(ShardHeader.blockSize))
            block += [UInt8](repeating: 0, count: ShardHeader.blockSize - block.count)
            _ = try? ShardHeader.parse(block: block)
        case "manifest":
            if let (body, _) = try? ManifestFile.split(bytes, path: "fuzz") {
                _ = try? JSONDecoder().decode(Manifest.self, from: Data(body))
            }
        case "audit-entry":
            let line = bytes.split(separator: 0x0A, omittingEmptySubsequences: false).first.map(Array.init) ?? []
            _ = try? line.withUnsafeBufferPointer { try AuditEntry.parse($0, tape: scratch.tape) }
        case "checkpoint":
            _ = try? Checkpoint.parse(text: text)
            if let verifier = scratch.verifier { _ = try? SignedNote.open(text, verifier: verifier) }
        case "csv":
            let path = scratch.folder + "/fuzz.csv"
            guard (try? Data(bytes).write(to: URL(fileURLWithPath: path))) != nil else { return }
            defer { unlink(path) }
            guard let csv = try? CSVReader(path: path, blockSize: 4096) else { return }
            while (try? csv.next()) == true {
                for i in 0..<csv.fields.count { _ = csv.string(i) }
            }
        case "plaintext":
            // A shard's decrypted plaintext: the column decoder, in full, compact and checking
            // only. Compact and widened columns must agree, and so must the engine over them.
            let wide = try? DecodedShard.decode(data)
            let compact = try? DecodedShard.decode(data, compact: true)
            precondition((wide == nil) == (compact == nil), "compact and full decoding disagree on whether a plaintext is valid")
            _ = try? DecodedShard.validate(data)
            if let wide, let compact, let spec = scratch.engineSpec {
                precondition((try? AnalysisEngine.evaluate(spec, shard: wide)) == (try? AnalysisEngine.evaluate(spec, shard: compact)),
                             "the engine gives different partials over compact and widened columns")
            }
        case "fhir-resource", "fhir-bundle":
            guard (try? scratch.tape.parse(data)) != nil else { return }
            let root = scratch.tape.root
            let mapper = FHIRMapper(pseudonym: { _ in [UInt8](repeating: 1, count: 16) })
            var out: [ClinicalRecord] = []
            var resources: [(JSONTape.Value, String?)] = []
            if name == "fhir-bundle" {
                var i = 0
                while let entry = root["entry"]?[i] {
                    if let resource = entry["resource"] { resources.append((resource, entry["fullUrl"]?.string)) }
                    i += 1
                }
            } else {
                resources.append((root, nil))
            }
            for (resource, fullUrl) in resources {
                guard let type = resource["resourceType"]?.string, FHIRMapper.ingestedTypes.contains(type) else { continue }
                try? mapper.map(resource, type: type, fullUrl: fullUrl, references: FHIRMapper.References(), into: &out)
            }
        default:
            break
        }
    }
}
