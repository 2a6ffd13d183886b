import Foundation
import Testing
import VaultCrypto
@testable import VaultCore

// MARK: - Helpers

/// Small file and log helpers for the audit tests.
enum AuditTestKit {
    static func read(_ path: String) throws -> [UInt8] { [UInt8](try Data(contentsOf: URL(fileURLWithPath: path))) }

    static func write(_ bytes: [UInt8], to path: String) throws {
        guard FileManager.default.createFile(atPath: path, contents: Data(bytes)) else { throw CocoaError(.fileWriteUnknown) }
    }

    /// Overwrites one byte in place.
    static func poke(_ byte: UInt8, at offset: Int, in path: String) throws {
        let fd = open(path, O_WRONLY)
        guard fd >= 0 else { throw CocoaError(.fileWriteUnknown) }
        defer { close(fd) }
        var b = byte
        guard pwrite(fd, &b, 1, off_t(offset)) == 1 else { throw CocoaError(.fileWriteUnknown) }
    }

    static func exists(_ path: String) -> Bool { FileManager.default.fileExists(atPath: path) }

    static func size(_ path: String) throws -> Int {
        (try FileManager.default.attributesOfItem(atPath: path)[.size] as? NSNumber)?.intValue ?? -1
    }

    /// The lines of a segment (every line ends in a newline), without their newlines.
    static func lines(_ bytes: [UInt8]) -> [[UInt8]] {
        var parts = bytes.split(separator: 0x0A, omittingEmptySubsequences: false).map { Array($0) }
        if parts.last?.isEmpty == true { parts.removeLast() }
        return parts
    }

    static func join(_ lines: [[UInt8]]) -> [UInt8] { lines.flatMap { $0 + [0x0A] } }

    /// Byte offset of line `number` (1-based) in `bytes`.
    static func offset(ofLine number: Int, in bytes: [UInt8]) -> Int {
        lines(bytes).prefix(number - 1).reduce(0) { $0 + $1.count + 1 }
    }

    static func event(_ i: Int) -> AuditEvent {
        AuditEvent(action: AuditAction.datasetsRead, resource: AuditResource(dataset: "ds\(i % 5)", shard: "shard-\(i).svs"),
                   reason: "test event \(i)")
    }

    /// A vault whose audit log starts a new segment every 4096 bytes.
    static func newVault(_ label: String = "audit", segmentBytes: Int = 4096,
                         context: AuditContext = AuditContext(purpose: "HSYSADMIN")) throws -> (TemporaryDirectory, Vault) {
        let dir = TemporaryDirectory(label)
        return (dir, try Vault.initialize(at: dir.path + "/vault", context: context, auditSegmentBytes: segmentBytes))
    }

    /// Appends events in batches until the log holds `total` entries, then writes a checkpoint.
    static func fill(_ vault: Vault, to total: Int, batch: Int = 7) throws {
        var size = try vault.audit.treeHead().size
        while size < total {
            let n = min(batch, total - size)
            try vault.audit.append((0..<n).map { event(size + $0) })
            size += n
        }
        try vault.audit.checkpoint()
    }

    static func verifier(_ vault: Vault, archives: [String] = []) -> AuditVerifier {
        AuditVerifier(layout: vault.layout, verifier: vault.audit.key.verifier, macKey: vault.audit.key, archives: archives)
    }

    /// Every entry of the log, in order, with where it is.
    static func scan(_ vault: Vault, archives: [String] = []) throws -> [ScannedEntry] {
        var all: [ScannedEntry] = []
        try AuditLogReader(directory: vault.layout.audit, archives: archives, macKey: vault.audit.key).scan { all.append($0) }
        return all
    }

    static func segmentPath(_ vault: Vault, _ name: String) -> String { vault.layout.audit + "/" + name }

    /// The location `audit verify` gives for an entry: `<segment>:<line> (entry <seq>)`.
    static func place(_ segment: String, line: Int, seq: Int) -> String { "\(segment):\(line) (entry \(seq))" }

    /// Runs `body` and returns the VaultError it threw, if any.
    static func vaultError(_ body: () throws -> Void) -> VaultError? {
        do { try body() } catch let error as VaultError { return error } catch { return VaultError(.software, "not a VaultError: \(error)") }
        return nil
    }

    static func parse(_ bytes: [UInt8], tape: JSONTape) throws -> AuditEntry {
        try bytes.withUnsafeBufferPointer { try AuditEntry.parse($0, tape: tape) }
    }
}

final class AuditErrorCollector: @unchecked Sendable {
    // All state is accessed under `lock`.
    private let lock = NSLock()
    private var errors: [String] = []
    func add(_ error: any Error) { lock.withLock { errors.append(String(describing: error)) } }
    var all: [String] { lock.withLock { errors } }
}

// MARK: - Canonical encoding

@Suite("Audit log: canonical entry encoding")
struct AuditLogEncodingTests {
    typealias K = AuditTestKit

    static let sample = AuditEntry(
        seq: 42, time: "2026-11-21T09:30:00.123456Z", principal: "alice", action: AuditAction.shardDecrypt,
        resource: AuditResource(vault: "00112233445566778899aabbccddeeff", dataset: "tiny", generation: 2, shard: "shard-00001.svs",
                                job: "job-7", result: "r1", key: "tiny/kek", keyVersion: 3, patient: "p-abc", sha256: String(repeating: "ab", count: 32),
                                size: 1234),
        purpose: "TREAT", outcome: .success, reason: nil, request: String(repeating: "c", count: 32),
        prev: String(repeating: "0f", count: 32), mac: String(repeating: "9e", count: 32))

    @Test("parse of the canonical bytes gives back the same entry, with and without optional fields")
    func roundTrip() throws {
        let tape = JSONTape(capacity: 4096)
        var minimal = Self.sample
        minimal.resource = AuditResource()
        minimal.outcome = .denied
        for entry in [Self.sample, minimal] {
            let bytes = entry.canonicalBytes
            let parsed = try K.parse(bytes, tape: tape)
            #expect(parsed == entry)
            #expect(parsed.canonicalBytes == bytes)
        }
        // Field order and absence of optionals are as documented.
        let text = String(decoding: minimal.canonicalBytes, as: UTF8.self)
        #expect(text.hasPrefix("{\"seq\":42,\"time\":\"2026-11-21T09:30:00.123456Z\",\"principal\":\"alice\",\"action\":\"shard.decrypt\",\"resource\":{},\"purpose\":\"TREAT\",\"outcome\":\"denied\",\"request\":"))
        #expect(text.hasSuffix(",\"mac\":\"\(minimal.mac)\"}"))
        #expect(!text.contains("reason"))
        #expect(AuditEntry.macSuffixLength == ",\"mac\":\"".utf8.count + 64 + "\"}".utf8.count)
    }

