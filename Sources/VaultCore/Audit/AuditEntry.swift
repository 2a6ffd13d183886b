import Foundation
import VaultCrypto

/// The outcome of an audited event.
public enum AuditOutcome: String, Codable, Sendable, CaseIterable {
    case success, denied, error
}

/// What an audit entry is about. Every field is optional; a patient appears only as a
/// keyed pseudonym, never by an identifier from the input.
public struct AuditResource: Codable, Sendable, Equatable {
    public var vault: String?
    public var dataset: String?
    public var generation: Int?
    public var shard: String?
    public var job: String?
    public var result: String?
    public var key: String?
    public var keyVersion: Int?
    public var patient: String?
    public var sha256: String?
    public var size: Int?

    public init(vault: String? = nil, dataset: String? = nil, generation: Int? = nil, shard: String? = nil, job: String? = nil,
                result: String? = nil, key: String? = nil, keyVersion: Int? = nil, patient: String? = nil, sha256: String? = nil,
                size: Int? = nil) {
        self.vault = vault
        self.dataset = dataset
        self.generation = generation
        self.shard = shard
        self.job = job
        self.result = result
        self.key = key
        self.keyVersion = keyVersion
        self.patient = patient
        self.sha256 = sha256
        self.size = size
    }

    var isEmpty: Bool { self == AuditResource() }
}

/// What a command asks to record; the log adds sequence number, time, request id, chain
/// hash and MAC.
public struct AuditEvent: Sendable, Equatable {
    public var action: String
    public var resource: AuditResource
    public var outcome: AuditOutcome
    public var reason: String?

    public init(action: String, resource: AuditResource = AuditResource(), outcome: AuditOutcome = .success, reason: String? = nil) {
        self.action = action
        self.resource = resource
        self.outcome = outcome
        self.reason = reason
    }
}

/// One line of the audit log (docs/audit-format.md). The bytes of the line, without its
/// newline, are the Merkle leaf; `prev` is the leaf hash of the entry before; `mac` is
/// HMAC-SHA256 under the vault's audit MAC key of every byte of the line before `,"mac":`.
public struct AuditEntry: Codable, Sendable, Equatable {
    public var seq: Int
    public var time: String
    public var principal: String
    public var action: String
    public var resource: AuditResource
    public var purpose: String
    public var outcome: AuditOutcome
    public var reason: String?
    public var request: String
    public var prev: String
    public var mac: String

    /// Length of the fixed suffix `,"mac":"<64 hex>"}`.
    static let macSuffixLength = 8 + 64 + 2

    /// The entry's canonical bytes: keys in the order above, absent optionals omitted,
    /// no whitespace, strings escaped minimally (`"`, `\` and control characters only).
    public var canonicalBytes: [UInt8] {
        var w = CanonicalJSON()
        w.open()
        w.key("seq"); w.int(seq)
        w.key("time"); w.string(time)
        w.key("principal"); w.string(principal)
        w.key("action"); w.string(action)
        w.key("resource"); Self.encode(resource, &w)
        w.key("purpose"); w.string(purpose)
        w.key("outcome"); w.string(outcome.rawValue)
        if let reason { w.key("reason"); w.string(reason) }
        w.key("request"); w.string(request)
        w.key("prev"); w.string(prev)
        w.key("mac"); w.string(mac)
        w.close()
        return w.bytes
    }

    private static func encode(_ r: AuditResource, _ w: inout CanonicalJSON) {
        w.open()
        if let v = r.vault { w.key("vault"); w.string(v) }
        if let v = r.dataset { w.key("dataset"); w.string(v) }
        if let v = r.generation { w.key("generation"); w.int(v) }
        if let v = r.shard { w.key("shard"); w.string(v) }
        if let v = r.job { w.key("job"); w.string(v) }
        if let v = r.result { w.key("result"); w.string(v) }
        if let v = r.key { w.key("key"); w.string(v) }
        if let v = r.keyVersion { w.key("keyVersion"); w.int(v) }
        if let v = r.patient { w.key("patient"); w.string(v) }
        if let v = r.sha256 { w.key("sha256"); w.string(v) }
        if let v = r.size { w.key("size"); w.int(v) }
        w.close()
    }

