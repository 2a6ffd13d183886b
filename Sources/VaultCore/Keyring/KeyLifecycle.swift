import Foundation
import VaultCrypto
#if canImport(Glibc)
import Glibc
#endif

/// Where each key version of a dataset is referenced: shards of the current generation,
/// the manifest, and sealed results with their signed metadata.
public struct KeyUsage: Codable, Sendable {
    public struct Reference: Codable, Sendable, Equatable {
        /// Path relative to the dataset folder.
        public var file: String
        public var kind: KeyKind
        public var version: Int
    }
    public var dataset: String
    public var references: [Reference]

    /// Number of files referencing each (kind, version).
    public func count(_ kind: KeyKind, _ version: Int) -> Int {
        Set(references.filter { $0.kind == kind && $0.version == version }.map(\.file)).count
    }
}

/// What a header rewrite (rewrap, re-signing) did.
public struct RewriteReport: Codable, Sendable {
    public var dataset: String
    public var kekVersion: Int
    public var signingVersion: Int
    public var shards: Int
    public var results: Int
    /// Files written by this run (the rest were already at the target: a resumed run).
    public var written: Int
    public var resumed: Bool
    public var manifestSha256: String?
    public var seconds: Double
}

/// Key lifecycle operations on a dataset: rotate, rewrap, re-sign, retire, destroy, usage.
/// Each is audited before it acts, and each can be killed at any point and run again to
/// finish (docs/key-lifecycle.md).
public struct KeyLifecycle {
    public let vault: Vault
    public var concurrency: Int = ProcessInfo.processInfo.activeProcessorCount
    /// Called after each file rewritten (done, total).
    public var progress: (@Sendable (Int, Int) -> Void)?

    public init(vault: Vault) { self.vault = vault }

    static let rotationFolder = ".rotation"
    static let planFile = "plan.json"
    static let journalFile = "journal"

    struct Plan: Codable {
        var format = "shardvault.rotation.v1"
        var kekVersion: Int
        var signingVersion: Int
        /// SHA-256 of the manifest being rewritten: once the manifest on disk differs, the
        /// rewrite was committed and only the clean-up remains.
        var manifestSha256: String
        var started: String
    }

    static func rotationDirectory(_ layout: VaultLayout, _ dataset: String) -> String {
        layout.datasetDirectory(dataset) + "/" + rotationFolder
    }

    /// Refuses to read a dataset while a rotation of it is unfinished: its files are then
    /// partly at the old key versions and partly at the new ones, and only finishing the
    /// rotation makes the manifest describe them again.
    static func checkNoPendingRotation(_ layout: VaultLayout, _ dataset: String) throws {
        let plan = rotationDirectory(layout, dataset) + "/" + planFile
        if FileIO.exists(plan) {
            throw VaultError(.dataError, "dataset '\(dataset)' has an unfinished key rotation (a rewrap or re-signing was interrupted); run 'shardvault keys rewrap --dataset \(dataset)' to finish it", location: plan)
        }
    }

    // MARK: Usage

    /// The current manifest (read even while a rotation is pending) and its bytes.
    func manifest(_ dataset: String) throws -> (Manifest, [UInt8]) {
        try Vault.validateDatasetName(dataset)
        let directory = vault.layout.datasetDirectory(dataset)
        guard FileIO.isDirectory(directory) else { throw VaultError(.noInput, "no dataset named '\(dataset)'", location: vault.layout.data) }
        let path = directory + "/" + ManifestFile.name
        let bytes = try FileIO.readAll(path, missing: .dataError)
        return (try ManifestFile.load(bytes: bytes, path: path, dataset: dataset, vault: vault), bytes)
    }

    /// Every sealed result of the dataset with its signed metadata.
    func results(_ dataset: String) throws -> [(info: ResultInfo, signatureVersion: Int)] {
        let directory = AnalysisJob.resultsDirectory(vault.layout, dataset)
        guard FileIO.isDirectory(directory) else { return [] }
        var out: [(ResultInfo, Int)] = []
        for name in try FileIO.listDirectory(directory).sorted() where name.hasSuffix(".json") {
            let path = directory + "/" + name
            let info = try ResultStore(vault: vault).info(path: path, dataset: dataset)
            out.append((info, try ResultStore.signatureVersion(path: path)))
        }
        return out
    }

