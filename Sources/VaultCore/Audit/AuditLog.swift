import Foundation
import VaultCrypto
#if canImport(Glibc)
import Glibc
#endif

/// Who acts, for what purpose, under which request id. One per command invocation.
public struct AuditContext: Sendable, Equatable {
    public var principal: String
    public var purpose: String
    public var request: String

    /// `principal` defaults to the operating-system user; `request` (32 lower-case hex digits)
    /// to 16 random bytes in hex.
    public init(principal: String? = nil, purpose: String, request: String? = nil) {
        self.principal = principal ?? Self.operatingSystemUser
        self.purpose = purpose
        if let request, request.utf8.count == 32, request.utf8.allSatisfy({ ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) }) {
            self.request = request
        } else {
            self.request = Hex.encode((try? SystemRandom.bytes(16)) ?? Array(repeating: 0, count: 16))
        }
    }

    /// The name of the effective user, or `uid-N` when it has none.
    public static var operatingSystemUser: String {
        let uid = geteuid()
        if let pw = getpwuid(uid), let name = pw.pointee.pw_name { return String(cString: name) }
        return "uid-\(uid)"
    }
}

/// The latest manifest of a dataset as the audit log recorded it: a manifest older than this
/// on disk is a rollback.
public struct RecordedManifest: Codable, Sendable, Equatable {
    public var generation: Int
    public var sha256: String
    public var seq: Int
}

/// The writer's position, saved in `keys/audit.state` with each checkpoint and authenticated
/// with the audit MAC key: size, leaf hash of the last entry, Merkle frontier, the segment
/// being written and its length, and each dataset's latest recorded manifest.
struct AuditHead: Codable, Equatable {
    var size: Int
    var lastLeaf: String
    var peaks: [String]
    var segment: String
    var segmentBytes: Int
    var manifests: [String: RecordedManifest]

    static let label = "shardvault/audit-state/v1\n"
}

/// Names of the files in `audit/`.
public enum AuditFiles {
    /// A segment is named after the sequence number of its first entry.
    public static func segmentName(firstSeq: Int) -> String {
        let digits = String(firstSeq)
        return "log-" + String(repeating: "0", count: max(0, 12 - digits.count)) + digits + ".jsonl"
    }

    public static func firstSeq(ofSegment name: String) -> Int? {
        guard name.hasPrefix("log-"), name.hasSuffix(".jsonl") else { return nil }
        let digits = name.dropFirst(4).dropLast(6)
        guard digits.count == 12, digits.allSatisfy({ $0.isASCII && $0.isNumber }) else { return nil }
        return Int(digits)
    }

    /// The segments in `directory`, ordered by first sequence number.
    public static func segments(in directory: String) throws -> [(name: String, firstSeq: Int)] {
        guard FileIO.isDirectory(directory) else { return [] }
        return try FileIO.listDirectory(directory).compactMap { name in firstSeq(ofSegment: name).map { (name, $0) } }
            .sorted { $0.firstSeq < $1.firstSeq }
    }

    public static let checkpointsFolder = "checkpoints"
    public static let latestCheckpoint = "checkpoint"

    public static func checkpointName(size: Int) -> String {
        let digits = String(size)
        return String(repeating: "0", count: max(0, 12 - digits.count)) + digits + ".note"
    }
}

/// The append-only audit log of a vault (docs/audit-format.md).
///
/// Appends are serialised across processes by `flock` on `keys/audit.lock` and within a
/// process by a mutex. Before appending, the writer reads whatever other processes appended
/// since it last looked and checks each of those entries (format, sequence, chain, MAC), so
/// a forged or damaged tail is refused, never extended. Every batch is `fdatasync`ed before
/// `append` returns: an access recorded by `append` is on disk before it happens. Any
/// failure to write is an I/O error (exit 74): the caller must not go on.
public final class AuditLog: @unchecked Sendable {
    // Mutable state is touched only under `mutex` (and the file lock); hence @unchecked.
    public static let defaultSegmentLimit = 64 << 20
    static let macPlaceholder = String(repeating: "0", count: 64)
    let layout: VaultLayout
    let vaultId: [UInt8]
    public let key: AuditKey
    public let context: AuditContext
    let segmentLimit: Int
    private let mutex = NSLock()
    private var head: AuditHead?
    private var frontier = MerkleFrontier()
    private var lastLeaf = [UInt8](repeating: 0, count: 32)
    private let tape = JSONTape(capacity: 4096)