    @Test("a reason with quotes, backslash, newline, tab and non-ASCII text round-trips, escaped minimally")
    func awkwardReason() throws {
        let tape = JSONTape(capacity: 4096)
        var entry = Self.sample
        entry.reason = "he said \"no\" \\ then\nleft\tearly: café ü 漢字 🎉 \u{7F} /end"
        let bytes = entry.canonicalBytes
        #expect(!bytes.contains(0x0A), "the canonical line must not contain a raw newline")
        let text = String(decoding: bytes, as: UTF8.self)
        #expect(text.contains(#""reason":"he said \"no\" \\ then\u000aleft\u0009early: café ü 漢字 🎉 "#))
        #expect(text.contains(" /end\""), "'/' is not escaped")
        let parsed = try K.parse(bytes, tape: tape)
        #expect(parsed.reason == entry.reason)
        #expect(parsed == entry)
    }

    @Test("non-canonical variants of a valid line are rejected")
    func nonCanonical() throws {
        let tape = JSONTape(capacity: 4096)
        var entry = Self.sample
        entry.reason = "line\none"
        let canonical = String(decoding: entry.canonicalBytes, as: UTF8.self)
        _ = try K.parse(Array(canonical.utf8), tape: tape)
        let time = entry.time
        func variant(_ from: String, _ to: String) -> String {
            let v = canonical.replacingOccurrences(of: from, with: to)
            precondition(v != canonical, "variant \(from) -> \(to) changed nothing")
            return v
        }
        let variants: [(String, String)] = [
            ("space after a colon", variant("\"seq\":42", "\"seq\": 42")),
            ("space after a comma", variant(",\"time\"", ", \"time\"")),
            ("leading space", " " + canonical),
            ("trailing space", canonical + " "),
            ("trailing carriage return", canonical + "\r"),
            ("reordered top-level keys", variant("{\"seq\":42,\"time\":\"\(time)\"", "{\"time\":\"\(time)\",\"seq\":42")),
            ("reordered resource keys", variant("\"dataset\":\"tiny\",\"generation\":2", "\"generation\":2,\"dataset\":\"tiny\"")),
            ("reason after request", variant(",\"reason\":\"line\\u000aone\",\"request\":\"\(entry.request)\"",
                                             ",\"request\":\"\(entry.request)\",\"reason\":\"line\\u000aone\"")),
            ("extra top-level key", variant(",\"mac\":", ",\"extra\":1,\"mac\":")),
            ("extra resource key", variant("\"size\":1234}", "\"size\":1234,\"color\":\"red\"}")),
            ("duplicated key", variant("\"seq\":42,", "\"seq\":42,\"seq\":42,")),
            ("number with fraction", variant("\"seq\":42,", "\"seq\":42.0,")),
            ("number with exponent", variant("\"seq\":42,", "\"seq\":4.2e1,")),
            ("number with leading zero", variant("\"generation\":2,", "\"generation\":02,")),
            ("negative zero", variant("\"keyVersion\":3,", "\"keyVersion\":-0,")),
            ("number as string", variant("\"seq\":42,", "\"seq\":\"42\",")),
            ("short escape for newline", variant("line\\u000aone", "line\\none")),
            ("upper-case unicode escape", variant("line\\u000aone", "line\\u000Aone")),
            ("needless escape", variant("\"alice\"", "\"\\u0061lice\"")),
            ("escaped slash", variant("\"shard.decrypt\"", "\"shard\\/decrypt\"")),
            ("null optional", variant(",\"request\":", ",\"x\":null,\"request\":")),
            ("unknown outcome", variant("\"success\"", "\"succeeded\"")),
            ("time without microseconds", variant(time, "2026-11-21T09:30:00Z")),
            ("time with offset", variant(time, "2026-11-21T09:30:00.123456+00:00")),
            ("short mac", variant(entry.mac, String(entry.mac.dropLast(2)))),
            ("non-hex prev", variant(entry.prev, "zz" + entry.prev.dropFirst(2))),
            ("missing outcome", variant(",\"outcome\":\"success\"", "")),
            ("two objects", canonical + canonical),
        ]
        for (what, text) in variants {
            #expect(throws: (any Error).self, "\(what) was accepted: \(text)") { _ = try K.parse(Array(text.utf8), tape: tape) }
        }
    }

    @Test("hex fields written in upper case are not canonical (the MAC does not cover the mac field's spelling)")
    func upperCaseHex() throws {
        let tape = JSONTape(capacity: 4096)
        var entry = Self.sample
        entry.mac = String(repeating: "9e", count: 32)
        let canonical = String(decoding: entry.canonicalBytes, as: UTF8.self)
        let upperMac = canonical.replacingOccurrences(of: entry.mac, with: entry.mac.uppercased())
        let upperPrev = canonical.replacingOccurrences(of: entry.prev, with: entry.prev.uppercased())
        #expect(upperMac != canonical && upperPrev != canonical)
        #expect(throws: (any Error).self, "upper-case mac accepted") { _ = try K.parse(Array(upperMac.utf8), tape: tape) }
        #expect(throws: (any Error).self, "upper-case prev accepted") { _ = try K.parse(Array(upperPrev.utf8), tape: tape) }
    }

    @Test("appended reasons, principals and purposes are kept to one printable line")
    func sanitised() throws {
        let (dir, vault) = try AuditTestKit.newVault()
        defer { withExtendedLifetime(dir) {} }
        let writer = try Vault.open(at: vault.layout.root, context: AuditContext(principal: "bob\nevil", purpose: "HSYS\u{7F}ADMIN"))
        let entry = try writer.audit.append(AuditEvent(action: "test", reason: "a\nb\r\u{1B}[31mc\u{7F}\"q\" é"))
        #expect(entry.reason == "a b  [31mc \"q\" é")
        #expect(entry.principal == "bob evil")
        #expect(entry.purpose == "HSYS ADMIN")
        try vault.audit.checkpoint()
        let last = try #require(try K.scan(vault).last)
        #expect(last.entry == entry)
        let segment = try K.read(K.segmentPath(vault, last.segment))
        #expect(K.lines(segment).count == last.line, "the entry must be exactly one line")
        let result = K.verifier(vault).verify()
        #expect(result.ok, "\(result.problem ?? "")")
    }
}

// MARK: - Chain, tree and checkpoints

@Suite("Audit log: chain, Merkle tree and verification")
struct AuditLogChainTests {
    typealias K = AuditTestKit

