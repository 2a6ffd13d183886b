import Foundation
import VaultCrypto

/// The folders of a vault. The repository root doubles as a working vault.
public struct VaultLayout: Sendable {
    public let root: String
    public var keys: String { root + "/keys" }
    public var policies: String { root + "/policies" }
    public var audit: String { root + "/audit" }
    public var data: String { root + "/data" }
    var vaultFile: String { keys + "/vault.json" }
    var rootKeyFile: String { keys + "/root.key" }
    /// The next root key while a root rotation is unfinished.
    var nextRootKeyFile: String { keys + "/root.key.next" }
    var keyringFile: String { keys + "/keyring.json" }

    public init(root: String) {
        var trimmed = root
        while trimmed.count > 1 && trimmed.hasSuffix("/") { trimmed.removeLast() }
        self.root = trimmed.isEmpty ? "." : trimmed
    }

    func datasetDirectory(_ dataset: String) -> String { data + "/" + dataset }
}

struct VaultFile: Codable {
    var format: String
    var vaultId: String
    var created: String
    /// Size at which the audit log starts a new segment.
    var auditSegmentBytes: Int?
}

/// An opened vault: its id, root key and keyring.
public final class Vault: @unchecked Sendable {
    // The keyring is mutated only by the command holding the vault; see Keyring.
    public static let format = "shardvault.vault.v1"
    public let layout: VaultLayout
    public let id: [UInt8]
    public let keyring: Keyring
    /// The audit log; every access goes through it first.
    public let audit: AuditLog
    /// Held for the life of the value when the vault was opened with a lock.
    private let lock: VaultLock?

    public var idHex: String { Hex.encode(id) }

    private init(layout: VaultLayout, id: [UInt8], keyring: Keyring, audit: AuditLog, lock: VaultLock? = nil) {
        self.layout = layout
        self.id = id
        self.keyring = keyring
        self.audit = audit
        self.lock = lock
    }

    /// Creates a new vault in `root`: folders, vault id, root key (0600), empty keyring,
    /// audit key (0600) and the audit log, whose first entry records the creation.
    /// Refuses when a vault already exists there.
    @discardableResult
    public static func initialize(at root: String, now: Date = Date(), context: AuditContext = AuditContext(purpose: "HSYSADMIN"),
                                  auditSegmentBytes: Int = AuditLog.defaultSegmentLimit) throws -> Vault {
        let layout = VaultLayout(root: root)
        // Decided before anything is created; a denied init leaves nothing behind (and, with
        // no vault yet, no log to record it in).
        let decision = AccessGate.decide(context, action: AuditAction.vaultInit, resource: AuditResource())
        guard decision.allowed else {
            throw VaultError(.permissionDenied, "\(context.principal) may not \(AuditAction.vaultInit) for purpose '\(context.purpose)': \(decision.rule)")
        }
        try FileIO.makeDirectory(layout.root)
        if FileIO.exists(layout.vaultFile) || FileIO.exists(layout.rootKeyFile) {
            throw VaultError(.cannotCreate, "a vault already exists here; refusing to overwrite it", location: layout.keys)
        }
        try FileIO.makeDirectory(layout.keys, mode: 0o700)
        for folder in [layout.policies, layout.audit, layout.data] { try FileIO.makeDirectory(folder) }
        // A documented default policy, unless the folder already holds policies.
        let existingPolicies = try FileIO.listDirectory(layout.policies).filter { $0.hasSuffix(".yaml") || $0.hasSuffix(".yml") }
        if existingPolicies.isEmpty {
            try FileIO.writeAtomically(Array(PolicySet.defaultPolicy(administrator: context.principal).utf8),
                                       to: layout.policies + "/default.yaml", mode: 0o644, exclusive: true)
        }
        let id = try SystemRandom.bytes(16)
        let rootKey = try RootKey.create(at: layout.rootKeyFile)
        try FileIO.fsyncDirectory(layout.root)
        let keyring = try Keyring(path: layout.keyringFile, vaultId: id, root: rootKey)
        try keyring.save()
        let audit = try AuditLog.create(layout: layout, vaultId: id, context: context, segmentLimit: auditSegmentBytes)
        let file = VaultFile(format: format, vaultId: Hex.encode(id), created: Timestamp.rfc3339(now), auditSegmentBytes: auditSegmentBytes)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try FileIO.writeAtomically([UInt8](try encoder.encode(file)) + [10], to: layout.vaultFile, exclusive: true)
        let vault = Vault(layout: layout, id: id, keyring: keyring, audit: audit)
        // The decision was made above, before anything existed; it is the log's first entry.
        try audit.append([
            AuditEvent(action: AuditAction.vaultInit, resource: AuditResource(vault: vault.idHex), reason: "allowed: " + decision.rule),
            AuditEvent(action: AuditAction.keyCreate, resource: AuditResource(vault: vault.idHex, key: "root", keyVersion: rootKey.version)),
            AuditEvent(action: AuditAction.keyCreate, resource: AuditResource(vault: vault.idHex, key: "audit", keyVersion: audit.key.version)),
        ])
        try audit.checkpoint()
        return vault
    }

