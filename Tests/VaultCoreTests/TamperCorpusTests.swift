import Foundation
import Testing
import VaultCrypto
@testable import VaultCore

/// A generated corpus of tampered shards, manifests, results and audit logs. Every mutant
/// must be rejected by `verify`, by `verify --deep` and by an analysis (with no result
/// written); results by their reveal; audit logs by `audit verify`. The quick profile
/// (the default) samples positions inside large regions; SHARDVAULT_LONG=1 takes every byte
/// of every region but the chunk bodies (16 positions in each of every chunk).
@Suite("Tamper corpus", .serialized)
struct TamperCorpusTests {
    static let long = ProcessInfo.processInfo.environment["SHARDVAULT_LONG"] == "1"
    static let spec = #"{"dataset": "a", "purpose": "HRESCH", "asOf": "2020-01-01", "groupBy": ["sex"], "measures": [{"name": "patients", "count": "patients"}, {"name": "bmi", "observation": "39156-5", "stats": ["count", "mean", "p50"]}]}"#

    struct Mutant {
        var name: String
        var file: String
        var bytes: [UInt8]
    }

    /// A vault with dataset `a` at generation 2 (generation 1 kept aside, for rollback and
    /// cross-generation swaps), dataset `b`, and two sealed results of `a`.
    final class Fixture {
        let dir = TemporaryDirectory("tamper")
        let vault: Vault
        var oldShards: [[UInt8]] = []
        var oldManifest: [UInt8] = []

        init() throws {
            vault = try Vault.initialize(at: dir.path + "/v")
            let input = dir.path + "/in"
            _ = try SyntheaGenerator(patients: 150, seed: 5).write(to: URL(fileURLWithPath: input))
            let ingest = Ingestor(vault: vault)
            _ = try ingest.ingest(dataset: "a", format: .syntheaCSV, paths: [input], shards: 3, replace: false)
            oldShards = try shardPaths("a").map { try FileIO.readAll($0) }
            oldManifest = try FileIO.readAll(manifestPath("a"))
            _ = try ingest.ingest(dataset: "a", format: .syntheaCSV, paths: [input], shards: 3, replace: true)
            _ = try ingest.ingest(dataset: "b", format: .syntheaCSV, paths: [input], shards: 3, replace: false)
            for _ in 0..<2 { _ = try analyse() }
        }

        func manifestPath(_ dataset: String) -> String { vault.layout.datasetDirectory(dataset) + "/" + ManifestFile.name }

        func shardPaths(_ dataset: String) throws -> [String] {
            let m = try DatasetCatalog(vault: vault).manifest(dataset)
            return m.shards.map { vault.layout.datasetDirectory(dataset) + "/" + m.generationDirectory + "/" + $0.file }
        }

        func analyse() throws -> AnalysisResult {
            try AnalysisJob(vault: vault, isolation: .thread).run(try JobSpec.parse(TamperCorpusTests.spec, file: "spec"),
                                                                  specBytes: Array(TamperCorpusTests.spec.utf8)).result
        }

        func resultFiles() throws -> [String] {
            try FileIO.listDirectory(vault.layout.datasetDirectory("a") + "/results").sorted()
        }
    }

    // MARK: Generators

    /// Positions to flip in a region: all of them in the long profile, else the first, the
    /// last and `samples` spread between.
    static func positions(_ range: Range<Int>, samples: Int, exhaustive: Bool = true) -> [Int] {
        if (long && exhaustive) || range.count <= samples + 2 { return Array(range) }
        var out = [range.lowerBound, range.upperBound - 1]
        for i in 1...samples { out.append(range.lowerBound + range.count * i / (samples + 1)) }
        return Array(Set(out)).sorted()
    }

    static func flip(_ bytes: [UInt8], at i: Int) -> [UInt8] {
        var b = bytes
        b[i] ^= UInt8(1 << (i % 8))
        return b
    }