    @Test("300 entries over many 4 KiB segments verify; frontier, reader and MerkleTree agree at every size 0...300")
    func bigLog() throws {
        let (dir, vault) = try K.newVault()
        defer { withExtendedLifetime(dir) {} }
        try K.fill(vault, to: 300)
        let result = K.verifier(vault).verify()
        #expect(result.ok, "\(result.problem ?? "")")
        #expect(result.treeSize == 300 && result.firstSeq == 0 && result.macsChecked)
        #expect(result.latestCheckpoint == 300)
        #expect(result.warnings.isEmpty, "\(result.warnings)")

        let segments = try AuditFiles.segments(in: vault.layout.audit)
        #expect(segments.count >= 10, "expected many segments, got \(segments.count)")
        #expect(result.segments == segments.count)
        // Every segment but possibly an oversize single line respects the limit and is
        // named after its first entry; the bytes hashed are exactly the lines on disk.
        var fileLeaves: [[UInt8]] = []
        let tape = JSONTape(capacity: 4096)
        for segment in segments {
            let bytes = try K.read(K.segmentPath(vault, segment.name))
            #expect(bytes.count <= 4096, "\(segment.name) has \(bytes.count) bytes")
            #expect(bytes.last == 0x0A)
            let lines = K.lines(bytes)
            #expect(!lines.isEmpty)
            for (i, line) in lines.enumerated() {
                let entry = try K.parse(line, tape: tape)
                #expect(entry.seq == segment.firstSeq + i)
                #expect(entry.prev == (fileLeaves.last.map(Hex.encode) ?? String(repeating: "0", count: 64)))
                let mac = try HMACSHA256.authenticate(key: vault.audit.key.macKey, Array(line.prefix(line.count - AuditEntry.macSuffixLength)))
                #expect(Hex.encode(mac) == entry.mac)
                fileLeaves.append(MerkleTree.leafHash(line))
            }
        }
        #expect(fileLeaves.count == 300)

        let scanned = try K.scan(vault)
        let leaves = scanned.map(\.leafHash)
        #expect(leaves == fileLeaves)
        #expect(scanned.map(\.entry.seq) == Array(0..<300))

        let summary = try AuditLogReader(directory: vault.layout.audit, macKey: vault.audit.key).scan(rootsAt: Set(0...300))
        var frontier = MerkleFrontier()
        for n in 0...300 {
            let expected = MerkleTree.root(leafHashes: Array(leaves[0..<n]))
            #expect(frontier.size == n)
            #expect(frontier.root == expected, "frontier root differs at size \(n)")
            #expect(summary.roots[n] == expected, "reader root differs at size \(n)")
            #expect(MerkleFrontier(size: n, peaks: frontier.peaks) == frontier)
            if n < 300 { frontier.append(leafHash: leaves[n]) }
        }
        let head = try vault.audit.treeHead()
        #expect(head.size == 300 && head.root == frontier.root)
        #expect(result.rootHash == Hex.encode(frontier.root))
        let note = try String(contentsOfFile: vault.layout.audit + "/checkpoint", encoding: .utf8)
        let checkpoint = try Checkpoint.parse(text: try SignedNote.open(note, verifier: vault.audit.key.verifier))
        #expect(checkpoint.treeSize == 300 && checkpoint.rootHash == frontier.root)
        #expect(K.exists(vault.layout.audit + "/checkpoints/" + AuditFiles.checkpointName(size: 300)))
        // The writer state matches the tree.
        let state = try vault.audit.loadState()
        #expect(state.size == 300 && state.lastLeaf == Hex.encode(leaves[299]) && state.peaks == frontier.peaks.map(Hex.encode))
        #expect(state.segment == segments.last?.name)
    }

    @Test("the first entries of a new vault record its creation and start the chain at zero")
    func firstEntries() throws {
        let (dir, vault) = try K.newVault()
        defer { withExtendedLifetime(dir) {} }
        let entries = try K.scan(vault)
        #expect(entries.map(\.entry.action) == [AuditAction.vaultInit, AuditAction.keyCreate, AuditAction.keyCreate])
        #expect(entries.first?.entry.prev == String(repeating: "0", count: 64))
        #expect(entries.allSatisfy { $0.entry.resource.vault == vault.idHex && $0.entry.outcome == .success })
        #expect(Set(entries.map(\.entry.request)).count == 1, "one command, one request id")
        let result = K.verifier(vault).verify()
        #expect(result.ok && result.treeSize == 3 && result.latestCheckpoint == 3, "\(result)")
    }
}

// MARK: - Attacks

@Suite("Audit log: tampering is detected and located")
struct AuditLogAttackTests {
    typealias K = AuditTestKit

    /// A checkpointed vault with `total` entries over several segments.
    func attackVault(_ total: Int = 60, segments: Int = 4) throws -> (TemporaryDirectory, Vault, [ScannedEntry]) {
        let (dir, vault) = try K.newVault("attack")
        try K.fill(vault, to: total)
        let entries = try K.scan(vault)
        let result = K.verifier(vault).verify()
        try #require(result.ok, "\(result.problem ?? "")")
        try #require(Set(entries.map(\.segment)).count >= segments)
        return (dir, vault, entries)
    }

    func problem(_ vault: Vault, fromCheckpoint: String? = nil, archives: [String] = []) -> String {
        let result = K.verifier(vault, archives: archives).verify(fromCheckpoint: fromCheckpoint)
        return result.ok ? "" : (result.problem ?? "<not ok but no problem>")
    }

    @Test("every changed byte of an entry in the middle is detected at that entry")
    func everyByte() throws {
        let (dir, vault, entries) = try attackVault(12, segments: 1)
        defer { withExtendedLifetime(dir) {} }
        let target = entries[entries.count / 2]
        let path = K.segmentPath(vault, target.segment)
        let original = try K.read(path)
        let lines = K.lines(original)
        let line = lines[target.line - 1]
        let start = K.offset(ofLine: target.line, in: original)
        #expect(Array(original[start..<start + line.count]) == line)
        let place = K.place(target.segment, line: target.line, seq: target.entry.seq)
        var missed: [String] = []
        var misplaced: [String] = []
        for mask: UInt8 in [0x01, 0xFF] {
            for i in 0..<line.count {
                try K.poke(original[start + i] ^ mask, at: start + i, in: path)
                let p = problem(vault)
                try K.poke(original[start + i], at: start + i, in: path)
                if p.isEmpty { missed.append("byte \(i) ^ \(mask)") } else if !p.contains(place) { misplaced.append("byte \(i) ^ \(mask): \(p)") }
            }
        }
        try K.write(original, to: path)
        #expect(missed.isEmpty, "undetected: \(missed)")
        #expect(misplaced.isEmpty, "reported elsewhere: \(misplaced.prefix(5))")
        #expect(problem(vault).isEmpty, "the restored log must verify again")
    }

