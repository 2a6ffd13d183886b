import Foundation
import VaultCrypto
#if canImport(Glibc)
import Glibc
#endif

/// What the manifest says a shard must be.
public struct ShardExpectation: Sendable {
    public var vaultId: [UInt8]
    public var dataset: String
    public var generation: Int
    public var shardCount: Int
    public var entry: ManifestShard
    /// The plaintext encoding the header must name: clinical tables, or a sealed result.
    public var schemaId: String

    public init(vaultId: [UInt8], dataset: String, generation: Int, shardCount: Int, entry: ManifestShard,
                schemaId: String = ColumnarCodec.schemaId) {
        self.vaultId = vaultId
        self.dataset = dataset
        self.generation = generation
        self.shardCount = shardCount
        self.entry = entry
        self.schemaId = schemaId
    }
}

/// The key a shard is opened with: the dataset's KEK, which unwraps the shard's DEK from
/// its header, or that DEK itself, unwrapped beforehand (what a worker process gets, so it
/// holds the key of its one shard and no other). Either way the key commitment in the body
/// header is checked before anything is decrypted.
public enum ShardKey: Sendable {
    case kek(SecureBytes)
    case dek(SecureBytes)
}

/// Reads and checks shard files.
public enum ShardReader {
    /// Checks a shard with the signing key only: structure, header fields against the
    /// manifest, header and body digests, trailer MAC. Reads the body once.
    /// Returns the parsed header.
    @discardableResult
    public static func verifySignature(path: String, expected: ShardExpectation, signingKey: SecureBytes) throws -> ShardHeader {
        try read(path: path, expected: expected, signingKey: signingKey, kek: nil).header
    }

    /// Reads a shard in one pass over the file. Always checks the structure, the header
    /// fields against the manifest, and the header and body digests (against the trailer
    /// and the manifest). With `signingKey`, also checks the trailer MAC. With `kek`, also
    /// unwraps the DEK, checks the key commitment, and decrypts and authenticates every
    /// chunk as it is read; the plaintext is returned only when every check passed.
    ///
    /// `plaintextBuffer`, when at least as large as the plaintext, receives it instead of a
    /// new allocation (the returned plaintext is then that buffer, of which only the first
    /// `plaintextLength` bytes are meaningful).
    public static func read(path: String, expected: ShardExpectation, signingKey: SecureBytes?, kek: SecureBytes?,
                            plaintextBuffer: SecureBytes? = nil)
        throws -> (header: ShardHeader, plaintext: SecureBytes?, plaintextLength: Int) {
        try read(path: path, expected: expected, signingKey: signingKey, key: kek.map { ShardKey.kek($0) }, plaintextBuffer: plaintextBuffer)
    }

