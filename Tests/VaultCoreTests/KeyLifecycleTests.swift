import Foundation
import Testing
import VaultCrypto
@testable import VaultCore

@Suite("Key lifecycle: rotate, rewrap, re-sign, retire")
struct KeyLifecycleTests {
    static let spec = #"{"dataset": "d", "purpose": "HRESCH", "asOf": "2020-01-01", "groupBy": ["sex"], "measures": [{"name": "patients", "count": "patients"}, {"name": "v", "observation": "8302-2", "stats": ["count", "mean", "p50"]}]}"#

    /// A vault with dataset `d` of 40 patients in 5 shards, and one sealed result.
    func fixture() throws -> (TemporaryDirectory, Vault) {
        let dir = TemporaryDirectory("vault")
        let vault = try Vault.initialize(at: dir.path)
        let input = TemporaryDirectory("input")
        try TinySynthea.write(to: input.path, patients: 40)
        _ = try Ingestor(vault: vault).ingest(dataset: "d", format: .syntheaCSV, paths: [input.path], shards: 5, replace: false)
        _ = try analysis(vault)
        return (dir, vault)
    }

    func analysis(_ vault: Vault) throws -> [UInt8] {
        let spec = try JobSpec.parse(Self.spec, file: "spec")
        var json = try AnalysisJob(vault: vault, isolation: .thread).run(spec, specBytes: Array(Self.spec.utf8)).result.json()
        // The result id differs between runs; the numbers must not.
        json = Array(String(decoding: json, as: UTF8.self).replacingOccurrences(of: #""result":"[0-9a-f]{16}""#, with: "", options: .regularExpression).utf8)
        return json
    }

    func shardPaths(_ vault: Vault) throws -> [String] {
        let manifest = try DatasetCatalog(vault: vault).manifest("d")
        return manifest.shards.map { vault.layout.datasetDirectory("d") + "/" + manifest.generationDirectory + "/" + $0.file }
    }

    /// The ciphertext body of each shard (between the header block and the trailer).
    func bodies(_ vault: Vault) throws -> [[UInt8]] {
        try shardPaths(vault).map { path in
            let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
            return Array(bytes[ShardHeader.blockSize..<(bytes.count - ShardHeader.trailerSize)])
        }
    }

    @Test("rotate --kek then rewrap: every shard and result moves to the new version, bodies untouched, deep verify passes, same numbers; then the old version retires")
    func rotateRewrapRetire() throws {
        let (dir, vault) = try fixture()
        defer { withExtendedLifetime(dir) {} }
        let before = try analysis(vault)
        let bodiesBefore = try bodies(vault)
        let lifecycle = KeyLifecycle(vault: vault)
        let v2 = try lifecycle.rotate("d", .kek)
        #expect(v2.version == 2 && v2.state == .active)
        #expect(vault.keyring.record(id: "d/kek", version: 1)?.state == .decryptOnly)
        // New data is sealed under v2 at once; old data still reads under v1.
        #expect(try lifecycle.usage("d").count(.kek, 1) == 5 + 2) // 5 shards, 2 results

        // Retire refuses while anything references v1, naming a shard.
        #expect { try lifecycle.retire("d", .kek, below: 2) } throws: { error in
            let e = error as? VaultError
            return e?.code == .dataError && e?.message.contains("shard-00000.svs") == true
        }

        let report = try lifecycle.rewriteHeaders("d")
        #expect(report.written == 5 + 2 && !report.resumed)
        let usage = try lifecycle.usage("d")
        #expect(usage.count(.kek, 1) == 0 && usage.count(.kek, 2) == 5 + 2)
        #expect(try bodies(vault) == bodiesBefore, "a rewrap wrote a shard body")
        #expect(Verifier(vault: vault).verify(dataset: "d", deep: true).ok)
        #expect(try analysis(vault) == before)
        // A second run has nothing to do.
        #expect(try lifecycle.rewriteHeaders("d").written == 0)

        let wrappedV1 = try #require(vault.keyring.record(id: "d/kek", version: 1)?.wrapped)
        let retired = try lifecycle.retire("d", .kek, below: 2)
        #expect(retired.map(\.version) == [1])
        let keyring = try String(contentsOfFile: vault.layout.keys + "/keyring.json", encoding: .utf8)
        #expect(!keyring.contains(wrappedV1), "the retired material is still in keys/")
        let reopened = try Vault.open(at: vault.layout.root)
        #expect { _ = try reopened.keyring.material(dataset: "d", kind: .kek, version: 1) } throws: { error in
            "\(error)".contains("retired")
        }
        #expect(Verifier(vault: reopened).verify(dataset: "d", deep: true).ok)
        #expect(try analysis(reopened) == before)
        // The active version cannot be retired.
        #expect(throws: VaultError.self) { try KeyLifecycle(vault: reopened).retire("d", .kek, below: 3) }
    }