    /// An entry in the second half of the log whose successor is in the same segment.
    static func middleEntryWithSuccessor(_ entries: [ScannedEntry]) -> ScannedEntry? {
        entries.dropFirst(entries.count / 2).first { e in entries.contains { $0.segment == e.segment && $0.line == e.line + 1 } }
    }

    @Test("a deleted entry line is reported at its place")
    func deletedLine() throws {
        let (dir, vault, entries) = try attackVault()
        defer { withExtendedLifetime(dir) {} }
        let target = try #require(Self.middleEntryWithSuccessor(entries))
        let path = K.segmentPath(vault, target.segment)
        var lines = K.lines(try K.read(path))
        lines.remove(at: target.line - 1)
        try K.write(K.join(lines), to: path)
        let p = problem(vault)
        #expect(p.contains(K.place(target.segment, line: target.line, seq: target.entry.seq)), "\(p)")
        #expect(p.contains("sequence number is \(target.entry.seq + 1), expected \(target.entry.seq)"), "\(p)")
    }

    @Test("two swapped adjacent lines are reported at the first of them")
    func swappedLines() throws {
        let (dir, vault, entries) = try attackVault()
        defer { withExtendedLifetime(dir) {} }
        let target = try #require(Self.middleEntryWithSuccessor(entries))
        let path = K.segmentPath(vault, target.segment)
        var lines = K.lines(try K.read(path))
        lines.swapAt(target.line - 1, target.line)
        try K.write(K.join(lines), to: path)
        let p = problem(vault)
        #expect(p.contains(K.place(target.segment, line: target.line, seq: target.entry.seq)), "\(p)")
        #expect(p.contains("sequence number is \(target.entry.seq + 1)"), "\(p)")
    }

    @Test("removing the last entries is detected through the checkpoint, and through the writer state without checkpoints",
          arguments: [1, 3])
    func truncated(count: Int) throws {
        let (dir, vault, entries) = try attackVault()
        defer { withExtendedLifetime(dir) {} }
        let total = entries.count
        let newest = try #require(entries.last).segment
        let path = K.segmentPath(vault, newest)
        let original = try K.read(path)
        var lines = K.lines(original)
        try #require(lines.count > count, "the newest segment should hold more than \(count) lines")
        lines.removeLast(count)
        try K.write(K.join(lines), to: path)
        let p = problem(vault)
        #expect(p.contains("covers \(total) entries but the log ends before entry \(total - count)"), "\(p)")
        #expect(p.contains("removed from the end"))
        #expect(p.contains(vault.layout.audit + "/checkpoint"), "the problem names a checkpoint file: \(p)")

        // With every checkpoint gone as well, the authenticated writer state still notices.
        try FileManager.default.removeItem(atPath: vault.layout.audit + "/checkpoints")
        try FileManager.default.removeItem(atPath: vault.layout.audit + "/checkpoint")
        let q = problem(vault)
        #expect(q.contains("audit.state") && q.contains("recorded \(total) entries but the log ends before entry \(total - count)"), "\(q)")

        // The writer refuses to extend a truncated log, even when reopened.
        let reopened = try Vault.open(at: vault.layout.root)
        let error = K.vaultError { try reopened.audit.append(K.event(0)) }
        #expect(error?.code == .dataError, "\(String(describing: error))")
        #expect(try K.read(path) == K.join(lines))
    }

    @Test("removing the newest segment entirely is detected")
    func newestSegmentRemoved() throws {
        let (dir, vault, entries) = try attackVault()
        defer { withExtendedLifetime(dir) {} }
        let newest = try #require(entries.last).segment
        let remaining = entries.filter { $0.segment != newest }.count
        try FileManager.default.removeItem(atPath: K.segmentPath(vault, newest))
        let p = problem(vault)
        #expect(p.contains("covers \(entries.count) entries but the log ends before entry \(remaining)"), "\(p)")
    }

    /// Appends an entry with the right sequence number and chain hash but a MAC under
    /// another key; returns the segment path, the forged entry's place and its line.
    func forge(_ vault: Vault, after entries: [ScannedEntry]) throws -> (path: String, place: String, line: [UInt8]) {
        let last = try #require(entries.last)
        let path = K.segmentPath(vault, last.segment)
        let bytes = try K.read(path)
        let lastLine = K.lines(bytes)[last.line - 1]
        #expect(MerkleTree.leafHash(lastLine) == last.leafHash)
        var forged = last.entry
        forged.seq = last.entry.seq + 1
        forged.time = AuditTime.now()
        forged.action = AuditAction.shardDecrypt
        forged.resource = AuditResource(dataset: "ds1", shard: "shard-00000.svs")
        forged.reason = "nothing to see here"
        forged.prev = Hex.encode(MerkleTree.leafHash(lastLine))
        forged.mac = String(repeating: "0", count: 64)
        let otherKey = try SecureBytes.random(count: 32)
        let unsigned = forged.canonicalBytes
        forged.mac = Hex.encode(try HMACSHA256.authenticate(key: otherKey, Array(unsigned.prefix(unsigned.count - AuditEntry.macSuffixLength))))
        let line = forged.canonicalBytes
        // The forgery is well formed: only its MAC is wrong.
        #expect(try K.parse(line, tape: JSONTape(capacity: 4096)) == forged)
        try K.write(bytes + line + [0x0A], to: path)
        return (path, K.place(last.segment, line: last.line + 1, seq: forged.seq), line)
    }

    @Test("a forged entry with the right sequence number and chain hash but a MAC under another key is detected")
    func forgedMac() throws {
        let (dir, vault, entries) = try attackVault()
        defer { withExtendedLifetime(dir) {} }
        let forged = try forge(vault, after: entries)
        let p = problem(vault)
        #expect(p.contains(forged.place), "\(p)")
        #expect(p.contains("MAC"), "\(p)")
    }

