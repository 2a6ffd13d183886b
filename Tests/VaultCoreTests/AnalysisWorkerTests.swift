import CShims
import Foundation
import Testing
import VaultCrypto
@testable import VaultCore

@Suite("Analysis partials and worker outputs")
struct AnalysisWorkerTests {
    func sample() -> PartialAggregate {
        var p = PartialAggregate(observationMeasures: 2)
        p.groups[["female", "40-49"]] = .init(patients: 17, values: [[27.5, 31.25, -0.0, 1e-300], []])
        p.groups[["male", "0-9"]] = .init(patients: 3, values: [[Double.greatestFiniteMagnitude], [4.5]])
        return p
    }

    @Test("partial aggregates survive encoding bit for bit; truncated or padded encodings are refused")
    func roundTrip() throws {
        let p = sample()
        let bytes = p.encode()
        let back = try PartialAggregate.decode(bytes)
        #expect(back == p)
        #expect(back.groups[["female", "40-49"]]?.values[0].map(\.bitPattern) == p.groups[["female", "40-49"]]?.values[0].map(\.bitPattern))
        #expect(throws: VaultError.self) { try PartialAggregate.decode(Array(bytes.dropLast(3))) }
        #expect(throws: VaultError.self) { try PartialAggregate.decode(bytes + [0]) }
    }

    @Test("merging partials is the same as computing over all values at once")
    func merging() {
        var a = sample(), b = sample()
        b.groups[["other", "90-99"]] = .init(patients: 1, values: [[1], [2]])
        a.merge(b)
        #expect(a.groups[["female", "40-49"]]?.patients == 34)
        #expect(a.groups[["female", "40-49"]]?.values[0].count == 8)
        #expect(a.groups[["other", "90-99"]]?.patients == 1)
    }

    @Test("a worker's output opens only for its own job and shard, under the job's key")
    func outputBinding() throws {
        let entry = ManifestShard(index: 3, file: "shard-00003.svs", size: 1, headerSha256: "", bodySha256: "", dataKeyId: "", kekVersion: 1,
                                  signingVersion: 1, records: RecordCounts())
        let task = WorkerTask(job: "0011223344556677", spec: "", path: "p", vaultId: "", dataset: "d", generation: 1, shardCount: 4, entry: entry)
        let key = try SecureBytes.random(count: 32)
        let nonce = try SystemRandom.bytes(12)
        let output = WorkerTask.outputMagic + nonce + (try AESGCM(key: key).seal(nonce: nonce, plaintext: sample().encode(), aad: task.outputAAD))
        #expect(try task.openOutput(output, outputKey: key) == sample())
        var otherShard = task
        otherShard.entry.index = 2
        var otherJob = task
        otherJob.job = "8899aabbccddeeff"
        for wrong in [otherShard, otherJob] {
            #expect(throws: VaultError.self) { try wrong.openOutput(output, outputKey: key) }
        }
        #expect(throws: VaultError.self) { try task.openOutput(output, outputKey: try SecureBytes.random(count: 32)) }
        var flipped = output
        flipped[flipped.count - 1] ^= 1
        #expect(throws: VaultError.self) { try task.openOutput(flipped, outputKey: key) }
    }

