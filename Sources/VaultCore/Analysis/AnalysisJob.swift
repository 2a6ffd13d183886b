import CShims
import Foundation
import VaultCrypto
#if canImport(Glibc)
import Glibc
#endif

/// What is known of a sealed result without decrypting it: `data/<dataset>/results/<id>.json`,
/// signed with the dataset's signing key. The result itself is `<id>.svr`, sealed like a
/// shard (schema `shardvault.result.v1`) under the dataset's KEK.
public struct ResultInfo: Codable, Sendable {
    public var format: String
    public var id: String
    public var vaultId: String
    public var dataset: String
    /// Generation of the dataset analysed; also the generation in the sealed header.
    public var generation: Int
    public var created: String
    public var principal: String
    public var purpose: String
    public var specSha256: String
    public var minCell: Int
    public var groups: Int
    public var suppressed: Int
    public var shards: Int
    public var sealed: ManifestShard

    public static let format = "shardvault.result.v1"
    static let label = "shardvault/result/v1"
}

/// Runs an analysis over a dataset's sealed shards, in parallel, and seals the result.
public struct AnalysisJob {
    /// Where each task runs: a thread of this process, or a worker process of its own (a
    /// child of one of the `WorkerServers`) that gets its shard and key on standard input.
    public enum Isolation: Sendable {
        case thread
        case process(WorkerServers)
    }

    public let vault: Vault
    public var workers: Int
    public var isolation: Isolation
    /// Called from the task threads after each shard's task ends (done, total, sealed bytes
    /// of the shards done), and once with (0, total, 0) before the first starts.
    public var progress: (@Sendable (_ done: Int, _ total: Int, _ bytes: Int) -> Void)?

    public init(vault: Vault, workers: Int = ProcessInfo.processInfo.activeProcessorCount, isolation: Isolation = .thread) {
        self.vault = vault
        self.workers = max(1, workers)
        self.isolation = isolation
    }

    static func resultsDirectory(_ layout: VaultLayout, _ dataset: String) -> String { layout.datasetDirectory(dataset) + "/results" }

    /// The smallest cell size the principal's roles allow to be revealed (the largest floor).
    static func policyFloor(_ vault: Vault) -> Int? {
        guard let set = try? PolicySet.load(directory: vault.layout.policies),
              let principal = set.principals[vault.audit.context.principal] else { return nil }
        return principal.roles.compactMap { set.roles[$0]?.minCell }.max()
    }

    /// In-process workers decode shard after shard into arrays of about the same sizes. By
    /// default `malloc` gives large freed blocks back to the kernel and takes them again
    /// for the next shard, each page faulted in and zeroed anew; this keeps them (up to
    /// 256 MiB per arena) for reuse. The columns are wiped before they are freed.
    static let keepFreedMemory: Void = {
        _ = shardvault_keep_freed_memory(256 << 20, 32 << 20)
        return ()
    }()

