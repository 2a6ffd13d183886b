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
}

/// Reads and checks shard files.
public enum ShardReader {
    /// Checks a shard with the signing key only: structure, header fields against the
    /// manifest, header and body digests, trailer MAC. Reads the body once.
    /// Returns the parsed header.
    @discardableResult
    public static func verifySignature(path: String, expected: ShardExpectation, signingKey: SecureBytes) throws -> ShardHeader {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw VaultError.system(errno == ENOENT ? .dataError : .ioError, "shard missing or unreadable", path: path, errno: errno)
        }
        defer { close(fd) }
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
        // One pass over the body.
        let digest = try Digest(.sha256)
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        var offset = ShardHeader.blockSize
        let end = ShardHeader.blockSize + bodyLength
        while offset < end {
            let want = min(buffer.count, end - offset)
            let n = try buffer.withUnsafeMutableBytes { b in try preadFully(fd: fd, into: UnsafeMutableRawBufferPointer(rebasing: b[0..<want]), offset: offset, path: path) }
            buffer.withUnsafeBytes { digest.update(UnsafeRawBufferPointer(rebasing: $0[0..<n])) }
            offset += n
        }
        let bodyDigest = digest.finalize()
        guard ConstantTime.equals(bodyDigest, storedDigest) else {
            throw VaultError(.dataError, "body SHA-256 does not match the trailer: ciphertext was modified", location: path)
        }
        guard Hex.encode(bodyDigest) == expected.entry.bodySha256 else {
            throw VaultError(.dataError, "body SHA-256 does not match the manifest", location: path)
        }
        let mac = try HMACSHA256.authenticate(key: signingKey, ShardHeader.macInput(block: block, bodyLength: storedLength, bodyDigest: bodyDigest))
        guard ConstantTime.equals(mac, storedMac) else {
            throw VaultError(.dataError, "shard MAC does not verify under \(header.signingKeyId) version \(header.signingVersion)", location: path)
        }
        return header
    }

    static func check(header: ShardHeader, against expected: ShardExpectation, path: String) throws {
        func mismatch(_ what: String, _ found: String, _ want: String) -> VaultError {
            VaultError(.dataError, "header \(what) is \(found), expected \(want) (shard moved, swapped or copied from elsewhere)", location: path)
        }
        guard header.vaultId == expected.vaultId else { throw mismatch("vault id", Hex.encode(header.vaultId), Hex.encode(expected.vaultId)) }
        guard header.dataset == expected.dataset else { throw mismatch("dataset", "'\(header.dataset)'", "'\(expected.dataset)'") }
        guard header.generation == UInt64(expected.generation) else { throw mismatch("generation", "\(header.generation)", "\(expected.generation)") }
        guard header.shardIndex == UInt32(expected.entry.index) else { throw mismatch("shard index", "\(header.shardIndex)", "\(expected.entry.index)") }
        guard header.shardCount == UInt32(expected.shardCount) else { throw mismatch("shard count", "\(header.shardCount)", "\(expected.shardCount)") }
        guard Hex.encode(header.dataKeyId) == expected.entry.dataKeyId else { throw mismatch("data-key id", Hex.encode(header.dataKeyId), expected.entry.dataKeyId) }
        guard Int(header.kekVersion) == expected.entry.kekVersion else { throw mismatch("KEK version", "\(header.kekVersion)", "\(expected.entry.kekVersion)") }
        guard Int(header.signingVersion) == expected.entry.signingVersion else {
            throw mismatch("signing key version", "\(header.signingVersion)", "\(expected.entry.signingVersion)")
        }
        guard header.schemaId == ColumnarCodec.schemaId else { throw mismatch("schema id", header.schemaId, ColumnarCodec.schemaId) }
    }

    /// Opens a shard that has passed `verifySignature` (or whose signature the caller
    /// does not hold): unwraps the DEK, checks the commitment, decrypts and authenticates
    /// every chunk and decodes the tables. The plaintext never leaves memory.
    public static func decrypt(path: String, expected: ShardExpectation, kek: SecureBytes) throws -> DecodedShard {
        let bytes = try FileIO.readAll(path, missing: .dataError)
        guard bytes.count > ShardHeader.blockSize + ShardHeader.trailerSize else {
            throw VaultError(.dataError, "shard is truncated", location: path)
        }
        let header: ShardHeader
        do { header = try ShardHeader.parse(block: Array(bytes[0..<ShardHeader.blockSize])) } catch let error as VaultError {
            throw VaultError(.dataError, error.message, location: path)
        }
        try check(header: header, against: expected, path: path)
        let dek: SecureBytes
        do { dek = try header.unwrapDEK(kek: kek) } catch let error as VaultError {
            throw VaultError(.dataError, error.message, location: path)
        }
        let bodyEnd = bytes.count - ShardHeader.trailerSize
        return try bytes.withUnsafeBytes { all in
            let body = UnsafeRawBufferPointer(rebasing: all[ShardHeader.blockSize..<bodyEnd])
            guard body.count >= ChunkedEncryption.headerLength else { throw VaultError(.dataError, "shard body is truncated", location: path) }
            do {
                let opener = try ChunkedOpener(key: dek, context: header.context,
                                               header: UnsafeRawBufferPointer(rebasing: body[0..<ChunkedEncryption.headerLength]))
                let plaintext = try opener.openAll(body: UnsafeRawBufferPointer(rebasing: body[ChunkedEncryption.headerLength...]))
                let decoded = try plaintext.withUnsafeBytes { try DecodedShard.decode($0) }
                guard decoded.counts == expected.entry.records else {
                    throw VaultError(.dataError, "decrypted record counts differ from the manifest", location: path)
                }
                return decoded
            } catch let error as CryptoError {
                throw VaultError(.dataError, "decryption failed: \(error.message)", location: path)
            } catch let error as VaultError where error.location == nil {
                throw VaultError(.dataError, error.message, location: path)
            }
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
