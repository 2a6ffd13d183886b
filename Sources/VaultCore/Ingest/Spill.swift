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

/// Reads a spill file back, block by block.
enum SpillReader {
    static func forEach(path: String, key: SecureBytes, shard: Int, _ body: (ClinicalRecord, Int, Int) throws -> Void) throws {
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
            try block.withUnsafeBytes { raw in
                var reader = LittleEndianReader(raw)
                while reader.remaining > 0 {
                    let (record, source, line) = try SpillCodec.decode(&reader)
                    try body(record, source, line)
                }
            }
        }
    }
}

enum SpillCodec {
    static func string(_ s: String, _ w: inout LittleEndianWriter) {
        let utf8 = Array(s.utf8)
        w.u32(UInt32(utf8.count))
        w.raw(utf8)
    }

    static func readString(_ r: inout LittleEndianReader) throws -> String {
        let n = Int(try r.u32())
        return String(decoding: try r.raw(n), as: UTF8.self)
    }

    static func encode(_ record: ClinicalRecord, source: Int, line: Int, into w: inout LittleEndianWriter) {
        w.u8(record.kind.rawValue)
        w.u32(UInt32(source))
        w.u64(UInt64(line))
        w.raw(record.pseudonym)
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

    static func decode(_ r: inout LittleEndianReader) throws -> (ClinicalRecord, Int, Int) {
        let kindByte = try r.u8()
        guard let kind = RecordKind(rawValue: kindByte) else { throw VaultError(.ioError, "staging file is corrupt") }
        let source = Int(try r.u32())
        let line = Int(try r.u64())
        let p = try r.raw(16)
        let record: ClinicalRecord
        switch kind {
        case .patients:
            let birth = Int32(bitPattern: try r.u32()), death = Int32(bitPattern: try r.u32())
            record = .patient(.init(pseudonym: p, birthDate: birth, deathDate: death, sex: try readString(&r), race: try readString(&r),
                                    ethnicity: try readString(&r), state: try readString(&r)))
        case .conditions, .medications:
            let start = Int64(bitPattern: try r.u64()), stop = Int64(bitPattern: try r.u64())
            let code = try readString(&r)
            record = kind == .conditions ? .condition(pseudonym: p, start: start, stop: stop, code: code)
                : .medication(pseudonym: p, start: start, stop: stop, code: code)
        case .observations:
            let time = Int64(bitPattern: try r.u64())
            let category = try readString(&r), code = try readString(&r)
            let value = Double(bitPattern: try r.u64())
            record = .observation(pseudonym: p, time: time, category: category, code: code, value: value, unit: try readString(&r), text: try readString(&r))
        case .encounters:
            let start = Int64(bitPattern: try r.u64()), stop = Int64(bitPattern: try r.u64())
            record = .encounter(pseudonym: p, start: start, stop: stop, encounterClass: try readString(&r), code: try readString(&r))
        case .procedures, .immunizations:
            let time = Int64(bitPattern: try r.u64())
            let code = try readString(&r)
            record = kind == .procedures ? .procedure(pseudonym: p, start: time, code: code) : .immunization(pseudonym: p, time: time, code: code)
        }
        return (record, source, line)
    }
}
