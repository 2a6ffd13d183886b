import ArgumentParser
import Foundation
import VaultCore

struct Init: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Create a vault: keys/, policies/, audit/, data/, a vault id and a root key (mode 0600).")
    @OptionGroup var options: VaultOptions
    @OptionGroup var purpose: PurposeOption
    @Option(help: ArgumentHelp("Size at which the audit log starts a new segment.", valueName: "BYTES"))
    var auditSegmentSize: Int = AuditLog.defaultSegmentLimit

    func validate() throws {
        guard auditSegmentSize >= 4096 else { throw ValidationError("--audit-segment-size must be at least 4096") }
    }

    func run() throws {
        try runCommand {
            let vault = try Vault.initialize(at: options.root, context: options.context(purpose: purpose.or("HSYSADMIN")),
                                             auditSegmentBytes: auditSegmentSize)
            struct Out: Encodable { var vaultId: String; var root: String }
            if options.json {
                try Console.json(Out(vaultId: vault.idHex, root: vault.layout.root))
            } else {
                Console.out("Initialised vault \(vault.idHex) in \(vault.layout.root)")
                Console.out("Root key: \(vault.layout.keys)/root.key (mode 0600). Keep it secret and back it up: without it nothing in this vault can be read.")
            }
        }
    }
}

struct Ingest: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Read patient data, partition it by patient, and seal it into encrypted, signed shards.",
        discussion: "PATH is a Synthea CSV folder, FHIR NDJSON files or folders, or FHIR Bundle files, folders or .tgz archives.")
    @OptionGroup var options: VaultOptions
    @OptionGroup var purpose: PurposeOption
    @Option(help: "Dataset name (a-z, 0-9, '.', '_', '-').") var dataset: String
    @Option(help: "Input format: synthea-csv, fhir-ndjson or fhir-bundle.") var format: String
    @Option(help: "Number of shards (default: at least 4, one per 384 MiB of input).") var shards: Int?
    @Flag(help: "Replace an existing dataset with a new generation.") var replace = false
    @Argument(help: "Input files or folders.") var paths: [String]

    func validate() throws {
        guard InputFormat(rawValue: format) != nil else {
            throw ValidationError("unknown --format '\(format)'; use one of: \(InputFormat.allCases.map(\.rawValue).joined(separator: ", "))")
        }
    }

    func run() throws {
        try runCommand {
            let vault = try options.open(lock: .exclusive, purpose: purpose.or("HSYSADMIN"))
            let report = try vault.perform(AuditAction.ingest, resource: AuditResource(dataset: dataset)) {
                try Ingestor(vault: vault).ingest(dataset: dataset, format: InputFormat(rawValue: format)!, paths: paths,
                                                  shards: shards, replace: replace)
            }
            for warning in report.warnings { Console.error("warning: \(warning)") }
            if options.json { try Console.json(report); return }
            Console.out("Ingested dataset '\(report.dataset)' generation \(report.generation) from \(report.format) into \(report.shards) shards")
            Console.recordCounts(report.records)
            let mbps = Double(report.inputBytes) / 1_000_000 / max(report.seconds, 1e-9)
            Console.out(String(format: "  input %@, sealed %@, %.2f s (%.1f MB/s of input)", Console.bytes(report.inputBytes),
                               Console.bytes(report.sealedBytes), report.seconds, mbps))
            if !report.skippedFiles.isEmpty {
                Console.error("Not ingested (record kinds the vault does not hold): \(report.skippedFiles.map { ($0 as NSString).lastPathComponent }.joined(separator: ", "))")
            }
        }
    }
}

