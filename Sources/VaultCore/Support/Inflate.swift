// A DEFLATE decoder (RFC 1951) with zlib (RFC 1950) and gzip (RFC 1952) framing, in pure
// Swift. The hot loop works on raw pointers: a 64-bit bit buffer refilled eight bytes at a
// time, two-level Huffman tables (10 primary bits for literal/length codes, 8 for
// distances), and match copies eight bytes at a time.

public import Foundation  // FileHandle, in GzipStream's public initializer

/// A compressed stream that cannot be decoded: what is wrong, and the byte offset in the
/// compressed input where it was detected.
public struct DecompressionError: Error, CustomStringConvertible, Sendable, Equatable {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        let name: String
        public var description: String { name }
        /// The input ended before the stream did.
        public static let truncated = Code(name: "truncated input")
        /// A zlib or gzip header is malformed or asks for something unsupported.
        public static let badHeader = Code(name: "bad header")
        /// The DEFLATE data is invalid (bad block type, Huffman code or distance).
        public static let corruptData = Code(name: "corrupt data")
        /// The Adler-32, CRC-32 or length in the trailer does not match the data.
        public static let checksumMismatch = Code(name: "checksum mismatch")
        /// Bytes follow the end of the stream that are not another gzip member.
        public static let trailingData = Code(name: "trailing data")
        /// The output would exceed the caller's limit.
        public static let outputTooLarge = Code(name: "output too large")
        /// Reading the compressed input failed.
        public static let readFailed = Code(name: "read failed")
    }

    public let code: Code
    public let message: String
    /// Byte offset in the compressed input (across all pieces read so far).
    public let offset: Int

    public init(_ code: Code, _ message: String, offset: Int) {
        self.code = code
        self.message = message
        self.offset = offset
    }

    public var description: String { "\(code) at compressed byte \(offset): \(message)" }
}

/// One-shot decompression of zlib and gzip data held in memory.
public enum Inflate {
    /// Decompresses a zlib stream (RFC 1950): checks the header and the Adler-32 trailer.
    /// Preset dictionaries are not supported. Bytes after the trailer are an error.
    public static func zlib(_ data: [UInt8], maximumOutputSize: Int = .max) throws -> [UInt8] {
        try data.withUnsafeBufferPointer { input in
            let engine = InflateEngine(input: input, initialCapacity: initialCapacity(compressed: input.count, hint: nil),
                                       maximumOutput: maximumOutputSize)
            let cmf = try engine.readByte()
            let flg = try engine.readByte()
            guard cmf & 0x0F == 8 else {
                throw DecompressionError(.badHeader, "zlib compression method \(cmf & 0x0F) is not deflate (8)", offset: 0)
            }
            guard cmf >> 4 <= 7 else {
                throw DecompressionError(.badHeader, "zlib window size 2^\(Int(cmf >> 4) + 8) exceeds 32 KiB", offset: 0)
            }
            guard (UInt16(cmf) << 8 | UInt16(flg)) % 31 == 0 else {
                throw DecompressionError(.badHeader, "zlib header check bits are wrong (CMF*256+FLG not a multiple of 31)", offset: 1)
            }
            guard flg & 0x20 == 0 else {
                throw DecompressionError(.badHeader, "zlib preset dictionary is not supported", offset: 1)
            }
            engine.beginStream()
            _ = try engine.inflate()
            engine.alignToByte()
            let trailerOffset = engine.position
            var expected: UInt32 = 0
            for _ in 0..<4 { expected = expected << 8 | UInt32(try engine.readByte()) }
            let actual = engine.withOutput(0..<engine.outPos) { Inflate.Adler32.update(1, $0) }
            guard actual == expected else {
                throw DecompressionError(.checksumMismatch, "Adler-32 is \(hex32(actual)), trailer says \(hex32(expected))",
                                         offset: trailerOffset)
            }
            guard try engine.atEndOfInput() else {
                throw DecompressionError(.trailingData, "bytes follow the end of the zlib stream", offset: engine.position)
            }
            return engine.takeOutput()
        }
    }

    /// Decompresses gzip data (RFC 1952), all members in turn. Each member's header
    /// (FEXTRA, FNAME, FCOMMENT and FHCRC are handled), CRC-32 and ISIZE are checked.
    public static func gzip(_ data: [UInt8], maximumOutputSize: Int = .max) throws -> [UInt8] {
        try data.withUnsafeBufferPointer { input in
            // ISIZE of the last member is the whole size for the usual single-member file.
            var hint: Int?
            if input.count >= 18 {
                let n = input.count
                hint = Int(UInt32(input[n - 4]) | UInt32(input[n - 3]) << 8 | UInt32(input[n - 2]) << 16 | UInt32(input[n - 1]) << 24)
            }
            let engine = InflateEngine(input: input, initialCapacity: initialCapacity(compressed: input.count, hint: hint),
                                       maximumOutput: maximumOutputSize)
            let decoder = GzipDecoder(engine: engine)
            while try decoder.advance() {}
            return engine.takeOutput()
        }
    }

    static func initialCapacity(compressed: Int, hint: Int?) -> Int {
        // A plausible size hint (DEFLATE cannot beat 1032:1) is used up to 64 times the
        // input, so that a forged ISIZE cannot make a small file allocate gigabytes up front;
        // beyond that the output grows as it is produced.
        let ceiling = Swift.max(compressed.multipliedReportingOverflow(by: 64).partialValue, 1 << 22)
        if let hint, hint >= 0, hint <= compressed.multipliedReportingOverflow(by: 1032).partialValue {
            return Swift.min(hint, ceiling)
        }
        return Swift.min(Swift.max(compressed * 4, 1 << 16), ceiling)
    }

