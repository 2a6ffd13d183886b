import Foundation
import VaultCrypto
#if canImport(Glibc)
import Glibc
#endif

/// A sealed file (a shard of the current generation, or a sealed result) as the manifest
/// or the result's signed metadata describes it, for a key rotation to rewrite.
struct SealedObject: Sendable {
    /// Path relative to the dataset folder (`g000001/shard-00000.svs`, `results/<id>.svr`).
    var name: String
    var path: String
    var expected: ShardExpectation
}

/// The first 4096 bytes (header block) and the last 80 (trailer) of a sealed file: all a
/// rewrap or re-signing changes. The body (ciphertext) is never read, decrypted or written,
/// so the cost of rewriting a file does not depend on its size.
struct SealedEnds: Equatable, Sendable {
    var block: [UInt8]
    var trailer: [UInt8]

    static let size = ShardHeader.blockSize + ShardHeader.trailerSize

    var bodyLength: UInt64 { trailer[8..<16].reduce(0) { $0 << 8 | UInt64($1) } }
    var bodyDigest: [UInt8] { Array(trailer[16..<48]) }
    var mac: [UInt8] { Array(trailer[48..<80]) }

    /// The size of the open file, which must be the recorded one.
    static func checkedSize(_ fd: Int32, _ object: SealedObject) throws -> Int {
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw VaultError.system(.ioError, "cannot stat shard", path: object.path, errno: errno) }
        let size = Int(st.st_size)
        guard size == object.expected.entry.size, size >= SealedEnds.size else {
            throw VaultError(.dataError, "size \(size) does not match the recorded \(object.expected.entry.size) (truncated or extended)", location: object.path)
        }
        return size
    }

    static func read(_ fd: Int32, size: Int, path: String) throws -> SealedEnds {
        SealedEnds(block: try ShardReader.readExactly(fd: fd, count: ShardHeader.blockSize, offset: 0, path: path),
                   trailer: try ShardReader.readExactly(fd: fd, count: ShardHeader.trailerSize, offset: size - ShardHeader.trailerSize, path: path))
    }

    /// Writes both ends in place and waits until they are on disk.
    func write(_ fd: Int32, size: Int, path: String) throws {
        for (bytes, offset) in [(block, 0), (trailer, size - ShardHeader.trailerSize)] {
            let n = bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, off_t(offset)) }
            guard n == bytes.count else { throw VaultError.system(.ioError, "cannot rewrite the shard header", path: path, errno: errno) }
        }
        guard fdatasync(fd) == 0 else { throw VaultError.system(.ioError, "cannot sync the rewritten shard header", path: path, errno: errno) }
        try FaultInjection.point("sync")
    }
}

/// Rewrites the header and trailer of sealed files so that their DEK is wrapped under a
/// target KEK version and their MAC made under a target signing key version.
enum HeaderRewrite {
    /// The state of one file against what references it and the rotation's target.
    enum State {
        /// As referenced (header SHA-256 and MAC as recorded).
        case referenced(ShardHeader)
        /// Already rewritten to the target versions, MAC valid under the target signing key.
        case target(ShardHeader, headerSha256: String)
    }

    /// What the file is now: as referenced, already at the target, or neither (damaged).
    static func classify(_ ends: SealedEnds, object: SealedObject, keyring: Keyring, kek: Int, signing: Int) throws -> State? {
        let dataset = object.expected.dataset
        let entry = object.expected.entry
        guard Array(ends.trailer[0..<8]) == ShardHeader.trailerMagic,
              ends.bodyLength == UInt64(entry.size - SealedEnds.size),
              Hex.encode(ends.bodyDigest) == entry.bodySha256,
              let header = try? ShardHeader.parse(block: ends.block) else { return nil }
        let sha = Hex.encode(Digest.sha256(ends.block))
        let macInput = ShardHeader.macInput(block: ends.block, bodyLength: ends.bodyLength, bodyDigest: ends.bodyDigest)
        if sha == entry.headerSha256 {
            let key = try keyring.material(dataset: dataset, kind: .signing, version: entry.signingVersion)
            guard (try? ShardReader.check(header: header, against: object.expected, path: object.path)) != nil,
                  ConstantTime.equals(try HMACSHA256.authenticate(key: key, macInput), ends.mac) else { return nil }
            return .referenced(header)
        }
        var atTarget = object.expected
        atTarget.entry.kekVersion = kek
        atTarget.entry.signingVersion = signing
        guard (try? ShardReader.check(header: header, against: atTarget, path: object.path)) != nil else { return nil }
        let key = try keyring.material(dataset: dataset, kind: .signing, version: signing)
        guard ConstantTime.equals(try HMACSHA256.authenticate(key: key, macInput), ends.mac) else { return nil }
        return .target(header, headerSha256: sha)
    }