    /// Checks every shard, decrypts it, computes the partial aggregates, merges them, applies
    /// the disclosure rule and seals the result. Any shard that fails verification fails the
    /// job (exit 65, naming the shard) and no result is written.
    public func run(_ spec: JobSpec, specBytes: [UInt8]) throws -> (info: ResultInfo, result: AnalysisResult) {
        let minCell = try spec.effectiveMinCell(policyFloor: Self.policyFloor(vault))
        let manifest = try DatasetCatalog(vault: vault).manifest(spec.dataset)
        let id = Hex.encode(try SystemRandom.bytes(8))
        let generationDir = vault.layout.datasetDirectory(spec.dataset) + "/" + manifest.generationDirectory
        // Every decryption is on the audit log before it happens.
        try vault.audit.append(manifest.shards.map {
            AuditEvent(action: AuditAction.shardDecrypt,
                       resource: AuditResource(dataset: spec.dataset, generation: manifest.generation, shard: $0.file, job: id,
                                               key: Keyring.keyId(spec.dataset, .kek), keyVersion: $0.kekVersion))
        })
        let partials = PartialResults(count: manifest.shards.count)
        let next = AtomicCounter()
        let keyring = vault.keyring
        let vaultId = vault.id
        let isolation = isolation
        let outputKey = try SecureBytes.random(count: 32)
        let specText = String(decoding: specBytes, as: UTF8.self)
        let progress = progress
        let finished = AtomicCounter(), finishedBytes = AtomicCounter()
        progress?(0, manifest.shards.count, 0)
        if case .thread = isolation { Self.keepFreedMemory }
        DispatchQueue.concurrentPerform(iterations: min(workers, manifest.shards.count)) { _ in
            // Process isolation: one fork server per lane, taken (or started) on the lane's
            // first task; each task still runs in a process of its own.
            var server: WorkerProcess?
            defer { server?.finish() }
            while true {
                let i = next.increment()
                if i >= manifest.shards.count || partials.failed { return }
                let entry = manifest.shards[i]
                let path = generationDir + "/" + entry.file
                do {
                    let kek = try keyring.material(dataset: spec.dataset, kind: .kek, version: entry.kekVersion)
                    switch isolation {
                    case .thread:
                        let signing = try keyring.material(dataset: spec.dataset, kind: .signing, version: entry.signingVersion)
                        let expected = ShardExpectation(vaultId: vaultId, dataset: spec.dataset, generation: manifest.generation,
                                                        shardCount: manifest.shardCount, entry: entry, schemaId: manifest.schemaId)
                        var shard = try ShardReader.decryptColumns(path: path, expected: expected, key: .kek(kek), signingKey: signing,
                                                                   columns: AnalysisEngine.columns(for: spec))
                        // This process goes on: nothing of the shard's plaintext is left in its memory.
                        defer { shard.wipe() }
                        partials.set(i, try AnalysisEngine.evaluate(spec, shard: shard))
                    case .process(let servers):
                        // The worker gets this shard's DEK only, unwrapped here from a header
                        // that matches the manifest; the KEK stays in this process.
                        let expected = ShardExpectation(vaultId: vaultId, dataset: spec.dataset, generation: manifest.generation,
                                                        shardCount: manifest.shardCount, entry: entry, schemaId: manifest.schemaId)
                        let dek = try ShardReader.unwrapDEK(path: path, expected: expected, kek: kek)
                        let task = WorkerTask(job: id, spec: specText, path: path, vaultId: Hex.encode(vaultId), dataset: spec.dataset,
                                              generation: manifest.generation, shardCount: manifest.shardCount, entry: entry, schemaId: manifest.schemaId)
                        if server == nil { server = try servers.take() }
                        partials.set(i, try server!.run(task, dek: dek, outputKey: outputKey))
                    }
                } catch {
                    partials.fail(error)
                }
                if let progress {
                    let bytes = finishedBytes.add(entry.size)
                    progress(finished.increment() + 1, manifest.shards.count, bytes)
                }
            }
        }
        if let error = partials.firstError {
            if let error = error as? VaultError, error.code == .dataError || error.location != nil {
                throw VaultError(.dataError, "the job failed, no result was written: \(error.message)", location: error.location)
            }
            throw error
        }
        var merged = PartialAggregate(observationMeasures: spec.measures.filter { if case .observation = $0 { return true } else { return false } }.count)
        for p in partials.all { merged.merge(p) }
        let result = AnalysisResult.finish(merged, spec: spec, id: id, minCell: minCell)
        let info = try seal(result, spec: spec, specBytes: specBytes, manifest: manifest)
        return (info, result)
    }

    private func seal(_ result: AnalysisResult, spec: JobSpec, specBytes: [UInt8], manifest: Manifest) throws -> ResultInfo {
        let dataset = spec.dataset
        guard let kekRecord = vault.keyring.active(dataset, .kek), let signingRecord = vault.keyring.active(dataset, .signing) else {
            throw VaultError(.configuration, "dataset '\(dataset)' has no active KEK or signing key")
        }
        let kek = try vault.keyring.material(dataset: dataset, kind: .kek, version: kekRecord.version)
        let signing = try vault.keyring.material(dataset: dataset, kind: .signing, version: signingRecord.version)
        let directory = Self.resultsDirectory(vault.layout, dataset)
        try FileIO.makeDirectory(directory, mode: 0o750)
        var plaintext = try result.json()
        defer { secureWipe(&plaintext) }
        let sealedPath = directory + "/" + result.id + ".svr"
        let sealed = try plaintext.withUnsafeBytes {
            try ShardSealer.seal(plaintext: $0, to: sealedPath, vaultId: vault.id, dataset: dataset, generation: UInt64(manifest.generation),
                                 shardIndex: 0, shardCount: 1, schemaId: ResultInfo.format,
                                 kek: (kekRecord.id, kekRecord.version, kek), signing: (signingRecord.id, signingRecord.version, signing))
        }
        let entry = ManifestShard(index: 0, file: result.id + ".svr", size: sealed.size, headerSha256: Hex.encode(sealed.headerSha256),
                                  bodySha256: Hex.encode(sealed.bodySha256), dataKeyId: Hex.encode(sealed.header.dataKeyId),
                                  kekVersion: kekRecord.version, signingVersion: signingRecord.version, records: RecordCounts())
        let info = ResultInfo(format: ResultInfo.format, id: result.id, vaultId: vault.idHex, dataset: dataset, generation: manifest.generation,
                              created: AuditTime.now(), principal: vault.audit.context.principal, purpose: spec.purpose,
                              specSha256: Hex.encode(Digest.sha256(specBytes)), minCell: result.minCell, groups: result.groups.count,
                              suppressed: result.groups.filter(\.suppressed).count, shards: manifest.shardCount, sealed: entry)
        // The signed metadata is the commit point: a result without it does not exist.
        try vault.audit.append(AuditEvent(action: AuditAction.resultWrite,
                                          resource: AuditResource(dataset: dataset, generation: manifest.generation, result: result.id,
                                                                  key: kekRecord.id, keyVersion: kekRecord.version, sha256: entry.bodySha256,
                                                                  size: entry.size)))
        try FileIO.writeAtomically(try Self.signedInfo(info, signing: signing, version: signingRecord.version), to: directory + "/" + result.id + ".json",
                                   mode: 0o640, exclusive: true)
        return info
    }

