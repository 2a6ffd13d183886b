import Foundation
import VaultCrypto

/// What a key is for.
public enum KeyKind: String, Codable, Sendable, CaseIterable {
    /// Wraps the data keys (DEKs) of a dataset's shards.
    case kek
    /// Signs a dataset's shards and manifests (HMAC-SHA256). Processors never hold it.
    case signing
    /// Derives patient pseudonyms and chooses each patient's shard.
    case partition
}

/// The lifecycle state of a key version.
public enum KeyState: String, Codable, Sendable {
    case active
    case decryptOnly = "decrypt-only"
    case retired
    case destroyed
}

/// One version of one key, as stored in `keys/keyring.json`: metadata in the clear,
/// material wrapped under the vault root key.
public struct KeyRecord: Codable, Sendable, Equatable {
    public var id: String
    public var kind: KeyKind
    public var dataset: String
    public var version: Int
    public var state: KeyState
    public var created: String
    /// Root key version that wraps the material.
    public var rootVersion: Int
    /// base64(nonce 12 || AES-256-GCM ciphertext 32 || tag 16).
    public var wrapped: String?
    /// Encryptions made under this version (DEKs wrapped, for a KEK).
    public var uses: Int
    /// When the version was last used to encrypt or sign (RFC 3339), if ever.
    public var lastUsed: String? = nil
    /// When the material was destroyed (retired or crypto-shredded), if it was.
    public var destroyed: String? = nil
}

struct KeyringFile: Codable {
    var format: String
    var vaultId: String
    var keys: [KeyRecord]
}

/// The keyring: per-dataset KEK, signing and partition keys, each versioned, wrapped
/// under the root key. Changes are written back crash-safely with `save()`.
public final class Keyring: @unchecked Sendable {
    // Mutated only by the single command that owns the vault; readers in worker tasks
    // use immutable SecureBytes returned by `material`. Hence @unchecked Sendable.
    public static let format = "shardvault.keyring.v1"
    let path: String
    let vaultId: [UInt8]
    /// The root key new wraps use: the version the keyring's entries are wrapped under.
    private var root: RootKey
    /// Every root key loaded (two while a root rotation is unfinished), by version.
    private var roots: [Int: RootKey]
    public private(set) var records: [KeyRecord]
    private var cache: [String: SecureBytes] = [:]
    private let lock = NSLock()

    convenience init(path: String, vaultId: [UInt8], root: RootKey) throws {
        try self.init(path: path, vaultId: vaultId, roots: [root])
    }

    init(path: String, vaultId: [UInt8], roots: [RootKey]) throws {
        precondition(!roots.isEmpty)
        self.path = path
        self.vaultId = vaultId
        self.roots = Dictionary(roots.map { ($0.version, $0) }, uniquingKeysWith: { a, _ in a })
        self.root = roots.max { $0.version < $1.version }!
        if FileIO.exists(path) {
            let bytes = try FileIO.readAll(path)
            let file: KeyringFile
            do { file = try JSONDecoder().decode(KeyringFile.self, from: Data(bytes)) } catch {
                throw VaultError(.configuration, "keyring is not valid JSON", location: path, underlying: error)
            }
            guard file.format == Self.format else {
                throw VaultError(.configuration, "unsupported keyring format '\(file.format)'", location: path)
            }
            guard file.vaultId == Hex.encode(vaultId) else {
                throw VaultError(.configuration, "keyring belongs to another vault (\(file.vaultId))", location: path)
            }
            try Self.validate(file.keys, path: path)
            records = file.keys
        } else {
            records = []
        }
        if let used = records.map(\.rootVersion).max(), let key = self.roots[used] { root = key }
    }

    static func keyId(_ dataset: String, _ kind: KeyKind) -> String { "\(dataset)/\(kind.rawValue)" }

