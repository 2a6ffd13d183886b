import Foundation
import Testing
import VaultCore

/// Key rotation commands through the binary, killed (SIGKILL) at many points and run again.
@Suite("keys commands through the shardvault command line", .serialized)
struct KeyCLITests {
    static let spec = #"{"dataset": "d", "purpose": "HRESCH", "asOf": "2020-01-01", "groupBy": ["sex", "ageBand10"], "measures": [{"name": "patients", "count": "patients"}, {"name": "bmi", "observation": "39156-5", "stats": ["count", "mean", "p50"]}]}"#

    /// A vault where alice may analyze and reveal, with the CSV sample in 6 shards.
    static func vault(_ dir: TempDir) throws -> String {
        let vault = dir.path + "/v"
        #expect(try CLI.run(["init", "--vault", vault]).status == 0)
        try """
        principals:
          alice: {roles: [researcher]}
        roles:
          researcher:
            allow:
              - actions: [analyze, reveal]
                datasets: ["*"]
                purposes: [HRESCH]
            disclosure: {minCell: 1}

        """.write(toFile: vault + "/policies/research.yaml", atomically: true, encoding: .utf8)
        try spec.write(toFile: dir.path + "/spec.json", atomically: true, encoding: .utf8)
        let input = try #require(CLI.testdata) + "/patients/synthea_csv_59"
        let r = try CLI.run(["ingest", "--vault", vault, "--dataset", "d", "--format", "synthea-csv", "--shards", "6", input])
        #expect(r.status == 0, "\(r.stderr)")
        return vault
    }

