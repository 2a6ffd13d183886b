import Foundation
import Testing
import VaultCore

/// Runs the real `shardvault` binary, as a user would.
enum CLI {
    static let binary: String? = {
        let fm = FileManager.default
        var candidates: [String] = []
        let runner = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        var dir = runner.deletingLastPathComponent()
        for _ in 0..<4 {
            candidates.append(dir.appendingPathComponent("shardvault").path)
            dir.deleteLastPathComponent()
        }
        var root = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { root.deleteLastPathComponent() }
        candidates.append(root.appendingPathComponent(".build/debug/shardvault").path)
        return candidates.first { fm.isExecutableFile(atPath: $0) }
    }()

    static let testdata: String? = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<8 {
            url.deleteLastPathComponent()
            let candidate = url.appendingPathComponent("../shared/testdata").standardizedFileURL.path
            if FileManager.default.fileExists(atPath: candidate + "/README.md") { return candidate }
        }
        return nil
    }()

    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    static func run(_ arguments: [String], environment: [String: String] = [:]) throws -> Result {
        guard let binary else { throw CLIError.missingBinary }
        return try runProgram(binary, arguments, environment: environment)
    }

    /// Runs any program (the binary, openssl, unshare) without the caller's ShardVault
    /// environment variables, and collects its output.
    static func runProgram(_ executable: String, _ arguments: [String], environment: [String: String] = [:]) throws -> Result {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        env.removeValue(forKey: "SHARDVAULT_VAULT")
        env.removeValue(forKey: "SHARDVAULT_PRINCIPAL")
        for (k, v) in environment { env[k] = v }
        process.environment = env
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        let errData = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Result(status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
                      stderr: String(decoding: errData, as: UTF8.self))
    }

    /// Whether tests may mount file systems in a private mount namespace (`unshare -m`).
    static let unshareWorks: Bool = {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/unshare") else { return false }
        return (try? runProgram("/usr/bin/unshare", ["-m", "true"]).status) == 0
    }()

    enum CLIError: Error { case missingBinary }
}

final class TempDir {
    let path: String
    init() {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("svcli-\(UUID().uuidString)").path
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }
}