    public func usage(_ dataset: String) throws -> KeyUsage {
        let (manifest, _) = try manifest(dataset)
        var refs: [KeyUsage.Reference] = []
        refs.append(.init(file: ManifestFile.name, kind: .signing, version: manifest.signing.version))
        refs.append(.init(file: ManifestFile.name, kind: .partition, version: manifest.partition.version))
        for shard in manifest.shards {
            let file = manifest.generationDirectory + "/" + shard.file
            refs.append(.init(file: file, kind: .kek, version: shard.kekVersion))
            refs.append(.init(file: file, kind: .signing, version: shard.signingVersion))
        }
        for (info, signatureVersion) in try results(dataset) {
            refs.append(.init(file: "results/" + info.sealed.file, kind: .kek, version: info.sealed.kekVersion))
            refs.append(.init(file: "results/" + info.sealed.file, kind: .signing, version: info.sealed.signingVersion))
            refs.append(.init(file: "results/" + info.id + ".json", kind: .signing, version: signatureVersion))
        }
        return KeyUsage(dataset: dataset, references: refs)
    }

    // MARK: Rotate

    /// A new version of the dataset's KEK or signing key becomes active; the previous one
    /// becomes decrypt-only. Refused while a rotation of the dataset is unfinished.
    public func rotate(_ dataset: String, _ kind: KeyKind) throws -> KeyRecord {
        guard kind != .partition else {
            throw VaultError(.usage, "the partition key cannot be rotated in place: it decides each patient's pseudonym and shard; ingest the data again into a new dataset instead")
        }
        _ = try manifest(dataset)
        try Self.checkNoPendingRotation(vault.layout, dataset)
        let id = Keyring.keyId(dataset, kind)
        let next = (vault.keyring.records.filter { $0.id == id }.map(\.version).max() ?? 0) + 1
        try vault.audit.append(AuditEvent(action: AuditAction.keyCreate, resource: AuditResource(dataset: dataset, key: id, keyVersion: next)))
        let (record, _) = try vault.keyring.rotate(dataset, kind)
        try FaultInjection.point("rotate.before-save")
        try vault.keyring.save()
        return record
    }

    /// `keys rotate --signing`: a new signing key version, then every shard, result and the
    /// manifest re-signed with it (no DEK is unwrapped, nothing decrypted). Run again after
    /// an interruption, it finishes the same rotation instead of starting another: the
    /// active signing version not yet on the manifest means one is under way.
    public func rotateSigning(_ dataset: String) throws -> (record: KeyRecord, report: RewriteReport) {
        let (manifest, _) = try manifest(dataset)
        let pending = FileIO.exists(Self.rotationDirectory(vault.layout, dataset) + "/" + Self.planFile)
        if let active = vault.keyring.active(dataset, .signing), pending || active.version != manifest.signing.version {
            return (active, try rewriteHeaders(dataset))
        }
        let record = try rotate(dataset, .signing)
        return (record, try rewriteHeaders(dataset))
    }

    // MARK: Rewrite headers (rewrap, re-sign)