    var statePath: String { layout.keys + "/audit.state" }
    var lockPath: String { layout.keys + "/audit.lock" }
    static func keyPath(_ layout: VaultLayout) -> String { layout.keys + "/audit.key" }

    init(layout: VaultLayout, vaultId: [UInt8], key: AuditKey, context: AuditContext, segmentLimit: Int) {
        self.layout = layout
        self.vaultId = vaultId
        self.key = key
        self.context = context
        self.segmentLimit = max(segmentLimit, 4096)
    }

    /// Opens the log of an initialised vault.
    static func open(layout: VaultLayout, vaultId: [UInt8], context: AuditContext, segmentLimit: Int) throws -> AuditLog {
        let key = try AuditKey.load(from: keyPath(layout), vaultId: vaultId)
        return AuditLog(layout: layout, vaultId: vaultId, key: key, context: context, segmentLimit: segmentLimit)
    }

    /// Creates the key, the first (empty) segment and the state of a new vault's log.
    static func create(layout: VaultLayout, vaultId: [UInt8], context: AuditContext, segmentLimit: Int) throws -> AuditLog {
        let key = try AuditKey.create(at: keyPath(layout), vaultId: vaultId)
        try FileIO.makeDirectory(layout.audit + "/" + AuditFiles.checkpointsFolder)
        let first = AuditFiles.segmentName(firstSeq: 0)
        try FileIO.writeAtomically([], to: layout.audit + "/" + first, mode: 0o640, exclusive: true)
        let log = AuditLog(layout: layout, vaultId: vaultId, key: key, context: context, segmentLimit: segmentLimit)
        let head = AuditHead(size: 0, lastLeaf: Hex.encode([UInt8](repeating: 0, count: 32)), peaks: [], segment: first,
                             segmentBytes: 0, manifests: [:])
        try log.saveState(head)
        return log
    }

    // MARK: Appending

    /// Appends one event for this command's principal, purpose and request; durable on return.
    @discardableResult
    public func append(_ event: AuditEvent) throws -> AuditEntry {
        try append([event])[0]
    }

    /// Appends events as one batch with one `fdatasync`; durable on return.
    @discardableResult
    public func append(_ events: [AuditEvent]) throws -> [AuditEntry] {
        guard !events.isEmpty else { return [] }
        return try locked {
            var h = try synchronise()
            var written: [AuditEntry] = []
            var pending: [UInt8] = []
            do {
                for event in events {
                    var entry = AuditEntry(seq: h.size, time: AuditTime.now(), principal: Self.sanitise(context.principal, limit: 64), action: event.action,
                                           resource: event.resource, purpose: Self.sanitise(context.purpose, limit: 64), outcome: event.outcome,
                                           reason: event.reason.map { Self.sanitise($0) }, request: context.request,
                                           prev: Hex.encode(lastLeaf), mac: Self.macPlaceholder)
                    var line = entry.canonicalBytes
                    let mac = try line.withUnsafeBufferPointer { try key.mac(AuditEntry.macInput($0)) }
                    entry.mac = Hex.encode(mac)
                    line.replaceSubrange((line.count - 66)..<(line.count - 2), with: Array(entry.mac.utf8))
                    if h.segmentBytes > 0 && h.segmentBytes + pending.count + line.count + 1 > segmentLimit {
                        try writeDurably(pending, segment: h.segment)
                        h.segmentBytes += pending.count
                        pending.removeAll(keepingCapacity: true)
                        h.segment = try startSegment(firstSeq: h.size)
                        h.segmentBytes = 0
                    }
                    pending.append(contentsOf: line)
                    pending.append(0x0A)
                    let leaf = MerkleTree.leafHash(line)
                    frontier.append(leafHash: leaf)
                    lastLeaf = leaf
                    h.size += 1
                    Self.record(entry, in: &h)
                    written.append(entry)
                }
                try writeDurably(pending, segment: h.segment)
                h.segmentBytes += pending.count
                // The writer state follows every batch, so that entries removed from the end
                // of the log are detected even when no checkpoint was signed after them (a
                // command killed before its closing checkpoint).
                do { try saveState(h) } catch let error as VaultError {
                    throw VaultError(.auditUnavailable, "cannot save the audit writer state: \(error.message)", location: error.location)
                }
                head = h
                return written
            } catch {
                head = nil // reload from the saved state and the files next time
                throw error
            }
        }
    }

