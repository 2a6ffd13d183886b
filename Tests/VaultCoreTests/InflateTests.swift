import Foundation
import Testing
import VaultCore

// Fixtures below were produced once with Python's zlib, gzip and tarfile modules (and a
// hand bit-writer for the malformed streams); the generating calls are noted beside each.
// Tests that need /usr/bin/gzip, /usr/bin/tar or python3 at run time skip themselves when
// the tool is absent.

@Suite("Inflate: zlib, gzip, streaming and tar")
struct InflateTests {
    // zlib.compress(b"stored block: hello, vault!", 0)
    static let storedZlib = "7801011b00e4ff73746f72656420626c6f636b3a2068656c6c6f2c207661756c74218d8a09c4"
    // zlib.compressobj(9, DEFLATED, 15, 9, Z_FIXED) of b"fixed huffman fixed huffman fixed huffman!"
    static let fixedZlib = "78014bcbac484d51c8284d4bcb4dcc5348c3cd530400549c0fa1"
    // zlib.compress(dynamicText, 9): one dynamic-Huffman block
    static let dynamicZlib = """
        78da9dd55b16c1500c46e177a3c810e40f2d66e37268397a68d56df41633b09fb3f653be95e4b64b365dd9ad49761ddbedc9367d7974b62f4f\
        3b8ee7cb60e59efadf38afdf2fdb95c3247f1b078d4013a09981660e9a0a34356816a059929d22084482130a4e2c38c1e04483130e4e3c3801e1\
        44848808a1db40448888101121224244848808111122228288082222d0bb20228288082222888820228288883f457c00d599e3f7
        """
    static let dynamicText = (0..<40).map { "line \($0): the quick brown fox jumps over the lazy dog\n" }.joined()
    // gzip member with FHCRC, FEXTRA ("AB" subfield), FNAME "name.txt", FCOMMENT "a comment"
    static let flaggedGzip = """
        1f8b081e00000000020306004142020078796e616d652e747874006120636f6d6d656e7400b5e94bafca2c50c8484d4c492d5248cb494c2f\
        5628492d2ee10200cae9226817000000
        """
    // gzip.compress(b"first member\n", mtime=0) + gzip.compress(b"second member\n", mtime=0)
    static let twoMemberGzip = """
        1f8b08000000000002034bcb2c2a2e51c84dcd4d4a2de20200a7f4850a0d0000001f8b08000000000002032b4e4dcecf4b51c84dcd4d4a2de2\
        020036184b0e0e000000
        """
    static let emptyGzip = "1f8b080000000000020303000000000000000000"
    // Fixed block: literal 'a', then length 3 at distance 1: "aaaa".
    static let overlapZlib = "78014b04020003ce0185"
    // Fixed block whose first symbol is a match (length 3, distance 1) with no output yet.
    static let farBackZlib = "780103020000000001"
    // Fixed block using distance code 30, which does not exist.
    static let distance30Zlib = "78014b043e0000000000"
    // Fixed block using literal/length code 286, which does not exist.
    static let literal286Zlib = "78011b030000000000"
    // A tar of GNU, pax and ustar parts (Python tarfile, end markers joined), gzip -9:
    // gnu/ (dir), gnu/small.txt, a 148-character GNU long name ('L'), gnu/link (symlink),
    // pax/ünïcödé-名前.txt ('x' path record), pax/empty.txt, and a ustar name split with the
    // prefix field (ustar/ddd…/file.txt, 700 bytes of 'x').
    static let mixedTarGz = """
        1f8b0800000000000203ed983f6e833014c63df714be40c07f61aadcb10343af60054aa312172520d1237488d46b74ead6a91b67c93d6aa854\
        09928aa892a109efb7d88385913e7ddf7b7ea9297de4186209a56c574b7f3db20f0967084b3402e5b6d01b8c5139702e4517496af5dfae7596\
        79455538d43f10e277fd29efea4f49104a8409e8ef9c567b7cbfca922b04cc0fcff7fc9be8c9a4d1ca3c3af4ff11dfff789e31d9cfff500a84\
        a331fd3f539afc8ffe110ecb103091fec3f53fe8fa9f49c629d4ff91f4c7998d7f6cf41a5a8079fa3f7357fa4febfffb7b4aa5b4fe67ae1f26\
        e0ffeffeef4e57b7898e93cd34fd1f1107ef3f46edfbbf1a2dffedf533f53f9738d7c5c375ae2bbffe34f5fbb2fe88ebb7c5fe75b77fd935de\
        83a270c934ba2ba3962a560ba5dc64ed70ff47fbf9cff8a8f31f7bfd4cf3dfeadf0600b87cbefe4fd679f13ce5fcf7a0ff23a10cc0ff63d04c\
        7e5dcf5c06f4a72c145dfd0511013f73fddbeffaf1449cfc9b15009c2950bd010000fece174e789ed700240000
        """

