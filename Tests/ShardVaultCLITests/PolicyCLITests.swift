import Foundation
import Testing
import VaultCore

@Suite("policy check and policy explain through the shardvault command line")
struct PolicyCLITests {
    @Test("a new vault's default policy checks clean; explain allows its user and denies a stranger; a bad file fails with file and line")
    func checkAndExplain() throws {
        let dir = TempDir()
        let vault = dir.path + "/v"
        #expect(try CLI.run(["init", "--vault", vault, "--as", "ops"]).status == 0)
        let check = try CLI.run(["policy", "check", "--vault", vault, "--as", "ops"])
        #expect(check.status == 0 && check.stdout.contains("OK"), "\(check.stdout)\(check.stderr)")

        let allowed = try CLI.run(["policy", "explain", "--vault", vault, "--as", "ops", "--action", "ingest", "--dataset", "s", "--purpose", "HSYSADMIN"])
        #expect(allowed.status == 0 && allowed.stdout.contains("ALLOW") && allowed.stdout.contains("default.yaml:"), "\(allowed.stdout)")
        let denied = try CLI.run(["policy", "explain", "--vault", vault, "--as", "mallory", "--action", "reveal", "--dataset", "s", "--purpose", "HRESCH", "--json"])
        #expect(denied.status == 77)
        let json = try #require(try JSONSerialization.jsonObject(with: Data(denied.stdout.utf8)) as? [String: Any])
        #expect(json["allowed"] as? Bool == false && (json["rule"] as? String)?.contains("mallory") == true)

        try "roles:\n  r:\n    allow:\n      - actions: [fly]\n        datasets: [\"*\"]\n        purposes: [TREAT]\n"
            .write(toFile: vault + "/policies/bad.yaml", atomically: true, encoding: .utf8)
        let bad = try CLI.run(["policy", "check", "--vault", vault, "--as", "ops"])
        #expect(bad.status == 78)
        #expect(bad.stderr.contains("policies/bad.yaml:4: action 'fly'"), "\(bad.stderr)")

        // With a broken policy file nothing but reading the policies is allowed.
        let blocked = try CLI.run(["datasets", "list", "--vault", vault, "--as", "ops"])
        #expect(blocked.status == 77 && blocked.stderr.contains("policy check"), "\(blocked.stderr)")
        try FileManager.default.removeItem(atPath: vault + "/policies/bad.yaml")
        #expect(try CLI.run(["datasets", "list", "--vault", vault, "--as", "ops"]).status == 0)
        #expect(try CLI.run(["datasets", "list", "--vault", vault, "--as", "mallory"]).status == 77)

        // Each policy command was recorded on the audit log, the failed check with outcome error.
        let log = try CLI.run(["audit", "log", "--vault", vault, "--as", "ops", "--action", "policy", "--json"])
        let entries = log.stdout.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        #expect(entries.count == 5, "\(log.stdout)")
        #expect(entries.contains { $0["principal"] as? String == "mallory" && $0["action"] as? String == "policy.explain" })
        #expect(entries.last?["outcome"] as? String == "error")
        let denials = try CLI.run(["audit", "log", "--vault", vault, "--as", "ops", "--outcome", "denied", "--json"])
        #expect(denials.stdout.split(separator: "\n").count == 2, "\(denials.stdout)")
    }
}