    /// Opens an existing vault. With `lock`, waits for the vault lock first and holds it
    /// while the value lives, so the keyring read here cannot be stale: commands that
    /// change the vault open it `.exclusive`, readers `.shared`.
    public static func open(at root: String, lock mode: VaultLock.Mode? = nil, context: AuditContext = AuditContext(purpose: "HSYSADMIN")) throws -> Vault {
        let layout = VaultLayout(root: root)
        guard FileIO.exists(layout.vaultFile) else {
            throw VaultError(.configuration, "no vault here (no keys/vault.json); run 'shardvault init' first or pass --vault DIR", location: layout.root)
        }
        let lock = try mode.map { try VaultLock(layout: layout, mode: $0) }
        if mode != nil { removeStaleTemporaries(layout) }
        let file: VaultFile
        do { file = try JSONDecoder().decode(VaultFile.self, from: Data(try FileIO.readAll(layout.vaultFile))) } catch let error as VaultError {
            throw error
        } catch {
            throw VaultError(.configuration, "vault.json is not valid", location: layout.vaultFile, underlying: error)
        }
        guard file.format == format, let id = Hex.decode(file.vaultId), id.count == 16 else {
            throw VaultError(.configuration, "unsupported vault format or bad vault id", location: layout.vaultFile)
        }
        // init writes the keyring; a vault without one has lost every dataset key.
        guard FileIO.exists(layout.keyringFile) else {
            throw VaultError(.configuration, "the keyring is missing: every dataset's keys are in it; restore it from a backup of keys/", location: layout.keyringFile)
        }
        let keyring = try Keyring(path: layout.keyringFile, vaultId: id, roots: try RootKey.loadAll(layout))
        let audit = try AuditLog.open(layout: layout, vaultId: id, context: context,
                                      segmentLimit: file.auditSegmentBytes ?? AuditLog.defaultSegmentLimit)
        return Vault(layout: layout, id: id, keyring: keyring, audit: audit, lock: lock)
    }

    /// Temporary files of writers that died before renaming them into place (a crash):
    /// never visible under a real name, but removed here, whenever a command opens the
    /// vault, so that none lingers. A file is stale when the process named in it no longer
    /// runs; a live writer's file is never touched.
    static func removeStaleTemporaries(_ layout: VaultLayout) {
        var folders = [layout.keys, layout.audit, layout.audit + "/" + AuditFiles.checkpointsFolder, layout.data]
        for dataset in (try? FileIO.listDirectory(layout.data)) ?? [] {
            folders.append(layout.datasetDirectory(dataset))
            folders.append(layout.datasetDirectory(dataset) + "/results")
        }
        for folder in folders {
            for name in (try? FileIO.listDirectory(folder)) ?? [] {
                guard let range = name.range(of: ".tmp-") else { continue }
                let pid = name[range.upperBound...].prefix { $0.isNumber }
                guard let value = Int32(pid), value > 0, kill(value, 0) != 0, errno == ESRCH else { continue }
                unlink(folder + "/" + name)
            }
        }
    }

    /// Valid dataset names: 1 to 64 of a-z, 0-9, '.', '_', '-', starting with a letter or digit.
    public static func validateDatasetName(_ name: String) throws {
        let bytes = Array(name.utf8)
        let ok = !bytes.isEmpty && bytes.count <= 64 && bytes.allSatisfy { c in
            (c >= 97 && c <= 122) || (c >= 48 && c <= 57) || c == 46 || c == 95 || c == 45
        } && !(bytes[0] == 46 || bytes[0] == 95 || bytes[0] == 45)
        guard ok else {
            throw VaultError(.usage, "invalid dataset name '\(name)': use 1-64 characters a-z, 0-9, '.', '_', '-', starting with a letter or digit")
        }
    }
}
