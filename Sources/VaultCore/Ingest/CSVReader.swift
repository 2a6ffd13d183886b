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

    deinit { close(fd) }

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
        fields.removeAll(keepingCapacity: true)
        fieldBytes.removeAll(keepingCapacity: true)
        // Skip nothing: blank lines are records with one empty field, reported by callers.
        if start >= end { if !(try fill()) { return false } }
        line = nextLine
        var fieldStart = 0
        var inQuotes = false
        var i = start
        while true {
            if i >= end {
                let consumed = i - start
                let had = try fill()
                i = start + consumed
                if !had {
                    if inQuotes { throw VaultError(.dataError, "unterminated quoted field", location: VaultError.at(path, line: line)) }
                    // Last record without a newline.
                    if i > start || !fieldBytes.isEmpty || !fields.isEmpty {
                        fields.append(fieldStart..<fieldBytes.count)
                        start = i
                        return true
                    }
                    return false
                }
                continue
            }
            let c = buffer[i]
            if inQuotes {
                if c == 34 {
                    if i + 1 >= end {
                        let consumed = i - start
                        _ = try fill()
                        i = start + consumed
                    }
                    if i + 1 < end && buffer[i + 1] == 34 {
                        fieldBytes.append(34)
                        i += 2
                        continue
                    }
                    inQuotes = false
                    i += 1
                    continue
                }
                if c == 10 { nextLine += 1 }
                fieldBytes.append(c)
                i += 1
                continue
            }
            switch c {
            case 44: // ,
                fields.append(fieldStart..<fieldBytes.count)
                fieldStart = fieldBytes.count
                i += 1
            case 10: // \n
                var fieldEnd = fieldBytes.count
                // A CR right before the newline, outside quotes, ends the line (CRLF).
                if i > start && buffer[i - 1] == 13 && fieldEnd > fieldStart && fieldBytes[fieldEnd - 1] == 13 {
                    fieldEnd -= 1
                    fieldBytes.removeLast()
                }
                fields.append(fieldStart..<fieldEnd)
                start = i + 1
                nextLine += 1
                return true
            case 34 where fieldBytes.count == fieldStart:
                inQuotes = true
                i += 1
            default:
                fieldBytes.append(c)
                i += 1
            }
        }
    }

    func string(_ index: Int) -> String {
        String(decoding: fieldBytes[fields[index]], as: UTF8.self)
    }

    func bytes(_ index: Int) -> ArraySlice<UInt8> { fieldBytes[fields[index]] }

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

    /// Parses `YYYY-MM-DD`, `YYYY-MM-DDTHH:MM[:SS[.fff]](Z|±HH:MM)`, or a FHIR partial
    /// date (`YYYY`, `YYYY-MM`). Returns seconds since the epoch (UTC), or nil.
    static func seconds<C: Collection>(_ text: C) -> Int64? where C.Element == UInt8 {
        let b = Array(text)
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
        guard b.count >= 10, b[7] == 45, let d = num(8, 2), (1...31).contains(d) else { return nil }
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