    /// `read` with either key (`ShardKey`).
    public static func read(path: String, expected: ShardExpectation, signingKey: SecureBytes?, key: ShardKey?,
                            plaintextBuffer: SecureBytes? = nil)
        throws -> (header: ShardHeader, plaintext: SecureBytes?, plaintextLength: Int) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw VaultError.system(errno == ENOENT ? .dataError : .ioError, "shard missing or unreadable", path: path, errno: errno)
        }
        defer { close(fd) }
        let (size, block, header) = try openHeader(fd: fd, path: path, expected: expected)
        let bodyLength = size - ShardHeader.blockSize - ShardHeader.trailerSize
        let trailer = try readExactly(fd: fd, count: ShardHeader.trailerSize, offset: size - ShardHeader.trailerSize, path: path)
        guard Array(trailer[0..<8]) == ShardHeader.trailerMagic else {
            throw VaultError(.dataError, "trailer magic is wrong (truncated, extended or corrupted shard)", location: path)
        }
        var r = CanonicalReader(trailer, offset: 8)
        let storedLength = try r.u64("body length")
        let storedDigest = try r.raw(32, "body digest")
        let storedMac = try r.raw(32, "MAC")
        guard storedLength == UInt64(bodyLength) else {
            throw VaultError(.dataError, "trailer says the body is \(storedLength) bytes but it is \(bodyLength)", location: path)
        }

        // Decryption set-up: the chunk layout must be valid before anything is decrypted.
        var decryptor: (opener: ChunkedOpener, layout: ChunkedEncryption.Layout, plaintext: SecureBytes)?
        if let key {
            do {
                let dek = switch key {
                case .kek(let kek): try header.unwrapDEK(kek: kek)
                case .dek(let dek): dek
                }
                let chunkHeader = try readExactly(fd: fd, count: ChunkedEncryption.headerLength, offset: ShardHeader.blockSize, path: path)
                let opener = try chunkHeader.withUnsafeBytes { try ChunkedOpener(key: dek, context: header.context, header: $0) }
                let layout = try ChunkedEncryption.Layout(bodyLength: bodyLength - ChunkedEncryption.headerLength)
                let plaintext = plaintextBuffer.flatMap { $0.count >= layout.plaintextLength ? $0 : nil }
                    ?? SecureBytes(zeroedCount: layout.plaintextLength)
                decryptor = (opener, layout, plaintext)
            } catch let error as CryptoError {
                throw VaultError(.dataError, "decryption failed: \(error.message)", location: path)
            } catch let error as VaultError {
                throw VaultError(.dataError, error.message, location: path)
            }
        }

        // On any failure below, wipe whatever was decrypted.
        var completed = false
        var plainOffset = 0
        defer {
            if !completed, let d = decryptor, plainOffset > 0 {
                d.plaintext.withUnsafeMutableBytes { secureZero(UnsafeMutableRawBufferPointer(rebasing: $0[0..<plainOffset])) }
            }
        }

        // One pass over the body: hash every byte; decrypt whole chunks as they arrive.
        let digest = try Digest(.sha256)
        let piece = 64 * ChunkedEncryption.sealedChunkSize
        let buffer = ReadBuffer.current(capacity: piece + ChunkedEncryption.headerLength)
        var offset = 0 // within the body
        var chunkIndex: UInt64 = 0
        while offset < bodyLength {
            // The first piece also holds the 56-byte chunked-encryption header, so that every
            // piece ends on a chunk boundary.
            let want = min(piece + (offset == 0 ? ChunkedEncryption.headerLength : 0), bodyLength - offset)
            let n = try preadFully(fd: fd, into: UnsafeMutableRawBufferPointer(rebasing: buffer.bytes[0..<want]),
                                   offset: ShardHeader.blockSize + offset, path: path)
            guard n == want else { throw VaultError(.dataError, "shard changed while being read", location: path) }
            let data = UnsafeRawBufferPointer(rebasing: buffer.bytes[0..<n])
            digest.update(data)
            if let d = decryptor {
                var local = offset == 0 ? ChunkedEncryption.headerLength : 0
                while local < n {
                    let range = d.layout.range(ofChunk: chunkIndex)
                    let length = range.count
                    guard local + length <= n else { throw VaultError(.software, "chunk crosses a read boundary", location: path) }
                    do {
                        try d.plaintext.withUnsafeMutableBytes { out in
                            let written = try d.opener.openChunk(index: chunkIndex, sealed: UnsafeRawBufferPointer(rebasing: data[local..<local + length]),
                                                                 isFinal: chunkIndex == d.layout.chunkCount - 1,
                                                                 into: UnsafeMutableRawBufferPointer(rebasing: out[plainOffset...]))
                            plainOffset += written
                        }
                    } catch let error as CryptoError {
                        throw VaultError(.dataError, "decryption failed: \(error.message)", location: path)
                    }
                    local += length
                    chunkIndex += 1
                }
            }
            offset += n
        }
        let bodyDigest = digest.finalize()
        guard ConstantTime.equals(bodyDigest, storedDigest) else {
            throw VaultError(.dataError, "body SHA-256 does not match the trailer: ciphertext was modified", location: path)
        }
        guard Hex.encode(bodyDigest) == expected.entry.bodySha256 else {
            throw VaultError(.dataError, "body SHA-256 does not match the manifest", location: path)
        }
        if let signingKey {
            let mac = try HMACSHA256.authenticate(key: signingKey, ShardHeader.macInput(block: block, bodyLength: storedLength, bodyDigest: bodyDigest))
            guard ConstantTime.equals(mac, storedMac) else {
                throw VaultError(.dataError, "shard MAC does not verify under \(header.signingKeyId) version \(header.signingVersion)", location: path)
            }
        }
        if let d = decryptor {
            guard chunkIndex == d.layout.chunkCount, plainOffset == d.layout.plaintextLength else {
                throw VaultError(.dataError, "decryption failed: not every chunk was read", location: path)
            }
            completed = true
            return (header, d.plaintext, plainOffset)
        }
        completed = true
        return (header, nil, 0)
    }

    /// Unwraps a shard's DEK with the KEK, from a header that matches the manifest (fields
    /// and SHA-256). Reads the header block only; the body is checked by whoever decrypts.
    public static func unwrapDEK(path: String, expected: ShardExpectation, kek: SecureBytes) throws -> SecureBytes {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw VaultError.system(errno == ENOENT ? .dataError : .ioError, "shard missing or unreadable", path: path, errno: errno)
        }
        defer { close(fd) }
        let (_, _, header) = try openHeader(fd: fd, path: path, expected: expected)
        do { return try header.unwrapDEK(kek: kek) } catch let error as VaultError {
            throw VaultError(.dataError, error.message, location: path)
        }
    }

    /// The file's size and header block, checked: size as the manifest says, header parsed,
    /// its fields equal to the manifest's, its SHA-256 the manifest's.
    static func openHeader(fd: Int32, path: String, expected: ShardExpectation) throws -> (size: Int, block: [UInt8], header: ShardHeader) {
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw VaultError.system(.ioError, "cannot stat shard", path: path, errno: errno) }
        let size = Int(st.st_size)
        let minimum = ShardHeader.blockSize + ChunkedEncryption.headerLength + ChunkedEncryption.tagLength + ShardHeader.trailerSize
        guard size >= minimum else {
            throw VaultError(.dataError, "shard is truncated: \(size) bytes, less than the minimum \(minimum)", location: path)
        }
        guard size == expected.entry.size else {
            throw VaultError(.dataError, "shard size \(size) does not match the manifest's \(expected.entry.size) (truncated or extended)", location: path)
        }
        let block = try readExactly(fd: fd, count: ShardHeader.blockSize, offset: 0, path: path)
        let header: ShardHeader
        do { header = try ShardHeader.parse(block: block) } catch let error as VaultError {
            throw VaultError(.dataError, error.message, location: path)
        }
        try check(header: header, against: expected, path: path)
        guard Hex.encode(Digest.sha256(block)) == expected.entry.headerSha256 else {
            throw VaultError(.dataError, "header SHA-256 does not match the manifest", location: path)
        }
        return (size, block, header)
    }

    static func check(header: ShardHeader, against expected: ShardExpectation, path: String) throws {
        func mismatch(_ what: String, _ found: String, _ want: String) -> VaultError {
            VaultError(.dataError, "header \(what) is \(found), expected \(want) (shard moved, swapped or copied from elsewhere)", location: path)
        }
        guard header.vaultId == expected.vaultId else { throw mismatch("vault id", Hex.encode(header.vaultId), Hex.encode(expected.vaultId)) }
        guard header.dataset == expected.dataset else { throw mismatch("dataset", "'\(header.dataset)'", "'\(expected.dataset)'") }
        guard header.kekId == Keyring.keyId(expected.dataset, .kek) else { throw mismatch("KEK id", header.kekId, Keyring.keyId(expected.dataset, .kek)) }
        guard header.signingKeyId == Keyring.keyId(expected.dataset, .signing) else {
            throw mismatch("signing key id", header.signingKeyId, Keyring.keyId(expected.dataset, .signing))
        }
        guard expected.generation >= 1, header.generation == UInt64(expected.generation) else { throw mismatch("generation", "\(header.generation)", "\(expected.generation)") }
        guard header.shardIndex == UInt32(expected.entry.index) else { throw mismatch("shard index", "\(header.shardIndex)", "\(expected.entry.index)") }
        guard header.shardCount == UInt32(expected.shardCount) else { throw mismatch("shard count", "\(header.shardCount)", "\(expected.shardCount)") }
        guard Hex.encode(header.dataKeyId) == expected.entry.dataKeyId else { throw mismatch("data-key id", Hex.encode(header.dataKeyId), expected.entry.dataKeyId) }
        guard Int(header.kekVersion) == expected.entry.kekVersion else { throw mismatch("KEK version", "\(header.kekVersion)", "\(expected.entry.kekVersion)") }
        guard Int(header.signingVersion) == expected.entry.signingVersion else {
            throw mismatch("signing key version", "\(header.signingVersion)", "\(expected.entry.signingVersion)")
        }
        guard header.schemaId == expected.schemaId else { throw mismatch("schema id", header.schemaId, expected.schemaId) }
    }

    /// Opens a shard for processing: checks everything `read` checks with a KEK (the
    /// signature too when `signingKey` is given), then decodes the tables and checks
    /// their record counts against the manifest. The plaintext never leaves memory.
    public static func decrypt(path: String, expected: ShardExpectation, kek: SecureBytes, signingKey: SecureBytes? = nil) throws -> DecodedShard {
        try decrypt(path: path, expected: expected, key: .kek(kek), signingKey: signingKey)
    }

    /// `decrypt` with either key (`ShardKey`).
    public static func decrypt(path: String, expected: ShardExpectation, key: ShardKey, signingKey: SecureBytes? = nil) throws -> DecodedShard {
        let (_, plaintext, length) = try read(path: path, expected: expected, signingKey: signingKey, key: key)
        guard let plaintext else { throw VaultError(.software, "no plaintext", location: path) }
        do {
            let decoded = try plaintext.withUnsafeBytes { try DecodedShard.decode(UnsafeRawBufferPointer(rebasing: $0[0..<length])) }
            guard decoded.counts == expected.entry.records else {
                throw VaultError(.dataError, "decrypted record counts differ from the manifest", location: path)
            }
            return decoded
        } catch let error as VaultError where error.location == nil {
            throw VaultError(.dataError, error.message, location: path)
        }
    }

    /// Opens a shard for an analysis that reads some columns only. First every check
    /// `read` makes without a key: the header against the manifest, and the SHA-256 of the
    /// whole body against the trailer and the manifest (and the MAC, given `signingKey`),
    /// so a change anywhere in the file fails. Then it decrypts just the chunks that hold
    /// the plaintext's structure and the wanted columns, each authenticated by its tag
    /// under the shard's DEK (checked against the commitment first), and decodes those
    /// columns. Chunks nobody reads are never decrypted, nor their memory touched.
    public static func decryptColumns(path: String, expected: ShardExpectation, key: ShardKey, signingKey: SecureBytes?,
                                      columns: [RecordKind: Set<Int>]) throws -> DecodedShard {
        let (header, _, _) = try read(path: path, expected: expected, signingKey: signingKey, key: nil)
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw VaultError.system(errno == ENOENT ? .dataError : .ioError, "shard missing or unreadable", path: path, errno: errno)
        }
        defer { close(fd) }
        let bodyLength = expected.entry.size - ShardHeader.blockSize - ShardHeader.trailerSize
        let opener: ChunkedOpener
        let layout: ChunkedEncryption.Layout
        do {
            let dek = switch key {
            case .kek(let kek): try header.unwrapDEK(kek: kek)
            case .dek(let dek): dek
            }
            let chunkHeader = try readExactly(fd: fd, count: ChunkedEncryption.headerLength, offset: ShardHeader.blockSize, path: path)
            opener = try chunkHeader.withUnsafeBytes { try ChunkedOpener(key: dek, context: header.context, header: $0) }
            layout = try ChunkedEncryption.Layout(bodyLength: bodyLength - ChunkedEncryption.headerLength)
        } catch let error as CryptoError {
            throw VaultError(.dataError, "decryption failed: \(error.message)", location: path)
        } catch let error as VaultError {
            throw VaultError(.dataError, error.message, location: path)
        }
        let chunkCount = Int(layout.chunkCount)
        let plaintext = try SparsePlaintext(length: layout.plaintextLength, chunkCount: chunkCount)
        let buffer = ReadBuffer.current(capacity: 64 * ChunkedEncryption.sealedChunkSize + ChunkedEncryption.headerLength)
        let firstChunkOffset = ShardHeader.blockSize + ChunkedEncryption.headerLength
        // Decrypts the chunks under `range` that are not yet open, in runs of up to 64.
        func ensure(_ range: Range<Int>) throws {
            guard !range.isEmpty else { return }
            var chunk = range.lowerBound / ChunkedEncryption.chunkSize
            let last = min((range.upperBound - 1) / ChunkedEncryption.chunkSize, chunkCount - 1)
            while chunk <= last {
                if plaintext.opened[chunk] { chunk += 1; continue }
                var end = chunk
                while end <= last && !plaintext.opened[end] && end - chunk < 64 { end += 1 }
                let start = layout.range(ofChunk: UInt64(chunk)).lowerBound
                let stop = layout.range(ofChunk: UInt64(end - 1)).upperBound
                let n = try preadFully(fd: fd, into: UnsafeMutableRawBufferPointer(rebasing: buffer.bytes[0..<stop - start]),
                                       offset: firstChunkOffset + start, path: path)
                guard n == stop - start else { throw VaultError(.dataError, "shard changed while being read", location: path) }
                for index in chunk..<end {
                    let sealed = layout.range(ofChunk: UInt64(index))
                    do {
                        _ = try opener.openChunk(index: UInt64(index),
                                                 sealed: UnsafeRawBufferPointer(rebasing: buffer.bytes[(sealed.lowerBound - start)..<(sealed.upperBound - start)]),
                                                 isFinal: index == chunkCount - 1,
                                                 into: UnsafeMutableRawBufferPointer(rebasing: plaintext.bytes[(index * ChunkedEncryption.chunkSize)...]))
                    } catch let error as CryptoError {
                        throw VaultError(.dataError, "decryption failed: \(error.message)", location: path)
                    }
                    plaintext.opened[index] = true
                }
                chunk = end
            }
        }
        do {
            let decoded = try DecodedShard.decode(UnsafeRawBufferPointer(rebasing: plaintext.bytes[0..<layout.plaintextLength]),
                                                  columns: columns, ensure: ensure)
            guard decoded.counts == expected.entry.records else {
                throw VaultError(.dataError, "decrypted record counts differ from the manifest", location: path)
            }
            return decoded
        } catch let error as VaultError where error.location == nil {
            throw VaultError(.dataError, error.message, location: path)
        }
    }

    /// Deep verification: every check, and the plaintext's structure and record counts,
    /// without building the tables.
    public static func verifyDeep(path: String, expected: ShardExpectation, kek: SecureBytes, signingKey: SecureBytes) throws {
        let scratch = ScratchPlaintext.current()
        let (_, plaintext, length) = try read(path: path, expected: expected, signingKey: signingKey, kek: kek,
                                              plaintextBuffer: scratch.buffer(atLeast: expected.entry.size))
        guard let plaintext else { throw VaultError(.software, "no plaintext", location: path) }
        defer { plaintext.withUnsafeMutableBytes { secureZero(UnsafeMutableRawBufferPointer(rebasing: $0[0..<length])) } }
        do {
            let counts = try plaintext.withUnsafeBytes { try DecodedShard.validate(UnsafeRawBufferPointer(rebasing: $0[0..<length])) }
            guard counts == expected.entry.records else {
                throw VaultError(.dataError, "decrypted record counts differ from the manifest", location: path)
            }
        } catch let error as VaultError where error.location == nil {
            throw VaultError(.dataError, error.message, location: path)
        }
    }

    static func readExactly(fd: Int32, count: Int, offset: Int, path: String) throws -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        let n = try out.withUnsafeMutableBytes { try preadFully(fd: fd, into: $0, offset: offset, path: path) }
        guard n == count else { throw VaultError(.dataError, "shard is truncated", location: path) }
        return out
    }

    static func preadFully(fd: Int32, into buffer: UnsafeMutableRawBufferPointer, offset: Int, path: String) throws -> Int {
        var done = 0
        while done < buffer.count {
            let n = pread(fd, buffer.baseAddress! + done, buffer.count - done, off_t(offset + done))
            if n < 0 {
                if errno == EINTR { continue }
                throw VaultError.system(.ioError, "read failed", path: path, errno: errno)
            }
            if n == 0 { break }
            done += n
        }
        return done
    }
}

