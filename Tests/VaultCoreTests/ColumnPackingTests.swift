import Foundation
import Testing
import VaultCrypto
@testable import VaultCore

@Suite("Packed columns (shardvault.clinical.v2)")
struct ColumnPackingTests {
    static let v1 = ColumnarCodec.Version.v1.schemaId
    static let v2 = ColumnarCodec.Version.v2.schemaId

    static func le32(_ v: UInt32) -> [UInt8] { withUnsafeBytes(of: v.littleEndian, Array.init) }
    static func le64(_ v: UInt64) -> [UInt8] { withUnsafeBytes(of: v.littleEndian, Array.init) }

    /// Equal values; floats bit for bit, any NaN equal to any NaN.
    /// Same values, compact forms compared as the columns they widen to.
    static func same(_ a: Column, _ b: Column) -> Bool {
        switch (a.widened(), b.widened()) {
        case (.int32(let x), .int32(let y)): return x == y
        case (.int64(let x), .int64(let y)): return x == y
        case (.float64(let x), .float64(let y)):
            return x.count == y.count && zip(x, y).allSatisfy { $0.isNaN ? $1.isNaN : $0.bitPattern == $1.bitPattern }
        case (.dictionary(let e1, let i1), .dictionary(let e2, let i2)): return i1.map { e1[Int($0)] } == i2.map { e2[Int($0)] }
        case (.fixed(let w1, let b1), .fixed(let w2, let b2)): return w1 == w2 && b1 == b2
        default: return false
        }
    }

    static func sameTables(_ a: DecodedShard, _ b: DecodedShard) -> Bool {
        a.counts == b.counts && RecordKind.allCases.allSatisfy { kind in
            let x = a.tables[kind] ?? [], y = b.tables[kind] ?? []
            return x.count == y.count && zip(x, y).allSatisfy(same)
        }
    }

    /// The column kinds of a plaintext, by table, read from its bytes.
    static func kinds(_ plaintext: [UInt8]) throws -> [RecordKind: [UInt8]] {
        try plaintext.withUnsafeBytes { bytes in
            var r = LittleEndianReader(bytes)
            _ = try r.raw(8)
            var out: [RecordKind: [UInt8]] = [:]
            for _ in 0..<(try r.u32()) {
                let kind = RecordKind(rawValue: try r.u8())!
                _ = try r.u32()
                for _ in 0..<(try r.u32()) {
                    out[kind, default: []].append(try r.u8())
                    r.offset += Int(try r.u64())
                }
            }
            return out
        }
    }

    /// Tables that touch every edge: absent dates and times, whole days, decimals with NaN,
    /// an infinity, a negative zero, spans too wide to pack, patients interleaved, and
    /// dictionaries of one, two and four byte indices.
    static func edgeTables(interleaved: Bool, oddValues: Bool, bigDictionary: Bool) -> ShardTables {
        var tables = ShardTables()
        var random = CSVBlockTests.Random(state: 99)
        let patients = (0..<40).map { [UInt8](repeating: UInt8($0), count: 16) }
        for (i, p) in patients.enumerated() {
            tables.addPatient(.init(pseudonym: p, birthDate: i % 7 == 0 ? Absent.date : Int32(-3_000 + i * 365), deathDate: i % 3 == 0 ? 19_000 : Absent.date,
                                    sex: i % 2 == 0 ? "male" : "female", race: "white", ethnicity: "nonhispanic", state: "state \(i % 5)"))
        }
        for round in 0..<30 {
            for (i, p) in patients.enumerated() where interleaved || round == 0 {
                for j in 0..<(interleaved ? 1 : 30) {
                    let n = Int64(interleaved ? round : j)
                    let day = Int64(10_000 + (i * 97 + Int(n)) % 20_000) * 86_400
                    _ = tables.add(.condition(pseudonym: p, start: day, stop: n % 4 == 0 ? Absent.time : day + 86_400 * n, code: "c\(n % 300)"))
                    let time = 1_000_000_000 + Int64(random.next() % 2_000_000_000)
                    var value = Double(Int(random.next() % 200_000) - 5_000) / 10
                    if n % 11 == 0 { value = .nan }
                    if oddValues && n == 17 { value = i % 2 == 0 ? .infinity : -0.0 }
                    _ = tables.add(.observation(pseudonym: p, time: time, category: "vital-signs", code: "o\(n % 200)", value: value,
                                                unit: n % 11 == 0 ? "" : "kg", text: n % 11 == 0 ? "text \(n % 3)" : ""))
                    _ = tables.add(.medication(pseudonym: p, start: time, stop: oddValues && n == 3 ? Int64.max / 2 : time + 3_600, code: "m"))
                    _ = tables.add(.encounter(pseudonym: p, start: time, stop: time + 900, encounterClass: "wellness",
                                              code: bigDictionary ? "e\(round)-\(i)-\(j)-\(random.next() % 100)" : "e"))
                    _ = tables.add(.procedure(pseudonym: p, start: time, code: "p\(n % 1_000)"))
                    _ = tables.add(.immunization(pseudonym: p, time: time, code: "i"))
                }
            }
        }
        return tables
    }