    static func hex32(_ v: UInt32) -> String {
        let s = String(v, radix: 16)
        return "0x" + String(repeating: "0", count: 8 - s.count) + s
    }
}

/// Streaming gzip decompression: reads compressed input in pieces (from a `FileHandle` or
/// any read function) and hands out decompressed output in pieces, so a large .tgz is never
/// held in memory whole. Memory use is about one input piece plus one output piece plus
/// the 32 KiB window.
///
/// Each member's CRC-32 and length are checked when the member ends, so output handed out
/// before `next()` returns nil has not been verified yet: treat it as provisional until the
/// stream has ended without an error.
public final class GzipStream {
    public static let defaultPieceSize = 1 << 20
    public static let defaultReadSize = 1 << 18

    private let decoder: GzipDecoder
    private var finished = false
    private var failure: DecompressionError?
    /// Decompressed bytes handed out so far.
    public private(set) var totalOutput = 0

    /// Reads from `fileHandle` (from its current offset to its end).
    public convenience init(fileHandle: FileHandle, pieceSize: Int = GzipStream.defaultPieceSize,
                            readSize: Int = GzipStream.defaultReadSize) {
        self.init(pieceSize: pieceSize, readSize: readSize) { buffer in
            guard let data = try fileHandle.read(upToCount: buffer.count), !data.isEmpty else { return 0 }
            data.withUnsafeBytes { buffer.copyMemory(from: $0) }
            return data.count
        }
    }

    /// Reads through `read`, which fills the start of the buffer it is given and returns the
    /// number of bytes written, 0 at the end of the input.
    public init(pieceSize: Int = GzipStream.defaultPieceSize, readSize: Int = GzipStream.defaultReadSize,
                read: @escaping (UnsafeMutableRawBufferPointer) throws -> Int) {
        let engine = InflateEngine(readSize: Swift.max(readSize, 64), pieceSize: Swift.max(pieceSize, 1024), read: read)
        decoder = GzipDecoder(engine: engine)
    }

    /// The next piece of decompressed output, or nil once every member has been decoded
    /// and checked. After an error, every later call throws the same error.
    public func next() throws -> [UInt8]? {
        var piece: [UInt8]?
        _ = try nextPiece { piece = Array($0) }
        return piece
    }

    /// Calls `body` with each piece of output in turn (the buffer is valid only during the call).
    public func forEachPiece(_ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        while try nextPiece(body) {}
    }

    /// Hands the next non-empty piece to `body`; returns false at the end of the stream.
    private func nextPiece(_ body: (UnsafeRawBufferPointer) throws -> Void) throws -> Bool {
        if let failure { throw failure }
        if finished { return false }
        do {
            while true {
                let more = try decoder.advance()
                let engine = decoder.engine
                let count = engine.outPos - engine.pieceStart
                if count > 0 {
                    try engine.withOutput(engine.pieceStart..<engine.outPos, body)
                    totalOutput += count
                    engine.slideWindow()
                    if !more { finished = true }
                    return true
                }
                if !more {
                    finished = true
                    return false
                }
            }
        } catch let error as DecompressionError {
            failure = error
            throw error
        }
    }
}

// MARK: - gzip framing

/// Walks the members of a gzip stream over an `InflateEngine`.
final class GzipDecoder {
    enum Phase { case memberHeader, body, finished }

    let engine: InflateEngine
    private var phase = Phase.memberHeader
    private var members = 0
    private var crc: UInt32 = 0
    private var memberSize = 0

    init(engine: InflateEngine) {
        self.engine = engine
    }

    /// Decodes until the output buffer is full (returns true: call again after taking the
    /// output) or the whole input has been decoded and checked (returns false).
    func advance() throws -> Bool {
        while true {
            switch phase {
            case .finished:
                return false
            case .memberHeader:
                if members > 0, try engine.atEndOfInput() {
                    phase = .finished
                    return false
                }
                try readHeader()
                engine.beginStream()
                crc = 0
                memberSize = 0
                phase = .body
            case .body:
                let ended = try engine.inflate()
                checksumNewOutput()
                if !ended { return true }
                try readTrailer()
                members += 1
                phase = .memberHeader
            }
        }
    }

    private func checksumNewOutput() {
        let range = engine.checksumPos..<engine.outPos
        guard !range.isEmpty else { return }
        crc = engine.withOutput(range) { Inflate.CRC32.update(crc, $0) }
        memberSize += range.count
        engine.checksumPos = engine.outPos
    }

    private func readHeader() throws {
        do {
            try readHeaderFields()
        } catch let error as DecompressionError where members > 0 && error.code == .truncated {
            throw DecompressionError(.trailingData, "bytes after gzip member \(members) are not another gzip member",
                                     offset: error.offset)
        }
    }