    static func signedInfo(_ info: ResultInfo, signing: SecureBytes, version: Int) throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let body = [UInt8](try encoder.encode(info))
        let mac = try HMACSHA256.authenticate(key: signing, Array(ResultInfo.label.utf8) + [0] + body)
        let signature = "{\"alg\":\"HMAC-SHA256\",\"keyId\":\"\(Keyring.keyId(info.dataset, .signing))\",\"keyVersion\":\(version),\"mac\":\"\(Hex.encode(mac))\"}"
        return body + [0x0A] + Array(signature.utf8) + [0x0A]
    }
}

/// Sealed results: listing, metadata and reveal.
public struct ResultStore {
    public let vault: Vault
    public init(vault: Vault) { self.vault = vault }

    /// Every result's signed metadata, newest first.
    public func list() throws -> [ResultInfo] {
        var out: [ResultInfo] = []
        for dataset in try DatasetCatalog(vault: vault).names() {
            let directory = AnalysisJob.resultsDirectory(vault.layout, dataset)
            guard FileIO.isDirectory(directory) else { continue }
            for name in try FileIO.listDirectory(directory) where name.hasSuffix(".json") {
                out.append(try info(path: directory + "/" + name, dataset: dataset))
            }
        }
        return out.sorted { $0.created > $1.created }
    }