    @Test("after a forged append, the writer refuses to extend the log (same instance and reopened)")
    func refusesForgedTail() throws {
        let (dir, vault, entries) = try attackVault()
        defer { withExtendedLifetime(dir) {} }
        let forged = try forge(vault, after: entries)
        let size = try K.size(forged.path)
        let segmentsBefore = try AuditFiles.segments(in: vault.layout.audit).map(\.name)
        let checkpointBefore = try K.read(vault.layout.audit + "/checkpoint")

        let reopened = try Vault.open(at: vault.layout.root, context: AuditContext(principal: "carol", purpose: "TREAT"))
        let error = K.vaultError { try reopened.audit.append(K.event(99)) }
        #expect(error?.code == .dataError, "\(String(describing: error))")
        #expect(error.map { String(describing: $0) }?.contains("MAC") == true)
        #expect(error?.location?.contains("(entry \(entries.count))") == true, "\(String(describing: error?.location))")
        let denied = K.vaultError { try reopened.authorize(AuditAction.datasetsRead) }
        #expect(denied?.code == .dataError, "\(String(describing: denied))")
        let sameInstance = K.vaultError { try vault.audit.append(K.event(100)) }
        #expect(sameInstance?.code == .dataError, "\(String(describing: sameInstance))")
        #expect(K.vaultError { try vault.audit.checkpoint() }?.code == .dataError)

        #expect(try K.size(forged.path) == size, "the log must not grow")
        #expect(try AuditFiles.segments(in: vault.layout.audit).map(\.name) == segmentsBefore)
        #expect(try K.read(vault.layout.audit + "/checkpoint") == checkpointBefore, "no checkpoint may cover the forgery")
    }

    @Test("a deleted middle segment is reported as missing entries")
    func deletedSegment() throws {
        let (dir, vault, _) = try attackVault()
        defer { withExtendedLifetime(dir) {} }
        let segments = try AuditFiles.segments(in: vault.layout.audit)
        let middle = segments.count / 2
        try #require(middle > 0 && middle < segments.count - 1)
        try FileManager.default.removeItem(atPath: K.segmentPath(vault, segments[middle].name))
        let p = problem(vault)
        let next = segments[middle + 1]
        #expect(p.contains(next.name), "\(p)")
        #expect(p.contains("entries \(segments[middle].firstSeq)...\(next.firstSeq - 1) are missing"), "\(p)")
    }

    @Test("a deleted first segment is reported (no archive base)")
    func deletedFirstSegment() throws {
        let (dir, vault, _) = try attackVault()
        defer { withExtendedLifetime(dir) {} }
        let segments = try AuditFiles.segments(in: vault.layout.audit)
        try FileManager.default.removeItem(atPath: K.segmentPath(vault, segments[0].name))
        let p = problem(vault)
        #expect(p.contains(segments[1].name) && p.contains("earlier segments were removed"), "\(p)")
    }

    @Test("a checkpoint with an altered root is rejected: re-signed by another key, left with the old signature, or signed by the real key")
    func alteredCheckpoint() throws {
        let (dir, vault, entries) = try attackVault()
        defer { withExtendedLifetime(dir) {} }
        let name = AuditFiles.checkpointName(size: entries.count)
        let path = vault.layout.audit + "/checkpoints/" + name
        let original = try String(contentsOfFile: path, encoding: .utf8)
        let verifier = vault.audit.key.verifier
        var checkpoint = try Checkpoint.parse(text: try SignedNote.open(original, verifier: verifier))
        checkpoint.rootHash[0] ^= 0x01

        // 1. Re-signed under the same name with another Ed25519 key.
        let otherSeed = try Ed25519.generateSeed()
        try SignedNote.sign(text: checkpoint.text, name: verifier.name, seed: otherSeed).write(toFile: path, atomically: true, encoding: .utf8)
        var p = problem(vault)
        #expect(p.contains(name) && p.contains("checkpoint does not verify") && p.contains("not signed by \(verifier.name)"), "\(p)")

        // 2. Root edited, original signature kept.
        let oldRoot = Base64.encode(try Checkpoint.parse(text: try SignedNote.open(original, verifier: verifier)).rootHash)
        let edited = original.replacingOccurrences(of: oldRoot, with: Base64.encode(checkpoint.rootHash))
        #expect(edited != original)
        try edited.write(toFile: path, atomically: true, encoding: .utf8)
        p = problem(vault)
        #expect(p.contains(name) && p.contains("signature by \(verifier.name) does not verify"), "\(p)")

        // 3. Signed by the vault's own key (a stolen key): the root no longer matches the log.
        try SignedNote.sign(text: checkpoint.text, name: verifier.name, seed: vault.audit.key.seed).write(toFile: path, atomically: true, encoding: .utf8)
        p = problem(vault)
        #expect(p.contains(name) && p.contains("root hash at size \(entries.count) differs"), "\(p)")

        // 4. A checkpoint file renamed to another size.
        try original.write(toFile: path, atomically: true, encoding: .utf8)
        #expect(problem(vault).isEmpty)
        let renamed = vault.layout.audit + "/checkpoints/" + AuditFiles.checkpointName(size: entries.count - 1)
        try FileManager.default.moveItem(atPath: path, toPath: renamed)
        p = problem(vault)
        #expect(p.contains(AuditFiles.checkpointName(size: entries.count - 1)) && p.contains("does not match"), "\(p)")
    }

    @Test("an edited writer state (keys/audit.state) is detected, body or MAC")
    func editedState() throws {
        let (dir, vault, entries) = try attackVault()
        defer { withExtendedLifetime(dir) {} }
        let path = vault.layout.keys + "/audit.state"
        let original = try String(contentsOfFile: path, encoding: .utf8)
        #expect(original.contains("\"size\":\(entries.count)"))
        let edits = [
            original.replacingOccurrences(of: "\"size\":\(entries.count)", with: "\"size\":\(entries.count - 1)"),
            String(original.dropLast(2)) + (original.dropLast(1).last == "0" ? "1" : "0") + "\n",
            original.replacingOccurrences(of: "\"manifests\":{}", with: "\"manifests\":{\"x\":{\"generation\":9,\"seq\":1,\"sha256\":\"00\"}}"),
        ]
        for edit in edits {
            #expect(edit != original)
            try edit.write(toFile: path, atomically: true, encoding: .utf8)
            let p = problem(vault)
            #expect(p.contains(path) && p.contains("altered"), "\(p)")
            let reopened = try Vault.open(at: vault.layout.root)
            #expect(K.vaultError { try reopened.audit.append(K.event(1)) }?.code == .dataError)
        }
        try original.write(toFile: path, atomically: true, encoding: .utf8)
        #expect(problem(vault).isEmpty)
    }

    @Test("a changed letter case in the last entry's MAC is detected (it changes the leaf)")
    func macCaseOfUncoveredEntry() throws {
        let (dir, vault, _) = try attackVault(30, segments: 2)
        defer { withExtendedLifetime(dir) {} }
        // One more entry after the checkpoint: not yet covered by a signed checkpoint.
        try vault.audit.append(K.event(1000))
        let last = try #require(try K.scan(vault).last)
        let path = K.segmentPath(vault, last.segment)
        var lines = K.lines(try K.read(path))
        var line = lines[last.line - 1]
        let macStart = line.count - 66
        guard let i = (macStart..<line.count - 2).first(where: { line[$0] >= 0x61 && line[$0] <= 0x66 }) else { return } // all digits: nothing to change
        line[i] -= 0x20 // a..f -> A..F
        lines[last.line - 1] = line
        try K.write(K.join(lines), to: path)
        let p = problem(vault)
        #expect(!p.isEmpty, "an entry whose bytes changed still verifies")
        #expect(p.contains(K.place(last.segment, line: last.line, seq: last.entry.seq)), "\(p)")
    }
}

