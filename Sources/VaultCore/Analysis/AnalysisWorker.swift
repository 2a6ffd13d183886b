import CShims
import Foundation
import VaultCrypto
#if canImport(Glibc)
import Glibc
#endif

extension PartialAggregate {
    /// Binary form for the trip from a worker process: little-endian counts, UTF-8 keys,
    /// IEEE doubles.
    func encode() -> [UInt8] {
        var w = LittleEndianWriter()
        w.u32(UInt32(observationMeasures))
        w.u32(UInt32(groups.count))
        for (key, g) in groups.sorted(by: { $0.key.lexicographicallyPrecedes($1.key) }) {
            w.u32(UInt32(key.count))
            for part in key {
                let utf8 = Array(part.utf8)
                w.u32(UInt32(utf8.count))
                w.raw(utf8)
            }
            w.u64(UInt64(g.patients))
            for values in g.values {
                w.u64(UInt64(values.count))
                w.array(values.map(\.bitPattern))
            }
        }
        return w.bytes
    }

    static func decode(_ bytes: [UInt8]) throws -> PartialAggregate {
        try bytes.withUnsafeBytes { raw in
            var r = LittleEndianReader(raw)
            let measures = Int(try r.u32())
            var out = PartialAggregate(observationMeasures: measures)
            let groupCount = Int(try r.u32())
            for _ in 0..<groupCount {
                let parts = Int(try r.u32())
                guard parts <= 16 else { throw VaultError(.dataError, "partial aggregate has a malformed group key") }
                var key: [String] = []
                for _ in 0..<parts {
                    let n = Int(try r.u32())
                    key.append(String(decoding: try r.raw(n), as: UTF8.self))
                }
                var group = Group(patients: Int(try r.u64()), values: [])
                for _ in 0..<measures {
                    let n = Int(try r.u64())
                    guard n <= r.remaining / 8 else { throw VaultError(.dataError, "partial aggregate is truncated") }
                    group.values.append((0..<n).map { _ in 0.0 })
                    for i in 0..<n { group.values[group.values.count - 1][i] = Double(bitPattern: try r.u64()) }
                }
                out.groups[key] = group
            }
            guard r.remaining == 0 else { throw VaultError(.dataError, "partial aggregate has trailing bytes") }
            return out
        }
    }
}

/// One task for a worker process, sent on its standard input (never in argv, the
/// environment or a file): a JSON header line, which holds nothing secret and is read by
/// the fork server, then the shard's data key (DEK, unwrapped by the coordinator: the
/// worker never holds the dataset's KEK nor its signing key) and the job's output key,
/// which only the task's child reads.
public struct WorkerTask: Codable, Sendable {
    public var job: String
    public var spec: String
    public var path: String
    public var vaultId: String
    public var dataset: String
    public var generation: Int
    public var shardCount: Int
    public var entry: ManifestShard
    /// The plaintext encoding the manifest names for the dataset's shards.
    public var schemaId: String

    static let magic = Array("SVTASK4\n".utf8)
    static let outputMagic = Array("SVPART1\n".utf8)

    /// Additional data of a worker's sealed output: the job and the shard, so that outputs
    /// cannot be swapped between tasks or jobs.
    var outputAAD: [UInt8] { Array("shardvault/partial/v1\n\(job)\n\(entry.index)".utf8) }