    /// Additional data of a key's wrap: everything a decision depends on (vault, id, kind,
    /// dataset, version, state, root version), so an edited keyring entry fails to unwrap.
    /// A state change therefore re-seals the material under the new state.
    private func aad(_ r: KeyRecord) -> [UInt8] {
        var w = CanonicalWriter(label: "shardvault/key/v1")
        w.raw(vaultId)
        w.string(r.id)
        w.string(r.kind.rawValue)
        w.string(r.dataset)
        w.u32(UInt32(r.version))
        w.string(r.state.rawValue)
        w.u32(UInt32(r.rootVersion))
        return w.bytes
    }

    /// Structural checks on a keyring entry, before anything trusts it.
    private static func validate(_ records: [KeyRecord], path: String) throws {
        var seen = Set<String>()
        for r in records {
            guard r.id == keyId(r.dataset, r.kind) else {
                throw VaultError(.configuration, "keyring entry '\(r.id)' does not match its dataset '\(r.dataset)' and kind '\(r.kind.rawValue)'", location: path)
            }
            guard (1...Int(UInt32.max)).contains(r.version), (1...Int(UInt32.max)).contains(r.rootVersion), r.uses >= 0 else {
                throw VaultError(.configuration, "keyring entry '\(r.id)' has an out-of-range version or counter", location: path)
            }
            guard seen.insert("\(r.id)#\(r.version)").inserted else {
                throw VaultError(.configuration, "keyring has two entries for '\(r.id)' version \(r.version)", location: path)
            }
        }
    }

    /// The active version of a dataset's key of `kind`, if one exists.
    public func active(_ dataset: String, _ kind: KeyKind) -> KeyRecord? {
        records.filter { $0.dataset == dataset && $0.kind == kind && $0.state == .active }.max { $0.version < $1.version }
    }

    public func record(id: String, version: Int) -> KeyRecord? {
        records.first { $0.id == id && $0.version == version }
    }

    /// Creates version 1 of each key the dataset lacks. Returns the records created.
    @discardableResult
    public func ensureDatasetKeys(_ dataset: String, now: Date = Date()) throws -> [KeyRecord] {
        var created: [KeyRecord] = []
        for kind in KeyKind.allCases where active(dataset, kind) == nil {
            created.append(try addVersion(dataset, kind, now: now))
        }
        return created
    }

    /// Unwraps the material of version `version` of `dataset`'s key of `kind`. The id is
    /// derived here, never taken from a file, so a manifest or header cannot make a reader
    /// check a signature under a KEK, another dataset's key, or a key of another kind.
    public func material(dataset: String, kind: KeyKind, version: Int) throws -> SecureBytes {
        let id = Self.keyId(dataset, kind)
        if let cached = lock.withLock({ cache["\(id)#\(version)"] }) { return cached }
        guard let record = record(id: id, version: version), record.kind == kind, record.dataset == dataset else {
            throw VaultError(.dataError, "key \(id) version \(version) is not in the keyring", location: path)
        }
        guard record.state != .destroyed else {
            throw VaultError(.dataError, "key \(id) version \(version) was destroyed\(record.destroyed.map { " on \($0)" } ?? ""): dataset '\(dataset)' was crypto-shredded and can no longer be read", location: path)
        }
        guard record.state != .retired else {
            throw VaultError(.dataError, "key \(id) version \(version) is retired\(record.destroyed.map { " since \($0)" } ?? ""): its material was destroyed", location: path)
        }
        guard let wrapped = record.wrapped, let blob = Data(base64Encoded: wrapped), blob.count == 60 else {
            throw VaultError(.dataError, "key \(id) version \(version) has no usable material in the keyring", location: path)
        }
        guard let root = roots[record.rootVersion] else {
            throw VaultError(.configuration, "key \(id) version \(version) is wrapped under root key version \(record.rootVersion), but root key version \(self.root.version) is loaded", location: path)
        }
        let bytes = [UInt8](blob)
        let material: SecureBytes
        do {
            material = try AESGCM(key: root.material).open(nonce: Array(bytes[0..<12]), sealed: Array(bytes[12...]), aad: aad(record))
        } catch {
            throw VaultError(.dataError, "key \(id) version \(version) does not unwrap under the root key: the keyring entry was altered or belongs to another root key", location: path)
        }
        lock.withLock { cache["\(id)#\(version)"] = material }
        return material
    }

