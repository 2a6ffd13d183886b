import VaultCrypto
#if canImport(Glibc)
import Glibc
#endif

/// Keyed pseudonyms of source patient ids: HMAC-SHA256 under the dataset's partition key,
/// truncated to 16 bytes. The pseudonym also chooses the patient's shard.
final class Pseudonymizer {
    private let key: SecureBytes
    private var cache: [String: [UInt8]] = [:]
    private let cacheLimit: Int

    init(key: SecureBytes, cacheLimit: Int = 65_536) {
        self.key = key
        self.cacheLimit = cacheLimit
    }

    /// The same key with an empty cache, for another thread.
    func fresh() -> Pseudonymizer { Pseudonymizer(key: key, cacheLimit: cacheLimit) }

    /// The last id asked for, as bytes: a patient's records usually come one after another.
    private var lastIdBytes: [UInt8] = []
    private var lastPseudonym: [UInt8] = []

    func pseudonym(_ patientId: String) throws -> [UInt8] {
        var id = patientId
        return try id.withUTF8 { try pseudonym(bytes: UnsafeRawBufferPointer($0)) }
    }

    /// The pseudonym of an id given as the raw bytes of an input field (read as UTF-8, with
    /// invalid bytes replaced, as a `String` of them would be). The same bytes as the last
    /// call's return the last pseudonym without making a `String`.
    func pseudonym(bytes: UnsafeRawBufferPointer) throws -> [UInt8] {
        if !lastPseudonym.isEmpty && lastIdBytes.count == bytes.count
            && (bytes.isEmpty || lastIdBytes.withUnsafeBytes { memcmp($0.baseAddress!, bytes.baseAddress!, bytes.count) } == 0) {
            return lastPseudonym
        }
        let out = try lookUp(String(decoding: bytes, as: UTF8.self))
        lastPseudonym = out
        lastIdBytes.removeAll(keepingCapacity: true)
        lastIdBytes.append(contentsOf: bytes)
        return out
    }

    private func lookUp(_ patientId: String) throws -> [UInt8] {
        if let hit = cache[patientId] { return hit }
        var w = CanonicalWriter(label: "shardvault/patient/v1")
        w.raw(Array(patientId.utf8))
        let mac = try HMACSHA256.authenticate(key: key, w.bytes)
        let out = Array(mac[0..<16])
        if cache.count >= cacheLimit { cache.removeAll(keepingCapacity: true) }
        cache[patientId] = out
        return out
    }

    static func shard(of pseudonym: [UInt8], count: Int) -> Int {
        var v: UInt64 = 0
        for i in 0..<8 { v = v << 8 | UInt64(pseudonym[i]) }
        return Int(v % UInt64(count))
    }
}
