import VaultCrypto

/// The authenticated header of a shard file (docs/shard-format.md).
public struct ShardHeader: Sendable, Equatable {
    public static let magic: [UInt8] = Array("SVSHARD".utf8) + [0]
    public static let trailerMagic: [UInt8] = Array("SVTRAIL".utf8) + [0]
    public static let formatVersion: UInt16 = 1
    public static let blockSize = 4096
    public static let preambleSize = 16
    public static let trailerSize = 80
    public static let wrapAESGCM: UInt8 = 1

    public var vaultId: [UInt8]
    public var dataset: String
    public var generation: UInt64
    public var shardIndex: UInt32
    public var shardCount: UInt32
    public var schemaId: String
    public var dataKeyId: [UInt8]
    public var kekId: String
    public var kekVersion: UInt32
    public var signingKeyId: String
    public var signingVersion: UInt32
    public var wrapAlgorithm: UInt8
    public var wrappedDEK: [UInt8]

    /// The Cobblestone-256 context: binds the body to its vault, dataset, generation,
    /// position, schema and data key.
    public var context: [UInt8] {
        var w = CanonicalWriter(label: "shardvault/shard/v1")
        writeIdentity(into: &w)
        return w.bytes
    }

    /// The fields that place a shard: they open the header and make up the context.
    private func writeIdentity(into w: inout CanonicalWriter) {
        w.raw(vaultId)
        w.string(dataset)
        w.u64(generation)
        w.u32(shardIndex)
        w.u32(shardCount)
        w.string(schemaId)
        w.raw(dataKeyId)
    }

    /// Additional data for the DEK wrap.
    func dekAAD(kekId: String, kekVersion: UInt32) -> [UInt8] {
        var w = CanonicalWriter(label: "shardvault/dek/v1")
        w.raw(context)
        w.string(kekId)
        w.u32(kekVersion)
        return w.bytes
    }

    func encodeFields() -> [UInt8] {
        var w = CanonicalWriter()
        writeIdentity(into: &w)
        w.string(kekId)
        w.u32(kekVersion)
        w.string(signingKeyId)
        w.u32(signingVersion)
        w.u8(wrapAlgorithm)
        w.lengthPrefixed(wrappedDEK)
        return w.bytes
    }

    /// The 4096-byte header block: preamble, header, zero padding.
    public func block() -> [UInt8] {
        let fields = encodeFields()
        precondition(fields.count <= Self.blockSize - Self.preambleSize, "shard header too large")
        var w = CanonicalWriter()
        w.raw(Self.magic)
        w.u16(Self.formatVersion)
        w.u16(0)
        w.u32(UInt32(fields.count))
        w.raw(fields)
        var out = w.bytes
        out.append(contentsOf: [UInt8](repeating: 0, count: Self.blockSize - out.count))
        return out
    }

    /// Parses and checks a header block: magic, version, flags, lengths, zero padding.
    public static func parse(block: [UInt8]) throws -> ShardHeader {
        guard block.count == blockSize else { throw VaultError(.dataError, "header block is \(block.count) bytes, not \(blockSize)") }
        guard Array(block[0..<8]) == magic else { throw VaultError(.dataError, "bad magic: not a ShardVault shard") }
        var r = CanonicalReader(block, offset: 8)
        let version = try r.u16("format version")
        guard version == formatVersion else { throw VaultError(.dataError, "unsupported shard format version \(version)") }
        let flags = try r.u16("flags")
        guard flags == 0 else { throw VaultError(.dataError, "unknown shard flags \(flags)") }
        let length = Int(try r.u32("header length"))
        guard length <= blockSize - preambleSize else { throw VaultError(.dataError, "header length \(length) exceeds the header block") }
        guard block[(preambleSize + length)...].allSatisfy({ $0 == 0 }) else {
            throw VaultError(.dataError, "header padding is not zero")
        }
        var f = CanonicalReader(Array(block[preambleSize..<preambleSize + length]))
        let header = ShardHeader(
            vaultId: try f.raw(16, "vault id"),
            dataset: try f.string("dataset"),
            generation: try f.u64("generation"),
            shardIndex: try f.u32("shard index"),
            shardCount: try f.u32("shard count"),
            schemaId: try f.string("schema id"),
            dataKeyId: try f.raw(16, "data-key id"),
            kekId: try f.string("KEK id"),
            kekVersion: try f.u32("KEK version"),
            signingKeyId: try f.string("signing key id"),
            signingVersion: try f.u32("signing key version"),
            wrapAlgorithm: try f.u8("DEK wrap algorithm"),
            wrappedDEK: try f.lengthPrefixed("wrapped DEK"))
        guard f.remaining == 0 else { throw VaultError(.dataError, "header has \(f.remaining) unexpected trailing bytes") }
        guard header.wrapAlgorithm == wrapAESGCM, header.wrappedDEK.count == 60 else {
            throw VaultError(.dataError, "unsupported DEK wrapping (algorithm \(header.wrapAlgorithm), \(header.wrappedDEK.count) bytes)")
        }
        return header
    }

    /// Wraps a DEK under a KEK version, bound to this header's context.
    static func wrap(dek: SecureBytes, kek: SecureBytes, aad: [UInt8]) throws -> [UInt8] {
        let nonce = try SystemRandom.bytes(12)
        var plain = dek.unsafeExportedBytes()
        defer { secureWipe(&plain) }
        return nonce + (try AESGCM(key: kek).seal(nonce: nonce, plaintext: plain, aad: aad))
    }

