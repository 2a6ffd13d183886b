import ArgumentParser
import Foundation
import VaultCore

@main
struct ShardVault: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "shardvault",
        abstract: "A secure vault for patient data: sealed shards, verified processing, audited access.",
        discussion: """
        Exit codes (sysexits): 0 ok, 64 usage, 65 bad data or failed verification, 66 missing input,
        73 cannot create, 74 I/O error, 77 permission denied, 78 configuration error.
        """,
        subcommands: [Demo.self, Init.self, Ingest.self, Datasets.self, Verify.self, Analyze.self, Results.self, Keys.self, Audit.self, PolicyCommand.self, SelfTest.self, Generate.self, Worker.self])

    /// `shardvault worker`, exactly as `analyze` starts it, goes straight to the worker: a
    /// server starts for each lane of every process-isolated analysis, and the argument
    /// parser's reflection over every command was a quarter of its start.
    static func main() {
        if CommandLine.arguments.dropFirst().elementsEqual(WorkerServers.arguments) { Glibc.exit(Worker.serve()) }
        main(nil)
    }
}

/// Options every vault command takes.
struct VaultOptions: ParsableArguments {
    @Option(name: .customLong("vault"), help: ArgumentHelp("Vault folder (default: $SHARDVAULT_VAULT or the current folder).", valueName: "DIR"))
    var vault: String?

    @Flag(name: .customLong("json"), help: "Print machine-readable JSON on stdout.")
    var json = false

    @Option(name: .customLong("as"), help: ArgumentHelp("Principal acting (default: $SHARDVAULT_PRINCIPAL or the operating-system user).", valueName: "PRINCIPAL"))
    var principal: String?

    var root: String {
        vault ?? ProcessInfo.processInfo.environment["SHARDVAULT_VAULT"] ?? FileManager.default.currentDirectoryPath
    }

    /// Who acts and why, for the audit log.
    func context(purpose: String) -> AuditContext {
        AuditContext(principal: principal ?? ProcessInfo.processInfo.environment["SHARDVAULT_PRINCIPAL"], purpose: purpose)
    }

    /// Opens the vault for a command; every access it makes is audited under this context.
    func open(lock: VaultLock.Mode, purpose: String) throws -> Vault {
        try Vault.open(at: root, lock: lock, context: context(purpose: purpose))
    }
}

/// The purpose of use a command declares.
struct PurposeOption: ParsableArguments {
    @Option(help: ArgumentHelp("HL7 PurposeOfUse code recorded with every access (default: HSYSADMIN; HCOMPL for audit review).", valueName: "CODE"))
    var purpose: String?

    func or(_ fallback: String) -> String { purpose ?? fallback }
}

/// Runs a command body, mapping vault errors to a message on stderr and a sysexits code.
func runCommand(_ body: () throws -> Void) throws {
    do {
        try body()
    } catch let error as VaultError {
        Console.error("shardvault: \(error)")
        throw ExitCode(error.code.exitStatus)
    } catch let error as ExitCode {
        throw error
    } catch {
        Console.error("shardvault: \(error)")
        throw ExitCode(70)
    }
}

enum Console {
    static func error(_ text: String) {
        FileHandle.standardError.write(Data((text + "\n").utf8))
    }

    static func json<T: Encodable>(_ value: T) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        let data = try encoder.encode(value)
        FileHandle.standardOutput.write(data + Data([10]))
    }

    static func out(_ text: String) { print(text) }

    /// One line per record kind, counts right-aligned.
    static func recordCounts(_ counts: RecordCounts) {
        for kind in RecordKind.allCases {
            out("  \(kind.name.padding(toLength: 14, withPad: " ", startingAt: 0)) \(count(counts[kind]).leftPad(10))")
        }
    }

    static func count(_ n: Int) -> String {
        let digits = Array(String(n))
        var out = ""
        for (i, c) in digits.enumerated() {
            if i > 0 && (digits.count - i) % 3 == 0 { out.append(",") }
            out.append(c)
        }
        return out
    }

    static func bytes(_ n: Int) -> String {
        let units = ["B", "KiB", "MiB", "GiB", "TiB"]
        var value = Double(n)
        var unit = 0
        while value >= 1024 && unit < units.count - 1 { value /= 1024; unit += 1 }
        return unit == 0 ? "\(n) B" : String(format: "%.1f %@", value, units[unit])
    }
}