    // MARK: Block types

    @Test("a stored block decodes")
    func storedBlock() throws {
        #expect(try Inflate.zlib(hex(Self.storedZlib)) == Array("stored block: hello, vault!".utf8))
    }

    @Test("a fixed-Huffman block decodes")
    func fixedBlock() throws {
        #expect(try Inflate.zlib(hex(Self.fixedZlib)) == Array("fixed huffman fixed huffman fixed huffman!".utf8))
    }

    @Test("a dynamic-Huffman block decodes")
    func dynamicBlock() throws {
        let compressed = hex(Self.dynamicZlib)
        #expect((compressed[2] >> 1) & 3 == 2, "fixture's first block is dynamic")
        #expect(try Inflate.zlib(compressed) == Array(Self.dynamicText.utf8))
    }

    @Test("an overlapping match (distance 1) repeats the last byte")
    func overlappingMatch() throws {
        #expect(try Inflate.zlib(hex(Self.overlapZlib)) == Array("aaaa".utf8))
    }

    @Test("gzip header fields FEXTRA, FNAME, FCOMMENT and FHCRC are handled")
    func gzipHeaderFlags() throws {
        #expect(try Inflate.gzip(hex(Self.flaggedGzip)) == Array("gzip header flags test\n".utf8))
    }

    @Test("gzip members are decoded in turn")
    func gzipMembers() throws {
        #expect(try Inflate.gzip(hex(Self.twoMemberGzip)) == Array("first member\nsecond member\n".utf8))
    }

    @Test("an empty gzip member gives no bytes")
    func emptyGzip() throws {
        #expect(try Inflate.gzip(hex(Self.emptyGzip)) == [])
    }

    // MARK: Corrupt input

    @Test("a wrong Adler-32 is rejected")
    func badAdler() {
        var data = hex(Self.dynamicZlib)
        data[data.count - 1] ^= 1
        expectError(.checksumMismatch) { try Inflate.zlib(data) }
    }

    @Test("a wrong CRC-32, ISIZE or header CRC is rejected")
    func badGzipChecksums() {
        let good = hex(Self.flaggedGzip)
        var crc = good
        crc[crc.count - 8] ^= 0x80
        expectError(.checksumMismatch) { try Inflate.gzip(crc) }
        var size = good
        size[size.count - 4] ^= 1
        expectError(.checksumMismatch) { try Inflate.gzip(size) }
        var headerCRC = good
        headerCRC[35] ^= 1  // first byte of the FHCRC field
        expectError(.checksumMismatch) { try Inflate.gzip(headerCRC) }
    }

    @Test("every truncation of a stream is reported as truncated")
    func truncations() {
        for fixture in [Self.dynamicZlib, Self.storedZlib, Self.fixedZlib] {
            let data = hex(fixture)
            for n in 0..<data.count {
                expectError(.truncated, "zlib prefix of \(n) bytes") { try Inflate.zlib(Array(data[0..<n])) }
            }
        }
        for fixture in [Self.flaggedGzip, Self.emptyGzip, Self.mixedTarGz] {
            let data = hex(fixture)
            for n in 0..<data.count {
                expectError(.truncated, "gzip prefix of \(n) bytes") { try Inflate.gzip(Array(data[0..<n])) }
            }
        }
    }

    @Test("bad zlib and gzip headers are rejected")
    func badHeaders() {
        let zlib = hex(Self.fixedZlib)
        var method = zlib
        method[0] = 0x77  // CM 7
        expectError(.badHeader) { try Inflate.zlib(method) }
        var check = zlib
        check[1] ^= 1  // FCHECK no longer makes a multiple of 31
        expectError(.badHeader) { try Inflate.zlib(check) }
        expectError(.badHeader) { try Inflate.zlib([0x78, 0xBB] + Array(zlib[2...])) }  // FDICT set, valid FCHECK
        expectError(.badHeader) { try Inflate.zlib([0x88, 0x1C] + Array(zlib[2...])) }  // 64 KiB window

        let gzip = hex(Self.twoMemberGzip)
        var magic = gzip
        magic[1] = 0x8C
        expectError(.badHeader) { try Inflate.gzip(magic) }
        var gzipMethod = gzip
        gzipMethod[2] = 7
        expectError(.badHeader) { try Inflate.gzip(gzipMethod) }
        var reserved = gzip
        reserved[3] = 0x20
        expectError(.badHeader) { try Inflate.gzip(reserved) }
        expectError(.badHeader) { try Inflate.gzip(Array("plain text, not gzip at all".utf8)) }
    }

