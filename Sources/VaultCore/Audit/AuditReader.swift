import Foundation
import VaultCrypto
#if canImport(Glibc)
import Glibc
#endif

/// Where the retained log starts after older segments were archived (`audit/base.json`):
/// the first retained sequence number, the leaf hash of the entry before it and the Merkle
/// frontier at that size. It is trusted only as far as a signed checkpoint at or after
/// `firstSeq` confirms it: a wrong base gives a root no checkpoint signed.
public struct AuditBase: Codable, Sendable, Equatable {
    public var firstSeq: Int
    public var prevLeaf: String
    public var peaks: [String]

    static let fileName = "base.json"
    static let label = "shardvault/audit-base/v1\n"
}

/// An entry read from the log, with where it was found.
public struct ScannedEntry: Sendable {
    public let entry: AuditEntry
    public let leafHash: [UInt8]
    public let segment: String
    public let line: Int
}

/// A problem found in the log: what and where. `audit verify` exits 65 with it.
public struct AuditProblem: Error, CustomStringConvertible, Sendable {
    public let location: String
    public let message: String
    public var description: String { "\(location): \(message)" }
}

/// Reads the log in order, checking as it goes that every entry is canonical, that
/// sequence numbers and segment names follow on, that each `prev` is the leaf hash of the
/// entry before, and (given the key) each MAC. The first failure is thrown as an
/// `AuditProblem` naming the segment, line and sequence number.
public struct AuditLogReader {
    public let directory: String
    /// Folders holding archived segments, read as if they were still in `directory`.
    public var archives: [String]
    /// When set, every entry's MAC is checked.
    public var macKey: AuditKey?

    public init(directory: String, archives: [String] = [], macKey: AuditKey? = nil) {
        self.directory = directory
        self.archives = archives
        self.macKey = macKey
    }

    public struct Summary: Sendable {
        /// Sequence number of the first entry read (0, or the base's first retained entry).
        public var firstSeq = 0
        /// Number of entries in the tree, counting archived ones: the next sequence number.
        public var treeSize = 0
        public var frontier = MerkleFrontier()
        public var segments = 0
        /// Bytes after the last newline of the newest segment: an interrupted write.
        public var incompleteTail = 0
        /// Path of the newest segment read.
        public var lastSegment: String?
        /// Roots at the sizes asked for.
        public var roots: [Int: [UInt8]] = [:]
        /// Frontier and leaf hash of the entry before, at the sizes asked for.
        var frontiers: [Int: (frontier: MerkleFrontier, lastLeaf: [UInt8])] = [:]
    }

    /// The segments to read, in order, with their paths.
    func segmentPaths() throws -> [(path: String, name: String, firstSeq: Int)] {
        var byName: [String: (String, String, Int)] = [:]
        for folder in archives + [directory] {
            for s in try AuditFiles.segments(in: folder) { byName[s.name] = (folder + "/" + s.name, s.name, s.firstSeq) }
        }
        return byName.values.sorted { $0.2 < $1.2 }.map { (path: $0.0, name: $0.1, firstSeq: $0.2) }
    }

    /// The archive base, authenticated with the audit MAC key when the reader has it.
    public func base() throws -> AuditBase? {
        let path = directory + "/" + AuditBase.fileName
        guard FileIO.exists(path) else { return nil }
        let bytes = try FileIO.readAll(path)
        if let macKey {
            do {
                return try macKey.openAuthenticatedFile(bytes, as: AuditBase.self, label: AuditBase.label, path: path, what: "archive base")
            } catch let error as VaultError {
                throw AuditProblem(location: path, message: error.message)
            }
        }
        guard let newline = bytes.firstIndex(of: 0x0A),
              let base = try? JSONDecoder().decode(AuditBase.self, from: Data(bytes[..<newline])) else {
            throw AuditProblem(location: path, message: "archive base is malformed")
        }
        return base
    }

