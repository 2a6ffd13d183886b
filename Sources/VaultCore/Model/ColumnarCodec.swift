#if canImport(Glibc)
import Glibc
#endif
import VaultCrypto

/// The clinical plaintext of a shard: typed columns per table, little-endian arrays (see
/// docs/shard-format.md). Version 2 packs each column into the narrowest of a few
/// encodings; version 1 (plain arrays only) is still read.
public enum ColumnarCodec {
    /// The encoding ingest writes.
    public static let schemaId = Version.v2.schemaId
    /// The encodings a reader accepts.
    public static let supportedSchemas = [Version.v1.schemaId, Version.v2.schemaId]

    enum Version: UInt8, CaseIterable {
        case v1 = 1, v2 = 2
        var schemaId: String { "shardvault.clinical.v\(rawValue)" }
        var magic: [UInt8] { Array("SVCOL\(rawValue)".utf8) + [0, 0] }
        init?(schemaId: String) {
            guard let version = Self.allCases.first(where: { $0.schemaId == schemaId }) else { return nil }
            self = version
        }
    }

    enum ColumnKind: UInt8 {
        // Version 1 and 2.
        case int32 = 1, int64 = 2, float64 = 3, dictionary = 4, fixed = 5
        // Version 2 only.
        case packedInt32 = 6, packedInt64 = 7, runsInt32 = 8, narrowDictionary = 9, decimal = 10

        func allowed(in version: Version) -> Bool { version == .v2 || rawValue <= ColumnKind.fixed.rawValue }
    }

    /// Byte widths of packed values, offsets and narrow dictionary indices.
    static let widths = [1, 2, 4]
    /// The offset that stands for "no value" at `width` bytes: all ones.
    static func noneOffset(width: Int) -> UInt64 { width >= 8 ? .max : (1 << UInt64(8 * width)) - 1 }
    /// Decimal scales a `decimal` column may use: value = integer / 10^scale.
    static let powersOfTen: [Double] = (0...9).map { (0..<$0).reduce(1.0) { r, _ in r * 10 } }
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