    /// The header: magic, the task as one line of JSON. Nothing secret.
    func header() throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        return Self.magic + [UInt8](try encoder.encode(self)) + [0x0A]
    }

    /// The whole frame: the header, then the DEK and the output key (32 bytes each).
    func frame(dek: SecureBytes, outputKey: SecureBytes) throws -> [UInt8] {
        var out = try header()
        guard dek.count == 32, outputKey.count == 32 else { throw VaultError(.software, "task keys must be 32 bytes") }
        dek.withUnsafeBytes { out.append(contentsOf: $0) }
        outputKey.withUnsafeBytes { out.append(contentsOf: $0) }
        return out
    }

    /// Bytes of the keys that end a frame.
    static let keysLength = 64
    /// The largest task header a worker reads (the spec text is most of it).
    static let maximumHeader = 1 << 20

    /// Hardens the worker process (no core dumps, not dumpable, no new privileges); done
    /// before anything is read.
    public static func hardenWorker() throws {
        guard shardvault_harden_process() == 0 else {
            throw VaultError(.software, "cannot harden the worker process: \(String(cString: strerror(errno)))")
        }
    }

    /// A task whose header has been read and checked, ready for its keys: what the fork
    /// server works out before it forks, so that no child parses JSON or a spec.
    struct Prepared {
        let task: WorkerTask
        let spec: JobSpec
        let expected: ShardExpectation
        let columns: [RecordKind: Set<Int>]
    }

    /// Checks a task header (magic, JSON line, spec). `cache` keeps the last spec parsed:
    /// every task of a job carries the same one.
    static func prepare(header: [UInt8], cache: inout (text: String, spec: JobSpec)?) throws -> Prepared {
        guard header.count > magic.count, Array(header.prefix(magic.count)) == magic, header.last == 0x0A,
              header[magic.count..<(header.count - 1)].firstIndex(of: 0x0A) == nil else {
            throw VaultError(.usage, "the worker expects a task frame on standard input")
        }
        let task: WorkerTask
        do { task = try JSONDecoder().decode(WorkerTask.self, from: Data(header[magic.count..<(header.count - 1)])) } catch {
            throw VaultError(.usage, "the task frame's header is not a task")
        }
        let spec: JobSpec
        if let cache, cache.text == task.spec { spec = cache.spec } else {
            spec = try JobSpec.parse(task.spec, file: "job spec")
            cache = (task.spec, spec)
        }
        guard let vaultId = Hex.decode(task.vaultId) else { throw VaultError(.usage, "bad vault id in the task") }
        let expected = ShardExpectation(vaultId: vaultId, dataset: task.dataset, generation: task.generation, shardCount: task.shardCount, entry: task.entry,
                                        schemaId: task.schemaId)
        return Prepared(task: task, spec: spec, expected: expected, columns: AnalysisEngine.columns(for: spec))
    }

    /// The worker's side, in the task's child: verifies and decrypts the shard, computes the
    /// partial aggregates and returns them sealed under the output key. The plaintext and
    /// the keys never leave this process.
    static func run(_ prepared: Prepared, dek: SecureBytes, outputKey: SecureBytes) throws -> [UInt8] {
        // No signing key here: the manifest, authenticated by the coordinator, fixes the
        // header and body digests this read checks, besides the DEK's commitment and every chunk.
        let shard = try ShardReader.decryptColumns(path: prepared.task.path, expected: prepared.expected, key: .dek(dek), signingKey: nil,
                                                   columns: prepared.columns)
        var partial = try AnalysisEngine.evaluate(prepared.spec, shard: shard).encode()
        defer { secureWipe(&partial) }
        let nonce = try SystemRandom.bytes(12)
        return outputMagic + nonce + (try AESGCM(key: outputKey).seal(nonce: nonce, plaintext: partial, aad: prepared.task.outputAAD))
    }

    /// Opens a worker's output.
    func openOutput(_ bytes: [UInt8], outputKey: SecureBytes) throws -> PartialAggregate {
        let m = Self.outputMagic.count
        guard bytes.count > m + 12 + 16, Array(bytes.prefix(m)) == Self.outputMagic else {
            throw VaultError(.dataError, "worker output is malformed", location: path)
        }
        let plain: SecureBytes
        do {
            plain = try AESGCM(key: outputKey).open(nonce: Array(bytes[m..<(m + 12)]), sealed: Array(bytes[(m + 12)...]), aad: outputAAD)
        } catch {
            throw VaultError(.dataError, "worker output does not authenticate under the job's output key", location: path)
        }
        return try PartialAggregate.decode(plain.unsafeExportedBytes())
    }
}

