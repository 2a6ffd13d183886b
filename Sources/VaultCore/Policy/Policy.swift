import Foundation
import Yams

/// A problem in a policy file: what and where.
public struct PolicyProblem: Error, CustomStringConvertible, Sendable, Equatable {
    public let file: String
    public let line: Int
    public let message: String
    public var description: String { "\(file):\(line): \(message)" }
}

/// Every problem found in the policy files; none of them is loaded while any remains.
public struct PolicyErrors: Error, CustomStringConvertible, Sendable {
    public let problems: [PolicyProblem]
    public var description: String { problems.map(\.description).joined(separator: "\n") }
}

/// One allow rule of a role: actions on datasets for purposes. Actions and datasets may use
/// `*` and `?` globs; purposes are HL7 PurposeOfUse codes or `*`.
public struct PolicyRule: Sendable, Equatable {
    public var actions: [String]
    public var datasets: [String]
    public var purposes: [String]
    /// `file:line` of the rule, named in every decision it makes.
    public var source: String
}

public struct PolicyRole: Sendable, Equatable {
    public var name: String
    public var allow: [PolicyRule]
    /// Smallest patient count a revealed group may show.
    public var minCell: Int?
    public var source: String
}

public struct PolicyPrincipal: Sendable, Equatable {
    public var name: String
    public var roles: [String]
    public var source: String
}

/// The actions a policy can name.
public enum PolicyAction {
    public static let known: [String] = [
        "ingest", "verify", "datasets.read", "analyze", "reveal", "results.read",
        "keys.read", "keys.rotate", "keys.rewrap", "keys.retire", "keys.destroy",
        "audit.read", "audit.verify", "audit.export", "audit.archive", "policy.read",
    ]
}

/// The policies of a vault: every `*.yaml` / `*.yml` file in `policies/`, merged.
/// Deny by default: a request is allowed only by a rule of a role of a known principal that
/// names its action, dataset and purpose.
public struct PolicySet: Sendable {
    public private(set) var principals: [String: PolicyPrincipal] = [:]
    public private(set) var roles: [String: PolicyRole] = [:]
    public private(set) var files: [String] = []

    public init() {}

    /// Loads and checks every policy file in `directory`; throws `PolicyErrors` listing every
    /// problem with its file and line.
    public static func load(directory: String) throws -> PolicySet {
        var set = PolicySet()
        var problems: [PolicyProblem] = []
        let names = FileIO.isDirectory(directory) ? try FileIO.listDirectory(directory).filter { $0.hasSuffix(".yaml") || $0.hasSuffix(".yml") }.sorted() : []
        for name in names {
            let path = directory + "/" + name
            set.files.append(path)
            let text = String(decoding: try FileIO.readAll(path), as: UTF8.self)
            set.read(text, file: path, problems: &problems)
        }
        for principal in set.principals.values.sorted(by: { $0.name < $1.name }) {
            for role in principal.roles where set.roles[role] == nil {
                problems.append(Self.problem(principal.source, "principal '\(principal.name)' has role '\(role)', which no policy defines"))
            }
        }
        guard problems.isEmpty else { throw PolicyErrors(problems: problems.sorted { ($0.file, $0.line) < ($1.file, $1.line) }) }
        return set
    }

    static func problem(_ source: String, _ message: String) -> PolicyProblem {
        let parts = source.split(separator: ":")
        return PolicyProblem(file: parts.dropLast().joined(separator: ":"), line: Int(parts.last ?? "") ?? 0, message: message)
    }