    /// Adds `count` to the use counter of a key version (saved with the next `save()`).
    public func recordUses(id: String, version: Int, count: Int, now: Date = Date()) {
        if let i = records.firstIndex(where: { $0.id == id && $0.version == version }) {
            records[i].uses += count
            records[i].lastUsed = Timestamp.rfc3339(now)
        }
    }

    /// Re-seals a version's material under the same root key with the record changed as
    /// `change` says (its state is in the wrap's additional data).
    private func reseal(_ index: Int, _ change: (inout KeyRecord) -> Void) throws {
        let old = records[index]
        let material = try self.material(dataset: old.dataset, kind: old.kind, version: old.version)
        var record = old
        change(&record)
        record.rootVersion = root.version
        record.wrapped = try seal(material, record: record, root: root)
        records[index] = record
    }

    private func seal(_ material: SecureBytes, record: KeyRecord, root: RootKey) throws -> String {
        let nonce = try SystemRandom.bytes(12)
        var plain = material.unsafeExportedBytes()
        defer { secureWipe(&plain) }
        let sealed = try AESGCM(key: root.material).seal(nonce: nonce, plaintext: plain, aad: aad(record))
        return Data(nonce + sealed).base64EncodedString()
    }

    /// Makes a new version of a dataset's key of `kind` the active one; the version that was
    /// active becomes decrypt-only (it still opens and verifies what it protected, and
    /// protects nothing new). Saved with the next `save()`. Returns (new, previous).
    @discardableResult
    public func rotate(_ dataset: String, _ kind: KeyKind, now: Date = Date()) throws -> (new: KeyRecord, previous: KeyRecord?) {
        let previous = active(dataset, kind)
        if let previous, let i = records.firstIndex(of: previous) {
            try reseal(i) { $0.state = .decryptOnly }
        }
        let record = try addVersion(dataset, kind, now: now)
        return (record, previous.flatMap { p in records.first { $0.id == p.id && $0.version == p.version } })
    }

    /// The next version of a dataset's key of `kind`: fresh random material, active, sealed
    /// under the root key (saved with the next `save()`).
    private func addVersion(_ dataset: String, _ kind: KeyKind, now: Date) throws -> KeyRecord {
        let id = Self.keyId(dataset, kind)
        let version = (records.filter { $0.id == id }.map(\.version).max() ?? 0) + 1
        let material = try SecureBytes.random(count: 32)
        var record = KeyRecord(id: id, kind: kind, dataset: dataset, version: version, state: .active,
                               created: Timestamp.rfc3339(now), rootVersion: root.version, wrapped: nil, uses: 0)
        record.wrapped = try seal(material, record: record, root: root)
        records.append(record)
        lock.withLock { cache["\(id)#\(version)"] = material }
        return record
    }

    /// Destroys the material of every version of `dataset`'s key of `kind` below `floor`
    /// that still has it, and marks those versions retired. The caller has checked that
    /// nothing references them. Saved with the next `save()`. Returns the versions retired.
    public func retire(_ dataset: String, _ kind: KeyKind, below floor: Int, now: Date = Date()) -> [KeyRecord] {
        var retired: [KeyRecord] = []
        for i in records.indices where records[i].dataset == dataset && records[i].kind == kind && records[i].version < floor
            && records[i].state != .retired && records[i].state != .destroyed {
            records[i].state = .retired
            records[i].wrapped = nil
            records[i].destroyed = Timestamp.rfc3339(now)
            lock.withLock { _ = cache.removeValue(forKey: "\(records[i].id)#\(records[i].version)") }
            retired.append(records[i])
        }
        return retired
    }

    /// Crypto-shredding: destroys the material of every key of `dataset`. Saved with the next
    /// `save()`; the caller then re-wraps the keyring under a new root key, so that no copy
    /// of the old keyring file can bring the material back. Returns the versions destroyed.
    public func destroy(_ dataset: String, now: Date = Date()) -> [KeyRecord] {
        var destroyed: [KeyRecord] = []
        for i in records.indices where records[i].dataset == dataset && records[i].state != .destroyed {
            records[i].state = .destroyed
            records[i].wrapped = nil
            records[i].destroyed = records[i].destroyed ?? Timestamp.rfc3339(now)
            lock.withLock { _ = cache.removeValue(forKey: "\(records[i].id)#\(records[i].version)") }
            destroyed.append(records[i])
        }
        return destroyed
    }

