#if canImport(Glibc)
import Glibc
#endif
import VaultCrypto

/// The `shardvault.clinical.v1` plaintext: typed columns per table, little-endian
/// arrays (see docs/shard-format.md).
public enum ColumnarCodec {
    public static let schemaId = "shardvault.clinical.v1"
    static let magic: [UInt8] = Array("SVCOL1".utf8) + [0, 0]

    enum ColumnKind: UInt8 { case int32 = 1, int64 = 2, float64 = 3, dictionary = 4, fixed = 5 }
}

/// A column being built.
enum ColumnBuilder {
    case int32([Int32])
    case int64([Int64])
    case float64([Double])
    case dictionary(DictionaryColumn)
    case fixed(width: Int, [UInt8])
}

/// Dictionary-encoded strings: each distinct value stored once. Values are interned from
/// their UTF-8 bytes in an open-addressing table, so ingest makes no `String` per row; a
/// value equal to the previous row's skips the table.
struct DictionaryColumn {
    /// The entries' bytes one after another: entry `i` is `bytes[starts[i]..<starts[i + 1]]`.
    private(set) var bytes: [UInt8] = []
    private(set) var starts: [Int] = [0]
    var indices: [UInt32] = []
    /// Entry number + 1 per slot (0: empty); the count is a power of two, at most half full.
    private var slots: [UInt32] = []

    var count: Int { starts.count - 1 }
    var entries: [String] { (0..<count).map(entry) }
    func entry(_ i: Int) -> String { String(decoding: bytes[starts[i]..<starts[i + 1]], as: UTF8.self) }

    mutating func append(_ value: String) {
        var value = value
        value.withUTF8 { append(UnsafeRawBufferPointer($0)) }
    }

    /// Appends a value given as UTF-8 bytes (the caller has checked they are UTF-8).
    mutating func append(_ value: UnsafeRawBufferPointer) {
        if let last = indices.last, equals(Int(last), value) {
            indices.append(last)
        } else {
            indices.append(intern(value))
        }
    }

    private func equals(_ entry: Int, _ value: UnsafeRawBufferPointer) -> Bool {
        let start = starts[entry], length = starts[entry + 1] - start
        guard length == value.count else { return false }
        guard length > 0 else { return true }
        return bytes.withUnsafeBytes { memcmp($0.baseAddress! + start, value.baseAddress!, length) == 0 }
    }

    private static func hash(_ value: UnsafeRawBufferPointer) -> Int {
        var hasher = Hasher()
        hasher.combine(bytes: value)
        return hasher.finalize()
    }

    private mutating func intern(_ value: UnsafeRawBufferPointer) -> UInt32 {
        if slots.isEmpty { slots = [UInt32](repeating: 0, count: 16) }
        let mask = slots.count - 1
        var slot = Self.hash(value) & mask
        while slots[slot] != 0 {
            let entry = Int(slots[slot] - 1)
            if equals(entry, value) { return UInt32(entry) }
            slot = (slot + 1) & mask
        }
        let entry = UInt32(count)
        bytes.append(contentsOf: value)
        starts.append(bytes.count)
        slots[slot] = entry + 1
        if count * 2 > slots.count { rehash(capacity: slots.count * 2) }
        return entry
    }

    private mutating func rehash(capacity: Int) {
        var fresh = [UInt32](repeating: 0, count: capacity)
        let mask = capacity - 1
        bytes.withUnsafeBytes { all in
            for entry in 0..<count {
                var slot = Self.hash(UnsafeRawBufferPointer(rebasing: all[starts[entry]..<starts[entry + 1]])) & mask
                while fresh[slot] != 0 { slot = (slot + 1) & mask }
                fresh[slot] = UInt32(entry + 1)
            }
        }
        slots = fresh
    }

    /// Encoded size: entry count, each entry's length and bytes, then the row indices.
    var encodedSize: Int { 4 + count * 4 + bytes.count + indices.count * 4 }

    /// Overwrites the entries' bytes (plaintext values) before the column is dropped.
    mutating func wipe() { secureWipe(&bytes) }
}