    /// The bytes the MAC covers: the canonical line up to, not including, `,"mac":`.
    static func macInput(_ line: UnsafeBufferPointer<UInt8>) -> UnsafeBufferPointer<UInt8> {
        UnsafeBufferPointer(rebasing: line[0..<max(0, line.count - macSuffixLength)])
    }

    public struct FormatError: Error, CustomStringConvertible, Sendable {
        public let description: String
        init(_ text: String) { description = text }
    }

    /// Parses one line strictly: valid JSON, the fields above with valid values, and bytes
    /// identical to the canonical encoding, so no byte of an entry can change unnoticed.
    static func parse(_ line: UnsafeBufferPointer<UInt8>, tape: JSONTape) throws -> AuditEntry {
        do { try tape.parse(UnsafeRawBufferPointer(line)) } catch let error as JSONTape.SyntaxError {
            throw FormatError("not valid JSON at byte \(error.offset): \(error.message)")
        }
        let root = tape.root
        guard root.isObject else { throw FormatError("entry is not a JSON object") }
        func string(_ v: JSONTape.Value?, _ name: String) throws -> String {
            guard let v, v.kind == .string else { throw FormatError("field '\(name)' is missing or not a string") }
            return tape.string(at: v.index)
        }
        func optionalString(_ v: JSONTape.Value?, _ name: String) throws -> String? {
            guard let v else { return nil }
            return try string(v, name)
        }
        func int(_ v: JSONTape.Value?, _ name: String) throws -> Int {
            guard let v, v.kind == .number, let n = tape.withRawBytes(v.index, { Int(String(decoding: $0, as: UTF8.self)) }), n >= 0 else {
                throw FormatError("field '\(name)' is missing or not a non-negative integer")
            }
            return n
        }
        func optionalInt(_ v: JSONTape.Value?, _ name: String) throws -> Int? {
            guard let v else { return nil }
            return try int(v, name)
        }
        guard let r = root["resource"], r.isObject else { throw FormatError("field 'resource' is missing or not an object") }
        let resource = AuditResource(
            vault: try optionalString(r["vault"], "resource.vault"), dataset: try optionalString(r["dataset"], "resource.dataset"),
            generation: try optionalInt(r["generation"], "resource.generation"), shard: try optionalString(r["shard"], "resource.shard"),
            job: try optionalString(r["job"], "resource.job"), result: try optionalString(r["result"], "resource.result"),
            key: try optionalString(r["key"], "resource.key"), keyVersion: try optionalInt(r["keyVersion"], "resource.keyVersion"),
            patient: try optionalString(r["patient"], "resource.patient"), sha256: try optionalString(r["sha256"], "resource.sha256"),
            size: try optionalInt(r["size"], "resource.size"))
        let outcomeText = try string(root["outcome"], "outcome")
        guard let outcome = AuditOutcome(rawValue: outcomeText) else { throw FormatError("unknown outcome '\(outcomeText)'") }
        let entry = AuditEntry(seq: try int(root["seq"], "seq"), time: try string(root["time"], "time"),
                               principal: try string(root["principal"], "principal"), action: try string(root["action"], "action"),
                               resource: resource, purpose: try string(root["purpose"], "purpose"), outcome: outcome,
                               reason: try optionalString(root["reason"], "reason"), request: try string(root["request"], "request"),
                               prev: try string(root["prev"], "prev"), mac: try string(root["mac"], "mac"))
        func isLowerHex(_ text: String, _ count: Int) -> Bool {
            text.utf8.count == count && text.utf8.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) }
        }
        guard isLowerHex(entry.prev, 64) else { throw FormatError("field 'prev' is not 64 lower-case hex digits") }
        guard isLowerHex(entry.mac, 64) else { throw FormatError("field 'mac' is not 64 lower-case hex digits") }
        guard isLowerHex(entry.request, 32) else { throw FormatError("field 'request' is not 32 lower-case hex digits") }
        guard AuditTime.isValid(entry.time) else { throw FormatError("field 'time' is not RFC 3339 UTC with microseconds") }
        let canonical = entry.canonicalBytes
        guard canonical.count == line.count, canonical.withUnsafeBufferPointer({ memcmp($0.baseAddress!, line.baseAddress!, line.count) == 0 }) else {
            throw FormatError("entry is not in canonical form (a byte was changed, added or removed)")
        }
        return entry
    }
}