/// The worker side of `shardvault worker`: a fork server. It hardens itself, warms up
/// (so that each task skips process start-up: loading, linking, runtime caches), then
/// forks one child per task. The server reads and checks each task's header, which holds
/// nothing secret (the shard, its manifest entry, the spec), so that a child starts with
/// the task decoded and the spec parsed; the child alone reads the keys, processes the one
/// shard, answers and exits. The server never sees a key, a plaintext byte or a result,
/// and nothing a task held outlives its process.
///
/// On standard input, from the coordinator: `T`, a 4-byte little-endian length and the
/// task header (read by the server), then the 64 bytes of keys (read by the child); or `Q`
/// to stop. On standard output: the child's record, `R` + length + sealed output, or `E` +
/// exit status + length + message, then the server's `D` + the child's 4-byte wait status
/// once it has exited.
public enum WorkerServer {
    static let task = UInt8(ascii: "T"), quit = UInt8(ascii: "Q")
    static let result = UInt8(ascii: "R"), failure = UInt8(ascii: "E"), done = UInt8(ascii: "D")

    /// Serves tasks until `Q`. Throws a usage error if standard input ends without one
    /// (a worker started by hand).
    public static func serve(input: Int32 = 0, output: Int32 = 1) throws {
        try WorkerTask.hardenWorker()
        warmUp()
        var command: UInt8 = 0
        var specCache: (text: String, spec: JobSpec)?
        while true {
            let n = withUnsafeMutableBytes(of: &command) { readFully(input, $0) }
            guard n == 1 else { throw VaultError(.usage, "the worker expects task frames on standard input") }
            switch command {
            case quit: return
            case task: break
            default: throw VaultError(.usage, "the worker expects task frames on standard input (unknown command \(command))")
            }
            var length: UInt32 = 0
            guard withUnsafeMutableBytes(of: &length, { readFully(input, $0) }) == 4 else {
                throw VaultError(.usage, "the worker expects task frames on standard input")
            }
            let count = Int(UInt32(littleEndian: length))
            guard count > 0, count <= WorkerTask.maximumHeader else {
                throw VaultError(.usage, "task header of \(count) bytes (at most \(WorkerTask.maximumHeader))")
            }
            var header = [UInt8](repeating: 0, count: count)
            guard header.withUnsafeMutableBytes({ readFully(input, $0) }) == count else {
                throw VaultError(.usage, "the task header ended early")
            }
            // A header that does not check still gets its child, which reads the keys off
            // the pipe (so that the next task starts where it should) and says what is wrong.
            let prepared = Result { try WorkerTask.prepare(header: header, cache: &specCache) }
                .mapError { $0 as? VaultError ?? VaultError(.usage, "\($0)") }
            // fork() copies only the calling thread: with any other thread alive, a lock it
            // held would stay held in the child. Refuse rather than risk it.
            guard threadCount() == 1 else { throw VaultError(.software, "the worker has more than one thread; it cannot fork safely") }
            let pid = shardvault_fork()
            guard pid >= 0 else { throw VaultError.system(.software, "cannot fork a task process", path: "worker", errno: errno) }
            if pid == 0 { _exit(runChild(prepared, input: input, output: output)) }
            var status: Int32 = 0
            while waitpid(pid, &status, 0) < 0 {
                guard errno == EINTR else { throw VaultError.system(.software, "cannot wait for a task process", path: "worker", errno: errno) }
            }
            var record = [done]
            record.append(contentsOf: withUnsafeBytes(of: UInt32(bitPattern: status).littleEndian, Array.init))
            guard writeFully(output, record) else { throw VaultError.system(.ioError, "cannot answer the coordinator", path: "stdout", errno: errno) }
        }
    }

    /// One task, in the forked child: read the keys straight into `SecureBytes` (wiped when
    /// released), run the task, write one record. Returns the exit status.
    static func runChild(_ prepared: Result<WorkerTask.Prepared, VaultError>, input: Int32, output: Int32) -> Int32 {
        var record: [UInt8]
        var status: Int32 = 0
        do {
            try WorkerTask.hardenWorker()
            let dek = SecureBytes(zeroedCount: 32), outputKey = SecureBytes(zeroedCount: 32)
            let read = dek.withUnsafeMutableBytes { readFully(input, $0) } + outputKey.withUnsafeMutableBytes { readFully(input, $0) }
            guard read == WorkerTask.keysLength else { throw VaultError(.usage, "the task frame ended before its keys") }
            let sealed = try WorkerTask.run(try prepared.get(), dek: dek, outputKey: outputKey)
            record = [result] + lengthPrefix(sealed.count) + sealed
        } catch {
            let vaultError = error as? VaultError ?? VaultError(.software, "\(error)")
            status = vaultError.code.exitStatus
            let message = Array(vaultError.description.utf8.prefix(16_384))
            record = [failure, UInt8(truncatingIfNeeded: status)] + lengthPrefix(message.count) + message
        }
        return writeFully(output, record) ? status : 74
    }