    /// An upper bound of the encoded size, so the output never reallocates. Version 2
    /// picks a packed encoding only when it is smaller than the plain one; a narrow
    /// dictionary adds one byte (its index width).
    func encodedSizeBound() -> Int {
        var total = 8 + 4
        for kind in RecordKind.allCases {
            total += 9
            for column in columns(kind) {
                total += 9 + 1
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

    /// Encodes every table as `schemaId` (the current version unless told otherwise). The
    /// caller wipes the returned plaintext when done.
    public func encode(schemaId: String = ColumnarCodec.schemaId) -> [UInt8] {
        let version = ColumnarCodec.Version(schemaId: schemaId) ?? .v2
        let bound = encodedSizeBound()
        var out = LittleEndianWriter(capacity: bound)
        out.raw(version.magic)
        out.u32(UInt32(RecordKind.allCases.count))
        let c = counts
        for kind in RecordKind.allCases {
            let cols = columns(kind)
            out.u8(kind.rawValue)
            out.u32(UInt32(c[kind]))
            out.u32(UInt32(cols.count))
            for col in cols { out.column(col, version: version) }
        }
        assert(out.bytes.count <= bound, "the size bound must hold so the plaintext is never copied")
        return out.bytes
    }
}

/// How version 2 packs a column: the narrowest encoding that gives back every value
/// exactly, or the plain array when none is smaller.
enum ColumnPacking {
    /// Integers as `base + offset × step`, offsets unsigned of `width` bytes; the all-ones
    /// offset stands for the column's "no value" (`Int32.min` or `Int64.min`).
    struct Frame: Equatable { var base: Int64, step: UInt64, width: Int }
    /// Numbers as `(base + offset) / 10^scale`; the all-ones offset stands for NaN.
    struct Decimal: Equatable { var scale: Int, base: Int64, width: Int }

    static func gcd(_ a: UInt64, _ b: UInt64) -> UInt64 {
        var (a, b) = (a, b)
        while b != 0 { (a, b) = (b, a % b) }
        return a
    }

    /// The frame of `values` (those equal to `none` aside), or nil when no width up to
    /// four bytes holds their span.
    static func frame<T: FixedWidthInteger & SignedInteger>(_ values: [T], none: T) -> Frame? {
        var first: Int64?, low = Int64.max, high = Int64.min, step: UInt64 = 0
        for value in values where value != none {
            let x = Int64(value)
            low = Swift.min(low, x)
            high = Swift.max(high, x)
            guard let f = first else { first = x; continue }
            // Every value differs from the first by a multiple of the step (so from the lowest too).
            let difference = x >= f ? UInt64(bitPattern: x) &- UInt64(bitPattern: f) : UInt64(bitPattern: f) &- UInt64(bitPattern: x)
            if step != 1, difference % Swift.max(step, 1) != 0 || step == 0 { step = gcd(step, difference) }
        }
        guard first != nil else { return Frame(base: 0, step: 1, width: 1) }
        step = Swift.max(step, 1)
        let span = (UInt64(bitPattern: high) &- UInt64(bitPattern: low)) / step
        guard let width = ColumnarCodec.widths.first(where: { span < ColumnarCodec.noneOffset(width: $0) }) else { return nil }
        return Frame(base: low, step: step, width: width)
    }

    /// The smallest decimal scale (0 to 4 digits) at which every value but NaN is an
    /// integer over 10^scale that divides back to the same bits; nil when there is none or
    /// the integers span more than four bytes.
    static func decimal(_ values: [Double]) -> Decimal? {
        scales: for scale in 0...4 {
            let power = ColumnarCodec.powersOfTen[scale]
            var low = Int64.max, high = Int64.min
            for value in values where !value.isNaN {
                let scaled = (value * power).rounded()
                guard Swift.abs(scaled) < 0x1p53 else { continue scales }
                let integer = Int64(scaled)
                guard (Double(integer) / power).bitPattern == value.bitPattern else { continue scales }
                low = Swift.min(low, integer)
                high = Swift.max(high, integer)
            }
            guard low <= high else { return Decimal(scale: 0, base: 0, width: 1) }
            let span = UInt64(high - low)
            guard let width = ColumnarCodec.widths.first(where: { span < ColumnarCodec.noneOffset(width: $0) }) else { return nil }
            return Decimal(scale: scale, base: low, width: width)
        }
        return nil
    }

    /// Runs of equal values (a table's patient column, whose rows come patient by patient).
    static func runCount(_ values: [Int32]) -> Int {
        guard var last = values.first else { return 0 }
        var runs = 1
        for value in values where value != last { runs += 1; last = value }
        return runs
    }

    static func dictionaryWidth(entries: Int) -> Int { entries <= 1 << 8 ? 1 : entries <= 1 << 16 ? 2 : 4 }
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

    /// Appends `count` unsigned integers of `width` bytes, little-endian, `value(i)` each.
    mutating func unsigned(count: Int, width: Int, _ value: (Int) -> UInt64) {
        let start = bytes.count
        bytes.append(contentsOf: repeatElement(0, count: count * width))
        bytes.withUnsafeMutableBytes { out in
            let out = UnsafeMutableRawBufferPointer(rebasing: out[start...])
            switch width {
            case 1: for i in 0..<count { out[i] = UInt8(truncatingIfNeeded: value(i)) }
            case 2: for i in 0..<count { out.storeBytes(of: UInt16(truncatingIfNeeded: value(i)).littleEndian, toByteOffset: 2 * i, as: UInt16.self) }
            default: for i in 0..<count { out.storeBytes(of: UInt32(truncatingIfNeeded: value(i)).littleEndian, toByteOffset: 4 * i, as: UInt32.self) }
            }
        }
    }

    mutating func column(_ column: ColumnBuilder, version: ColumnarCodec.Version) {
        typealias Kind = ColumnarCodec.ColumnKind
        guard version == .v2 else { return plain(column) }
        switch column {
        case .int32(let v):
            let frame = ColumnPacking.frame(v, none: Int32.min)
            let runs = ColumnPacking.runCount(v)
            let plainSize = 4 * v.count, runsSize = 4 + 8 * runs, packedSize = frame.map { 17 + v.count * $0.width } ?? .max
            if runsSize < Swift.min(plainSize, packedSize) {
                u8(Kind.runsInt32.rawValue); u64(UInt64(runsSize)); u32(UInt32(runs))
                var start = 0
                while start < v.count {
                    var end = start + 1
                    while end < v.count && v[end] == v[start] { end += 1 }
                    u32(UInt32(bitPattern: v[start])); u32(UInt32(end - start))
                    start = end
                }
            } else if let frame, packedSize < plainSize {
                packed(Kind.packedInt32, v, frame, none: Int32.min)
            } else {
                plain(column)
            }
        case .int64(let v):
            if let frame = ColumnPacking.frame(v, none: Int64.min), 17 + v.count * frame.width < 8 * v.count {
                packed(Kind.packedInt64, v, frame, none: Int64.min)
            } else {
                plain(column)
            }
        case .float64(let v):
            if let d = ColumnPacking.decimal(v), 10 + v.count * d.width < 8 * v.count {
                let none = ColumnarCodec.noneOffset(width: d.width), power = ColumnarCodec.powersOfTen[d.scale]
                u8(Kind.decimal.rawValue); u64(UInt64(10 + v.count * d.width)); u8(UInt8(d.scale)); u64(UInt64(bitPattern: d.base)); u8(UInt8(d.width))
                unsigned(count: v.count, width: d.width) { i in
                    v[i].isNaN ? none : UInt64(bitPattern: Int64((v[i] * power).rounded()) &- d.base)
                }
            } else {
                plain(column)
            }
        case .dictionary(let d):
            let width = ColumnPacking.dictionaryWidth(entries: d.count)
            u8(Kind.narrowDictionary.rawValue)
            u64(UInt64(d.encodedSize - 4 * d.indices.count + 1 + width * d.indices.count))
            entries(d)
            u8(UInt8(width))
            unsigned(count: d.indices.count, width: width) { UInt64(d.indices[$0]) }
        case .fixed:
            plain(column)
        }
    }

    private mutating func packed<T: FixedWidthInteger & SignedInteger>(_ kind: ColumnarCodec.ColumnKind, _ v: [T], _ frame: ColumnPacking.Frame, none: T) {
        let noneOffset = ColumnarCodec.noneOffset(width: frame.width)
        u8(kind.rawValue); u64(UInt64(17 + v.count * frame.width)); u64(UInt64(bitPattern: frame.base)); u64(frame.step); u8(UInt8(frame.width))
        unsigned(count: v.count, width: frame.width) { i in
            v[i] == none ? noneOffset : (UInt64(bitPattern: Int64(v[i])) &- UInt64(bitPattern: frame.base)) / frame.step
        }
    }

    private mutating func entries(_ d: DictionaryColumn) {
        u32(UInt32(d.count))
        d.bytes.withUnsafeBytes { all in
            for e in 0..<d.count {
                u32(UInt32(d.starts[e + 1] - d.starts[e]))
                bytes.append(contentsOf: UnsafeRawBufferPointer(rebasing: all[d.starts[e]..<d.starts[e + 1]]))
            }
        }
    }

    /// The version 1 encodings: plain arrays.
    private mutating func plain(_ column: ColumnBuilder) {
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
            entries(d)
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
    // Compact forms, kept as the version 2 plaintext stores them (`DecodedShard.decode`
    // with `compact`), so that a scan touches a quarter of the memory or less.
    /// A narrow dictionary: indices of 1, 2 or 4 bytes, each checked against `entries`.
    case packedDictionary(entries: [String], indices: PackedIntegers)
    /// Decimals: value = (base + raw) / 10^scale; the all-ones raw value is NaN.
    case packedDecimal(scale: Int, base: Int64, values: PackedIntegers)
    /// Runs of one value: run `i` holds `values[i]` on rows `ends[i - 1]..<ends[i]`.
    case runs(values: [Int32], ends: [Int])

    var rowCount: Int {
        switch self {
        case .int32(let v): return v.count
        case .int64(let v): return v.count
        case .float64(let v): return v.count
        case .dictionary(_, let i): return i.count
        case .fixed(let w, let b): return w == 0 ? 0 : b.count / w
        case .skipped(let rows): return rows
        case .packedDictionary(_, let i): return i.count
        case .packedDecimal(_, _, let v): return v.count
        case .runs(_, let ends): return ends.last ?? 0
        }
    }

    /// `self` if `compact`; otherwise widened, and this compact form wiped.
    consuming func widened(unless compact: Bool) -> Column {
        guard !compact else { return self }
        defer { wipe() }
        return widened()
    }

    /// The column as `decode` without `compact` gives it (compact forms widened).
    func widened() -> Column {
        switch self {
        case .packedDictionary(let entries, let indices):
            return .dictionary(entries: entries, indices: indices.map { UInt32(truncatingIfNeeded: $0) })
        case .packedDecimal(let scale, let base, let values):
            let none = ColumnarCodec.noneOffset(width: values.width), power = ColumnarCodec.powersOfTen[scale]
            return .float64(values.map { ColumnarCodec.decimal($0, base: base, power: power, none: none) })
        case .runs(let values, let ends):
            var rows: [Int32] = []
            rows.reserveCapacity(ends.last ?? 0)
            for (i, value) in values.enumerated() { rows.append(contentsOf: repeatElement(value, count: ends[i] - (i == 0 ? 0 : ends[i - 1]))) }
            return .int32(rows)
        default:
            return self
        }
    }

    /// Overwrites the values and drops them (a column decoded only to be checked).
    mutating func wipe() {
        let rows = rowCount
        switch self {
        case .int32(var v): self = .skipped(rows: rows); v.withUnsafeMutableBytes(secureZero)
        case .int64(var v): self = .skipped(rows: rows); v.withUnsafeMutableBytes(secureZero)
        case .float64(var v): self = .skipped(rows: rows); v.withUnsafeMutableBytes(secureZero)
        case .dictionary(_, var i): self = .skipped(rows: rows); i.withUnsafeMutableBytes(secureZero)
        case .fixed(_, var b): self = .skipped(rows: rows); secureWipe(&b)
        case .packedDictionary(_, var i): self = .skipped(rows: rows); secureWipe(&i.bytes)
        case .packedDecimal(_, _, var v): self = .skipped(rows: rows); secureWipe(&v.bytes)
        case .runs(var v, _): self = .skipped(rows: rows); v.withUnsafeMutableBytes(secureZero)
        case .skipped: break
        }
    }
}

/// Unsigned little-endian integers of 1, 2 or 4 bytes each, as a version 2 plaintext
/// packs them.
public struct PackedIntegers: Sendable {
    public let width: Int
    var bytes: [UInt8]

    init(width: Int, bytes: [UInt8]) {
        precondition(ColumnarCodec.widths.contains(width) && bytes.count % width == 0)
        self.width = width
        self.bytes = bytes
    }

    public var count: Int { bytes.count / width }
    public subscript(_ i: Int) -> UInt64 { bytes.withUnsafeBytes { Self.load($0, width: width, at: i) } }

    /// Every integer mapped, in order.
    func map<T>(_ transform: (UInt64) -> T) -> [T] {
        bytes.withUnsafeBytes { raw in (0..<count).map { transform(Self.load(raw, width: width, at: $0)) } }
    }

    /// Integer `i` of a buffer packed `width` bytes each (no bounds check beyond the buffer's own).
    @inline(__always)
    static func load(_ raw: UnsafeRawBufferPointer, width: Int, at i: Int) -> UInt64 {
        switch width {
        case 1: return UInt64(raw[i])
        case 2: return UInt64(UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)))
        default: return UInt64(UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)))
        }
    }

