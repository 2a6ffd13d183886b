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
/// environment or a file): a JSON header line, then the shard's data key (DEK, unwrapped by
/// the coordinator: the worker never holds the dataset's KEK nor its signing key) and the
/// job's output key.
public struct WorkerTask: Codable, Sendable {
    public var job: String
    public var spec: String
    public var path: String
    public var vaultId: String
    public var dataset: String
    public var generation: Int
    public var shardCount: Int
    public var entry: ManifestShard

    static let magic = Array("SVTASK2\n".utf8)
    static let outputMagic = Array("SVPART1\n".utf8)

    /// Additional data of a worker's sealed output: the job and the shard, so that outputs
    /// cannot be swapped between tasks or jobs.
    var outputAAD: [UInt8] { Array("shardvault/partial/v1\n\(job)\n\(entry.index)".utf8) }

    func frame(dek: SecureBytes, outputKey: SecureBytes) throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        var out = Self.magic + [UInt8](try encoder.encode(self)) + [0x0A]
        guard dek.count == 32, outputKey.count == 32 else { throw VaultError(.software, "task keys must be 32 bytes") }
        dek.withUnsafeBytes { out.append(contentsOf: $0) }
        outputKey.withUnsafeBytes { out.append(contentsOf: $0) }
        return out
    }

    /// The largest task frame a worker reads (the spec text is most of it).
    static let maximumFrame = 1 << 20

    /// Hardens the worker process (no core dumps, not dumpable, no new privileges); done
    /// before the frame with its keys is read.
    public static func hardenWorker() throws {
        guard shardvault_harden_process() == 0 else {
            throw VaultError(.software, "cannot harden the worker process: \(String(cString: strerror(errno)))")
        }
    }

    /// Reads a whole task frame from `fd` into one buffer allocated up front (so no copy of
    /// the keys is left behind by a reallocation); the caller wipes it.
    public static func readFrame(fd: Int32 = 0) throws -> [UInt8] {
        var buffer = [UInt8](repeating: 0, count: maximumFrame)
        var count = 0
        while count < buffer.count {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress! + count, $0.count - count) }
            if n < 0 && errno == EINTR { continue }
            guard n >= 0 else { secureWipe(&buffer); throw VaultError.system(.ioError, "cannot read the task frame", path: "stdin", errno: errno) }
            if n == 0 { break }
            count += n
        }
        guard count < buffer.count else { secureWipe(&buffer); throw VaultError(.usage, "task frame larger than \(maximumFrame) bytes") }
        let frame = Array(buffer[0..<count])
        secureWipe(&buffer)
        return frame
    }

    /// The worker's side: hardens the process, reads the frame, verifies and decrypts the
    /// shard, computes the partial aggregates and returns them sealed under the output key.
    /// The plaintext and the keys never leave this process.
    public static func runWorker(input: inout [UInt8]) throws -> [UInt8] {
        defer { secureWipe(&input) }
        try hardenWorker()
        guard input.count > magic.count + 64, Array(input.prefix(magic.count)) == magic,
              let newline = input[magic.count...].firstIndex(of: 0x0A), input.count - (newline + 1) == 64 else {
            throw VaultError(.usage, "the worker expects a task frame on standard input")
        }
        let task = try JSONDecoder().decode(WorkerTask.self, from: Data(input[magic.count..<newline]))
        let dek = SecureBytes(copying: input[(newline + 1)..<(newline + 33)])
        let outputKey = SecureBytes(copying: input[(newline + 33)..<(newline + 65)])
        let spec = try JobSpec.parse(task.spec, file: "job spec")
        guard let vaultId = Hex.decode(task.vaultId) else { throw VaultError(.usage, "bad vault id in the task") }
        let expected = ShardExpectation(vaultId: vaultId, dataset: task.dataset, generation: task.generation, shardCount: task.shardCount, entry: task.entry)
        // No signing key here: the manifest, authenticated by the coordinator, fixes the
        // header and body digests this read checks, besides the DEK's commitment and every chunk.
        let shard = try ShardReader.decrypt(path: task.path, expected: expected, key: .dek(dek), signingKey: nil)
        var partial = try AnalysisEngine.evaluate(spec, shard: shard).encode()
        defer { secureWipe(&partial) }
        let nonce = try SystemRandom.bytes(12)
        return outputMagic + nonce + (try AESGCM(key: outputKey).seal(nonce: nonce, plaintext: partial, aad: task.outputAAD))
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

/// Runs tasks in worker processes: each gets its task on stdin and answers on stdout.
struct ProcessTaskRunner {
    let executable: String

    /// A worker's whole command line and environment: nothing secret, nothing inherited.
    static let arguments = ["worker"]
    static let environment = ["PATH": "/usr/bin:/bin"]

    /// A worker that dies before reading its frame must not take the coordinator with it:
    /// writes to its pipe then fail with EPIPE instead of raising SIGPIPE.
    static let ignoreBrokenPipes: Void = { signal(SIGPIPE, SIG_IGN); return () }()

    func run(_ task: WorkerTask, dek: SecureBytes, outputKey: SecureBytes) throws -> PartialAggregate {
        _ = Self.ignoreBrokenPipes
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = Self.arguments
        process.environment = Self.environment
        let input = Pipe(), output = Pipe(), errors = Pipe()
        process.standardInput = input
        process.standardOutput = output
        process.standardError = errors
        try process.run()
        var frame = try task.frame(dek: dek, outputKey: outputKey)
        defer { secureWipe(&frame) }
        // The answer is read on another thread while the frame is written, so neither side blocks.
        let reader = PipeReader(output.fileHandleForReading)
        let errorReader = PipeReader(errors.fileHandleForReading)
        // Written straight from the frame buffer (wiped above), with no intermediate copy.
        let fd = input.fileHandleForWriting.fileDescriptor
        var sent = 0
        while sent < frame.count {
            let n = frame.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + sent, $0.count - sent) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break } // the worker went away; its exit status says why
            sent += n
        }
        try? input.fileHandleForWriting.close()
        let out = reader.wait(), err = errorReader.wait()
        process.waitUntilExit()
        let message = String(decoding: err, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        switch process.terminationStatus {
        case 0: return try task.openOutput(out, outputKey: outputKey)
        case 65: throw VaultError(.dataError, message.isEmpty ? "the worker rejected the shard" : message)
        default: throw VaultError(.software, "worker for \(task.path) exited with \(process.terminationStatus): \(message)")
        }
    }
}

/// Reads a pipe to its end on a background thread.
final class PipeReader: @unchecked Sendable {
    // `data` is written once by the reading thread before `done` is signalled.
    private var data = Data()
    private let done = DispatchSemaphore(value: 0)

    init(_ handle: FileHandle) {
        Thread.detachNewThread { [self] in
            data = handle.readDataToEndOfFile()
            done.signal()
        }
    }

    func wait() -> [UInt8] {
        done.wait()
        return [UInt8](data)
    }
}