struct Datasets: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "List datasets or show one.", subcommands: [List.self, Show.self])

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List datasets with their generation, shards and record counts.")
        @OptionGroup var options: VaultOptions
        @OptionGroup var purpose: PurposeOption

        func run() throws {
            try runCommand {
                let vault = try options.open(lock: .shared, purpose: purpose.or("HSYSADMIN"))
                let catalog = DatasetCatalog(vault: vault)
                let manifests = try vault.perform(AuditAction.datasetsRead) { try catalog.names().map { try catalog.manifest($0) } }
                if options.json {
                    struct Row: Encodable { var dataset: String; var generation: Int; var shards: Int; var format: String; var records: RecordCounts }
                    try Console.json(manifests.map { Row(dataset: $0.dataset, generation: $0.generation, shards: $0.shardCount, format: $0.sourceFormat, records: $0.totals) })
                    return
                }
                if manifests.isEmpty { Console.out("No datasets."); return }
                Console.out("DATASET              GEN  SHARDS  PATIENTS  RECORDS")
                for m in manifests {
                    Console.out("\(m.dataset.padding(toLength: 20, withPad: " ", startingAt: 0)) \(String(m.generation).leftPad(4)) \(String(m.shardCount).leftPad(7)) \(Console.count(m.totals.patients).leftPad(9)) \(Console.count(m.totals.total).leftPad(8))")
                }
            }
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a dataset: generation, keys, shards and record counts per kind.")
        @OptionGroup var options: VaultOptions
        @OptionGroup var purpose: PurposeOption
        @Argument(help: "Dataset name.") var name: String

        func run() throws {
            try runCommand {
                let vault = try options.open(lock: .shared, purpose: purpose.or("HSYSADMIN"))
                let manifest = try vault.perform(AuditAction.datasetsRead, resource: AuditResource(dataset: name)) {
                    try DatasetCatalog(vault: vault).manifest(name)
                }
                if options.json { try Console.json(manifest); return }
                Console.out("Dataset     \(manifest.dataset)")
                Console.out("Generation  \(manifest.generation) (created \(manifest.created), from \(manifest.sourceFormat))")
                Console.out("Shards      \(manifest.shardCount), \(Console.bytes(manifest.shards.reduce(0) { $0 + $1.size })) sealed")
                Console.out("Keys        KEK \(manifest.kek.id) v\(manifest.kek.version), signing \(manifest.signing.id) v\(manifest.signing.version)")
                Console.out("Records")
                Console.recordCounts(manifest.totals)
                Console.out("SHARD  PATIENTS   RECORDS       SIZE  KEK  SIGNING")
                for s in manifest.shards {
                    Console.out("\(String(s.index).leftPad(5)) \(Console.count(s.records.patients).leftPad(9)) \(Console.count(s.records.total).leftPad(9)) \(Console.bytes(s.size).leftPad(10)) \(("v" + String(s.kekVersion)).leftPad(4)) \(("v" + String(s.signingVersion)).leftPad(8))")
                }
            }
        }
    }
}

struct Verify: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Verify datasets: manifest signature, every shard's MAC and digests; with --deep, also decrypt every chunk.",
        discussion: "Without --deep no decryption key is used. Exits 0 when intact, 65 when anything is wrong.")
    @OptionGroup var options: VaultOptions
    @OptionGroup var purpose: PurposeOption
    @Option(help: "Verify only this dataset (default: all).") var dataset: String?
    @Flag(help: "Also unwrap each data key, check the commitment and decrypt and decode every chunk.") var deep = false

    func run() throws {
        try runCommand {
            let vault = try options.open(lock: .shared, purpose: purpose.or("HSYSADMIN"))
            let catalog = DatasetCatalog(vault: vault)
            let names = try catalog.names()
            if let dataset {
                try Vault.validateDatasetName(dataset)
                guard names.contains(dataset) else { throw VaultError(.noInput, "no dataset named '\(dataset)'", location: vault.layout.data) }
            }
            let selected = dataset.map { [$0] } ?? names
            if selected.isEmpty { try vault.perform(AuditAction.verify) {} }
            let results = try selected.map { name in
                try vault.perform(AuditAction.verify, resource: AuditResource(dataset: name)) {
                    let result = Verifier(vault: vault).verify(dataset: name, deep: deep)
                    if let failure = result.auditFailure { throw failure }
                    if !result.ok {
                        let first = result.problems.first ?? result.shards.first { !$0.ok }?.problem ?? "verification failed"
                        try vault.audit.append(AuditEvent(action: AuditAction.verify, resource: AuditResource(dataset: name, generation: result.generation),
                                                          outcome: .error, reason: first))
                    }
                    return result
                }
            }
            if options.json {
                try Console.json(results)
            } else {
                for r in results {
                    let mode = r.deep ? "deep" : "signatures"
                    if r.ok {
                        let rate = Double(r.bytesChecked) / 1_000_000 / max(r.seconds, 1e-9)
                        Console.out(String(format: "OK    %@ generation %d: %d shards, %@ (%@), %.2f s, %.0f MB/s", r.dataset, r.generation ?? 0,
                                           r.shards.count, Console.bytes(r.bytesChecked), mode, r.seconds, rate))
                    } else {
                        Console.out("FAIL  \(r.dataset)")
                        for p in r.problems { Console.error("  \(p)") }
                        for s in r.shards where !s.ok { Console.error("  \(s.problem ?? s.shard)") }
                    }
                }
                if selected.isEmpty { Console.out("No datasets to verify.") }
            }
            // Key versions near their usage bound (docs/key-lifecycle.md), on standard error.
            for record in vault.keyring.records where selected.contains(record.dataset) {
                if let advice = KeyLimits.advice(record) { Console.error("warning: \(record.id) version \(record.version): \(advice)") }
            }
            if results.contains(where: { !$0.ok }) { throw ExitCode(65) }
        }
    }
}