    static func decodeBoth(_ plaintext: [UInt8], compact: Bool = false) throws -> (DecodedShard, DecodedShard) {
        let inMemory = try plaintext.withUnsafeBytes { try DecodedShard.decode($0, compact: compact) }
        var onDemand: DecodedShard?
        try ChunkCursorTests.SealedFile(plaintext: plaintext).withCursor { cursor throws in
            var reader = DecryptingReader(cursor: cursor)
            onDemand = try DecodedShard.decode(&reader, columns: nil, compact: compact)
        }
        return (inMemory, onDemand!)
    }

    @Test("version 2 gives back every value of version 1, bit for bit, in memory and decrypted on demand",
          arguments: [(false, false, false), (true, false, false), (false, true, false), (true, true, true)])
    func roundTrip(interleaved: Bool, oddValues: Bool, bigDictionary: Bool) throws {
        let tables = Self.edgeTables(interleaved: interleaved, oddValues: oddValues, bigDictionary: bigDictionary)
        let plain = tables.encode(schemaId: Self.v1), packed = tables.encode(schemaId: Self.v2)
        let reference = try plain.withUnsafeBytes { try DecodedShard.decode($0) }
        #expect(reference.schemaId == Self.v1)
        let (inMemory, onDemand) = try Self.decodeBoth(packed)
        #expect(inMemory.schemaId == Self.v2 && onDemand.schemaId == Self.v2)
        #expect(Self.sameTables(reference, inMemory))
        #expect(Self.sameTables(reference, onDemand))
        let validated = try packed.withUnsafeBytes { try DecodedShard.validate($0) }
        #expect(validated.counts == tables.counts && validated.schemaId == Self.v2)
        #expect(packed.count < plain.count)
        #expect(packed.count <= tables.encodedSizeBound())

        typealias Kind = ColumnarCodec.ColumnKind
        let kinds = try Self.kinds(packed)
        // Patients' rows come in runs unless interleaved, when they are packed in one byte.
        #expect(kinds[.observations]?[0] == (interleaved ? Kind.packedInt32 : Kind.runsInt32).rawValue)
        #expect(kinds[.observations]?[1] == Kind.packedInt64.rawValue)
        #expect(kinds[.observations]?[3] == Kind.narrowDictionary.rawValue)
        // An infinity or a negative zero has no decimal form: the column stays plain.
        #expect(kinds[.observations]?[4] == (oddValues ? Kind.float64 : Kind.decimal).rawValue)
        // A stop time 2^62 seconds away does not fit four bytes: plain.
        #expect(kinds[.medications]?[2] == (oddValues ? Kind.int64 : Kind.packedInt64).rawValue)
        #expect(kinds[.conditions]?[1] == Kind.packedInt64.rawValue)
        #expect(kinds[.patients]?[0] == Kind.fixed.rawValue)

        // Compact: runs, narrow indices and decimals stay as stored and widen to the same values.
        for compact in [try Self.decodeBoth(packed, compact: true).0, try Self.decodeBoth(packed, compact: true).1] {
            #expect(Self.sameTables(reference, compact))
            let observations = try #require(compact.tables[.observations])
            if case .runs(let values, let ends) = observations[0] {
                #expect(!interleaved && values.count == ends.count && ends.last == tables.counts.observations)
            } else {
                #expect(interleaved, "the patient column was widened")
            }
            guard case .packedDictionary(_, let indices) = observations[3] else { Issue.record("codes were widened"); continue }
            #expect(indices.width == 1 && indices.count == tables.counts.observations)
            if case .packedDecimal(let scale, _, let values) = observations[4] {
                #expect(!oddValues && scale == 1 && values.count == tables.counts.observations)
            } else {
                #expect(oddValues, "the values were widened")
            }
            // Version 1 has no compact forms: decoding it compact changes nothing.
            #expect(Self.sameTables(reference, try plain.withUnsafeBytes { try DecodedShard.decode($0, compact: true) }))
        }
    }