/// A patient pseudonym (16 bytes) as a dictionary key that needs no allocation.
struct PseudonymKey: Hashable {
    let high: UInt64, low: UInt64
    init?(_ bytes: UnsafeRawBufferPointer) {
        guard bytes.count == 16 else { return nil }
        high = bytes.loadUnaligned(as: UInt64.self)
        low = bytes.loadUnaligned(fromByteOffset: 8, as: UInt64.self)
    }
    init?(_ bytes: [UInt8]) {
        guard let key = bytes.withUnsafeBytes({ PseudonymKey($0) }) else { return nil }
        self = key
    }
}

/// Accumulates the records of one shard and encodes them as columns.
public struct ShardTables: Sendable {
    // patients
    var pseudonyms: [UInt8] = []
    var birth: [Int32] = []
    var death: [Int32] = []
    var sex = DictionaryColumn()
    var race = DictionaryColumn()
    var ethnicity = DictionaryColumn()
    var state = DictionaryColumn()
    var patientRow: [PseudonymKey: Int32] = [:]
    // conditions
    var conditionPatient: [Int32] = [], conditionStart: [Int64] = [], conditionStop: [Int64] = [], conditionCode = DictionaryColumn()
    // observations
    var observationPatient: [Int32] = [], observationTime: [Int64] = [], observationCategory = DictionaryColumn(),
        observationCode = DictionaryColumn(), observationValue: [Double] = [], observationUnit = DictionaryColumn(),
        observationText = DictionaryColumn()
    // medications
    var medicationPatient: [Int32] = [], medicationStart: [Int64] = [], medicationStop: [Int64] = [], medicationCode = DictionaryColumn()
    // encounters
    var encounterPatient: [Int32] = [], encounterStart: [Int64] = [], encounterStop: [Int64] = [],
        encounterClass = DictionaryColumn(), encounterCode = DictionaryColumn()
    // procedures
    var procedurePatient: [Int32] = [], procedureStart: [Int64] = [], procedureCode = DictionaryColumn()
    // immunizations
    var immunizationPatient: [Int32] = [], immunizationTime: [Int64] = [], immunizationCode = DictionaryColumn()

    public init() {}

    public var counts: RecordCounts {
        var c = RecordCounts()
        c.patients = birth.count
        c.conditions = conditionPatient.count
        c.observations = observationPatient.count
        c.medications = medicationPatient.count
        c.encounters = encounterPatient.count
        c.procedures = procedurePatient.count
        c.immunizations = immunizationPatient.count
        return c
    }

    public func hasPatient(_ pseudonym: [UInt8]) -> Bool { PseudonymKey(pseudonym).map { patientRow[$0] != nil } ?? false }

    /// Adds a patient. Returns false if the patient is already present (or the pseudonym
    /// is not 16 bytes).
    @discardableResult
    public mutating func addPatient(_ p: ClinicalRecord.Patient) -> Bool {
        guard let key = PseudonymKey(p.pseudonym), patientRow[key] == nil else { return false }
        patientRow[key] = Int32(birth.count)
        pseudonyms.append(contentsOf: p.pseudonym)
        birth.append(p.birthDate)
        death.append(p.deathDate)
        sex.append(p.sex)
        race.append(p.race)
        ethnicity.append(p.ethnicity)
        state.append(p.state)
        return true
    }

    /// Adds a non-patient record whose patient was added before. Returns false when the
    /// patient is unknown.
    public mutating func add(_ record: ClinicalRecord) -> Bool {
        if case .patient(let p) = record { return addPatient(p) }
        guard let key = PseudonymKey(record.pseudonym), let row = patientRow[key] else { return false }
        switch record {
        case .patient: break
        case let .condition(_, start, stop, code):
            conditionPatient.append(row); conditionStart.append(start); conditionStop.append(stop); conditionCode.append(code)
        case let .observation(_, time, category, code, value, unit, text):
            observationPatient.append(row); observationTime.append(time); observationCategory.append(category)
            observationCode.append(code); observationValue.append(value); observationUnit.append(unit); observationText.append(text)
        case let .medication(_, start, stop, code):
            medicationPatient.append(row); medicationStart.append(start); medicationStop.append(stop); medicationCode.append(code)
        case let .encounter(_, start, stop, cls, code):
            encounterPatient.append(row); encounterStart.append(start); encounterStop.append(stop)
            encounterClass.append(cls); encounterCode.append(code)
        case let .procedure(_, start, code):
            procedurePatient.append(row); procedureStart.append(start); procedureCode.append(code)
        case let .immunization(_, time, code):
            immunizationPatient.append(row); immunizationTime.append(time); immunizationCode.append(code)
        }
        return true
    }

