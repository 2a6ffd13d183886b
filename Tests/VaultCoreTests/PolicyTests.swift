import Foundation
import Testing
@testable import VaultCore

@Suite("Policies as code: parsing, linting with file and line, deny-by-default decisions")
struct PolicyTests {
    func load(_ files: [String: String]) throws -> PolicySet {
        let dir = TemporaryDirectory("policy")
        for (name, text) in files { try text.write(toFile: dir.path + "/" + name, atomically: true, encoding: .utf8) }
        return try withExtendedLifetime(dir) { try PolicySet.load(directory: dir.path) }
    }

    func problems(_ files: [String: String]) throws -> [PolicyProblem] {
        do { _ = try load(files); return [] } catch let errors as PolicyErrors { return errors.problems }
    }

    static let example = """
    principals:
      alice: {roles: [researcher]}
      bob: {roles: [steward]}
    roles:
      researcher:
        allow:
          - actions: [analyze, reveal]
            datasets: ["*"]
            purposes: [HRESCH, PUBHLTH]
        disclosure: {minCell: 11}
      steward:
        allow:
          - actions: [ingest, verify, keys.*]
            datasets: ["synthea*"]
            purposes: [HOPERAT]
    """

    @Test("the issue's example: allowed by the rule it names, denied for anything else")
    func example() throws {
        let set = try load(["main.yaml": Self.example])
        var d = set.decide(principal: "alice", action: "analyze", dataset: "synthea", purpose: "HRESCH")
        #expect(d.allowed && d.rule.contains("researcher") && d.rule.contains("main.yaml:7"), "\(d.rule)")
        #expect(set.roles["researcher"]?.minCell == 11)
        d = set.decide(principal: "alice", action: "analyze", dataset: "synthea", purpose: "TREAT")
        #expect(!d.allowed)
        d = set.decide(principal: "alice", action: "ingest", dataset: "synthea", purpose: "HRESCH")
        #expect(!d.allowed && d.rule.contains("no rule"))
        d = set.decide(principal: "mallory", action: "analyze", dataset: "synthea", purpose: "HRESCH")
        #expect(!d.allowed && d.rule.contains("mallory"))
        d = set.decide(principal: "alice", action: "teleport", dataset: "synthea", purpose: "HRESCH")
        #expect(!d.allowed && d.rule.contains("unknown action"))
        d = set.decide(principal: "alice", action: "analyze", dataset: "synthea", purpose: "NOPE")
        #expect(!d.allowed && d.rule.contains("PurposeOfUse"))
        // Globs: datasets "synthea*" and actions "keys.*".
        #expect(set.decide(principal: "bob", action: "keys.rotate", dataset: "synthea-2024", purpose: "HOPERAT").allowed)
        #expect(!set.decide(principal: "bob", action: "keys.rotate", dataset: "other", purpose: "HOPERAT").allowed)
        #expect(!set.decide(principal: "bob", action: "reveal", dataset: "synthea", purpose: "HOPERAT").allowed)
    }

    @Test("files are merged; an empty folder denies everyone")
    func merge() throws {
        let set = try load([
            "a.yaml": "principals:\n  carol: {roles: [auditor]}\n",
            "b.yml": "roles:\n  auditor:\n    allow:\n      - actions: [audit.*]\n        datasets: [\"*\"]\n        purposes: [HCOMPL]\n",
        ])
        #expect(set.files.count == 2)
        #expect(set.decide(principal: "carol", action: "audit.export", dataset: nil, purpose: "HCOMPL").allowed)
        #expect(!set.decide(principal: "carol", action: "audit.export", dataset: nil, purpose: "HRESCH").allowed)
        let empty = try load([:])
        #expect(!empty.decide(principal: "carol", action: "audit.read", dataset: nil, purpose: "HCOMPL").allowed)
    }