/// A per-thread read buffer, reused so that large reads do not touch fresh memory each time.
final class ReadBuffer {
    let bytes: UnsafeMutableRawBufferPointer
    private init(capacity: Int) { bytes = .allocate(byteCount: capacity, alignment: 64) }
    deinit { bytes.deallocate() }

    static func current(capacity: Int) -> ReadBuffer {
        let key = "shardvault.readbuffer.\(capacity)"
        if let existing = Thread.current.threadDictionary[key] as? ReadBuffer { return existing }
        let buffer = ReadBuffer(capacity: capacity)
        Thread.current.threadDictionary[key] = buffer
        return buffer
    }
}

/// A plaintext filled chunk by chunk on demand, in this thread's `PlaintextArena`: memory
/// is touched only where a chunk is decrypted, and those chunks are wiped when released.
final class SparsePlaintext {
    let bytes: UnsafeMutableRawBufferPointer
    var opened: [Bool]

    init(length: Int, chunkCount: Int) throws {
        bytes = try PlaintextArena.current(capacity: Swift.max(length, 1))
        opened = [Bool](repeating: false, count: chunkCount)
    }

    deinit {
        for (index, open) in opened.enumerated() where open {
            let start = index * ChunkedEncryption.chunkSize
            secureZero(UnsafeMutableRawBufferPointer(rebasing: bytes[start..<Swift.min(start + ChunkedEncryption.chunkSize, bytes.count)]))
        }
    }
}