    /// Reads every entry, calling `body` with each; records the root at each size in
    /// `rootsAt`. Throws the first problem. With `parallel` (and no `body`), segments are
    /// checked side by side on every core and joined in order afterwards.
    @discardableResult
    public func scan(rootsAt sizes: Set<Int> = [], frontiersAt frontierSizes: Set<Int> = [], parallel: Bool = false,
                     _ body: ((ScannedEntry) throws -> Void)? = nil) throws -> Summary {
        var summary = Summary()
        var found = try segmentPaths()
        if archives.isEmpty, let base = try base() {
            // Segments below the base are left over from an archive that was interrupted
            // before it removed them; they are already in the archive.
            found.removeAll { $0.firstSeq < base.firstSeq }
        }
        let segments = found
        var lastLeaf = [UInt8](repeating: 0, count: 32)
        if let first = segments.first, first.firstSeq > 0 {
            guard let base = try base(), base.firstSeq == first.firstSeq, let leaf = Hex.decode(base.prevLeaf), leaf.count == 32,
                  let frontier = MerkleFrontier(size: base.firstSeq, peaks: base.peaks.compactMap(Hex.decode)) else {
                throw AuditProblem(location: first.path, message: "the log starts at entry \(first.firstSeq) but no valid archive base (\(AuditBase.fileName)) says where: earlier segments were removed")
            }
            summary.frontier = frontier
            summary.firstSeq = base.firstSeq
            lastLeaf = leaf
        }
        if sizes.contains(summary.frontier.size) { summary.roots[summary.frontier.size] = summary.frontier.root }

        // Checks that need no earlier segment, side by side when asked.
        var precomputed: [SegmentCheck?] = Array(repeating: nil, count: segments.count)
        if parallel && body == nil && segments.count > 1 {
            let results = SegmentChecks(count: segments.count)
            let next = AtomicCounter()
            let key = macKey
            let workers = min(ProcessInfo.processInfo.activeProcessorCount, segments.count)
            DispatchQueue.concurrentPerform(iterations: workers) { _ in
                let tape = JSONTape(capacity: 4096)
                while true {
                    let i = next.increment()
                    if i >= segments.count { return }
                    let check = Self.check(segment: segments[i], isNewest: i == segments.count - 1, expectedPrev: nil,
                                           tape: tape, macKey: key, body: nil)
                    results.set(i, check)
                }
            }
            precomputed = results.all
        }

        let tape = JSONTape(capacity: 4096)
        for (index, segment) in segments.enumerated() {
            summary.segments += 1
            summary.lastSegment = segment.path
            guard segment.firstSeq == summary.frontier.size else {
                throw AuditProblem(location: segment.path, message: segment.firstSeq > summary.frontier.size
                    ? "segment starts at entry \(segment.firstSeq) but the log before it ends at entry \(summary.frontier.size - 1): entries \(summary.frontier.size)...\(segment.firstSeq - 1) are missing"
                    : "segment starts at entry \(segment.firstSeq) but the log before it already reaches entry \(summary.frontier.size - 1)")
            }
            let check = precomputed[index] ?? Self.check(segment: segment, isNewest: index == segments.count - 1, expectedPrev: lastLeaf,
                                                          tape: tape, macKey: macKey, body: body)
            // The first entry's link to the segment before, when it was checked apart.
            if let firstPrev = check.firstPrev, check.problemLine > 1, firstPrev != Hex.encode(lastLeaf) {
                throw AuditProblem(location: "\(segment.path):1 (entry \(segment.firstSeq))",
                                   message: "'prev' is not the hash of the entry before: that entry, or this one, was altered, removed or reordered")
            }
            for leaf in check.leaves {
                summary.frontier.append(leafHash: leaf)
                lastLeaf = leaf
                if sizes.contains(summary.frontier.size) { summary.roots[summary.frontier.size] = summary.frontier.root }
                if frontierSizes.contains(summary.frontier.size) { summary.frontiers[summary.frontier.size] = (summary.frontier, leaf) }
            }
            if let problem = check.problem { throw problem }
            summary.incompleteTail = check.incompleteTail
        }
        summary.treeSize = summary.frontier.size
        return summary
    }