    /// Writes a signed checkpoint of the whole log to `audit/checkpoints/` and `audit/checkpoint`,
    /// and saves the writer state. Returns the signed note.
    @discardableResult
    public func checkpoint() throws -> String {
        try locked {
            let h = try synchronise()
            let note = try key.sign(Checkpoint(origin: key.verifier.name, treeSize: h.size, rootHash: frontier.root))
            let bytes = Array(note.utf8)
            do {
                let path = layout.audit + "/" + AuditFiles.checkpointsFolder + "/" + AuditFiles.checkpointName(size: h.size)
                try FileIO.makeDirectory(layout.audit + "/" + AuditFiles.checkpointsFolder)
                if !FileIO.exists(path) { try FileIO.writeAtomically(bytes, to: path, mode: 0o644) }
                try FileIO.writeAtomically(bytes, to: layout.audit + "/" + AuditFiles.latestCheckpoint, mode: 0o644)
                try saveState(h)
            } catch let error as VaultError {
                head = nil
                throw VaultError(.auditUnavailable, "cannot write the audit checkpoint: \(error.message)", location: error.location)
            }
            return note
        }
    }

    /// The latest manifest the log recorded for each dataset.
    public func recordedManifests() throws -> [String: RecordedManifest] {
        try locked { try synchronise().manifests }
    }

    /// Current size and root, after reading what other processes appended.
    public func treeHead() throws -> (size: Int, root: [UInt8]) {
        try locked {
            let h = try synchronise()
            return (h.size, frontier.root)
        }
    }

    // MARK: Internals

    func locked<T>(_ body: () throws -> T) throws -> T {
        try mutex.withLock {
            let fd = Glibc.open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
            guard fd >= 0 else { throw Self.ioError("cannot open the audit lock", path: lockPath, errno: errno) }
            defer { close(fd) }
            while flock(fd, LOCK_EX) != 0 {
                if errno == EINTR { continue }
                throw Self.ioError("cannot lock the audit log", path: lockPath, errno: errno)
            }
            return try body()
        }
    }

    static func ioError(_ what: String, path: String, errno err: Int32) -> VaultError {
        VaultError(.auditUnavailable, "\(what): \(String(cString: strerror(err))); the audit log cannot be written, so the access is refused", location: path)
    }

    /// Keeps the reason a single line of printable text.
    static func sanitise(_ text: String, limit: Int = 1000) -> String {
        String(String.UnicodeScalarView(text.unicodeScalars.prefix(limit).map { $0.value < 0x20 || $0.value == 0x7F ? " " : $0 }))
    }

    private static func record(_ entry: AuditEntry, in head: inout AuditHead) {
        if entry.action == AuditAction.manifestCommit, entry.outcome == .success, let dataset = entry.resource.dataset,
           let generation = entry.resource.generation, let sha = entry.resource.sha256 {
            head.manifests[dataset] = RecordedManifest(generation: generation, sha256: sha, seq: entry.seq)
        }
    }

    private func segmentPath(_ name: String) -> String { layout.audit + "/" + name }

