import Foundation
import Testing
import VaultCore

/// Analyses through the binary, checked against `scripts/reference-analysis.py`, an
/// independent computation over the input CSVs with Python's standard library.
@Suite("analyze and results through the shardvault command line", .serialized)
struct AnalyzeCLITests {
    static let python = ["/usr/bin/python3", "/usr/local/bin/python3"].first { FileManager.default.isExecutableFile(atPath: $0) }
        ?? ProcessInfo.processInfo.environment["PATH"]?.split(separator: ":").map { "\($0)/python3" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    static let script: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.appendingPathComponent("scripts/reference-analysis.py").path
    }()
    static var ready: Bool { CLI.testdata != nil && python != nil }

    static let specs: [(name: String, json: String)] = [
        ("no cohort", #"{"dataset": "DS", "purpose": "HRESCH", "asOf": "2020-01-01", "measures": [{"name": "patients", "count": "patients"}]}"#),
        ("one condition", #"{"dataset": "DS", "purpose": "HRESCH", "asOf": "2020-01-01", "cohort": {"conditions": {"anyOf": ["44054006", "15777000"]}}, "measures": [{"name": "patients", "count": "patients"}], "groupBy": ["sex"]}"#),
        ("age and sex", #"{"dataset": "DS", "purpose": "HRESCH", "asOf": "2019-06-30", "cohort": {"sex": ["female"], "age": {"min": 18, "max": 64}, "alive": true}, "measures": [{"name": "patients", "count": "patients"}, {"name": "sbp", "observation": "8480-6", "stats": ["count", "mean", "min", "max"]}]}"#),
        ("observation range", #"{"dataset": "DS", "purpose": "HRESCH", "asOf": "2020-01-01", "cohort": {"observations": [{"code": "39156-5", "min": 25, "max": 30}]}, "measures": [{"name": "patients", "count": "patients"}, {"name": "bmi", "observation": "39156-5", "stats": ["count", "mean", "stddev", "p10", "p50", "p90"]}], "groupBy": ["sex"]}"#),
        ("groups and quantiles", #"{"dataset": "DS", "purpose": "PUBHLTH", "asOf": "2020-01-01", "groupBy": ["sex", "ageBand10"], "measures": [{"name": "patients", "count": "patients"}, {"name": "bmi", "observation": "39156-5", "stats": ["count", "mean", "stddev", "min", "max", "p0", "p25", "p50", "p75", "p90", "p100"]}, {"name": "a1c", "observation": "4548-4", "stats": ["count", "mean", "p50"]}]}"#),
        ("medications by state", #"{"dataset": "DS", "purpose": "HRESCH", "asOf": "2020-01-01", "cohort": {"medications": {"anyOf": ["314076", "308136"]}}, "groupBy": ["state", "sex"], "measures": [{"name": "patients", "count": "patients"}, {"name": "dbp", "observation": "8462-4", "stats": ["count", "mean", "p50"]}]}"#),
        ("dead patients by race", #"{"dataset": "DS", "purpose": "HRESCH", "asOf": "2020-01-01", "cohort": {"alive": false}, "groupBy": ["race", "ethnicity"], "measures": [{"name": "patients", "count": "patients"}]}"#),
    ]

    /// A vault where alice may analyze and reveal with minCell 1, and the sample ingested
    /// into 1, 2 and 7 shards.
    static func vault(_ dir: TempDir) throws -> String {
        let vault = dir.path + "/v"
        #expect(try CLI.run(["init", "--vault", vault]).status == 0)
        try """
        principals:
          alice: {roles: [researcher]}
          bob: {roles: [analyst]}
        roles:
          researcher:
            allow:
              - actions: [analyze, reveal, results.read]
                datasets: ["*"]
                purposes: [HRESCH, PUBHLTH]
            disclosure: {minCell: 1}
          analyst:
            allow:
              - actions: [analyze]
                datasets: ["*"]
                purposes: [HRESCH]
            disclosure: {minCell: 11}

        """.write(toFile: vault + "/policies/research.yaml", atomically: true, encoding: .utf8)
        let input = try #require(CLI.testdata) + "/patients/synthea_csv_59"
        for shards in [1, 2, 7] {
            let r = try CLI.run(["ingest", "--vault", vault, "--dataset", "s\(shards)", "--format", "synthea-csv", "--shards", String(shards), input])
            #expect(r.status == 0, "\(r.stderr)")
        }
        return vault
    }

    static let bundles = "/patients/synthea_fhir_r4_bundles_50.tgz"

    /// The FHIR Bundles of the same Synthea run as the CSV sample, ingested into 1, 2 and 7
    /// shards as f1, f2 and f7.
    static func addBundles(to vault: String) throws {
        let input = try #require(CLI.testdata) + bundles
        for shards in [1, 2, 7] {
            let r = try CLI.run(["ingest", "--vault", vault, "--dataset", "f\(shards)", "--format", "fhir-bundle", "--shards", String(shards), input])
            #expect(r.status == 0, "\(r.stderr)")
        }
    }

    /// Runs the reference over `input` (under ../shared/testdata), counting only the patients
    /// listed in `only` when given.
    func reference(_ spec: String, minCell: Int, dir: TempDir, input: String = "/patients/synthea_csv_59", only: String? = nil) throws -> [String: Any] {
        let path = dir.path + "/ref-\(UUID().uuidString).json"
        try spec.write(toFile: path, atomically: true, encoding: .utf8)
        let r = try CLI.runProgram(try #require(Self.python), [Self.script, try #require(CLI.testdata) + input, path, String(minCell)] + (only.map { [$0] } ?? []))
        #expect(r.status == 0, "\(r.stderr)")
        return try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
    }

    func analyze(_ vault: String, _ spec: String, as principal: String, dir: TempDir, isolation: String = "process") throws -> (CLI.Result, [String: Any]?) {
        let path = dir.path + "/spec-\(UUID().uuidString).json"
        try spec.write(toFile: path, atomically: true, encoding: .utf8)
        let run = try CLI.run(["analyze", "--vault", vault, "--spec", path, "--as", principal, "--json", "--isolation", isolation])
        guard run.status == 0, let out = try? JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any],
              let id = out["result"] as? String else { return (run, nil) }
        let reveal = try CLI.run(["results", "reveal", id, "--vault", vault, "--as", principal])
        #expect(reveal.status == 0, "\(reveal.stderr)")
        return (run, try JSONSerialization.jsonObject(with: Data(reveal.stdout.utf8)) as? [String: Any])
    }

    /// Groups by their key, as canonical JSON.
    static func byKey(_ result: [String: Any]) -> [String: [String: Any]] {
        var out: [String: [String: Any]] = [:]
        for g in (result["groups"] as? [[String: Any]]) ?? [] {
            let key = (g["key"] as? [String: String] ?? [:]).sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ";")
            out[key] = g
        }
        return out
    }

    static func same(_ a: Any?, _ b: Any?) -> Bool {
        switch (a, b) {
        case (nil, nil), (is NSNull, is NSNull), (nil, is NSNull), (is NSNull, nil): return true
        case let (x as [String: Any], y as [String: Any]):
            return Set(x.keys) == Set(y.keys) && x.keys.allSatisfy { same(x[$0], y[$0]) }
        case let (x as NSNumber, y as NSNumber):
            let u = x.doubleValue, v = y.doubleValue
            // 1e-9 relative; values that should be 0 (the spread of equal values) to 1e-12.
            return u == v || abs(u - v) <= max(1e-9 * max(abs(u), abs(v)), 1e-12)
        case let (x as Bool, y as Bool): return x == y
        default: return false
        }
    }

    @Test("revealed numbers equal the independent computation over the CSVs, for every spec, with 1, 2 and 7 shards, in processes and in threads",
          .enabled(if: ready, "needs ../shared/testdata and python3"))
    func matchesReference() throws {
        let dir = TempDir()
        let vault = try Self.vault(dir)
        for spec in Self.specs {
            let expected = Self.byKey(try reference(spec.json.replacingOccurrences(of: "DS", with: "s1"), minCell: 1, dir: dir))
            #expect(!expected.isEmpty, "\(spec.name): the reference found no group")
            for (shards, isolation) in [(1, "process"), (2, "process"), (7, "process"), (1, "thread"), (7, "thread")] {
                let (run, revealed) = try analyze(vault, spec.json.replacingOccurrences(of: "DS", with: "s\(shards)"), as: "alice", dir: dir,
                                                  isolation: isolation)
                #expect(run.status == 0, "\(spec.name), \(shards) shards, \(isolation): \(run.stderr)")
                let got = Self.byKey(try #require(revealed))
                #expect(Set(got.keys) == Set(expected.keys), "\(spec.name), \(shards) shards: groups \(got.keys.sorted()) vs \(expected.keys.sorted())")
                for (key, group) in expected {
                    #expect(Self.same(got[key]?["measures"], group["measures"]), "\(spec.name), \(shards) shards, group \(key): \(String(describing: got[key])) vs \(group)")
                    #expect((got[key]?["suppressed"] as? Bool) == false)
                }
            }
        }
    }

    @Test("""
          the FHIR Bundles of the same Synthea run give the same groups and patient counts as its CSV, and statistics equal to \
          the reference over the Bundles, with 1, 2 and 7 shards, in processes and in threads
          """, .enabled(if: ready, "needs ../shared/testdata and python3"))
    func fhirSamePopulation() throws {
        let dir = TempDir()
        let vault = try Self.vault(dir)
        try Self.addBundles(to: vault)
        // The archive holds one Bundle per patient, named by the patient's id: those are the
        // CSV patients to compare with (the CSV sample has 9 more).
        let listing = try CLI.runProgram("/usr/bin/tar", ["-tzf", try #require(CLI.testdata) + Self.bundles])
        let ids = listing.stdout.split(separator: "\n").compactMap { line -> String? in
            let name = line.split(separator: "/").last.map(String.init) ?? ""
            guard name.hasSuffix(".json"), let id = UUID(uuidString: String(name.dropLast(5))) else { return nil }
            return id.uuidString.lowercased()
        }
        #expect(ids.count == 50, "\(listing.stdout)")
        let only = dir.path + "/patients.txt"
        try (ids.joined(separator: "\n") + "\n").write(toFile: only, atomically: true, encoding: .utf8)

        for spec in Self.specs {
            let json = spec.json.replacingOccurrences(of: "DS", with: "f1")
            let overBundles = Self.byKey(try reference(json, minCell: 1, dir: dir, input: Self.bundles))
            let overCSV = Self.byKey(try reference(json, minCell: 1, dir: dir, only: only))
            #expect(!overBundles.isEmpty, "\(spec.name): the reference found no group")
            // Synthea's CSV export writes observation values rounded to one decimal, its FHIR
            // export to two: counts are equal, statistics move by at most the rounding.
            #expect(Set(overBundles.keys) == Set(overCSV.keys), "\(spec.name): \(overBundles.keys.sorted()) vs \(overCSV.keys.sorted())")
            for (key, group) in overBundles {
                #expect(Self.sameWithinRounding(group["measures"], overCSV[key]?["measures"]), "\(spec.name), \(key): \(group) vs \(String(describing: overCSV[key]))")
            }
            for (shards, isolation) in [(1, "process"), (2, "process"), (7, "process"), (1, "thread"), (7, "thread")] {
                let (run, revealed) = try analyze(vault, spec.json.replacingOccurrences(of: "DS", with: "f\(shards)"), as: "alice", dir: dir,
                                                  isolation: isolation)
                #expect(run.status == 0, "\(spec.name), \(shards) shards, \(isolation): \(run.stderr)")
                let got = Self.byKey(try #require(revealed))
                #expect(Set(got.keys) == Set(overBundles.keys), "\(spec.name), \(shards) shards: \(got.keys.sorted()) vs \(overBundles.keys.sorted())")
                for (key, group) in overBundles {
                    #expect(Self.same(got[key]?["measures"], group["measures"]), "\(spec.name), \(shards) shards, \(isolation), \(key): \(String(describing: got[key])) vs \(group)")
                }
            }
        }
    }

    /// Counts equal; a location statistic (mean, min, max, pNN) of values each rounded to one
    /// decimal within 0.05 of the unrounded one, a standard deviation within 0.05·√(n/(n-1)) ≤ 0.0708.
    static func sameWithinRounding(_ a: Any?, _ b: Any?, name: String = "") -> Bool {
        switch (a, b) {
        case (nil, nil), (is NSNull, is NSNull), (nil, is NSNull), (is NSNull, nil): return true
        case let (x as [String: Any], y as [String: Any]):
            return Set(x.keys) == Set(y.keys) && x.keys.allSatisfy { sameWithinRounding(x[$0], y[$0], name: $0) }
        case let (x as NSNumber, y as NSNumber):
            if name == "count" || name == "patients" || !(name == "stddev" || name == "mean" || name == "min" || name == "max" || name.hasPrefix("p")) {
                return x.doubleValue == y.doubleValue
            }
            return abs(x.doubleValue - y.doubleValue) <= (name == "stddev" ? 0.0708 : 0.05 + 1e-9)
        default: return false
        }
    }

    @Test("progress is drawn on a terminal (a pseudo-terminal from script(1)), never in a pipe or with --no-progress",
          .enabled(if: CLI.testdata != nil && FileManager.default.isExecutableFile(atPath: "/usr/bin/script"), "needs ../shared/testdata and script(1)"))
    func progress() throws {
        let dir = TempDir()
        let vault = try Self.vault(dir)
        let path = dir.path + "/spec.json"
        try Self.specs[0].json.replacingOccurrences(of: "DS", with: "s7").write(toFile: path, atomically: true, encoding: .utf8)
        let binary = try #require(CLI.binary)
        func quoted(_ words: [String]) -> String { words.map { "'" + $0.replacingOccurrences(of: "'", with: "'\\''") + "'" }.joined(separator: " ") }
        let command = [binary, "analyze", "--vault", vault, "--spec", path, "--as", "alice", "--workers", "2"]
        let onTerminal = try CLI.runProgram("/usr/bin/script", ["-qec", quoted(command), "/dev/null"], environment: ["TERM": "xterm"])
        #expect(onTerminal.status == 0, "\(onTerminal.stdout)")
        #expect(onTerminal.stdout.contains("analyze s7: 7/7 shards  100%"), "\(onTerminal.stdout)")
        #expect(onTerminal.stdout.contains("\r\u{1B}[2KResult "), "the progress line is cleared before the result: \(onTerminal.stdout)")
        let quiet = try CLI.runProgram("/usr/bin/script", ["-qec", quoted(command + ["--no-progress"]), "/dev/null"], environment: ["TERM": "xterm"])
        #expect(quiet.status == 0 && quiet.stdout.contains("Result ") && !quiet.stdout.contains("shards  "), "\(quiet.stdout)")
        let piped = try CLI.run(Array(command.dropFirst()))
        #expect(piped.status == 0 && !piped.stderr.contains("\u{1B}") && piped.stderr.isEmpty, "\(piped.stderr)")
    }

    /// What the coordinator gives a worker (WorkerProcess.environment).
    let workerEnvironment = ["PATH": "/usr/bin:/bin", "GLIBC_TUNABLES": "glibc.malloc.hugetlb=1"]

    @Test("the worker is a fork server: each task runs in a child that answers for it, and the server itself never holds a task's keys (its memory read through /proc after the task)")
    func workerForkServer() throws {
        let binary = try #require(CLI.binary)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = ["worker"]
        process.environment = workerEnvironment
        let input = Pipe(), output = Pipe()
        process.standardInput = input
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        defer { if process.isRunning { process.terminate() } }
        let toWorker = input.fileHandleForWriting, fromWorker = output.fileHandleForReading
        func le32(_ v: Int) -> [UInt8] { (0..<4).map { UInt8((v >> (8 * $0)) & 0xff) } }
        func read(_ n: Int) throws -> [UInt8] {
            var out: [UInt8] = []
            while out.count < n {
                guard let more = try fromWorker.read(upToCount: n - out.count), !more.isEmpty else { break }
                out += more
            }
            return out
        }
        // Tasks whose frames hold recognisable keys but no task the server can use (an old
        // magic, a header that is not a task, one that names no shard): each child reads the
        // keys, fails and says why; the server reports each child's exit and reads the next
        // task where it starts.
        let keys = (0..<64).map { UInt8(0xA0 ^ $0) }
        let spec = #"{"dataset": "d", "purpose": "HRESCH", "measures": [{"name": "n", "count": "patients"}]}"#
        let entry = #"{"index": 0, "file": "shard-00000.svs", "size": 1, "headerSha256": "", "bodySha256": "", "dataKeyId": "k", "#
            + #""kekVersion": 1, "signingVersion": 1, "records": \#(String(decoding: try JSONEncoder().encode(RecordCounts()), as: UTF8.self))}"#
        let task = #"{"job": "00", "spec": \#(String(decoding: try JSONEncoder().encode(spec), as: UTF8.self)), "path": "/nonexistent/shard-00000.svs", "#
            + #""vaultId": "00", "dataset": "d", "generation": 1, "shardCount": 1, "entry": \#(entry), "schemaId": "shardvault.clinical.v2"}"#
        let headers = ["SVTASK2\n{\"round\": 0}\n", "SVTASK4\n{\"round\": 1}\n", "SVTASK4\n\(task)\n"]
        for (round, header) in headers.enumerated() {
            let frame = Array(header.utf8)
            try toWorker.write(contentsOf: Data([UInt8(ascii: "T")] + le32(frame.count) + frame + keys))
            let kind = try read(1)
            #expect(kind == [UInt8(ascii: "E")], "round \(round): \(kind)")
            let status = try read(1)
            let length = try read(4)
            let count = length.enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
            let message = String(decoding: try read(count), as: UTF8.self)
            let want: UInt8 = round == 2 ? 65 : 64
            #expect(status == [want] && !message.isEmpty, "round \(round): \(status) \(message)")
            #expect(round != 2 || message.contains("/nonexistent/shard-00000.svs"), "\(message)")
            let done = try read(5)
            #expect(done.first == UInt8(ascii: "D") && done.count == 5 && done[2] == want, "the child's wait status: \(done)")
        }
        // One thread only, so that fork() leaves no lock held in a child.
        let tasks = try FileManager.default.contentsOfDirectory(atPath: "/proc/\(process.processIdentifier)/task")
        #expect(tasks.count == 1, "threads: \(tasks)")
        // The server's own memory (readable to root through /proc despite not being
        // dumpable) holds no copy of the keys: only its children read frames.
        if let maps = try? String(contentsOfFile: "/proc/\(process.processIdentifier)/maps", encoding: .utf8),
           let mem = FileHandle(forReadingAtPath: "/proc/\(process.processIdentifier)/mem") {
            var scanned = 0
            for line in maps.split(separator: "\n") {
                let fields = line.split(separator: " ")
                guard fields.count >= 2, fields[1].hasPrefix("rw") else { continue }
                let range = fields[0].split(separator: "-").compactMap { UInt64($0, radix: 16) }
                guard range.count == 2, range[1] - range[0] < 1 << 30 else { continue }
                guard (try? mem.seek(toOffset: range[0])) != nil, let bytes = try? mem.read(upToCount: Int(range[1] - range[0])) else { continue }
                scanned += bytes.count
                #expect(bytes.firstRange(of: Data(keys.prefix(32))) == nil, "key bytes found in the server at \(fields[0])")
            }
            #expect(scanned > 0)
        }
        try toWorker.write(contentsOf: Data([UInt8(ascii: "Q")]))
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
    }

    @Test("a worker is hardened before it reads anything, as seen from outside through /proc: no new privileges, core size 0, only 'worker' on its command line and PATH and the malloc tunable in its environment")
    func workerHardenedFromOutside() throws {
        let binary = try #require(CLI.binary)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = ["worker"]
        process.environment = workerEnvironment
        let input = Pipe(), output = Pipe(), errors = Pipe()
        process.standardInput = input
        process.standardOutput = output
        process.standardError = errors
        try process.run()
        defer { if process.isRunning { process.terminate() } }
        let proc = "/proc/\(process.processIdentifier)"
        // The worker hardens first, then blocks reading its frame: wait for the first.
        var status = ""
        for _ in 0..<200 {
            status = (try? String(contentsOfFile: proc + "/status", encoding: .utf8)) ?? ""
            if status.contains("NoNewPrivs:\t1") { break }
            usleep(10_000)
        }
        #expect(status.contains("NoNewPrivs:\t1"), "\(status)")
        let limits = try String(contentsOfFile: proc + "/limits", encoding: .utf8)
        let core = limits.split(separator: "\n").first { $0.hasPrefix("Max core file size") }.map(String.init) ?? ""
        #expect(core.split(separator: " ", omittingEmptySubsequences: true).dropFirst(4).prefix(2) == ["0", "0"], "\(core)")
        let cmdline = try Data(contentsOf: URL(fileURLWithPath: proc + "/cmdline")).split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
        #expect(cmdline.dropFirst() == ["worker"])
        // Not dumpable: /proc/PID/environ of a non-dumpable process is unreadable to anyone
        // without CAP_SYS_PTRACE; with it (as root), it shows only what it was given.
        if let environ = try? Data(contentsOf: URL(fileURLWithPath: proc + "/environ")) {
            #expect(environ.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }.sorted() == workerEnvironment.map { "\($0)=\($1)" }.sorted())
        }
        // A frame that is not one: refused, nothing on stdout.
        try input.fileHandleForWriting.write(contentsOf: Data("not a frame".utf8))
        try input.fileHandleForWriting.close()
        process.waitUntilExit()
        #expect(process.terminationStatus == 64)
        #expect(output.fileHandleForReading.readDataToEndOfFile().isEmpty)
    }

    @Test("a worker is not dumpable, as seen from outside: run as another user, its /proc files belong to root, where a dumpable process's belong to that user",
          .enabled(if: getuid() == 0 && FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv"), "needs root and setpriv(1)"))
    func workerNotDumpableFromOutside() throws {
        let binary = try #require(CLI.binary)
        func ownerOfStatus(_ arguments: [String], ready: String = "Uid:\t65534") throws -> (uid: UInt32?, status: String) {
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
            process.arguments = ["--reuid=65534", "--regid=65534", "--clear-groups"] + arguments
            let input = Pipe(), output = Pipe()
            process.standardInput = input
            process.standardOutput = output
            process.standardError = output
            try process.run()
            defer { try? input.fileHandleForWriting.close(); if process.isRunning { process.terminate() }; process.waitUntilExit() }
            let proc = "/proc/\(process.processIdentifier)"
            var status = ""
            for _ in 0..<200 {
                status = (try? String(contentsOfFile: proc + "/status", encoding: .utf8)) ?? ""
                // setpriv execs the program in the same process: wait until it has.
                if status.contains("Uid:\t65534") && status.contains(ready)
                    && (try? FileManager.default.destinationOfSymbolicLink(atPath: proc + "/exe")) != "/usr/bin/setpriv" { break }
                usleep(10_000)
            }
            usleep(50_000)
            let owner = (try? FileManager.default.attributesOfItem(atPath: proc + "/status"))?[.ownerAccountID] as? NSNumber
            return (owner?.uint32Value, status)
        }
        // Control: an ordinary process of that user owns its /proc files.
        let control = try ownerOfStatus(["/bin/cat"])
        #expect(control.uid == 65534, "\(control.status)")
        // The worker hardens itself first thing (then blocks reading its frame).
        let worker = try ownerOfStatus([binary, "worker"], ready: "NoNewPrivs:\t1")
        #expect(worker.uid == 0, "a dumpable worker: \(worker.status)")
        #expect(worker.status.contains("NoNewPrivs:\t1"))
    }

    @Test("with minCell 11 every group under 11 patients is suppressed, and a spec cannot lower the policy's floor",
          .enabled(if: ready, "needs ../shared/testdata and python3"))
    func suppression() throws {
        let dir = TempDir()
        let vault = try Self.vault(dir)
        let spec = #"{"dataset": "s2", "purpose": "HRESCH", "asOf": "2020-01-01", "groupBy": ["race"], "measures": [{"name": "patients", "count": "patients"}, {"name": "bmi", "observation": "39156-5", "stats": ["mean"]}]}"#
        let withCell = String(spec.dropLast()) + #", "disclosure": {"minCell": 11}}"#
        let (run, revealed) = try analyze(vault, withCell, as: "alice", dir: dir)
        #expect(run.status == 0, "\(run.stderr)")
        let got = Self.byKey(try #require(revealed))
        let counts = Self.byKey(try reference(withCell, minCell: 1, dir: dir)).mapValues { ($0["measures"] as? [String: Any])?["patients"] as? Int ?? 0 }
        #expect(Set(got.keys) == Set(counts.keys))
        var suppressed = 0
        for (key, patients) in counts {
            let group = try #require(got[key])
            #expect((group["suppressed"] as? Bool) == (patients < 11), "\(key): \(patients) patients")
            if patients < 11 { suppressed += 1; #expect(group["measures"] == nil, "a suppressed group shows its measures") }
        }
        #expect(suppressed > 0 && suppressed < counts.count)
        // bob's role has a floor of 11: a spec asking for 5 is refused.
        let lower = String(spec.dropLast()) + #", "disclosure": {"minCell": 5}}"#
        #expect(try analyze(vault, lower, as: "bob", dir: dir).0.status == 77)
    }

    @Test("a principal without the role, a wrong purpose or an unknown dataset get 77, audited, and nothing is decrypted; a tampered shard fails with 65 and writes no result",
          .enabled(if: CLI.testdata != nil, "needs ../shared/testdata"))
    func refusals() throws {
        let dir = TempDir()
        let vault = try Self.vault(dir)
        func decrypts() throws -> Int {
            try CLI.run(["audit", "log", "--vault", vault, "--action", "shard.decrypt", "--json"]).stdout.split(separator: "\n").count
        }
        let before = try decrypts()
        let base = Self.specs[0].json
        #expect(try analyze(vault, base.replacingOccurrences(of: "DS", with: "s2"), as: "mallory", dir: dir).0.status == 77)
        #expect(try analyze(vault, base.replacingOccurrences(of: "DS", with: "s2").replacingOccurrences(of: "HRESCH", with: "TREAT"), as: "alice", dir: dir).0.status == 77)
        #expect(try analyze(vault, base.replacingOccurrences(of: "DS", with: "nosuch"), as: "alice", dir: dir).0.status == 77)
        #expect(try decrypts() == before)
        let denied = try CLI.run(["audit", "log", "--vault", vault, "--action", "analyze", "--outcome", "denied", "--json"])
        #expect(denied.stdout.split(separator: "\n").count == 3, "\(denied.stdout)")

        // Flip one byte in the middle of a shard of s2: the job fails and no result appears.
        let generation = try #require(try FileManager.default.contentsOfDirectory(atPath: vault + "/data/s2").first { $0.hasPrefix("g") })
        let shard = vault + "/data/s2/" + generation + "/shard-00001.svs"
        var bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: shard)))
        bytes[bytes.count / 2] ^= 0x01
        try Data(bytes).write(to: URL(fileURLWithPath: shard))
        for isolation in ["process", "thread"] {
            let (run, revealed) = try analyze(vault, base.replacingOccurrences(of: "DS", with: "s2"), as: "alice", dir: dir, isolation: isolation)
            #expect(run.status == 65 && run.stderr.contains("shard-00001.svs"), "\(isolation): \(run.stderr)")
            #expect(revealed == nil)
        }
        let written = (try? FileManager.default.contentsOfDirectory(atPath: vault + "/data/s2/results")) ?? []
        #expect(written.isEmpty, "\(written)")
        // The untouched dataset still analyses; the failure is on the log with outcome error.
        #expect(try analyze(vault, base.replacingOccurrences(of: "DS", with: "s7"), as: "alice", dir: dir).0.status == 0)
        let errors = try CLI.run(["audit", "log", "--vault", vault, "--action", "analyze", "--outcome", "error", "--json"])
        #expect(errors.stdout.split(separator: "\n").count == 2, "\(errors.stdout)")
        // A worker started by hand without a task frame refuses.
        let worker = try CLI.run(["worker"])
        #expect(worker.status == 64 && worker.stderr.contains("task frame"), "\(worker.stderr)")
        #expect(try CLI.run(["audit", "verify", "--vault", vault]).status == 0)
    }

    @Test("'shardvault demo' runs every step and keeps its vault when asked, with an intact audit log")
    func demo() throws {
        let dir = TempDir()
        let kept = dir.path + "/demo"
        let run = try CLI.run(["demo", "--patients", "300", "--dir", kept])
        #expect(run.status == 0, "\(run.stderr)")
        for step in ["$ shardvault init", "$ shardvault ingest", "$ shardvault analyze", "$ shardvault results reveal", "$ shardvault audit verify", "Demo complete"] {
            #expect(run.stdout.contains(step), "missing step \(step)")
        }
        #expect(run.stdout.contains("\"suppressed\""))
        #expect(try CLI.run(["audit", "verify", "--vault", kept + "/vault"]).status == 0)
        let reveals = try CLI.run(["audit", "log", "--vault", kept + "/vault", "--action", "result", "--json"])
        #expect(reveals.stdout.split(separator: "\n").count == 2, "\(reveals.stdout)") // result.write, result.decrypt
        #expect(try CLI.run(["demo", "--dir", kept]).status == 73, "an existing folder is never reused")
    }

    @Test("a principal without 'reveal' is refused and nothing is decrypted; altered result metadata or a swapped sealed result fails with 65",
          .enabled(if: CLI.testdata != nil, "needs ../shared/testdata"))
    func revealRefusals() throws {
        let dir = TempDir()
        let vault = try Self.vault(dir)
        let spec = Self.specs[0].json.replacingOccurrences(of: "DS", with: "s2")
        let path = dir.path + "/spec.json"
        try spec.write(toFile: path, atomically: true, encoding: .utf8)
        var ids: [String] = []
        for _ in 0..<2 {
            let run = try CLI.run(["analyze", "--vault", vault, "--spec", path, "--as", "alice", "--json", "--isolation", "thread"])
            let out = try #require(try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any])
            ids.append(try #require(out["result"] as? String))
        }
        func decrypts() throws -> Int {
            try CLI.run(["audit", "log", "--vault", vault, "--action", "result.decrypt", "--json"]).stdout.split(separator: "\n").count
        }
        // bob may analyze but not reveal.
        let denied = try CLI.run(["results", "reveal", ids[0], "--vault", vault, "--as", "bob"])
        #expect(denied.status == 77 && denied.stdout.isEmpty, "\(denied.stderr)")
        #expect(try decrypts() == 0)
        #expect(try CLI.run(["results", "reveal", ids[0], "--vault", vault, "--as", "alice"]).status == 0)
        #expect(try decrypts() == 1)

        let results = vault + "/data/s2/results/"
        // Altered metadata (a lower minCell written into it): the signature fails.
        let metadata = results + ids[0] + ".json"
        let original = try String(contentsOfFile: metadata, encoding: .utf8)
        try original.replacingOccurrences(of: "\"minCell\":1", with: "\"minCell\":2").write(toFile: metadata, atomically: true, encoding: .utf8)
        let altered = try CLI.run(["results", "reveal", ids[0], "--vault", vault, "--as", "alice"])
        #expect(altered.status == 65 && altered.stderr.contains(ids[0] + ".json"), "\(altered.stderr)")
        try original.write(toFile: metadata, atomically: true, encoding: .utf8)
        // One result's sealed file put in the place of the other's.
        try FileManager.default.removeItem(atPath: results + ids[0] + ".svr")
        try FileManager.default.copyItem(atPath: results + ids[1] + ".svr", toPath: results + ids[0] + ".svr")
        let swapped = try CLI.run(["results", "reveal", ids[0], "--vault", vault, "--as", "alice"])
        #expect(swapped.status == 65 && swapped.stdout.isEmpty, "\(swapped.stderr)")
        #expect(try CLI.run(["results", "reveal", ids[1], "--vault", vault, "--as", "alice"]).status == 0)
    }
}