// MARK: - Writers, fail-closed, rollback, archive, policy

@Suite("Audit log: writers, fail-closed, rollback, archive and policy")
struct AuditLogBehaviourTests {
    typealias K = AuditTestKit

    @Test("two vault instances on one folder appending alternately keep one chain")
    func twoWritersAlternating() throws {
        let (dir, first) = try K.newVault(context: AuditContext(principal: "first", purpose: "HSYSADMIN"))
        defer { withExtendedLifetime(dir) {} }
        let second = try Vault.open(at: first.layout.root, context: AuditContext(principal: "second", purpose: "HSYSADMIN"))
        for i in 0..<60 {
            let writer = i % 2 == 0 ? first : second
            let entry = try writer.audit.append(K.event(i))
            #expect(entry.seq == 3 + i)
            if i % 17 == 16 { try writer.audit.checkpoint() }
        }
        try second.audit.checkpoint()
        try first.audit.checkpoint()
        let result = K.verifier(first).verify()
        #expect(result.ok, "\(result.problem ?? "")")
        #expect(result.treeSize == 63 && result.latestCheckpoint == 63)
        #expect(try AuditFiles.segments(in: first.layout.audit).count > 2, "the writers had to roll segments for each other")
        let entries = try K.scan(first)
        #expect(entries.map(\.entry.seq) == Array(0..<63))
        #expect(Set(entries.map(\.leafHash)).count == 63)
        #expect(entries.dropFirst(3).enumerated().allSatisfy { $0.element.entry.principal == ($0.offset % 2 == 0 ? "first" : "second") })
        #expect(entries.dropFirst(3).enumerated().allSatisfy { $0.element.entry.reason == "test event \($0.offset)" })
        #expect(try first.audit.treeHead().root == second.audit.treeHead().root)
    }

    @Test("two vault instances appending concurrently from two threads keep one chain")
    func twoWritersConcurrent() throws {
        let (dir, first) = try K.newVault(context: AuditContext(principal: "first", purpose: "HSYSADMIN"))
        defer { withExtendedLifetime(dir) {} }
        let second = try Vault.open(at: first.layout.root, context: AuditContext(principal: "second", purpose: "HSYSADMIN"))
        let errors = AuditErrorCollector()
        let writers = [first, second]
        DispatchQueue.concurrentPerform(iterations: 2) { w in
            for i in 0..<40 {
                do {
                    try writers[w].audit.append(i % 3 == 0 ? [K.event(i), K.event(i + 1000)] : [K.event(i)])
                    if i % 10 == 9 { try writers[w].audit.checkpoint() }
                } catch { errors.add(error) }
            }
        }
        #expect(errors.all.isEmpty, "\(errors.all)")
        try first.audit.checkpoint()
        let perWriter = 40 + 14
        let result = K.verifier(first).verify()
        #expect(result.ok, "\(result.problem ?? "")")
        let entries = try K.scan(first)
        #expect(entries.count == 3 + 2 * perWriter)
        #expect(entries.map(\.entry.seq) == Array(0..<entries.count))
        #expect(entries.filter { $0.entry.principal == "first" }.count == perWriter + 3, "the three entries of init are by 'first' too")
        #expect(entries.filter { $0.entry.principal == "second" }.count == perWriter)
    }

    @Test("with the current segment deleted, appends and authorisation fail closed with 'audit unavailable' and nothing is re-created")
    func failClosedAppend() throws {
        let (dir, vault) = try K.newVault(segmentBytes: AuditLog.defaultSegmentLimit)
        defer { withExtendedLifetime(dir) {} }
        try K.fill(vault, to: 10)
        let current = try #require(try AuditFiles.segments(in: vault.layout.audit).last)
        let path = K.segmentPath(vault, current.name)
        try FileManager.default.removeItem(atPath: path)

        let error = K.vaultError { try vault.audit.append(K.event(1)) }
        #expect(error?.code == .auditUnavailable, "\(String(describing: error))")
        #expect(error?.code.exitStatus == 74)
        let reopened = try Vault.open(at: vault.layout.root, context: AuditContext(principal: "dave", purpose: "TREAT"))
        #expect(K.vaultError { try reopened.audit.append(K.event(2)) }?.code == .auditUnavailable)
        #expect(K.vaultError { try reopened.authorize(AuditAction.datasetsRead) }?.code == .auditUnavailable)
        var ran = false
        let performed = K.vaultError { try reopened.perform(AuditAction.datasetsRead) { ran = true } }
        #expect(performed?.code == .auditUnavailable && !ran, "the body must not run when its access cannot be recorded")
        #expect(K.vaultError { try reopened.audit.checkpoint() }?.code == .auditUnavailable)
        #expect(!K.exists(path), "a deleted segment must never be re-created")
    }

    @Test("deep verify with the current segment deleted decrypts nothing and reports the audit failure")
    func failClosedVerify() throws {
        let (dir, vault) = try K.newVault(segmentBytes: AuditLog.defaultSegmentLimit)
        defer { withExtendedLifetime(dir) {} }
        let input = TemporaryDirectory("input")
        try TinySynthea.write(to: input.path, patients: 8)
        _ = try Ingestor(vault: vault).ingest(dataset: "tiny", format: .syntheaCSV, paths: [input.path], shards: 2, replace: false)
        let ok = Verifier(vault: vault).verify(dataset: "tiny", deep: true)
        try #require(ok.ok && ok.bytesChecked > 0, "\(ok.problems)")

        let current = try #require(try AuditFiles.segments(in: vault.layout.audit).last)
        try FileManager.default.removeItem(atPath: K.segmentPath(vault, current.name))
        let result = Verifier(vault: vault).verify(dataset: "tiny", deep: true)
        #expect(!result.ok)
        #expect(result.auditFailure?.code == .auditUnavailable, "auditFailure: \(String(describing: result.auditFailure)); problems: \(result.problems)")
        #expect(result.bytesChecked == 0)
        #expect(result.shards.isEmpty, "no shard may be checked: \(result.shards)")
        #expect(!K.exists(K.segmentPath(vault, current.name)))
    }