    /// What checking one segment gives: the leaf hash of each valid entry up to the first
    /// problem, and that problem.
    struct SegmentCheck: Sendable {
        var leaves: [[UInt8]] = []
        /// `prev` of the first entry, when the entry before was not known.
        var firstPrev: String?
        var incompleteTail = 0
        var problem: AuditProblem?
        var problemLine = Int.max
    }

    /// Checks the lines of one segment: canonical form, sequence numbers (the segment's name
    /// gives the first), the chain (from `expectedPrev` when given, else from the second
    /// line on), and MACs. Calls `body` with each entry that passes, in order.
    static func check(segment: (path: String, name: String, firstSeq: Int), isNewest: Bool, expectedPrev: [UInt8]?,
                      tape: JSONTape, macKey: AuditKey?, body: ((ScannedEntry) throws -> Void)?) -> SegmentCheck {
        var result = SegmentCheck()
        func fail(_ line: Int, _ location: String, _ message: String) {
            result.problem = AuditProblem(location: location, message: message)
            result.problemLine = line
        }
        var mac: HMACSHA256?
        if let macKey {
            do { mac = try HMACSHA256(key: macKey.macKey) } catch {
                fail(1, segment.path, "cannot set up the MAC check (\(error))")
                return result
            }
        }
        let bytes: [UInt8]
        do { bytes = try FileIO.readAll(segment.path) } catch {
            fail(1, segment.path, "cannot read segment (\(error))")
            return result
        }
        var lastLeaf = expectedPrev
        bytes.withUnsafeBufferPointer { buffer in
            var start = 0
            var lineNumber = 0
            while start < buffer.count {
                lineNumber += 1
                guard let newline = buffer[start...].firstIndex(of: 0x0A) else {
                    if isNewest {
                        result.incompleteTail = buffer.count - start
                    } else {
                        fail(lineNumber, "\(segment.path):\(lineNumber)", "incomplete entry (no newline) in a segment that is not the newest")
                    }
                    return
                }
                let line = UnsafeBufferPointer(rebasing: buffer[start..<newline])
                let seq = segment.firstSeq + lineNumber - 1
                let location = "\(segment.path):\(lineNumber) (entry \(seq))"
                let entry: AuditEntry
                do { entry = try AuditEntry.parse(line, tape: tape) } catch {
                    return fail(lineNumber, location, "\(error)")
                }
                guard entry.seq == seq else {
                    return fail(lineNumber, location, "sequence number is \(entry.seq), expected \(seq): entries were removed, reordered or inserted")
                }
                if let lastLeaf {
                    guard entry.prev == Hex.encode(lastLeaf) else {
                        return fail(lineNumber, location, "'prev' is not the hash of the entry before: that entry, or this one, was altered, removed or reordered")
                    }
                } else {
                    result.firstPrev = entry.prev
                }
                if let mac {
                    mac.reset()
                    mac.update(UnsafeRawBufferPointer(AuditEntry.macInput(line)))
                    guard ConstantTime.equals(mac.finalize(), Hex.decode(entry.mac) ?? []) else {
                        return fail(lineNumber, location, "MAC does not verify under the vault's audit key: the entry was forged or altered")
                    }
                }
                let leaf = MerkleTree.leafHash(UnsafeRawBufferPointer(line))
                lastLeaf = leaf
                result.leaves.append(leaf)
                if let body {
                    do { try body(ScannedEntry(entry: entry, leafHash: leaf, segment: segment.name, line: lineNumber)) } catch {
                        return fail(lineNumber, location, "\(error)")
                    }
                }
                start = newline + 1
            }
        }
        return result
    }

    /// Every leaf hash from entry 0; needs the whole log (archived segments through `archives`).
    public func leafHashes() throws -> [[UInt8]] {
        var leaves: [[UInt8]] = []
        let summary = try scan { leaves.append($0.leafHash) }
        guard summary.firstSeq == 0 else {
            throw VaultError(.noInput, "entries before \(summary.firstSeq) were archived; pass --archive DIR with the archived segments")
        }
        return leaves
    }
}

/// A signed checkpoint as read from a file.
public struct StoredCheckpoint: Sendable {
    public let path: String
    public let checkpoint: Checkpoint
    public let note: String
}