    /// The largest integer, or with `skippingNone` the largest other than the all-ones
    /// "no value" (`ColumnarCodec.noneOffset`); 0 when there is none.
    static func largest(_ raw: UnsafeRawBufferPointer, width: Int, skippingNone: Bool) -> UInt64 {
        switch width {
        case 1: return largest(raw, UInt8.self, skippingAllOnes: skippingNone)
        case 2: return largest(raw, UInt16.self, skippingAllOnes: skippingNone)
        default: return largest(raw, UInt32.self, skippingAllOnes: skippingNone)
        }
    }

    /// A branch-free maximum the compiler vectorises: adding one wraps all ones to zero, so
    /// the maximum of `value + 1` is one above the largest other value.
    private static func largest<U: FixedWidthInteger & UnsignedInteger>(_ raw: UnsafeRawBufferPointer, _: U.Type, skippingAllOnes: Bool) -> UInt64 {
        let size = MemoryLayout<U>.size, count = raw.count / size
        var top: U = 0
        if skippingAllOnes {
            for i in 0..<count { top = Swift.max(top, U(littleEndian: raw.loadUnaligned(fromByteOffset: i * size, as: U.self)) &+ 1) }
            return top == 0 ? 0 : UInt64(top - 1)
        }
        for i in 0..<count { top = Swift.max(top, U(littleEndian: raw.loadUnaligned(fromByteOffset: i * size, as: U.self))) }
        return UInt64(top)
    }
}

