#if canImport(Glibc)
import Glibc
#endif

/// A streaming RFC 4180 CSV reader over bytes: quoted fields, doubled quotes, newlines
/// inside quotes, CRLF. Reads the file in blocks so memory stays bounded.
final class CSVReader {
    let path: String
    private let fd: Int32
    private var buffer: [UInt8]
    private var start = 0
    private var end = 0
    private var eof = false
    /// Line number (1-based) where the current record starts.
    private(set) var line = 0
    private var nextLine = 1
    /// Field boundaries of the current record, into `fieldBytes`.
    private(set) var fields: [Range<Int>] = []
    private(set) var fieldBytes: [UInt8] = []

    init(path: String, blockSize: Int = 4 << 20) throws {
        self.path = path
        fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw VaultError.system(errno == ENOENT ? .noInput : .ioError, "cannot open input file", path: path, errno: errno)
        }
        buffer = [UInt8](repeating: 0, count: blockSize)
    }

    /// A reader of records already in memory (a block from `CSVBlockReader`), whose first
    /// record starts on line `firstLine`.
    init(bytes: [UInt8], path: String, firstLine: Int) {
        self.path = path
        fd = -1
        buffer = bytes
        end = bytes.count
        eof = true
        nextLine = firstLine
    }

    deinit { if fd >= 0 { close(fd) } }

    /// The reader's buffer, for reuse once it is done.
    func takeBuffer() -> [UInt8] {
        var taken: [UInt8] = []
        swap(&taken, &buffer)
        start = 0
        end = 0
        return taken
    }

    private func fill() throws -> Bool {
        if eof { return false }
        if start > 0 {
            let remaining = end - start
            if remaining > 0 {
                buffer.withUnsafeMutableBytes { b in
                    (b.baseAddress!).copyMemory(from: b.baseAddress! + start, byteCount: remaining)
                }
            }
            end = remaining
            start = 0
        }
        if end == buffer.count { buffer.append(contentsOf: [UInt8](repeating: 0, count: buffer.count)) }
        let n = buffer.withUnsafeMutableBytes { b in read(fd, b.baseAddress! + end, b.count - end) }
        if n < 0 { throw VaultError.system(.ioError, "read failed", path: path, errno: errno) }
        if n == 0 { eof = true; return false }
        end += n
        return true
    }

    /// Reads the next record into `fields`. Returns false at end of file.
    func next() throws -> Bool {
        // Work on local copies so the hot loop touches no class properties.
        var fb: [UInt8] = []
        var fr: [Range<Int>] = []
        swap(&fb, &fieldBytes)
        swap(&fr, &fields)
        defer {
            swap(&fb, &fieldBytes)
            swap(&fr, &fields)
        }
        while true {
            fb.removeAll(keepingCapacity: true)
            fr.removeAll(keepingCapacity: true)
            if start >= end {
                if !(try fill()) { return false }
            }
            var outcome = buffer.withUnsafeBufferPointer { b in
                Self.parseRecord(b, from: start, to: end, atEOF: eof, fields: &fr, bytes: &fb)
            }
            if case .needMore = outcome {
                guard !(try fill()) else { continue }
                // End of file inside the record: parse what there is as the last record.
                fb.removeAll(keepingCapacity: true)
                fr.removeAll(keepingCapacity: true)
                outcome = buffer.withUnsafeBufferPointer { b in
                    Self.parseRecord(b, from: start, to: end, atEOF: true, fields: &fr, bytes: &fb)
                }
            }
            guard case .complete(let next, let newlines) = outcome else {
                throw VaultError(.dataError, "unterminated quoted field", location: VaultError.at(path, line: nextLine))
            }
            line = nextLine
            nextLine += newlines
            start = next
            return true
        }
    }

    enum ParseOutcome {
        /// A record ended; the next starts at this offset; the record spanned `newlines` lines.
        case complete(next: Int, newlines: Int)
        case needMore
        case unterminatedQuote
    }

    /// Parses one record from `b[from..<to]`. Unquoted fields are copied in bulk; quoted
    /// fields byte by byte (doubled quotes collapse). At end of file, a record may end
    /// without a newline.
    static func parseRecord(_ b: UnsafeBufferPointer<UInt8>, from: Int, to: Int, atEOF: Bool,
                            fields: inout [Range<Int>], bytes: inout [UInt8]) -> ParseOutcome {
        var i = from
        var newlines = 0
        while true {
            let fieldStart = bytes.count
            if i < to && b[i] == 34 {
                // Quoted field.
                i += 1
                while true {
                    guard i < to else { return atEOF ? .unterminatedQuote : .needMore }
                    let c = b[i]
                    if c == 34 {
                        guard i + 1 < to else {
                            if !atEOF { return .needMore }
                            i += 1
                            break
                        }
                        if b[i + 1] == 34 { bytes.append(34); i += 2; continue }
                        i += 1
                        break
                    }
                    if c == 10 { newlines += 1 }
                    bytes.append(c)
                    i += 1
                }
                // After the closing quote: up to the separator (anything else is kept as is).
                while i < to && b[i] != 44 && b[i] != 10 {
                    if !(b[i] == 13 && i + 1 < to && b[i + 1] == 10) { bytes.append(b[i]) }
                    i += 1
                }
            } else {
                var j = i
                while j < to {
                    let c = b[j]
                    if c == 44 || c == 10 { break }
                    j += 1
                }
                var stop = j
                if j < to && b[j] == 10 && stop > i && b[stop - 1] == 13 { stop -= 1 }
                if stop > i { bytes.append(contentsOf: UnsafeBufferPointer(rebasing: b[i..<stop])) }
                i = j
            }
            fields.append(fieldStart..<bytes.count)
            if i >= to {
                guard atEOF else { return .needMore }
                return .complete(next: i, newlines: newlines + 1)
            }
            if b[i] == 10 { return .complete(next: i + 1, newlines: newlines + 1) }
            i += 1 // comma
            if i >= to && !atEOF { return .needMore }
        }
    }

    func string(_ index: Int) -> String {
        String(decoding: fieldBytes[fields[index]], as: UTF8.self)
    }

    /// Calls `body` with the bytes of field `index`, in place.
    func withField<R>(_ index: Int, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        let range = fields[index]
        return try fieldBytes.withUnsafeBytes { try body(UnsafeRawBufferPointer(rebasing: $0[range])) }
    }

    /// Appends field `index` as a u32 length and its UTF-8 bytes, as `SpillCodec.string`
    /// writes a `String`: bytes that are not UTF-8 are replaced as `string(_:)` replaces them.
    func appendField(_ index: Int, to w: inout LittleEndianWriter) {
        withField(index) { field in
            var high: UInt8 = 0
            for b in field { high |= b }
            if high < 0x80 {
                w.u32(UInt32(field.count))
                w.bytes.append(contentsOf: field)
            } else {
                SpillCodec.string(String(decoding: field, as: UTF8.self), &w)
            }
        }
    }

    func isEmpty(_ index: Int) -> Bool { fields[index].isEmpty }
}