    /// Threads of this process, from /proc/self/task (0 when it cannot be read).
    static func threadCount() -> Int {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/task").count) ?? 0
    }

    static func lengthPrefix(_ count: Int) -> [UInt8] {
        withUnsafeBytes(of: UInt32(count).littleEndian, Array.init)
    }

    /// Runs the code paths a task takes over data that holds nothing, so that a forked
    /// task finds them loaded, linked and cached.
    static func warmUp() {
        let spec = #"{"dataset": "warm-up", "purpose": "HRESCH", "asOf": "2020-01-01", "cohort": {"age": {"min": 0}, "alive": true}, "#
            + #""groupBy": ["sex", "ageBand10"], "measures": [{"name": "n", "count": "patients"}, "#
            + #"{"name": "v", "observation": "0-0", "stats": ["count", "mean", "stddev", "min", "max", "p50", "p90"]}]}"#
        let task = WorkerTask(job: "0", spec: spec, path: "", vaultId: "00", dataset: "warm-up", generation: 1, shardCount: 1,
                              entry: ManifestShard(index: 0, file: "", size: 0, headerSha256: "", bodySha256: "", dataKeyId: "", kekVersion: 1,
                                                   signingVersion: 1, records: RecordCounts()), schemaId: ColumnarCodec.schemaId)
        var cache: (text: String, spec: JobSpec)?
        _ = try? WorkerTask.prepare(header: task.header(), cache: &cache)
        if let parsed = cache?.spec, let shard = try? warmUpTables().encode().withUnsafeBytes({ try DecodedShard.decode($0, compact: true) }) {
            _ = try? AnalysisEngine.evaluate(parsed, shard: shard).encode()
        }
        let zero = SecureBytes(zeroedCount: 32)
        _ = try? AESGCM(key: zero).seal(nonce: [UInt8](repeating: 0, count: 12), plaintext: [0], aad: [])
        _ = Digest.sha256([0])
        warmUpDecryption()
    }

    /// Made-up tables whose columns take every packed encoding: runs of patients, packed
    /// dates and times, decimals, narrow dictionaries.
    static func warmUpTables() -> ShardTables {
        var tables = ShardTables()
        for p in 0..<4 {
            let pseudonym = [UInt8](repeating: UInt8(p), count: 16)
            tables.addPatient(.init(pseudonym: pseudonym, birthDate: Int32(p * 400), deathDate: Absent.date, sex: "F", race: "white", ethnicity: p == 0 ? "" : " nonhispanic ",
                                            state: p == 1 ? "Atlantis" : "Massachusetts"))
            for i in 0..<8 {
                let time = Int64(p * 1_000_000 + i * 37)
                _ = tables.add(.condition(pseudonym: pseudonym, start: Int64(i) * 86_400, stop: Absent.time, code: "0"))
                _ = tables.add(.medication(pseudonym: pseudonym, start: time, stop: time + 60, code: "0"))
                _ = tables.add(.observation(pseudonym: pseudonym, time: time, category: "", code: "0-0", value: Double(i) / 10, unit: "", text: ""))
            }
        }
        return tables
    }