    @Test("lint names every problem with its file and line")
    func lint() throws {
        let found = try problems([
            "a.yaml": "principals:\n  carol: {roles: [auditor]}\n",
            "b.yaml": """
            principals:
              alice: {roles: [researcher, ghost]}
              carol: {roles: [researcher]}
            roles:
              researcher:
                allow:
                  - actions: [analyze, fly]
                    datasets: ["*"]
                    purposes: [HRESCH, PUBLIC]
                disclosure: {minCell: 0}
                colour: blue
            """,
        ])
        let text = found.map(\.description)
        func has(_ file: String, _ line: Int, _ words: String) -> Bool {
            found.contains { $0.file.hasSuffix("/" + file) && $0.line == line && $0.message.contains(words) }
        }
        #expect(has("b.yaml", 2, "role 'ghost'"), "\(text)")
        #expect(has("b.yaml", 3, "already defined at"), "\(text)")
        #expect(has("b.yaml", 7, "action 'fly'"), "\(text)")
        #expect(has("b.yaml", 9, "purpose 'PUBLIC'"), "\(text)")
        #expect(has("b.yaml", 10, "minCell"), "\(text)")
        #expect(has("b.yaml", 11, "unknown key 'colour'"), "\(text)")
        #expect(has("a.yaml", 2, "role 'auditor'"), "\(text)")
        #expect(found.count == 7, "\(text)")
    }

    @Test("broken YAML and wrong shapes are errors with a line, never an empty policy")
    func shapes() throws {
        #expect(try problems(["x.yaml": "principals:\n  alice: {roles: [a\n"]).first?.message.contains("not valid YAML") == true)
        #expect(try problems(["x.yaml": "- just\n- a list\n"]).first?.message.contains("mapping") == true)
        #expect(try problems(["x.yaml": "roles:\n  r:\n    allow:\n      - actions: [verify]\n        datasets: [\"*\"]\n"]).contains {
            $0.line == 4 && $0.message.contains("'purposes'")
        })
        #expect(try problems(["x.yaml": "principals:\n  \"bad name\": {roles: [r]}\n"]).first?.line == 2)
    }

    @Test("glob matching: * and ?")
    func globs() {
        #expect(PolicySet.glob("*", matches: "anything"))
        #expect(PolicySet.glob("syn*", matches: "synthea") && !PolicySet.glob("syn*", matches: "asyn"))
        #expect(PolicySet.glob("keys.*", matches: "keys.rotate") && !PolicySet.glob("keys.*", matches: "keysrotate"))
        #expect(PolicySet.glob("d?", matches: "d1") && !PolicySet.glob("d?", matches: "d12"))
        #expect(PolicySet.glob("a*b*c", matches: "axxbyyc") && !PolicySet.glob("a*b*c", matches: "axxbyy"))
    }

    @Test("init writes a default policy that makes its user an administrator, and keeps existing policies")
    func defaultPolicy() throws {
        let dir = TemporaryDirectory("policy-init")
        let vault = try Vault.initialize(at: dir.path + "/v", context: AuditContext(principal: "ops@site", purpose: "HSYSADMIN"))
        let set = try PolicySet.load(directory: vault.layout.policies)
        #expect(set.decide(principal: "ops@site", action: "ingest", dataset: "any", purpose: "HSYSADMIN").allowed)
        #expect(set.decide(principal: "ops@site", action: "audit.verify", dataset: nil, purpose: "HCOMPL").allowed)
        #expect(!set.decide(principal: "ops@site", action: "reveal", dataset: "any", purpose: "HRESCH").allowed)
        #expect(!set.decide(principal: "someone", action: "verify", dataset: "any", purpose: "HSYSADMIN").allowed)
        // A folder that already has policies is left as it is.
        try FileManager.default.createDirectory(atPath: dir.path + "/w/policies", withIntermediateDirectories: true)
        try Self.example.write(toFile: dir.path + "/w/policies/site.yaml", atomically: true, encoding: .utf8)
        _ = try Vault.initialize(at: dir.path + "/w")
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path + "/w/policies") == ["site.yaml"])
    }
}