    @Test("""
          a worker's key is its shard's DEK: it opens that shard like the KEK does, fails the commitment on any other \
          shard, and is unwrapped only from a header that matches the manifest
          """)
    func shardDataKey() throws {
        let dir = TemporaryDirectory("vault")
        let vault = try Vault.initialize(at: dir.path)
        let input = TemporaryDirectory("input")
        try TinySynthea.write(to: input.path, patients: 12)
        _ = try Ingestor(vault: vault).ingest(dataset: "tiny", format: .syntheaCSV, paths: [input.path], shards: 2, replace: false)
        let manifest = try DatasetCatalog(vault: vault).manifest("tiny")
        let kek = try vault.keyring.material(dataset: "tiny", kind: .kek, version: manifest.kek.version)
        func path(_ i: Int) -> String { vault.layout.datasetDirectory("tiny") + "/" + manifest.generationDirectory + "/" + manifest.shards[i].file }
        func expected(_ i: Int) -> ShardExpectation {
            ShardExpectation(vaultId: vault.id, dataset: "tiny", generation: manifest.generation, shardCount: 2, entry: manifest.shards[i])
        }
        let dek0 = try ShardReader.unwrapDEK(path: path(0), expected: expected(0), kek: kek)
        let dek1 = try ShardReader.unwrapDEK(path: path(1), expected: expected(1), kek: kek)
        #expect(dek0.count == 32 && !dek0.withUnsafeBytes { a in kek.withUnsafeBytes { b in a.elementsEqual(b) } })
        let byDEK = try ShardReader.decrypt(path: path(0), expected: expected(0), key: .dek(dek0))
        let byKEK = try ShardReader.decrypt(path: path(0), expected: expected(0), kek: kek)
        #expect(byDEK.counts == byKEK.counts && byDEK.counts.patients > 0)
        #expect(try AnalysisEngine.evaluate(try JobSpec.parse(#"{"dataset": "tiny", "purpose": "HRESCH", "asOf": "2020-01-01", "measures": [{"name": "n", "count": "patients"}]}"#, file: "s"),
                                            shard: byDEK).groups.values.map(\.patients).reduce(0, +) == byDEK.counts.patients)
        // Another shard's DEK: the commitment check refuses it before any chunk is opened.
        #expect { try ShardReader.decrypt(path: path(0), expected: expected(0), key: .dek(dek1)) } throws: { error in
            (error as? VaultError)?.location == path(0) && "\(error)".contains("decryption failed")
        }
        // A header that is not the manifest's, or the wrong KEK: no DEK.
        #expect(throws: VaultError.self) { try ShardReader.unwrapDEK(path: path(1), expected: expected(0), kek: kek) }
        #expect(throws: VaultError.self) { try ShardReader.unwrapDEK(path: path(0), expected: expected(0), kek: try SecureBytes.random(count: 32)) }
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path(0))))
        bytes[100] ^= 1
        try Data(bytes).write(to: URL(fileURLWithPath: path(0)))
        #expect { try ShardReader.unwrapDEK(path: path(0), expected: expected(0), kek: kek) } throws: { error in
            (error as? VaultError)?.location == path(0)
        }
        // The task frame carries the DEK and the output key, nothing else secret.
        let task = WorkerTask(job: "0011223344556677", spec: "", path: path(1), vaultId: Hex.encode(vault.id), dataset: "tiny",
                              generation: manifest.generation, shardCount: 2, entry: manifest.shards[1])
        let outputKey = try SecureBytes.random(count: 32)
        let frame = try task.frame(dek: dek1, outputKey: outputKey)
        let keys = Array(frame.suffix(64))
        #expect(dek1.withUnsafeBytes { Array($0) } + outputKey.withUnsafeBytes { Array($0) } == keys)
        #expect(!kek.withUnsafeBytes { k in frame.indices.dropLast(31).contains { frame[$0..<($0 + 32)].elementsEqual(k) } })
        #expect(throws: VaultError.self) { try task.frame(dek: try SecureBytes.random(count: 16), outputKey: outputKey) }
    }

    @Test("the hardening a worker applies: not dumpable, no core dumps (checked in a child process)")
    func hardening() throws {
        // Hardening is irreversible, so it is checked in a forked child, which reports by exit code.
        let pid = fork()
        if pid == 0 {
            var limit = rlimit()
            let ok = shardvault_harden_process() == 0 && shardvault_is_dumpable() == 0
                && getrlimit(__rlimit_resource_t(RLIMIT_CORE.rawValue), &limit) == 0 && limit.rlim_cur == 0
            _exit(ok ? 0 : 1)
        }
        #expect(pid > 0)
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        #expect(status == 0, "child status \(status)")
        #expect(shardvault_is_dumpable() == 1, "the test process itself stays as it was")
    }
}