    /// Every mutant class of one shard file (docs/shard-format.md layout).
    static func shardMutants(_ bytes: [UInt8], file: String, label: String) -> [Mutant] {
        var out: [Mutant] = []
        func add(_ name: String, _ b: [UInt8]) { out.append(Mutant(name: "\(label) \(name)", file: file, bytes: b)) }
        let size = bytes.count
        let fieldsLength = Int(bytes[12]) << 24 | Int(bytes[13]) << 16 | Int(bytes[14]) << 8 | Int(bytes[15])
        let bodyStart = ShardHeader.blockSize, bodyEnd = size - ShardHeader.trailerSize
        let chunksStart = bodyStart + ChunkedEncryption.headerLength
        var chunks: [Range<Int>] = []
        var c = chunksStart
        while c < bodyEnd { chunks.append(c..<min(c + ChunkedEncryption.sealedChunkSize, bodyEnd)); c += ChunkedEncryption.sealedChunkSize }

        let regions: [(String, Range<Int>, Int)] = [
            ("magic", 0..<8, 8), ("version and flags", 8..<12, 4), ("header length", 12..<16, 4),
            ("header fields (ids, versions, wrapped DEK)", 16..<(16 + fieldsLength), 64),
            ("header padding", (16 + fieldsLength)..<ShardHeader.blockSize, 8),
            ("salt", bodyStart..<(bodyStart + ChunkedEncryption.saltLength), 24),
            ("commitment", (bodyStart + ChunkedEncryption.saltLength)..<chunksStart, 32),
            ("trailer magic", bodyEnd..<(bodyEnd + 8), 8), ("trailer body length", (bodyEnd + 8)..<(bodyEnd + 16), 8),
            ("trailer digest", (bodyEnd + 16)..<(bodyEnd + 48), 8), ("trailer MAC", (bodyEnd + 48)..<size, 8),
        ]
        for (name, range, samples) in regions {
            for i in positions(range, samples: samples) { add("bit flip in \(name) at \(i)", flip(bytes, at: i)) }
        }
        let chunkSample = long ? Array(chunks.indices) : Array(Set([0, 1, chunks.count / 2, chunks.count - 1])).filter { $0 >= 0 && $0 < chunks.count }.sorted()
        for k in chunkSample {
            let r = chunks[k]
            let tag = (r.upperBound - ChunkedEncryption.tagLength)..<r.upperBound
            // Chunk bodies stay sampled even in the long profile (16 KiB each); their tags do not.
            for i in positions(r.lowerBound..<tag.lowerBound, samples: long ? 16 : 2, exhaustive: false) { add("bit flip in chunk \(k) body at \(i)", flip(bytes, at: i)) }
            for i in positions(tag, samples: 2) { add("bit flip in chunk \(k) tag at \(i)", flip(bytes, at: i)) }
        }
        // Truncation at and around every chunk boundary, and at the region edges.
        var cuts = Set([0, 1, 15, 16, ShardHeader.blockSize - 1, ShardHeader.blockSize, chunksStart, bodyEnd - 1, bodyEnd, size - 1])
        for (k, r) in chunks.enumerated() where long || chunkSample.contains(k) { cuts.formUnion([r.lowerBound - 1, r.lowerBound + 1, r.upperBound]) }
        for cut in cuts.sorted() where cut >= 0 && cut < size { add("truncated to \(cut) bytes", Array(bytes[0..<cut])) }
        // Appended garbage, an appended valid chunk, reordered and duplicated chunks.
        add("1 byte appended", bytes + [0])
        add("16 bytes appended", bytes + [UInt8](repeating: 0xEE, count: 16))
        add("a second trailer appended", bytes + Array(bytes[bodyEnd..<size]))
        if let first = chunks.first, chunks.count >= 2 {
            let chunk = Array(bytes[first])
            add("a valid chunk appended to the body", Array(bytes[0..<bodyEnd]) + chunk + Array(bytes[bodyEnd...]))
            add("chunk 0 duplicated", Array(bytes[0..<first.upperBound]) + chunk + Array(bytes[first.upperBound...]))
            let second = chunks[1]
            if second.count == first.count {
                add("chunks 0 and 1 reordered", Array(bytes[0..<first.lowerBound]) + Array(bytes[second]) + chunk + Array(bytes[second.upperBound...]))
            }
            add("chunk 1 removed", Array(bytes[0..<second.lowerBound]) + Array(bytes[second.upperBound...]))
        }
        return out
    }

