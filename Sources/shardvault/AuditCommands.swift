import ArgumentParser
import Foundation
import VaultCore

struct Audit: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Review the audit log: verify it, filter it, prove entries, print checkpoints, export FHIR AuditEvents.",
        discussion: "Every review command is itself recorded on the log (default purpose HCOMPL). Format: docs/audit-format.md.",
        subcommands: [Verify.self, Log.self, Show.self, Prove.self, Consistency.self, CheckpointCommand.self, PublicKey.self,
                      Export.self, Archive.self])

    /// Opens the vault, records the review request, runs `body`, writes a checkpoint.
    static func review<T>(_ options: VaultOptions, purpose: String?, action: String = AuditAction.auditRead,
                          resource: AuditResource = AuditResource(), _ body: (Vault) throws -> T) throws -> T {
        let vault = try options.open(lock: .shared, purpose: purpose ?? "HCOMPL")
        return try vault.perform(action, resource: resource) { try body(vault) }
    }

    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Re-hash the whole log, check the chain and every MAC, rebuild the Merkle tree and check every signed checkpoint.",
            discussion: "Exits 0 when intact, 65 naming the first bad entry or checkpoint.")
        @OptionGroup var options: VaultOptions
        @OptionGroup var purpose: PurposeOption
        @Option(help: ArgumentHelp("Also check the log against this saved signed checkpoint.", valueName: "FILE"))
        var fromCheckpoint: String?
        @Option(parsing: .singleValue, help: ArgumentHelp("Folder with archived segments to read as part of the log.", valueName: "DIR"))
        var archive: [String] = []

        func run() throws {
            try runCommand {
                if let fromCheckpoint, !FileManager.default.fileExists(atPath: fromCheckpoint) {
                    throw VaultError(.noInput, "checkpoint file does not exist", location: fromCheckpoint)
                }
                let vault = try options.open(lock: .shared, purpose: purpose.or("HCOMPL"))
                func check() -> AuditVerification {
                    AuditVerifier(layout: vault.layout, verifier: vault.audit.key.verifier, macKey: vault.audit.key, archives: archive)
                        .verify(fromCheckpoint: fromCheckpoint)
                }
                let result: AuditVerification
                do {
                    result = try vault.perform(AuditAction.auditVerify) {
                        try vault.audit.checkpoint() // so that the check covers this command's own entry
                        let result = check()
                        if let problem = result.problem {
                            try vault.audit.append(AuditEvent(action: AuditAction.auditVerify, outcome: .error, reason: problem))
                        }
                        return result
                    }
                } catch let error as VaultError where error.code == .dataError || error.code == .auditUnavailable {
                    // The log refuses to grow because it is damaged or cannot be written. Verifying
                    // it is the remedy, so this one review runs unrecorded (it reads only the log
                    // and its keys, never data).
                    Console.error("warning: this verification is not recorded: the audit log refuses appends (\(error.message))")
                    result = check()
                }
                if options.json {
                    try Console.json(result)
                } else if result.ok {
                    Console.out(String(format: "OK    audit log: entries %d...%d in %d segments, %d checkpoints (latest at size %d), MACs %@, %.2f s",
                                       result.firstSeq, max(result.firstSeq, result.treeSize - 1), result.segments, result.checkpoints,
                                       result.latestCheckpoint ?? 0, result.macsChecked ? "checked" : "not checked", result.seconds))
                    Console.out("      root \(result.rootHash) at size \(result.treeSize)")
                }
                for warning in result.warnings { Console.error("warning: \(warning)") }
                if let problem = result.problem {
                    if !options.json { Console.out("FAIL  audit log") }
                    Console.error("  \(problem)")
                    throw ExitCode(65)
                }
            }
        }
    }

    struct Log: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List entries, filtered; a table by default, JSON lines with --json.")
        @OptionGroup var options: VaultOptions
        @Option(help: ArgumentHelp("HL7 PurposeOfUse code of this review (default: HCOMPL).", valueName: "CODE")) var reviewPurpose: String?
        @Option(name: .customLong("principal"), help: "Only entries by this principal.") var byPrincipal: String?
        @Option(help: "Only entries about this dataset.") var dataset: String?
        @Option(help: "Only this action (a prefix such as 'shard' matches 'shard.decrypt').") var action: String?
        @Option(help: "Only entries with this purpose of use.") var purpose: String?
        @Option(help: "Only this outcome: success, denied or error.") var outcome: String?
        @Option(help: "Only entries at or after this time (RFC 3339 or YYYY-MM-DD, UTC).") var since: String?
        @Option(help: "Only entries before this time.") var until: String?
        @Option(parsing: .singleValue, help: ArgumentHelp("Folder with archived segments to include.", valueName: "DIR")) var archive: [String] = []

        func validate() throws {
            if let outcome, AuditOutcome(rawValue: outcome) == nil { throw ValidationError("--outcome must be success, denied or error") }
            if let since, AuditTime.bound(since) == nil { throw ValidationError("--since '\(since)' is not an RFC 3339 time or a date") }
            if let until, AuditTime.bound(until) == nil { throw ValidationError("--until '\(until)' is not an RFC 3339 time or a date") }
        }

        func run() throws {
            try runCommand {
                var filter = AuditFilter()
                filter.principal = byPrincipal
                filter.dataset = dataset
                filter.action = action
                filter.purpose = purpose
                filter.outcome = outcome.flatMap(AuditOutcome.init(rawValue:))
                filter.since = since.flatMap(AuditTime.bound)
                filter.until = until.flatMap(AuditTime.bound)
                let entries = try Audit.review(options, purpose: reviewPurpose) { vault in
                    var out: [AuditEntry] = []
                    try AuditLogReader(directory: vault.layout.audit, archives: archive).scan { if filter.matches($0.entry) { out.append($0.entry) } }
                    return out
                }
                if options.json {
                    var text = ""
                    for e in entries { text += String(decoding: e.canonicalBytes, as: UTF8.self) + "\n" }
                    FileHandle.standardOutput.write(Data(text.utf8))
                    return
                }
                Console.out("SEQ     TIME                         PRINCIPAL     ACTION           PURPOSE    OUTCOME  RESOURCE")
                for e in entries {
                    Console.out("\(String(e.seq).padding(toLength: 7, withPad: " ", startingAt: 0)) \(e.time)  \(e.principal.padding(toLength: 13, withPad: " ", startingAt: 0)) \(e.action.padding(toLength: 16, withPad: " ", startingAt: 0)) \(e.purpose.padding(toLength: 10, withPad: " ", startingAt: 0)) \(e.outcome.rawValue.padding(toLength: 8, withPad: " ", startingAt: 0)) \(Audit.describe(e.resource))")
                }
            }
        }
    }

    static func describe(_ r: AuditResource) -> String {
        var parts: [String] = []
        if let v = r.dataset { parts.append(v) }
        if let v = r.generation { parts.append("g\(v)") }
        if let v = r.shard { parts.append(v) }
        if let v = r.job { parts.append("job \(v)") }
        if let v = r.result { parts.append("result \(v)") }
        if let v = r.key { parts.append("key \(v)" + (r.keyVersion.map { " v\($0)" } ?? "")) }
        if let v = r.vault { parts.append("vault \(v)") }
        return parts.joined(separator: " ")
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show one entry, with its leaf hash and where it is stored.")
        @OptionGroup var options: VaultOptions
        @OptionGroup var purpose: PurposeOption
        @Argument(help: "Sequence number.") var seq: Int

        func run() throws {
            try runCommand {
                let found = try Audit.review(options, purpose: purpose.purpose) { vault in
                    var hit: ScannedEntry?
                    try AuditLogReader(directory: vault.layout.audit).scan { if $0.entry.seq == seq { hit = $0 } }
                    guard let hit else { throw VaultError(.noInput, "no entry \(seq) in the retained log") }
                    return hit
                }
                if options.json {
                    FileHandle.standardOutput.write(Data(found.entry.canonicalBytes + [0x0A]))
                    return
                }
                let e = found.entry
                Console.out("Entry      \(e.seq) (\(found.segment) line \(found.line))")
                Console.out("Time       \(e.time)")
                Console.out("Principal  \(e.principal)")
                Console.out("Action     \(e.action)")
                Console.out("Resource   \(Audit.describe(e.resource))")
                Console.out("Purpose    \(e.purpose)")
                Console.out("Outcome    \(e.outcome.rawValue)" + (e.reason.map { " (\($0))" } ?? ""))
                Console.out("Request    \(e.request)")
                Console.out("Prev       \(e.prev)")
                Console.out("Leaf hash  \(Hex.encode(found.leafHash))")
            }
        }
    }

    struct Prove: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print an RFC 6962 inclusion proof of an entry in the tree of a given size (default: the whole log, signed now).")
        @OptionGroup var options: VaultOptions
        @OptionGroup var purpose: PurposeOption
        @Argument(help: "Sequence number (leaf index).") var seq: Int
        @Option(help: "Tree size (default: the log's size, including this command's own entry).") var size: Int?
        @Option(parsing: .singleValue, help: ArgumentHelp("Folder with archived segments.", valueName: "DIR")) var archive: [String] = []

        struct Out: Encodable {
            var leafIndex: Int
            var treeSize: Int
            var rootHash: String
            var leafHash: String
            var entry: String
            var proof: [String]
            var checkpoint: String?
        }

        func run() throws {
            try runCommand {
                let out = try Audit.review(options, purpose: purpose.purpose) { vault in
                    let note = size == nil ? try vault.audit.checkpoint() : nil
                    // Without --size, the tree the printed checkpoint signed, even if another
                    // process appends meanwhile.
                    let signedSize = try note.map { try Checkpoint.parse(text: String($0[..<($0.range(of: "\n\n")?.upperBound ?? $0.endIndex)])).treeSize }
                    var entry: ScannedEntry?
                    var leaves: [[UInt8]] = []
                    let summary = try AuditLogReader(directory: vault.layout.audit, archives: archive).scan {
                        leaves.append($0.leafHash)
                        if $0.entry.seq == seq { entry = $0 }
                    }
                    guard summary.firstSeq == 0 else { throw VaultError(.noInput, "entries before \(summary.firstSeq) are archived; pass --archive DIR") }
                    let treeSize = size ?? signedSize ?? leaves.count
                    guard treeSize >= 1, treeSize <= leaves.count else { throw VaultError(.usage, "--size must be between 1 and \(leaves.count)") }
                    guard seq >= 0, seq < treeSize, let entry else { throw VaultError(.usage, "entry \(seq) is not in a tree of size \(treeSize)") }
                    let tree = Array(leaves.prefix(treeSize))
                    let proof = try MerkleTree.inclusionProof(index: seq, leafHashes: tree)
                    return Out(leafIndex: seq, treeSize: treeSize, rootHash: Hex.encode(MerkleTree.root(leafHashes: tree)),
                               leafHash: Hex.encode(entry.leafHash), entry: String(decoding: entry.entry.canonicalBytes, as: UTF8.self),
                               proof: proof.map(Hex.encode), checkpoint: note)
                }
                if options.json { try Console.json(out); return }
                Console.out("Entry \(out.leafIndex) in the tree of size \(out.treeSize)")
                Console.out("  leaf hash  \(out.leafHash)")
                Console.out("  root hash  \(out.rootHash)")
                for (i, h) in out.proof.enumerated() { Console.out("  proof[\(i)]   \(h)") }
                if let note = out.checkpoint { Console.out("Signed checkpoint:\n" + note, terminator: "") }
            }
        }
    }

    struct Consistency: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print an RFC 6962 consistency proof between two tree sizes.")
        @OptionGroup var options: VaultOptions
        @OptionGroup var purpose: PurposeOption
        @Argument(help: "Old tree size.") var oldSize: Int
        @Argument(help: "New tree size.") var newSize: Int
        @Option(parsing: .singleValue, help: ArgumentHelp("Folder with archived segments.", valueName: "DIR")) var archive: [String] = []

        struct Out: Encodable {
            var oldSize: Int
            var newSize: Int
            var oldRoot: String
            var newRoot: String
            var proof: [String]
        }

        func run() throws {
            try runCommand {
                let out = try Audit.review(options, purpose: purpose.purpose) { vault in
                    let leaves = try AuditLogReader(directory: vault.layout.audit, archives: archive).leafHashes()
                    guard oldSize >= 1, oldSize <= newSize, newSize <= leaves.count else {
                        throw VaultError(.usage, "need 1 <= OLD_SIZE <= NEW_SIZE <= \(leaves.count)")
                    }
                    let tree = Array(leaves.prefix(newSize))
                    let proof = try MerkleTree.consistencyProof(oldSize: oldSize, leafHashes: tree)
                    return Out(oldSize: oldSize, newSize: newSize, oldRoot: Hex.encode(MerkleTree.root(leafHashes: Array(tree.prefix(oldSize)))),
                               newRoot: Hex.encode(MerkleTree.root(leafHashes: tree)), proof: proof.map(Hex.encode))
                }
                if options.json { try Console.json(out); return }
                Console.out("Consistency of size \(out.oldSize) with size \(out.newSize)")
                Console.out("  old root  \(out.oldRoot)")
                Console.out("  new root  \(out.newRoot)")
                for (i, h) in out.proof.enumerated() { Console.out("  proof[\(i)]  \(h)") }
            }
        }
    }

    struct CheckpointCommand: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "checkpoint",
                                                        abstract: "Sign a checkpoint of the log now and print it (a C2SP signed note).")
        @OptionGroup var options: VaultOptions
        @OptionGroup var purpose: PurposeOption

        func run() throws {
            try runCommand {
                let note = try Audit.review(options, purpose: purpose.purpose) { vault in try vault.audit.checkpoint() }
                if options.json {
                    struct Out: Encodable { var note: String }
                    try Console.json(Out(note: note))
                } else {
                    Console.out(note, terminator: "")
                }
            }
        }
    }

    struct PublicKey: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "pubkey",
            abstract: "Print the checkpoint public key: PEM for 'openssl pkeyutl -verify -pubin', or the signed-note verifier key.")
        @OptionGroup var options: VaultOptions
        @OptionGroup var purpose: PurposeOption
        @Option(help: "pem or note.") var format: String = "pem"

        func validate() throws {
            guard ["pem", "note"].contains(format) else { throw ValidationError("--format must be pem or note") }
        }

        func run() throws {
            try runCommand {
                let key = try Audit.review(options, purpose: purpose.purpose) { vault in vault.audit.key }
                if options.json {
                    struct Out: Encodable { var origin: String; var pem: String; var verifierKey: String }
                    try Console.json(Out(origin: key.verifier.name, pem: key.publicKeyPEM, verifierKey: key.verifier.verifierKey))
                } else {
                    Console.out(format == "pem" ? key.publicKeyPEM : key.verifier.verifierKey + "\n", terminator: "")
                }
            }
        }
    }

    struct Export: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Export entries as FHIR R4 AuditEvent resources, one JSON per line (NDJSON).")
        @OptionGroup var options: VaultOptions
        @OptionGroup var purpose: PurposeOption
        @Option(help: "Export format (fhir).") var format: String = "fhir"
        @Option(help: "Only entries at or after this time (RFC 3339 or YYYY-MM-DD, UTC).") var since: String?
        @Option(help: "Only entries before this time.") var until: String?
        @Option(help: ArgumentHelp("Write to this file instead of standard output.", valueName: "FILE")) var out: String?

        func validate() throws {
            guard format == "fhir" else { throw ValidationError("--format must be fhir") }
            if let since, AuditTime.bound(since) == nil { throw ValidationError("--since '\(since)' is not an RFC 3339 time or a date") }
            if let until, AuditTime.bound(until) == nil { throw ValidationError("--until '\(until)' is not an RFC 3339 time or a date") }
        }

        func run() throws {
            try runCommand {
                var filter = AuditFilter()
                filter.since = since.flatMap(AuditTime.bound)
                filter.until = until.flatMap(AuditTime.bound)
                let text = try Audit.review(options, purpose: purpose.purpose, action: AuditAction.auditExport) { vault in
                    var text = ""
                    try AuditLogReader(directory: vault.layout.audit).scan {
                        if filter.matches($0.entry) { text += try FHIRAuditExport.line(for: $0, vaultId: vault.idHex) + "\n" }
                    }
                    return text
                }
                if let out {
                    try Data(text.utf8).write(to: URL(fileURLWithPath: out), options: .withoutOverwriting)
                } else {
                    FileHandle.standardOutput.write(Data(text.utf8))
                }
            }
        }
    }

    struct Archive: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Move every segment but the current one (and older checkpoints) to DIR; the rest still verifies.",
            discussion: "Archived files are copied unchanged and fsynced before the originals are removed. Pass --archive DIR to other audit commands to read them again.")
        @OptionGroup var options: VaultOptions
        @OptionGroup var purpose: PurposeOption
        @Option(help: ArgumentHelp("Destination folder.", valueName: "DIR")) var to: String

        func run() throws {
            try runCommand {
                let report = try Audit.review(options, purpose: purpose.purpose, action: AuditAction.auditArchive) { vault in try vault.audit.archive(to: to) }
                if options.json { try Console.json(report); return }
                if report.segments.isEmpty {
                    Console.out("Nothing to archive: only the current segment holds entries (from entry \(report.firstRetainedSeq)).")
                } else {
                    Console.out("Archived \(report.segments.count) segments and \(report.checkpoints.count) checkpoints to \(report.destination); the log now starts at entry \(report.firstRetainedSeq).")
                }
            }
        }
    }
}

extension Console {
    static func out(_ text: String, terminator: String) { print(text, terminator: terminator) }
}
