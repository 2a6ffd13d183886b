import Foundation
import VaultCrypto
#if canImport(Glibc)
import Glibc
#endif

/// What `keys rotate --data` did.
public struct DataRotationReport: Codable, Sendable {
    public var dataset: String
    public var generation: Int
    public var replacedGeneration: Int
    public var shards: Int
    /// Shards sealed by this run (the rest were already sealed by an interrupted one).
    public var sealed: Int
    public var resumed: Bool
    public var plaintextBytes: Int
    public var manifestSha256: String
    public var seconds: Double
}

extension KeyLifecycle {
    static let dataStaging = ".rotate-data"

    /// `keys rotate --dataset D --data`: every shard re-encrypted under a fresh DEK (wrapped
    /// under the active KEK, signed with the active signing key) into a new generation, then
    /// published like an ingest: the new manifest is the commit point, and until it the old
    /// generation stays current and readable. One shard at a time per worker is decrypted in
    /// memory (verified first, MAC included) and sealed again, so memory is bounded by the
    /// shard size times the workers, whatever the dataset size.
    ///
    /// Resumable: shards sealed by an interrupted run stay in `.rotate-data/` with their
    /// manifest entries in `sealed.jsonl`; a rerun checks each one's signature and seals only
    /// what is missing. Killed after the commit, a rerun removes the old generation.
    public func rotateData(_ dataset: String) throws -> DataRotationReport {
        let started = Date()
        try Self.checkNoPendingRotation(vault.layout, dataset)
        let (manifest, manifestBytes) = try manifest(dataset)
        let datasetDir = vault.layout.datasetDirectory(dataset)
        guard let kekRecord = vault.keyring.active(dataset, .kek), let signingRecord = vault.keyring.active(dataset, .signing) else {
            throw VaultError(.configuration, "dataset '\(dataset)' has no active KEK or signing key")
        }
        let staging = datasetDir + "/" + Self.dataStaging
        let generation = manifest.generation + 1
        let generationName = Manifest.generationDirectory(generation)
        // Published but not committed (killed between the rename and the manifest): take the
        // folder back as staging and finish.
        if FileIO.isDirectory(datasetDir + "/" + generationName) && !FileIO.exists(staging) {
            guard rename(datasetDir + "/" + generationName, staging) == 0 else {
                throw VaultError.system(.ioError, "cannot take back an unpublished generation", path: datasetDir + "/" + generationName, errno: errno)
            }
        }
        // Committed but not cleaned up: only the replaced generation remains to remove.
        let cleanup = datasetDir + "/" + Self.dataStaging + ".replaced"
        if FileIO.exists(cleanup) {
            let replaced = String(decoding: try FileIO.readAll(cleanup), as: UTF8.self)
            guard replaced != manifest.generationDirectory else {
                // Not committed after all (killed before the manifest): drop the marker, go on.
                unlink(cleanup)
                return try rotateData(dataset)
            }
            if replaced.hasPrefix("g"), !replaced.contains("/") { FileIO.removeTree(datasetDir + "/" + replaced) }
            unlink(cleanup)
            try FileIO.fsyncDirectory(datasetDir)
            return DataRotationReport(dataset: dataset, generation: manifest.generation, replacedGeneration: manifest.generation - 1,
                                      shards: manifest.shardCount, sealed: 0, resumed: true, plaintextBytes: 0,
                                      manifestSha256: Hex.encode(Digest.sha256(manifestBytes)), seconds: Date().timeIntervalSince(started))
        }

        // What an interrupted run already sealed, each entry checked against its file.
        let resumed = FileIO.exists(staging)
        var done: [Int: ManifestShard] = [:]
        let ledger = staging + "/sealed.jsonl"
        if resumed, FileIO.exists(ledger) {
            for line in try FileIO.readAll(ledger).split(separator: 0x0A) {
                guard let entry = try? JSONDecoder().decode(ManifestShard.self, from: Data(line)), entry.index >= 0, entry.index < manifest.shardCount,
                      entry.kekVersion == kekRecord.version, entry.signingVersion == signingRecord.version else { continue }
                let expected = ShardExpectation(vaultId: vault.id, dataset: dataset, generation: generation, shardCount: manifest.shardCount, entry: entry, schemaId: manifest.schemaId)
                let signing = try vault.keyring.material(dataset: dataset, kind: .signing, version: entry.signingVersion)
                if (try? ShardReader.verifySignature(path: staging + "/" + entry.file, expected: expected, signingKey: signing)) != nil {
                    done[entry.index] = entry
                }
            }
        }
        if !resumed { try FileIO.makeDirectory(staging, mode: 0o700) }
        // Files in staging not vouched for by the ledger are sealed again.
        for name in try FileIO.listDirectory(staging) where name.hasSuffix(".svs") && !done.values.contains(where: { $0.file == name }) {
            unlink(staging + "/" + name)
        }

        // On the log before any shard is decrypted or written.
        let todo = manifest.shards.filter { done[$0.index] == nil }
        try vault.audit.append(todo.map {
            AuditEvent(action: AuditAction.shardDecrypt,
                       resource: AuditResource(dataset: dataset, generation: manifest.generation, shard: $0.file,
                                               key: Keyring.keyId(dataset, .kek), keyVersion: $0.kekVersion))
        })

        let kek = try vault.keyring.material(dataset: dataset, kind: .kek, version: kekRecord.version)
        let signing = try vault.keyring.material(dataset: dataset, kind: .signing, version: signingRecord.version)
        let kekInfo = (id: kekRecord.id, version: kekRecord.version, key: kek)
        let signingInfo = (id: signingRecord.id, version: signingRecord.version, key: signing)
        let ledgerWriter = try LedgerWriter(path: ledger)
        let results = ShardResults(count: manifest.shardCount)
        for (index, entry) in done { results.set(index, entry: entry, plaintextBytes: 0) }
        let next = AtomicCounter()
        let keyring = vault.keyring
        let vaultId = vault.id
        let oldDir = datasetDir + "/" + manifest.generationDirectory
        let progress = progress
        let finished = AtomicCounter()
        DispatchQueue.concurrentPerform(iterations: max(1, min(concurrency, todo.count))) { _ in
            while true {
                let i = next.increment()
                if i >= todo.count || results.failed { return }
                let old = todo[i]
                do {
                    let expected = ShardExpectation(vaultId: vaultId, dataset: dataset, generation: manifest.generation,
                                                    shardCount: manifest.shardCount, entry: old, schemaId: manifest.schemaId)
                    let oldSigning = try keyring.material(dataset: dataset, kind: .signing, version: old.signingVersion)
                    let oldKEK = try keyring.material(dataset: dataset, kind: .kek, version: old.kekVersion)
                    let (_, plaintext, length) = try ShardReader.read(path: oldDir + "/" + old.file, expected: expected, signingKey: oldSigning, kek: oldKEK)
                    guard let plaintext else { throw VaultError(.software, "no plaintext", location: oldDir + "/" + old.file) }
                    defer { plaintext.withUnsafeMutableBytes { secureZero(UnsafeMutableRawBufferPointer(rebasing: $0[0..<length])) } }
                    let info = try plaintext.withUnsafeBytes {
                        try ShardSealer.seal(plaintext: UnsafeRawBufferPointer(rebasing: $0[0..<length]), to: staging + "/" + old.file, vaultId: vaultId,
                                             dataset: dataset, generation: UInt64(generation), shardIndex: old.index, shardCount: manifest.shardCount,
                                             schemaId: manifest.schemaId, kek: kekInfo, signing: signingInfo)
                    }
                    let entry = ManifestShard(index: old.index, file: old.file, size: info.size, headerSha256: Hex.encode(info.headerSha256),
                                              bodySha256: Hex.encode(info.bodySha256), dataKeyId: Hex.encode(info.header.dataKeyId),
                                              kekVersion: kekRecord.version, signingVersion: signingRecord.version, records: old.records)
                    try ledgerWriter.append(entry)
                    results.set(old.index, entry: entry, plaintextBytes: length)
                    try FaultInjection.point("data.shard")
                    progress?(finished.increment() + 1, todo.count)
                } catch {
                    results.fail(error)
                }
            }
        }
        try ledgerWriter.close()
        if let error = results.firstError { throw error }
        guard case let entries = results.entries.compactMap({ $0 }), entries.count == manifest.shardCount else {
            throw VaultError(.software, "not every shard was sealed", location: staging)
        }

        try vault.audit.append(entries.map {
            AuditEvent(action: AuditAction.shardWrite, resource: AuditResource(dataset: dataset, generation: generation, shard: $0.file,
                                                                              key: kekRecord.id, keyVersion: kekRecord.version,
                                                                              sha256: $0.bodySha256, size: $0.size))
        })
        unlink(ledger)
        try FileIO.fsyncDirectory(staging)
        try FileIO.writeAtomically(Array(manifest.generationDirectory.utf8), to: cleanup, mode: 0o600)
        let generationDir = datasetDir + "/" + generationName
        guard rename(staging, generationDir) == 0 else {
            throw VaultError.system(.ioError, "cannot publish generation folder", path: generationDir, errno: errno)
        }
        try FileIO.fsyncDirectory(datasetDir)
        try FaultInjection.point("data.published")
        var rotated = manifest
        rotated.generation = generation
        rotated.created = Timestamp.rfc3339(Date())
        rotated.previousManifestSha256 = Hex.encode(Digest.sha256(manifestBytes))
        rotated.kek = KeyRef(id: kekRecord.id, version: kekRecord.version)
        rotated.signing = KeyRef(id: signingRecord.id, version: signingRecord.version)
        rotated.shards = entries
        let bytes = try ManifestFile.encode(rotated, signingKey: signing)
        try FileIO.writeAtomically(bytes, to: datasetDir + "/" + ManifestFile.name, mode: 0o640)
        let sha = Hex.encode(Digest.sha256(bytes))
        try vault.audit.append(AuditEvent(action: AuditAction.manifestCommit,
                                          resource: AuditResource(dataset: dataset, generation: generation, sha256: sha, size: bytes.count)))
        try FaultInjection.point("data.manifest")
        FileIO.removeTree(oldDir)
        unlink(cleanup)
        try FileIO.fsyncDirectory(datasetDir)
        let sealed = todo.count
        vault.keyring.recordUses(id: kekRecord.id, version: kekRecord.version, count: sealed)
        try vault.keyring.save()
        return DataRotationReport(dataset: dataset, generation: generation, replacedGeneration: manifest.generation, shards: manifest.shardCount,
                                  sealed: sealed, resumed: resumed, plaintextBytes: results.plaintextBytes, manifestSha256: sha,
                                  seconds: Date().timeIntervalSince(started))
    }
}

/// Appends manifest entries of sealed shards, one JSON line each, synced per line: the
/// record a resumed `rotate --data` trusts (after checking each file's signature).
final class LedgerWriter: @unchecked Sendable {
    // The descriptor is used only under `lock`.
    private let lock = NSLock()
    private let fd: Int32
    let path: String

    init(path: String) throws {
        self.path = path
        fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw VaultError.system(.ioError, "cannot open the rotation ledger", path: path, errno: errno) }
    }

    func append(_ entry: ManifestShard) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let line = [UInt8](try encoder.encode(entry)) + [0x0A]
        try lock.withLock {
            let n = line.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            guard n == line.count, fdatasync(fd) == 0 else { throw VaultError.system(.ioError, "cannot write the rotation ledger", path: path, errno: errno) }
            try FaultInjection.point("sync")
        }
    }

    func close() throws {
        guard Glibc.close(fd) == 0 else { throw VaultError.system(.ioError, "cannot close the rotation ledger", path: path, errno: errno) }
    }
}