extension ColumnarCodec {
    /// A packed decimal's value: `(base + raw) / power`, NaN for `none`.
    @inline(__always)
    static func decimal(_ raw: UInt64, base: Int64, power: Double, none: UInt64) -> Double {
        raw == none ? .nan : Double(Int64(bitPattern: UInt64(bitPattern: base) &+ raw)) / power
    }
}

/// The decoded tables of one shard.
public struct DecodedShard: Sendable {
    public var tables: [RecordKind: [Column]] = [:]
    public var counts = RecordCounts()
    /// The encoding the plaintext declared (its magic).
    public var schemaId = ColumnarCodec.schemaId

    /// Decodes and validates a clinical plaintext. With `columns`, only those columns (by
    /// table, by position) are copied out; the others are checked all the same and left as
    /// `.skipped`.
    /// With `compact`, version 2's narrow dictionaries, decimals and runs stay as stored
    /// (`Column.packedDictionary`, `.packedDecimal`, `.runs`), checked all the same.
    public static func decode(_ bytes: UnsafeRawBufferPointer, columns: [RecordKind: Set<Int>]? = nil, compact: Bool = false) throws -> DecodedShard {
        var reader = LittleEndianReader(bytes)
        return try decode(&reader, columns: columns, compact: compact)
    }

    static func version<Source: ColumnSource>(_ r: inout Source) throws -> ColumnarCodec.Version {
        let magic = try r.raw(8)
        guard let version = ColumnarCodec.Version.allCases.first(where: { $0.magic == magic }) else {
            throw VaultError(.dataError, "plaintext is not a shardvault.clinical encoding (bad magic)")
        }
        return version
    }

