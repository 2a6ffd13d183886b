import Foundation
import Testing
@testable import VaultCore

/// Attacks and faults around retention, init and error reasons.
@Suite("Audit log: archive base, archive destination, denied init, redacted reasons")
struct AuditHardeningTests {
    /// A vault with small segments and `entries` entries, checkpointed.
    func vault(entries: Int) throws -> (TemporaryDirectory, Vault) {
        let dir = TemporaryDirectory("audit-hardening")
        let vault = try Vault.initialize(at: dir.path + "/vault", context: AuditContext(principal: "tester", purpose: "HSYSADMIN"),
                                         auditSegmentBytes: 4096)
        var size = try vault.audit.treeHead().size
        while size < entries {
            try vault.audit.append(AuditEvent(action: AuditAction.shardDecrypt, resource: AuditResource(dataset: "d", shard: "shard-00000.svs")))
            size += 1
        }
        try vault.audit.checkpoint()
        return (dir, vault)
    }

    func verifier(_ vault: Vault, archives: [String] = []) -> AuditVerifier {
        AuditVerifier(layout: vault.layout, verifier: vault.audit.key.verifier, macKey: vault.audit.key, archives: archives)
    }

    @Test("a base.json computed for deleted segments, without the audit key, is rejected")
    func forgedBase() throws {
        let (dir, vault) = try vault(entries: 60)
        defer { withExtendedLifetime(dir) {} }
        let segments = try AuditFiles.segments(in: vault.layout.audit)
        #expect(segments.count >= 3)
        let cut = segments[2].firstSeq
        // What an attacker can compute from public data: the frontier and chain at `cut`.
        let summary = try AuditLogReader(directory: vault.layout.audit).scan(frontiersAt: [cut])
        let at = try #require(summary.frontiers[cut])
        let forged = AuditBase(firstSeq: cut, prevLeaf: Hex.encode(at.lastLeaf), peaks: at.frontier.peaks.map(Hex.encode))
        let body = try JSONEncoder().encode(forged)
        try (body + Data("\n".utf8) + Data(String(repeating: "0", count: 64).utf8) + Data("\n".utf8))
            .write(to: URL(fileURLWithPath: vault.layout.audit + "/" + AuditBase.fileName))
        for s in segments.prefix(2) { try FileManager.default.removeItem(atPath: vault.layout.audit + "/" + s.name) }
        let folder = vault.layout.audit + "/" + AuditFiles.checkpointsFolder
        for name in try FileManager.default.contentsOfDirectory(atPath: folder) where (Int(name.prefix(12)) ?? 0) < cut {
            try FileManager.default.removeItem(atPath: folder + "/" + name)
        }
        let result = verifier(vault).verify()
        #expect(!result.ok)
        #expect(result.problem?.contains(AuditBase.fileName) == true && result.problem?.contains("does not authenticate") == true,
                "\(result.problem ?? "verified")")
    }

    @Test("archiving into the audit folder itself is refused and removes nothing")
    func archiveIntoItself() throws {
        let (dir, vault) = try vault(entries: 40)
        defer { withExtendedLifetime(dir) {} }
        let before = try AuditFiles.segments(in: vault.layout.audit).map(\.name)
        #expect(before.count >= 2)
        for destination in [vault.layout.audit, vault.layout.root + "/./audit"] {
            #expect(throws: VaultError.self) { try vault.audit.archive(to: destination) }
        }
        #expect(try AuditFiles.segments(in: vault.layout.audit).map(\.name) == before)
        #expect(verifier(vault).verify().ok)
    }

    @Test("segments an interrupted archive left behind are skipped, and archiving again finishes the job")
    func interruptedArchive() throws {
        let (dir, vault) = try vault(entries: 50)
        defer { withExtendedLifetime(dir) {} }
        let destination = dir.path + "/archive"
        let report = try vault.audit.archive(to: destination)
        let leftover = try #require(report.segments.last)
        // As if the process died before this unlink.
        try FileManager.default.copyItem(atPath: destination + "/" + leftover, toPath: vault.layout.audit + "/" + leftover)
        var result = verifier(vault).verify()
        #expect(result.ok, "\(result.problem ?? "")")
        #expect(result.firstSeq == report.firstRetainedSeq)
        try vault.audit.append(AuditEvent(action: AuditAction.auditRead))
        _ = try vault.audit.archive(to: destination)
        #expect(!FileManager.default.fileExists(atPath: vault.layout.audit + "/" + leftover))
        result = verifier(vault, archives: [destination]).verify()
        #expect(result.ok && result.firstSeq == 0, "\(result.problem ?? "")")
    }

    @Test("a denied init creates no vault and no key")
    func deniedInit() throws {
        let dir = TemporaryDirectory("audit-hardening")
        for context in [AuditContext(principal: "bad name", purpose: "HSYSADMIN"), AuditContext(principal: "ops", purpose: "NOPE")] {
            let root = dir.path + "/v-\(UUID().uuidString)"
            #expect { try Vault.initialize(at: root, context: context) } throws: { ($0 as? VaultError)?.code == .permissionDenied }
            #expect(!FileManager.default.fileExists(atPath: root + "/keys"))
        }
    }

    @Test("the audit reason of a failed request drops quoted values and the location")
    func redactedReason() throws {
        let error = VaultError(.dataError, "bad birthDate 'Aaron697' in \"Brekke496\"", location: "/in/Aaron697_Brekke496_2fa15bcc.json:1")
        let reason = AccessGate.auditReason(for: error)
        #expect(reason == "data error: bad birthDate '…' in \"…\"")
    }

    @Test("an ingest that fails on a Bundle named after its patient records an error with no trace of the name")
    func ingestErrorReason() throws {
        let (dir, vault) = try vault(entries: 3)
        defer { withExtendedLifetime(dir) {} }
        let input = dir.path + "/Aaron697_Brekke496_2fa15bcc-0000-4000-8000-000000000001.json"
        let bundle = #"{"resourceType":"Bundle","type":"transaction","entry":[{"fullUrl":"urn:uuid:1","resource":{"resourceType":"Patient","id":"p1","gender":"male","birthDate":"19x0-01-01"}}]}"#
        try bundle.write(toFile: input, atomically: true, encoding: .utf8)
        #expect(throws: VaultError.self) {
            try vault.perform(AuditAction.ingest, resource: AuditResource(dataset: "b")) {
                try Ingestor(vault: vault).ingest(dataset: "b", format: .fhirBundle, paths: [input], shards: 1, replace: false)
            }
        }
        var last: AuditEntry?
        try AuditLogReader(directory: vault.layout.audit).scan { last = $0.entry }
        let entry = try #require(last)
        #expect(entry.action == AuditAction.ingest && entry.outcome == .error)
        let text = String(decoding: entry.canonicalBytes, as: UTF8.self)
        for needle in ["Aaron697", "Brekke496", "2fa15bcc", "19x0"] { #expect(!text.contains(needle), "\(needle) in \(text)") }
        #expect(verifier(vault).verify().ok)
    }
}
