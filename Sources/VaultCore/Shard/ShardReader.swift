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
                schemaId: String) {
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
        let fd = try openShard(path)
        defer { close(fd) }
        return try read(fd: fd, path: path, expected: expected, signingKey: signingKey, key: key, plaintextBuffer: plaintextBuffer)
    }

    static func openShard(_ path: String) throws -> Int32 {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw VaultError.system(errno == ENOENT ? .dataError : .ioError, "shard missing or unreadable", path: path, errno: errno)
        }
        return fd
    }

    /// `read` from a shard file already open on `fd`.
    static func read(fd: Int32, path: String, expected: ShardExpectation, signingKey: SecureBytes?, key: ShardKey?,
                     plaintextBuffer: SecureBytes? = nil)
        throws -> (header: ShardHeader, plaintext: SecureBytes?, plaintextLength: Int) {
        let sealed = try openSealed(fd: fd, path: path, expected: expected)
        let header = sealed.header, bodyLength = sealed.bodyLength

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
        let piece = ChunkCursor.run * ChunkedEncryption.sealedChunkSize
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
        try check(body: digest.finalize(), of: sealed, expected: expected, signingKey: signingKey, path: path)
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

    /// A shard file's header block and trailer, checked against the manifest and each
    /// other; what remains to check is the body (`check(body:of:)`).
    struct Sealed {
        let block: [UInt8]
        let header: ShardHeader
        /// The body's length: the chunked-encryption header and the sealed chunks.
        let bodyLength: Int
        let storedDigest: [UInt8]
        let storedMac: [UInt8]
    }

    /// Reads and checks a shard's header block (`openHeader`) and its trailer: magic and
    /// body length. Reads no byte of the body.
    static func openSealed(fd: Int32, path: String, expected: ShardExpectation) throws -> Sealed {
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
        return Sealed(block: block, header: header, bodyLength: bodyLength, storedDigest: storedDigest, storedMac: storedMac)
    }

    /// Checks the body's SHA-256 against the trailer and the manifest and, given
    /// `signingKey`, the trailer's MAC over the header block, the length and that digest.
    static func check(body digest: [UInt8], of sealed: Sealed, expected: ShardExpectation, signingKey: SecureBytes?, path: String) throws {
        guard ConstantTime.equals(digest, sealed.storedDigest) else {
            throw VaultError(.dataError, "body SHA-256 does not match the trailer: ciphertext was modified", location: path)
        }
        guard Hex.encode(digest) == expected.entry.bodySha256 else {
            throw VaultError(.dataError, "body SHA-256 does not match the manifest", location: path)
        }
        if let signingKey {
            let mac = try HMACSHA256.authenticate(key: signingKey, ShardHeader.macInput(block: sealed.block, bodyLength: UInt64(sealed.bodyLength),
                                                                                        bodyDigest: digest))
            guard ConstantTime.equals(mac, sealed.storedMac) else {
                throw VaultError(.dataError, "shard MAC does not verify under \(sealed.header.signingKeyId) version \(sealed.header.signingVersion)",
                                 location: path)
            }
        }
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
            try checkSchema(decoded.schemaId, expected: expected, path: path)
            guard decoded.counts == expected.entry.records else {
                throw VaultError(.dataError, "decrypted record counts differ from the manifest", location: path)
            }
            return decoded
        } catch let error as VaultError where error.location == nil {
            throw VaultError(.dataError, error.message, location: path)
        }
    }

    /// Opens a shard for an analysis that reads some columns only, in one pass over the
    /// file. First the checks that read no body: the header against the manifest, the
    /// trailer, and the key commitment under the shard's DEK. Then it decrypts just the
    /// chunks that hold the plaintext's structure and the wanted columns, each
    /// authenticated by its tag, and decodes those columns, keeping version 2's compact
    /// forms (`DecodedShard.decode(compact:)`), while it hashes the whole body: each chunk
    /// decrypted is hashed from the bytes it is decrypted from, and the chunks nobody reads
    /// are hashed only, never decrypted nor their memory touched. The SHA-256 must match
    /// the trailer and the manifest (and the MAC, given `signingKey`), so a change anywhere
    /// in the file fails; when it does not match, that is the error, whatever the decoder
    /// made of the chunks, and the columns decoded are wiped.
    public static func decryptColumns(path: String, expected: ShardExpectation, key: ShardKey, signingKey: SecureBytes?,
                                      columns: [RecordKind: Set<Int>]) throws -> DecodedShard {
        let fd = try openShard(path)
        defer { close(fd) }
        let sealed = try openSealed(fd: fd, path: path, expected: expected)
        let cursor: ChunkCursor
        do {
            let dek = switch key {
            case .kek(let kek): try sealed.header.unwrapDEK(kek: kek)
            case .dek(let dek): dek
            }
            let chunkHeader = try readExactly(fd: fd, count: ChunkedEncryption.headerLength, offset: ShardHeader.blockSize, path: path)
            let opener = try chunkHeader.withUnsafeBytes { try ChunkedOpener(key: dek, context: sealed.header.context, header: $0) }
            let layout = try ChunkedEncryption.Layout(bodyLength: sealed.bodyLength - ChunkedEncryption.headerLength)
            cursor = try ChunkCursor(fd: fd, path: path, opener: opener, layout: layout, hashing: true)
        } catch let error as CryptoError {
            throw VaultError(.dataError, "decryption failed: \(error.message)", location: path)
        } catch let error as VaultError {
            throw VaultError(.dataError, error.message, location: path)
        }
        var reader = DecryptingReader(cursor: cursor)
        var decoded: DecodedShard
        do {
            decoded = try DecodedShard.decode(&reader, columns: columns, compact: true)
        } catch {
            // A modified file is reported as such, before whatever the decoder found wrong.
            try check(body: try cursor.finishDigest(), of: sealed, expected: expected, signingKey: signingKey, path: path)
            if let error = error as? VaultError, error.location == nil { throw VaultError(.dataError, error.message, location: path) }
            throw error
        }
        do {
            try check(body: try cursor.finishDigest(), of: sealed, expected: expected, signingKey: signingKey, path: path)
            try checkSchema(decoded.schemaId, expected: expected, path: path)
            guard decoded.counts == expected.entry.records else {
                throw VaultError(.dataError, "decrypted record counts differ from the manifest", location: path)
            }
            return decoded
        } catch {
            decoded.wipe()
            throw error
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
            let (counts, schemaId) = try plaintext.withUnsafeBytes { try DecodedShard.validate(UnsafeRawBufferPointer(rebasing: $0[0..<length])) }
            try checkSchema(schemaId, expected: expected, path: path)
            guard counts == expected.entry.records else {
                throw VaultError(.dataError, "decrypted record counts differ from the manifest", location: path)
            }
        } catch let error as VaultError where error.location == nil {
            throw VaultError(.dataError, error.message, location: path)
        }
    }

    /// The plaintext's own encoding (its magic) must be the one its header names.
    static func checkSchema(_ schemaId: String, expected: ShardExpectation, path: String) throws {
        guard schemaId == expected.schemaId else {
            throw VaultError(.dataError, "plaintext is encoded as \(schemaId) but the header names \(expected.schemaId)", location: path)
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

/// A shard's plaintext opened chunk by chunk as it is read, never held whole: a chunk is
/// read, authenticated and decrypted when a byte of it is first wanted. Runs of whole
/// chunks are decrypted straight into the caller's buffer (a column's array), so no page
/// is written twice; the rest goes through one chunk of scratch, wiped when done. A worker
/// process thus touches fresh memory only for the columns it decodes.
///
/// With `hashing`, the cursor also computes the SHA-256 of the whole body (the
/// chunked-encryption header and every sealed chunk, in file order) in the same pass: the
/// bytes between two reads are hashed when the later read comes, the bytes read are hashed
/// from the buffer they are decrypted from, and `finishDigest` hashes the rest. Every byte
/// decrypted is thus a byte hashed, read once; reads must then move forward.
final class ChunkCursor {
    let fd: Int32
    let path: String
    let opener: ChunkedOpener
    let layout: ChunkedEncryption.Layout
    let chunkCount: Int
    let length: Int
    private let sealed: ReadBuffer
    private let scratch = UnsafeMutableRawBufferPointer.allocate(byteCount: ChunkedEncryption.chunkSize, alignment: 64)
    /// The chunk held in `scratch`, or -1.
    private var cached = -1
    /// Chunks decrypted so far (each should be once, for a reader that moves forward).
    private(set) var chunksOpened = 0
    /// The body's running SHA-256 and how many body bytes it has taken, with `hashing`.
    private let digest: Digest?
    private var hashed = 0
    /// Chunks read with one `pread` (here and by `ShardReader.read`): 256 KiB, as fast as
    /// larger reads from the page cache, and a quarter of the fresh pages a worker process
    /// touches for its read buffer compared with 1 MiB.
    static let run = 16

    init(fd: Int32, path: String, opener: ChunkedOpener, layout: ChunkedEncryption.Layout, hashing: Bool = false) throws {
        self.fd = fd
        self.path = path
        self.opener = opener
        self.layout = layout
        chunkCount = Int(layout.chunkCount)
        length = layout.plaintextLength
        sealed = ReadBuffer.current(capacity: Self.run * ChunkedEncryption.sealedChunkSize + ChunkedEncryption.headerLength)
        digest = hashing ? try Digest(.sha256) : nil
    }

    /// The body's length in the file: the chunked-encryption header and the sealed chunks.
    private var bodyLength: Int { ChunkedEncryption.headerLength + layout.range(ofChunk: layout.chunkCount - 1).upperBound }

    /// With `hashing`: hashes the body from where the reads left off to its end and
    /// returns its SHA-256. Call once, after the last read.
    func finishDigest() throws -> [UInt8] {
        guard let digest else { throw VaultError(.software, "the cursor was not made to hash the body", location: path) }
        try hash(upTo: bodyLength)
        return digest.finalize()
    }

    /// Hashes the body bytes from `hashed` to `end`, read through the read buffer.
    private func hash(upTo end: Int) throws {
        guard let digest else { return }
        while hashed < end {
            let take = Swift.min(sealed.bytes.count, end - hashed)
            let piece = UnsafeMutableRawBufferPointer(rebasing: sealed.bytes[0..<take])
            let n = try ShardReader.preadFully(fd: fd, into: piece, offset: ShardHeader.blockSize + hashed, path: path)
            guard n == take else { throw VaultError(.dataError, "shard changed while being read", location: path) }
            digest.update(UnsafeRawBufferPointer(piece))
            hashed += take
        }
    }

    deinit {
        secureZero(scratch)
        scratch.deallocate()
    }

    /// Copies the plaintext bytes `range` into `destination` (of the same size). On failure
    /// `destination` is wiped whole: nothing decrypted, authenticated or not, is left in it.
    func copy(_ range: Range<Int>, into destination: UnsafeMutableRawBufferPointer) throws {
        precondition(range.lowerBound >= 0 && range.upperBound <= length && destination.count == range.count)
        let size = ChunkedEncryption.chunkSize
        var position = range.lowerBound, written = 0
        do {
            while position < range.upperBound {
                let chunk = position / size
                let chunkStart = chunk * size, chunkEnd = Swift.min(chunkStart + size, length)
                if position == chunkStart && chunkEnd <= range.upperBound && chunk != cached {
                    // A run of chunks wholly inside the range: decrypted in place.
                    var end = chunk + 1
                    while end < chunkCount && end - chunk < Self.run && Swift.min((end + 1) * size, length) <= range.upperBound { end += 1 }
                    let base = try readSealed(chunk..<end)
                    for index in chunk..<end {
                        written += try open(index, base: base, into: UnsafeMutableRawBufferPointer(rebasing: destination[written...]))
                    }
                    position = Swift.min(end * size, length)
                } else {
                    if chunk != cached {
                        cached = -1
                        _ = try open(chunk, base: try readSealed(chunk..<chunk + 1), into: scratch)
                        cached = chunk
                    }
                    let take = Swift.min(range.upperBound, chunkEnd) - position
                    (destination.baseAddress! + written).copyMemory(from: scratch.baseAddress! + (position - chunkStart), byteCount: take)
                    position += take
                    written += take
                }
            }
        } catch {
            secureZero(destination)
            if let error = error as? CryptoError { throw VaultError(.dataError, "decryption failed: \(error.message)", location: path) }
            throw error
        }
    }

    /// Reads the sealed chunks `chunks` into the read buffer (hashing the body up to their
    /// end, with `hashing`); returns the offset of its first byte among the sealed chunks.
    private func readSealed(_ chunks: Range<Int>) throws -> Int {
        let start = layout.range(ofChunk: UInt64(chunks.lowerBound)).lowerBound
        let stop = layout.range(ofChunk: UInt64(chunks.upperBound - 1)).upperBound
        let bodyStart = ChunkedEncryption.headerLength + start
        if digest != nil {
            // A byte read again might not be the byte hashed: the body is hashed once, in order.
            guard bodyStart >= hashed else { throw VaultError(.software, "a hashing shard cursor was asked to read backwards", location: path) }
            try hash(upTo: bodyStart)
        }
        let bytes = UnsafeMutableRawBufferPointer(rebasing: sealed.bytes[0..<stop - start])
        let n = try ShardReader.preadFully(fd: fd, into: bytes, offset: ShardHeader.blockSize + bodyStart, path: path)
        guard n == stop - start else { throw VaultError(.dataError, "shard changed while being read", location: path) }
        if let digest {
            digest.update(UnsafeRawBufferPointer(bytes))
            hashed = ChunkedEncryption.headerLength + stop
        }
        return start
    }

    private func open(_ index: Int, base: Int, into output: UnsafeMutableRawBufferPointer) throws -> Int {
        let range = layout.range(ofChunk: UInt64(index))
        chunksOpened += 1
        return try opener.openChunk(index: UInt64(index), sealed: UnsafeRawBufferPointer(rebasing: sealed.bytes[(range.lowerBound - base)..<(range.upperBound - base)]),
                                    isFinal: index == chunkCount - 1, into: output)
    }
}

/// The column decoder's view of a `ChunkCursor`: reads at an offset, decrypting as it goes.
struct DecryptingReader: ColumnSource {
    let cursor: ChunkCursor
    private(set) var offset = 0
    init(cursor: ChunkCursor) { self.cursor = cursor }
    var remaining: Int { cursor.length - offset }

    private mutating func integer<T: FixedWidthInteger>(_: T.Type) throws -> T {
        try need(MemoryLayout<T>.size)
        var value: T = 0
        try withUnsafeMutableBytes(of: &value) { try cursor.copy(offset..<offset + $0.count, into: $0) }
        offset += MemoryLayout<T>.size
        return T(littleEndian: value)
    }

    mutating func u8() throws -> UInt8 { try integer(UInt8.self) }
    mutating func u16() throws -> UInt16 { try integer(UInt16.self) }
    mutating func u32() throws -> UInt32 { try integer(UInt32.self) }
    mutating func u64() throws -> UInt64 { try integer(UInt64.self) }
    mutating func raw(_ n: Int) throws -> [UInt8] { try array(n, of: UInt8.self) }

    mutating func array<T: BitwiseCopyable>(_ count: Int, of: T.Type) throws -> [T] {
        let size = count * MemoryLayout<T>.stride
        try need(size)
        let start = offset
        let values = try [T](unsafeUninitializedCapacity: count) { buffer, initialized in
            try cursor.copy(start..<start + size, into: UnsafeMutableRawBufferPointer(buffer))
            initialized = count
        }
        offset += size
        return values
    }

    mutating func utf8(_ n: Int) throws -> String? {
        try need(n)
        let start = offset
        let value = try withUnsafeTemporaryAllocation(byteCount: Swift.max(n, 1), alignment: 1) { buffer in
            let bytes = UnsafeMutableRawBufferPointer(rebasing: buffer[0..<n])
            defer { secureZero(bytes) }
            try cursor.copy(start..<start + n, into: bytes)
            return String(validating: UnsafeRawBufferPointer(bytes), as: UTF8.self)
        }
        offset += n
        return value
    }

    mutating func blocks(_ n: Int, _ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        try need(n)
        let block = ReadBuffer.current(capacity: ColumnarCodec.blockSize).bytes
        var used = 0
        defer { secureZero(UnsafeMutableRawBufferPointer(rebasing: block[0..<used])) }
        let end = offset + n
        while offset < end {
            let take = Swift.min(ColumnarCodec.blockSize, end - offset)
            used = Swift.max(used, take)
            let piece = UnsafeMutableRawBufferPointer(rebasing: block[0..<take])
            try cursor.copy(offset..<offset + take, into: piece)
            offset += take
            try body(UnsafeRawBufferPointer(piece))
        }
    }

    mutating func skip(columnOf rows: Int, version: ColumnarCodec.Version) throws -> Int {
        _ = try u8()
        let length = try u64()
        guard length <= UInt64(remaining) else { throw VaultError(.dataError, "column length \(length) exceeds the plaintext") }
        offset += Int(length)
        return rows
    }
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