    /// Rewrites every shard of the current generation and every sealed result of the dataset
    /// so that their DEKs are wrapped under the active KEK and their MACs (and the manifest's
    /// and results' signatures) made under the active signing key. Only headers, trailers,
    /// result metadata and the manifest are written: no shard body is read or decrypted.
    ///
    /// Crash safety: before the first file is touched, the ends of every file are saved in a
    /// journal and a plan marks the rotation pending (readers then refuse the dataset, with a
    /// message saying how to finish). Each file is rewritten in place and synced; a run after
    /// a crash puts a torn file back from the journal and goes on. Throughout, every file is
    /// either as the old manifest says or at the target versions, and both key versions
    /// exist, so no file is ever readable by neither. The new manifest is the commit point.
    public func rewriteHeaders(_ dataset: String) throws -> RewriteReport {
        let started = Date()
        guard let kekRecord = vault.keyring.active(dataset, .kek), let signingRecord = vault.keyring.active(dataset, .signing) else {
            throw VaultError(.configuration, "dataset '\(dataset)' has no active KEK or signing key")
        }
        let kek = kekRecord.version, signing = signingRecord.version
        let datasetDir = vault.layout.datasetDirectory(dataset)
        let rotationDir = Self.rotationDirectory(vault.layout, dataset)
        let planPath = rotationDir + "/" + Self.planFile
        let journalPath = rotationDir + "/" + Self.journalFile
        let (manifest, manifestBytes) = try manifest(dataset)
        let manifestSha = Hex.encode(Digest.sha256(manifestBytes))
        var report = RewriteReport(dataset: dataset, kekVersion: kek, signingVersion: signing, shards: manifest.shardCount, results: 0,
                                   written: 0, resumed: false, manifestSha256: nil, seconds: 0)

        var saved: [String: SealedEnds] = [:]
        if FileIO.exists(planPath) {
            report.resumed = true
            let plan: Plan
            do { plan = try JSONDecoder().decode(Plan.self, from: Data(try FileIO.readAll(planPath))) } catch let error as VaultError {
                throw error
            } catch {
                throw VaultError(.dataError, "rotation plan is not valid JSON", location: planPath, underlying: error)
            }
            guard plan.kekVersion == kek, plan.signingVersion == signing else {
                throw VaultError(.dataError, "the unfinished rotation targets KEK version \(plan.kekVersion) and signing version \(plan.signingVersion), but the active versions are \(kek) and \(signing)", location: planPath)
            }
            if plan.manifestSha256 != manifestSha {
                // Committed before the interruption: only the clean-up was left.
                guard manifest.shards.allSatisfy({ $0.kekVersion == kek && $0.signingVersion == signing }) else {
                    throw VaultError(.dataError, "the manifest changed while a rotation was unfinished and does not describe its result", location: planPath)
                }
                try finish(rotationDir: rotationDir, datasetDir: datasetDir)
                report.manifestSha256 = manifestSha
                report.seconds = Date().timeIntervalSince(started)
                return report
            }
            saved = try RotationJournal.decode(try FileIO.readAll(journalPath, missing: .dataError), path: journalPath)
        }

        let generationDir = datasetDir + "/" + manifest.generationDirectory
        let shardObjects = manifest.shards.map {
            SealedObject(name: manifest.generationDirectory + "/" + $0.file, path: generationDir + "/" + $0.file,
                         expected: ShardExpectation(vaultId: vault.id, dataset: dataset, generation: manifest.generation,
                                                    shardCount: manifest.shardCount, entry: $0, schemaId: manifest.schemaId))
        }
        let resultsDir = AnalysisJob.resultsDirectory(vault.layout, dataset)
        let results = try self.results(dataset)
        report.results = results.count
        let resultObjects = results.map {
            SealedObject(name: "results/" + $0.info.sealed.file, path: resultsDir + "/" + $0.info.sealed.file,
                         expected: ShardExpectation(vaultId: vault.id, dataset: dataset, generation: $0.info.generation, shardCount: 1,
                                                    entry: $0.info.sealed, schemaId: ResultInfo.format))
        }
        let needsWork = manifest.kek.version != kek || manifest.signing.version != signing
            || manifest.shards.contains { $0.kekVersion != kek || $0.signingVersion != signing }
            || results.contains { $0.info.sealed.kekVersion != kek || $0.info.sealed.signingVersion != signing || $0.signatureVersion != signing }
        guard needsWork || report.resumed else {
            report.seconds = Date().timeIntervalSince(started)
            return report
        }

        if !report.resumed {
            // Every file must be intact before anything is written; their ends go to the journal.
            var entries: [(name: String, ends: SealedEnds)] = []
            for object in shardObjects + resultObjects {
                let ends = try Self.readEnds(object)
                guard try HeaderRewrite.classify(ends, object: object, keyring: vault.keyring, kek: kek, signing: signing) != nil else {
                    throw VaultError(.dataError, "header or trailer does not match the manifest (altered or damaged); nothing was rewritten", location: object.path)
                }
                entries.append((object.name, ends))
                saved[object.name] = ends
            }
            // On the audit log before anything changes: one entry per file to rewrite.
            try vault.audit.append((shardObjects + resultObjects).map {
                AuditEvent(action: AuditAction.shardRewrap,
                           resource: AuditResource(dataset: dataset, generation: $0.expected.generation, shard: $0.name,
                                                   key: kekRecord.id, keyVersion: kek))
            })
            try FileIO.makeDirectory(rotationDir, mode: 0o700)
            try FileIO.writeAtomically(RotationJournal.encode(entries), to: journalPath, mode: 0o600)
            try FaultInjection.point("rewrap.journal")
            let plan = Plan(kekVersion: kek, signingVersion: signing, manifestSha256: manifestSha, started: Timestamp.rfc3339(started))
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            try FileIO.writeAtomically([UInt8](try encoder.encode(plan)) + [10], to: planPath, mode: 0o600)
            try FileIO.fsyncDirectory(datasetDir)
            try FaultInjection.point("rewrap.plan")
        }

        // Shards, in parallel; each file synced before it counts as done.
        let outcomes = RewriteOutcomes(count: shardObjects.count)
        let next = AtomicCounter()
        let keyring = vault.keyring
        let progress = progress
        let total = shardObjects.count + resultObjects.count
        let savedEnds = saved
        DispatchQueue.concurrentPerform(iterations: max(1, min(concurrency, shardObjects.count))) { _ in
            while true {
                let i = next.increment()
                if i >= shardObjects.count || outcomes.failed { return }
                do {
                    let outcome = try HeaderRewrite.apply(shardObjects[i], saved: savedEnds[shardObjects[i].name], keyring: keyring, kek: kek, signing: signing)
                    let done = outcomes.set(i, outcome)
                    try FaultInjection.point("rewrap.file")
                    progress?(done, total)
                } catch {
                    outcomes.fail(error)
                }
            }
        }
        if let error = outcomes.firstError { throw error }
        var entries = manifest.shards
        for (i, outcome) in outcomes.all.enumerated() {
            entries[i].headerSha256 = outcome.headerSha256
            entries[i].kekVersion = kek
            entries[i].signingVersion = signing
        }
        var written = outcomes.all.filter(\.written).count
        // DEKs wrapped under the target KEK by this run (re-signing alone wraps none).
        var wraps = zip(manifest.shards, outcomes.all).filter { $0.0.kekVersion != kek && $0.1.written }.count

        // Results: the sealed file, then its signed metadata (the result's own commit point).
        let signingKey = try vault.keyring.material(dataset: dataset, kind: .signing, version: signing)
        for (n, (object, result)) in zip(resultObjects, results).enumerated() {
            let outcome = try HeaderRewrite.apply(object, saved: saved[object.name], keyring: keyring, kek: kek, signing: signing)
            if outcome.written { written += 1 }
            if outcome.written && result.info.sealed.kekVersion != kek { wraps += 1 }
            var info = result.info
            info.sealed.headerSha256 = outcome.headerSha256
            info.sealed.kekVersion = kek
            info.sealed.signingVersion = signing
            if outcome.written || result.signatureVersion != signing || result.info.sealed != info.sealed {
                try FileIO.writeAtomically(try AnalysisJob.signedInfo(info, signing: signingKey, version: signing),
                                           to: resultsDir + "/" + info.id + ".json", mode: 0o640)
            }
            try FaultInjection.point("rewrap.file")
            progress?(shardObjects.count + n + 1, total)
        }

        // The commit point: the manifest describing the rewritten files, signed with the
        // active signing key, chained to the one it replaces, and recorded on the audit log.
        var rewritten = manifest
        rewritten.shards = entries
        rewritten.kek = KeyRef(id: kekRecord.id, version: kek)
        rewritten.signing = KeyRef(id: signingRecord.id, version: signing)
        rewritten.created = Timestamp.rfc3339(Date())
        rewritten.previousManifestSha256 = manifestSha
        let bytes = try ManifestFile.encode(rewritten, signingKey: signingKey)
        try FaultInjection.point("rewrap.before-manifest")
        try FileIO.writeAtomically(bytes, to: datasetDir + "/" + ManifestFile.name, mode: 0o640)
        let newSha = Hex.encode(Digest.sha256(bytes))
        try vault.audit.append(AuditEvent(action: AuditAction.manifestCommit,
                                          resource: AuditResource(dataset: dataset, generation: manifest.generation, key: kekRecord.id,
                                                                  keyVersion: kek, sha256: newSha, size: bytes.count)))
        try FaultInjection.point("rewrap.manifest")
        try finish(rotationDir: rotationDir, datasetDir: datasetDir)
        if wraps > 0 { vault.keyring.recordUses(id: kekRecord.id, version: kek, count: wraps) }
        try vault.keyring.save()
        report.written = written
        report.manifestSha256 = newSha
        report.seconds = Date().timeIntervalSince(started)
        return report
    }

