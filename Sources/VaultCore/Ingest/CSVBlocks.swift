import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Cuts a CSV file into blocks of whole records, read front to back (a named pipe can
/// stand in for the file), so that several threads can parse one file. A block ends
/// after a newline that `CSVReader` would read as the end of a record: not one inside a
/// quoted field. Each block comes with the line its first record starts on.
final class CSVBlockReader {
    let path: String
    private let fd: Int32
    private let blockSize: Int
    /// Bytes read after the last block's end: the start of the next block.
    private var carry: [UInt8] = []
    private var nextLine = 1
    private var eof = false
    /// Bytes read so far.
    private(set) var bytesRead = 0

    init(path: String, blockSize: Int = 4 << 20) throws {
        self.path = path
        self.blockSize = blockSize
        fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw VaultError.system(errno == ENOENT ? .noInput : .ioError, "cannot open input file", path: path, errno: errno)
        }
    }

    deinit { close(fd) }

    /// Zeros to grow a block by before reading into it (never more than a block at once).
    private lazy var zeros = [UInt8](repeating: 0, count: max(1, blockSize))

    /// Emptied block buffers to fill again, so that blocks do not each cost fresh pages.
    private var spare: [[UInt8]] = []

    /// Gives back a block's buffer once its records are parsed.
    func recycle(_ buffer: [UInt8]) {
        if spare.count < 8 { spare.append(buffer) }
    }

    /// The next block and the line its first record starts on; nil at the end of the file.
    func next() throws -> (bytes: [UInt8], firstLine: Int)? {
        var block = spare.popLast() ?? []
        block.removeAll(keepingCapacity: true)
        block.append(contentsOf: carry)
        carry.removeAll(keepingCapacity: true)
        while true {
            if eof {
                guard !block.isEmpty else { return nil }
                return take(block)
            }
            // Fill up to a whole block (a pipe gives at most its buffer per read).
            let want = max(blockSize, block.count + max(1, blockSize / 4))
            block.reserveCapacity(want)
            while block.count < want {
                if try readMore(into: &block, upTo: want) == 0 { eof = true; break }
            }
            if eof { continue }
            if let end = Self.lastRecordEnd(block), end > 0 {
                carry.append(contentsOf: block[end...])
                block.removeSubrange(end...)
                return take(block)
            }
            // No record ends in this much: a record longer than a block. Read on.
        }
    }

    private func take(_ block: [UInt8]) -> (bytes: [UInt8], firstLine: Int) {
        let line = nextLine
        nextLine += Self.newlines(block)
        return (block, line)
    }

    private func readMore(into block: inout [UInt8], upTo want: Int) throws -> Int {
        let start = block.count
        let room = min(want - start, zeros.count)
        // Grow by copying zeros: one memcpy, where a generic fill is slow in debug builds.
        zeros.withUnsafeBufferPointer { block.append(contentsOf: UnsafeBufferPointer(rebasing: $0[0..<room])) }
        var n: Int
        repeat {
            n = block.withUnsafeMutableBytes { read(fd, $0.baseAddress! + start, room) }
        } while n < 0 && errno == EINTR
        if n < 0 {
            let code = errno
            block.removeSubrange(start...)
            throw VaultError.system(.ioError, "read failed", path: path, errno: code)
        }
        block.removeSubrange((start + n)...)
        bytesRead += n
        return n
    }

    /// The offset just after the last newline of `block` that ends a record, given that
    /// `block` starts at a record's start; nil if none does. Follows `CSVReader`: a field
    /// is quoted only when it starts with a quote, inside it a doubled quote is a quote,
    /// and a quote anywhere else is a plain character.
    static func lastRecordEnd(_ block: [UInt8]) -> Int? {
        block.withUnsafeBytes { b -> Int? in
            guard let base = b.baseAddress else { return nil }
            let count = b.count
            var last: Int? = nil
            var plainFrom = 0 // start of the current stretch outside quotes
            var i = 0
            func lastNewline(_ from: Int, _ to: Int) -> Int? {
                var k = to
                while k > from {
                    k -= 1
                    if b[k] == 10 { return k + 1 }
                }
                return nil
            }
            while i < count {
                guard let q = memchr(base + i, 34, count - i) else { break }
                let quote = base.distance(to: UnsafeRawPointer(q))
                let opens = quote == 0 || b[quote - 1] == 44 || b[quote - 1] == 10
                guard opens else { i = quote + 1; continue }
                if let end = lastNewline(plainFrom, quote) { last = end }
                // Find the closing quote: one not doubled.
                var j = quote + 1
                while true {
                    guard j < count, let c = memchr(base + j, 34, count - j) else { return last }
                    let close = base.distance(to: UnsafeRawPointer(c))
                    guard close + 1 < count else { return last } // a doubled quote may follow in the next read
                    if b[close + 1] == 34 { j = close + 2; continue }
                    j = close + 1
                    break
                }
                plainFrom = j
                i = j
            }
            if let end = lastNewline(plainFrom, count) { last = end }
            return last
        }
    }

    /// Newlines in `block` (quoted ones too: `CSVReader` counts lines, not records).
    static func newlines(_ block: [UInt8]) -> Int {
        block.withUnsafeBytes { b -> Int in
            var n = 0
            var i = 0
            let words = b.count / 8
            let highs: UInt64 = 0x8080_8080_8080_8080
            let pattern: UInt64 = 0x0A0A_0A0A_0A0A_0A0A
            while i < words {
                let x = b.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self) ^ pattern
                // A byte of x is zero where the input byte was a newline; count them exactly.
                let zeroes = ~(((x & ~highs) &+ ~highs) | x) & highs
                n += zeroes.nonzeroBitCount
                i += 1
            }
            for k in (words * 8)..<b.count where b[k] == 10 { n += 1 }
            return n
        }
    }
}

