import ArgumentParser
import Foundation
import VaultCore

struct Analyze: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run an analysis job spec over a dataset's sealed shards in parallel, and seal the result.",
        discussion: """
        The spec (JSON or YAML, docs/job-spec.md) names the dataset and the purpose of use; the policy must allow \
        'analyze' on it for that purpose. Each shard is verified, decrypted and aggregated in isolation; a shard that \
        fails verification fails the job (exit 65) and no result is written. Groups under the minimum cell size are \
        suppressed. Prints the result id; reveal it with 'shardvault results reveal ID'.
        """)
    @OptionGroup var options: VaultOptions
    @Option(help: ArgumentHelp("Job spec file (JSON or YAML).", valueName: "FILE")) var spec: String
    @Option(help: "Parallel tasks (default: the number of cores).") var workers: Int?
    @Option(help: "Task isolation: process (each shard in a hardened worker process of its own) or thread.") var isolation: String = "process"
    @Flag(name: .customLong("no-progress"), help: "Do not show progress (shown on standard error when it is a terminal).") var noProgress = false

    func validate() throws {
        if let workers, workers < 1 { throw ValidationError("--workers must be at least 1") }
        guard ["process", "thread"].contains(isolation) else { throw ValidationError("--isolation must be process or thread") }
    }

    /// This executable, for worker processes.
    static func selfPath() throws -> String {
        var buffer = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard n > 0 else { throw VaultError(.software, "cannot find this executable for worker processes") }
        return String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    func run() throws {
        try runCommand {
            guard FileManager.default.fileExists(atPath: spec) else { throw VaultError(.noInput, "job spec does not exist", location: spec) }
            let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: spec)))
            let job: JobSpec
            do { job = try JobSpec.parse(String(decoding: bytes, as: UTF8.self), file: spec) } catch let problem as JobSpec.Problem {
                throw VaultError(.dataError, problem.message, location: problem.location)
            }
            let cores = ProcessInfo.processInfo.activeProcessorCount
            let lanes = workers ?? cores
            // Worker servers start now, so that they are ready when the vault is open and the
            // accesses are on the audit log; they get nothing unless the job goes ahead. At
            // most one per core starts ahead; further lanes start theirs when they need one.
            let servers = isolation == "thread" ? nil : try WorkerServers(executable: try Self.selfPath(), starting: min(lanes, cores))
            defer { servers?.finish() }
            let vault = try options.open(lock: .shared, purpose: job.purpose)
            let started = Date()
            let display = TerminalProgress("analyze \(job.dataset)", enabled: !noProgress && TerminalProgress.terminal)
            defer { display.finish() }
            let outcome = try vault.perform(AuditAction.analyze, resource: AuditResource(dataset: job.dataset)) {
                var analysis = AnalysisJob(vault: vault, workers: lanes, isolation: servers.map { .process($0) } ?? .thread)
                if display.enabled { analysis.progress = { display.update(done: $0, total: $1, bytes: $2) } }
                return try analysis.run(job, specBytes: bytes)
            }
            display.finish()
            let seconds = Date().timeIntervalSince(started)
            if options.json {
                struct Out: Encodable { var result: String; var dataset: String; var groups: Int; var suppressed: Int; var shards: Int; var minCell: Int; var seconds: Double }
                try Console.json(Out(result: outcome.info.id, dataset: job.dataset, groups: outcome.info.groups, suppressed: outcome.info.suppressed,
                                     shards: outcome.info.shards, minCell: outcome.info.minCell, seconds: seconds))
            } else {
                Console.out(String(format: "Result %@: %d groups (%d suppressed under %d patients) from %d shards of '%@' in %.2f s",
                                   outcome.info.id, outcome.info.groups, outcome.info.suppressed, outcome.info.minCell, outcome.info.shards, job.dataset, seconds))
                Console.out("Reveal it with: shardvault results reveal \(outcome.info.id)")
            }
        }
    }
}