/// The outcome of `audit verify`.
public struct AuditVerification: Codable, Sendable {
    public var ok: Bool
    public var firstSeq: Int
    public var treeSize: Int
    public var rootHash: String
    public var segments: Int
    public var checkpoints: Int
    public var latestCheckpoint: Int?
    public var macsChecked: Bool
    /// The first problem found, naming the entry or checkpoint.
    public var problem: String?
    public var warnings: [String]
    public var seconds: Double
}

/// `audit verify`: the chain, the tree, every checkpoint's signature and root, and the
/// writer state. Every checkpoint's root must equal the root the log gives at its size, so
/// every later checkpoint is consistent with every earlier one.
public struct AuditVerifier {
    public let layout: VaultLayout
    public let verifier: NoteVerifier
    public var macKey: AuditKey?
    public var archives: [String] = []

    public init(layout: VaultLayout, verifier: NoteVerifier, macKey: AuditKey? = nil, archives: [String] = []) {
        self.layout = layout
        self.verifier = verifier
        self.macKey = macKey
        self.archives = archives
    }

    /// Reads and checks a signed checkpoint file.
    public func loadCheckpoint(_ path: String) throws -> StoredCheckpoint {
        let bytes: [UInt8]
        do { bytes = try FileIO.readAll(path) } catch { throw AuditProblem(location: path, message: "cannot read checkpoint (\(error))") }
        let note = String(decoding: bytes, as: UTF8.self)
        do {
            let text = try SignedNote.open(note, verifier: verifier)
            let checkpoint = try Checkpoint.parse(text: text)
            guard checkpoint.origin == verifier.name else {
                throw AuditProblem(location: path, message: "checkpoint is for log '\(checkpoint.origin)', not '\(verifier.name)'")
            }
            return StoredCheckpoint(path: path, checkpoint: checkpoint, note: note)
        } catch let problem as AuditProblem {
            throw problem
        } catch {
            throw AuditProblem(location: path, message: "checkpoint does not verify: \(error)")
        }
    }