    private func finish(rotationDir: String, datasetDir: String) throws {
        // The plan goes first: without it the dataset is readable again.
        let plan = rotationDir + "/" + Self.planFile
        if FileIO.exists(plan) && unlink(plan) != 0 {
            throw VaultError.system(.ioError, "cannot remove the rotation plan", path: plan, errno: errno)
        }
        try FileIO.fsyncDirectory(rotationDir)
        FileIO.removeTree(rotationDir)
        try FileIO.fsyncDirectory(datasetDir)
    }

    static func readEnds(_ object: SealedObject) throws -> SealedEnds {
        let fd = open(object.path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw VaultError.system(errno == ENOENT ? .dataError : .ioError, "shard missing or unreadable", path: object.path, errno: errno) }
        defer { close(fd) }
        return try SealedEnds.read(fd, size: try SealedEnds.checkedSize(fd, object), path: object.path)
    }

    // MARK: Retire, destroy

    /// Destroys the material of the dataset's `kind` key versions below `floor` and marks
    /// them retired, after checking that nothing references them: a shard, a result or the
    /// manifest still using such a version makes it refuse (exit 65), naming them.
    public func retire(_ dataset: String, _ kind: KeyKind, below floor: Int) throws -> [KeyRecord] {
        try Self.checkNoPendingRotation(vault.layout, dataset)
        guard let active = vault.keyring.active(dataset, kind) else {
            throw VaultError(.configuration, "dataset '\(dataset)' has no active \(kind.rawValue) key")
        }
        guard floor <= active.version else {
            throw VaultError(.usage, "--below \(floor) would retire the active version \(active.version) of \(active.id); rotate first")
        }
        let usage = try usage(dataset)
        let blocking = usage.references.filter { $0.kind == kind && $0.version < floor }
        if !blocking.isEmpty {
            let files = Array(Set(blocking.map(\.file))).sorted()
            let shown = files.prefix(5).joined(separator: ", ")
            throw VaultError(.dataError, "\(files.count) file(s) still reference \(Keyring.keyId(dataset, kind)) below version \(floor): \(shown)\(files.count > 5 ? ", ..." : ""); run 'shardvault keys rewrap --dataset \(dataset)' first",
                             location: vault.layout.datasetDirectory(dataset))
        }
        let candidates = vault.keyring.records.filter {
            $0.dataset == dataset && $0.kind == kind && $0.version < floor && $0.state != .retired && $0.state != .destroyed
        }
        guard !candidates.isEmpty else { return [] }
        try vault.audit.append(candidates.map {
            AuditEvent(action: AuditAction.keyRetire, resource: AuditResource(dataset: dataset, key: $0.id, keyVersion: $0.version))
        })
        let retired = vault.keyring.retire(dataset, kind, below: floor)
        try vault.keyring.save()
        return retired
    }

