import Foundation
import VaultCrypto

/// The outcome of verifying one shard.
public struct ShardCheck: Codable, Sendable {
    public var shard: String
    public var ok: Bool
    public var problem: String?
}

/// The outcome of verifying one dataset.
public struct DatasetVerification: Codable, Sendable {
    public var dataset: String
    public var generation: Int?
    public var deep: Bool
    public var ok: Bool
    public var shards: [ShardCheck]
    /// Problems that are not about one listed shard: manifest, missing or extra files.
    public var problems: [String]
    public var bytesChecked: Int
    public var seconds: Double
    /// Set when the audit log could not record the decryptions, so none took place.
    public var auditFailure: VaultError?

    enum CodingKeys: String, CodingKey { case dataset, generation, deep, ok, shards, problems, bytesChecked, seconds }
}

/// `verify`: checks manifests and shards. Without `deep`, only the signing key is used;
/// with `deep`, each DEK is unwrapped and every chunk decrypted and decoded.
public struct Verifier {
    public let vault: Vault
    public var concurrency: Int = ProcessInfo.processInfo.activeProcessorCount

    public init(vault: Vault) { self.vault = vault }

    public func verify(dataset: String, deep: Bool) -> DatasetVerification {
        let started = Date()
        var result = DatasetVerification(dataset: dataset, generation: nil, deep: deep, ok: false, shards: [], problems: [],
                                         bytesChecked: 0, seconds: 0)
        let datasetDir = vault.layout.datasetDirectory(dataset)
        let manifest: Manifest
        do {
            manifest = try DatasetCatalog(vault: vault).manifest(dataset)
        } catch {
            result.problems.append(String(describing: error))
            result.seconds = Date().timeIntervalSince(started)
            return result
        }
        result.generation = manifest.generation
        let generationDir = datasetDir + "/" + manifest.generationDirectory

        // Rollback: the manifest must be the latest one the audit log recorded for the dataset.
        do {
            if let recorded = try vault.audit.recordedManifests()[dataset] {
                let onDisk = Hex.encode(Digest.sha256(try FileIO.readAll(datasetDir + "/" + ManifestFile.name)))
                if manifest.generation < recorded.generation {
                    result.problems.append("\(datasetDir)/\(ManifestFile.name): manifest is generation \(manifest.generation), but audit entry \(recorded.seq) records generation \(recorded.generation): the dataset was rolled back")
                } else if manifest.generation == recorded.generation && onDisk != recorded.sha256 {
                    result.problems.append("\(datasetDir)/\(ManifestFile.name): manifest of generation \(manifest.generation) is not the one audit entry \(recorded.seq) records (SHA-256 differs)")
                }
            }
        } catch {
            result.problems.append(String(describing: error))
            if let error = error as? VaultError, error.code == .auditUnavailable { result.auditFailure = error }
            result.seconds = Date().timeIntervalSince(started)
            return result
        }

        // Fail closed: every shard decryption is on the audit log, durably, before it happens.
        if deep {
            do {
                try vault.audit.append(manifest.shards.map {
                    AuditEvent(action: AuditAction.shardDecrypt,
                               resource: AuditResource(dataset: dataset, generation: manifest.generation, shard: $0.file,
                                                       key: Keyring.keyId(dataset, .kek), keyVersion: $0.kekVersion))
                })
            } catch {
                result.problems.append(String(describing: error))
                result.auditFailure = error as? VaultError
                result.seconds = Date().timeIntervalSince(started)
                return result
            }
        }

        // Files that should not be there.
        if let names = try? FileIO.listDirectory(generationDir) {
            let expected = Set(manifest.shards.map(\.file))
            for name in names where !expected.contains(name) {
                result.problems.append("\(generationDir)/\(name): unexpected file in the generation folder (not in the manifest)")
            }
        } else {
            result.problems.append("\(generationDir): generation folder is missing")
        }

        let checks = CheckResults(count: manifest.shards.count)
        let next = AtomicCounter()
        let vaultId = vault.id
        let keyring = vault.keyring
        DispatchQueue.concurrentPerform(iterations: max(1, min(concurrency, manifest.shards.count))) { _ in
            while true {
                let i = next.increment()
                if i >= manifest.shards.count { return }
                let entry = manifest.shards[i]
                let path = generationDir + "/" + entry.file
                let expected = ShardExpectation(vaultId: vaultId, dataset: dataset, generation: manifest.generation,
                                                shardCount: manifest.shardCount, entry: entry, schemaId: manifest.schemaId)
                do {
                    let signingKey = try keyring.material(dataset: dataset, kind: .signing, version: entry.signingVersion)
                    if deep {
                        let kek = try keyring.material(dataset: dataset, kind: .kek, version: entry.kekVersion)
                        try ShardReader.verifyDeep(path: path, expected: expected, kek: kek, signingKey: signingKey)
                    } else {
                        try ShardReader.verifySignature(path: path, expected: expected, signingKey: signingKey)
                    }
                    checks.set(i, ShardCheck(shard: path, ok: true, problem: nil), bytes: entry.size)
                } catch let error as VaultError where error.location != nil {
                    checks.set(i, ShardCheck(shard: path, ok: false, problem: String(describing: error)), bytes: 0)
                } catch {
                    checks.set(i, ShardCheck(shard: path, ok: false, problem: "\(path): \(error)"), bytes: 0)
                }
            }
        }
        result.shards = checks.all
        result.bytesChecked = checks.bytes
        result.ok = result.problems.isEmpty && result.shards.allSatisfy(\.ok)
        result.seconds = Date().timeIntervalSince(started)
        return result
    }
}

final class CheckResults: @unchecked Sendable {
    // All state is accessed under `lock`.
    private let lock = NSLock()
    private var checks: [ShardCheck?]
    private var total = 0
    init(count: Int) { checks = Array(repeating: nil, count: count) }
    func set(_ i: Int, _ check: ShardCheck, bytes: Int) { lock.withLock { checks[i] = check; total += bytes } }
    var all: [ShardCheck] { lock.withLock { checks.compactMap { $0 } } }
    var bytes: Int { lock.withLock { total } }
}

/// Lists and describes datasets.
public struct DatasetCatalog {
    public let vault: Vault
    public init(vault: Vault) { self.vault = vault }

    /// Every dataset folder in `data/`, whether or not its manifest is intact, so that a
    /// deleted manifest shows up as a failed dataset instead of silently disappearing.
    public func names() throws -> [String] {
        guard FileIO.isDirectory(vault.layout.data) else { return [] }
        return try FileIO.listDirectory(vault.layout.data).filter {
            (try? Vault.validateDatasetName($0)) != nil && FileIO.isDirectory(vault.layout.datasetDirectory($0))
        }
    }

    /// The authenticated manifest of a dataset. No such dataset: 66; a dataset folder
    /// whose manifest is missing or fails its checks: 65.
    public func manifest(_ dataset: String) throws -> Manifest {
        try Vault.validateDatasetName(dataset)
        let directory = vault.layout.datasetDirectory(dataset)
        guard FileIO.isDirectory(directory) else { throw VaultError(.noInput, "no dataset named '\(dataset)'", location: vault.layout.data) }
        let path = directory + "/" + ManifestFile.name
        guard FileIO.exists(path) else { throw VaultError(.dataError, "manifest is missing", location: path) }
        try KeyLifecycle.checkNoPendingRotation(vault.layout, dataset)
        return try ManifestFile.load(path, dataset: dataset, vault: vault)
    }
}