    public func verify(fromCheckpoint: String? = nil) -> AuditVerification {
        let started = Date()
        var result = AuditVerification(ok: false, firstSeq: 0, treeSize: 0, rootHash: "", segments: 0, checkpoints: 0, latestCheckpoint: nil,
                                       macsChecked: macKey != nil, problem: nil, warnings: [], seconds: 0)
        do {
            // Checkpoints first, so the scan can note the root at each of their sizes.
            var checkpoints: [StoredCheckpoint] = []
            let folder = layout.audit + "/" + AuditFiles.checkpointsFolder
            let names = FileIO.isDirectory(folder) ? try FileIO.listDirectory(folder).filter { $0.hasSuffix(".note") }.sorted() : []
            for name in names {
                let stored = try loadCheckpoint(folder + "/" + name)
                guard name == AuditFiles.checkpointName(size: stored.checkpoint.treeSize) else {
                    throw AuditProblem(location: stored.path, message: "file name does not match the checkpoint's tree size \(stored.checkpoint.treeSize)")
                }
                checkpoints.append(stored)
            }
            let latestPath = layout.audit + "/" + AuditFiles.latestCheckpoint
            if FileIO.exists(latestPath) { checkpoints.append(try loadCheckpoint(latestPath)) }
            if let fromCheckpoint { checkpoints.append(try loadCheckpoint(fromCheckpoint)) }
            var state: AuditHead?
            if let macKey {
                let log = AuditLog(layout: layout, vaultId: [], key: macKey, context: AuditContext(purpose: "HCOMPL"), segmentLimit: 0)
                state = try? log.loadState()
                if state == nil && FileIO.exists(log.statePath) {
                    throw AuditProblem(location: log.statePath, message: "audit state does not authenticate under the audit key: it was altered")
                }
            }
            var sizes = Set(checkpoints.map(\.checkpoint.treeSize))
            if let state { sizes.insert(state.size) }

            let summary = try AuditLogReader(directory: layout.audit, archives: archives, macKey: macKey).scan(rootsAt: sizes, parallel: true)
            result.firstSeq = summary.firstSeq
            result.treeSize = summary.treeSize
            result.rootHash = Hex.encode(summary.frontier.root)
            result.segments = summary.segments
            result.checkpoints = checkpoints.count
            if summary.incompleteTail > 0 {
                result.warnings.append("the newest segment ends in \(summary.incompleteTail) bytes of an incomplete entry (a write was interrupted; the next command removes them)")
            }

            for stored in checkpoints.sorted(by: { $0.checkpoint.treeSize < $1.checkpoint.treeSize }) {
                let size = stored.checkpoint.treeSize
                if size > summary.treeSize {
                    throw AuditProblem(location: stored.path, message: "signed checkpoint covers \(size) entries but the log ends before entry \(summary.treeSize) (in \(summary.lastSegment ?? layout.audit)): entries \(summary.treeSize)...\(size - 1) were removed from the end")
                }
                guard let root = summary.roots[size] else {
                    result.warnings.append("\(stored.path): checkpoint at size \(size) predates the retained log (entries before \(summary.firstSeq) are archived); not checked")
                    continue
                }
                guard root == stored.checkpoint.rootHash else {
                    throw AuditProblem(location: stored.path, message: "root hash at size \(size) differs from the log's: an entry before \(size) was altered, removed or reordered")
                }
            }
            if let state {
                let path = layout.keys + "/audit.state"
                if state.size > summary.treeSize {
                    throw AuditProblem(location: path, message: "the writer recorded \(state.size) entries but the log ends before entry \(summary.treeSize) (in \(summary.lastSegment ?? layout.audit)): entries were removed from the end")
                }
                let recorded = MerkleFrontier(size: state.size, peaks: state.peaks.compactMap(Hex.decode))?.root
                if let root = summary.roots[state.size], root != recorded {
                    throw AuditProblem(location: path, message: "the log's root at size \(state.size) differs from the one the writer recorded: an entry was altered")
                }
            }
            let latest = checkpoints.map(\.checkpoint.treeSize).max()
            result.latestCheckpoint = latest
            if latest == nil && summary.treeSize > 0 {
                throw AuditProblem(location: layout.audit, message: "the log has \(summary.treeSize) entries but no signed checkpoint")
            }
            if let latest, latest < summary.treeSize {
                result.warnings.append("entries \(latest)...\(summary.treeSize - 1) are not yet covered by a signed checkpoint (a command was interrupted or is still running)"
                    + (macKey != nil ? "; their MACs verify" : ""))
            }
            result.ok = true
        } catch {
            result.problem = String(describing: error)
        }
        result.seconds = Date().timeIntervalSince(started)
        return result
    }
}

/// Filters for `audit log`.
public struct AuditFilter: Sendable {
    public var principal: String?
    public var dataset: String?
    public var action: String?
    public var purpose: String?
    public var outcome: AuditOutcome?
    /// Canonical audit times (see `AuditTime.bound`); since inclusive, until exclusive.
    public var since: String?
    public var until: String?

    public init() {}

    public func matches(_ e: AuditEntry) -> Bool {
        if let principal, e.principal != principal { return false }
        if let dataset, e.resource.dataset != dataset { return false }
        if let action, e.action != action && !e.action.hasPrefix(action + ".") { return false }
        if let purpose, e.purpose != purpose { return false }
        if let outcome, e.outcome != outcome { return false }
        if let since, e.time < since { return false }
        if let until, e.time >= until { return false }
        return true
    }
}

/// Per-segment results of a parallel check, guarded by a lock.
final class SegmentChecks: @unchecked Sendable {
    // All state is accessed under `lock`.
    private let lock = NSLock()
    private var items: [AuditLogReader.SegmentCheck?]
    init(count: Int) { items = Array(repeating: nil, count: count) }
    func set(_ i: Int, _ check: AuditLogReader.SegmentCheck) { lock.withLock { items[i] = check } }
    var all: [AuditLogReader.SegmentCheck?] { lock.withLock { items } }
}
