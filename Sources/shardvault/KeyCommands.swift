import ArgumentParser
import Foundation
import VaultCore

struct Keys: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List, rotate, rewrap, retire and destroy keys, and show which data uses which key version.",
        discussion: """
        Every command is decided by the policy (keys.read, keys.rotate, keys.rewrap, keys.retire, keys.destroy) and \
        audited before it acts. Killed at any point, the same command run again finishes the work. \
        See docs/key-lifecycle.md.
        """,
        subcommands: [List.self, Usage.self, Rotate.self, Rewrap.self, Retire.self, Destroy.self])

    struct DatasetOption: ParsableArguments {
        @Option(help: "Dataset name.") var dataset: String
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Every key: id, kind, version, state, created, last used, encryptions, and how many files reference it.")
        @OptionGroup var options: VaultOptions
        @OptionGroup var purpose: PurposeOption
        @Option(help: "Only this dataset's keys.") var dataset: String?

        struct Row: Encodable {
            var id: String
            var kind: String
            var version: Int
            var state: String
            var created: String?
            var lastUsed: String?
            var destroyed: String?
            var uses: Int?
            /// Files (shards, results, manifest) referencing the version; for the root key, the keyring entries it wraps.
            var references: Int?
            var advice: String?
        }

        func run() throws {
            try runCommand {
                let vault = try options.open(lock: .shared, purpose: purpose.or("HSYSADMIN"))
                let rows: [Row] = try vault.perform(AuditAction.keysRead, resource: AuditResource(dataset: dataset)) {
                    let records = vault.keyring.records.filter { dataset == nil || $0.dataset == dataset }
                    var usage: [String: KeyUsage?] = [:]
                    for name in Set(records.map(\.dataset)) { usage[name] = try? KeyLifecycle(vault: vault).usage(name) }
                    var rows: [Row] = []
                    if dataset == nil {
                        rows.append(Row(id: "root", kind: "root", version: vault.keyring.rootVersion, state: "active", created: nil,
                                        references: vault.keyring.records.filter { $0.wrapped != nil }.count))
                        rows.append(Row(id: "audit", kind: "checkpoint", version: vault.audit.key.version, state: "active", created: nil))
                    }
                    for r in records.sorted(by: { ($0.dataset, $0.kind.rawValue, $0.version) < ($1.dataset, $1.kind.rawValue, $1.version) }) {
                        rows.append(Row(id: r.id, kind: r.kind.rawValue, version: r.version, state: r.state.rawValue, created: r.created,
                                        lastUsed: r.lastUsed, destroyed: r.destroyed, uses: r.uses,
                                        references: (usage[r.dataset] ?? nil)?.count(r.kind, r.version), advice: KeyLimits.advice(r)))
                    }
                    return rows
                }
                if options.json { try Console.json(rows); return }
                Console.out("KEY                          KIND        VER  STATE         USES  REFS  CREATED                   LAST USED")
                for r in rows {
                    Console.out("\(r.id.pad(28)) \(r.kind.pad(10)) \(String(r.version).leftPad(4))  \(r.state.pad(12)) \((r.uses.map(String.init) ?? "-").leftPad(5)) \((r.references.map(String.init) ?? "-").leftPad(5))  \((r.created ?? "-").pad(25)) \(r.lastUsed ?? r.destroyed.map { "destroyed \($0)" } ?? "-")")
                    if let advice = r.advice { Console.out("  ! \(r.id) v\(r.version): \(advice)") }
                }
                if dataset == nil { Console.out("Output keys (one per analysis job) live in memory only and are never stored.") }
            }
        }
    }

    struct Usage: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Which shards, results and manifest use which key versions.")
        @OptionGroup var options: VaultOptions
        @OptionGroup var purpose: PurposeOption
        @OptionGroup var target: DatasetOption
        @Option(help: "Only files using this version.") var version: Int?

        func run() throws {
            try runCommand {
                let vault = try options.open(lock: .shared, purpose: purpose.or("HSYSADMIN"))
                var usage = try vault.perform(AuditAction.keysRead, resource: AuditResource(dataset: target.dataset)) {
                    try KeyLifecycle(vault: vault).usage(target.dataset)
                }
                if let version { usage.references = usage.references.filter { $0.version == version } }
                if options.json { try Console.json(usage); return }
                var summary: [String: Int] = [:]
                for r in usage.references { summary["\(r.kind.rawValue) v\(r.version)", default: 0] += 1 }
                for (key, n) in summary.sorted(by: { $0.key < $1.key }) { Console.out("\(target.dataset)/\(key): \(n) files") }
                for r in usage.references { Console.out("  \(r.file.pad(40)) \(r.kind.rawValue) v\(r.version)") }
            }
        }
    }

    struct Rotate: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Make a new key version active.",
            discussion: """
            --kek: a new KEK version; older ones become decrypt-only; then 'keys rewrap' moves every shard to it. \
            --signing: a new signing key version, and every shard, result and the manifest re-signed with it, without \
            decrypting anything. --data: every shard re-encrypted under a fresh data key into a new generation. \
            --root (no --dataset): every key re-wrapped under a new root key, and the old root key wiped.
            """)
        @OptionGroup var options: VaultOptions
        @OptionGroup var purpose: PurposeOption
        @Option(help: "Dataset name (all but --root).") var dataset: String?
        @Flag(help: "Rotate the dataset's key-encryption key.") var kek = false
        @Flag(help: "Rotate the dataset's signing key and re-sign everything.") var signing = false
        @Flag(help: "Re-encrypt every shard of the dataset under fresh data keys (a new generation).") var data = false
        @Flag(help: "Rotate the vault root key.") var root = false

        func validate() throws {
            guard [kek, signing, data, root].filter({ $0 }).count == 1 else {
                throw ValidationError("give exactly one of --kek, --signing, --data or --root")
            }
            if root && dataset != nil { throw ValidationError("--root rotates the vault's root key: give no --dataset") }
            if !root && dataset == nil { throw ValidationError("--dataset is required with --kek, --signing and --data") }
        }

        func run() throws {
            try runCommand {
                let vault = try options.open(lock: .exclusive, purpose: purpose.or("HSYSADMIN"))
                if root {
                    let (old, new) = try vault.perform(AuditAction.keysRotate, resource: AuditResource(vault: vault.idHex, key: "root")) {
                        try KeyLifecycle(vault: vault).rotateRoot()
                    }
                    if options.json {
                        struct Out: Encodable { var oldVersion: Int; var newVersion: Int; var keys: Int }
                        try Console.json(Out(oldVersion: old, newVersion: new, keys: vault.keyring.records.filter { $0.wrapped != nil }.count))
                        return
                    }
                    Console.out("Rotated the root key: version \(new) wraps \(vault.keyring.records.filter { $0.wrapped != nil }.count) keys; version \(old) was wiped.")
                    return
                }
                guard let dataset else { return }
                let resource = AuditResource(dataset: dataset, key: "\(dataset)/\(signing ? KeyKind.signing.rawValue : KeyKind.kek.rawValue)")
                if kek {
                    let record = try vault.perform(AuditAction.keysRotate, resource: resource) {
                        try KeyLifecycle(vault: vault).rotate(dataset, .kek)
                    }
                    if options.json { try Console.json(record); return }
                    Console.out("Rotated \(record.id): version \(record.version) is active; older versions are decrypt-only.")
                    Console.out("Move every shard to it with: shardvault keys rewrap --dataset \(dataset)")
                } else if signing {
                    let display = TerminalProgress("re-sign \(dataset)")
                    defer { display.finish() }
                    let (record, report) = try vault.perform(AuditAction.keysRotate, resource: resource) {
                        var lifecycle = KeyLifecycle(vault: vault)
                        if display.enabled { lifecycle.progress = { display.update(done: $0, total: $1, bytes: 0, unit: "files") } }
                        return try lifecycle.rotateSigning(dataset)
                    }
                    display.finish()
                    if options.json { try Console.json(report); return }
                    Console.out("Rotated \(record.id): version \(record.version) is active; re-signed \(report.shards) shards, \(report.results) results and the manifest (\(report.written) files written\(report.resumed ? ", resumed" : "")) in \(String(format: "%.2f", report.seconds)) s.")
                } else {
                    let display = TerminalProgress("re-encrypt \(dataset)")
                    defer { display.finish() }
                    let report = try vault.perform(AuditAction.keysRotate, resource: AuditResource(dataset: dataset, key: "\(dataset)/data")) {
                        var lifecycle = KeyLifecycle(vault: vault)
                        if display.enabled { lifecycle.progress = { display.update(done: $0, total: $1, bytes: 0) } }
                        return try lifecycle.rotateData(dataset)
                    }
                    display.finish()
                    if options.json { try Console.json(report); return }
                    Console.out(String(format: "Re-encrypted '%@' under fresh data keys: generation %d replaces %d, %d shards (%d sealed by this run%@), %@ in %.2f s.",
                                       dataset, report.generation, report.replacedGeneration, report.shards, report.sealed,
                                       report.resumed ? ", resumed" : "", Console.bytes(report.plaintextBytes), report.seconds))
                }
            }
        }
    }

    struct Destroy: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Crypto-shred a dataset: destroy all of its key material, so nothing of it can ever be read again.",
            discussion: """
            Give the dataset's name twice (--dataset D --confirm D). The destruction is on the audit log before it happens; \
            the root key is then rotated so that no earlier copy of the keyring can bring the keys back. The sealed files \
            stay; every later read fails with a 'destroyed' error (exit 65).
            """)
        @OptionGroup var options: VaultOptions
        @OptionGroup var purpose: PurposeOption
        @OptionGroup var target: DatasetOption
        @Option(help: "The dataset's name again, to confirm.") var confirm: String

        func validate() throws {
            guard confirm == target.dataset else { throw ValidationError("--confirm must repeat the dataset name ('\(target.dataset)')") }
        }

        func run() throws {
            try runCommand {
                let vault = try options.open(lock: .exclusive, purpose: purpose.or("HSYSADMIN"))
                let destroyed = try vault.perform(AuditAction.keysDestroy, resource: AuditResource(dataset: target.dataset)) {
                    try KeyLifecycle(vault: vault).destroy(target.dataset)
                }
                if options.json { try Console.json(destroyed); return }
                Console.out("Destroyed \(destroyed.count) key versions of '\(target.dataset)' (\(destroyed.map { "\($0.kind.rawValue) v\($0.version)" }.joined(separator: ", "))); the root key was rotated. The dataset can no longer be read.")
            }
        }
    }

    struct Rewrap: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Re-wrap every shard's and result's data key under the active KEK (headers and manifest only; no data is decrypted).",
            discussion: "Resumable: killed at any point, run it again. Until it finishes, reads of the dataset are refused with a message saying so.")
        @OptionGroup var options: VaultOptions
        @OptionGroup var purpose: PurposeOption
        @OptionGroup var target: DatasetOption

        func run() throws {
            try runCommand {
                let vault = try options.open(lock: .exclusive, purpose: purpose.or("HSYSADMIN"))
                let display = TerminalProgress("rewrap \(target.dataset)")
                defer { display.finish() }
                let report = try vault.perform(AuditAction.keysRewrap, resource: AuditResource(dataset: target.dataset, key: "\(target.dataset)/kek")) {
                    var lifecycle = KeyLifecycle(vault: vault)
                    if display.enabled { lifecycle.progress = { display.update(done: $0, total: $1, bytes: 0, unit: "files") } }
                    return try lifecycle.rewriteHeaders(target.dataset)
                }
                display.finish()
                if options.json { try Console.json(report); return }
                if report.written == 0 && report.manifestSha256 == nil {
                    Console.out("Nothing to do: every shard and result of '\(target.dataset)' already uses KEK version \(report.kekVersion) and signing version \(report.signingVersion).")
                } else {
                    let rate = Double(report.shards + report.results) / max(report.seconds, 1e-9)
                    Console.out(String(format: "Rewrapped '%@' under KEK version %d: %d shards, %d results, %d files written%@ in %.2f s (%.0f files/s).",
                                       target.dataset, report.kekVersion, report.shards, report.results, report.written,
                                       report.resumed ? " (resumed)" : "", report.seconds, rate))
                }
            }
        }
    }

    struct Retire: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Destroy the material of key versions below a floor, once nothing references them.",
            discussion: "Refused (exit 65, naming the files) while a shard, result or the manifest still uses such a version.")
        @OptionGroup var options: VaultOptions
        @OptionGroup var purpose: PurposeOption
        @OptionGroup var target: DatasetOption
        @Option(help: "Retire every version below this one.") var below: Int
        @Flag(help: "Retire signing key versions instead of KEK versions.") var signing = false

        func validate() throws {
            guard below >= 2 else { throw ValidationError("--below must be at least 2 (versions count from 1)") }
        }

        func run() throws {
            try runCommand {
                let vault = try options.open(lock: .exclusive, purpose: purpose.or("HSYSADMIN"))
                let kind: KeyKind = signing ? .signing : .kek
                let retired = try vault.perform(AuditAction.keysRetire, resource: AuditResource(dataset: target.dataset, key: "\(target.dataset)/\(kind.rawValue)", keyVersion: below)) {
                    try KeyLifecycle(vault: vault).retire(target.dataset, kind, below: below)
                }
                if options.json { try Console.json(retired); return }
                if retired.isEmpty {
                    Console.out("Nothing to retire: no \(target.dataset)/\(kind.rawValue) version below \(below) still has material.")
                } else {
                    Console.out("Retired \(retired.map { "\($0.id) v\($0.version)" }.joined(separator: ", ")): material destroyed.")
                }
            }
        }
    }
}

extension String {
    func pad(_ width: Int) -> String { count >= width ? self : padding(toLength: width, withPad: " ", startingAt: 0) }
}