    /// The dataset holding result `id`, from the file names alone (no key used).
    public func dataset(of id: String) throws -> String {
        guard id.utf8.count == 16, id.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) }) else {
            throw VaultError(.usage, "a result id is 16 lower-case hex digits")
        }
        for dataset in try DatasetCatalog(vault: vault).names()
        where FileIO.exists(AnalysisJob.resultsDirectory(vault.layout, dataset) + "/" + id + ".json") {
            return dataset
        }
        throw VaultError(.noInput, "no result '\(id)'", location: vault.layout.data)
    }

    /// The purpose a result was computed for, read without checking the signature: only a
    /// default for the purpose of a reveal, which the policy then decides on.
    public func purposeHint(_ id: String) throws -> String {
        let path = AnalysisJob.resultsDirectory(vault.layout, try dataset(of: id)) + "/" + id + ".json"
        let bytes = try FileIO.readAll(path)
        struct Hint: Decodable { var purpose: String }
        guard let hint = try? JSONDecoder().decode(Hint.self, from: Data(bytes.prefix { $0 != 0x0A })) else {
            throw VaultError(.dataError, "result metadata is malformed", location: path)
        }
        return hint.purpose
    }

    /// The metadata of result `id`, its signature checked.
    public func info(_ id: String) throws -> ResultInfo {
        let dataset = try dataset(of: id)
        return try info(path: AnalysisJob.resultsDirectory(vault.layout, dataset) + "/" + id + ".json", dataset: dataset)
    }

    func info(path: String, dataset: String) throws -> ResultInfo {
        let bytes = try FileIO.readAll(path)
        guard let newline = bytes.firstIndex(of: 0x0A) else { throw VaultError(.dataError, "result metadata is malformed", location: path) }
        let body = Array(bytes[..<newline])
        struct Signature: Decodable { var alg: String; var keyId: String; var keyVersion: Int; var mac: String }
        guard let signature = try? JSONDecoder().decode(Signature.self, from: Data(bytes[(newline + 1)...].prefix { $0 != 0x0A })),
              signature.alg == "HMAC-SHA256", signature.keyId == Keyring.keyId(dataset, .signing), let mac = Hex.decode(signature.mac) else {
            throw VaultError(.dataError, "result metadata has no valid signature line", location: path)
        }
        let key = try vault.keyring.material(dataset: dataset, kind: .signing, version: signature.keyVersion)
        guard try HMACSHA256.verify(key: key, Array(ResultInfo.label.utf8) + [0] + body, tag: mac), mac.count == 32 else {
            throw VaultError(.dataError, "result metadata signature does not verify: altered, or from another dataset", location: path)
        }
        let info: ResultInfo
        do { info = try JSONDecoder().decode(ResultInfo.self, from: Data(body)) } catch {
            throw VaultError(.dataError, "result metadata is malformed", location: path, underlying: error)
        }
        guard info.format == ResultInfo.format, info.dataset == dataset, info.vaultId == vault.idHex,
              path.hasSuffix("/" + info.id + ".json"), info.sealed.file == info.id + ".svr" else {
            throw VaultError(.dataError, "result metadata does not belong here (dataset, vault or id differ)", location: path)
        }
        return info
    }

    /// The signing key version named on a result metadata file's signature line.
    static func signatureVersion(path: String) throws -> Int {
        let bytes = try FileIO.readAll(path)
        struct Signature: Decodable { var keyVersion: Int }
        guard let newline = bytes.firstIndex(of: 0x0A),
              let signature = try? JSONDecoder().decode(Signature.self, from: Data(bytes[(newline + 1)...].prefix { $0 != 0x0A })) else {
            throw VaultError(.dataError, "result metadata has no valid signature line", location: path)
        }
        return signature.keyVersion
    }

    /// Decrypts a result after checking its signature and seal; the caller has recorded the
    /// reveal. Returns the result JSON.
    public func reveal(_ info: ResultInfo) throws -> [UInt8] {
        try KeyLifecycle.checkNoPendingRotation(vault.layout, info.dataset)
        let path = AnalysisJob.resultsDirectory(vault.layout, info.dataset) + "/" + info.sealed.file
        let kek = try vault.keyring.material(dataset: info.dataset, kind: .kek, version: info.sealed.kekVersion)
        let signing = try vault.keyring.material(dataset: info.dataset, kind: .signing, version: info.sealed.signingVersion)
        let expected = ShardExpectation(vaultId: vault.id, dataset: info.dataset, generation: info.generation, shardCount: 1,
                                        entry: info.sealed, schemaId: ResultInfo.format)
        let (_, plaintext, length) = try ShardReader.read(path: path, expected: expected, signingKey: signing, kek: kek)
        guard let plaintext else { throw VaultError(.software, "no plaintext", location: path) }
        return plaintext.withUnsafeBytes { Array($0[0..<length]) }
    }

    /// CSV of a revealed result: one row per group, measure and statistic.
    public static func csv(fromJSON bytes: [UInt8]) throws -> String {
        guard let object = try JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any], let groups = object["groups"] as? [[String: Any]] else {
            throw VaultError(.dataError, "result is not the expected JSON")
        }
        func field(_ s: String) -> String { s.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" }) ? "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : s }
        func text(_ v: Any?) -> String {
            switch v {
            case let n as NSNumber: return n.stringValue
            case let s as String: return s
            default: return ""
            }
        }
        var out = "group,suppressed,measure,statistic,value\n"
        for g in groups {
            let key = field(((g["key"] as? [String: String]) ?? [:]).sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ";"))
            if (g["suppressed"] as? Bool) == true { out += "\(key),true,,,\n"; continue }
            for (name, value) in ((g["measures"] as? [String: Any]) ?? [:]).sorted(by: { $0.key < $1.key }) {
                if let stats = value as? [String: Any] {
                    for (stat, v) in stats.sorted(by: { $0.key < $1.key }) { out += "\(key),false,\(field(name)),\(stat),\(text(v))\n" }
                } else {
                    out += "\(key),false,\(field(name)),count,\(text(value))\n"
                }
            }
        }
        return out
    }
}

/// Partial aggregates of the parallel tasks, guarded by a lock.
final class PartialResults: @unchecked Sendable {
    // All state is accessed under `lock`.
    private let lock = NSLock()
    private var items: [PartialAggregate?]
    private var error: (any Error)?
    init(count: Int) { items = Array(repeating: nil, count: count) }
    func set(_ i: Int, _ p: PartialAggregate) { lock.withLock { items[i] = p } }
    func fail(_ e: any Error) { lock.withLock { if error == nil { error = e } } }
    var failed: Bool { lock.withLock { error != nil } }
    var firstError: (any Error)? { lock.withLock { error } }
    var all: [PartialAggregate] { lock.withLock { items.compactMap { $0 } } }
}
