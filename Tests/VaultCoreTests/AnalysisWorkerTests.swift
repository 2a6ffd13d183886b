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
        let task = WorkerTask(job: "0011223344556677", spec: "", path: "p", vaultId: "", dataset: "d", generation: 1, shardCount: 4, entry: entry,
                              schemaId: ColumnarCodec.schemaId)
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
            ShardExpectation(vaultId: vault.id, dataset: "tiny", generation: manifest.generation, shardCount: 2, entry: manifest.shards[i], schemaId: manifest.schemaId)
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
                              generation: manifest.generation, shardCount: 2, entry: manifest.shards[1], schemaId: manifest.schemaId)
        let outputKey = try SecureBytes.random(count: 32)
        let frame = try task.frame(dek: dek1, outputKey: outputKey)
        let keys = Array(frame.suffix(64))
        #expect(dek1.withUnsafeBytes { Array($0) } + outputKey.withUnsafeBytes { Array($0) } == keys)
        #expect(!kek.withUnsafeBytes { k in frame.indices.dropLast(31).contains { frame[$0..<($0 + 32)].elementsEqual(k) } })
        #expect(throws: VaultError.self) { try task.frame(dek: try SecureBytes.random(count: 16), outputKey: outputKey) }
    }

    @Test("""
          an analysis decrypts only the chunks of the columns its spec reads: those columns equal a full decryption's, \
          the others are left unread with their row counts, and a change anywhere in the file, read or not, still fails
          """)
    func columnWiseDecryption() throws {
        let dir = TemporaryDirectory("vault")
        let vault = try Vault.initialize(at: dir.path)
        let input = TemporaryDirectory("input")
        _ = try SyntheaGenerator(patients: 200, seed: 9).write(to: URL(fileURLWithPath: input.path))
        _ = try Ingestor(vault: vault).ingest(dataset: "d", format: .syntheaCSV, paths: [input.path], shards: 1, replace: false)
        let manifest = try DatasetCatalog(vault: vault).manifest("d")
        let kek = try vault.keyring.material(dataset: "d", kind: .kek, version: manifest.kek.version)
        let signing = try vault.keyring.material(dataset: "d", kind: .signing, version: manifest.shards[0].signingVersion)
        let path = vault.layout.datasetDirectory("d") + "/" + manifest.generationDirectory + "/" + manifest.shards[0].file
        let expected = ShardExpectation(vaultId: vault.id, dataset: "d", generation: manifest.generation, shardCount: 1, entry: manifest.shards[0],
                                        schemaId: manifest.schemaId)
        #expect(manifest.shards[0].size > 40 * ChunkedEncryption.sealedChunkSize, "the shard spans many chunks")
        let full = try ShardReader.decrypt(path: path, expected: expected, kek: kek, signingKey: signing)
        func same(_ a: Column, _ b: Column) -> Bool {
            switch (a.widened(), b.widened()) {
            case (.int32(let x), .int32(let y)): return x == y
            case (.int64(let x), .int64(let y)): return x == y
            case (.float64(let x), .float64(let y)): return x.map(\.bitPattern) == y.map(\.bitPattern)
            case (.dictionary(let e1, let i1), .dictionary(let e2, let i2)): return e1 == e2 && i1 == i2
            case (.fixed(let w1, let b1), .fixed(let w2, let b2)): return w1 == w2 && b1 == b2
            default: return false
            }
        }
        let spec = try JobSpec.parse(#"{"dataset": "d", "purpose": "HRESCH", "asOf": "2024-01-01", "cohort": {"conditions": {"anyOf": ["44054006"]}}, "#
                                     + #""measures": [{"name": "n", "count": "patients"}, {"name": "a", "observation": "4548-4", "stats": ["mean"]}]}"#, file: "s")
        let every = Dictionary(uniqueKeysWithValues: full.tables.map { ($0.key, Set(0..<$0.value.count)) })
        let wantedSets: [[RecordKind: Set<Int>]] = [[.patients: [1, 2, 3, 4, 5, 6]], AnalysisEngine.columns(for: spec), [:], every]
        for wanted in wantedSets {
            for key in [ShardKey.kek(kek), .dek(try ShardReader.unwrapDEK(path: path, expected: expected, kek: kek))] {
                let sparse = try ShardReader.decryptColumns(path: path, expected: expected, key: key, signingKey: nil, columns: wanted)
                #expect(sparse.counts == full.counts)
                for (kind, columns) in full.tables {
                    for (index, column) in columns.enumerated() {
                        let got = try #require(sparse.tables[kind]?[index])
                        if wanted[kind]?.contains(index) == true {
                            #expect(same(got, column), "\(kind) column \(index)")
                        } else {
                            guard case .skipped(let rows) = got else { Issue.record("\(kind) column \(index) was decoded"); continue }
                            #expect(rows == full.counts[kind])
                        }
                    }
                }
            }
        }
        #expect(try AnalysisEngine.evaluate(spec, shard: try ShardReader.decryptColumns(path: path, expected: expected, key: .kek(kek), signingKey: signing,
                                                                                           columns: AnalysisEngine.columns(for: spec)))
                == AnalysisEngine.evaluate(spec, shard: full))
        // One flipped bit in the last chunk, which the patients' columns never reach, in the
        // middle, or in the first chunk, which every decoding reads (its tag fails first, but
        // the error is the body's digest): refused, with the shard named, whatever the spec reads.
        let original = try Data(contentsOf: URL(fileURLWithPath: path))
        let firstChunk = ShardHeader.blockSize + ChunkedEncryption.headerLength + 100
        for offset in [original.count - ShardHeader.trailerSize - 40, original.count / 2, firstChunk] {
            var bytes = original
            bytes[offset] ^= 0x01
            try bytes.write(to: URL(fileURLWithPath: path))
            for wanted in [wantedSets[0], wantedSets[1], [:]] {
                #expect { try ShardReader.decryptColumns(path: path, expected: expected, key: .kek(kek), signingKey: nil, columns: wanted) } throws: { error in
                    (error as? VaultError)?.code == .dataError && (error as? VaultError)?.location == path
                        && (error as? VaultError)?.message == "body SHA-256 does not match the trailer: ciphertext was modified"
                }
            }
        }
        // The same chunk changed, and the trailer's digest made to match: the manifest's digest
        // still refuses it.
        var forged = original
        forged[firstChunk] ^= 0x01
        let forgedDigest = Digest.sha256(Array(forged[ShardHeader.blockSize..<(forged.count - ShardHeader.trailerSize)]))
        forged.replaceSubrange((forged.count - ShardHeader.trailerSize + 16)..<(forged.count - ShardHeader.trailerSize + 48), with: forgedDigest)
        try forged.write(to: URL(fileURLWithPath: path))
        #expect { try ShardReader.decryptColumns(path: path, expected: expected, key: .kek(kek), signingKey: nil, columns: wantedSets[1]) } throws: { error in
            (error as? VaultError)?.message == "body SHA-256 does not match the manifest" && (error as? VaultError)?.location == path
        }
        try original.write(to: URL(fileURLWithPath: path))
        _ = try ShardReader.decryptColumns(path: path, expected: expected, key: .kek(kek), signingKey: signing, columns: wantedSets[0])
        // Another shard's key fails the commitment.
        #expect(throws: VaultError.self) {
            try ShardReader.decryptColumns(path: path, expected: expected, key: .dek(try SecureBytes.random(count: 32)), signingKey: nil, columns: wantedSets[0])
        }
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

    @Test("""
        a worker server is started with only its pipes and /dev/null open, no inherited environment, \
        and its signals at their defaults, even when the coordinator holds an inheritable \
        descriptor and ignores SIGPIPE; the servers no lane took are stopped and reaped
        """)
    func workerServerStartsClean() throws {
        let dir = TemporaryDirectory("worker-spawn")
        // Stands in for `shardvault worker`: records what it was given, then waits for the
        // coordinator to close its input.
        let script = dir.path + "/worker.sh"
        try """
            #!/bin/sh
            ls /proc/self/fd > "\(dir.path)/fds"
            readlink /proc/$$/fd/2 > "\(dir.path)/stderr"
            env | grep -v '^PWD=' | sort > "\(dir.path)/env"
            grep '^SigIgn' /proc/$$/status > "\(dir.path)/sigign"
            echo "$@" > "\(dir.path)/args"
            cat > /dev/null
            touch "\(dir.path)/done"
            """.write(toFile: script, atomically: true, encoding: .utf8)
        #expect(chmod(script, 0o755) == 0)
        let inheritable = open("/dev/null", O_RDONLY)
        #expect(inheritable > 2)
        defer { close(inheritable) }
        _ = WorkerProcess.ignoreBrokenPipes
        // The test process's own environment (HOME and the rest) is what must not reach a
        // worker; it is read, not changed, since other tests run alongside.
        #expect(ProcessInfo.processInfo.environment.keys.contains { WorkerProcess.environment[$0] == nil })
        let servers = try WorkerServers(executable: script, starting: 2)
        // finish() waits for each server: when it returns, both have exited.
        servers.finish()
        #expect(FileManager.default.fileExists(atPath: dir.path + "/done"))
        func read(_ name: String) throws -> String { try String(contentsOfFile: dir.path + "/" + name, encoding: .utf8) }
        // 0, 1 and 2, and the one `ls` opens to list them: the inheritable descriptor would
        // be one more.
        #expect(try read("fds") == "0\n1\n2\n3\n")
        #expect(try read("stderr") == "/dev/null\n")
        #expect(try read("args") == "worker\n")
        #expect(try read("env") == WorkerProcess.environment.map { "\($0.key)=\($0.value)\n" }.sorted().joined())
        // Bit n is signal n + 1: none of the standard signals 1 to 31 (SIGPIPE among them) is
        // ignored; the C library's own real-time signals are not the caller's to reset.
        let ignored = try #require(UInt64(try read("sigign").dropFirst("SigIgn:\t".count).dropLast(), radix: 16))
        #expect(ignored & 0x7fff_ffff == 0, "ignored signals \(String(ignored, radix: 16))")
    }

    @Test("a worker server that cannot be started is a clear error naming the executable")
    func workerServerMissing() throws {
        let missing = "/nonexistent/shardvault"
        #expect { try WorkerServers(executable: missing, starting: 2) } throws: { error in
            guard let error = error as? VaultError else { return false }
            return error.location == missing && error.message.contains("cannot start a worker process")
        }
    }
}