    /// Overwrites the string values and pseudonyms held for encoding, once encoded.
    public mutating func wipe() {
        secureWipe(&pseudonyms)
        for key in [\ShardTables.sex, \.race, \.ethnicity, \.state, \.conditionCode, \.observationCategory, \.observationCode,
                    \.observationUnit, \.observationText, \.medicationCode, \.encounterClass, \.encounterCode, \.procedureCode,
                    \.immunizationCode] as [WritableKeyPath<ShardTables, DictionaryColumn>] {
            self[keyPath: key].wipe()
        }
    }

    // MARK: Encoding

    /// An upper bound of the encoded size, so the output never reallocates.
    func encodedSizeBound() -> Int {
        var total = 8 + 4
        for kind in RecordKind.allCases {
            total += 9
            for column in columns(kind) {
                total += 9
                switch column {
                case .int32(let v): total += v.count * 4
                case .int64(let v): total += v.count * 8
                case .float64(let v): total += v.count * 8
                case .fixed(_, let v): total += 2 + v.count
                case .dictionary(let d): total += d.encodedSize
                }
            }
        }
        return total
    }

    private func columns(_ kind: RecordKind) -> [ColumnBuilder] {
        switch kind {
        case .patients:
            return [.fixed(width: 16, pseudonyms), .int32(birth), .int32(death), .dictionary(sex), .dictionary(race),
                    .dictionary(ethnicity), .dictionary(state)]
        case .conditions:
            return [.int32(conditionPatient), .int64(conditionStart), .int64(conditionStop), .dictionary(conditionCode)]
        case .observations:
            return [.int32(observationPatient), .int64(observationTime), .dictionary(observationCategory), .dictionary(observationCode),
                    .float64(observationValue), .dictionary(observationUnit), .dictionary(observationText)]
        case .medications:
            return [.int32(medicationPatient), .int64(medicationStart), .int64(medicationStop), .dictionary(medicationCode)]
        case .encounters:
            return [.int32(encounterPatient), .int64(encounterStart), .int64(encounterStop), .dictionary(encounterClass), .dictionary(encounterCode)]
        case .procedures:
            return [.int32(procedurePatient), .int64(procedureStart), .dictionary(procedureCode)]
        case .immunizations:
            return [.int32(immunizationPatient), .int64(immunizationTime), .dictionary(immunizationCode)]
        }
    }

    /// Encodes every table. The caller wipes the returned plaintext when done.
    public func encode() -> [UInt8] {
        var out = LittleEndianWriter(capacity: encodedSizeBound())
        out.raw(ColumnarCodec.magic)
        out.u32(UInt32(RecordKind.allCases.count))
        let c = counts
        for kind in RecordKind.allCases {
            let cols = columns(kind)
            out.u8(kind.rawValue)
            out.u32(UInt32(c[kind]))
            out.u32(UInt32(cols.count))
            for col in cols { out.column(col) }
        }
        return out.bytes
    }
}

