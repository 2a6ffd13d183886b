import VaultCrypto
#if canImport(Glibc)
import Glibc
#endif

/// Per-shard staging files for ingest, so memory stays bounded whatever the input size.
/// Records are serialised, buffered, and sealed with AES-256-GCM under a key that lives
/// only in memory for the length of one ingest: no plaintext reaches the disk, and the
/// files are unreadable once the process ends. Each block: u32 length, then
/// ciphertext || tag; nonce = u32 shard || u64 block counter.
final class SpillWriter {
    let path: String
    private let writer: BufferedFileWriter
    private let gcm: AESGCM
    private let shard: UInt32
    private var counter: UInt64 = 0
    private var pending = LittleEndianWriter(capacity: (256 << 10) + (64 << 10))
    /// Small buffers: an ingest holds one per shard, so memory stays bounded as shards multiply.
    private let blockLimit = 256 << 10

    init(path: String, key: SecureBytes, shard: Int) throws {
        self.path = path
        writer = try BufferedFileWriter(creating: path, mode: 0o600, capacity: 64 << 10)
        gcm = try AESGCM(key: key)
        self.shard = UInt32(shard)
    }

    static func nonce(shard: UInt32, counter: UInt64) -> [UInt8] {
        var w = CanonicalWriter()
        w.u32(shard)
        w.u64(counter)
        return w.bytes
    }

    func append(_ record: ClinicalRecord, source: Int, line: Int) throws {
        SpillCodec.encode(record, source: source, line: line, into: &pending)
        if pending.bytes.count >= blockLimit { try seal() }
    }

    /// Appends a record already encoded by `SpillCodec`'s layout.
    func append(encoded: UnsafeRawBufferPointer) throws {
        pending.bytes.append(contentsOf: encoded)
        if pending.bytes.count >= blockLimit { try seal() }
    }

    private func seal() throws {
        guard !pending.bytes.isEmpty else { return }
        let sealed = try gcm.seal(nonce: Self.nonce(shard: shard, counter: counter), plaintext: pending.bytes)
        counter += 1
        secureWipe(&pending.bytes)
        pending.bytes.removeAll(keepingCapacity: true)
        var length = CanonicalWriter()
        length.u32(UInt32(sealed.count))
        try writer.write(length.bytes)
        try writer.write(sealed)
    }

    func finish() throws {
        try seal()
        try writer.flush()
    }
}

/// The fixed part of a spilled record; `pseudonym` points into the decrypted block and is
/// valid only during the call that receives it.
struct SpilledHeader {
    let kind: RecordKind
    let source: Int
    let line: Int
    let pseudonym: UnsafeRawBufferPointer
}

/// Reads a spill file back, block by block.
enum SpillReader {
    /// Calls `body` with each record's header and a reader at the start of its body, which
    /// `body` must read through (`ShardTables.addSpilled`) or skip (`SpillCodec.skipBody`).
    /// Each block is decrypted once and wiped after use; no `ClinicalRecord` is made.
    static func forEachRecord(path: String, key: SecureBytes, shard: Int,
                              _ body: (SpilledHeader, inout LittleEndianReader) throws -> Void) throws {
        let bytes = try FileIO.readAll(path, missing: .ioError)
        let gcm = try AESGCM(key: key)
        var offset = 0
        var counter: UInt64 = 0
        while offset < bytes.count {
            var r = CanonicalReader(bytes, offset: offset)
            let length = Int(try r.u32("spill block length"))
            guard offset + 4 + length <= bytes.count else { throw VaultError(.ioError, "staging file is truncated", location: path) }
            let block: SecureBytes
            do {
                block = try gcm.open(nonce: SpillWriter.nonce(shard: UInt32(shard), counter: counter),
                                     sealed: Array(bytes[offset + 4..<offset + 4 + length]))
            } catch {
                throw VaultError(.ioError, "staging file failed authentication (modified while ingest ran)", location: path)
            }
            counter += 1
            offset += 4 + length
            do {
                try block.withUnsafeBytes { raw in
                    var reader = LittleEndianReader(raw)
                    while reader.remaining > 0 {
                        let kindByte = try reader.u8()
                        guard let kind = RecordKind(rawValue: kindByte) else { throw VaultError(.ioError, "staging file is corrupt", location: path) }
                        let source = Int(try reader.u32())
                        let line = Int(try reader.u64())
                        let pseudonym = try reader.slice(16)
                        try body(SpilledHeader(kind: kind, source: source, line: line, pseudonym: pseudonym), &reader)
                    }
                }
            } catch let error as VaultError where error.location == nil && error.code == .dataError {
                // The reader's own errors ("plaintext truncated at byte N") name no file.
                throw VaultError(.ioError, "staging file is corrupt: \(error.message)", location: path)
            }
        }
    }
}

extension LittleEndianReader {
    /// The next `n` bytes, in place.
    mutating func slice(_ n: Int) throws -> UnsafeRawBufferPointer {
        try need(n)
        defer { offset += n }
        return UnsafeRawBufferPointer(rebasing: bytes[offset..<offset + n])
    }

    /// A u32 length, then that many bytes, in place.
    mutating func lengthPrefixed() throws -> UnsafeRawBufferPointer { try slice(Int(try u32())) }
}

