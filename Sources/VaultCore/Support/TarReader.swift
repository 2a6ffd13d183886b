/// A tar archive that cannot be read: what is wrong, the byte offset of the offending
/// header or data, and the entry's name when it is known.
public struct TarError: Error, CustomStringConvertible, Sendable, Equatable {
    public let message: String
    /// Byte offset in the tar stream of the header (or data) at fault.
    public let offset: Int
    public let entryName: String?

    public init(_ message: String, offset: Int, entryName: String? = nil) {
        self.message = message
        self.offset = offset
        self.entryName = entryName
    }

    public var description: String {
        if let entryName { return "tar entry '\(entryName)' at byte \(offset): \(message)" }
        return "tar archive at byte \(offset): \(message)"
    }
}

/// One regular file or directory in a tar archive.
public struct TarEntry: Sendable {
    /// The full path, from a pax `path` record, a GNU long name, or the ustar prefix and name.
    public let name: String
    public let isDirectory: Bool
    /// The file's bytes, sharing the archive's storage (empty for a directory).
    public let contents: ArraySlice<UInt8>
    /// Byte offset of the entry's own header in the archive.
    public let headerOffset: Int
}

/// Iterates the entries of a POSIX ustar, pax or GNU tar archive held in memory.
///
/// Regular files and directories are returned. GNU long names ('L') and pax extended
/// headers ('x': the `path` and `size` records) apply to the entry that follows; global pax
/// headers ('g'), GNU long link names ('K'), links, devices and FIFOs are skipped. Sparse
/// and multi-volume entries are refused. Every header's checksum is verified, and the
/// archive must end with its end marker (two zero blocks, or one at the very end).
public struct TarReader {
    static let blockSize = 512

    private let tar: [UInt8]
    private var offset = 0
    private var ended = false

    public init(_ tar: [UInt8]) {
        self.tar = tar
    }

    /// All regular files and directories, in archive order.
    public static func entries(_ tar: [UInt8]) throws -> [TarEntry] {
        var reader = TarReader(tar)
        var result: [TarEntry] = []
        while let entry = try reader.next() { result.append(entry) }
        return result
    }

    /// The next regular file or directory, or nil after the end marker.
    public mutating func next() throws -> TarEntry? {
        guard !ended else { return nil }
        var longName: String?
        var paxPath: String?
        var paxSize: Int?
        while true {
            let headerOffset = offset
            guard tar.count - offset >= Self.blockSize else {
                ended = true
                if offset == tar.count {
                    throw TarError("archive ends without its end marker (two zero blocks): truncated?", offset: offset)
                }
                throw TarError("archive ends inside a header block (\(tar.count - offset) of 512 bytes)", offset: offset)
            }
            let header = tar[offset..<offset + Self.blockSize]
            if header.allSatisfy({ $0 == 0 }) {
                let following = offset + Self.blockSize
                if tar.count - following < Self.blockSize || tar[following..<following + Self.blockSize].allSatisfy({ $0 == 0 }) {
                    ended = true
                    return nil
                }
                throw TarError("a lone zero block is followed by more data", offset: offset)
            }
            let typeFlag = header[header.startIndex + 156]
            // Extended headers describe the entry after them, not themselves.
            let isExtension = [UInt8(ascii: "L"), UInt8(ascii: "K"), UInt8(ascii: "x"), UInt8(ascii: "g")].contains(typeFlag)
            let name = (isExtension ? nil : paxPath ?? longName) ?? Self.headerName(header)
            try Self.verifyChecksum(header, offset: headerOffset, name: name)
            let size: Int
            if let paxSize, !isExtension {
                size = paxSize
            } else {
                size = try Self.number(header, at: 124, length: 12, field: "size", offset: headerOffset, name: name)
            }
            let dataStart = offset + Self.blockSize
            guard size >= 0, size <= tar.count - dataStart else {
                throw TarError("entry of \(size) bytes runs past the end of the archive (\(tar.count - dataStart) bytes left): truncated?",
                               offset: headerOffset, entryName: name)
            }
            let contents = tar[dataStart..<dataStart + size]
            let padded = (size + Self.blockSize - 1) / Self.blockSize * Self.blockSize
            offset = dataStart + Swift.min(padded, tar.count - dataStart)

            switch typeFlag {
            case UInt8(ascii: "L"):  // GNU long name for the next entry
                longName = Self.string(contents.prefix { $0 != 0 })
            case UInt8(ascii: "x"):  // pax extended header for the next entry
                let records = try Self.paxRecords(contents, offset: dataStart, name: name)
                if let path = records["path"] { paxPath = path }
                if let text = records["size"] {
                    guard let value = Int(text), value >= 0 else {
                        throw TarError("pax size record '\(text)' is not a byte count", offset: dataStart, entryName: name)
                    }
                    paxSize = value
                }
            case UInt8(ascii: "g"), UInt8(ascii: "K"), UInt8(ascii: "V"):
                // Global pax header, GNU long link name, volume label: nothing to return.
                continue
            case UInt8(ascii: "0"), 0, UInt8(ascii: "7"):
                // Old (pre-POSIX) archives mark a directory only by a trailing slash.
                let isDirectory = typeFlag == 0 && name.hasSuffix("/")
                return TarEntry(name: name, isDirectory: isDirectory, contents: isDirectory ? [] : contents, headerOffset: headerOffset)
            case UInt8(ascii: "5"):
                return TarEntry(name: name, isDirectory: true, contents: [], headerOffset: headerOffset)
            case UInt8(ascii: "1"), UInt8(ascii: "2"), UInt8(ascii: "3"), UInt8(ascii: "4"), UInt8(ascii: "6"):
                // Hard and symbolic links, devices, FIFOs: skipped (never followed).
                longName = nil
                paxPath = nil
                paxSize = nil
            case UInt8(ascii: "S"), UInt8(ascii: "M"):
                throw TarError("GNU sparse and multi-volume entries are not supported", offset: headerOffset, entryName: name)
            default:
                throw TarError("unknown entry type '\(Self.printable(typeFlag))'", offset: headerOffset, entryName: name)
            }
        }
    }