    private mutating func read(_ text: String, file: String, problems: inout [PolicyProblem]) {
        func at(_ node: Node?) -> String { "\(file):\((node?.mark?.line ?? 1))" }
        func fail(_ node: Node?, _ message: String) { problems.append(PolicyProblem(file: file, line: node?.mark?.line ?? 1, message: message)) }
        let root: Node?
        do { root = try Yams.compose(yaml: text) } catch let error as YamlError {
            let line: Int
            switch error {
            case .parser(_, _, let mark, _), .scanner(_, _, let mark, _): line = mark.line
            default: line = 1
            }
            problems.append(PolicyProblem(file: file, line: line, message: "not valid YAML: \(error)"))
            return
        } catch {
            problems.append(PolicyProblem(file: file, line: 1, message: "not valid YAML: \(error)"))
            return
        }
        guard let root else { return } // an empty file grants nothing
        guard let top = root.mapping else { return fail(root, "a policy file is a mapping with 'principals' and/or 'roles'") }
        func strings(_ node: Node, _ field: String) -> [String]? {
            guard let seq = node.sequence else { fail(node, "'\(field)' must be a list"); return nil }
            var out: [String] = []
            for item in seq {
                guard let s = item.scalar?.string, !s.isEmpty else { fail(item, "'\(field)' entries must be non-empty strings"); return nil }
                out.append(s)
            }
            return out
        }
        for (keyNode, value) in top {
            switch keyNode.string ?? "" {
            case "principals":
                guard let map = value.mapping else { fail(value, "'principals' must map names to {roles: [...]}"); continue }
                for (nameNode, body) in map {
                    let name = nameNode.string ?? ""
                    guard AccessGate.isValidPrincipal(name) else { fail(nameNode, "principal name '\(name)' must use 1-64 characters A-Z a-z 0-9 . _ - @"); continue }
                    if let existing = principals[name] { fail(nameNode, "principal '\(name)' is already defined at \(existing.source)"); continue }
                    guard let fields = body.mapping else { fail(body, "principal '\(name)' must be a mapping with 'roles'"); continue }
                    var roleNames: [String] = []
                    for (fieldNode, fieldValue) in fields {
                        switch fieldNode.string ?? "" {
                        case "roles": roleNames = strings(fieldValue, "roles") ?? []
                        default: fail(fieldNode, "unknown key '\(fieldNode.string ?? "")' in principal '\(name)' (expected: roles)")
                        }
                    }
                    if roleNames.isEmpty { fail(body, "principal '\(name)' has no roles") }
                    principals[name] = PolicyPrincipal(name: name, roles: roleNames, source: at(nameNode))
                }
            case "roles":
                guard let map = value.mapping else { fail(value, "'roles' must map role names to {allow: [...], disclosure: {...}}"); continue }
                for (nameNode, body) in map {
                    let name = nameNode.string ?? ""
                    if let existing = roles[name] { fail(nameNode, "role '\(name)' is already defined at \(existing.source)"); continue }
                    guard let fields = body.mapping else { fail(body, "role '\(name)' must be a mapping with 'allow'"); continue }
                    var role = PolicyRole(name: name, allow: [], minCell: nil, source: at(nameNode))
                    for (fieldNode, fieldValue) in fields {
                        switch fieldNode.string ?? "" {
                        case "allow":
                            guard let rules = fieldValue.sequence else { fail(fieldValue, "'allow' of role '\(name)' must be a list of rules"); continue }
                            for ruleNode in rules {
                                if let rule = readRule(ruleNode, role: name, at: at, fail: fail, strings: strings) { role.allow.append(rule) }
                            }
                        case "disclosure":
                            guard let disclosure = fieldValue.mapping else { fail(fieldValue, "'disclosure' must be a mapping such as {minCell: 11}"); continue }
                            for (k, v) in disclosure {
                                guard k.string == "minCell" else { fail(k, "unknown key '\(k.string ?? "")' in disclosure (expected: minCell)"); continue }
                                guard let n = v.int, n >= 1 else { fail(v, "minCell must be a whole number of at least 1"); continue }
                                role.minCell = n
                            }
                        default:
                            fail(fieldNode, "unknown key '\(fieldNode.string ?? "")' in role '\(name)' (expected: allow, disclosure)")
                        }
                    }
                    roles[name] = role
                }
            default:
                fail(keyNode, "unknown top-level key '\(keyNode.string ?? "")' (expected: principals, roles)")
            }
        }
    }