    @Test("frames: the all-ones offset is kept for 'no value', whole days pack by their step, and a span too wide for four bytes is refused")
    func frames() {
        #expect(ColumnPacking.frame([Int64](), none: .min) == .init(base: 0, step: 1, width: 1))
        #expect(ColumnPacking.frame([Int64.min, .min], none: .min) == .init(base: 0, step: 1, width: 1))
        #expect(ColumnPacking.frame(Array(0...254) as [Int32], none: .min) == .init(base: 0, step: 1, width: 1))
        #expect(ColumnPacking.frame(Array(0...255) as [Int32], none: .min) == .init(base: 0, step: 1, width: 2))
        #expect(ColumnPacking.frame([-5, 5, 0, Int32.min], none: .min) == .init(base: -5, step: 5, width: 1))
        #expect(ColumnPacking.frame([-5, 5, Int32.min], none: .min) == .init(base: -5, step: 10, width: 1))
        #expect(ColumnPacking.frame([86_400 * 20_000, 86_400 * 100, 86_400 * 7], none: Int64.min) == .init(base: 86_400 * 7, step: 86_400, width: 2))
        #expect(ColumnPacking.frame([0, 1, 4_294_967_294], none: Int64.min) == .init(base: 0, step: 1, width: 4))
        #expect(ColumnPacking.frame([0, 1, 4_294_967_295], none: Int64.min) == nil)
        #expect(ColumnPacking.frame([Int64.max, Int64.min + 1, 0, 1], none: Int64.min) == nil)
        // Two values are always one step apart, however far.
        #expect(ColumnPacking.frame([Int64.max, Int64.min + 1], none: Int64.min) == .init(base: .min + 1, step: .max - 1, width: 1))
        #expect(ColumnPacking.frame([Int32.max, Int32.min + 1, 0, 1], none: Int32.min) == .init(base: Int64(Int32.min) + 1, step: 1, width: 4))
    }

    @Test("decimals: the smallest scale that divides back to the same bits, or none")
    func decimals() {
        #expect(ColumnPacking.decimal([1, 2, .nan]) == .init(scale: 0, base: 1, width: 1))
        #expect(ColumnPacking.decimal([1.5, 2.25, -3]) == .init(scale: 2, base: -300, width: 2))
        #expect(ColumnPacking.decimal([.nan]) == .init(scale: 0, base: 0, width: 1))
        #expect(ColumnPacking.decimal([0.1 + 0.2]) == nil, "0.30000000000000004 needs 17 digits")
        #expect(ColumnPacking.decimal([-0.0]) == nil)
        #expect(ColumnPacking.decimal([.infinity]) == nil)
        #expect(ColumnPacking.decimal([0, 1e12]) == nil, "a span wider than four bytes")
        #expect(ColumnPacking.decimal([0.0001, 1]) == .init(scale: 4, base: 1, width: 2))
        #expect(ColumnPacking.decimal([0.00001]) == nil)
    }

