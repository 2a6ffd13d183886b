import Foundation
import VaultCrypto

/// What an ingest did.
public struct IngestReport: Codable, Sendable {
    public var dataset: String
    public var generation: Int
    public var format: String
    public var shards: Int
    public var records: RecordCounts
    public var inputBytes: Int
    public var plaintextBytes: Int
    public var sealedBytes: Int
    public var seconds: Double
    public var skippedFiles: [String]
    public var manifestSha256: String
    public var replacedGeneration: Int?
    /// Problems after the commit point: the new generation is in place, but something
    /// around it (a folder sync, removing the old generation, saving key use counters) failed.
    public var warnings: [String]
}

/// Ingest: read an input, partition records by patient into shards, seal each shard,
/// and publish a new signed manifest. The manifest rename is the commit point: until
/// it happens nothing new is visible, and a failure leaves the existing dataset intact.
public struct Ingestor {
    public let vault: Vault
    public var concurrency: Int = ProcessInfo.processInfo.activeProcessorCount
    /// Bytes of a CSV file parsed by one lane at a time.
    var csvBlockSize = 4 << 20

    public init(vault: Vault) { self.vault = vault }

    /// Input bytes per shard by default: 384 MiB of Synthea CSV seal to about 20 MB, which
    /// bounds what one analysis task holds, while keeping down the number of tasks (one
    /// process each with `--isolation process`, each paying for fresh memory). See
    /// docs/performance.md.
    public static let defaultInputBytesPerShard = 384 << 20

    /// Default shard count: at least 4, and one per 384 MiB of input.
    public static func defaultShardCount(inputBytes: Int) -> Int {
        max(4, min(4096, (inputBytes + defaultInputBytesPerShard - 1) / defaultInputBytesPerShard))
    }