extension String {
    func leftPad(_ width: Int) -> String { count >= width ? self : String(repeating: " ", count: width - count) + self }
}

struct SelfTest: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "selftest",
        abstract: "Run the built-in known-answer tests, and any Wycheproof-schema vector files given.",
        discussion: """
        Vector files: AeadTest (AES-GCM), MacTest (HMAC-SHA256), HkdfTest (HKDF-SHA256), KeywrapTest (AES-KW, AES-KWP) \
        and ChunkedEncryption (Cobblestone-256). Prints passed/failed/skipped per file; exits 65 on any failure. \
        Only what a file's schema lets an implementation reject is skipped (zero-length and over-128-byte AES-GCM IVs).
        """)
    @Option(name: .customLong("vectors"), parsing: .upToNextOption, help: ArgumentHelp("Wycheproof-schema vector files to run.", valueName: "FILE"))
    var vectors: [String] = []
    @Flag(name: .customLong("json"), help: "Print machine-readable JSON on stdout.") var json = false

    struct Row: Encodable {
        var file: String
        var algorithm: String
        var passed: Int
        var failed: Int
        var skipped: Int
        var failures: [String]
        var skips: [String]
    }

    func run() throws {
        try runCommand {
            var reports = BuiltInKnownAnswers.run()
            for path in vectors {
                guard FileManager.default.fileExists(atPath: path) else {
                    throw VaultError(.noInput, "vector file does not exist", location: path)
                }
                do {
                    reports.append(try WycheproofRunner.run(file: path))
                } catch let error as VaultError {
                    throw error
                } catch {
                    throw VaultError(.dataError, "cannot run vector file: \(error)", location: path)
                }
            }
            if json {
                try Console.json(reports.map { Row(file: $0.file, algorithm: $0.algorithm, passed: $0.passed, failed: $0.failed,
                                                   skipped: $0.skipped, failures: $0.failures, skips: $0.skips) })
            } else {
                Console.out("FILE                                                PASSED  FAILED  SKIPPED")
                for r in reports {
                    let label = r.file == "built-in" ? "built-in \(r.algorithm)" : r.file
                    let name = label.count > 50 ? "..." + label.suffix(47) : label
                    Console.out("\(name.padding(toLength: 50, withPad: " ", startingAt: 0)) \(String(r.passed).leftPad(8)) \(String(r.failed).leftPad(7)) \(String(r.skipped).leftPad(8))")
                    for f in r.failures { Console.error("  FAILED \(f)") }
                }
                let failed = reports.reduce(0) { $0 + $1.failed }
                Console.out(failed == 0 ? "All known-answer tests passed." : "\(failed) known-answer test(s) FAILED.")
            }
            if reports.contains(where: { !$0.isSuccess }) { throw ExitCode(65) }
        }
    }
}

struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write deterministic synthetic Synthea-shaped CSV (patients, conditions, observations, medications, encounters, procedures, immunizations).",
        discussion: "The same --patients and --seed always give the same bytes. Codes, value ranges and per-patient record counts are modelled on a published Synthea sample; no real person is in the output.")
    @Option(help: "Number of patients.") var patients: Int
    @Option(help: "Seed for the generator.") var seed: UInt64 = 1
    @Flag(name: .customLong("json"), help: "Print machine-readable JSON on stdout.") var json = false
    @Argument(help: "Output folder (created; existing files are never overwritten).") var out: String

    func validate() throws {
        guard patients >= 0 else { throw ValidationError("--patients must not be negative") }
    }

    func run() throws {
        try runCommand {
            let started = Date()
            let summary = try SyntheaGenerator(patients: patients, seed: seed).write(to: URL(fileURLWithPath: out))
            if json { try Console.json(summary); return }
            let seconds = Date().timeIntervalSince(started)
            Console.out("Generated \(Console.count(summary.records.patients)) patients in \(out)")
            Console.recordCounts(summary.records)
            Console.out(String(format: "  %@ of CSV in %.2f s (%.0f MB/s)", Console.bytes(summary.bytesWritten), seconds,
                               Double(summary.bytesWritten) / 1e6 / max(seconds, 1e-9)))
        }
    }
}
