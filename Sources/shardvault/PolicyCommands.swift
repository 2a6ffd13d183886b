import ArgumentParser
import Foundation
import VaultCore

struct PolicyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "policy",
        abstract: "Check the policy files in policies/ and explain decisions.",
        discussion: "Format: docs/policy-format.md. Deny by default: unknown principals, actions, datasets and purposes are denied.",
        subcommands: [Check.self, Explain.self])

    struct Check: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Lint every policy file: exit 0 when valid, 78 listing each problem with file and line.")
        @OptionGroup var options: VaultOptions
        @OptionGroup var purpose: PurposeOption

        func run() throws {
            try runCommand {
                let vault = try options.open(lock: .shared, purpose: purpose.or("HSYSADMIN"))
                let outcome: Result<PolicySet, PolicyErrors> = try vault.perform(AuditAction.policyRead) {
                    do { return .success(try PolicySet.load(directory: vault.layout.policies)) } catch let errors as PolicyErrors {
                        try vault.audit.append(AuditEvent(action: AuditAction.policyRead, outcome: .error,
                                                          reason: "\(errors.problems.count) problems in the policy files"))
                        return .failure(errors)
                    }
                }
                switch outcome {
                case .success(let set):
                    if options.json {
                        struct Out: Encodable { var ok: Bool; var files: [String]; var principals: Int; var roles: Int }
                        try Console.json(Out(ok: true, files: set.files, principals: set.principals.count, roles: set.roles.count))
                    } else {
                        Console.out("OK    \(set.files.count) policy files: \(set.principals.count) principals, \(set.roles.count) roles")
                    }
                case .failure(let errors):
                    if options.json {
                        struct Problem: Encodable { var file: String; var line: Int; var message: String }
                        struct Out: Encodable { var ok: Bool; var problems: [Problem] }
                        try Console.json(Out(ok: false, problems: errors.problems.map { Problem(file: $0.file, line: $0.line, message: $0.message) }))
                    } else {
                        Console.out("FAIL  policies")
                        for p in errors.problems { Console.error("  \(p)") }
                    }
                    throw ExitCode(78)
                }
            }
        }
    }

    struct Explain: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print the decision the policies give for a principal (--as), action, dataset and purpose, and the rule behind it.",
            discussion: "Any principal may ask about its own requests. Exit 0 when allowed, 77 when denied.")
        @OptionGroup var options: VaultOptions
        @Option(help: "Action, e.g. analyze, reveal, ingest, keys.rotate, audit.read.") var action: String
        @Option(help: "Dataset name.") var dataset: String?
        @Option(help: ArgumentHelp("HL7 PurposeOfUse code of the request.", valueName: "CODE")) var purpose: String

        func run() throws {
            try runCommand {
                let vault = try options.open(lock: .shared, purpose: purpose)
                let principal = vault.audit.context.principal
                let decision = try vault.perform(AuditAction.policyExplain, resource: AuditResource(dataset: dataset)) {
                    try PolicySet.load(directory: vault.layout.policies).decide(principal: principal, action: action, dataset: dataset, purpose: purpose)
                }
                if options.json {
                    struct Out: Encodable { var principal: String; var action: String; var dataset: String?; var purpose: String; var allowed: Bool; var rule: String }
                    try Console.json(Out(principal: principal, action: action, dataset: dataset, purpose: purpose, allowed: decision.allowed, rule: decision.rule))
                } else {
                    Console.out("\(decision.allowed ? "ALLOW" : "DENY ")  \(principal) \(action)\(dataset.map { " on \($0)" } ?? "") for \(purpose)")
                    Console.out("       \(decision.rule)")
                }
                if !decision.allowed { throw ExitCode(77) }
            }
        }
    }
}
