import Foundation
import Testing
import VaultCrypto
@testable import VaultCore

@Suite("A shard's plaintext read chunk by chunk")
struct ChunkCursorTests {
    /// A body sealed with the chunked encryption, behind a header block, as in a shard file.
    struct SealedFile {
        let directory = TemporaryDirectory("cursor")
        let path: String
        let plaintext: [UInt8]
        let key = try! SecureBytes.random(count: 32)
        let context = Array("cursor-test".utf8)
        let sealed: [UInt8]

        init(length: Int, seed: UInt64) throws {
            var random = CSVBlockTests.Random(state: seed)
            try self.init(plaintext: (0..<length).map { _ in UInt8(truncatingIfNeeded: random.next()) })
        }

        init(plaintext: [UInt8]) throws {
            self.plaintext = plaintext
            sealed = try ChunkedEncryption.seal(plaintext, key: key, context: context)
            path = directory.path + "/body"
            try write(sealed)
        }

        func write(_ body: [UInt8]) throws {
            try Data([UInt8](repeating: 0, count: ShardHeader.blockSize) + body).write(to: URL(fileURLWithPath: path))
        }

        func withCursor(hashing: Bool = false, _ body: (ChunkCursor) throws -> Void) throws {
            let fd = open(path, O_RDONLY)
            #expect(fd >= 0)
            defer { close(fd) }
            let opener = try sealed.withUnsafeBytes { try ChunkedOpener(key: key, context: context, header: UnsafeRawBufferPointer(rebasing: $0[0..<ChunkedEncryption.headerLength])) }
            let layout = try ChunkedEncryption.Layout(bodyLength: sealed.count - ChunkedEncryption.headerLength)
            try body(try ChunkCursor(fd: fd, path: path, opener: opener, layout: layout, hashing: hashing))
        }
    }

    static func read(_ cursor: ChunkCursor, _ range: Range<Int>) throws -> [UInt8] {
        var out = [UInt8](repeating: 0xEE, count: range.count)
        try out.withUnsafeMutableBytes { try cursor.copy(range, into: $0) }
        return out
    }

    @Test("any range, in any order, reads what was sealed: single bytes, chunk edges, runs longer than one read, the final short or empty chunk",
          arguments: [0, 1, 5_000, ChunkedEncryption.chunkSize, 3 * ChunkedEncryption.chunkSize + 17, 70 * ChunkedEncryption.chunkSize + 123])
    func rangesMatch(length: Int) throws {
        let file = try SealedFile(length: length, seed: UInt64(length) &+ 1)
        let size = ChunkedEncryption.chunkSize
        try file.withCursor { cursor throws in
            #expect(cursor.length == length)
            var ranges: [Range<Int>] = [0..<length, 0..<0, length..<length]
            for edge in stride(from: 0, through: length, by: size) {
                for (a, b) in [(-1, 1), (0, size), (-3, size + 3), (0, 1), (-1, 0)] {
                    ranges.append(max(0, edge + a)..<min(length, max(max(0, edge + a), edge + b)))
                }
            }
            var random = CSVBlockTests.Random(state: UInt64(length) &* 31)
            for _ in 0..<200 where length > 0 {
                let start = Int(random.next() % UInt64(length))
                let count = Int(random.next() % UInt64(min(length - start, random.pick([3, 40, size, 3 * size, 90 * size])) + 1))
                ranges.append(start..<start + count)
            }
            for range in ranges {
                #expect(try Self.read(cursor, range) == Array(file.plaintext[range]), "range \(range) of \(length)")
            }
        }
    }

    @Test("a changed chunk fails whichever way it is reached (in place or through the scratch chunk), names the file, and leaves nothing in the caller's buffer")
    func tamperedChunk() throws {
        let size = ChunkedEncryption.chunkSize
        let file = try SealedFile(length: 10 * size + 99, seed: 5)
        for (chunk, range) in [(4, 2 * size..<8 * size), (4, 4 * size + 10..<4 * size + 20), (10, 9 * size..<10 * size + 99), (0, 0..<1)] {
            var body = file.sealed
            body[ChunkedEncryption.headerLength + chunk * ChunkedEncryption.sealedChunkSize + 7] ^= 0x20
            try file.write(body)
            try file.withCursor { cursor throws in
                var out = [UInt8](repeating: 0xEE, count: range.count)
                #expect { try out.withUnsafeMutableBytes { try cursor.copy(range, into: $0) } } throws: { error in
                    (error as? VaultError)?.code == .dataError && (error as? VaultError)?.location == file.path
                        && (error as? VaultError)?.message.contains("chunk \(chunk)") == true
                }
                // What was decrypted before the failure is wiped; the rest was never written.
                #expect(out.allSatisfy { $0 == 0 || $0 == 0xEE }, "range \(range)")
                // Chunks before the changed one still read.
                if chunk > 0 { #expect(try Self.read(cursor, 0..<size) == Array(file.plaintext[0..<size])) }
            }
        }
        // A body cut short: the chunks past the end cannot be read.
        try file.write(Array(file.sealed[0..<(ChunkedEncryption.headerLength + 5 * ChunkedEncryption.sealedChunkSize)]))
        try file.withCursor { cursor throws in
            #expect(throws: VaultError.self) { try Self.read(cursor, 4 * size..<6 * size) }
        }
    }