/// Hands out a file's blocks in order to parsing threads and has the records parsed from
/// them committed in the same order, so a file read by several threads lands in the
/// staging files exactly as if one thread had read it. A block parsed early waits, at most
/// `window` blocks ahead, for the blocks before it. The first error by block order wins,
/// so the error reported is the one a single thread would have met first.
final class OrderedBlocks: @unchecked Sendable {
    private let reader: CSVBlockReader
    private var head: CSVReader?
    private let path: String
    /// Guards reading: block numbers follow the order of the reads.
    private let readLock = NSLock()
    /// Guards everything else.
    private let condition = NSCondition()
    private let window: Int
    private var handedOut = 0
    private var committed = 0
    private var ready: [Int: IngestSink.RecordBatch] = [:]
    private var committing = false
    private var firstFailure: (block: Int, error: any Error)?
    private var batches: [IngestSink.RecordBatch] = []

    /// `head` reads the first block, past its header; `reader` has the rest.
    init(head: CSVReader, reader: CSVBlockReader, window: Int) {
        self.head = head
        self.reader = reader
        self.path = head.path
        self.window = max(1, window)
    }

    /// The next block's reader, with the block's number; nil when the file is done or failed.
    func take() -> (index: Int, csv: CSVReader)? {
        condition.lock()
        while handedOut - committed >= window && firstFailure == nil { condition.wait() }
        let stop = firstFailure != nil
        condition.unlock()
        if stop { return nil }

        readLock.lock()
        defer { readLock.unlock() }
        let index = condition.withLock { handedOut }
        let csv: CSVReader
        if let first = head {
            head = nil
            csv = first
        } else {
            do {
                guard let block = try reader.next() else { return nil }
                csv = CSVReader(bytes: block.bytes, path: path, firstLine: block.firstLine)
            } catch {
                fail(index, error)
                return nil
            }
        }
        condition.withLock { handedOut += 1 }
        return (index, csv)
    }

    /// Gives back a parsed block's buffer for the next read.
    func recycle(_ csv: CSVReader) {
        let buffer = csv.takeBuffer()
        readLock.withLock { reader.recycle(buffer) }
    }

    /// A batch to parse a block's records into (an emptied one when there is one).
    func batch() -> IngestSink.RecordBatch {
        condition.withLock { batches.popLast() } ?? IngestSink.RecordBatch()
    }

    /// Records that block `index` failed.
    func fail(_ index: Int, _ error: any Error) {
        condition.lock()
        defer { condition.unlock() }
        if firstFailure == nil || index < firstFailure!.block { firstFailure = (index, error) }
        condition.broadcast()
    }

    /// Hands in block `index`'s records; whichever thread finds the next blocks in order
    /// ready commits them with `commit`, then wipes their batches for reuse.
    func finish(_ index: Int, _ batch: IngestSink.RecordBatch, commit: (IngestSink.RecordBatch) throws -> Void) {
        condition.lock()
        ready[index] = batch
        if committing {
            condition.unlock()
            return
        }
        committing = true
        while firstFailure == nil, let next = ready.removeValue(forKey: committed) {
            let number = committed
            condition.unlock()
            var failed: (any Error)?
            do { try commit(next) } catch { failed = error }
            next.reset()
            condition.lock()
            batches.append(next)
            if let failed, firstFailure == nil || number < firstFailure!.block { firstFailure = (number, failed) }
            committed += 1
            condition.broadcast()
        }
        committing = false
        condition.unlock()
    }

    /// The first error by block order, if any. Batches left uncommitted are wiped.
    func finishFile() -> (any Error)? {
        condition.withLock {
            for batch in ready.values { batch.reset() }
            ready.removeAll()
            return firstFailure?.error
        }
    }

    /// Bytes of the file read.
    var bytesRead: Int { readLock.withLock { reader.bytesRead } }
}