    /// `keys rotate --root`: every key version that has material is re-wrapped under a new
    /// root key, and the old root key is wiped. Steps, each resumable: the new key is written
    /// to `keys/root.key.next`; the keyring is saved re-wrapped under it (the commit point);
    /// `keys/root.key` is overwritten with zeros and synced, and the new key renamed over
    /// it. A vault opened in between loads both files and uses whichever each entry needs.
    public func rotateRoot() throws -> (old: Int, new: Int) {
        let layout = vault.layout
        let old = vault.keyring.rootVersion
        let next: RootKey
        if FileIO.exists(layout.nextRootKeyFile) {
            next = try RootKey.load(from: layout.nextRootKeyFile)
        } else {
            try vault.audit.append(AuditEvent(action: AuditAction.keyCreate, resource: AuditResource(vault: vault.idHex, key: "root", keyVersion: old + 1)))
            next = try RootKey.create(at: layout.nextRootKeyFile, version: old + 1)
            try FileIO.fsyncDirectory(layout.keys)
        }
        try FaultInjection.point("root.next")
        try vault.keyring.adopt(root: next)
        try vault.keyring.save()
        try FaultInjection.point("root.keyring")
        let retiring = (try? RootKey.load(from: layout.rootKeyFile))?.version
        try vault.audit.append(AuditEvent(action: AuditAction.keyDestroy, resource: AuditResource(vault: vault.idHex, key: "root", keyVersion: retiring ?? old)))
        try Self.wipe(layout.rootKeyFile)
        try FaultInjection.point("root.wiped")
        guard rename(layout.nextRootKeyFile, layout.rootKeyFile) == 0 else {
            throw VaultError.system(.ioError, "cannot move the new root key into place", path: layout.rootKeyFile, errno: errno)
        }
        try FileIO.fsyncDirectory(layout.keys)
        return (retiring ?? old, next.version)
    }