    @Test("rotate --signing re-signs every shard, result and the manifest without unwrapping a data key; the old signing version then retires")
    func resign() throws {
        let (dir, vault) = try fixture()
        defer { withExtendedLifetime(dir) {} }
        let before = try analysis(vault)
        let bodiesBefore = try bodies(vault)
        let kekUsesBefore = try #require(vault.keyring.active("d", .kek)).uses
        let (record, report) = try KeyLifecycle(vault: vault).rotateSigning("d")
        #expect(record.version == 2 && report.signingVersion == 2 && report.kekVersion == 1)
        // Re-signing alone wraps no DEK.
        #expect(try #require(vault.keyring.active("d", .kek)).uses == kekUsesBefore)
        #expect(try bodies(vault) == bodiesBefore)
        let manifest = try DatasetCatalog(vault: vault).manifest("d")
        #expect(manifest.signing.version == 2 && manifest.shards.allSatisfy { $0.signingVersion == 2 && $0.kekVersion == 1 })
        #expect(try ResultStore(vault: vault).list().allSatisfy { $0.sealed.signingVersion == 2 })
        _ = try KeyLifecycle(vault: vault).retire("d", .signing, below: 2)
        let reopened = try Vault.open(at: vault.layout.root)
        #expect(Verifier(vault: reopened).verify(dataset: "d", deep: true).ok)
        #expect(try analysis(reopened) == before)
        for info in try ResultStore(vault: reopened).list() { _ = try ResultStore(vault: reopened).reveal(info) }
    }

    @Test("a shard altered before a rewrap is refused by name and nothing is written; a pending rotation makes readers refuse with how to finish it")
    func refusals() throws {
        let (dir, vault) = try fixture()
        defer { withExtendedLifetime(dir) {} }
        let lifecycle = KeyLifecycle(vault: vault)
        _ = try lifecycle.rotate("d", .kek)
        let paths = try shardPaths(vault)
        let snapshot = try paths.map { try Data(contentsOf: URL(fileURLWithPath: $0)) }
        var altered = [UInt8](snapshot[3])
        altered[200] ^= 0x40 // inside the header
        try Data(altered).write(to: URL(fileURLWithPath: paths[3]))
        #expect { try lifecycle.rewriteHeaders("d") } throws: { error in
            (error as? VaultError)?.location == paths[3]
        }
        for (i, path) in paths.enumerated() where i != 3 {
            #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == snapshot[i], "shard \(i) was written")
        }
        #expect(!FileManager.default.fileExists(atPath: KeyLifecycle.rotationDirectory(vault.layout, "d")))
        try snapshot[3].write(to: URL(fileURLWithPath: paths[3]))

