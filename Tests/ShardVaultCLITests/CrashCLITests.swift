import Foundation
import Testing
import VaultCore

/// Crash consistency: commands killed with SIGKILL after a random fsync (the Nth durable
/// step, N drawn from a seeded generator whose seed is printed), then checked and run again.
/// SHARDVAULT_LONG=1 tries ten times as many kills; SHARDVAULT_SEED=S replays a run.
@Suite("crash consistency: kills at random durable steps", .serialized)
struct CrashCLITests {
    static let long = ProcessInfo.processInfo.environment["SHARDVAULT_LONG"] == "1"

    /// SplitMix64, so a printed seed replays the same kill points.
    struct Seeded {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
    }

    static func files(containing marker: String, under root: String) -> [String] {
        let enumerator = FileManager.default.enumerator(atPath: root)
        var out: [String] = []
        while let name = enumerator?.nextObject() as? String {
            if name.contains(marker) { out.append(name) }
        }
        return out
    }

    @Test("ingest, rewrap, data rotation, analyze and audit appends killed after random fsyncs: verify --deep and audit verify pass, nothing committed is lost, no temporary file lingers, and the rerun completes",
          .enabled(if: CLI.testdata != nil, "needs ../shared/testdata"))
    func randomKills() throws {
        let seed = ProcessInfo.processInfo.environment["SHARDVAULT_SEED"].flatMap(UInt64.init) ?? UInt64.random(in: 1...UInt64.max)
        print("crash consistency seed: \(seed) (replay with SHARDVAULT_SEED=\(seed))")
        var random = Seeded(state: seed)
        let dir = TempDir()
        let vault = try KeyCLITests.vault(dir) // dataset d, 6 shards; alice may analyze
        let input = try #require(CLI.testdata) + "/patients/synthea_csv_59"
        let expected = try KeyCLITests.numbers(vault, dir)

        // Each scenario: the command, and how to finish it after a kill.
        let scenarios: [(name: String, command: [String], finish: [String]?)] = [
            ("ingest", ["ingest", "--vault", vault, "--dataset", "x", "--format", "synthea-csv", "--shards", "3", "--replace", input], nil),
            ("rewrap", ["keys", "rewrap", "--vault", vault, "--dataset", "d"], nil),
            ("rotate --data", ["keys", "rotate", "--vault", vault, "--dataset", "d", "--data"], nil),
            ("rotate --signing", ["keys", "rotate", "--vault", vault, "--dataset", "d", "--signing"], nil),
            ("analyze", ["analyze", "--vault", vault, "--spec", dir.path + "/spec.json", "--as", "alice"], nil),
            ("audit checkpoint", ["audit", "checkpoint", "--vault", vault], nil),
        ]
        let rounds = Self.long ? 50 : 5
        var kills = 0, completedUnkilled = 0
        var failures: [String] = []
        for round in 0..<rounds {
            for scenario in scenarios {
                if scenario.name == "rewrap" {
                    #expect(try CLI.run(["keys", "rotate", "--vault", vault, "--dataset", "d", "--kek"]).status == 0)
                }
                let n = 1 + random.below(scenario.name == "ingest" || scenario.name == "rotate --data" ? 40 : 20)
                let label = "round \(round), \(scenario.name), killed after fsync \(n)"
                let run = try CLI.run(scenario.command, environment: ["SHARDVAULT_CRASH_AT": "sync:\(n)"])
                if run.status == 0 { completedUnkilled += 1; continue }
                kills += 1
                if run.status != 9 { failures.append("\(label): exited \(run.status), not killed: \(run.stderr)") }

                // Right after the kill: the log verifies, committed data is intact.
                let audit = try CLI.run(["audit", "verify", "--vault", vault])
                if audit.status != 0 { failures.append("\(label): audit verify \(audit.status): \(audit.stdout) \(audit.stderr)") }
                let pending = FileManager.default.fileExists(atPath: vault + "/data/d/.rotation/plan.json")
                let deep = try CLI.run(["verify", "--vault", vault, "--dataset", "d", "--deep"])
                if pending {
                    if deep.status != 65 || !deep.stderr.contains("keys rewrap") { failures.append("\(label): pending rotation not reported: \(deep.stderr)") }
                } else if deep.status != 0 {
                    failures.append("\(label): verify --deep of d \(deep.status): \(deep.stdout) \(deep.stderr)")
                }

                // The rerun (no crash) completes; then everything verifies and reads the same.
                let rerun = try CLI.run(scenario.command)
                if rerun.status != 0 { failures.append("\(label): rerun exited \(rerun.status): \(rerun.stderr)"); continue }
                let all = try CLI.run(["verify", "--vault", vault, "--deep"])
                if all.status != 0 { failures.append("\(label): after the rerun, verify --deep \(all.status): \(all.stdout) \(all.stderr)") }
                if try KeyCLITests.numbers(vault, dir) != expected { failures.append("\(label): the numbers changed") }
                // An exclusive command ran since the kill: no temporary file is left anywhere.
                let leftovers = Self.files(containing: ".tmp-", under: vault)
                if !leftovers.isEmpty { failures.append("\(label): temporary files left: \(leftovers)") }
            }
        }
        let final = try CLI.run(["audit", "verify", "--vault", vault])
        #expect(final.status == 0, "\(final.stdout) \(final.stderr)")
        print("crash consistency (\(Self.long ? "long" : "quick"), seed \(seed)): \(kills) kills, \(completedUnkilled) runs finished before their kill point, \(failures.count) failures")
        #expect(kills >= rounds * 3, "too few kills to mean anything: \(kills)")
        #expect(failures.isEmpty, "seed \(seed): \(failures.prefix(10))")
    }
}