    public func ingest(dataset: String, format: InputFormat, paths: [String], shards requestedShards: Int?, replace: Bool,
                       now: Date = Date()) throws -> IngestReport {
        let started = Date()
        try Vault.validateDatasetName(dataset)
        guard !paths.isEmpty else { throw VaultError(.usage, "no input path given") }
        for path in paths where !FileIO.exists(path) {
            throw VaultError(.noInput, "input does not exist", location: path)
        }
        let datasetDir = vault.layout.datasetDirectory(dataset)
        let manifestPath = datasetDir + "/" + ManifestFile.name
        var previous: Manifest?
        var previousBytes: [UInt8]?
        if FileIO.exists(manifestPath) {
            try KeyLifecycle.checkNoPendingRotation(vault.layout, dataset)
            guard replace else {
                throw VaultError(.cannotCreate, "dataset '\(dataset)' already exists; pass --replace to ingest a new generation", location: manifestPath)
            }
            let bytes = try FileIO.readAll(manifestPath)
            // Reading the current manifest checks its signature: a key use, audited first.
            if let signing = vault.keyring.active(dataset, .signing) {
                try vault.audit.append(AuditEvent(action: AuditAction.keyUse, resource: AuditResource(dataset: dataset, key: signing.id, keyVersion: signing.version)))
            }
            previous = try ManifestFile.load(bytes: bytes, path: manifestPath, dataset: dataset, vault: vault)
            previousBytes = bytes
        }
        if let requestedShards, !(1...Self.maximumShards).contains(requestedShards) {
            throw VaultError(.usage, "--shards must be between 1 and \(Self.maximumShards)")
        }
        let inputSize = paths.reduce(0) { $0 + Self.treeSize($1) }
        let shardCount = requestedShards ?? Self.defaultShardCount(inputBytes: inputSize)
        try Self.ensureFileLimit(shardCount)

        try FileIO.makeDirectory(vault.layout.data)
        if !FileIO.isDirectory(datasetDir) {
            try FileIO.makeDirectory(datasetDir, mode: 0o750)
            try FileIO.fsyncDirectory(vault.layout.data)
        }
        // Staging folders left by an ingest that died are unreadable (their key died with
        // it) and never visible; remove them. Generation folders no manifest references
        // are kept, and the new generation is numbered above every existing one, so that
        // nothing a rolled-back manifest forgot is ever deleted.
        var highest = previous?.generation ?? 0
        for name in try FileIO.listDirectory(datasetDir) {
            if name.hasPrefix(".staging-") { FileIO.removeTree(datasetDir + "/" + name) }
            if name.count == 7, name.hasPrefix("g"), let n = Int(name.dropFirst()) { highest = max(highest, n) }
        }
        let generation = highest + 1
        // Key creation and use are audited before they happen.
        try vault.audit.append(KeyKind.allCases.filter { vault.keyring.active(dataset, $0) == nil }.map { kind in
            let id = Keyring.keyId(dataset, kind)
            let version = (vault.keyring.records.filter { $0.id == id }.map(\.version).max() ?? 0) + 1
            return AuditEvent(action: AuditAction.keyCreate, resource: AuditResource(dataset: dataset, key: id, keyVersion: version))
        })
        try vault.keyring.ensureDatasetKeys(dataset, now: now)
        try vault.keyring.save()
        guard let kekRecord = vault.keyring.active(dataset, .kek), let signingRecord = vault.keyring.active(dataset, .signing),
              let partitionRecord = vault.keyring.active(dataset, .partition) else {
            throw VaultError(.configuration, "dataset '\(dataset)' has no active KEK, signing or partition key")
        }
        try vault.audit.append([kekRecord, signingRecord, partitionRecord].map {
            AuditEvent(action: AuditAction.keyUse, resource: AuditResource(dataset: dataset, generation: generation, key: $0.id, keyVersion: $0.version))
        })
        let kek = try vault.keyring.material(dataset: dataset, kind: .kek, version: kekRecord.version)
        let signing = try vault.keyring.material(dataset: dataset, kind: .signing, version: signingRecord.version)
        let partition = try vault.keyring.material(dataset: dataset, kind: .partition, version: partitionRecord.version)

        let staging = datasetDir + "/.staging-" + Hex.encode(try SystemRandom.bytes(8))
        try FileIO.makeDirectory(staging, mode: 0o700)
        var published = false
        defer { if !published { FileIO.removeTree(staging) } }

        // Pass 1: parse and route every record to its shard's encrypted staging file.
        let spillKey = try SecureBytes.random(count: 32)
        let spills = try (0..<shardCount).map { try SpillWriter(path: staging + String(format: "/spill-%05d", $0), key: spillKey, shard: $0) }
        let sink = IngestSink(pseudonymizer: Pseudonymizer(key: partition), shardCount: shardCount, spills: spills)
        let source: any RecordSource
        switch format {
        case .syntheaCSV:
            source = SyntheaCSVSource(directories: paths, lanes: concurrency, blockSize: csvBlockSize)
        case .fhirNDJSON:
            source = FHIRNDJSONSource(paths: paths)
        case .fhirBundle:
            source = FHIRBundleSource(paths: paths)
        }
        try source.read(into: sink)
        for spill in spills { try spill.finish() }
        guard sink.counts.patients > 0 else {
            throw VaultError(.dataError, "the input holds no patients", location: paths.joined(separator: ", "))
        }

        // Pass 2: build, encode and seal each shard, in parallel.
        let results = ShardResults(count: shardCount)
        let sources = sink.sources
        let vaultId = vault.id
        let schemaId = ColumnarCodec.schemaId
        let kekInfo = (id: kekRecord.id, version: kekRecord.version, key: kek)
        let signingInfo = (id: signingRecord.id, version: signingRecord.version, key: signing)
        let next = AtomicCounter()
        let workers = max(1, min(concurrency, shardCount))
        DispatchQueue.concurrentPerform(iterations: workers) { _ in
            while true {
                let index = next.increment()
                if index >= shardCount || results.failed { return }
                do {
                    let spillPath = staging + String(format: "/spill-%05d", index)
                    var tables = ShardTables()
                    func location(_ source: Int, _ line: Int) -> String {
                        VaultError.at(sources[source].path, line: line, field: sources[source].patientField)
                    }
                    // Patients first (a record may come before its patient's row in the
                    // staging file), then every other record, read in place from each block.
                    try SpillReader.forEachRecord(path: spillPath, key: spillKey, shard: index) { header, body in
                        guard header.kind == .patients else { return try SpillCodec.skipBody(header.kind, &body) }
                        guard try tables.addSpilledPatient(pseudonym: header.pseudonym, &body) else {
                            throw VaultError(.dataError, "duplicate patient id", location: location(header.source, header.line))
                        }
                    }
                    try SpillReader.forEachRecord(path: spillPath, key: spillKey, shard: index) { header, body in
                        guard header.kind != .patients else { return try SpillCodec.skipBody(header.kind, &body) }
                        guard let row = tables.row(of: header.pseudonym) else {
                            throw VaultError(.dataError, "record refers to a patient that does not exist in the input",
                                             location: location(header.source, header.line))
                        }
                        try tables.addSpilled(header.kind, row: row, &body)
                    }
                    unlink(spillPath)
                    var plaintext = tables.encode()
                    let counts = tables.counts
                    tables.wipe()
                    tables = ShardTables()
                    defer { secureWipe(&plaintext) }
                    let file = Manifest.shardFile(index)
                    let info = try plaintext.withUnsafeBytes {
                        try ShardSealer.seal(plaintext: $0, to: staging + "/" + file, vaultId: vaultId, dataset: dataset,
                                             generation: UInt64(generation), shardIndex: index, shardCount: shardCount,
                                             schemaId: schemaId, kek: kekInfo, signing: signingInfo)
                    }
                    let entry = ManifestShard(index: index, file: file, size: info.size, headerSha256: Hex.encode(info.headerSha256),
                                              bodySha256: Hex.encode(info.bodySha256), dataKeyId: Hex.encode(info.header.dataKeyId),
                                              kekVersion: kekRecord.version, signingVersion: signingRecord.version,
                                              records: counts)
                    results.set(index, entry: entry, plaintextBytes: plaintext.count)
                } catch {
                    results.fail(error)
                }
            }
        }
        if let error = results.firstError { throw error }
        let entries = results.entries.compactMap { $0 }
        guard entries.count == shardCount else { throw VaultError(.software, "not every shard was written") }
        let totals = entries.reduce(RecordCounts()) { $0 + $1.records }

        // Every shard written is on the audit log before anything becomes visible.
        try vault.audit.append(entries.map {
            AuditEvent(action: AuditAction.shardWrite, resource: AuditResource(dataset: dataset, generation: generation, shard: $0.file,
                                                                              key: kekRecord.id, keyVersion: kekRecord.version,
                                                                              sha256: $0.bodySha256, size: $0.size))
        })

        // Publish: move the generation into place, then the manifest (the commit point).
        try FileIO.fsyncDirectory(staging)
        let generationDir = datasetDir + "/" + Manifest.generationDirectory(generation)
        guard rename(staging, generationDir) == 0 else {
            throw VaultError.system(.ioError, "cannot publish generation folder", path: generationDir, errno: errno)
        }
        published = true
        let manifest = Manifest(format: Manifest.format, vaultId: vault.idHex, dataset: dataset, generation: generation,
                                created: Timestamp.rfc3339(now), schemaId: schemaId, sourceFormat: format.rawValue, shardCount: shardCount,
                                previousManifestSha256: previousBytes.map { Hex.encode(Digest.sha256($0)) },
                                kek: KeyRef(id: kekRecord.id, version: kekRecord.version),
                                signing: KeyRef(id: signingRecord.id, version: signingRecord.version),
                                partition: KeyRef(id: partitionRecord.id, version: partitionRecord.version),
                                totals: totals, shards: entries)
        let manifestBytes: [UInt8]
        do {
            try FileIO.fsyncDirectory(datasetDir)
            manifestBytes = try ManifestFile.encode(manifest, signingKey: signing)
            let temporary = try FileIO.writeTemporary(manifestBytes, beside: manifestPath, mode: 0o640)
            try FileIO.commitTemporary(temporary, to: manifestPath)
        } catch {
            // Not committed: the previous manifest, if any, is untouched and still current.
            FileIO.removeTree(generationDir)
            throw error
        }
        // Committed. The manifest's generation and hash go on the log, so that a manifest rolled
        // back to an older generation is detected by `verify`. If this entry cannot be written
        // the command fails with exit 74, but the new generation stays committed.
        let manifestSha256 = Hex.encode(Digest.sha256(manifestBytes))
        try vault.audit.append(AuditEvent(action: AuditAction.manifestCommit,
                                          resource: AuditResource(dataset: dataset, generation: generation, sha256: manifestSha256,
                                                                  size: manifestBytes.count)))
        // What follows cannot undo the ingest; failures are reported as warnings.
        var warnings: [String] = []
        do { try FileIO.fsyncDirectory(datasetDir) } catch { warnings.append("\(error)") }
        if let previous {
            FileIO.removeTree(datasetDir + "/" + previous.generationDirectory)
        }
        vault.keyring.recordUses(id: kekRecord.id, version: kekRecord.version, count: shardCount)
        do { try vault.keyring.save() } catch { warnings.append("key use counters not saved: \(error)") }
        return IngestReport(dataset: dataset, generation: generation, format: format.rawValue, shards: shardCount, records: totals,
                            inputBytes: sink.inputBytes, plaintextBytes: results.plaintextBytes, sealedBytes: entries.reduce(0) { $0 + $1.size },
                            seconds: Date().timeIntervalSince(started), skippedFiles: sink.skippedFiles,
                            manifestSha256: manifestSha256, replacedGeneration: previous?.generation,
                            warnings: warnings)
    }

