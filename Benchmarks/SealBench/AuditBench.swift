import Foundation
import VaultCore
#if canImport(Glibc)
import Glibc
#endif

/// Audit log figures: the disk's fsync rate (a 300-byte append + fdatasync, the cost floor
/// of a durable entry), durable appends one at a time and in batches, and `audit verify`
/// over the whole log. Prints figures; asserts nothing.
func runAuditBench(entries: Int, batch: Int, base: String) throws {
    let dir = base + "/auditbench-\(UUID().uuidString)"
    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(atPath: dir) }

    // 1. The machine's fsync rate: append a 300-byte line and fdatasync, as one audit entry does.
    let probe = dir + "/fsync-probe"
    let fd = open(probe, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
    guard fd >= 0 else { throw VaultError(.ioError, "cannot create \(probe)") }
    let line = [UInt8](repeating: 0x61, count: 299) + [0x0A]
    let fsyncCount = 2000
    var start = Date()
    for _ in 0..<fsyncCount {
        _ = line.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        fdatasync(fd)
    }
    let fsyncRate = Double(fsyncCount) / Date().timeIntervalSince(start)
    close(fd)
    print(String(format: "fsync rate (300-byte append + fdatasync, %d times): %.0f per second", fsyncCount, fsyncRate))

    let vault = try Vault.initialize(at: dir + "/vault", context: AuditContext(principal: "bench", purpose: "HSYSADMIN"))
    let resource = AuditResource(dataset: "bench", generation: 1, shard: "shard-00001.svs", key: "bench/kek", keyVersion: 1)

    // 2. One writer, one durable entry per append.
    let singles = 2000
    start = Date()
    for _ in 0..<singles { try vault.audit.append(AuditEvent(action: AuditAction.shardDecrypt, resource: resource)) }
    let singleRate = Double(singles) / Date().timeIntervalSince(start)
    print(String(format: "append, one entry per call (its fdatasync, then the writer state saved) (%d entries): %.0f entries/s  = %.2f x the fsync rate", singles, singleRate, singleRate / fsyncRate))

    // 3. Batched accesses (e.g. one entry per shard of a job), one fdatasync per batch.
    let events = [AuditEvent](repeating: AuditEvent(action: AuditAction.shardDecrypt, resource: resource), count: batch)
    var written = singles + 3
    start = Date()
    while written < entries {
        let n = min(batch, entries - written)
        try vault.audit.append(n == batch ? events : Array(events.prefix(n)))
        written += n
    }
    let batchSeconds = Date().timeIntervalSince(start)
    let batchRate = Double(entries - singles - 3) / batchSeconds
    try vault.audit.checkpoint()
    print(String(format: "append, batches of %d entries per call (%d entries): %.0f entries/s = %.0f x the fsync rate", batch,
                 entries - singles - 3, batchRate, batchRate / fsyncRate))

    // 4. audit verify over the whole log.
    var segments = 0
    var bytes = 0
    for name in try FileManager.default.contentsOfDirectory(atPath: vault.layout.audit) where name.hasSuffix(".jsonl") {
        segments += 1
        bytes += (try FileManager.default.attributesOfItem(atPath: vault.layout.audit + "/" + name)[.size] as? Int) ?? 0
    }
    let verifier = AuditVerifier(layout: vault.layout, verifier: vault.audit.key.verifier, macKey: vault.audit.key)
    let result = verifier.verify()
    guard result.ok else { throw VaultError(.dataError, "audit verify failed: \(result.problem ?? "?")") }
    print(String(format: "audit verify: %d entries, %d segments, %.1f MB, %d checkpoints: %.2f s (%.0f entries/s; chain, MACs, tree, signatures)",
                 result.treeSize, segments, Double(bytes) / 1e6, result.checkpoints, result.seconds, Double(result.treeSize) / result.seconds))
    if ProcessInfo.processInfo.environment["AUDITBENCH_KEEP"] != nil {
        // Kept for a timing of the command-line `audit verify`; the caller removes it.
        let keep = base + "/auditbench-vault"
        try? FileManager.default.removeItem(atPath: keep)
        try FileManager.default.moveItem(atPath: dir + "/vault", toPath: keep)
        print("kept vault: \(keep)")
    }
}