    /// Unwraps this header's DEK. Fails when the KEK is wrong or any bound field changed.
    public func unwrapDEK(kek: SecureBytes) throws -> SecureBytes {
        do {
            return try AESGCM(key: kek).open(nonce: Array(wrappedDEK[0..<12]), sealed: Array(wrappedDEK[12...]),
                                             aad: dekAAD(kekId: kekId, kekVersion: kekVersion))
        } catch {
            throw VaultError(.dataError, "data key does not unwrap under \(kekId) version \(kekVersion): wrong key or altered header")
        }
    }

    /// The trailer MAC input: label, header block, body length and body digest.
    static func macInput(block: [UInt8], bodyLength: UInt64, bodyDigest: [UInt8]) -> [UInt8] {
        var w = CanonicalWriter(label: "shardvault/shard-mac/v1")
        w.raw(block)
        w.u64(bodyLength)
        w.raw(bodyDigest)
        return w.bytes
    }
}

/// Facts about a written shard, recorded in the manifest.
public struct SealedShardInfo: Sendable {
    public var size: Int
    public var headerSha256: [UInt8]
    public var bodySha256: [UInt8]
    public var header: ShardHeader
}

/// Writes sealed shard files.
public enum ShardSealer {
    /// Seals `plaintext` into a new file at `path` (created exclusively, fsynced).
    /// The DEK is fresh and random; it exists only in memory, wrapped in the header.
    public static func seal(plaintext: UnsafeRawBufferPointer, to path: String, vaultId: [UInt8], dataset: String,
                            generation: UInt64, shardIndex: Int, shardCount: Int, schemaId: String,
                            kek: (id: String, version: Int, key: SecureBytes),
                            signing: (id: String, version: Int, key: SecureBytes)) throws -> SealedShardInfo {
        let writer = try BufferedFileWriter(creating: path, mode: 0o640, capacity: 1 << 20)
        var completed = false
        defer { if !completed { unlink(path) } }
        let info = try seal(plaintext: plaintext, vaultId: vaultId, dataset: dataset, generation: generation, shardIndex: shardIndex,
                            shardCount: shardCount, schemaId: schemaId, kek: kek, signing: signing) { try writer.write($0) }
        try writer.finish()
        completed = true
        return info
    }

    /// Seals `plaintext`, handing the shard file's bytes, in order, to `write`.
    public static func seal(plaintext: UnsafeRawBufferPointer, vaultId: [UInt8], dataset: String,
                            generation: UInt64, shardIndex: Int, shardCount: Int, schemaId: String,
                            kek: (id: String, version: Int, key: SecureBytes),
                            signing: (id: String, version: Int, key: SecureBytes),
                            write: (UnsafeRawBufferPointer) throws -> Void) throws -> SealedShardInfo {
        let dek = try SecureBytes.random(count: 32)
        var header = ShardHeader(vaultId: vaultId, dataset: dataset, generation: generation, shardIndex: UInt32(shardIndex),
                                 shardCount: UInt32(shardCount), schemaId: schemaId, dataKeyId: try SystemRandom.bytes(16),
                                 kekId: kek.id, kekVersion: UInt32(kek.version), signingKeyId: signing.id,
                                 signingVersion: UInt32(signing.version), wrapAlgorithm: ShardHeader.wrapAESGCM, wrappedDEK: [])
        header.wrappedDEK = try ShardHeader.wrap(dek: dek, kek: kek.key, aad: header.dekAAD(kekId: kek.id, kekVersion: UInt32(kek.version)))
        let block = header.block()
        try block.withUnsafeBytes { try write($0) }
        let sealer = try ChunkedSealer(key: dek, context: header.context)
        let digest = try Digest(.sha256)
        try sealer.header.withUnsafeBytes { try write($0) }
        digest.update(sealer.header)
        var bodyLength = sealer.header.count
        // Seal a batch of chunks into one reused buffer, then hash and hand it on while
        // it is still in cache.
        let batch = 16
        var sealed = [UInt8](repeating: 0, count: batch * ChunkedEncryption.sealedChunkSize)
        var offset = 0
        var done = false
        while !done {
            try sealed.withUnsafeMutableBytes { out in
                var filled = 0
                for _ in 0..<batch {
                    let length = min(ChunkedEncryption.chunkSize, plaintext.count - offset)
                    let isFinal = length < ChunkedEncryption.chunkSize
                    filled += try sealer.sealChunk(UnsafeRawBufferPointer(rebasing: plaintext[offset..<offset + length]), isFinal: isFinal,
                                                   into: UnsafeMutableRawBufferPointer(rebasing: out[filled...]))
                    offset += length
                    if isFinal { done = true; break }
                }
                let piece = UnsafeRawBufferPointer(rebasing: out[0..<filled])
                digest.update(piece)
                try write(piece)
                bodyLength += filled
            }
        }
        let bodyDigest = digest.finalize()
        let mac = try HMACSHA256.authenticate(key: signing.key, ShardHeader.macInput(block: block, bodyLength: UInt64(bodyLength), bodyDigest: bodyDigest))
        var trailer = CanonicalWriter()
        trailer.raw(ShardHeader.trailerMagic)
        trailer.u64(UInt64(bodyLength))
        trailer.raw(bodyDigest)
        trailer.raw(mac)
        try trailer.bytes.withUnsafeBytes { try write($0) }
        return SealedShardInfo(size: ShardHeader.blockSize + bodyLength + ShardHeader.trailerSize,
                               headerSha256: Digest.sha256(block), bodySha256: bodyDigest, header: header)
    }
}

#if canImport(Glibc)
import Glibc
#endif