    private func readHeaderFields() throws {
        let start = engine.position
        var headerCRC: UInt32 = 0
        func byte() throws -> UInt8 {
            let b = try engine.readByte()
            headerCRC = Inflate.CRC32.update(headerCRC, b)
            return b
        }
        let id1 = try byte()
        let id2 = try byte()
        guard id1 == 0x1F && id2 == 0x8B else {
            if members > 0 {
                throw DecompressionError(.trailingData, "bytes after gzip member \(members) are not another gzip member", offset: start)
            }
            throw DecompressionError(.badHeader, "not gzip data (magic bytes 1f 8b missing)", offset: start)
        }
        let method = try byte()
        guard method == 8 else {
            throw DecompressionError(.badHeader, "gzip compression method \(method) is not deflate (8)", offset: start + 2)
        }
        let flags = try byte()
        guard flags & 0xE0 == 0 else {
            throw DecompressionError(.badHeader, "reserved gzip flag bits are set (FLG = \(flags))", offset: start + 3)
        }
        for _ in 0..<6 { _ = try byte() }  // MTIME, XFL, OS
        if flags & 0x04 != 0 {  // FEXTRA
            let xlen = Int(try byte()) | Int(try byte()) << 8
            for _ in 0..<xlen { _ = try byte() }
        }
        if flags & 0x08 != 0 { while try byte() != 0 {} }  // FNAME
        if flags & 0x10 != 0 { while try byte() != 0 {} }  // FCOMMENT
        if flags & 0x02 != 0 {  // FHCRC
            let at = engine.position
            let expected = UInt16(try engine.readByte()) | UInt16(try engine.readByte()) << 8
            guard expected == UInt16(truncatingIfNeeded: headerCRC) else {
                throw DecompressionError(.checksumMismatch, "gzip header CRC-16 does not match the header", offset: at)
            }
        }
    }

    private func readTrailer() throws {
        engine.alignToByte()
        let at = engine.position
        var expectedCRC: UInt32 = 0
        for i in 0..<4 { expectedCRC |= UInt32(try engine.readByte()) << (8 * UInt32(i)) }
        var expectedSize: UInt32 = 0
        for i in 0..<4 { expectedSize |= UInt32(try engine.readByte()) << (8 * UInt32(i)) }
        guard crc == expectedCRC else {
            throw DecompressionError(.checksumMismatch,
                                     "CRC-32 of gzip member \(members + 1) is \(Inflate.hex32(crc)), trailer says \(Inflate.hex32(expectedCRC))",
                                     offset: at)
        }
        guard UInt32(truncatingIfNeeded: memberSize) == expectedSize else {
            throw DecompressionError(.checksumMismatch,
                                     "gzip member \(members + 1) decoded to \(memberSize) bytes, trailer says \(expectedSize) (mod 2^32)",
                                     offset: at + 4)
        }
    }
}

// MARK: - DEFLATE engine

/// The DEFLATE decoder proper. It reads input either from one buffer (the array forms) or
/// in pieces from a read function (streaming), and writes into an output array that either
/// grows (array forms) or is emptied piece by piece behind a 32 KiB window (streaming).
final class InflateEngine {
    static let windowSize = 32_768
    /// Room kept free after `limit`: one maximal match (258) plus the 8-byte copy overrun.
    static let outputSlack = 512
    static let litPrimaryBits = 10
    static let distPrimaryBits = 8
    static let litTableSize = (1 << 10) + 288 * 32
    static let distTableSize = (1 << 8) + 32 * 128
    /// More zero bytes than this read past the end of the input means it was truncated.
    static let maximumOverread = 16

    // Entry layout: bits 0-7 bits to consume, 8-11 extra bits (or sub-table index bits),
    // 12-15 kind, 16-31 value (literal, base length or distance, or sub-table offset).
    static let kindLiteral: UInt32 = 0x0000
    static let kindLength: UInt32 = 0x1000
    static let kindEnd: UInt32 = 0x2000
    static let kindSubtable: UInt32 = 0x3000
    static let kindInvalid: UInt32 = 0x4000
    static let kindMask: UInt32 = 0xF000

    // Input
    private var inBase: UnsafePointer<UInt8>
    private var inEnd: Int
    private var inPos = 0
    /// Offset in the whole compressed stream of `inBase[0]`.
    private var chunkOffset = 0
    private let reader: ((UnsafeMutableRawBufferPointer) throws -> Int)?
    private let readBuffer: UnsafeMutableRawBufferPointer?
    private var sourceExhausted: Bool
    /// Zero bytes fed into the bit buffer after the input ran out.
    private var overread = 0
    private var bitBuf: UInt64 = 0
    private var bitCount = 0

    // Output
    private(set) var output: [UInt8]
    private(set) var outPos = 0
    /// Back-references may not reach before this index (the start of the current stream).
    private var historyStart = 0
    /// Output before this index has been handed out (streaming).
    private(set) var pieceStart = 0
    /// Output before this index has been checksummed.
    var checksumPos = 0
    private let growable: Bool
    private let maximumOutput: Int
    private let pieceSize: Int

    // Block state
    private enum Block { case header, stored(remaining: Int), huffman, end }
    private var block = Block.header
    private var lastBlock = false
    private var litTable = InflateEngine.fixedTables.lit
    private var distTable = InflateEngine.fixedTables.dist
    private let dynamicLit = UnsafeMutablePointer<UInt32>.allocate(capacity: litTableSize)
    private let dynamicDist = UnsafeMutablePointer<UInt32>.allocate(capacity: distTableSize)
    private let codeLengthTable = UnsafeMutablePointer<UInt32>.allocate(capacity: 128)
    private let lengths = UnsafeMutablePointer<UInt8>.allocate(capacity: 320)
    /// Stands in for the base address of an empty input.
    private let emptyInput = UnsafeMutablePointer<UInt8>.allocate(capacity: 8)

    /// Whole input in memory; output grows as needed.
    init(input: UnsafeBufferPointer<UInt8>, initialCapacity: Int, maximumOutput: Int) {
        inBase = input.count > 0 ? input.baseAddress! : UnsafePointer(emptyInput)
        inEnd = input.count
        reader = nil
        readBuffer = nil
        sourceExhausted = true
        growable = true
        self.maximumOutput = maximumOutput
        pieceSize = .max
        let capacity = Swift.min(Swift.max(initialCapacity, 1024), Swift.max(maximumOutput, 1024))
        output = [UInt8](repeating: 0, count: capacity + 2 * Self.outputSlack)
    }