    /// Decodes a plaintext from `r`: the wanted columns are read in full and checked, the
    /// others stepped over as `r.skip(columnOf:)` does (a reader that decrypts on demand
    /// steps over them unread).
    static func decode<Source: ColumnSource>(_ r: inout Source, columns: [RecordKind: Set<Int>]?, compact: Bool = false) throws -> DecodedShard {
        let version = try version(&r)
        let tableCount = try r.u32()
        var out = DecodedShard()
        out.schemaId = version.schemaId
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
                let column = wanted ? try r.column(rows: rows, version: version, compact: compact) : .skipped(rows: try r.skip(columnOf: rows, version: version))
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
    /// Overwrites the values of every decoded column and drops them, leaving each column
    /// `.skipped` (a dictionary's entries, Swift strings, are dropped only).
    public mutating func wipe() {
        for kind in Array(tables.keys) {
            guard var columns = tables.removeValue(forKey: kind) else { continue }
            for index in columns.indices { columns[index].wipe() }
            tables[kind] = columns
        }
    }

    /// Checks the structure of a plaintext (magic, tables, column lengths, dictionary
    /// indices, packed values) and returns its record counts and encoding, keeping no column.
    public static func validate(_ bytes: UnsafeRawBufferPointer) throws -> (counts: RecordCounts, schemaId: String) {
        var r = LittleEndianReader(bytes)
        let version = try version(&r)
        var counts = RecordCounts()
        let tableCount = try r.u32()
        for _ in 0..<tableCount {
            let kindByte = try r.u8()
            guard let kind = RecordKind(rawValue: kindByte) else { throw VaultError(.dataError, "plaintext has an unknown table kind \(kindByte)") }
            let rows = Int(try r.u32())
            let columnCount = try r.u32()
            for index in 0..<columnCount {
                let n = try r.skipColumn(rows: rows, version: version)
                guard n == rows else { throw VaultError(.dataError, "table \(kind) column \(index) has \(n) rows, expected \(rows)") }
            }
            counts[kind] = rows
        }
        guard r.remaining == 0 else { throw VaultError(.dataError, "plaintext has \(r.remaining) trailing bytes") }
        return (counts, version.schemaId)
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
    /// Hands the next `n` bytes to `body` in order, in pieces of at most
    /// `ColumnarCodec.blockSize` bytes (a multiple of 8, so no value of a packed column
    /// straddles two pieces). Pieces that were decrypted for the call are wiped after it.
    mutating func blocks(_ n: Int, _ body: (UnsafeRawBufferPointer) throws -> Void) throws
    /// Steps over a column the caller does not want and returns its row count: checked
    /// like `column()` when the bytes are at hand, or `rows` when stepped over unread.
    mutating func skip(columnOf rows: Int, version: ColumnarCodec.Version) throws -> Int
}

extension ColumnarCodec {
    static let blockSize = 1 << 16
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

    mutating func blocks(_ n: Int, _ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        try need(n)
        var start = offset
        offset += n
        while start < offset {
            let end = Swift.min(start + ColumnarCodec.blockSize, offset)
            try body(UnsafeRawBufferPointer(rebasing: bytes[start..<end]))
            start = end
        }
    }

    mutating func skip(columnOf rows: Int, version: ColumnarCodec.Version) throws -> Int { try skipColumn(rows: rows, version: version) }

    mutating func array<T: BitwiseCopyable>(_ count: Int, of: T.Type) throws -> [T] {
        let size = count * MemoryLayout<T>.stride
        try need(size)
        defer { offset += size }
        return [T](unsafeUninitializedCapacity: count) { buffer, initialized in
            UnsafeMutableRawBufferPointer(buffer).copyMemory(from: UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + size]))
            initialized = count
        }
    }