    @Test("generated Synthea data re-encoded as version 2 decodes to the same tables and is at least twice as small as version 1")
    func syntheaSize() throws {
        let dir = TemporaryDirectory("vault")
        let vault = try Vault.initialize(at: dir.path)
        let input = TemporaryDirectory("input")
        _ = try SyntheaGenerator(patients: 60, seed: 4).write(to: URL(fileURLWithPath: input.path))
        _ = try Ingestor(vault: vault).ingest(dataset: "d", format: .syntheaCSV, paths: [input.path], shards: 1, replace: false)
        let manifest = try DatasetCatalog(vault: vault).manifest("d")
        #expect(manifest.schemaId == Self.v2)
        let kek = try vault.keyring.material(dataset: "d", kind: .kek, version: manifest.kek.version)
        let path = vault.layout.datasetDirectory("d") + "/" + manifest.generationDirectory + "/" + manifest.shards[0].file
        let decoded = try ShardReader.decrypt(path: path, expected: ShardExpectation(vaultId: vault.id, dataset: "d", generation: manifest.generation,
                                                                                      shardCount: 1, entry: manifest.shards[0], schemaId: Self.v2), kek: kek)
        let tables = try Self.tables(from: decoded)
        let plain = tables.encode(schemaId: Self.v1), packed = tables.encode(schemaId: Self.v2)
        #expect(ChunkedEncryption.ciphertextLength(plaintextLength: packed.count) + 4096 + 80 == manifest.shards[0].size)
        #expect(Self.sameTables(decoded, try packed.withUnsafeBytes { try DecodedShard.decode($0) }))
        #expect(Self.sameTables(decoded, try plain.withUnsafeBytes { try DecodedShard.decode($0) }))
        #expect(packed.count * 2 < plain.count, "version 2: \(packed.count) bytes, version 1: \(plain.count)")
    }

    /// Rebuilds the tables of a decoded shard, record by record.
    static func tables(from shard: DecodedShard) throws -> ShardTables {
        func column(_ kind: RecordKind, _ i: Int) -> Column { shard.tables[kind]![i] }
        func ints(_ c: Column) -> [Int32] { if case .int32(let v) = c { v } else { [] } }
        func longs(_ c: Column) -> [Int64] { if case .int64(let v) = c { v } else { [] } }
        func strings(_ c: Column) -> [String] { if case .dictionary(let e, let i) = c { i.map { e[Int($0)] } } else { [] } }
        guard case .fixed(16, let bytes) = column(.patients, 0) else { throw VaultError(.software, "no pseudonyms") }
        let pseudonyms = (0..<shard.counts.patients).map { Array(bytes[16 * $0..<16 * $0 + 16]) }
        var tables = ShardTables()
        let (birth, death) = (ints(column(.patients, 1)), ints(column(.patients, 2)))
        let demographics = (3...6).map { strings(column(.patients, $0)) }
        for (i, p) in pseudonyms.enumerated() {
            tables.addPatient(.init(pseudonym: p, birthDate: birth[i], deathDate: death[i], sex: demographics[0][i], race: demographics[1][i],
                                    ethnicity: demographics[2][i], state: demographics[3][i]))
        }
        func who(_ kind: RecordKind) -> [[UInt8]] { ints(column(kind, 0)).map { pseudonyms[Int($0)] } }
        var added = true
        for (i, p) in who(.conditions).enumerated() {
            added = added && tables.add(.condition(pseudonym: p, start: longs(column(.conditions, 1))[i], stop: longs(column(.conditions, 2))[i],
                                                   code: strings(column(.conditions, 3))[i]))
        }
        guard case .float64(let values) = column(.observations, 4) else { throw VaultError(.software, "no values") }
        let (oTime, oCategory, oCode, oUnit, oText) = (longs(column(.observations, 1)), strings(column(.observations, 2)), strings(column(.observations, 3)),
                                                      strings(column(.observations, 5)), strings(column(.observations, 6)))
        for (i, p) in who(.observations).enumerated() {
            added = added && tables.add(.observation(pseudonym: p, time: oTime[i], category: oCategory[i], code: oCode[i], value: values[i],
                                                     unit: oUnit[i], text: oText[i]))
        }
        let (mStart, mStop, mCode) = (longs(column(.medications, 1)), longs(column(.medications, 2)), strings(column(.medications, 3)))
        for (i, p) in who(.medications).enumerated() {
            added = added && tables.add(.medication(pseudonym: p, start: mStart[i], stop: mStop[i], code: mCode[i]))
        }
        let (eStart, eStop, eClass, eCode) = (longs(column(.encounters, 1)), longs(column(.encounters, 2)), strings(column(.encounters, 3)),
                                              strings(column(.encounters, 4)))
        for (i, p) in who(.encounters).enumerated() {
            added = added && tables.add(.encounter(pseudonym: p, start: eStart[i], stop: eStop[i], encounterClass: eClass[i], code: eCode[i]))
        }
        for (i, p) in who(.procedures).enumerated() {
            added = added && tables.add(.procedure(pseudonym: p, start: longs(column(.procedures, 1))[i], code: strings(column(.procedures, 2))[i]))
        }
        for (i, p) in who(.immunizations).enumerated() {
            added = added && tables.add(.immunization(pseudonym: p, time: longs(column(.immunizations, 1))[i], code: strings(column(.immunizations, 2))[i]))
        }
        guard added else { throw VaultError(.software, "a record's patient is missing") }
        return tables
    }