struct LittleEndianWriter {
    var bytes: [UInt8] = []
    init() {}
    /// Reserving up front keeps plaintext from being copied (and the old copy left
    /// unwiped) when the array grows.
    init(capacity: Int) { bytes.reserveCapacity(capacity) }
    mutating func u8(_ v: UInt8) { bytes.append(v) }
    mutating func u16(_ v: UInt16) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
    mutating func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
    mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { bytes.append(contentsOf: $0) } }
    mutating func raw(_ b: [UInt8]) { bytes.append(contentsOf: b) }
    mutating func array<T>(_ values: [T]) { values.withUnsafeBytes { bytes.append(contentsOf: $0) } }

    mutating func column(_ column: ColumnBuilder) {
        switch column {
        case .int32(let v):
            u8(ColumnarCodec.ColumnKind.int32.rawValue); u64(UInt64(v.count * 4)); array(v)
        case .int64(let v):
            u8(ColumnarCodec.ColumnKind.int64.rawValue); u64(UInt64(v.count * 8)); array(v)
        case .float64(let v):
            u8(ColumnarCodec.ColumnKind.float64.rawValue); u64(UInt64(v.count * 8)); array(v)
        case .fixed(let width, let v):
            u8(ColumnarCodec.ColumnKind.fixed.rawValue); u64(UInt64(2 + v.count)); u16(UInt16(width)); raw(v)
        case .dictionary(let d):
            u8(ColumnarCodec.ColumnKind.dictionary.rawValue)
            u64(UInt64(d.encodedSize))
            u32(UInt32(d.count))
            d.bytes.withUnsafeBytes { all in
                for e in 0..<d.count {
                    u32(UInt32(d.starts[e + 1] - d.starts[e]))
                    bytes.append(contentsOf: UnsafeRawBufferPointer(rebasing: all[d.starts[e]..<d.starts[e + 1]]))
                }
            }
            array(d.indices)
        }
    }
}

/// A decoded column: typed views over the plaintext.
public enum Column: Sendable {
    case int32([Int32])
    case int64([Int64])
    case float64([Double])
    case dictionary(entries: [String], indices: [UInt32])
    case fixed(width: Int, bytes: [UInt8])
    /// A column the reader did not ask for: checked like the others, not copied.
    case skipped(rows: Int)

    var rowCount: Int {
        switch self {
        case .int32(let v): return v.count
        case .int64(let v): return v.count
        case .float64(let v): return v.count
        case .dictionary(_, let i): return i.count
        case .fixed(let w, let b): return w == 0 ? 0 : b.count / w
        case .skipped(let rows): return rows
        }
    }
}

/// The decoded tables of one shard.
public struct DecodedShard: Sendable {
    public var tables: [RecordKind: [Column]] = [:]
    public var counts = RecordCounts()

    /// Decodes and validates a `shardvault.clinical.v1` plaintext. With `columns`, only
    /// those columns (by table, by position) are copied out; the others are checked all the
    /// same and left as `.skipped`.
    public static func decode(_ bytes: UnsafeRawBufferPointer, columns: [RecordKind: Set<Int>]? = nil) throws -> DecodedShard {
        var reader = LittleEndianReader(bytes)
        return try decode(&reader, columns: columns)
    }

    /// Decodes a plaintext from `r`: the wanted columns are read in full and checked, the
    /// others stepped over as `r.skip(columnOf:)` does (a reader that decrypts on demand
    /// steps over them unread).
    static func decode<Source: ColumnSource>(_ r: inout Source, columns: [RecordKind: Set<Int>]?) throws -> DecodedShard {
        guard try r.raw(8) == ColumnarCodec.magic else {
            throw VaultError(.dataError, "plaintext is not a shardvault.clinical.v1 encoding (bad magic)")
        }
        let tableCount = try r.u32()
        var out = DecodedShard()
        for _ in 0..<tableCount {
            let kindByte = try r.u8()
            guard let kind = RecordKind(rawValue: kindByte) else {
                throw VaultError(.dataError, "plaintext has an unknown table kind \(kindByte)")
            }
            let rows = Int(try r.u32())
            let columnCount = try r.u32()
            var table: [Column] = []
            for index in 0..<columnCount {
                let wanted = columns.map { $0[kind]?.contains(Int(index)) ?? false } ?? true
                let column = wanted ? try r.column() : .skipped(rows: try r.skip(columnOf: rows))
                guard column.rowCount == rows else {
                    throw VaultError(.dataError, "table \(kind) column \(index) has \(column.rowCount) rows, expected \(rows)")
                }
                table.append(column)
            }
            out.tables[kind] = table
            out.counts[kind] = rows
        }
        guard r.remaining == 0 else { throw VaultError(.dataError, "plaintext has \(r.remaining) trailing bytes") }
        return out
    }
}