    private func readRule(_ node: Node, role: String, at: (Node?) -> String, fail: (Node?, String) -> Void,
                          strings: (Node, String) -> [String]?) -> PolicyRule? {
        guard let fields = node.mapping else { fail(node, "a rule of role '\(role)' must be a mapping with actions, datasets and purposes"); return nil }
        var rule = PolicyRule(actions: [], datasets: [], purposes: [], source: at(node))
        var ok = true
        for (k, v) in fields {
            switch k.string ?? "" {
            case "actions":
                rule.actions = strings(v, "actions") ?? []
                for a in rule.actions where !PolicyAction.known.contains(where: { Self.glob(a, matches: $0) }) {
                    fail(v, "action '\(a)' matches no known action (\(PolicyAction.known.joined(separator: ", ")))"); ok = false
                }
            case "datasets":
                rule.datasets = strings(v, "datasets") ?? []
            case "purposes":
                rule.purposes = strings(v, "purposes") ?? []
                for p in rule.purposes where p != "*" && !PurposeOfUse.codes.contains(p) {
                    fail(v, "purpose '\(p)' is not an HL7 PurposeOfUse code"); ok = false
                }
            default:
                fail(k, "unknown key '\(k.string ?? "")' in a rule (expected: actions, datasets, purposes)"); ok = false
            }
        }
        for (field, list) in [("actions", rule.actions), ("datasets", rule.datasets), ("purposes", rule.purposes)] where list.isEmpty {
            fail(node, "a rule of role '\(role)' needs a non-empty '\(field)' list"); ok = false
        }
        return ok ? rule : nil
    }

    /// Glob match with `*` (any run) and `?` (one character).
    static func glob(_ pattern: String, matches text: String) -> Bool {
        let p = Array(pattern.utf8), t = Array(text.utf8)
        var pi = 0, ti = 0, star = -1, mark = 0
        while ti < t.count {
            if pi < p.count && (p[pi] == UInt8(ascii: "?") || p[pi] == t[ti]) { pi += 1; ti += 1 }
            else if pi < p.count && p[pi] == UInt8(ascii: "*") { star = pi; mark = ti; pi += 1 }
            else if star >= 0 { pi = star + 1; mark += 1; ti = mark }
            else { return false }
        }
        while pi < p.count && p[pi] == UInt8(ascii: "*") { pi += 1 }
        return pi == p.count
    }

    /// The decision for a request, with the rule that made it.
    public func decide(principal: String, action: String, dataset: String?, purpose: String) -> AccessDecision {
        guard let who = principals[principal] else {
            return AccessDecision(allowed: false, rule: "deny by default: principal '\(principal)' is in no policy")
        }
        guard PolicyAction.known.contains(action) else {
            return AccessDecision(allowed: false, rule: "deny by default: unknown action '\(action)'")
        }
        guard PurposeOfUse.codes.contains(purpose) else {
            return AccessDecision(allowed: false, rule: "deny by default: purpose '\(purpose)' is not an HL7 PurposeOfUse code")
        }
        for roleName in who.roles {
            guard let role = roles[roleName] else { continue }
            for rule in role.allow where rule.actions.contains(where: { Self.glob($0, matches: action) })
                && (dataset == nil || rule.datasets.contains(where: { Self.glob($0, matches: dataset ?? "") }))
                && rule.purposes.contains(where: { $0 == "*" || $0 == purpose }) {
                return AccessDecision(allowed: true, rule: "role '\(roleName)' rule at \(rule.source)")
            }
        }
        return AccessDecision(allowed: false, rule: "deny by default: no rule of \(principal)'s roles (\(who.roles.joined(separator: ", "))) allows \(action)"
            + (dataset.map { " on '\($0)'" } ?? "") + " for \(purpose)")
    }

    /// The policy `init` writes: the operating-system user who ran it is an administrator.
    public static func defaultPolicy(administrator: String) -> String {
        """
        # ShardVault access policy (docs/policy-format.md).
        # Every *.yaml file in this folder is read and merged. Deny by default: a request is
        # allowed only by a rule of a role of a principal listed here that names its action,
        # dataset and HL7 purpose of use. Check with `shardvault policy check`.
        principals:
          "\(administrator)": {roles: [administrator]}
        roles:
          administrator:
            allow:
              - actions: [ingest, verify, datasets.read, results.read, keys.*, policy.read]
                datasets: ["*"]
                purposes: [HSYSADMIN, HOPERAT]
              - actions: [audit.*]
                datasets: ["*"]
                purposes: [HCOMPL, HSYSADMIN]
            disclosure: {minCell: 11}

        """
    }
}