    public static let maximumShards = 4096

    /// Ingest keeps one staging file open per shard: raise the soft open-file limit to the
    /// hard one if needed, or fail clearly before reading any input.
    static func ensureFileLimit(_ shards: Int) throws {
        var limit = rlimit()
        guard getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return }
        let needed = rlim_t(shards + 64)
        if limit.rlim_cur >= needed { return }
        if limit.rlim_max >= needed || limit.rlim_max == rlim_t.max {
            limit.rlim_cur = limit.rlim_max == rlim_t.max ? needed : limit.rlim_max
            if setrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0 { return }
        }
        throw VaultError(.configuration, "\(shards) shards need \(needed) open files but the limit is \(limit.rlim_max); use fewer --shards or raise 'ulimit -n'")
    }

    static func treeSize(_ path: String) -> Int {
        guard FileIO.isDirectory(path) else { return FileIO.size(path) }
        guard let names = try? FileIO.listDirectory(path) else { return 0 }
        return names.reduce(0) { $0 + FileIO.size(path + "/" + $1) }
    }
}

/// Results of the parallel sealing pass, guarded by a lock.
final class ShardResults: @unchecked Sendable {
    // All state is accessed under `lock`.
    private let lock = NSLock()
    private var _entries: [ManifestShard?]
    private var _error: (any Error)?
    private var _plaintext = 0

    init(count: Int) { _entries = Array(repeating: nil, count: count) }

    func set(_ index: Int, entry: ManifestShard, plaintextBytes: Int) {
        lock.withLock { _entries[index] = entry; _plaintext += plaintextBytes }
    }

    func fail(_ error: any Error) { lock.withLock { if _error == nil { _error = error } } }
    var failed: Bool { lock.withLock { _error != nil } }
    var firstError: (any Error)? { lock.withLock { _error } }
    var entries: [ManifestShard?] { lock.withLock { _entries } }
    var plaintextBytes: Int { lock.withLock { _plaintext } }
}

/// A shared counter for handing out work items.
final class AtomicCounter: @unchecked Sendable {
    // Accessed only under `lock`.
    private let lock = NSLock()
    private var value = 0
    func increment() -> Int { lock.withLock { defer { value += 1 }; return value } }
    /// Adds `n` and returns the new value.
    func add(_ n: Int) -> Int { lock.withLock { value += n; return value } }
}