extension DecodedShard {
    /// Checks the structure of a plaintext (magic, tables, column lengths, dictionary
    /// indices) and returns its record counts, without copying any column.
    public static func validate(_ bytes: UnsafeRawBufferPointer) throws -> RecordCounts {
        var r = LittleEndianReader(bytes)
        guard try r.raw(8) == ColumnarCodec.magic else {
            throw VaultError(.dataError, "plaintext is not a shardvault.clinical.v1 encoding (bad magic)")
        }
        var counts = RecordCounts()
        let tableCount = try r.u32()
        for _ in 0..<tableCount {
            let kindByte = try r.u8()
            guard let kind = RecordKind(rawValue: kindByte) else { throw VaultError(.dataError, "plaintext has an unknown table kind \(kindByte)") }
            let rows = Int(try r.u32())
            let columnCount = try r.u32()
            for index in 0..<columnCount {
                let n = try r.skipColumn()
                guard n == rows else { throw VaultError(.dataError, "table \(kind) column \(index) has \(n) rows, expected \(rows)") }
            }
            counts[kind] = rows
        }
        guard r.remaining == 0 else { throw VaultError(.dataError, "plaintext has \(r.remaining) trailing bytes") }
        return counts
    }
}

/// Where the column decoder reads a plaintext from: bytes in memory (`LittleEndianReader`),
/// or a shard decrypted chunk by chunk as it is read (`DecryptingReader`).
protocol ColumnSource {
    var offset: Int { get }
    var remaining: Int { get }
    mutating func u8() throws -> UInt8
    mutating func u16() throws -> UInt16
    mutating func u32() throws -> UInt32
    mutating func u64() throws -> UInt64
    mutating func raw(_ n: Int) throws -> [UInt8]
    mutating func array<T: BitwiseCopyable>(_ count: Int, of: T.Type) throws -> [T]
    /// The next `n` bytes as a string, or nil (having read them) when they are not UTF-8.
    mutating func utf8(_ n: Int) throws -> String?
    /// Steps over a column the caller does not want and returns its row count: checked
    /// like `column()` when the bytes are at hand, or `rows` when stepped over unread.
    mutating func skip(columnOf rows: Int) throws -> Int
}

struct LittleEndianReader: ColumnSource {
    let bytes: UnsafeRawBufferPointer
    var offset = 0
    init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }
    var remaining: Int { bytes.count - offset }

    mutating func u8() throws -> UInt8 { try need(1); defer { offset += 1 }; return bytes[offset] }
    mutating func u16() throws -> UInt16 { try need(2); defer { offset += 2 }; return bytes.loadUnaligned(fromByteOffset: offset, as: UInt16.self).littleEndian }
    mutating func u32() throws -> UInt32 { try need(4); defer { offset += 4 }; return bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self).littleEndian }
    mutating func u64() throws -> UInt64 { try need(8); defer { offset += 8 }; return bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self).littleEndian }
    mutating func raw(_ n: Int) throws -> [UInt8] { try need(n); defer { offset += n }; return Array(bytes[offset..<offset + n]) }

    mutating func utf8(_ n: Int) throws -> String? {
        try need(n)
        defer { offset += n }
        return String(validating: UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + n]), as: UTF8.self)
    }

    mutating func skip(columnOf rows: Int) throws -> Int { try skipColumn() }

    mutating func array<T: BitwiseCopyable>(_ count: Int, of: T.Type) throws -> [T] {
        let size = count * MemoryLayout<T>.stride
        try need(size)
        defer { offset += size }
        return [T](unsafeUninitializedCapacity: count) { buffer, initialized in
            UnsafeMutableRawBufferPointer(buffer).copyMemory(from: UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + size]))
            initialized = count
        }
    }

    /// Walks over a column, checking it as `column()` does, and returns its row count.
    mutating func skipColumn() throws -> Int {
        let kindByte = try u8()
        let length = try u64()
        guard length <= UInt64(remaining) else { throw VaultError(.dataError, "column length \(length) exceeds the plaintext") }
        let n = Int(length)
        let end = offset + n
        defer { offset = end }
        switch ColumnarCodec.ColumnKind(rawValue: kindByte) {
        case .int32?:
            guard n % 4 == 0 else { throw VaultError(.dataError, "int32 column length \(n) is not a multiple of 4") }
            return n / 4
        case .int64?, .float64?:
            guard n % 8 == 0 else { throw VaultError(.dataError, "column length \(n) is not a multiple of 8") }
            return n / 8
        case .fixed?:
            let width = Int(try u16())
            guard width > 0, (n - 2) % width == 0 else { throw VaultError(.dataError, "fixed column of width \(width) has \(n - 2) bytes") }
            return (n - 2) / width
        case .dictionary?:
            let count = Int(try u32())
            for _ in 0..<count {
                let len = Int(try u32())
                try need(len)
                guard String(validating: UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + len]), as: UTF8.self) != nil else {
                    throw VaultError(.dataError, "dictionary entry is not UTF-8")
                }
                offset += len
            }
            let rest = end - offset
            guard rest >= 0, rest % 4 == 0 else { throw VaultError(.dataError, "dictionary column has a bad length") }
            let rows = rest / 4
            var maxIndex: UInt32 = 0
            for i in 0..<rows { maxIndex = max(maxIndex, bytes.loadUnaligned(fromByteOffset: offset + 4 * i, as: UInt32.self).littleEndian) }
            guard rows == 0 || Int(maxIndex) < count else { throw VaultError(.dataError, "dictionary index out of range") }
            return rows
        case nil:
            throw VaultError(.dataError, "unknown column kind \(kindByte)")
        }
    }

}