    @Test("reading forward, in one range or in pieces of any size, decrypts each chunk once")
    func eachChunkOnce() throws {
        let size = ChunkedEncryption.chunkSize
        let file = try SealedFile(length: 150 * size + 700, seed: 11)
        for piece in [150 * size + 700, 1, 999, size, size + 1, 64 * size] {
            try file.withCursor { cursor throws in
                var start = 0
                while start < cursor.length {
                    let end = min(start + piece, cursor.length)
                    #expect(try Self.read(cursor, start..<end) == Array(file.plaintext[start..<end]))
                    start = end
                }
                #expect(cursor.chunksOpened == cursor.chunkCount, "pieces of \(piece) bytes")
            }
        }
    }

    @Test("hashing as it reads: whichever forward reads come, the digest is the SHA-256 of the whole body, and a read backwards is refused")
    func hashesTheWholeBody() throws {
        let size = ChunkedEncryption.chunkSize
        for length in [0, 100, 3 * size, 40 * size + 9] {
            let file = try SealedFile(length: length, seed: UInt64(length) &+ 3)
            let whole = Digest.sha256(file.sealed)
            var random = CSVBlockTests.Random(state: UInt64(length) &+ 77)
            // No read, every byte, pieces of several sizes, and random forward ranges with gaps.
            var plans: [[Range<Int>]] = [[], [0..<length], stride(from: 0, to: length, by: 999).map { $0..<min($0 + 999, length) }]
            if length > 0 {
                var plan: [Range<Int>] = [], start = 0
                while start < length {
                    start += Int(random.next() % UInt64(5 * size))
                    let end = min(length, start + Int(random.next() % UInt64(3 * size)) + 1)
                    if start < end { plan.append(start..<end) }
                    start = end
                }
                plans.append(plan)
                plans.append([(length - 1)..<length])
            }
            for plan in plans {
                try file.withCursor(hashing: true) { cursor throws in
                    for range in plan { #expect(try Self.read(cursor, range) == Array(file.plaintext[range]), "range \(range) of \(length)") }
                    #expect(try cursor.finishDigest() == whole, "\(plan.count) reads over \(length) bytes")
                }
            }
            // A changed byte in a chunk no read reaches still changes the digest.
            if length > 2 * size {
                var body = file.sealed
                body[body.count - 3] ^= 0x01
                try file.write(body)
                try file.withCursor(hashing: true) { cursor throws in
                    _ = try Self.read(cursor, 0..<10)
                    #expect(try cursor.finishDigest() == Digest.sha256(body))
                    #expect(Digest.sha256(body) != whole)
                }
                try file.write(file.sealed)
            }
        }
        let file = try SealedFile(length: 10 * size, seed: 9)
        try file.withCursor(hashing: true) { cursor throws in
            _ = try Self.read(cursor, 5 * size..<6 * size)
            #expect { try Self.read(cursor, 0..<size) } throws: { error in
                (error as? VaultError)?.code == .software && (error as? VaultError)?.message.contains("backwards") == true
            }
        }
        // Without hashing there is no digest to give.
        try file.withCursor { cursor throws in #expect(throws: VaultError.self) { try cursor.finishDigest() } }
    }

    @Test("a fixed column too short for its width, or a dictionary claiming more entries than its bytes hold, is refused in memory and when decrypted on demand")
    func malformedColumns() throws {
        func le32(_ v: UInt32) -> [UInt8] { withUnsafeBytes(of: v.littleEndian, Array.init) }
        func le64(_ v: UInt64) -> [UInt8] { withUnsafeBytes(of: v.littleEndian, Array.init) }
        func table(_ column: [UInt8]) -> [UInt8] {
            ColumnarCodec.Version.v1.magic + le32(1) + [RecordKind.patients.rawValue] + le32(0) + le32(1) + column
        }
        let cases: [([UInt8], String)] = [
            (table([ColumnarCodec.ColumnKind.fixed.rawValue] + le64(1) + [7]), "fixed column of 1 bytes has no width"),
            (table([ColumnarCodec.ColumnKind.dictionary.rawValue] + le64(8) + le32(1000) + le32(0)), "dictionary column of 8 bytes claims 1000 entries"),
        ]
        for (plaintext, message) in cases {
            #expect { try plaintext.withUnsafeBytes { try DecodedShard.decode($0) } } throws: { error in
                (error as? VaultError)?.code == .dataError && (error as? VaultError)?.message == message
            }
            try SealedFile(plaintext: plaintext).withCursor { cursor throws in
                var reader = DecryptingReader(cursor: cursor)
                #expect { try DecodedShard.decode(&reader, columns: nil) } throws: { error in
                    (error as? VaultError)?.code == .dataError && (error as? VaultError)?.message == message
                }
            }
        }
    }
}