    /// Analyses the dataset and reveals the result, without its id.
    static func numbers(_ vault: String, _ dir: TempDir) throws -> String {
        let run = try CLI.run(["analyze", "--vault", vault, "--spec", dir.path + "/spec.json", "--as", "alice", "--json", "--isolation", "thread"])
        guard run.status == 0, let out = try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any],
              let id = out["result"] as? String else { return "analyze failed: \(run.status) \(run.stderr)" }
        let reveal = try CLI.run(["results", "reveal", id, "--vault", vault, "--as", "alice"])
        return reveal.stdout.replacingOccurrences(of: id, with: "")
    }

    static func keyVersions(_ vault: String) throws -> [String: Int] {
        let usage = try CLI.run(["keys", "usage", "--vault", vault, "--dataset", "d", "--json"])
        let object = try JSONSerialization.jsonObject(with: Data(usage.stdout.utf8)) as? [String: Any]
        var out: [String: Int] = [:]
        for ref in (object?["references"] as? [[String: Any]]) ?? [] {
            let kind = ref["kind"] as? String ?? "", version = ref["version"] as? Int ?? 0
            out["\(kind) v\(version)", default: 0] += 1
        }
        return out
    }

    @Test("keys list and usage show every version with its state and references; the policy governs each keys command",
          .enabled(if: CLI.testdata != nil, "needs ../shared/testdata"))
    func listAndPolicy() throws {
        let dir = TempDir()
        let vault = try Self.vault(dir)
        #expect(try CLI.run(["keys", "rotate", "--vault", vault, "--dataset", "d", "--kek"]).status == 0)
        let list = try CLI.run(["keys", "list", "--vault", vault, "--json"])
        #expect(list.status == 0, "\(list.stderr)")
        let rows = try #require(try JSONSerialization.jsonObject(with: Data(list.stdout.utf8)) as? [[String: Any]])
        func row(_ id: String, _ version: Int) -> [String: Any]? { rows.first { $0["id"] as? String == id && $0["version"] as? Int == version } }
        #expect(row("root", 1)?["kind"] as? String == "root")
        #expect(row("audit", 1)?["kind"] as? String == "checkpoint")
        #expect(row("d/kek", 1)?["state"] as? String == "decrypt-only" && row("d/kek", 1)?["references"] as? Int == 6)
        #expect(row("d/kek", 2)?["state"] as? String == "active" && row("d/kek", 2)?["references"] as? Int == 0)
        #expect(row("d/signing", 1)?["references"] as? Int == 7) // 6 shards and the manifest
        #expect(try Self.keyVersions(vault)["kek v1"] == 6)

        // alice (a researcher) may not rotate, rewrap, retire or read keys: 77, audited, nothing changes.
        for command in [["rotate", "--kek"], ["rewrap"], ["retire", "--below", "2"], ["usage"]] {
            let r = try CLI.run(["keys"] + command + ["--vault", vault, "--dataset", "d", "--as", "alice"])
            #expect(r.status == 77, "\(command): \(r.stderr)")
        }
        let denied = try CLI.run(["audit", "log", "--vault", vault, "--principal", "alice", "--outcome", "denied", "--json"])
        #expect(denied.stdout.split(separator: "\n").count == 4)
        #expect(try Self.keyVersions(vault)["kek v1"] == 6)

        // A version approaching the usage bound is flagged by keys list and verify.
        let keyring = vault + "/keys/keyring.json"
        let text = try String(contentsOfFile: keyring, encoding: .utf8)
        let bumped = text.replacingOccurrences(of: #""uses" : 6"#, with: #""uses" : 3000000000"#)
        #expect(bumped != text)
        try bumped.write(toFile: keyring, atomically: true, encoding: .utf8)
        let flagged = try CLI.run(["keys", "list", "--vault", vault])
        #expect(flagged.stdout.contains("rotation advised"), "\(flagged.stdout)")
        let verify = try CLI.run(["verify", "--vault", vault, "--dataset", "d"])
        #expect(verify.status == 0 && verify.stderr.contains("rotation advised"), "\(verify.stdout) \(verify.stderr)")
    }

    @Test("""
          rotate --kek, then rewrap killed at every step (journal, plan, after each shard and result, before and after the \
          manifest) and run again: it finishes, deep verify and audit verify pass, the numbers are unchanged, and retire then \
          removes the old material
          """, .enabled(if: CLI.testdata != nil, "needs ../shared/testdata"))
    func rewrapKilledEverywhere() throws {
        let dir = TempDir()
        let vault = try Self.vault(dir)
        let expected = try Self.numbers(vault, dir)
        #expect(expected.contains("\"groups\""))
        var points = ["rewrap.journal:1", "rewrap.plan:1", "rewrap.before-manifest:1", "rewrap.manifest:1"]
        // 6 shards and the results sealed so far (one per earlier iteration): a kill after each.
        points += (1...8).map { "rewrap.file:\($0)" }
        for (n, point) in points.enumerated() {
            let version = n + 2
            #expect(try CLI.run(["keys", "rotate", "--vault", vault, "--dataset", "d", "--kek"]).status == 0)
            let killed = try CLI.run(["keys", "rewrap", "--vault", vault, "--dataset", "d"], environment: ["SHARDVAULT_CRASH_AT": point])
            #expect(killed.status == 128 + 9 || killed.status == -9 || killed.status == 9, "\(point): not killed: \(killed.status) \(killed.stderr)")
            let planned = FileManager.default.fileExists(atPath: vault + "/data/d/.rotation/plan.json")
            if planned {
                let read = try CLI.run(["verify", "--vault", vault, "--dataset", "d"])
                #expect(read.status == 65 && read.stderr.contains("keys rewrap --dataset d"), "\(point): \(read.stderr)")
            }
            let rerun = try CLI.run(["keys", "rewrap", "--vault", vault, "--dataset", "d"])
            #expect(rerun.status == 0, "\(point): \(rerun.stderr)")
            #expect(!FileManager.default.fileExists(atPath: vault + "/data/d/.rotation"), "\(point)")
            let versions = try Self.keyVersions(vault)
            #expect(versions.keys.filter { $0.hasPrefix("kek") } == ["kek v\(version)"], "\(point): \(versions)")
            let deep = try CLI.run(["verify", "--vault", vault, "--dataset", "d", "--deep"])
            #expect(deep.status == 0, "\(point): \(deep.stdout) \(deep.stderr)")
            #expect(try Self.numbers(vault, dir) == expected, "\(point): the numbers changed")
        }
        let last = points.count + 1
        let retire = try CLI.run(["keys", "retire", "--vault", vault, "--dataset", "d", "--below", String(last)])
        #expect(retire.status == 0, "\(retire.stderr)")
        #expect(try CLI.run(["verify", "--vault", vault, "--dataset", "d", "--deep"]).status == 0)
        #expect(try CLI.run(["audit", "verify", "--vault", vault]).status == 0)
        let rewraps = try CLI.run(["audit", "log", "--vault", vault, "--action", "shard.rewrap", "--json"])
        #expect(rewraps.stdout.split(separator: "\n").count >= 6 * points.count)
    }

    @Test("rotate --signing killed mid-way and run again finishes the same rotation (no extra version); retire refuses while a shard needs the old one",
          .enabled(if: CLI.testdata != nil, "needs ../shared/testdata"))
    func resignKilled() throws {
        let dir = TempDir()
        let vault = try Self.vault(dir)
        let expected = try Self.numbers(vault, dir)
        for point in ["rotate.before-save:1", "rewrap.plan:1", "rewrap.file:3", "rewrap.manifest:1"] {
            let killed = try CLI.run(["keys", "rotate", "--vault", vault, "--dataset", "d", "--signing"], environment: ["SHARDVAULT_CRASH_AT": point])
            #expect(killed.status != 0, "\(point)")
            if point == "rewrap.file:3" {
                let retire = try CLI.run(["keys", "retire", "--vault", vault, "--dataset", "d", "--below", "2", "--signing"])
                #expect(retire.status == 65, "\(retire.stderr)")
            }
            let rerun = try CLI.run(["keys", "rotate", "--vault", vault, "--dataset", "d", "--signing"])
            #expect(rerun.status == 0, "\(point): \(rerun.stderr)")
            #expect(try CLI.run(["verify", "--vault", vault, "--dataset", "d", "--deep"]).status == 0, "\(point)")
            #expect(try Self.numbers(vault, dir) == expected, "\(point)")
        }
        // Four rotations, each finished once: signing versions 2 to 5 (the first kill came
        // before the keyring was saved, so its rerun made version 2).
        let versions = try Self.keyVersions(vault)
        #expect(versions.keys.filter { $0.hasPrefix("signing") } == ["signing v5"], "\(versions)")
        let retire = try CLI.run(["keys", "retire", "--vault", vault, "--dataset", "d", "--below", "5", "--signing"])
        #expect(retire.status == 0, "\(retire.stderr)")
        #expect(try CLI.run(["audit", "verify", "--vault", vault]).status == 0)
    }

    static func shardDataKeys(_ vault: String) throws -> Set<String> {
        let manifest = try String(contentsOfFile: vault + "/data/d/manifest.jsonl", encoding: .utf8)
        let body = try #require(try JSONSerialization.jsonObject(with: Data(manifest.split(separator: "\n")[0].utf8)) as? [String: Any])
        return Set(((body["shards"] as? [[String: Any]]) ?? []).compactMap { $0["dataKeyId"] as? String })
    }

    @Test("""
          rotate --data killed after each shard, after publishing and after the manifest, and run again: fresh data keys for \
          every shard, one new generation per rotation, the dataset readable throughout, same numbers
          """, .enabled(if: CLI.testdata != nil, "needs ../shared/testdata"))
    func dataRotationKilled() throws {
        let dir = TempDir()
        let vault = try Self.vault(dir)
        let expected = try Self.numbers(vault, dir)
        var keys = try Self.shardDataKeys(vault)
        #expect(keys.count == 6)
        let points = ["data.shard:1", "data.shard:4", "data.published:1", "data.manifest:1"]
        for (n, point) in points.enumerated() {
            let killed = try CLI.run(["keys", "rotate", "--vault", vault, "--dataset", "d", "--data"], environment: ["SHARDVAULT_CRASH_AT": point])
            #expect(killed.status != 0, "\(point)")
            // Until the rerun, the dataset still reads (the old generation, or the new one once committed).
            #expect(try Self.numbers(vault, dir) == expected, "\(point): not readable while interrupted")
            let rerun = try CLI.run(["keys", "rotate", "--vault", vault, "--dataset", "d", "--data", "--json"])
            #expect(rerun.status == 0, "\(point): \(rerun.stderr)")
            let generations = try FileManager.default.contentsOfDirectory(atPath: vault + "/data/d").filter { $0.hasPrefix("g") }
            #expect(generations == [String(format: "g%06d", n + 2)], "\(point): \(generations)")
            let now = try Self.shardDataKeys(vault)
            #expect(now.count == 6 && now.isDisjoint(with: keys), "\(point): a shard kept its data key")
            keys = now
            #expect(try CLI.run(["verify", "--vault", vault, "--dataset", "d", "--deep"]).status == 0, "\(point)")
            #expect(try Self.numbers(vault, dir) == expected, "\(point)")
        }
        #expect(try CLI.run(["audit", "verify", "--vault", vault]).status == 0)
    }

    @Test("rotate --root killed at each step reads fine in between and finishes when run again; the old root key file is wiped",
          .enabled(if: CLI.testdata != nil, "needs ../shared/testdata"))
    func rootRotationKilled() throws {
        let dir = TempDir()
        let vault = try Self.vault(dir)
        let expected = try Self.numbers(vault, dir)
        for (n, point) in ["root.next:1", "root.keyring:1", "root.wiped:1"].enumerated() {
            let before = try Data(contentsOf: URL(fileURLWithPath: vault + "/keys/root.key"))
            let killed = try CLI.run(["keys", "rotate", "--vault", vault, "--root"], environment: ["SHARDVAULT_CRASH_AT": point])
            #expect(killed.status != 0, "\(point)")
            #expect(try CLI.run(["verify", "--vault", vault, "--dataset", "d", "--deep"]).status == 0, "\(point): unreadable in between")
            let rerun = try CLI.run(["keys", "rotate", "--vault", vault, "--root", "--json"])
            #expect(rerun.status == 0, "\(point): \(rerun.stderr)")
            #expect(rerun.stdout.contains("\"newVersion\" : \(n + 2)"), "\(point): \(rerun.stdout)")
            #expect(!FileManager.default.fileExists(atPath: vault + "/keys/root.key.next"))
            #expect(try Data(contentsOf: URL(fileURLWithPath: vault + "/keys/root.key")) != before)
            #expect(try Self.numbers(vault, dir) == expected, "\(point)")
        }
        #expect(try CLI.run(["audit", "verify", "--vault", vault]).status == 0)
    }

    @Test("""
          destroy: analyze, reveal and deep verify of the dataset then fail with 65 naming the destruction, other datasets are \
          untouched, the audit log keeps who destroyed what, and an earlier copy of the keyring brings nothing back
          """, .enabled(if: CLI.testdata != nil, "needs ../shared/testdata"))
    func destroy() throws {
        let dir = TempDir()
        let vault = try Self.vault(dir)
        let input = try #require(CLI.testdata) + "/patients/synthea_csv_59"
        #expect(try CLI.run(["ingest", "--vault", vault, "--dataset", "other", "--format", "synthea-csv", "--shards", "3", input]).status == 0)
        let otherSpec = dir.path + "/other.json"
        try Self.spec.replacingOccurrences(of: "\"d\"", with: "\"other\"").write(toFile: otherSpec, atomically: true, encoding: .utf8)
        func otherNumbers() throws -> String {
            let run = try CLI.run(["analyze", "--vault", vault, "--spec", otherSpec, "--as", "alice", "--json", "--isolation", "thread"])
            let id = try #require((try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any])?["result"] as? String)
            return try CLI.run(["results", "reveal", id, "--vault", vault, "--as", "alice"]).stdout.replacingOccurrences(of: id, with: "")
        }
        let otherBefore = try otherNumbers()
        let run = try CLI.run(["analyze", "--vault", vault, "--spec", dir.path + "/spec.json", "--as", "alice", "--json"])
        let result = try #require((try JSONSerialization.jsonObject(with: Data(run.stdout.utf8)) as? [String: Any])?["result"] as? String)
        let oldKeyring = try Data(contentsOf: URL(fileURLWithPath: vault + "/keys/keyring.json"))

        #expect(try CLI.run(["keys", "destroy", "--vault", vault, "--dataset", "d", "--confirm", "other"]).status == 64)
        #expect(try CLI.run(["keys", "destroy", "--vault", vault, "--dataset", "d", "--confirm", "d", "--as", "alice"]).status == 77)
        let killed = try CLI.run(["keys", "destroy", "--vault", vault, "--dataset", "d", "--confirm", "d"], environment: ["SHARDVAULT_CRASH_AT": "destroy.keyring:1"])
        #expect(killed.status != 0)
        let destroyed = try CLI.run(["keys", "destroy", "--vault", vault, "--dataset", "d", "--confirm", "d"])
        #expect(destroyed.status == 0, "\(destroyed.stderr)")

        let analyze = try CLI.run(["analyze", "--vault", vault, "--spec", dir.path + "/spec.json", "--as", "alice"])
        #expect(analyze.status == 65 && analyze.stderr.contains("destroyed"), "\(analyze.stderr)")
        let reveal = try CLI.run(["results", "reveal", result, "--vault", vault, "--as", "alice"])
        #expect(reveal.status == 65 && reveal.stderr.contains("destroyed") && reveal.stdout.isEmpty, "\(reveal.stderr)")
        let deep = try CLI.run(["verify", "--vault", vault, "--dataset", "d", "--deep"])
        #expect(deep.status == 65 && deep.stderr.contains("destroyed"), "\(deep.stderr)")
        #expect(try CLI.run(["verify", "--vault", vault, "--dataset", "other", "--deep"]).status == 0)
        #expect(try otherNumbers() == otherBefore)

        let log = try CLI.run(["audit", "log", "--vault", vault, "--action", "key.destroy", "--dataset", "d", "--json"])
        let entries = log.stdout.split(separator: "\n")
        #expect(entries.count >= 3 && entries.allSatisfy { $0.contains("\"principal\"") && $0.contains("\"time\"") }, "\(log.stdout)")
        #expect(try CLI.run(["audit", "verify", "--vault", vault]).status == 0)

        // The keyring as it was before: its entries were wrapped under a root key that is gone.
        try oldKeyring.write(to: URL(fileURLWithPath: vault + "/keys/keyring.json"))
        let restored = try CLI.run(["verify", "--vault", vault, "--dataset", "d", "--deep"])
        #expect(restored.status != 0 && !restored.stdout.contains("OK"), "\(restored.stdout)")
    }
}