        // A rotation left pending (plan present): every reader refuses and says what to run.
        let rotation = KeyLifecycle.rotationDirectory(vault.layout, "d")
        try FileManager.default.createDirectory(atPath: rotation, withIntermediateDirectories: true)
        try Data("{}".utf8).write(to: URL(fileURLWithPath: rotation + "/plan.json"))
        #expect { _ = try DatasetCatalog(vault: vault).manifest("d") } throws: { error in
            "\(error)".contains("keys rewrap --dataset d")
        }
        #expect(!Verifier(vault: vault).verify(dataset: "d", deep: false).ok)
        #expect(throws: VaultError.self) { try KeyLifecycle(vault: vault).rotate("d", .kek) }
        #expect(throws: VaultError.self) { try KeyLifecycle(vault: vault).retire("d", .kek, below: 2) }
    }

    @Test("a rewrap interrupted with one shard torn mid-write is finished by the next run, which puts that shard back from the journal")
    func tornHeaderRestored() throws {
        let (dir, vault) = try fixture()
        defer { withExtendedLifetime(dir) {} }
        let before = try analysis(vault)
        let lifecycle = KeyLifecycle(vault: vault)
        _ = try lifecycle.rotate("d", .kek)
        // The state a crash leaves: journal and plan written, shard 1 torn (part of its
        // header overwritten, as by a write cut short), the others untouched.
        let (manifest, manifestBytes) = try lifecycle.manifest("d")
        let paths = try shardPaths(vault)
        var entries: [(name: String, ends: SealedEnds)] = []
        for (entry, path) in zip(manifest.shards, paths) {
            let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
            entries.append((manifest.generationDirectory + "/" + entry.file,
                            SealedEnds(block: Array(bytes[0..<ShardHeader.blockSize]), trailer: Array(bytes.suffix(ShardHeader.trailerSize)))))
        }
        let rotation = KeyLifecycle.rotationDirectory(vault.layout, "d")
        try FileManager.default.createDirectory(atPath: rotation, withIntermediateDirectories: true)
        try Data(RotationJournal.encode(entries)).write(to: URL(fileURLWithPath: rotation + "/journal"))
        let plan = KeyLifecycle.Plan(kekVersion: 2, signingVersion: 1, manifestSha256: Hex.encode(Digest.sha256(manifestBytes)), started: "")
        try JSONEncoder().encode(plan).write(to: URL(fileURLWithPath: rotation + "/plan.json"))
        var torn = [UInt8](try Data(contentsOf: URL(fileURLWithPath: paths[1])))
        for i in 100..<2100 { torn[i] = 0xA5 }
        try Data(torn).write(to: URL(fileURLWithPath: paths[1]))

        let report = try lifecycle.rewriteHeaders("d")
        #expect(report.resumed && report.written == 5 + 2)
        #expect(!FileManager.default.fileExists(atPath: rotation))
        #expect(Verifier(vault: vault).verify(dataset: "d", deep: true).ok)
        #expect(try analysis(vault) == before)

        // A torn file with nothing saved for it is refused, never guessed at.
        let (current, _) = try lifecycle.manifest("d")
        let object = SealedObject(name: "g000001/shard-00002.svs", path: paths[2],
                                  expected: ShardExpectation(vaultId: vault.id, dataset: "d", generation: 1, shardCount: 5, entry: current.shards[2],
                                                             schemaId: current.schemaId))
        var damaged = [UInt8](try Data(contentsOf: URL(fileURLWithPath: paths[2])))
        damaged[150] ^= 1
        try Data(damaged).write(to: URL(fileURLWithPath: paths[2]))
        #expect { _ = try HeaderRewrite.apply(object, saved: nil, keyring: vault.keyring, kek: 2, signing: 1) } throws: { error in
            (error as? VaultError)?.location == paths[2]
        }
    }

    @Test("after a rewrap, the manifest rolled back to the one before it is detected, and a shard swapped for another is refused by the next rewrap")
    func rollbackAndSwap() throws {
        let (dir, vault) = try fixture()
        defer { withExtendedLifetime(dir) {} }
        let manifestPath = vault.layout.datasetDirectory("d") + "/" + ManifestFile.name
        let lifecycle = KeyLifecycle(vault: vault)
        _ = try lifecycle.rotate("d", .kek)
        let before = try Data(contentsOf: URL(fileURLWithPath: manifestPath))
        _ = try lifecycle.rewriteHeaders("d")
        let after = try Data(contentsOf: URL(fileURLWithPath: manifestPath))
        try before.write(to: URL(fileURLWithPath: manifestPath))
        let rolledBack = Verifier(vault: vault).verify(dataset: "d", deep: false)
        #expect(!rolledBack.ok && rolledBack.problems.contains { $0.contains("is not the one audit entry") }, "\(rolledBack.problems)")
        try after.write(to: URL(fileURLWithPath: manifestPath))
        #expect(Verifier(vault: vault).verify(dataset: "d", deep: true).ok)

        // Two shards swapped (names exchanged): the next rotation refuses before writing anything.
        _ = try lifecycle.rotate("d", .kek)
        let paths = try shardPaths(vault)
        let a = try Data(contentsOf: URL(fileURLWithPath: paths[0])), b = try Data(contentsOf: URL(fileURLWithPath: paths[1]))
        try b.write(to: URL(fileURLWithPath: paths[0]))
        try a.write(to: URL(fileURLWithPath: paths[1]))
        #expect(throws: VaultError.self) { try lifecycle.rewriteHeaders("d") }
        #expect(try Data(contentsOf: URL(fileURLWithPath: paths[0])) == b && !FileManager.default.fileExists(atPath: KeyLifecycle.rotationDirectory(vault.layout, "d")))
    }

    @Test("KEK use counts: rotation is advised past 2^31 encryptions and required at 2^32")
    func limits() {
        var record = KeyRecord(id: "d/kek", kind: .kek, dataset: "d", version: 1, state: .active, created: "", rootVersion: 1, wrapped: nil, uses: 5)
        #expect(KeyLimits.advice(record) == nil)
        record.uses = 1 << 31
        #expect(KeyLimits.advice(record)?.contains("advised") == true)
        record.uses = 1 << 32
        #expect(KeyLimits.advice(record)?.contains("rotate now") == true)
        record.kind = .signing
        #expect(KeyLimits.advice(record) == nil)
    }
}