    /// The ends of `header`'s file rewritten to the target versions. The DEK is unwrapped
    /// and re-wrapped in memory only when the KEK version changes; re-signing alone never
    /// touches it.
    static func rewritten(_ ends: SealedEnds, header: ShardHeader, keyring: Keyring, kek: Int, signing: Int) throws -> SealedEnds {
        var next = header
        if Int(header.kekVersion) != kek {
            let oldKEK = try keyring.material(dataset: header.dataset, kind: .kek, version: Int(header.kekVersion))
            let newKEK = try keyring.material(dataset: header.dataset, kind: .kek, version: kek)
            let dek = try header.unwrapDEK(kek: oldKEK)
            next.kekVersion = UInt32(kek)
            next.wrappedDEK = try ShardHeader.wrap(dek: dek, kek: newKEK, aad: next.dekAAD(kekId: next.kekId, kekVersion: next.kekVersion))
        }
        next.signingVersion = UInt32(signing)
        let block = next.block()
        let key = try keyring.material(dataset: header.dataset, kind: .signing, version: signing)
        let mac = try HMACSHA256.authenticate(key: key, ShardHeader.macInput(block: block, bodyLength: ends.bodyLength, bodyDigest: ends.bodyDigest))
        return SealedEnds(block: block, trailer: Array(ends.trailer[0..<48]) + mac)
    }

    /// Brings one file to the target versions, returning its new header SHA-256 and whether
    /// it was written. `saved` is the file's ends from the rotation journal (written before
    /// any file was touched): a file torn by a crash mid-write is put back from it first.
    static func apply(_ object: SealedObject, saved: SealedEnds?, keyring: Keyring, kek: Int, signing: Int) throws -> (headerSha256: String, written: Bool) {
        let fd = open(object.path, O_RDWR | O_CLOEXEC)
        guard fd >= 0 else { throw VaultError.system(errno == ENOENT ? .dataError : .ioError, "shard missing or unwritable", path: object.path, errno: errno) }
        defer { close(fd) }
        let size = try SealedEnds.checkedSize(fd, object)
        var ends = try SealedEnds.read(fd, size: size, path: object.path)
        var state = try classify(ends, object: object, keyring: keyring, kek: kek, signing: signing)
        if state == nil, let saved, saved != ends {
            // Torn by an interrupted rewrite: put the saved ends back, then rewrite.
            try saved.write(fd, size: size, path: object.path)
            ends = saved
            state = try classify(ends, object: object, keyring: keyring, kek: kek, signing: signing)
        }
        switch state {
        case .target(_, let sha)?:
            return (sha, false)
        case .referenced(let header)?:
            if Int(header.kekVersion) == kek && Int(header.signingVersion) == signing { return (object.expected.entry.headerSha256, false) }
            let next = try rewritten(ends, header: header, keyring: keyring, kek: kek, signing: signing)
            try next.write(fd, size: size, path: object.path)
            return (Hex.encode(Digest.sha256(next.block)), true)
        case nil:
            throw VaultError(.dataError, "header or trailer is neither the recorded one nor a completed rewrite (altered or damaged); nothing was written", location: object.path)
        }
    }
}

/// The journal of a rotation in progress: the ends of every file it will rewrite, written
/// and synced before the first file is touched. Format: "SVROTJ1\n", then per file: u16
/// name length, name, 4096-byte block, 80-byte trailer; then SHA-256 of all that precedes.
enum RotationJournal {
    static let magic = Array("SVROTJ1\n".utf8)

    static func encode(_ entries: [(name: String, ends: SealedEnds)]) -> [UInt8] {
        var w = CanonicalWriter()
        w.raw(magic)
        for (name, ends) in entries {
            w.u16(UInt16(name.utf8.count))
            w.raw(Array(name.utf8))
            w.raw(ends.block)
            w.raw(ends.trailer)
        }
        let digest = Digest.sha256(w.bytes)
        w.raw(digest)
        return w.bytes
    }

    static func decode(_ bytes: [UInt8], path: String) throws -> [String: SealedEnds] {
        guard bytes.count >= magic.count + 32, Array(bytes.prefix(magic.count)) == magic,
              Digest.sha256(Array(bytes.dropLast(32))) == Array(bytes.suffix(32)) else {
            throw VaultError(.dataError, "rotation journal is damaged (bad magic or checksum)", location: path)
        }
        var r = CanonicalReader(Array(bytes.dropLast(32)), offset: magic.count)
        var out: [String: SealedEnds] = [:]
        while r.remaining > 0 {
            let length = Int(try r.u16("name length"))
            let name = String(decoding: try r.raw(length, "name"), as: UTF8.self)
            out[name] = SealedEnds(block: try r.raw(ShardHeader.blockSize, "header block"), trailer: try r.raw(ShardHeader.trailerSize, "trailer"))
        }
        return out
    }
}