extension ShardTables {
    /// Adds a spilled patient from its body. Returns false if the patient is already present.
    mutating func addSpilledPatient(pseudonym: UnsafeRawBufferPointer, _ r: inout LittleEndianReader) throws -> Bool {
        guard let key = PseudonymKey(pseudonym) else { throw VaultError(.dataError, "a pseudonym is not 16 bytes") }
        let birth = Int32(bitPattern: try r.u32()), death = Int32(bitPattern: try r.u32())
        guard patientRow[key] == nil else {
            for _ in 0..<4 { _ = try r.lengthPrefixed() }
            return false
        }
        patientRow[key] = Int32(self.birth.count)
        pseudonyms.append(contentsOf: pseudonym)
        self.birth.append(birth)
        self.death.append(death)
        sex.append(try r.lengthPrefixed())
        race.append(try r.lengthPrefixed())
        ethnicity.append(try r.lengthPrefixed())
        state.append(try r.lengthPrefixed())
        return true
    }

    /// The row of a patient added before, if any.
    func row(of pseudonym: UnsafeRawBufferPointer) -> Int32? { PseudonymKey(pseudonym).flatMap { patientRow[$0] } }

    /// Adds a spilled non-patient record of patient `row` from its body, in the order
    /// `SpillCodec.encode` wrote it.
    mutating func addSpilled(_ kind: RecordKind, row: Int32, _ r: inout LittleEndianReader) throws {
        func time() throws -> Int64 { Int64(bitPattern: try r.u64()) }
        switch kind {
        case .patients:
            throw VaultError(.software, "a patient record is not added by row")
        case .conditions:
            conditionPatient.append(row); conditionStart.append(try time()); conditionStop.append(try time())
            conditionCode.append(try r.lengthPrefixed())
        case .medications:
            medicationPatient.append(row); medicationStart.append(try time()); medicationStop.append(try time())
            medicationCode.append(try r.lengthPrefixed())
        case .observations:
            observationPatient.append(row); observationTime.append(try time())
            observationCategory.append(try r.lengthPrefixed()); observationCode.append(try r.lengthPrefixed())
            observationValue.append(Double(bitPattern: try r.u64()))
            observationUnit.append(try r.lengthPrefixed()); observationText.append(try r.lengthPrefixed())
        case .encounters:
            encounterPatient.append(row); encounterStart.append(try time()); encounterStop.append(try time())
            encounterClass.append(try r.lengthPrefixed()); encounterCode.append(try r.lengthPrefixed())
        case .procedures:
            procedurePatient.append(row); procedureStart.append(try time()); procedureCode.append(try r.lengthPrefixed())
        case .immunizations:
            immunizationPatient.append(row); immunizationTime.append(try time()); immunizationCode.append(try r.lengthPrefixed())
        }
    }
}

enum SpillCodec {
    static func string(_ s: String, _ w: inout LittleEndianWriter) {
        var s = s
        s.withUTF8 { utf8 in
            w.u32(UInt32(utf8.count))
            w.bytes.append(contentsOf: utf8)
        }
    }

    /// A record's fixed part: kind, source file, line, pseudonym.
    static func header(_ kind: RecordKind, source: Int, line: Int, pseudonym: [UInt8], into w: inout LittleEndianWriter) {
        w.u8(kind.rawValue)
        w.u32(UInt32(source))
        w.u64(UInt64(line))
        w.raw(pseudonym)
    }

    static func encode(_ record: ClinicalRecord, source: Int, line: Int, into w: inout LittleEndianWriter) {
        header(record.kind, source: source, line: line, pseudonym: record.pseudonym, into: &w)
        switch record {
        case .patient(let p):
            w.u32(UInt32(bitPattern: p.birthDate)); w.u32(UInt32(bitPattern: p.deathDate))
            string(p.sex, &w); string(p.race, &w); string(p.ethnicity, &w); string(p.state, &w)
        case let .condition(_, start, stop, code), let .medication(_, start, stop, code):
            w.u64(UInt64(bitPattern: start)); w.u64(UInt64(bitPattern: stop)); string(code, &w)
        case let .observation(_, time, category, code, value, unit, text):
            w.u64(UInt64(bitPattern: time)); string(category, &w); string(code, &w); w.u64(value.bitPattern)
            string(unit, &w); string(text, &w)
        case let .encounter(_, start, stop, cls, code):
            w.u64(UInt64(bitPattern: start)); w.u64(UInt64(bitPattern: stop)); string(cls, &w); string(code, &w)
        case let .procedure(_, time, code), let .immunization(_, time, code):
            w.u64(UInt64(bitPattern: time)); string(code, &w)
        }
    }

    /// Skips a record's body, as `ShardTables.addSpilled` would read it.
    static func skipBody(_ kind: RecordKind, _ r: inout LittleEndianReader) throws {
        switch kind {
        case .patients: _ = try r.slice(8); for _ in 0..<4 { _ = try r.lengthPrefixed() }
        case .conditions, .medications: _ = try r.slice(16); _ = try r.lengthPrefixed()
        case .observations:
            _ = try r.slice(8); _ = try r.lengthPrefixed(); _ = try r.lengthPrefixed()
            _ = try r.slice(8); _ = try r.lengthPrefixed(); _ = try r.lengthPrefixed()
        case .encounters: _ = try r.slice(16); _ = try r.lengthPrefixed(); _ = try r.lengthPrefixed()
        case .procedures, .immunizations: _ = try r.slice(8); _ = try r.lengthPrefixed()
        }
    }
}