    private func startSegment(firstSeq: Int) throws -> String {
        let name = AuditFiles.segmentName(firstSeq: firstSeq)
        let path = segmentPath(name)
        let fd = Glibc.open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o640)
        guard fd >= 0 else { throw Self.ioError("cannot start a new audit segment", path: path, errno: errno) }
        close(fd)
        do { try FileIO.fsyncDirectory(layout.audit) } catch let error as VaultError {
            throw VaultError(.auditUnavailable, "\(error.message); the audit log cannot be written, so the access is refused", location: error.location)
        }
        return name
    }

    /// Appends `bytes` to an existing segment and waits until they are on disk. A missing
    /// segment is never re-created: that would hide a deletion.
    private func writeDurably(_ bytes: [UInt8], segment: String) throws {
        guard !bytes.isEmpty else { return }
        let path = segmentPath(segment)
        let fd = Glibc.open(path, O_WRONLY | O_APPEND | O_CLOEXEC)
        guard fd >= 0 else {
            let err = errno
            if err == ENOENT { throw VaultError(.auditUnavailable, "the current audit segment is missing (deleted?); the audit log cannot be written, so the access is refused", location: path) }
            throw Self.ioError("cannot open the audit segment", path: path, errno: err)
        }
        defer { close(fd) }
        do { try FileIO.writeAll(fd: fd, bytes, path: path) } catch let error as VaultError {
            throw VaultError(.auditUnavailable, "\(error.message); the audit log cannot be written, so the access is refused", location: path)
        }
        guard fdatasync(fd) == 0 else { throw Self.ioError("fdatasync of the audit segment failed", path: path, errno: errno) }
        try FaultInjection.point("sync")
    }

    /// Brings the in-memory head up to the end of the log: loads the saved state the first
    /// time, then reads and checks every entry appended after it (by other processes, or
    /// by a command that was interrupted before its checkpoint).
    func synchronise() throws -> AuditHead {
        do { return try synchroniseOrThrow() } catch {
            head = nil // reload from the saved state next time
            throw error
        }
    }

    private func synchroniseOrThrow() throws -> AuditHead {
        var h: AuditHead
        if let head { h = head } else {
            h = try loadState()
            guard let leaf = Hex.decode(h.lastLeaf), leaf.count == 32,
                  let f = MerkleFrontier(size: h.size, peaks: h.peaks.compactMap(Hex.decode)) else {
                throw VaultError(.dataError, "audit state is malformed", location: statePath)
            }
            frontier = f
            lastLeaf = leaf
        }
        while true {
            let path = segmentPath(h.segment)
            let fd = Glibc.open(path, O_RDWR | O_CLOEXEC)
            guard fd >= 0 else {
                let err = errno
                if err == ENOENT { throw VaultError(.auditUnavailable, "audit segment \(h.segment) is missing (deleted?); the audit log cannot be written, so the access is refused", location: path) }
                throw Self.ioError("cannot open the audit segment", path: path, errno: err)
            }
            defer { close(fd) }
            var st = stat()
            guard fstat(fd, &st) == 0 else { throw Self.ioError("cannot stat the audit segment", path: path, errno: errno) }
            let size = Int(st.st_size)
            if size < h.segmentBytes {
                throw VaultError(.dataError, "audit segment is shorter (\(size) bytes) than the \(h.segmentBytes) bytes already recorded: the log was truncated; run 'shardvault audit verify'", location: path)
            }
            if size > h.segmentBytes {
                let tail = try ShardReader.readExactly(fd: fd, count: size - h.segmentBytes, offset: h.segmentBytes, path: path)
                let consumed = try absorb(tail, into: &h, segment: h.segment)
                if consumed < tail.count {
                    // An unterminated final line: a write interrupted before its fdatasync
                    // returned, so no access depended on it. Only the newest segment may end so.
                    let laterSegments = try AuditFiles.segments(in: layout.audit).contains { $0.firstSeq > AuditFiles.firstSeq(ofSegment: h.segment) ?? 0 }
                    guard !laterSegments else {
                        throw VaultError(.dataError, "audit segment ends in an incomplete entry but is not the newest segment; run 'shardvault audit verify'", location: path)
                    }
                    guard ftruncate(fd, off_t(h.segmentBytes)) == 0, fdatasync(fd) == 0 else {
                        throw Self.ioError("cannot remove an incomplete entry from the end of the audit segment", path: path, errno: errno)
                    }
                }
                continue
            }
            // A segment rolled by another writer is named after the next sequence number.
            let next = AuditFiles.segmentName(firstSeq: h.size)
            if next != h.segment && FileIO.exists(segmentPath(next)) {
                h.segment = next
                h.segmentBytes = 0
                continue
            }
            break
        }
        head = h
        return h
    }

    /// Checks and takes in the complete lines of `bytes`, which follow the head. Returns the
    /// number of bytes consumed (everything up to the last newline).
    private func absorb(_ bytes: [UInt8], into h: inout AuditHead, segment: String) throws -> Int {
        var consumed = 0
        try bytes.withUnsafeBufferPointer { buffer in
            var start = 0
            var lineNumber = 0
            while let newline = buffer[start...].firstIndex(of: 0x0A) {
                lineNumber += 1
                let line = UnsafeBufferPointer(rebasing: buffer[start..<newline])
                let location = "\(segmentPath(segment)) (entry \(h.size))"
                let entry: AuditEntry
                do { entry = try AuditEntry.parse(line, tape: tape) } catch {
                    throw VaultError(.dataError, "audit entry appended after the last checkpoint is damaged (\(error)); refusing to extend the log; run 'shardvault audit verify'", location: location)
                }
                guard entry.seq == h.size, entry.prev == Hex.encode(lastLeaf) else {
                    throw VaultError(.dataError, "audit entry appended after the last checkpoint does not continue the chain (seq \(entry.seq), expected \(h.size)); refusing to extend the log", location: location)
                }
                guard ConstantTime.equals(try key.mac(AuditEntry.macInput(line)), Hex.decode(entry.mac) ?? []) else {
                    throw VaultError(.dataError, "audit entry appended after the last checkpoint has a bad MAC (forged or altered); refusing to extend the log", location: location)
                }
                let leaf = MerkleTree.leafHash(UnsafeRawBufferPointer(line))
                frontier.append(leafHash: leaf)
                lastLeaf = leaf
                h.size += 1
                h.segmentBytes += line.count + 1
                Self.record(entry, in: &h)
                start = newline + 1
            }
            consumed = start
        }
        return consumed
    }

    func loadState() throws -> AuditHead {
        try key.openAuthenticatedFile(try FileIO.readAll(statePath, missing: .configuration), as: AuditHead.self,
                                      label: AuditHead.label, path: statePath, what: "audit state")
    }

    func saveState(_ h: AuditHead) throws {
        var h = h
        precondition(frontier.size == h.size, "audit state saved out of step with the tree")
        h.peaks = frontier.peaks.map(Hex.encode)
        h.lastLeaf = Hex.encode(lastLeaf)
        try FileIO.writeAtomically(try key.authenticatedFile(h, label: AuditHead.label), to: statePath, mode: 0o600)
    }
}