    @Test("a manifest rolled back to the previous generation is reported by verify")
    func rollback() throws {
        let (dir, vault) = try K.newVault(segmentBytes: AuditLog.defaultSegmentLimit)
        defer { withExtendedLifetime(dir) {} }
        let input = TemporaryDirectory("input")
        try TinySynthea.write(to: input.path, patients: 6)
        let saved = TemporaryDirectory("saved")
        let datasetDir = vault.layout.data + "/tiny"
        let first = try Ingestor(vault: vault).ingest(dataset: "tiny", format: .syntheaCSV, paths: [input.path], shards: 2, replace: true)
        #expect(first.generation == 1)
        try FileManager.default.copyItem(atPath: datasetDir + "/manifest.jsonl", toPath: saved.path + "/manifest.jsonl")
        try FileManager.default.copyItem(atPath: datasetDir + "/g000001", toPath: saved.path + "/g000001")
        let second = try Ingestor(vault: vault).ingest(dataset: "tiny", format: .syntheaCSV, paths: [input.path], shards: 2, replace: true)
        #expect(second.generation == 2 && second.replacedGeneration == 1)
        #expect(!K.exists(datasetDir + "/g000001"))
        let before = Verifier(vault: vault).verify(dataset: "tiny", deep: false)
        #expect(before.ok, "\(before.problems)")
        #expect(try vault.audit.recordedManifests()["tiny"]?.generation == 2)

        try FileManager.default.copyItem(atPath: saved.path + "/g000001", toPath: datasetDir + "/g000001")
        try FileManager.default.removeItem(atPath: datasetDir + "/manifest.jsonl")
        try FileManager.default.copyItem(atPath: saved.path + "/manifest.jsonl", toPath: datasetDir + "/manifest.jsonl")
        // The old manifest is authentic on its own...
        #expect(try DatasetCatalog(vault: vault).manifest("tiny").generation == 1)
        // ...but the log knows a later one was committed. A fresh process sees it too.
        for v in [vault, try Vault.open(at: vault.layout.root)] {
            let result = Verifier(vault: v).verify(dataset: "tiny", deep: false)
            #expect(!result.ok)
            #expect(result.generation == 1)
            #expect(result.problems.contains { $0.contains("rolled back") && $0.contains("records generation 2") }, "\(result.problems)")
        }
    }

    @Test("archiving moves old segments; the retained log, the log with its archive and saved checkpoints still verify; tampering is still found")
    func archive() throws {
        let (dir, vault) = try K.newVault()
        defer { withExtendedLifetime(dir) {} }
        let elsewhere = TemporaryDirectory("archive")
        let destination = elsewhere.path + "/audit-archive"
        let early = elsewhere.path + "/early.note"
        try FileManager.default.copyItem(atPath: vault.layout.audit + "/checkpoint", toPath: early) // size 3
        try K.fill(vault, to: 120)
        let saved = elsewhere.path + "/saved.note"
        try FileManager.default.copyItem(atPath: vault.layout.audit + "/checkpoint", toPath: saved) // size 120
        let before = try AuditFiles.segments(in: vault.layout.audit)
        let allLines = try before.map { try K.read(K.segmentPath(vault, $0.name)) }

        let report = try vault.audit.archive(to: destination)
        #expect(report.segments == before.dropLast().map(\.name))
        #expect(report.firstRetainedSeq == before.last?.firstSeq)
        #expect(report.firstRetainedSeq > 3 && report.firstRetainedSeq <= 119)
        #expect(report.checkpoints.contains(AuditFiles.checkpointName(size: 3)))
        for (segment, bytes) in zip(before.dropLast(), allLines) {
            #expect(!K.exists(K.segmentPath(vault, segment.name)))
            #expect(try K.read(destination + "/" + segment.name) == bytes, "archived copy of \(segment.name) differs")
        }
        #expect(try AuditFiles.segments(in: vault.layout.audit).map(\.name) == [before.last!.name])

        // The retained log on its own.
        var result = K.verifier(vault).verify()
        #expect(result.ok, "\(result.problem ?? "")")
        #expect(result.firstSeq == report.firstRetainedSeq && result.treeSize == 120)
        // With the archive, from entry 0.
        result = K.verifier(vault, archives: [destination]).verify()
        #expect(result.ok && result.firstSeq == 0 && result.treeSize == 120, "\(result.problem ?? "")")
        #expect(try AuditLogReader(directory: vault.layout.audit, archives: [destination]).leafHashes().count == 120)
        #expect(throws: VaultError.self) { _ = try AuditLogReader(directory: vault.layout.audit).leafHashes() }

        // The log goes on after archiving.
        try K.fill(vault, to: 130)
        result = K.verifier(vault).verify()
        #expect(result.ok && result.treeSize == 130, "\(result.problem ?? "")")
        result = K.verifier(vault, archives: [destination]).verify()
        #expect(result.ok && result.treeSize == 130, "\(result.problem ?? "")")

        // A checkpoint saved before archiving, at or after the first retained entry, is checked.
        result = K.verifier(vault).verify(fromCheckpoint: saved)
        #expect(result.ok, "\(result.problem ?? "")")
        #expect(result.warnings.allSatisfy { !$0.contains(saved) }, "\(result.warnings)")
        // One from before the retained log is skipped with a warning, or checked with the archive.
        result = K.verifier(vault).verify(fromCheckpoint: early)
        #expect(result.ok && result.warnings.contains { $0.contains(early) && $0.contains("predates") }, "\(result)")
        result = K.verifier(vault, archives: [destination]).verify(fromCheckpoint: early)
        #expect(result.ok && !result.warnings.contains { $0.contains(early) }, "\(result)")
        // A saved checkpoint with a wrong root (validly signed) is caught against the retained log.
        var wrong = try Checkpoint.parse(text: try SignedNote.open(try String(contentsOfFile: saved, encoding: .utf8), verifier: vault.audit.key.verifier))
        wrong.rootHash[5] ^= 0x40
        let forgedNote = elsewhere.path + "/forged.note"
        try SignedNote.sign(text: wrong.text, name: vault.audit.key.verifier.name, seed: vault.audit.key.seed).write(toFile: forgedNote, atomically: true, encoding: .utf8)
        result = K.verifier(vault).verify(fromCheckpoint: forgedNote)
        #expect(!result.ok && result.problem?.contains(forgedNote) == true, "\(result.problem ?? "")")

        // An edited byte in a retained entry is still found, at that entry.
        let scanned = try K.scan(vault)
        #expect(scanned.first?.entry.seq == report.firstRetainedSeq)
        let target = scanned[2]
        let path = K.segmentPath(vault, target.segment)
        let original = try K.read(path)
        var bytes = original
        bytes[K.offset(ofLine: target.line, in: original) + 20] ^= 0x01
        try K.write(bytes, to: path)
        result = K.verifier(vault).verify()
        #expect(!result.ok && result.problem?.contains(K.place(target.segment, line: target.line, seq: target.entry.seq)) == true, "\(result.problem ?? "")")
        try K.write(original, to: path)
        #expect(K.verifier(vault).verify().ok)

        // A doctored archive base gives a chain or root no checkpoint signed.
        let basePath = vault.layout.audit + "/" + AuditBase.fileName
        let baseText = try String(contentsOfFile: basePath, encoding: .utf8)
        // Line 1 is the base, line 2 its MAC under the audit key.
        let base = try JSONDecoder().decode(AuditBase.self, from: Data((baseText.split(separator: "\n").first ?? "").utf8))
        var badLeaf = base
        badLeaf.prevLeaf = String(repeating: "1", count: 64)
        var badPeaks = base
        badPeaks.peaks[0] = String(repeating: "2", count: 64)
        for doctored in [badLeaf, badPeaks] {
            try JSONEncoder().encode(doctored).write(to: URL(fileURLWithPath: basePath))
            result = K.verifier(vault).verify()
            #expect(!result.ok, "a doctored base verified")
        }
        try baseText.write(toFile: basePath, atomically: true, encoding: .utf8)
        #expect(K.verifier(vault).verify().ok)

        // Archiving again moves the newly closed segments into the same folder.
        try K.fill(vault, to: 160)
        let again = try vault.audit.archive(to: destination)
        #expect(!again.segments.isEmpty && again.firstRetainedSeq > report.firstRetainedSeq)
        result = K.verifier(vault, archives: [destination]).verify(fromCheckpoint: early)
        #expect(result.ok && result.firstSeq == 0 && result.treeSize == 160, "\(result.problem ?? "")")
        result = K.verifier(vault).verify()
        #expect(result.ok && result.firstSeq == again.firstRetainedSeq, "\(result.problem ?? "")")
    }

