// Throughput of sealing and of deep verification of shards, on one core and on all
// cores. Prints figures; asserts nothing. Run through Benchmarks/run.sh, which measures
// `openssl speed` in the same run for reference.
import Foundation
import VaultCore
import VaultCrypto

struct SplitMix64 {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// A synthetic shard plaintext of about `bytes` bytes in the real columnar encoding.
func makePlaintext(bytes: Int, seed: UInt64) -> [UInt8] {
    // The encoded size of a patient, from a sample of 16.
    let perPatient = max(1, makeTables(patients: 16, seed: seed).encode().count / 16)
    return makeTables(patients: max(1, bytes / perPatient), seed: seed).encode()
}

func makeTables(patients: Int, seed: UInt64) -> ShardTables {
    var rng = SplitMix64(state: seed)
    var tables = ShardTables()
    let codes = ["39156-5", "4548-4", "8302-2", "29463-7", "8867-4", "72514-3"]
    for _ in 0..<patients {
        var pseudonym = [UInt8](repeating: 0, count: 16)
        for i in 0..<16 { pseudonym[i] = UInt8(truncatingIfNeeded: rng.next()) }
        tables.addPatient(.init(pseudonym: pseudonym, birthDate: Int32(rng.next() % 30_000), deathDate: Absent.date,
                                sex: rng.next() % 2 == 0 ? "male" : "female", race: "white", ethnicity: "nonhispanic", state: "Utah"))
        for _ in 0..<400 {
            let r = rng.next()
            _ = tables.add(.observation(pseudonym: pseudonym, time: Int64(r % 2_000_000_000), category: "vital-signs",
                                        code: codes[Int(r % 6)], value: Double(r % 10_000) / 100, unit: "kg", text: ""))
        }
    }
    return tables
}

func parallel(_ count: Int, threads: Int, _ body: @Sendable @escaping (Int) throws -> Void) throws {
    final class Box: @unchecked Sendable { var error: (any Error)?; let lock = NSLock(); var next = 0 }
    let box = Box()
    DispatchQueue.concurrentPerform(iterations: threads) { _ in
        while true {
            let i: Int = box.lock.withLock { defer { box.next += 1 }; return box.next }
            if i >= count { return }
            do { try body(i) } catch { box.lock.withLock { box.error = error } }
        }
    }
    if let error = box.error { throw error }
}

let arguments = CommandLine.arguments
if arguments.count > 1 && arguments[1] == "audit" {
    // shardvault-bench audit [ENTRIES (default 1000000)] [BATCH (default 1000)] [WORK_DIR]
    try runAuditBench(entries: arguments.count > 2 ? Int(arguments[2]) ?? 1_000_000 : 1_000_000,
                      batch: arguments.count > 3 ? Int(arguments[3]) ?? 1000 : 1000,
                      base: arguments.count > 4 ? arguments[4] : FileManager.default.temporaryDirectory.path)
    exit(0)
}
// shardvault-bench [MiB (default 1024)] [WORK_DIR] [--json]
let json = arguments.contains("--json")
let positional = arguments.dropFirst().filter { $0 != "--json" }
let totalMiB = positional.first.flatMap { Int($0) } ?? 1024
let shardMiB = 64
let shardCount = max(1, totalMiB / shardMiB)
let cores = ProcessInfo.processInfo.activeProcessorCount
let base = positional.count > 1 ? positional[positional.startIndex + 1] : FileManager.default.temporaryDirectory.path
let dir = base + "/sealbench-\(UUID().uuidString)"
try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
defer { try? FileManager.default.removeItem(atPath: dir) }

func say(_ line: String) { if !json { print(line) } }
say("Building \(shardCount) shard plaintexts of ~\(shardMiB) MiB (columnar encoding, synthetic)...")
let plaintexts = (0..<shardCount).map { makePlaintext(bytes: shardMiB << 20, seed: UInt64($0)) }
let totalBytes = plaintexts.reduce(0) { $0 + $1.count }
let counts = try plaintexts.map { p in try p.withUnsafeBytes { try DecodedShard.decode($0).counts } }
say(String(format: "Plaintext: %.2f GiB in %d shards", Double(totalBytes) / Double(1 << 30), shardCount))
// One plaintext buffer per shard for opening, touched once here, so that opening
// measures the crypto and not fresh page faults.
let openBuffers = plaintexts.map { SecureBytes(zeroedCount: $0.count + 64) }

let kek = try SecureBytes.random(count: 32)
let signing = try SecureBytes.random(count: 32)
let vaultId = try SystemRandom.bytes(16)

final class Infos: @unchecked Sendable {
    let lock = NSLock()
    var items: [Int: SealedShardInfo] = [:]
}

/// Seconds of the fastest of `runs` runs of `body`.
func fastest(_ runs: Int, _ body: () throws -> Void) rethrows -> Double {
    var best = Double.infinity
    for _ in 0..<runs {
        let start = Date()
        try body()
        best = min(best, Date().timeIntervalSince(start))
    }
    return best
}

var report: [[String: Any]] = []
for threads in Set([1, cores]).sorted() {
    // Crypto pipeline alone: seal into memory (encrypt, SHA-256, HMAC), nothing written.
    let memorySeconds = try fastest(2) {
        try parallel(shardCount, threads: threads) { i in
            _ = try plaintexts[i].withUnsafeBytes {
                try ShardSealer.seal(plaintext: $0, vaultId: vaultId, dataset: "bench", generation: 1, shardIndex: i, shardCount: shardCount,
                                     schemaId: ColumnarCodec.schemaId, kek: ("bench/kek", 1, kek), signing: ("bench/signing", 1, signing)) { _ in }
            }
        }
    }
    let runDir = dir + "/t\(threads)"
    try FileManager.default.createDirectory(atPath: runDir, withIntermediateDirectories: true)
    let infos = Infos()
    let sealStart = Date()
    try parallel(shardCount, threads: threads) { i in
        let info = try plaintexts[i].withUnsafeBytes {
            try ShardSealer.seal(plaintext: $0, to: runDir + "/shard-\(i).svs", vaultId: vaultId, dataset: "bench", generation: 1,
                                 shardIndex: i, shardCount: shardCount, schemaId: ColumnarCodec.schemaId,
                                 kek: ("bench/kek", 1, kek), signing: ("bench/signing", 1, signing))
        }
        infos.lock.withLock { infos.items[i] = info }
    }
    let sealSeconds = Date().timeIntervalSince(sealStart)
    let expectations = (0..<shardCount).map { i -> ShardExpectation in
        let info = infos.lock.withLock { infos.items[i]! }
        let entry = ManifestShard(index: i, file: "shard-\(i).svs", size: info.size, headerSha256: Hex.encode(info.headerSha256),
                                  bodySha256: Hex.encode(info.bodySha256), dataKeyId: Hex.encode(info.header.dataKeyId),
                                  kekVersion: 1, signingVersion: 1, records: counts[i])
        return ShardExpectation(vaultId: vaultId, dataset: "bench", generation: 1, shardCount: shardCount, entry: entry, schemaId: ColumnarCodec.schemaId)
    }
    // Open: verify (SHA-256 of the body against the manifest and trailer, HMAC) and decrypt
    // every chunk, from the files (in the page cache), into memory.
    let openSeconds = try fastest(2) {
        try parallel(shardCount, threads: threads) { i in
            _ = try ShardReader.read(path: runDir + "/shard-\(i).svs", expected: expectations[i], signingKey: signing, key: .kek(kek),
                                     plaintextBuffer: openBuffers[i])
        }
    }
    let verifySeconds = try fastest(1) {
        try parallel(shardCount, threads: threads) { i in
            try ShardReader.verifyDeep(path: runDir + "/shard-\(i).svs", expected: expectations[i], kek: kek, signingKey: signing)
        }
    }
    let gb = Double(totalBytes) / 1e9
    say(String(format: "threads=%d  seal in memory: %.2f GB/s   seal to files (+ write, fsync): %.2f GB/s   open (verify + decrypt, from the page cache): %.2f GB/s   deep verify (+ structure): %.2f GB/s",
               threads, gb / memorySeconds, gb / sealSeconds, gb / openSeconds, gb / verifySeconds))
    report.append(["threads": threads, "sealGBps": gb / memorySeconds, "sealToFilesGBps": gb / sealSeconds,
                   "openGBps": gb / openSeconds, "verifyDeepGBps": gb / verifySeconds])
    try? FileManager.default.removeItem(atPath: runDir)
}
if json {
    let object: [String: Any] = ["plaintextBytes": totalBytes, "shards": shardCount, "runs": report]
    print(String(decoding: try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys]), as: UTF8.self))
}