/// The actions the vault records.
public enum AuditAction {
    public static let vaultInit = "vault.init"
    public static let ingest = "ingest"
    public static let shardWrite = "shard.write"
    public static let manifestCommit = "manifest.commit"
    public static let verify = "verify"
    public static let shardVerify = "shard.verify"
    public static let shardDecrypt = "shard.decrypt"
    public static let datasetsRead = "datasets.read"
    public static let auditRead = "audit.read"
    public static let auditVerify = "audit.verify"
    public static let auditExport = "audit.export"
    public static let auditArchive = "audit.archive"
    public static let keyCreate = "key.create"
    public static let keyUse = "key.use"
    /// A shard's or result's header rewritten (DEK re-wrapped, MAC re-made), before it happens.
    public static let shardRewrap = "shard.rewrap"
    public static let keyRetire = "key.retire"
    public static let keysRead = "keys.read"
    public static let keysRotate = "keys.rotate"
    public static let keysRewrap = "keys.rewrap"
    public static let keysRetire = "keys.retire"
    public static let keysDestroy = "keys.destroy"
    public static let keyDestroy = "key.destroy"
    public static let policyRead = "policy.read"
    public static let policyExplain = "policy.explain"
    public static let analyze = "analyze"
    public static let reveal = "reveal"
    public static let resultsRead = "results.read"
    public static let resultWrite = "result.write"
    public static let resultDecrypt = "result.decrypt"
}