/// Parsing of dates and times into the internal representation.
enum ClinicalTime {
    /// Days since 1970-01-01 of a proleptic Gregorian date.
    static func days(year: Int, month: Int, day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = (month + 9) % 12
        let doy = (153 * mp + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    /// Year, month and day of a day number (days since 1970-01-01), proleptic Gregorian.
    static func civil(fromDays days: Int) -> (year: Int, month: Int, day: Int) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (m <= 2 ? 1 : 0), m, d)
    }

    static func daysInMonth(year: Int, month: Int) -> Int {
        switch month {
        case 2: return (year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)) ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }

    /// Parses `YYYY-MM-DD`, `YYYY-MM-DDTHH:MM[:SS[.fff]](Z|±HH:MM)`, or a FHIR partial
    /// date (`YYYY`, `YYYY-MM`). Returns seconds since the epoch (UTC), or nil.
    static func seconds<C: Collection>(_ text: C) -> Int64? where C.Element == UInt8 {
        if let parsed = text.withContiguousStorageIfAvailable({ seconds(bytes: UnsafeRawBufferPointer($0)) }) { return parsed }
        return Array(text).withUnsafeBytes { seconds(bytes: $0) }
    }

    private static func seconds(bytes b: UnsafeRawBufferPointer) -> Int64? {
        func num(_ from: Int, _ count: Int) -> Int? {
            guard from + count <= b.count else { return nil }
            var v = 0
            for i in from..<from + count {
                let c = b[i]
                guard c >= 48 && c <= 57 else { return nil }
                v = v * 10 + Int(c - 48)
            }
            return v
        }
        guard let year = num(0, 4) else { return nil }
        var month = 1, day = 1
        if b.count == 4 { return Int64(days(year: year, month: 1, day: 1)) * 86_400 }
        guard b.count >= 7, b[4] == 45, let m = num(5, 2), (1...12).contains(m) else { return nil }
        month = m
        if b.count == 7 { return Int64(days(year: year, month: month, day: 1)) * 86_400 }
        guard b.count >= 10, b[7] == 45, let d = num(8, 2), (1...daysInMonth(year: year, month: month)).contains(d) else { return nil }
        day = d
        var total = Int64(days(year: year, month: month, day: day)) * 86_400
        if b.count == 10 { return total }
        guard b[10] == 84 || b[10] == 32, let hh = num(11, 2), b.count >= 16, b[13] == 58, let mm = num(14, 2), hh < 24, mm < 60 else { return nil }
        total += Int64(hh * 3600 + mm * 60)
        var i = 16
        if i < b.count && b[i] == 58 {
            guard let ss = num(i + 1, 2), ss < 61 else { return nil }
            total += Int64(ss)
            i += 3
            if i < b.count && b[i] == 46 {
                i += 1
                while i < b.count && b[i] >= 48 && b[i] <= 57 { i += 1 }
            }
        }
        if i == b.count { return total }
        if b[i] == 90 && i + 1 == b.count { return total }
        guard b[i] == 43 || b[i] == 45, let oh = num(i + 1, 2), b.count == i + 6, b[i + 3] == 58, let om = num(i + 4, 2) else { return nil }
        let offset = Int64(oh * 3600 + om * 60)
        return b[i] == 43 ? total - offset : total + offset
    }

    static func days<C: Collection>(_ text: C) -> Int32? where C.Element == UInt8 {
        guard let s = seconds(text) else { return nil }
        return Int32((s - (s % 86_400 + 86_400) % 86_400) / 86_400)
    }
}