    /// Mutants made of other valid files: swaps within and across datasets and generations,
    /// header and trailer transplants between shards.
    static func swapMutants(_ f: Fixture) throws -> [Mutant] {
        let a = try f.shardPaths("a"), b = try f.shardPaths("b")
        let ab = try a.map { try FileIO.readAll($0) }, bb = try b.map { try FileIO.readAll($0) }
        var out: [Mutant] = [
            Mutant(name: "shard 1 of a in the place of shard 0", file: a[0], bytes: ab[1]),
            Mutant(name: "shard 0 of dataset b in the place of shard 0 of a (wrong context)", file: a[0], bytes: bb[0]),
            Mutant(name: "shard 0 of a's older generation in the place of its current shard 0", file: a[0], bytes: f.oldShards[0]),
            Mutant(name: "shard 2 of a's older generation in the place of shard 2", file: a[2], bytes: f.oldShards[2]),
        ]
        let block = ShardHeader.blockSize, trailer = ShardHeader.trailerSize
        out.append(Mutant(name: "header block of shard 1 on shard 0", file: a[0], bytes: Array(ab[1][0..<block]) + Array(ab[0][block...])))
        out.append(Mutant(name: "header block of b's shard 0 on a's shard 0", file: a[0], bytes: Array(bb[0][0..<block]) + Array(ab[0][block...])))
        out.append(Mutant(name: "trailer of shard 1 on shard 0", file: a[0], bytes: Array(ab[0].dropLast(trailer)) + Array(ab[1].suffix(trailer))))
        out.append(Mutant(name: "body of the older generation's shard 0 under the current header", file: a[0],
                          bytes: Array(ab[0][0..<block]) + Array(f.oldShards[0][block...])))
        // Header fields swapped between shards: the wrapped DEK of shard 1 in shard 0's header.
        let h0 = try ShardHeader.parse(block: Array(ab[0][0..<block])), h1 = try ShardHeader.parse(block: Array(ab[1][0..<block]))
        var swapped = h0
        swapped.wrappedDEK = h1.wrappedDEK
        out.append(Mutant(name: "wrapped DEK of shard 1 in shard 0's header", file: a[0], bytes: swapped.block() + Array(ab[0][block...])))
        swapped = h0
        swapped.dataKeyId = h1.dataKeyId
        out.append(Mutant(name: "data-key id of shard 1 in shard 0's header", file: a[0], bytes: swapped.block() + Array(ab[0][block...])))
        swapped = h0
        swapped.shardIndex = h1.shardIndex
        out.append(Mutant(name: "shard index 1 in shard 0's header", file: a[0], bytes: swapped.block() + Array(ab[0][block...])))
        return out
    }

    static func manifestMutants(_ f: Fixture) throws -> [Mutant] {
        let path = f.manifestPath("a")
        let bytes = try FileIO.readAll(path)
        var out: [Mutant] = [
            Mutant(name: "manifest rolled back to the older signed generation", file: path, bytes: f.oldManifest),
            Mutant(name: "manifest of dataset b in a's place", file: path, bytes: try FileIO.readAll(f.manifestPath("b"))),
            Mutant(name: "manifest signature line removed", file: path, bytes: Array(bytes.split(separator: 0x0A)[0]) + [0x0A]),
            Mutant(name: "manifest emptied", file: path, bytes: []),
            // Found by the long profile: the same MAC spelled in upper case was accepted.
            Mutant(name: "manifest signature MAC in upper case", file: path, bytes: upperCaseMAC(bytes)),
        ]
        for i in positions(0..<bytes.count, samples: 120) where bytes[i] != 0x0A {
            out.append(Mutant(name: "manifest bit flip at \(i)", file: path, bytes: flip(bytes, at: i)))
        }
        for cut in positions(0..<bytes.count, samples: 12) {
            out.append(Mutant(name: "manifest truncated to \(cut) bytes", file: path, bytes: Array(bytes[0..<cut])))
        }
        return out
    }