    @Test("the largest packed value, with and without the all-ones 'none', equals a plain scan", arguments: [1, 2, 4])
    func largestPacked(width: Int) {
        var random = CSVBlockTests.Random(state: UInt64(width))
        let none = ColumnarCodec.noneOffset(width: width)
        for trial in 0..<50 {
            let count = trial % 7 == 0 ? trial / 7 : 1 + Int(random.next() % 300)
            let values: [UInt64] = (0..<count).map { _ in
                let r = random.next()
                return trial % 5 == 0 || r % 4 == 0 ? none : r % (trial % 3 == 0 ? 3 : none + 1)
            }
            let bytes = values.flatMap { v in (0..<width).map { UInt8(truncatingIfNeeded: v >> (8 * UInt64($0))) } }
            bytes.withUnsafeBytes { raw in
                #expect(PackedIntegers.largest(raw, width: width, skippingNone: true) == values.filter { $0 != none }.max() ?? 0)
                #expect(PackedIntegers.largest(raw, width: width, skippingNone: false) == values.max() ?? 0)
            }
        }
    }

    @Test("a malformed packed column is refused with what is wrong, in memory, when validated and when decrypted on demand")
    func malformed() throws {
        typealias Kind = ColumnarCodec.ColumnKind
        let (le32, le64) = (Self.le32, Self.le64)
        /// A version 2 plaintext of one patients table of `rows` rows and one column.
        func table(_ column: [UInt8], rows: UInt32 = 2, version: ColumnarCodec.Version = .v2) -> [UInt8] {
            version.magic + le32(1) + [RecordKind.patients.rawValue] + le32(rows) + le32(1) + column
        }
        func packed(_ kind: Kind, base: Int64, step: UInt64, width: UInt8, _ offsets: [UInt8]) -> [UInt8] {
            [kind.rawValue] + le64(UInt64(17 + offsets.count)) + le64(UInt64(bitPattern: base)) + le64(step) + [width] + offsets
        }
        let cases: [([UInt8], String)] = [
            (table(packed(.packedInt32, base: 0, step: 1, width: 3, [0, 0, 0, 0, 0, 0])), "packed integer column has a width of 3 bytes"),
            (table(packed(.packedInt32, base: 0, step: 0, width: 1, [0, 1])), "packed integer column has a step of 0"),
            (table(packed(.packedInt32, base: 0, step: 1, width: 1, [0, 1, 2])), "packed integer column of 20 bytes does not hold 2 values of 1 bytes"),
            (table(packed(.packedInt32, base: Int64(Int32.max) + 1, step: 1, width: 1, [0, 1])), "packed integer column's base 2147483648 is out of range"),
            (table(packed(.packedInt32, base: Int64(Int32.max) - 1, step: 1, width: 1, [1, 2])), "packed integer column holds a value out of range"),
            (table(packed(.packedInt64, base: Int64.max - 100, step: 1 << 40, width: 1, [0, 1])), "packed integer column holds a value out of range"),
            (table([Kind.packedInt64.rawValue] + le64(3) + [0, 0, 0]), "packed integer column of 3 bytes has no frame"),
            (table([Kind.runsInt32.rawValue] + le64(12) + le32(1) + le32(5) + le32(3)), "run column's runs do not add up to 2 rows"),
            (table([Kind.runsInt32.rawValue] + le64(20) + le32(2) + le32(5) + le32(0) + le32(6) + le32(2)), "run column's runs do not add up to 2 rows"),
            (table([Kind.runsInt32.rawValue] + le64(12) + le32(1) + le32(5) + le32(1)), "run column's runs do not add up to 2 rows"),
            (table([Kind.runsInt32.rawValue] + le64(28) + le32(3) + le32(5) + le32(1) + le32(6) + le32(1) + le32(7) + le32(1)),
             "run column of 28 bytes does not hold 3 runs over 2 rows"),
            (table([Kind.narrowDictionary.rawValue] + le64(12) + le32(1) + le32(1) + [0x61] + [1] + [0, 1]), "dictionary index out of range"),
            (table([Kind.narrowDictionary.rawValue] + le64(12) + le32(1) + le32(1) + [0x61] + [8] + [0, 0]), "packed dictionary column has a width of 8 bytes"),
            (table([Kind.decimal.rawValue] + le64(12) + [10] + le64(0) + [1] + [0, 1]), "decimal column has a scale of 10"),
            (table([Kind.decimal.rawValue] + le64(12) + [1] + le64(UInt64(Int64.max)) + [1] + [0, 1]), "decimal column holds a value out of range"),
            (table(packed(.packedInt32, base: 0, step: 1, width: 1, [0, 1]), version: .v1), "column kind 6 is not part of shardvault.clinical.v1"),
        ]
        for (plaintext, message) in cases {
            func expected(_ error: any Error) -> Bool { (error as? VaultError)?.code == .dataError && (error as? VaultError)?.message == message }
            #expect { try plaintext.withUnsafeBytes { try DecodedShard.validate($0) } } throws: { expected($0) }
            for compact in [false, true] {
                #expect { try plaintext.withUnsafeBytes { try DecodedShard.decode($0, compact: compact) } } throws: { expected($0) }
                try ChunkCursorTests.SealedFile(plaintext: plaintext).withCursor { cursor throws in
                    var reader = DecryptingReader(cursor: cursor)
                    #expect { try DecodedShard.decode(&reader, columns: nil, compact: compact) } throws: { expected($0) }
                }
            }
        }
    }