    /// Input from `read`; output handed out in pieces of about `pieceSize` bytes.
    init(readSize: Int, pieceSize: Int, read: @escaping (UnsafeMutableRawBufferPointer) throws -> Int) {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: readSize, alignment: 16)
        readBuffer = buffer
        inBase = UnsafePointer(buffer.baseAddress!.assumingMemoryBound(to: UInt8.self))
        inEnd = 0
        reader = read
        sourceExhausted = false
        growable = false
        maximumOutput = .max
        self.pieceSize = pieceSize
        output = [UInt8](repeating: 0, count: Self.windowSize + pieceSize + Self.outputSlack)
    }

    deinit {
        dynamicLit.deallocate()
        dynamicDist.deallocate()
        emptyInput.deallocate()
        codeLengthTable.deallocate()
        lengths.deallocate()
        readBuffer?.deallocate()
    }

    // MARK: Input

    /// Offset in the compressed input of the next unread byte (approximately, inside a block).
    var position: Int { chunkOffset + inPos - (bitCount >> 3) + overread }

    private func position(pos: Int, count: Int) -> Int { chunkOffset + pos - (count >> 3) + overread }

    private func error(_ code: DecompressionError.Code, _ message: String) -> DecompressionError {
        corruption(message, pos: inPos, count: bitCount, code: code)
    }

    /// An error at the given reader state. Garbage decoded from the zero bytes fed in after
    /// the end of the input is reported as truncation, which is what it is.
    private func corruption(_ message: String, pos: Int, count: Int, code: DecompressionError.Code = .corruptData) -> DecompressionError {
        if code == .corruptData && count < overread * 8 {
            return DecompressionError(.truncated, "compressed data ended in the middle of the stream", offset: chunkOffset + inEnd)
        }
        return DecompressionError(code, message, offset: position(pos: pos, count: count))
    }

    /// Reads the next piece of input into the read buffer. False at the end of the input.
    private func fetch() throws -> Bool {
        guard let reader, let readBuffer, !sourceExhausted else { return false }
        let n: Int
        do {
            n = try reader(readBuffer)
        } catch {
            throw DecompressionError(.readFailed, "reading compressed input failed: \(error)", offset: chunkOffset + inEnd)
        }
        guard n > 0 else {
            sourceExhausted = true
            return false
        }
        guard n <= readBuffer.count else {
            throw DecompressionError(.readFailed, "read function reported \(n) bytes for a \(readBuffer.count)-byte buffer",
                                     offset: chunkOffset + inEnd)
        }
        chunkOffset += inEnd
        inEnd = n
        inPos = 0
        return true
    }

    /// Tops the bit buffer up to at least 56 bits a byte at a time, fetching new input as
    /// needed and feeding zero bytes (counted in `overread`) once the input has ended.
    @inline(never)
    private func refillSlow(_ buf: inout UInt64, _ count: inout Int, _ pos: inout Int) throws {
        while count < 56 {
            if pos < inEnd {
                buf |= UInt64(inBase[pos]) &<< UInt64(count)
                pos += 1
                count += 8
                continue
            }
            inPos = pos
            if try fetch() {
                pos = 0
                continue
            }
            overread += 1
            if overread > Self.maximumOverread {
                throw DecompressionError(.truncated, "compressed data ended in the middle of the stream",
                                         offset: chunkOffset + inEnd)
            }
            count += 8
        }
    }

    /// True when bits past the end of the input have been consumed.
    private func checkOverrun() throws {
        if bitCount < overread * 8 {
            throw DecompressionError(.truncated, "compressed data ended in the middle of the stream", offset: chunkOffset + inEnd)
        }
    }

    private func refill() throws {
        if inEnd - inPos >= 8 {
            bitBuf |= UnsafeRawPointer(inBase + inPos).loadUnaligned(as: UInt64.self).littleEndian &<< UInt64(bitCount)
            inPos += (63 - bitCount) >> 3
            bitCount |= 56
        } else {
            var buf = bitBuf
            var count = bitCount
            var pos = inPos
            defer {
                bitBuf = buf
                bitCount = count
                inPos = pos
            }
            try refillSlow(&buf, &count, &pos)
        }
    }

    func bits(_ n: Int) throws -> UInt32 {
        if bitCount < n { try refill() }
        let value = UInt32(truncatingIfNeeded: bitBuf & ((1 << UInt64(n)) - 1))
        bitBuf >>= UInt64(n)
        bitCount -= n
        try checkOverrun()
        return value
    }

    func readByte() throws -> UInt8 { UInt8(try bits(8)) }

    func alignToByte() {
        let drop = bitCount & 7
        bitBuf >>= UInt64(drop)
        bitCount -= drop
    }

    /// True when no input is left (fetching more if reading in pieces). Call at a byte boundary.
    func atEndOfInput() throws -> Bool {
        if bitCount - overread * 8 > 0 { return false }
        if inPos < inEnd { return false }
        return try !fetch()
    }

    // MARK: Output

    func withOutput<R>(_ range: Range<Int>, _ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try output.withUnsafeBytes { try body(UnsafeRawBufferPointer(rebasing: $0[range])) }
    }

    /// Output may be written up to here before growing or handing out a piece.
    private var limit: Int {
        growable ? output.count - Self.outputSlack : Swift.min(output.count - Self.outputSlack, pieceStart + pieceSize)
    }

    private func grow() throws {
        guard outPos < maximumOutput else {
            throw error(.outputTooLarge, "output exceeds the limit of \(maximumOutput) bytes")
        }
        let wanted = Swift.max(output.count * 2, outPos + 2 * Self.outputSlack + 1 << 16)
        let ceiling = maximumOutput > Int.max - 2 * Self.outputSlack ? Int.max : maximumOutput + 2 * Self.outputSlack
        let capped = Swift.min(wanted, ceiling)
        output.append(contentsOf: repeatElement(0, count: capped - output.count))
    }

    /// Keeps the last 32 KiB of history at the front of the buffer and marks everything
    /// before `outPos` as handed out.
    func slideWindow() {
        let keep = Swift.min(Self.windowSize, outPos)
        let shift = outPos - keep
        if shift > 0 {
            output.withUnsafeMutableBytes { o in
                let base = o.baseAddress!
                base.copyMemory(from: base + shift, byteCount: keep)
            }
        }
        outPos = keep
        historyStart = Swift.max(0, historyStart - shift)
        checksumPos = Swift.max(0, checksumPos - shift)
        pieceStart = outPos
    }

    /// The decompressed bytes (array forms); leaves the engine empty.
    func takeOutput() -> [UInt8] {
        var result: [UInt8] = []
        swap(&result, &output)
        result.removeSubrange(outPos...)
        outPos = 0
        return result
    }

    // MARK: Blocks

    /// Starts a new DEFLATE stream (a new zlib stream or gzip member).
    func beginStream() {
        block = .header
        lastBlock = false
        historyStart = outPos
        checksumPos = outPos
    }

    /// Decodes until the end of the DEFLATE stream (returns true) or, when reading in
    /// pieces, until the output buffer is full (returns false). The array forms grow the
    /// output and only return at the end.
    func inflate() throws -> Bool {
        while true {
            switch block {
            case .end:
                guard outPos <= maximumOutput else {
                    throw error(.outputTooLarge, "output exceeds the limit of \(maximumOutput) bytes")
                }
                return true
            case .header:
                if lastBlock {
                    block = .end
                    continue
                }
                let header = try bits(3)
                lastBlock = header & 1 == 1
                switch header >> 1 {
                case 0:
                    alignToByte()
                    let length = try bits(16)
                    let complement = try bits(16)
                    guard length == ~complement & 0xFFFF else {
                        throw error(.corruptData, "stored block length \(length) does not match its complement")
                    }
                    block = .stored(remaining: Int(length))
                case 1:
                    litTable = Self.fixedTables.lit
                    distTable = Self.fixedTables.dist
                    block = .huffman
                case 2:
                    try readDynamicTables()
                    litTable = UnsafePointer(dynamicLit)
                    distTable = UnsafePointer(dynamicDist)
                    block = .huffman
                default:
                    throw error(.corruptData, "reserved block type 3")
                }
            case .stored(let remaining):
                let left = try copyStored(remaining)
                if left > 0 {
                    block = .stored(remaining: left)
                    if growable { try grow() } else { return false }
                } else {
                    block = .header
                }
            case .huffman:
                let limit = self.limit
                let endOfBlock = try output.withUnsafeMutableBufferPointer { o in
                    try decodeHuffman(o.baseAddress!, limit: limit)
                }
                if endOfBlock {
                    try checkOverrun()
                    block = .header
                } else if growable {
                    try grow()
                } else {
                    return false
                }
            }
        }
    }

    /// Copies stored-block bytes until the block ends or the output is full; returns the
    /// number of bytes left in the block.
    private func copyStored(_ remaining: Int) throws -> Int {
        var left = remaining
        let limit = self.limit
        // Whole bytes still in the bit buffer come first.
        while left > 0 && bitCount >= 8 && outPos < limit {
            try checkOverrun()
            if bitCount - overread * 8 < 8 { break }
            output[outPos] = UInt8(truncatingIfNeeded: bitBuf)
            bitBuf >>= 8
            bitCount -= 8
            outPos += 1
            left -= 1
        }
        if bitCount == 0 { bitBuf = 0 }  // drop copies of unread bytes above the count
        while left > 0 && outPos < limit {
            let exhausted = try overread > 0 || (inPos == inEnd && !fetch())
            if exhausted {
                throw error(.truncated, "compressed data ended inside a stored block (\(left) bytes missing)")
            }
            guard bitCount == 0 else { break }
            let n = Swift.min(left, inEnd - inPos, limit - outPos)
            let source = inBase + inPos
            let start = outPos
            output.withUnsafeMutableBufferPointer { o in
                (o.baseAddress! + start).update(from: source, count: n)
            }
            inPos += n
            outPos += n
            left -= n
        }
        return left
    }

    private static let lengthBase: [UInt32] = [3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59,
                                               67, 83, 99, 115, 131, 163, 195, 227, 258]
    private static let lengthExtra: [UInt32] = [0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0]
    private static let distanceBase: [UInt32] = [1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769,
                                                 1025, 1537, 2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577]
    private static let distanceExtra: [UInt32] = [0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10,
                                                  11, 11, 12, 12, 13, 13]

    /// Table entries without their length, for literal/length symbols 0-287.
    private static let litTemplates: [UInt32] = (0..<288).map { symbol -> UInt32 in
        switch symbol {
        case 0..<256: return UInt32(symbol) << 16 | kindLiteral
        case 256: return kindEnd
        case 257...285: return lengthBase[symbol - 257] << 16 | lengthExtra[symbol - 257] << 8 | kindLength
        default: return kindInvalid
        }
    }
    /// Table entries without their length, for distance symbols 0-31.
    private static let distTemplates: [UInt32] = (0..<32).map { symbol -> UInt32 in
        symbol < 30 ? distanceBase[symbol] << 16 | distanceExtra[symbol] << 8 | kindLength : kindInvalid
    }
    private static let codeLengthTemplates: [UInt32] = (0..<19).map { UInt32($0) << 16 | kindLiteral }
    private static let codeLengthOrder = [16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15]

    /// The tables of fixed-Huffman blocks, built once and never written again (hence
    /// nonisolated(unsafe): shared read-only between threads).
    nonisolated(unsafe) static let fixedTables: (lit: UnsafePointer<UInt32>, dist: UnsafePointer<UInt32>) = {
        let lit = UnsafeMutablePointer<UInt32>.allocate(capacity: litTableSize)
        let dist = UnsafeMutablePointer<UInt32>.allocate(capacity: distTableSize)
        var lengths = [UInt8](repeating: 8, count: 288)
        for i in 144..<256 { lengths[i] = 9 }
        for i in 256..<280 { lengths[i] = 7 }
        let litProblem = lengths.withUnsafeBufferPointer { l in
            litTemplates.withUnsafeBufferPointer {
                buildTable(lengths: l.baseAddress!, count: 288, templates: $0.baseAddress!, primaryBits: litPrimaryBits,
                           table: lit, kind: .literalLength)
            }
        }
        let distLengths = [UInt8](repeating: 5, count: 32)
        let distProblem = distLengths.withUnsafeBufferPointer { l in
            distTemplates.withUnsafeBufferPointer {
                buildTable(lengths: l.baseAddress!, count: 32, templates: $0.baseAddress!, primaryBits: distPrimaryBits,
                           table: dist, kind: .distance)
            }
        }
        precondition(litProblem == nil && distProblem == nil, "fixed Huffman tables are valid by construction")
        return (UnsafePointer(lit), UnsafePointer(dist))
    }()

    /// Reads a dynamic block's code lengths and builds its tables.
    private func readDynamicTables() throws {
        let literalCount = Int(try bits(5)) + 257
        let distanceCount = Int(try bits(5)) + 1
        let codeLengthCount = Int(try bits(4)) + 4
        guard literalCount <= 286 && distanceCount <= 30 else {
            throw error(.corruptData, "dynamic block declares \(literalCount) literal/length and \(distanceCount) distance codes (at most 286 and 30)")
        }
        for i in 0..<19 { lengths[i] = 0 }
        for i in 0..<codeLengthCount { lengths[Self.codeLengthOrder[i]] = UInt8(try bits(3)) }
        if let problem = Self.codeLengthTemplates.withUnsafeBufferPointer({
            Self.buildTable(lengths: lengths, count: 19, templates: $0.baseAddress!, primaryBits: 7, table: codeLengthTable,
                            kind: .codeLength)
        }) {
            throw error(.corruptData, "invalid code-length code: \(problem)")
        }
        let total = literalCount + distanceCount
        var i = 0
        while i < total {
            if bitCount < 14 { try refill() }
            let entry = codeLengthTable[Int(truncatingIfNeeded: bitBuf & 0x7F)]
            guard entry & Self.kindMask != Self.kindInvalid else {
                throw error(.corruptData, "invalid code-length symbol")
            }
            let consumed = Int(entry & 0xFF)
            bitBuf >>= UInt64(consumed)
            bitCount -= consumed
            let symbol = Int(entry >> 16)
            var repeatCount = 0
            var value: UInt8 = 0
            switch symbol {
            case 0..<16:
                lengths[i] = UInt8(symbol)
                i += 1
                try checkOverrun()
                continue
            case 16:
                guard i > 0 else { throw error(.corruptData, "repeat code 16 with no previous length") }
                value = lengths[i - 1]
                repeatCount = 3 + Int(try bits(2))
            case 17:
                repeatCount = 3 + Int(try bits(3))
            default:
                repeatCount = 11 + Int(try bits(7))
            }
            guard i + repeatCount <= total else {
                throw error(.corruptData, "code-length repeat runs past the \(total) declared codes")
            }
            for _ in 0..<repeatCount {
                lengths[i] = value
                i += 1
            }
        }
        try checkOverrun()
        guard lengths[256] != 0 else { throw error(.corruptData, "dynamic block has no end-of-block code") }
        if let problem = Self.litTemplates.withUnsafeBufferPointer({
            Self.buildTable(lengths: lengths, count: literalCount, templates: $0.baseAddress!, primaryBits: Self.litPrimaryBits,
                            table: dynamicLit, kind: .literalLength)
        }) {
            throw error(.corruptData, "invalid literal/length code: \(problem)")
        }
        if let problem = Self.distTemplates.withUnsafeBufferPointer({
            Self.buildTable(lengths: lengths + literalCount, count: distanceCount, templates: $0.baseAddress!,
                            primaryBits: Self.distPrimaryBits, table: dynamicDist, kind: .distance)
        }) {
            throw error(.corruptData, "invalid distance code: \(problem)")
        }
    }

    enum TableKind { case literalLength, distance, codeLength }

    /// Builds a two-level decoding table for canonical Huffman code lengths. Returns a
    /// description of the problem for an over-subscribed or (wrongly) incomplete code.
    static func buildTable(lengths: UnsafePointer<UInt8>, count: Int, templates: UnsafePointer<UInt32>, primaryBits: Int,
                           table: UnsafeMutablePointer<UInt32>, kind: TableKind) -> String? {
        var counts = [Int](repeating: 0, count: 16)
        for s in 0..<count { counts[Int(lengths[s])] += 1 }
        counts[0] = 0
        var maxLength = 0
        for length in 1...15 where counts[length] > 0 { maxLength = length }
        let primarySize = 1 << primaryBits
        let invalid = kindInvalid | UInt32(primaryBits)
        if maxLength == 0 {
            // No codes at all: every lookup is invalid (fine for an unused distance code).
            table.update(repeating: invalid, count: primarySize)
            return kind == .codeLength ? "no code-length codes" : nil
        }
        var left = 1
        for length in 1...15 {
            left <<= 1
            left -= counts[length]
            if left < 0 { return "over-subscribed code lengths" }
        }
        // zlib's rule: an incomplete code is allowed only as a single one-bit code.
        if left > 0 && (kind == .codeLength || maxLength != 1) { return "incomplete code lengths" }

        var nextCode = [Int](repeating: 0, count: 16)
        var code = 0
        for length in 1...15 {
            code = (code + counts[length - 1]) << 1
            nextCode[length] = code
        }
        // Pass 1: the longest code under each primary prefix sizes that prefix's sub-table.
        var subMax = [Int](repeating: 0, count: primarySize)
        if maxLength > primaryBits {
            var codes = nextCode
            for s in 0..<count {
                let length = Int(lengths[s])
                guard length > primaryBits else {
                    if length > 0 { codes[length] += 1 }
                    continue
                }
                let reversed = reverseBits(codes[length], length)
                codes[length] += 1
                let prefix = reversed & (primarySize - 1)
                subMax[prefix] = Swift.max(subMax[prefix], length)
            }
        }
        var subStart = [Int](repeating: 0, count: primarySize)
        var size = primarySize
        for prefix in 0..<primarySize where subMax[prefix] > 0 {
            subStart[prefix] = size
            size += 1 << (subMax[prefix] - primaryBits)
        }
        table.update(repeating: invalid, count: size)
        for prefix in 0..<primarySize where subMax[prefix] > 0 {
            table[prefix] = UInt32(subStart[prefix]) << 16 | UInt32(subMax[prefix] - primaryBits) << 8 | kindSubtable | UInt32(primaryBits)
        }
        // Pass 2: fill the entries.
        for s in 0..<count {
            let length = Int(lengths[s])
            guard length > 0 else { continue }
            let reversed = reverseBits(nextCode[length], length)
            nextCode[length] += 1
            if length <= primaryBits {
                let entry = templates[s] | UInt32(length)
                var i = reversed
                while i < primarySize {
                    table[i] = entry
                    i += 1 << length
                }
            } else {
                let prefix = reversed & (primarySize - 1)
                let subBits = subMax[prefix] - primaryBits
                let subLength = length - primaryBits
                let entry = templates[s] | UInt32(subLength)
                var i = reversed >> primaryBits
                while i < 1 << subBits {
                    table[subStart[prefix] + i] = entry
                    i += 1 << subLength
                }
            }
        }
        return nil
    }

    private static func reverseBits(_ code: Int, _ length: Int) -> Int {
        var c = code
        var r = 0
        for _ in 0..<length {
            r = r << 1 | (c & 1)
            c >>= 1
        }
        return r
    }

    /// The hot loop: decodes symbols of a Huffman block into `out` until the end of the
    /// block (returns true) or until `outPos` reaches `limit` (returns false).
    private func decodeHuffman(_ out: UnsafeMutablePointer<UInt8>, limit: Int) throws -> Bool {
        var buf = bitBuf
        var count = bitCount
        var pos = inPos
        var base = inBase
        var end = inEnd
        var op = outPos
        let lit = litTable
        let dist = distTable
        let floor = historyStart
        defer {
            bitBuf = buf
            bitCount = count
            inPos = pos
            outPos = op
        }
        while op < limit {
            // Refill to at least 56 bits: enough for a length code with its extra bits and
            // a distance code with its extra bits (15 + 5 + 15 + 13 = 48).
            if end &- pos >= 8 {
                buf |= UnsafeRawPointer(base + pos).loadUnaligned(as: UInt64.self).littleEndian &<< UInt64(truncatingIfNeeded: count)
                pos &+= (63 &- count) &>> 3
                count |= 56
            } else {
                try refillSlow(&buf, &count, &pos)
                base = inBase
                end = inEnd
            }
            var entry = lit[Int(truncatingIfNeeded: buf & 0x3FF)]
            if entry & Self.kindMask == Self.kindSubtable {
                buf &>>= 10
                count &-= 10
                let bitsMask = (UInt64(1) &<< UInt64((entry >> 8) & 0xF)) &- 1
                entry = lit[Int(truncatingIfNeeded: entry >> 16) &+ Int(truncatingIfNeeded: buf & bitsMask)]
            }
            var consumed = UInt64(entry & 0xFF)
            buf &>>= consumed
            count &-= Int(truncatingIfNeeded: consumed)
            let kind = entry & Self.kindMask
            if kind == Self.kindLiteral {
                out[op] = UInt8(truncatingIfNeeded: entry >> 16)
                op &+= 1
                // A second literal without refilling when enough bits remain.
                if count >= 10 {
                    let next = lit[Int(truncatingIfNeeded: buf & 0x3FF)]
                    if next & Self.kindMask == Self.kindLiteral && op < limit {
                        consumed = UInt64(next & 0xFF)
                        buf &>>= consumed
                        count &-= Int(truncatingIfNeeded: consumed)
                        out[op] = UInt8(truncatingIfNeeded: next >> 16)
                        op &+= 1
                    }
                }
                continue
            }
            if kind != Self.kindLength {
                if kind == Self.kindEnd { return true }
                throw corruption("invalid literal/length code", pos: pos, count: count)
            }
            let lengthExtra = UInt64((entry >> 8) & 0xF)
            let length = Int(truncatingIfNeeded: entry >> 16) &+ Int(truncatingIfNeeded: buf & ((1 &<< lengthExtra) &- 1))
            buf &>>= lengthExtra
            count &-= Int(truncatingIfNeeded: lengthExtra)

            var dentry = dist[Int(truncatingIfNeeded: buf & 0xFF)]
            if dentry & Self.kindMask == Self.kindSubtable {
                buf &>>= 8
                count &-= 8
                let bitsMask = (UInt64(1) &<< UInt64((dentry >> 8) & 0xF)) &- 1
                dentry = dist[Int(truncatingIfNeeded: dentry >> 16) &+ Int(truncatingIfNeeded: buf & bitsMask)]
            }
            guard dentry & Self.kindMask == Self.kindLength else {
                throw corruption("invalid distance code", pos: pos, count: count)
            }
            consumed = UInt64(dentry & 0xFF)
            buf &>>= consumed
            count &-= Int(truncatingIfNeeded: consumed)
            let distanceExtra = UInt64((dentry >> 8) & 0xF)
            let distance = Int(truncatingIfNeeded: dentry >> 16) &+ Int(truncatingIfNeeded: buf & ((1 &<< distanceExtra) &- 1))
            buf &>>= distanceExtra
            count &-= Int(truncatingIfNeeded: distanceExtra)
            guard distance <= op &- floor else {
                throw corruption("distance \(distance) reaches before the start of the output", pos: pos, count: count)
            }
            // Copy the match. Eight bytes at a time when the source is at least eight bytes
            // back (may write up to seven bytes past the match, inside the slack).
            var dst = out + op
            var src = dst - distance
            let stop = dst + length
            if distance >= 8 {
                repeat {
                    UnsafeMutableRawPointer(dst).storeBytes(of: UnsafeRawPointer(src).loadUnaligned(as: UInt64.self), as: UInt64.self)
                    dst += 8
                    src += 8
                } while dst < stop
            } else if distance == 1 {
                dst.update(repeating: src.pointee, count: length)
            } else {
                repeat {
                    dst.pointee = src.pointee
                    dst += 1
                    src += 1
                } while dst < stop
            }
            op &+= length
        }
        return false
    }
}