    /// The loaded root key's version.
    public var rootVersion: Int { root.version }

    /// Re-wraps every version that still has material under `newRoot`, which new wraps use
    /// from now on. Saved with the next `save()`.
    func adopt(root newRoot: RootKey) throws {
        let rewrapped = try rewrapped(under: newRoot)
        roots[newRoot.version] = newRoot
        root = newRoot
        records = rewrapped
    }

    /// Every version that still has material, re-wrapped under `newRoot` (not yet saved).
    func rewrapped(under newRoot: RootKey) throws -> [KeyRecord] {
        try records.map { old in
            guard old.wrapped != nil else {
                var r = old
                r.rootVersion = newRoot.version
                return r
            }
            let material = try self.material(dataset: old.dataset, kind: old.kind, version: old.version)
            var record = old
            record.rootVersion = newRoot.version
            record.wrapped = try seal(material, record: record, root: newRoot)
            return record
        }
    }

    /// Writes the keyring crash-safely (mode 0600).
    public func save() throws {
        let file = KeyringFile(format: Self.format, vaultId: Hex.encode(vaultId), keys: records)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let data = try encoder.encode(file)
        try FileIO.writeAtomically([UInt8](data) + [10], to: path, mode: 0o600)
    }
}

/// The vault root key: 32 random bytes in `keys/root.key` (mode 0600).
///
/// File: `"SVROOTK\0"` (8 bytes), u32 version, 32 bytes of key.
struct RootKey {
    static let magic = Array("SVROOTK".utf8) + [0]
    let version: Int
    let material: SecureBytes

    static func create(at path: String, version: Int = 1) throws -> RootKey {
        let material = try SecureBytes.random(count: 32)
        var w = CanonicalWriter()
        w.raw(magic)
        w.u32(UInt32(version))
        var bytes = w.bytes
        bytes.reserveCapacity(bytes.count + material.count)
        material.withUnsafeBytes { bytes.append(contentsOf: $0) }
        defer { secureWipe(&bytes) }
        try FileIO.writeAtomically(bytes, to: path, mode: 0o600, exclusive: true)
        return RootKey(version: version, material: material)
    }

    /// `keys/root.key`, and `keys/root.key.next` while a root rotation is unfinished (then
    /// `root.key` may already be wiped: the next key alone is enough).
    static func loadAll(_ layout: VaultLayout) throws -> [RootKey] {
        var roots: [RootKey] = []
        var failure: (any Error)?
        do { roots.append(try load(from: layout.rootKeyFile)) } catch { failure = error }
        if FileIO.exists(layout.nextRootKeyFile) { roots.append(try load(from: layout.nextRootKeyFile)) }
        if roots.isEmpty, let failure { throw failure }
        return roots
    }

    static func load(from path: String) throws -> RootKey {
        var bytes = try FileIO.readAll(path, missing: .configuration)
        defer { secureWipe(&bytes) }
        var st = stat()
        if stat(path, &st) == 0 && (st.st_mode & 0o077) != 0 {
            throw VaultError(.permissionDenied, "root key file is readable by group or others (mode \(String(st.st_mode & 0o777, radix: 8))); run chmod 600", location: path)
        }
        guard bytes.count == 44, Array(bytes[0..<8]) == magic else {
            throw VaultError(.configuration, "not a ShardVault root key file", location: path)
        }
        var r = CanonicalReader(bytes, offset: 8)
        let version = Int(try r.u32("version"))
        return RootKey(version: version, material: SecureBytes(copying: bytes[12..<44]))
    }
}

enum Timestamp {
    /// RFC 3339 UTC with milliseconds.
    static func rfc3339(_ date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        formatter.timeZone = TimeZone(identifier: "UTC")
        return formatter.string(from: date)
    }
}