struct Results: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List sealed results, show their metadata, reveal one.", subcommands: [List.self, Show.self, Reveal.self])

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List results (metadata only).")
        @OptionGroup var options: VaultOptions
        @OptionGroup var purpose: PurposeOption

        func run() throws {
            try runCommand {
                let vault = try options.open(lock: .shared, purpose: purpose.or("HSYSADMIN"))
                let infos = try vault.perform(AuditAction.resultsRead) { try ResultStore(vault: vault).list() }
                if options.json { try Console.json(infos); return }
                if infos.isEmpty { Console.out("No results."); return }
                Console.out("RESULT            DATASET              CREATED                      BY            PURPOSE   GROUPS")
                for i in infos {
                    Console.out("\(i.id)  \(i.dataset.padding(toLength: 20, withPad: " ", startingAt: 0)) \(i.created)  \(i.principal.padding(toLength: 13, withPad: " ", startingAt: 0)) \(i.purpose.padding(toLength: 9, withPad: " ", startingAt: 0)) \(String(i.groups).leftPad(6))")
                }
            }
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a result's metadata (nothing is decrypted).")
        @OptionGroup var options: VaultOptions
        @OptionGroup var purpose: PurposeOption
        @Argument(help: "Result id.") var id: String

        func run() throws {
            try runCommand {
                let vault = try options.open(lock: .shared, purpose: purpose.or("HSYSADMIN"))
                let store = ResultStore(vault: vault)
                let dataset = try store.dataset(of: id)
                let info = try vault.perform(AuditAction.resultsRead, resource: AuditResource(dataset: dataset, result: id)) { try store.info(id) }
                if options.json { try Console.json(info); return }
                Console.out("Result      \(info.id)")
                Console.out("Dataset     \(info.dataset) generation \(info.generation), \(info.shards) shards")
                Console.out("Created     \(info.created) by \(info.principal) for \(info.purpose)")
                Console.out("Groups      \(info.groups) (\(info.suppressed) suppressed under \(info.minCell) patients)")
                Console.out("Spec        SHA-256 \(info.specSha256)")
                Console.out("Sealed      \(info.sealed.file), \(Console.bytes(info.sealed.size)), KEK v\(info.sealed.kekVersion), signing v\(info.sealed.signingVersion)")
            }
        }
    }

    struct Reveal: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Decrypt a result for a principal the policy allows to reveal it; the reveal is audited.")
        @OptionGroup var options: VaultOptions
        @OptionGroup var purpose: PurposeOption
        @Argument(help: "Result id.") var id: String
        @Option(help: "json or csv.") var format: String = "json"
        @Flag(help: "Indent the JSON.") var pretty = false

        func validate() throws {
            guard ["json", "csv"].contains(format) else { throw ValidationError("--format must be json or csv") }
        }

        func run() throws {
            try runCommand {
                let probe = try options.open(lock: .shared, purpose: purpose.or("HSYSADMIN"))
                let store = ResultStore(vault: probe)
                let dataset = try store.dataset(of: id)
                // The purpose of a reveal defaults to the purpose the result was computed for.
                let vault = purpose.purpose == nil ? try options.open(lock: .shared, purpose: try store.purposeHint(id)) : probe
                let bytes = try vault.perform(AuditAction.reveal, resource: AuditResource(dataset: dataset, result: id)) { () -> [UInt8] in
                    let revealStore = ResultStore(vault: vault)
                    let info = try revealStore.info(id)
                    try vault.audit.append(AuditEvent(action: AuditAction.resultDecrypt,
                                                      resource: AuditResource(dataset: dataset, generation: info.generation, result: id,
                                                                              key: "\(dataset)/kek", keyVersion: info.sealed.kekVersion)))
                    return try revealStore.reveal(info)
                }
                if format == "csv" {
                    FileHandle.standardOutput.write(Data(try ResultStore.csv(fromJSON: bytes).utf8))
                } else if pretty, let object = try? JSONSerialization.jsonObject(with: Data(bytes)) {
                    let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
                    FileHandle.standardOutput.write(data + Data([0x0A]))
                } else {
                    FileHandle.standardOutput.write(Data(bytes + [0x0A]))
                }
            }
        }
    }
}

/// A worker process: one analysis task, read from standard input, answered on standard
/// output. Started by `analyze --isolation process`; not for direct use.
struct Worker: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Serve analysis tasks from standard input, each in a child process of its own (internal).", shouldDisplay: false)

    func run() throws {
        let status = Self.serve()
        if status != 0 { throw ExitCode(status) }
    }

    /// Serves tasks until told to stop; returns the exit status.
    static func serve() -> Int32 {
        do {
            // A fork server: hardened before anything secret arrives, one child per task.
            try WorkerServer.serve()
            return 0
        } catch let error as VaultError {
            Console.error(error.description)
            return error.code.exitStatus
        } catch {
            Console.error("\(error)")
            return 70
        }
    }
}