    /// Walks over a column, checking it as `column()` does, and returns its row count. A
    /// packed column (version 2) is decoded to be checked, then wiped.
    mutating func skipColumn(rows: Int, version: ColumnarCodec.Version) throws -> Int {
        let start = offset
        let kindByte = try u8()
        if let kind = ColumnarCodec.ColumnKind(rawValue: kindByte), kind.rawValue > ColumnarCodec.ColumnKind.fixed.rawValue {
            offset = start
            var column = try column(rows: rows, version: version)
            defer { column.wipe() }
            return column.rowCount
        }
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
            guard n >= 2 else { throw VaultError(.dataError, "fixed column of \(n) bytes has no width") }
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
        default:
            throw VaultError(.dataError, "unknown column kind \(kindByte)")
        }
    }
}

extension ColumnSource {
    /// Throws unless `n` more bytes remain.
    func need(_ n: Int) throws {
        guard n >= 0 && remaining >= n else { throw VaultError(.dataError, "plaintext truncated at byte \(offset)") }
    }

    /// Reads one column in full, checking its kind (against the plaintext's version),
    /// length, rows, dictionary indices and packed values.
    mutating func column(rows: Int, version: ColumnarCodec.Version, compact: Bool = false) throws -> Column {
        let kindByte = try u8()
        let length = try u64()
        guard length <= UInt64(remaining) else { throw VaultError(.dataError, "column length \(length) exceeds the plaintext") }
        let n = Int(length)
        let end = offset + n
        guard let kind = ColumnarCodec.ColumnKind(rawValue: kindByte) else { throw VaultError(.dataError, "unknown column kind \(kindByte)") }
        guard kind.allowed(in: version) else { throw VaultError(.dataError, "column kind \(kindByte) is not part of \(version.schemaId)") }
        switch kind {
        case .int32:
            guard n % 4 == 0 else { throw VaultError(.dataError, "int32 column length \(n) is not a multiple of 4") }
            return .int32(try array(n / 4, of: Int32.self))
        case .int64:
            guard n % 8 == 0 else { throw VaultError(.dataError, "int64 column length \(n) is not a multiple of 8") }
            return .int64(try array(n / 8, of: Int64.self))
        case .float64:
            guard n % 8 == 0 else { throw VaultError(.dataError, "float64 column length \(n) is not a multiple of 8") }
            return .float64(try array(n / 8, of: Double.self))
        case .fixed:
            guard n >= 2 else { throw VaultError(.dataError, "fixed column of \(n) bytes has no width") }
            let width = Int(try u16())
            let data = try raw(n - 2)
            guard width > 0, data.count % width == 0 else { throw VaultError(.dataError, "fixed column of width \(width) has \(data.count) bytes") }
            return .fixed(width: width, bytes: data)
        case .dictionary:
            let entries = try dictionaryEntries(n)
            let rest = end - offset
            guard rest >= 0, rest % 4 == 0 else { throw VaultError(.dataError, "dictionary column has a bad length") }
            let indices = try array(rest / 4, of: UInt32.self)
            guard indices.allSatisfy({ Int($0) < entries.count }) else { throw VaultError(.dataError, "dictionary index out of range") }
            return .dictionary(entries: entries, indices: indices)
        case .narrowDictionary:
            let entries = try dictionaryEntries(n)
            let width = Int(try u8())
            try packedLength(end - offset, width: width, header: 0, rows: rows, what: "dictionary")
            var bytes = try raw(rows * width)
            guard rows == 0 || bytes.withUnsafeBytes({ PackedIntegers.largest($0, width: width, skippingNone: false) }) < UInt64(entries.count) else {
                secureWipe(&bytes)
                throw VaultError(.dataError, "dictionary index out of range")
            }
            return Column.packedDictionary(entries: entries, indices: PackedIntegers(width: width, bytes: bytes)).widened(unless: compact)
        case .packedInt32:
            return .int32(try packed(n, rows: rows, none: Int32.min))
        case .packedInt64:
            return .int64(try packed(n, rows: rows, none: Int64.min))
        case .runsInt32:
            return try runs(n, rows: rows).widened(unless: compact)
        case .decimal:
            return try decimal(n, rows: rows).widened(unless: compact)
        }
    }

