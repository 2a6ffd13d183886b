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