    // MARK: Header fields

    /// The ustar name, with the POSIX prefix when the magic says ustar (GNU archives use
    /// that area for other things).
    static func headerName(_ header: ArraySlice<UInt8>) -> String {
        let s = header.startIndex
        let name = field(header, at: 0, length: 100)
        let magic = Array(header[s + 257..<s + 263])
        if magic == Array("ustar\u{0}".utf8) {
            let prefix = field(header, at: 345, length: 155)
            if !prefix.isEmpty { return string(prefix) + "/" + string(name) }
        }
        return string(name)
    }

    /// The bytes of a NUL-terminated (or full-width) text field.
    static func field(_ header: ArraySlice<UInt8>, at position: Int, length: Int) -> ArraySlice<UInt8> {
        let start = header.startIndex + position
        return header[start..<start + length].prefix { $0 != 0 }
    }

    static func string<C: Collection>(_ bytes: C) -> String where C.Element == UInt8 {
        String(decoding: bytes, as: UTF8.self)
    }

    static func printable(_ byte: UInt8) -> String {
        (32..<127).contains(byte) ? String(UnicodeScalar(byte)) : "\\(\(byte))"
    }

    /// A numeric field: octal text (space or NUL terminated), or GNU base-256 when the first
    /// byte has its high bit set.
    static func number(_ header: ArraySlice<UInt8>, at position: Int, length: Int, field: String, offset: Int,
                       name: String) throws -> Int {
        let start = header.startIndex + position
        let bytes = header[start..<start + length]
        if let first = bytes.first, first & 0x80 != 0 {
            guard first & 0x40 == 0 else {
                throw TarError("negative base-256 \(field) field", offset: offset + position, entryName: name)
            }
            var value = Int(first & 0x3F)
            for byte in bytes.dropFirst() {
                guard value <= (Int.max >> 8) else {
                    throw TarError("base-256 \(field) field overflows", offset: offset + position, entryName: name)
                }
                value = value << 8 | Int(byte)
            }
            return value
        }
        var value = 0
        var seenDigit = false
        for byte in bytes {
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "7"):
                guard value <= (Int.max >> 3) else {
                    throw TarError("octal \(field) field overflows", offset: offset + position, entryName: name)
                }
                value = value << 3 | Int(byte - UInt8(ascii: "0"))
                seenDigit = true
            case UInt8(ascii: " ") where !seenDigit:
                continue
            case 0, UInt8(ascii: " "):
                return value
            default:
                throw TarError("\(field) field contains '\(printable(byte))', not an octal digit", offset: offset + position,
                               entryName: name)
            }
        }
        return value
    }

    /// The stored checksum must equal the sum of the header bytes with the checksum field
    /// read as spaces (unsigned, as POSIX says; signed sums from old tars are accepted).
    static func verifyChecksum(_ header: ArraySlice<UInt8>, offset: Int, name: String) throws {
        let stored = try number(header, at: 148, length: 8, field: "checksum", offset: offset, name: name)
        var unsigned = 0
        var signed = 0
        for (i, byte) in header.enumerated() {
            let b = (148..<156).contains(i) ? UInt8(ascii: " ") : byte
            unsigned += Int(b)
            signed += Int(Int8(bitPattern: b))
        }
        guard stored == unsigned || stored == signed else {
            throw TarError("header checksum is \(stored) (octal \(String(stored, radix: 8))) but the header sums to \(unsigned) (octal \(String(unsigned, radix: 8)))",
                           offset: offset, entryName: name)
        }
    }

    /// Parses pax records: "LENGTH key=value\n", LENGTH counting the whole record.
    static func paxRecords(_ data: ArraySlice<UInt8>, offset: Int, name: String) throws -> [String: String] {
        var records: [String: String] = [:]
        var i = data.startIndex
        while i < data.endIndex {
            if data[i] == 0 { break }  // padding
            let recordStart = i
            var length = 0
            while i < data.endIndex, data[i] != UInt8(ascii: " ") {
                guard (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(data[i]), length < 1 << 30 else {
                    throw TarError("pax record length is not a decimal number", offset: offset + (i - data.startIndex), entryName: name)
                }
                length = length * 10 + Int(data[i] - UInt8(ascii: "0"))
                i += 1
            }
            let recordEnd = recordStart + length
            guard i < data.endIndex, length > 0, recordEnd <= data.endIndex, recordEnd > i + 1, data[recordEnd - 1] == UInt8(ascii: "\n") else {
                throw TarError("malformed pax record", offset: offset + (recordStart - data.startIndex), entryName: name)
            }
            let body = data[(i + 1)..<(recordEnd - 1)]
            guard let equals = body.firstIndex(of: UInt8(ascii: "=")) else {
                throw TarError("pax record has no '='", offset: offset + (recordStart - data.startIndex), entryName: name)
            }
            records[string(body[body.startIndex..<equals])] = string(body[(equals + 1)...])
            i = recordEnd
        }
        return records
    }
}