    @Test("invalid DEFLATE data is rejected")
    func corruptDeflate() {
        expectError(.corruptData, "reserved block type") { try Inflate.zlib([0x78, 0x01, 0x07, 0, 0, 0, 0, 0]) }
        expectError(.corruptData, "stored length complement") {
            try Inflate.zlib([0x78, 0x01, 0x01, 0x05, 0x00, 0x00, 0x00, 1, 2, 3, 4, 5, 0, 0, 0, 0])
        }
        expectError(.corruptData, "distance before the output") { try Inflate.zlib(hex(Self.farBackZlib)) }
        expectError(.corruptData, "distance code 30") { try Inflate.zlib(hex(Self.distance30Zlib)) }
        expectError(.corruptData, "literal/length code 286") { try Inflate.zlib(hex(Self.literal286Zlib)) }
    }

    @Test("every single-bit corruption fails cleanly or decodes to the original")
    func bitFlips() {
        let data = hex(Self.dynamicZlib)
        let original = Array(Self.dynamicText.utf8)
        for bit in 0..<(data.count * 8) {
            var corrupt = data
            corrupt[bit / 8] ^= UInt8(1 << (bit % 8))
            do {
                // Only flipping padding bits after the final block can leave the stream valid.
                let output = try Inflate.zlib(corrupt)
                #expect(output == original, "bit \(bit) flipped gave different output without an error")
            } catch is DecompressionError {
                // expected
            } catch {
                Issue.record("bit \(bit): unexpected error type \(error)")
            }
        }
    }

    @Test("trailing bytes after a zlib stream or gzip member are rejected")
    func trailingData() {
        expectError(.trailingData) { try Inflate.zlib(hex(Self.fixedZlib) + [0]) }
        expectError(.trailingData) { try Inflate.gzip(hex(Self.emptyGzip) + Array("xyz".utf8)) }
    }

    @Test("the output limit is enforced")
    func outputLimit() throws {
        let data = hex(Self.dynamicZlib)
        expectError(.outputTooLarge) { try Inflate.zlib(data, maximumOutputSize: 100) }
        #expect(try Inflate.zlib(data, maximumOutputSize: Self.dynamicText.utf8.count).count == Self.dynamicText.utf8.count)
        expectError(.outputTooLarge) { try Inflate.zlib(data, maximumOutputSize: Self.dynamicText.utf8.count - 1) }
    }

    @Test("errors name the byte offset")
    func errorOffset() {
        var data = hex(Self.dynamicZlib)
        data[data.count - 1] ^= 1
        do {
            _ = try Inflate.zlib(data)
            Issue.record("expected an error")
        } catch let error as DecompressionError {
            #expect(error.offset == data.count - 4)
            #expect(error.description.contains("byte \(data.count - 4)"))
        } catch {
            Issue.record("unexpected error \(error)")
        }
    }

    // MARK: Streaming