@Suite("shardvault command line", .enabled(if: CLI.binary != nil, "the shardvault binary is not built"))
struct CLITests {
    @Test("init, ingest, datasets, verify and verify --deep succeed end to end, with JSON output",
          .enabled(if: CLI.testdata != nil, "../shared/testdata is absent: skipped the end-to-end ingest of the Synthea sample"))
    func endToEnd() throws {
        let vault = TempDir()
        let initResult = try CLI.run(["init", "--vault", vault.path, "--json"])
        #expect(initResult.status == 0, "\(initResult.stderr)")
        let ingest = try CLI.run(["ingest", "--vault", vault.path, "--dataset", "synthea", "--format", "synthea-csv", "--json",
                                  CLI.testdata! + "/patients/synthea_csv_59"])
        #expect(ingest.status == 0, "\(ingest.stderr)")
        let report = try JSONSerialization.jsonObject(with: Data(ingest.stdout.utf8)) as? [String: Any]
        let records = report?["records"] as? [String: Int]
        #expect(records?["patients"] == 59 && records?["conditions"] == 1534 && records?["observations"] == 21697
                && records?["medications"] == 1772 && records?["encounters"] == 2590)
        let show = try CLI.run(["datasets", "show", "synthea", "--json"], environment: ["SHARDVAULT_VAULT": vault.path])
        #expect(show.status == 0)
        #expect(show.stdout.contains("\"generation\" : 1"))
        let list = try CLI.run(["datasets", "list", "--vault", vault.path])
        #expect(list.stdout.contains("synthea") && list.stdout.contains("59"))
        #expect(try CLI.run(["verify", "--vault", vault.path]).status == 0)
        #expect(try CLI.run(["verify", "--vault", vault.path, "--dataset", "synthea", "--deep"]).status == 0)
    }

    @Test("exit codes follow sysexits: 64 usage, 65 tampered, 66 missing input, 73 existing vault, 78 no vault")
    func exitCodes() throws {
        let vault = TempDir()
        #expect(try CLI.run(["verify", "--vault", vault.path]).status == 78)
        #expect(try CLI.run(["init", "--vault", vault.path]).status == 0)
        #expect(try CLI.run(["init", "--vault", vault.path]).status == 73)
        #expect(try CLI.run(["ingest", "--vault", vault.path, "--dataset", "d", "--format", "csv", "/nonexistent"]).status == 64)
        #expect(try CLI.run(["ingest", "--vault", vault.path, "--dataset", "Bad/Name", "--format", "synthea-csv", vault.path]).status == 64)
        let missing = try CLI.run(["ingest", "--vault", vault.path, "--dataset", "d", "--format", "synthea-csv", vault.path + "/nope"])
        #expect(missing.status == 66)
        #expect(missing.stderr.contains("nope"))
    }

    @Test("a tampered shard makes verify exit 65 and name the shard on stderr",
          .enabled(if: CLI.testdata != nil, "../shared/testdata is absent"))
    func tamperedShard() throws {
        let vault = TempDir()
        #expect(try CLI.run(["init", "--vault", vault.path]).status == 0)
        #expect(try CLI.run(["ingest", "--vault", vault.path, "--dataset", "s", "--format", "synthea-csv", "--shards", "3",
                             CLI.testdata! + "/patients/synthea_csv_59"]).status == 0)
        let shard = vault.path + "/data/s/g000001/shard-00001.svs"
        var bytes = try Data(contentsOf: URL(fileURLWithPath: shard))
        bytes[5000] ^= 0x04
        try bytes.write(to: URL(fileURLWithPath: shard))
        let result = try CLI.run(["verify", "--vault", vault.path])
        #expect(result.status == 65)
        #expect(result.stderr.contains("shard-00001.svs"))
        #expect(!result.stderr.contains("shard-00000.svs"))

        // A deleted manifest does not make the dataset disappear from verify.
        try FileManager.default.removeItem(atPath: vault.path + "/data/s/manifest.jsonl")
        let noManifest = try CLI.run(["verify", "--vault", vault.path])
        #expect(noManifest.status == 65)
        #expect(noManifest.stderr.contains("manifest is missing"))
        #expect(try CLI.run(["datasets", "show", "s", "--vault", vault.path]).status == 65)
    }

    @Test("selftest passes the built-in answers and the published files, and exits 65 when a vector fails",
          .enabled(if: CLI.testdata != nil, "../shared/testdata is absent: skipped selftest with vector files"))
    func selftest() throws {
        let builtIn = try CLI.run(["selftest"])
        #expect(builtIn.status == 0, "\(builtIn.stderr)")
        let files = ["wycheproof/aes_gcm_test.json", "wycheproof/hmac_sha256_test.json", "wycheproof/hkdf_sha256_test.json",
                     "wycheproof/aes_kwp_test.json", "wycheproof/c2sp_chunked_encryption_aes_256_gcm_test.json"].map { CLI.testdata! + "/" + $0 }
        let all = try CLI.run(["selftest", "--json", "--vectors"] + files)
        #expect(all.status == 0, "\(all.stderr)")
        let rows = try JSONSerialization.jsonObject(with: Data(all.stdout.utf8)) as? [[String: Any]] ?? []
        #expect(rows.count == 4 + files.count)
        #expect(rows.allSatisfy { ($0["failed"] as? Int) == 0 })
        #expect(rows.first { ($0["file"] as? String) == "c2sp_chunked_encryption_aes_256_gcm_test.json" }?["passed"] as? Int == 35)

        // One altered tag makes the run fail with 65 and name the vector.
        let dir = TempDir()
        var text = try String(contentsOfFile: CLI.testdata! + "/wycheproof/hmac_sha256_test.json", encoding: .utf8)
        let anchor = try #require(text.range(of: "\"tag\": \""))
        let first = text.index(anchor.upperBound, offsetBy: 0)
        text.replaceSubrange(first...first, with: text[first] == "0" ? "1" : "0")
        try text.write(toFile: dir.path + "/hmac.json", atomically: true, encoding: .utf8)
        let bad = try CLI.run(["selftest", "--vectors", dir.path + "/hmac.json"])
        #expect(bad.status == 65)
        #expect(bad.stderr.contains("FAILED tcId"))
    }

    @Test("commands on one vault are serialised: verify waits while another process holds the vault lock")
    func lockSerialises() throws {
        let vault = TempDir()
        #expect(try CLI.run(["init", "--vault", vault.path]).status == 0)
        var lock: VaultLock? = try VaultLock(layout: VaultLayout(root: vault.path), mode: .exclusive)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try #require(CLI.binary))
        process.arguments = ["verify", "--vault", vault.path]
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        Thread.sleep(forTimeInterval: 1.0)
        #expect(process.isRunning, "verify must wait for the lock")
        withExtendedLifetime(lock) {}
        lock = nil
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
    }

    @Test("two ingests started together both land without losing keys; concurrent deep verifies keep one unforked audit chain")
    func concurrentIngests() throws {
        let vault = TempDir()
        let input = TempDir()
        #expect(try CLI.run(["init", "--vault", vault.path]).status == 0)
        #expect(try CLI.run(["generate", "--patients", "20", "--seed", "5", input.path + "/csv"]).status == 0)
        var processes: [Process] = []
        for name in ["x", "y", "z"] {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: try #require(CLI.binary))
            p.arguments = ["ingest", "--vault", vault.path, "--dataset", name, "--format", "synthea-csv", "--shards", "2", input.path + "/csv"]
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle.nullDevice
            try p.run()
            processes.append(p)
        }
        for p in processes { p.waitUntilExit(); #expect(p.terminationStatus == 0) }
        let verify = try CLI.run(["verify", "--vault", vault.path, "--deep"])
        #expect(verify.status == 0, "\(verify.stderr)")
        #expect(verify.stdout.components(separatedBy: "OK ").count == 4)

        // Readers run side by side (shared vault lock) and all append to one audit log:
        // the chain must not fork, and every decryption of every run must be on it.
        var readers: [Process] = []
        for _ in 0..<4 {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: try #require(CLI.binary))
            p.arguments = ["verify", "--vault", vault.path, "--deep"]
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle.nullDevice
            try p.run()
            readers.append(p)
        }
        for p in readers { p.waitUntilExit(); #expect(p.terminationStatus == 0) }
        let audit = try CLI.run(["audit", "verify", "--vault", vault.path])
        #expect(audit.status == 0, "\(audit.stderr)")
        let log = try CLI.run(["audit", "log", "--vault", vault.path, "--json"])
        let entries = try log.stdout.split(separator: "\n").map {
            try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
        }
        #expect(entries.map { $0["seq"] as? Int } == Array(0..<entries.count).map { Optional($0) })
        // 3 datasets x 2 shards, by the first verify and by each of the 4 concurrent ones.
        #expect(entries.filter { $0["action"] as? String == "shard.decrypt" }.count == 6 * 5)
        #expect(Set(entries.compactMap { $0["request"] as? String }).count >= 1 + 3 + 1 + 4)
    }
}