    @Test("a version 1 shard still opens; a plaintext whose encoding is not the one its header names is refused")
    func versions() throws {
        let tables = Self.edgeTables(interleaved: false, oddValues: false, bigDictionary: false)
        for (header, plaintext) in [(Self.v1, tables.encode(schemaId: Self.v1)), (Self.v2, tables.encode(schemaId: Self.v2))] {
            let dir = TemporaryDirectory()
            let (_, expected, kek, signing) = try ShardFormatTests.sealSample(in: dir.path, plaintext: plaintext, schemaId: header)
            let path = dir.path + "/" + expected.entry.file
            let decoded = try ShardReader.decrypt(path: path, expected: expected, kek: kek, signingKey: signing)
            #expect(decoded.schemaId == header && decoded.counts == tables.counts)
            try ShardReader.verifyDeep(path: path, expected: expected, kek: kek, signingKey: signing)
            let columns = try ShardReader.decryptColumns(path: path, expected: expected, key: .kek(kek), signingKey: signing,
                                                         columns: [.observations: [0, 4]])
            #expect(Self.same(columns.tables[.observations]![4], decoded.tables[.observations]![4]))
        }
        // Sealed as version 1 but encoded as version 2 (and the other way round).
        for (header, plaintext) in [(Self.v1, tables.encode(schemaId: Self.v2)), (Self.v2, tables.encode(schemaId: Self.v1))] {
            let dir = TemporaryDirectory()
            let (_, expected, kek, signing) = try ShardFormatTests.sealSample(in: dir.path, plaintext: plaintext, schemaId: header)
            let path = dir.path + "/" + expected.entry.file
            let other = header == Self.v1 ? Self.v2 : Self.v1
            let message = "plaintext is encoded as \(other) but the header names \(header)"
            func expectedError(_ error: any Error) -> Bool { (error as? VaultError)?.message == message && (error as? VaultError)?.location == path }
            #expect { try ShardReader.decrypt(path: path, expected: expected, kek: kek, signingKey: signing) } throws: { expectedError($0) }
            #expect { try ShardReader.verifyDeep(path: path, expected: expected, kek: kek, signingKey: signing) } throws: { expectedError($0) }
            #expect { try ShardReader.decryptColumns(path: path, expected: expected, key: .kek(kek), signingKey: signing, columns: [:]) }
                throws: { expectedError($0) }
        }
    }
}