    /// The decryption path (read buffer, chunk cursor, column decoder) over throwaway
    /// shard bodies sealed under a throwaway key, in a file in memory: an empty shard's
    /// tables (partial chunks, through the scratch chunk), then three whole chunks straight
    /// into an array. The read buffer it leaves behind has its first pages written; a
    /// child copies those, and gets fresh pages for the rest.
    static func warmUpDecryption() {
        let fd = shardvault_memfd("shardvault-warm-up")
        guard fd >= 0 else { return }
        defer { close(fd) }
        guard let key = try? SecureBytes.random(count: 32) else { return }
        func cursor(over plaintext: [UInt8]) -> ChunkCursor? {
            guard let sealed = try? ChunkedEncryption.seal(plaintext, key: key, context: []), ftruncate(fd, 0) == 0,
                  pwrite(fd, [UInt8](repeating: 0, count: ShardHeader.blockSize) + sealed, ShardHeader.blockSize + sealed.count, 0)
                      == ShardHeader.blockSize + sealed.count,
                  let opener = try? sealed.withUnsafeBytes({
                      try ChunkedOpener(key: key, context: [], header: UnsafeRawBufferPointer(rebasing: $0[0..<ChunkedEncryption.headerLength]))
                  }),
                  let layout = try? ChunkedEncryption.Layout(bodyLength: sealed.count - ChunkedEncryption.headerLength) else { return nil }
            return try? ChunkCursor(fd: fd, path: "warm-up", opener: opener, layout: layout, hashing: true)
        }
        if let tables = cursor(over: warmUpTables().encode()) {
            var reader = DecryptingReader(cursor: tables)
            _ = try? DecodedShard.decode(&reader, columns: Dictionary(uniqueKeysWithValues: RecordKind.allCases.map { ($0, Set(0..<16)) }),
                                       compact: true)
            _ = try? tables.finishDigest()
        }
        if let chunks = cursor(over: [UInt8](repeating: 0, count: 3 * ChunkedEncryption.chunkSize)) {
            var reader = DecryptingReader(cursor: chunks)
            _ = try? reader.array(3 * ChunkedEncryption.chunkSize / 8, of: Double.self)
            _ = try? chunks.finishDigest()
        }
    }

    static func readFully(_ fd: Int32, _ buffer: UnsafeMutableRawBufferPointer) -> Int {
        var count = 0
        while count < buffer.count {
            let n = read(fd, buffer.baseAddress! + count, buffer.count - count)
            if n < 0 && errno == EINTR { continue }
            if n < 0 { return -1 }
            if n == 0 { break }
            count += n
        }
        return count
    }

    static func writeFully(_ fd: Int32, _ bytes: [UInt8]) -> Bool {
        bytes.withUnsafeBytes { writeFully(fd, $0) }
    }

    static func writeFully(_ fd: Int32, _ buffer: UnsafeRawBufferPointer) -> Bool {
        var sent = 0
        while sent < buffer.count {
            let n = write(fd, buffer.baseAddress! + sent, buffer.count - sent)
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return false }
            sent += n
        }
        return true
    }
}

/// The fork servers of a job run with process isolation. Those started ahead load, harden
/// and warm up while the coordinator opens the vault, checks the policy and writes the
/// audit entries; they hold nothing until a task arrives. A lane that finds none idle starts
/// its own. `finish` (or the end of this object) stops those never used.
public final class WorkerServers: @unchecked Sendable {
    /// A server's whole command line after the executable: nothing secret.
    public static let arguments = ["worker"]
    public let executable: String
    private let lock = NSLock()
    private var idle: [WorkerProcess] = []

    /// Starts `count` servers of `executable worker` now.
    public init(executable: String, starting count: Int = 0) throws {
        self.executable = executable
        for _ in 0..<count {
            do { idle.append(try WorkerProcess(executable: executable)) } catch {
                finish()
                throw error
            }
        }
    }

    deinit { finish() }

    /// A started server for one lane, which stops it when the lane ends.
    func take() throws -> WorkerProcess {
        if let server = lock.withLock({ idle.popLast() }) { return server }
        return try WorkerProcess(executable: executable)
    }

    /// Stops the servers no lane took.
    public func finish() {
        let unused = lock.withLock { () -> [WorkerProcess] in
            defer { idle.removeAll() }
            return idle
        }
        unused.forEach { $0.finish() }
    }
}

/// The coordinator's side: one `shardvault worker` fork server, started once per parallel
/// lane of a job and given that lane's tasks one at a time.
final class WorkerProcess {
    /// A worker's whole environment (its arguments are `WorkerServers.arguments`): nothing
    /// secret, nothing inherited.
    static let environment = ["PATH": "/usr/bin:/bin", "GLIBC_TUNABLES": "glibc.malloc.hugetlb=1"]