    /// The file with the hex of its `"mac":"..."` field in upper case: the same bytes, spelled otherwise.
    static func upperCaseMAC(_ bytes: [UInt8]) -> [UInt8] {
        let text = String(decoding: bytes, as: UTF8.self)
        guard let range = text.range(of: #""mac":"[0-9a-f]{64}""#, options: .regularExpression) else { return bytes }
        let field = String(text[range])
        var mutated = text
        mutated.replaceSubrange(range, with: "\"mac\":\"" + field.dropFirst(7).uppercased())
        return Array(mutated.utf8)
    }

    // MARK: Checks

    /// Applies each mutant, runs every check that must reject it, restores the file.
    /// Returns the names of mutants some check accepted.
    static func attack(_ f: Fixture, _ mutants: [Mutant]) throws -> [String] {
        var accepted: [String] = []
        let resultsBefore = try f.resultFiles()
        for m in mutants {
            let original = try FileIO.readAll(m.file)
            try Data(m.bytes).write(to: URL(fileURLWithPath: m.file))
            defer { try? Data(original).write(to: URL(fileURLWithPath: m.file)) }
            var passed: [String] = []
            if Verifier(vault: f.vault).verify(dataset: "a", deep: false).ok { passed.append("verify") }
            if Verifier(vault: f.vault).verify(dataset: "a", deep: true).ok { passed.append("verify --deep") }
            do {
                _ = try f.analyse()
                passed.append("analyze")
            } catch let error as VaultError where error.code == .dataError {
                // Rejected as bad data (exit 65).
            } catch {
                passed.append("analyze failed with \(error), not exit 65")
            }
            if try f.resultFiles() != resultsBefore { passed.append("a result was written") }
            if !passed.isEmpty { accepted.append("\(m.name): \(passed.joined(separator: ", "))") }
        }
        return accepted
    }

    @Test("every tampered shard, swap, transplant, rollback and manifest mutant is rejected by verify, verify --deep and analyze, and writes no result")
    func shardsAndManifests() throws {
        let f = try Fixture()
        let paths = try f.shardPaths("a")
        var mutants = Self.shardMutants(try FileIO.readAll(paths[1]), file: paths[1], label: "shard 1:")
        mutants += try Self.swapMutants(f)
        mutants += try Self.manifestMutants(f)
        // The untouched vault passes every check, so a rejection below is the mutant's doing.
        #expect(try Self.attack(f, []).isEmpty)
        #expect(Verifier(vault: f.vault).verify(dataset: "a", deep: true).ok)
        let accepted = try Self.attack(f, mutants)
        print("tamper corpus (\(Self.long ? "long" : "quick")): \(mutants.count) shard and manifest mutants, \(accepted.count) accepted")
        #expect(mutants.count > 300)
        #expect(accepted.isEmpty, "\(accepted.prefix(20))")
        #expect(Verifier(vault: f.vault).verify(dataset: "a", deep: true).ok, "the corpus did not restore the vault")
    }

    @Test("every tampered sealed result and result metadata is rejected when read or revealed")
    func results() throws {
        let f = try Fixture()
        let dir = f.vault.layout.datasetDirectory("a") + "/results/"
        let ids = try f.resultFiles().filter { $0.hasSuffix(".json") }.map { String($0.dropLast(5)) }
        #expect(ids.count == 2)
        let sealed = try FileIO.readAll(dir + ids[0] + ".svr"), metadata = try FileIO.readAll(dir + ids[0] + ".json")
        var mutants = Self.shardMutants(sealed, file: dir + ids[0] + ".svr", label: "result:")
        mutants.append(Mutant(name: "the other result's sealed file", file: dir + ids[0] + ".svr", bytes: try FileIO.readAll(dir + ids[1] + ".svr")))
        mutants.append(Mutant(name: "the other result's metadata", file: dir + ids[0] + ".json", bytes: try FileIO.readAll(dir + ids[1] + ".json")))
        mutants.append(Mutant(name: "metadata signature MAC in upper case", file: dir + ids[0] + ".json", bytes: Self.upperCaseMAC(metadata)))
        for i in Self.positions(0..<metadata.count, samples: 80) where metadata[i] != 0x0A {
            mutants.append(Mutant(name: "metadata bit flip at \(i)", file: dir + ids[0] + ".json", bytes: Self.flip(metadata, at: i)))
        }
        let store = ResultStore(vault: f.vault)
        var accepted: [String] = []
        #expect(try store.reveal(try store.info(ids[0])).count > 0)
        for m in mutants {
            let original = try FileIO.readAll(m.file)
            try Data(m.bytes).write(to: URL(fileURLWithPath: m.file))
            defer { try? Data(original).write(to: URL(fileURLWithPath: m.file)) }
            if let info = try? store.info(ids[0]), (try? store.reveal(info)) != nil { accepted.append(m.name) }
        }
        print("tamper corpus (\(Self.long ? "long" : "quick")): \(mutants.count) result mutants, \(accepted.count) accepted")
        #expect(accepted.isEmpty, "\(accepted.prefix(20))")
        #expect(try store.reveal(try store.info(ids[0])).count > 0)
    }

    @Test("every tampered audit log (bit flips in every field, truncation, reordered, duplicated, deleted and forged entries) fails audit verify")
    func auditLog() throws {
        let f = try Fixture()
        let layout = f.vault.layout
        let segment = layout.audit + "/" + (try FileIO.listDirectory(layout.audit).filter { $0.hasPrefix("log-") }.sorted().first!)
        let bytes = try FileIO.readAll(segment)
        let lines = bytes.split(separator: 0x0A, omittingEmptySubsequences: false).dropLast().map(Array.init)
        #expect(lines.count > 10)
        func joined(_ ls: [[UInt8]]) -> [UInt8] { ls.flatMap { $0 + [0x0A] } }
        var mutants: [Mutant] = []
        // Bit flips across one entry in the middle and the last one, every byte in the long profile.
        var offset = 0
        for (n, line) in lines.enumerated() {
            if n == lines.count / 2 || n == lines.count - 1 || Self.long {
                for i in Self.positions(0..<line.count, samples: 60) {
                    mutants.append(Mutant(name: "entry \(n) bit flip at \(i)", file: segment, bytes: Self.flip(bytes, at: offset + i)))
                }
            }
            offset += line.count + 1
        }
        let mid = lines.count / 2
        var swapped = lines
        swapped.swapAt(mid, mid + 1)
        mutants.append(Mutant(name: "entries \(mid) and \(mid + 1) reordered", file: segment, bytes: joined(swapped)))
        var duplicated = lines
        duplicated.insert(lines[mid], at: mid + 1)
        mutants.append(Mutant(name: "entry \(mid) duplicated", file: segment, bytes: joined(duplicated)))
        var deleted = lines
        deleted.remove(at: mid)
        mutants.append(Mutant(name: "entry \(mid) deleted", file: segment, bytes: joined(deleted)))
        mutants.append(Mutant(name: "last entry deleted", file: segment, bytes: joined(Array(lines.dropLast()))))
        mutants.append(Mutant(name: "first entry deleted", file: segment, bytes: joined(Array(lines.dropFirst()))))
        mutants.append(Mutant(name: "log truncated to half", file: segment, bytes: joined(Array(lines.prefix(lines.count / 2)))))
        mutants.append(Mutant(name: "an entry appended twice", file: segment, bytes: bytes + lines.last! + [0x0A]))
        // A forged entry: valid shape, recomputed chain, but no MAC key.
        if var text = String(bytes: lines[mid], encoding: .utf8) {
            text = text.replacingOccurrences(of: "\"outcome\":\"denied\"", with: "\"outcome\":\"success\"")
                .replacingOccurrences(of: "\"outcome\":\"success\"", with: "\"outcome\":\"error\"")
            var forged = lines
            forged[mid] = Array(text.utf8)
            mutants.append(Mutant(name: "entry \(mid) outcome rewritten", file: segment, bytes: joined(forged)))
        }
        let verifier = AuditVerifier(layout: layout, verifier: f.vault.audit.key.verifier, macKey: f.vault.audit.key)
        #expect(verifier.verify().ok)
        var accepted: [String] = []
        for m in mutants {
            try Data(m.bytes).write(to: URL(fileURLWithPath: m.file))
            if verifier.verify().ok { accepted.append(m.name) }
        }
        try Data(bytes).write(to: URL(fileURLWithPath: segment))
        print("tamper corpus (\(Self.long ? "long" : "quick")): \(mutants.count) audit log mutants, \(accepted.count) accepted")
        #expect(accepted.isEmpty, "\(accepted.prefix(20))")
        #expect(verifier.verify().ok)
    }
}