    @Test("GzipStream gives the same bytes as the array form, however the input is split")
    func streamingMatchesArray() throws {
        let sample = Self.sampleData(count: 300_000, seed: 7)
        let compressed = try Self.externalGzip(sample, level: 6) ?? hex(Self.twoMemberGzip)
        let expected = try Inflate.gzip(compressed)
        if compressed.count > 1000 { #expect(expected == sample) }
        for (readStep, pieceSize) in [(1, 1024), (7, 4096), (13, 65_536), (4096, 1 << 20), (1 << 20, 1 << 20)] {
            var offset = 0
            let stream = GzipStream(pieceSize: pieceSize) { buffer in
                let n = Swift.min(readStep, buffer.count, compressed.count - offset)
                compressed.withUnsafeBytes { buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[offset..<offset + n])) }
                offset += n
                return n
            }
            var output: [UInt8] = []
            var pieces = 0
            while let piece = try stream.next() {
                #expect(!piece.isEmpty)
                #expect(piece.count <= pieceSize + 512)
                output += piece
                pieces += 1
            }
            #expect(output == expected, "read step \(readStep), piece size \(pieceSize)")
            #expect(stream.totalOutput == expected.count)
            #expect(try stream.next() == nil)
        }
    }

    @Test("GzipStream handles several members and keeps failing after an error")
    func streamingMembersAndErrors() throws {
        let good = hex(Self.twoMemberGzip)
        var offset = 0
        let members = GzipStream { buffer in
            let n = Swift.min(3, good.count - offset)
            good.withUnsafeBytes { buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[offset..<offset + n])) }
            offset += n
            return n
        }
        var output: [UInt8] = []
        try members.forEachPiece { output += $0 }
        #expect(output == Array("first member\nsecond member\n".utf8))

        var bad = good
        bad[bad.count - 5] ^= 0x01  // ISIZE of the second member
        var badOffset = 0
        let failing = GzipStream { buffer in
            let n = Swift.min(buffer.count, bad.count - badOffset)
            bad.withUnsafeBytes { buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[badOffset..<badOffset + n])) }
            badOffset += n
            return n
        }
        var first: DecompressionError?
        do {
            while try failing.next() != nil {}
        } catch let error as DecompressionError {
            first = error
        }
        #expect(first?.code == .checksumMismatch)
        do {
            _ = try failing.next()
            Issue.record("a failed stream must keep failing")
        } catch let error as DecompressionError {
            #expect(error == first)
        }
    }

    @Test("GzipStream reports an empty or truncated file")
    func streamingTruncated() {
        let empty = GzipStream { _ in 0 }
        expectError(.truncated) { _ = try empty.next() }
        let data = hex(Self.flaggedGzip)
        var offset = 0
        let cut = GzipStream { buffer in
            let n = Swift.min(buffer.count, data.count - 3 - offset)
            data.withUnsafeBytes { buffer.copyMemory(from: UnsafeRawBufferPointer(rebasing: $0[offset..<offset + n])) }
            offset += n
            return n
        }
        expectError(.truncated) { try cut.forEachPiece { _ in } }
    }

    @Test("a read error is reported as such")
    func streamingReadError() {
        struct Boom: Error {}
        let stream = GzipStream { _ in throw Boom() }
        expectError(.readFailed) { _ = try stream.next() }
    }

    // MARK: Other producers

    @Test("output of /usr/bin/gzip at several levels and sizes decodes exactly")
    func externalGzipRoundTrips() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/gzip") else {
            try Test.cancel("/usr/bin/gzip is not installed")
        }
        for (count, seed) in [(0, 1), (1, 2), (100, 3), (65_535, 4), (65_536, 5), (70_000, 6), (1_000_003, 8)] {
            let sample = Self.sampleData(count: count, seed: UInt64(seed))
            for level in [1, 6, 9] {
                let compressed = try #require(try Self.externalGzip(sample, level: level))
                #expect(try Inflate.gzip(compressed) == sample, "\(count) bytes at level \(level)")
            }
        }
    }

    @Test("zlib streams from Python with every strategy and window size decode exactly")
    func pythonZlibStrategies() throws {
        guard let python = ["/usr/bin/python3", "/usr/local/bin/python3"].first(where: { FileManager.default.isExecutableFile(atPath: $0) })
            ?? Self.which("python3") else {
            try Test.cancel("python3 is not installed")
        }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("inflate-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let sample = Self.sampleData(count: 400_000, seed: 11)
        let input = directory.appendingPathComponent("input")
        try Data(sample).write(to: input)
        // level 0 (stored blocks of 64 KiB), Z_FIXED, Z_HUFFMAN_ONLY, Z_RLE, Z_FILTERED, small
        // windows, and a stream flushed with Z_FULL_FLUSH / Z_SYNC_FLUSH (empty stored blocks).
        let script = """
            import sys, zlib
            d = open(sys.argv[1], 'rb').read()
            cases = {'stored': (0, 15, 0), 'fixed': (9, 15, zlib.Z_FIXED), 'huffman': (6, 15, zlib.Z_HUFFMAN_ONLY),
                     'rle': (6, 15, zlib.Z_RLE), 'filtered': (6, 15, zlib.Z_FILTERED), 'w9': (9, 9, 0), 'w12': (1, 12, 0)}
            for name, (level, wbits, strategy) in cases.items():
                c = zlib.compressobj(level, zlib.DEFLATED, wbits, 9, strategy)
                open(sys.argv[2] + '/' + name, 'wb').write(c.compress(d) + c.flush())
            c = zlib.compressobj(6)
            out = b''
            for i in range(0, len(d), 50000):
                out += c.compress(d[i:i + 50000]) + c.flush(zlib.Z_FULL_FLUSH if i % 100000 else zlib.Z_SYNC_FLUSH)
            open(sys.argv[2] + '/flushed', 'wb').write(out + c.flush())
            """
        let status = try Self.run(python, ["-c", script, input.path, directory.path]).status
        #expect(status == 0)
        for name in ["stored", "fixed", "huffman", "rle", "filtered", "w9", "w12", "flushed"] {
            let compressed = [UInt8](try Data(contentsOf: directory.appendingPathComponent(name)))
            #expect(try Inflate.zlib(compressed) == sample, "strategy \(name)")
        }
    }

    // MARK: Tar

    @Test("tar: GNU long names, pax paths, ustar prefixes and directories")
    func tarNames() throws {
        let tar = try Inflate.gzip(hex(Self.mixedTarGz))
        let entries = try TarReader.entries(tar)
        let long = "gnu/" + String(repeating: "L", count: 140) + ".txt"
        let ustar = "ustar/" + String(repeating: "d", count: 120) + "/file.txt"
        #expect(entries.map(\.name) == ["gnu/", "gnu/small.txt", long, "pax/ünïcödé-名前.txt", "pax/empty.txt", ustar])
        #expect(entries.map(\.isDirectory) == [true, false, false, false, false, false])
        #expect(Array(entries[1].contents) == Array("small file\n".utf8))
        #expect(Array(entries[2].contents) == Array("gnu long name\n".utf8))
        #expect(Array(entries[3].contents) == Array("pax path\n".utf8))
        #expect(entries[4].contents.isEmpty)
        #expect(Array(entries[5].contents) == [UInt8](repeating: UInt8(ascii: "x"), count: 700))
    }

    @Test("tar: a bad checksum, a truncated archive or a missing end marker is reported")
    func tarErrors() throws {
        let tar = try Inflate.gzip(hex(Self.mixedTarGz))
        var badChecksum = tar
        badChecksum[512 + 10] ^= 0x01  // inside the name of the second header
        #expect(throws: TarError.self) { try TarReader.entries(badChecksum) }
        do {
            _ = try TarReader.entries(badChecksum)
        } catch let error as TarError {
            #expect(error.offset == 512)
            #expect(error.description.contains("checksum"))
        }
        // Cut inside the 700-byte file: the error names the entry.
        let ustarHeader = tar.count - 1024 - 1024 - 512
        do {
            _ = try TarReader.entries(Array(tar[0..<(ustarHeader + 512 + 100)]))
            Issue.record("expected a truncation error")
        } catch let error as TarError {
            #expect(error.entryName?.hasPrefix("ustar/") == true)
            #expect(error.offset == ustarHeader)
        }
        // No end marker at all.
        #expect(throws: TarError.self) { try TarReader.entries(Array(tar[0..<(tar.count - 1024)])) }
        // One zero block at the very end is accepted (as GNU tar does).
        #expect(try TarReader.entries(Array(tar[0..<(tar.count - 512)])).count == 6)
        // A header cut short.
        #expect(throws: TarError.self) { try TarReader.entries(Array(tar[0..<300])) }
    }

    @Test("tar: the iterator form stops after the end marker")
    func tarIterator() throws {
        var reader = TarReader(try Inflate.gzip(hex(Self.mixedTarGz)))
        var names: [String] = []
        while let entry = try reader.next() { names.append(entry.name) }
        #expect(names.count == 6)
        #expect(try reader.next() == nil)
    }

    // MARK: Real data

    @Test("the Synthea FHIR .tgz gunzips and lists the 54 entries tar lists")
    func syntheaBundles() throws {
        guard let url = InflateTestFiles.file("patients/synthea_fhir_r4_bundles_50.tgz") else {
            try Test.cancel("skipped: ../shared/testdata/patients/synthea_fhir_r4_bundles_50.tgz is not present")
        }
        let compressed = [UInt8](try Data(contentsOf: url))
        let tar = try Inflate.gzip(compressed)
        let entries = try TarReader.entries(tar)
        #expect(entries.count == 54)
        #expect(entries.filter(\.isDirectory).map(\.name) == ["fhir/"])
        let bundles = entries.filter { $0.name.hasPrefix("fhir/") && $0.name.hasSuffix(".json") }
        #expect(bundles.count == 52)
        #expect(bundles.allSatisfy { $0.contents.first == UInt8(ascii: "{") })
        #expect(entries.contains { $0.name == "fhir_name_map.tsv" && !$0.contents.isEmpty })
        #expect(entries.reduce(0) { $0 + $1.contents.count } > 80_000_000)

        if FileManager.default.isExecutableFile(atPath: "/usr/bin/tar") {
            let listing = try Self.run("/usr/bin/tar", ["tzf", url.path])
            let names = String(decoding: listing.output, as: UTF8.self).split(separator: "\n").map(String.init)
            #expect(entries.map(\.name) == names)
        }

        // The streaming form gives the same bytes.
        let handle = try FileHandle(forReadingFrom: url)
        defer { try? handle.close() }
        let stream = GzipStream(fileHandle: handle)
        var offset = 0
        var same = true
        try stream.forEachPiece { piece in
            if offset + piece.count > tar.count
                || tar.withUnsafeBytes({ memcmp($0.baseAddress! + offset, piece.baseAddress!, piece.count) }) != 0 {
                same = false
            }
            offset += piece.count
        }
        #expect(same && offset == tar.count)
    }

    // MARK: Helpers

    func hex(_ text: String) -> [UInt8] {
        let digits = Array(text.utf8).filter { !$0.isWhitespace }
        precondition(digits.count % 2 == 0, "odd hex fixture")
        func value(_ c: UInt8) -> UInt8 { c <= 57 ? c - 48 : (c | 0x20) - 87 }
        return stride(from: 0, to: digits.count, by: 2).map { value(digits[$0]) << 4 | value(digits[$0 + 1]) }
    }

    func expectError(_ code: DecompressionError.Code, _ context: String = "", sourceLocation: SourceLocation = #_sourceLocation,
                     _ body: () throws -> Any) {
        do {
            _ = try body()
            Issue.record("expected a \(code) error, got success \(context)", sourceLocation: sourceLocation)
        } catch let error as DecompressionError {
            #expect(error.code == code, "\(context): \(error)", sourceLocation: sourceLocation)
        } catch {
            Issue.record("expected DecompressionError, got \(error) \(context)", sourceLocation: sourceLocation)
        }
    }

    /// Reproducible test data: words from a small vocabulary mixed with random bytes, so
    /// it compresses into literals, short and long matches and every kind of block.
    static func sampleData(count: Int, seed: UInt64) -> [UInt8] {
        var state = seed &+ 0x9E37_79B9_7F4A_7C15
        func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        let words = ["patient", "encounter", "observation", "glucose", " ", "\n", "{\"id\":", "mg/dL", "2024-01-", "0", "1"]
            .map { Array($0.utf8) }
        var out: [UInt8] = []
        out.reserveCapacity(count)
        while out.count < count {
            let r = next()
            if r % 5 == 0 {
                for _ in 0..<Int((r >> 8) & 15) { out.append(UInt8(truncatingIfNeeded: next())) }
            } else {
                out += words[Int((r >> 16) % UInt64(words.count))]
            }
        }
        return Array(out.prefix(count))
    }

    /// Compresses with /usr/bin/gzip, or returns nil when it is not installed.
    static func externalGzip(_ data: [UInt8], level: Int) throws -> [UInt8]? {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/gzip") else { return nil }
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("inflate-\(UUID().uuidString)")
        try Data(data).write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }
        let result = try run("/usr/bin/gzip", ["-c", "-\(level)", "-n", file.path])
        guard result.status == 0 else { return nil }
        return result.output
    }

    static func run(_ executable: String, _ arguments: [String]) throws -> (status: Int32, output: [UInt8]) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, [UInt8](output))
    }

    static func which(_ name: String) -> String? {
        let paths = (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":")
        return paths.map { "\($0)/\(name)" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }
}

/// Finds `../shared/testdata` (beside the package) by walking up from this file;
/// `SHARDVAULT_TESTDATA` overrides.
private enum InflateTestFiles {
    static func file(_ relative: String, from path: String = #filePath) -> URL? {
        if let override = ProcessInfo.processInfo.environment["SHARDVAULT_TESTDATA"] {
            let url = URL(fileURLWithPath: override).appendingPathComponent(relative)
            return FileManager.default.fileExists(atPath: url.path) ? url : nil
        }
        var directory = URL(fileURLWithPath: path).deletingLastPathComponent()
        while directory.path != "/" {
            let candidate = directory.appendingPathComponent("shared/testdata").appendingPathComponent(relative)
            if FileManager.default.fileExists(atPath: candidate.path) { return candidate }
            directory.deleteLastPathComponent()
        }
        return nil
    }
}

extension UInt8 {
    fileprivate var isWhitespace: Bool { self == 32 || self == 10 || self == 13 || self == 9 }
}