    /// Overwrites a key file with zeros and syncs it, so the key does not survive on disk in
    /// the file's blocks once it is replaced.
    static func wipe(_ path: String) throws {
        let fd = open(path, O_WRONLY | O_CLOEXEC)
        guard fd >= 0 else {
            if errno == ENOENT { return }
            throw VaultError.system(.ioError, "cannot open key file to wipe it", path: path, errno: errno)
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw VaultError.system(.ioError, "cannot stat key file", path: path, errno: errno) }
        let zeros = [UInt8](repeating: 0, count: Int(st.st_size))
        let n = zeros.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
        guard n == zeros.count, fsync(fd) == 0 else { throw VaultError.system(.ioError, "cannot wipe key file", path: path, errno: errno) }
        try FaultInjection.point("sync")
    }

    /// `keys destroy`: crypto-shredding. Every key version of the dataset (KEK, signing,
    /// partition) loses its material, recorded on the audit log first; then the root key is
    /// rotated, so that no earlier copy of the keyring file can bring the material back. The
    /// sealed files stay, unreadable: every later read fails naming the destruction.
    public func destroy(_ dataset: String) throws -> [KeyRecord] {
        try Vault.validateDatasetName(dataset)
        guard vault.keyring.records.contains(where: { $0.dataset == dataset }) else {
            throw VaultError(.noInput, "no keys for dataset '\(dataset)'", location: vault.layout.keys)
        }
        let doomed = vault.keyring.records.filter { $0.dataset == dataset && $0.state != .destroyed }
        if !doomed.isEmpty {
            try vault.audit.append(doomed.map {
                AuditEvent(action: AuditAction.keyDestroy, resource: AuditResource(dataset: dataset, key: $0.id, keyVersion: $0.version))
            })
        }
        let destroyed = vault.keyring.destroy(dataset)
        try vault.keyring.save()
        try FaultInjection.point("destroy.keyring")
        // A rotation left unfinished can never finish now; its journal holds no key material.
        FileIO.removeTree(Self.rotationDirectory(vault.layout, dataset))
        _ = try rotateRoot()
        return destroyed
    }
}

/// Outcomes of the parallel header rewrites, guarded by a lock.
final class RewriteOutcomes: @unchecked Sendable {
    // All state is accessed under `lock`.
    private let lock = NSLock()
    private var items: [(headerSha256: String, written: Bool)?]
    private var error: (any Error)?
    private var done = 0
    init(count: Int) { items = Array(repeating: nil, count: count) }
    /// Records one outcome; returns how many are recorded.
    func set(_ i: Int, _ outcome: (headerSha256: String, written: Bool)) -> Int {
        lock.withLock { items[i] = outcome; done += 1; return done }
    }
    func fail(_ e: any Error) { lock.withLock { if error == nil { error = e } } }
    var failed: Bool { lock.withLock { error != nil } }
    var firstError: (any Error)? { lock.withLock { error } }
    var all: [(headerSha256: String, written: Bool)] { lock.withLock { items.map { $0! } } }
}

/// Usage bounds for key versions (docs/key-lifecycle.md). A KEK wraps each DEK with
/// AES-256-GCM under a fresh random 96-bit nonce; NIST SP 800-38D (section 8.3) allows at
/// most 2^32 such encryptions per key, keeping the chance of a repeated nonce below 2^-32.
/// Rotation is advised at half that bound, so that it can be scheduled well before.
public enum KeyLimits {
    public static let kekEncryptionLimit = 1 << 32
    public static let rotationAdvised = 1 << 31

    /// Why a version should be rotated, or nil.
    public static func advice(_ record: KeyRecord) -> String? {
        guard record.kind == .kek, record.state == .active || record.state == .decryptOnly else { return nil }
        if record.uses >= kekEncryptionLimit { return "over the limit of 2^32 encryptions: rotate now" }
        if record.uses >= rotationAdvised { return "\(record.uses) encryptions, past 2^31: rotation advised" }
        return nil
    }
}
