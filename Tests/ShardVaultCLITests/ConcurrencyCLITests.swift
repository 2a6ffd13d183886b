import Foundation
import Testing
import VaultCore

/// Commands run at the same time on one vault: serialised by the vault lock (writers
/// exclusive, readers shared) or safely concurrent, never corrupt, every outcome audited.
@Suite("concurrent commands on one vault", .serialized)
struct ConcurrencyCLITests {
    /// Runs the commands at once, each on its own thread, and returns their results in order.
    static func together(_ commands: [[String]]) -> [CLI.Result] {
        final class Box: @unchecked Sendable {
            // Each slot is written by one thread only, then read after all have finished.
            var results: [CLI.Result?]
            init(_ n: Int) { results = Array(repeating: nil, count: n) }
        }
        let box = Box(commands.count)
        DispatchQueue.concurrentPerform(iterations: commands.count) { i in
            box.results[i] = (try? CLI.run(commands[i])) ?? CLI.Result(status: -1, stdout: "", stderr: "could not start")
        }
        return box.results.map { $0! }
    }

    @Test("two ingests, two ingests of one name, an ingest with a rewrap, and analyses during a data rotation: all serialised, nothing corrupt, every request on the log",
          .enabled(if: CLI.testdata != nil, "needs ../shared/testdata"))
    func concurrentCommands() throws {
        let dir = TempDir()
        let vault = try KeyCLITests.vault(dir)
        let input = try #require(CLI.testdata) + "/patients/synthea_csv_59"
        let expected = try KeyCLITests.numbers(vault, dir)
        func ingest(_ name: String, replace: Bool = false) -> [String] {
            ["ingest", "--vault", vault, "--dataset", name, "--format", "synthea-csv", "--shards", "4", input] + (replace ? ["--replace"] : [])
        }

        // Two ingests of different datasets: both succeed.
        let two = Self.together([ingest("p"), ingest("q")])
        #expect(two.allSatisfy { $0.status == 0 }, "\(two.map(\.stderr))")

        // Two ingests of one new name without --replace: exactly one wins, the other is refused cleanly.
        let same = Self.together([ingest("r"), ingest("r")])
        #expect(same.map(\.status).sorted() == [0, 73], "\(same.map { "\($0.status) \($0.stderr)" })")

        // An ingest (replacing p) and a KEK rotation with rewrap of d, at once.
        #expect(try CLI.run(["keys", "rotate", "--vault", vault, "--dataset", "d", "--kek"]).status == 0)
        let mixed = Self.together([ingest("p", replace: true), ["keys", "rewrap", "--vault", vault, "--dataset", "d"]])
        #expect(mixed.allSatisfy { $0.status == 0 }, "\(mixed.map(\.stderr))")

        // Analyses while d is re-encrypted: each sees either the old or the new generation, whole.
        let spec = dir.path + "/spec.json"
        let during = Self.together([["keys", "rotate", "--vault", vault, "--dataset", "d", "--data"],
                                    ["analyze", "--vault", vault, "--spec", spec, "--as", "alice", "--isolation", "thread"],
                                    ["analyze", "--vault", vault, "--spec", spec, "--as", "alice"]])
        #expect(during.allSatisfy { $0.status == 0 }, "\(during.map(\.stderr))")
        #expect(try KeyCLITests.numbers(vault, dir) == expected)

        let verify = try CLI.run(["verify", "--vault", vault, "--deep"])
        #expect(verify.status == 0, "\(verify.stdout) \(verify.stderr)")
        #expect(try CLI.run(["audit", "verify", "--vault", vault]).status == 0)
        // Every request is on the log: d, p, q, r twice and p again; the refused r also with its error.
        let ingests = try CLI.run(["audit", "log", "--vault", vault, "--action", "ingest", "--json"]).stdout.split(separator: "\n")
        #expect(ingests.filter { $0.contains("\"outcome\":\"success\"") && $0.contains("\"reason\":\"allowed") }.count == 6, "\(ingests)")
        #expect(ingests.contains { $0.contains("\"outcome\":\"error\"") && $0.contains("\"dataset\":\"r\"") })
        let analyses = try CLI.run(["audit", "log", "--vault", vault, "--action", "analyze", "--json"]).stdout.split(separator: "\n")
        #expect(analyses.count >= 2 + 1)
    }
}