    @Test("an unknown purpose of use is denied, and the denial is on the log first")
    func unknownPurpose() throws {
        let (dir, vault) = try K.newVault()
        defer { withExtendedLifetime(dir) {} }
        let nope = try Vault.open(at: vault.layout.root, context: AuditContext(principal: "erin", purpose: "NOPE"))
        let resource = AuditResource(dataset: "tiny")
        try FileManager.default.createDirectory(atPath: vault.layout.data + "/tiny", withIntermediateDirectories: true)
        let error = K.vaultError { try nope.authorize(AuditAction.datasetsRead, resource: resource) }
        #expect(error?.code == .permissionDenied, "\(String(describing: error))")
        #expect(error?.code.exitStatus == 77)
        let last = try #require(try K.scan(vault).last)
        #expect(last.entry.outcome == .denied)
        #expect(last.entry.purpose == "NOPE")
        #expect(last.entry.principal == "erin")
        #expect(last.entry.action == AuditAction.datasetsRead && last.entry.resource == resource)
        #expect(last.entry.reason?.hasPrefix("denied:") == true)

        // A bad principal is denied the same way; a known purpose is allowed.
        let badName = try Vault.open(at: vault.layout.root, context: AuditContext(principal: "eve smith", purpose: "TREAT"))
        #expect(K.vaultError { try badName.authorize(AuditAction.datasetsRead) }?.code == .permissionDenied)
        #expect(try K.scan(vault).last?.entry.outcome == .denied)
        try "principals:\n  erin: {roles: [reader]}\nroles:\n  reader:\n    allow:\n      - actions: [datasets.read]\n        datasets: [\"*\"]\n        purposes: [TREAT]\n"
            .write(toFile: vault.layout.policies + "/erin.yaml", atomically: true, encoding: .utf8)
        let treat = try Vault.open(at: vault.layout.root, context: AuditContext(principal: "erin", purpose: "TREAT"))
        try treat.authorize(AuditAction.datasetsRead, resource: resource)
        let allowed = try #require(try K.scan(vault).last)
        #expect(allowed.entry.outcome == .success && allowed.entry.purpose == "TREAT")

        // perform records the denial and checkpoints it.
        var ran = false
        #expect(K.vaultError { try nope.perform(AuditAction.datasetsRead) { ran = true } }?.code == .permissionDenied)
        #expect(!ran)
        let result = K.verifier(vault).verify()
        #expect(result.ok && result.latestCheckpoint == result.treeSize, "\(result)")
    }

    @Test("an interrupted write (unterminated last line) is reported as a warning and removed by the next append")
    func incompleteTail() throws {
        let (dir, vault) = try K.newVault()
        defer { withExtendedLifetime(dir) {} }
        try K.fill(vault, to: 20)
        let current = try #require(try AuditFiles.segments(in: vault.layout.audit).last)
        let path = K.segmentPath(vault, current.name)
        let original = try K.read(path)
        try K.write(original + Array("{\"seq\":20,\"time\":".utf8), to: path)
        var result = K.verifier(vault).verify()
        #expect(result.ok && result.warnings.contains { $0.contains("incomplete") }, "\(result)")
        let reopened = try Vault.open(at: vault.layout.root)
        let entry = try reopened.audit.append(K.event(20))
        #expect(entry.seq == 20)
        try reopened.audit.checkpoint()
        result = K.verifier(vault).verify()
        #expect(result.ok && result.warnings.isEmpty && result.treeSize == 21, "\(result)")
    }
}

// MARK: - HMAC reset

@Suite("HMAC-SHA256 reuse (audit reader)")
struct AuditLogHMACResetTests {
    @Test("finalize, reset and update give the same tag as a fresh instance; reset discards pending input")
    func reset() throws {
        let key = SecureBytes(copying: Array("Jefe".utf8))
        let message = Array("what do ya want for nothing?".utf8)
        let rfc4231 = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        let mac = try HMACSHA256(key: key)
        mac.update(message)
        #expect(Hex.encode(mac.finalize()) == rfc4231)
        mac.reset()
        mac.update(message)
        #expect(Hex.encode(mac.finalize()) == rfc4231)
        mac.reset()
        mac.update(Array("discarded".utf8))
        mac.reset()
        mac.update(message.prefix(10))
        mac.update(message.dropFirst(10))
        #expect(Hex.encode(mac.finalize()) == rfc4231)

        let randomKey = try SecureBytes.random(count: 32)
        let reused = try HMACSHA256(key: randomKey)
        for n in [0, 1, 63, 64, 65, 1000] {
            let m = (0..<n).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
            reused.reset()
            reused.update(m)
            #expect(reused.finalize() == (try HMACSHA256.authenticate(key: randomKey, m)), "length \(n)")
        }
    }
}
