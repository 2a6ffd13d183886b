/// Appends big-endian integers and length-prefixed fields to a byte array, for the
/// canonical encodings that are hashed, signed or used as context.
struct CanonicalWriter {
    private(set) var bytes: [UInt8] = []

    init(label: String? = nil) {
        if let label {
            bytes.append(contentsOf: Array(label.utf8))
            bytes.append(0)
        }
    }

    mutating func u8(_ v: UInt8) { bytes.append(v) }
    mutating func u16(_ v: UInt16) { bytes.append(UInt8(v >> 8)); bytes.append(UInt8(v & 0xff)) }
    mutating func u32(_ v: UInt32) { for s in stride(from: 24, through: 0, by: -8) { bytes.append(UInt8((v >> UInt32(s)) & 0xff)) } }
    mutating func u64(_ v: UInt64) { for s in stride(from: 56, through: 0, by: -8) { bytes.append(UInt8((v >> UInt64(s)) & 0xff)) } }
    mutating func raw<B: Sequence>(_ b: B) where B.Element == UInt8 { bytes.append(contentsOf: b) }

    /// u16 length + UTF-8. Strings are limited to 65535 bytes.
    mutating func string(_ s: String) {
        let utf8 = Array(s.utf8)
        precondition(utf8.count <= Int(UInt16.max), "string field too long")
        u16(UInt16(utf8.count))
        bytes.append(contentsOf: utf8)
    }

    mutating func lengthPrefixed(_ b: [UInt8]) {
        precondition(b.count <= Int(UInt16.max), "field too long")
        u16(UInt16(b.count))
        bytes.append(contentsOf: b)
    }
}

/// Reads the canonical encoding back, failing with a message that names the field.
struct CanonicalReader {
    let bytes: [UInt8]
    private(set) var offset: Int

    init(_ bytes: [UInt8], offset: Int = 0) {
        self.bytes = bytes
        self.offset = offset
    }

    var remaining: Int { bytes.count - offset }

    private mutating func take(_ n: Int, _ field: String) throws -> ArraySlice<UInt8> {
        guard n >= 0, remaining >= n else {
            throw VaultError(.dataError, "truncated at field '\(field)' (need \(n) bytes, have \(remaining))")
        }
        defer { offset += n }
        return bytes[offset..<offset + n]
    }

    mutating func u8(_ field: String) throws -> UInt8 { try take(1, field).first! }
    mutating func u16(_ field: String) throws -> UInt16 { try take(2, field).reduce(0) { $0 << 8 | UInt16($1) } }
    mutating func u32(_ field: String) throws -> UInt32 { try take(4, field).reduce(0) { $0 << 8 | UInt32($1) } }
    mutating func u64(_ field: String) throws -> UInt64 { try take(8, field).reduce(0) { $0 << 8 | UInt64($1) } }
    mutating func raw(_ n: Int, _ field: String) throws -> [UInt8] { Array(try take(n, field)) }

    mutating func string(_ field: String) throws -> String {
        let n = Int(try u16(field))
        let b = try take(n, field)
        guard let s = String(validating: b, as: UTF8.self) else {
            throw VaultError(.dataError, "field '\(field)' is not valid UTF-8")
        }
        return s
    }

    mutating func lengthPrefixed(_ field: String) throws -> [UInt8] {
        let n = Int(try u16(field))
        return Array(try take(n, field))
    }
}

public enum Hex {
    private static let digits: [UInt8] = Array("0123456789abcdef".utf8)

    public static func encode<B: Sequence>(_ bytes: B) -> String where B.Element == UInt8 {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.underestimatedCount * 2)
        digits.withUnsafeBufferPointer { d in
            for b in bytes {
                out.append(d[Int(b >> 4)])
                out.append(d[Int(b & 0xf)])
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Lower-case hex only, as `encode` writes it: every value the vault stores has exactly
    /// one spelling, so a MAC or id altered in case (same bytes, other text) is rejected
    /// rather than accepted as the same value.
    public static func decode(_ text: String) -> [UInt8]? {
        let chars = Array(text.utf8)
        guard chars.count % 2 == 0 else { return nil }
        var out = [UInt8]()
        out.reserveCapacity(chars.count / 2)
        func value(_ c: UInt8) -> UInt8? {
            switch c {
            case 48...57: return c - 48
            case 97...102: return c - 87
            default: return nil
            }
        }
        var i = 0
        while i < chars.count {
            guard let hi = value(chars[i]), let lo = value(chars[i + 1]) else { return nil }
            out.append(hi << 4 | lo)
            i += 2
        }
        return out
    }
}