// MARK: - Checksums

extension Inflate {
    /// CRC-32 (ISO 3309, as used by gzip), slicing by eight.
    enum CRC32 {
        static let table: [UInt32] = {
            var t = [UInt32](repeating: 0, count: 8 * 256)
            for n in 0..<256 {
                var c = UInt32(n)
                for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
                t[n] = c
            }
            for k in 1..<8 {
                for n in 0..<256 {
                    let previous = t[(k - 1) * 256 + n]
                    t[k * 256 + n] = (previous >> 8) ^ t[Int(previous & 0xFF)]
                }
            }
            return t
        }()

        static func update(_ crc: UInt32, _ byte: UInt8) -> UInt32 {
            let c = ~crc
            return ~(table[Int((c ^ UInt32(byte)) & 0xFF)] ^ (c >> 8))
        }

        static func update(_ crc: UInt32, _ bytes: UnsafeRawBufferPointer) -> UInt32 {
            guard let base = bytes.baseAddress, bytes.count > 0 else { return crc }
            return table.withUnsafeBufferPointer { tp in
                let t = tp.baseAddress!
                var c = ~crc
                var i = 0
                let n = bytes.count
                while n &- i >= 8 {
                    let lo = base.loadUnaligned(fromByteOffset: i, as: UInt32.self).littleEndian ^ c
                    let hi = base.loadUnaligned(fromByteOffset: i &+ 4, as: UInt32.self).littleEndian
                    c = t[1792 &+ Int(lo & 0xFF)] ^ t[1536 &+ Int((lo >> 8) & 0xFF)]
                        ^ t[1280 &+ Int((lo >> 16) & 0xFF)] ^ t[1024 &+ Int(lo >> 24)]
                        ^ t[768 &+ Int(hi & 0xFF)] ^ t[512 &+ Int((hi >> 8) & 0xFF)]
                        ^ t[256 &+ Int((hi >> 16) & 0xFF)] ^ t[Int(hi >> 24)]
                    i &+= 8
                }
                while i < n {
                    c = t[Int((c ^ UInt32(base.load(fromByteOffset: i, as: UInt8.self))) & 0xFF)] ^ (c >> 8)
                    i &+= 1
                }
                return ~c
            }
        }
    }

    /// Adler-32 (RFC 1950).
    enum Adler32 {
        static func update(_ adler: UInt32, _ bytes: UnsafeRawBufferPointer) -> UInt32 {
            var a = UInt64(adler & 0xFFFF)
            var b = UInt64(adler >> 16)
            guard let base = bytes.baseAddress else { return adler }
            let p = base.assumingMemoryBound(to: UInt8.self)
            var i = 0
            let n = bytes.count
            while i < n {
                // With 64-bit sums, 2^20 bytes between reductions cannot overflow.
                let stop = Swift.min(n, i + (1 << 20))
                while i < stop {
                    a &+= UInt64(p[i])
                    b &+= a
                    i &+= 1
                }
                a %= 65521
                b %= 65521
            }
            return UInt32(b << 16 | a)
        }
    }
}