    /// A worker that dies must not take the coordinator with it: writes to its pipe then
    /// fail with EPIPE instead of raising SIGPIPE.
    static let ignoreBrokenPipes: Void = { signal(SIGPIPE, SIG_IGN); return () }()

    private let pid: pid_t
    private let toWorker: Int32
    private let fromWorker: Int32

    /// Started with posix_spawn and reaped with waitpid, not with Foundation's `Process`,
    /// whose `waitUntilExit` polls in 50 ms steps: each job would wait that long at its end.
    init(executable: String) throws {
        _ = Self.ignoreBrokenPipes
        let argv = ([executable] + WorkerServers.arguments).map { strdup($0) }
        let envp = Self.environment.sorted { $0.key < $1.key }.map { strdup("\($0.key)=\($0.value)") }
        defer { (argv + envp).forEach { free($0) } }
        var to: Int32 = -1, from: Int32 = -1
        let child = shardvault_spawn(executable, argv + [nil], envp + [nil], &to, &from)
        guard child > 0 else { throw VaultError.system(.software, "cannot start a worker process", path: executable, errno: errno) }
        pid = child
        toWorker = to
        fromWorker = from
    }

    /// Runs one task in a fresh child of the server and opens its sealed answer.
    func run(_ task: WorkerTask, dek: SecureBytes, outputKey: SecureBytes) throws -> PartialAggregate {
        var frame = try task.frame(dek: dek, outputKey: outputKey)
        defer { secureWipe(&frame) }
        let out = toWorker, back = fromWorker
        // Written straight from the frame buffer (wiped above), with no intermediate copy.
        // A failed write means the worker went away; its answer (or its absence) says why.
        if WorkerServer.writeFully(out, [WorkerServer.task] + WorkerServer.lengthPrefix(frame.count - WorkerTask.keysLength)) {
            _ = frame.withUnsafeBytes { WorkerServer.writeFully(out, $0) }
        }
        func gone() -> VaultError { VaultError(.software, "the worker process for \(task.path) ended unexpectedly") }
        func bytes(_ count: Int) throws -> [UInt8] {
            var buffer = [UInt8](repeating: 0, count: count)
            guard buffer.withUnsafeMutableBytes({ WorkerServer.readFully(back, $0) }) == count else { throw gone() }
            return buffer
        }
        func length() throws -> Int {
            let b = try bytes(4)
            return Int(UInt32(b[0]) | UInt32(b[1]) << 8 | UInt32(b[2]) << 16 | UInt32(b[3]) << 24)
        }
        var record = try bytes(1)[0]
        var answer: Result<PartialAggregate, VaultError>?
        switch record {
        case WorkerServer.result:
            let sealed = try bytes(try length())
            answer = Result { try task.openOutput(sealed, outputKey: outputKey) }.mapError { $0 as? VaultError ?? VaultError(.software, "\($0)") }
            record = try bytes(1)[0]
        case WorkerServer.failure:
            let status = try bytes(1)[0]
            let message = String(decoding: try bytes(try length()), as: UTF8.self)
            answer = .failure(status == 65 ? VaultError(.dataError, message.isEmpty ? "the worker rejected the shard" : message)
                                           : VaultError(.software, "worker for \(task.path) exited with \(status): \(message)"))
            record = try bytes(1)[0]
        default: break
        }
        guard record == WorkerServer.done else { throw gone() }
        let waitStatus = Int32(bitPattern: UInt32(try length()))
        if let answer { return try answer.get() }
        let signal = waitStatus & 0x7f
        throw VaultError(.software, signal != 0 ? "the task process for \(task.path) was killed by signal \(signal)"
                                                : "the task process for \(task.path) exited with \((waitStatus >> 8) & 0xff) without an answer")
    }

    /// Stops the server and waits for it.
    func finish() {
        _ = WorkerServer.writeFully(toWorker, [WorkerServer.quit])
        close(toWorker)
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        close(fromWorker)
    }
}