    /// A dictionary's entry count and entries, checked as UTF-8.
    private mutating func dictionaryEntries(_ n: Int) throws -> [String] {
        let count = Int(try u32())
        guard count <= n / 4 else { throw VaultError(.dataError, "dictionary column of \(n) bytes claims \(count) entries") }
        var entries: [String] = []
        entries.reserveCapacity(count)
        for _ in 0..<count {
            guard let entry = try utf8(Int(try u32())) else { throw VaultError(.dataError, "dictionary entry is not UTF-8") }
            entries.append(entry)
        }
        return entries
    }

    /// Checks a packed column's width and that its `n` bytes are `header` plus one value of
    /// `width` bytes per row.
    private func packedLength(_ n: Int, width: Int, header: Int, rows: Int, what: String) throws {
        guard ColumnarCodec.widths.contains(width) else { throw VaultError(.dataError, "packed \(what) column has a width of \(width) bytes") }
        guard n - header == rows * width else {
            throw VaultError(.dataError, "packed \(what) column of \(n) bytes does not hold \(rows) values of \(width) bytes")
        }
    }

    /// Integers stored as `base + offset × step` (`ColumnPacking.Frame`).
    private mutating func packed<T: FixedWidthInteger & SignedInteger>(_ n: Int, rows: Int, none: T) throws -> [T] {
        guard n >= 17 else { throw VaultError(.dataError, "packed integer column of \(n) bytes has no frame") }
        let base = Int64(bitPattern: try u64()), step = try u64(), width = Int(try u8())
        try packedLength(n, width: width, header: 17, rows: rows, what: "integer")
        guard step >= 1 else { throw VaultError(.dataError, "packed integer column has a step of 0") }
        guard base >= Int64(T.min) && base <= Int64(T.max) else { throw VaultError(.dataError, "packed integer column's base \(base) is out of range") }
        // The largest offset whose value stays in range.
        let limit = (UInt64(bitPattern: Int64(T.max)) &- UInt64(bitPattern: base)) / step
        let noneOffset = ColumnarCodec.noneOffset(width: width)
        let unsignedBase = UInt64(bitPattern: base)
        var largest: UInt64 = 0
        var values: [T] = try unpack(rows: rows, width: width, none: noneOffset, largest: &largest) { offset in
            offset == noneOffset ? none : T(truncatingIfNeeded: Int64(bitPattern: unsignedBase &+ offset &* step))
        }
        guard largest <= limit else {
            values.withUnsafeMutableBytes(secureZero)
            throw VaultError(.dataError, "packed integer column holds a value out of range")
        }
        return values
    }