extension ColumnSource {
    /// Throws unless `n` more bytes remain.
    func need(_ n: Int) throws {
        guard n >= 0 && remaining >= n else { throw VaultError(.dataError, "plaintext truncated at byte \(offset)") }
    }

    /// Reads one column in full, checking its kind, length, rows and dictionary indices.
    mutating func column() throws -> Column {
        let kindByte = try u8()
        let length = try u64()
        guard length <= UInt64(remaining) else { throw VaultError(.dataError, "column length \(length) exceeds the plaintext") }
        let n = Int(length)
        let end = offset + n
        switch ColumnarCodec.ColumnKind(rawValue: kindByte) {
        case .int32?:
            guard n % 4 == 0 else { throw VaultError(.dataError, "int32 column length \(n) is not a multiple of 4") }
            return .int32(try array(n / 4, of: Int32.self))
        case .int64?:
            guard n % 8 == 0 else { throw VaultError(.dataError, "int64 column length \(n) is not a multiple of 8") }
            return .int64(try array(n / 8, of: Int64.self))
        case .float64?:
            guard n % 8 == 0 else { throw VaultError(.dataError, "float64 column length \(n) is not a multiple of 8") }
            return .float64(try array(n / 8, of: Double.self))
        case .fixed?:
            guard n >= 2 else { throw VaultError(.dataError, "fixed column of \(n) bytes has no width") }
            let width = Int(try u16())
            let data = try raw(n - 2)
            guard width > 0, data.count % width == 0 else { throw VaultError(.dataError, "fixed column of width \(width) has \(data.count) bytes") }
            return .fixed(width: width, bytes: data)
        case .dictionary?:
            let count = Int(try u32())
            guard count <= n / 4 else { throw VaultError(.dataError, "dictionary column of \(n) bytes claims \(count) entries") }
            var entries: [String] = []
            entries.reserveCapacity(count)
            for _ in 0..<count {
                guard let entry = try utf8(Int(try u32())) else { throw VaultError(.dataError, "dictionary entry is not UTF-8") }
                entries.append(entry)
            }
            let rest = end - offset
            guard rest >= 0, rest % 4 == 0 else { throw VaultError(.dataError, "dictionary column has a bad length") }
            let indices = try array(rest / 4, of: UInt32.self)
            guard indices.allSatisfy({ Int($0) < count }) else { throw VaultError(.dataError, "dictionary index out of range") }
            return .dictionary(entries: entries, indices: indices)
        case nil:
            throw VaultError(.dataError, "unknown column kind \(kindByte)")
        }
    }
}