/// One anonymous mapping per thread for sparse plaintexts, reused from shard to shard (so a
/// thread does not fault in fresh pages for every shard) and grown when a shard is larger.
/// Mapped directly, not through malloc, so that it is never backed by huge pages: a sparse
/// read touches 4 KiB pages, not 2 MiB ones.
final class PlaintextArena {
    private var region: UnsafeMutableRawBufferPointer?

    static func current(capacity: Int) throws -> UnsafeMutableRawBufferPointer {
        let key = "shardvault.plaintextarena"
        let arena = Thread.current.threadDictionary[key] as? PlaintextArena ?? {
            let made = PlaintextArena()
            Thread.current.threadDictionary[key] = made
            return made
        }()
        if let region = arena.region, region.count >= capacity { return UnsafeMutableRawBufferPointer(rebasing: region[0..<capacity]) }
        if let region = arena.region { munmap(region.baseAddress, region.count) }
        arena.region = nil
        let size = (capacity + 0xFFFF) & ~0xFFFF
        let address = mmap(nil, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0)
        guard let address, address != MAP_FAILED else {
            throw VaultError.system(.software, "cannot map \(size) bytes for a plaintext", path: "memory", errno: errno)
        }
        madvise(address, size, MADV_NOHUGEPAGE)
        arena.region = UnsafeMutableRawBufferPointer(start: address, count: size)
        return UnsafeMutableRawBufferPointer(start: address, count: capacity)
    }

    deinit { if let region { munmap(region.baseAddress, region.count) } }
}

/// A per-thread secret buffer for deep verification, reused across shards so that each
/// shard does not touch fresh memory; wiped after each use.
final class ScratchPlaintext {
    private var secret = SecureBytes(zeroedCount: 0)

    static func current() -> ScratchPlaintext {
        let key = "shardvault.scratchplaintext"
        if let existing = Thread.current.threadDictionary[key] as? ScratchPlaintext { return existing }
        let scratch = ScratchPlaintext()
        Thread.current.threadDictionary[key] = scratch
        return scratch
    }

    func buffer(atLeast count: Int) -> SecureBytes {
        if secret.count < count { secret = SecureBytes(zeroedCount: count) }
        return secret
    }
}