    /// Numbers stored as `(base + offset) / 10^scale` (`ColumnPacking.Decimal`), kept
    /// packed (`Column.packedDecimal`).
    private mutating func decimal(_ n: Int, rows: Int) throws -> Column {
        guard n >= 10 else { throw VaultError(.dataError, "decimal column of \(n) bytes has no frame") }
        let scale = Int(try u8()), base = Int64(bitPattern: try u64()), width = Int(try u8())
        try packedLength(n, width: width, header: 10, rows: rows, what: "decimal")
        guard scale < ColumnarCodec.powersOfTen.count else { throw VaultError(.dataError, "decimal column has a scale of \(scale)") }
        let limit = UInt64(bitPattern: Int64.max) &- UInt64(bitPattern: base)
        var bytes = try raw(rows * width)
        guard bytes.withUnsafeBytes({ PackedIntegers.largest($0, width: width, skippingNone: true) }) <= limit else {
            secureWipe(&bytes)
            throw VaultError(.dataError, "decimal column holds a value out of range")
        }
        return .packedDecimal(scale: scale, base: base, values: PackedIntegers(width: width, bytes: bytes))
    }

    /// An int32 column as runs of one value (`u32` run count, then value and length per
    /// run), kept as runs (`Column.runs`).
    private mutating func runs(_ n: Int, rows: Int) throws -> Column {
        guard n >= 4 else { throw VaultError(.dataError, "run column of \(n) bytes has no run count") }
        let count = Int(try u32())
        guard n - 4 == 8 * count, count <= rows else {
            throw VaultError(.dataError, "run column of \(n) bytes does not hold \(count) runs over \(rows) rows")
        }
        var values: [Int32] = [], ends: [Int] = []
        values.reserveCapacity(count)
        ends.reserveCapacity(count)
        var filled = 0
        do {
            try blocks(8 * count) { pairs in
                for pair in 0..<pairs.count / 8 {
                    let value = Int32(bitPattern: UInt32(littleEndian: pairs.loadUnaligned(fromByteOffset: 8 * pair, as: UInt32.self)))
                    let length = Int(UInt32(littleEndian: pairs.loadUnaligned(fromByteOffset: 8 * pair + 4, as: UInt32.self)))
                    guard length >= 1, length <= rows - filled else {
                        throw VaultError(.dataError, "run column's runs do not add up to \(rows) rows")
                    }
                    filled += length
                    values.append(value)
                    ends.append(filled)
                }
            }
            guard filled == rows else { throw VaultError(.dataError, "run column's runs do not add up to \(rows) rows") }
        } catch {
            values.withUnsafeMutableBytes(secureZero)
            throw error
        }
        return .runs(values: values, ends: ends)
    }

    /// Reads `rows` unsigned little-endian integers of `width` bytes and maps each to a
    /// value; `largest` is the largest one read other than `none`. On failure the values
    /// written so far are wiped.
    private mutating func unpack<T>(rows: Int, width: Int, none: UInt64, largest: inout UInt64, _ map: (UInt64) -> T) throws -> [T] {
        var top: UInt64 = 0
        let values = try [T](unsafeUninitializedCapacity: rows) { buffer, initialized in
            var row = 0
            do {
                try blocks(rows * width) { bytes in
                    let target = buffer.baseAddress! + row
                    let count = bytes.count / width
                    switch width {
                    case 1: top = Swift.max(top, unpackBlock(bytes, UInt8.self, count, none, target, map))
                    case 2: top = Swift.max(top, unpackBlock(bytes, UInt16.self, count, none, target, map))
                    default: top = Swift.max(top, unpackBlock(bytes, UInt32.self, count, none, target, map))
                    }
                    row += count
                }
            } catch {
                secureZero(UnsafeMutableRawBufferPointer(rebasing: UnsafeMutableRawBufferPointer(buffer)[0..<(row * MemoryLayout<T>.stride)]))
                throw error
            }
            initialized = rows
        }
        largest = top
        return values
    }
}

/// One block of packed values, unpacked into `target`; returns the largest value other than `skip`.
@inline(__always)
private func unpackBlock<U: FixedWidthInteger & UnsignedInteger, T>(_ bytes: UnsafeRawBufferPointer, _: U.Type, _ count: Int, _ skip: UInt64,
                                                                   _ target: UnsafeMutablePointer<T>, _ map: (UInt64) -> T) -> UInt64 {
    var largest: UInt64 = 0
    for i in 0..<count {
        let value = UInt64(U(littleEndian: bytes.loadUnaligned(fromByteOffset: i * MemoryLayout<U>.size, as: U.self)))
        largest = value == skip ? largest : Swift.max(largest, value)
        (target + i).initialize(to: map(value))
    }
    return largest
}