/// Builds canonical JSON: no whitespace, minimal escapes.
struct CanonicalJSON {
    var bytes: [UInt8] = []
    private var first = true

    init() { bytes.reserveCapacity(384) }

    mutating func open() { bytes.append(0x7B); first = true }
    mutating func close() { bytes.append(0x7D); first = false }

    mutating func key(_ k: String) {
        if !first { bytes.append(0x2C) }
        first = false
        string(k)
        bytes.append(0x3A)
    }

    mutating func int(_ v: Int) { bytes.append(contentsOf: String(v).utf8) }

    mutating func string(_ s: String) {
        bytes.append(0x22)
        var s = s
        let plain = s.withUTF8 { utf8 in
            // The common case: nothing to escape, copy the bytes at once.
            guard !utf8.contains(where: { $0 < 0x20 || $0 == 0x22 || $0 == 0x5C }) else { return false }
            bytes.append(contentsOf: utf8)
            return true
        }
        if plain {
            bytes.append(0x22)
            return
        }
        for c in s.utf8 {
            switch c {
            case 0x22: bytes.append(0x5C); bytes.append(0x22)
            case 0x5C: bytes.append(0x5C); bytes.append(0x5C)
            case 0..<0x20:
                let hex = Array("0123456789abcdef".utf8)
                bytes.append(contentsOf: [0x5C, 0x75, 0x30, 0x30, hex[Int(c >> 4)], hex[Int(c & 15)]])
            default: bytes.append(c)
            }
        }
        bytes.append(0x22)
    }
}

/// Audit timestamps: RFC 3339, UTC, six fractional digits, e.g. `2026-11-21T09:30:00.123456Z`.
public enum AuditTime {
    public static func now() -> String {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return format(seconds: Int(ts.tv_sec), microseconds: Int(ts.tv_nsec) / 1000)
    }

    static func format(seconds: Int, microseconds: Int) -> String {
        var t = time_t(seconds)
        var parts = tm()
        gmtime_r(&t, &parts)
        func pad(_ v: Int32, _ width: Int) -> String {
            let s = String(v)
            return String(repeating: "0", count: max(0, width - s.count)) + s
        }
        let micros = String(microseconds)
        return "\(pad(parts.tm_year + 1900, 4))-\(pad(parts.tm_mon + 1, 2))-\(pad(parts.tm_mday, 2))T\(pad(parts.tm_hour, 2)):\(pad(parts.tm_min, 2)):\(pad(parts.tm_sec, 2))."
            + String(repeating: "0", count: 6 - micros.count) + micros + "Z"
    }

    /// Whether `text` has the exact shape `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
    static func isValid(_ text: String) -> Bool {
        let b = Array(text.utf8)
        guard b.count == 27 else { return false }
        for (i, c) in b.enumerated() {
            switch i {
            case 4, 7: if c != 0x2D { return false }
            case 10: if c != 0x54 { return false }
            case 13, 16: if c != 0x3A { return false }
            case 19: if c != 0x2E { return false }
            case 26: if c != 0x5A { return false }
            default: if c < 0x30 || c > 0x39 { return false }
            }
        }
        return true
    }

    /// Parses a user-given bound for `--since`/`--until`: a full audit time, an RFC 3339
    /// time with or without fraction, or a date (`YYYY-MM-DD`, midnight UTC). Returns the
    /// canonical 27-character form, which sorts like the time it names.
    public static func bound(_ text: String) -> String? {
        if isValid(text) { return text }
        let formatter = ISO8601DateFormatter()
        formatter.timeZone = TimeZone(identifier: "UTC")
        var date: Date?
        for options: ISO8601DateFormatter.Options in [[.withInternetDateTime, .withFractionalSeconds], [.withInternetDateTime], [.withFullDate]] {
            formatter.formatOptions = options
            if let d = formatter.date(from: text) { date = d; break }
        }
        guard let date else { return nil }
        let micros = (date.timeIntervalSince1970 * 1_000_000).rounded()
        let seconds = Int((micros / 1_000_000).rounded(.down))
        return format(seconds: seconds, microseconds: Int(micros) - seconds * 1_000_000)
    }
}
