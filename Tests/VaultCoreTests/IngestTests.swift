import Foundation
import Testing
import VaultCrypto
@testable import VaultCore

@Suite("Ingest and verify")
struct IngestTests {
    func newVault() throws -> (TemporaryDirectory, Vault) {
        let dir = TemporaryDirectory("vault")
        return (dir, try Vault.initialize(at: dir.path))
    }

    @Test("the Synthea CSV sample ingests with the published counts and verifies, shallow and deep",
          .enabled(if: CoreTestData.available, "../shared/testdata is absent: skipped the Synthea CSV sample ingest"))
    func syntheaSample() throws {
        let (dir, vault) = try newVault()
        defer { withExtendedLifetime(dir) {} }
        let report = try Ingestor(vault: vault).ingest(dataset: "synthea", format: .syntheaCSV, paths: [CoreTestData.syntheaCSV!],
                                                       shards: 4, replace: false)
        #expect(report.records.patients == 59)
        #expect(report.records.conditions == 1_534)
        #expect(report.records.observations == 21_697)
        #expect(report.records.medications == 1_772)
        #expect(report.records.encounters == 2_590)
        #expect(report.records.procedures == 4_637)
        #expect(report.records.immunizations == 891)
        let shallow = Verifier(vault: vault).verify(dataset: "synthea", deep: false)
        #expect(shallow.ok, "\(shallow.problems) \(shallow.shards.filter { !$0.ok })")
        let deep = Verifier(vault: vault).verify(dataset: "synthea", deep: true)
        #expect(deep.ok, "\(deep.problems) \(deep.shards.filter { !$0.ok })")

        // Nothing identifying or clinical from the input can be found in the vault's files.
        let needles = ["593aaa05-d864-1df7-5b96-155fbdb19f28", "ac71ad72-4172-803c-4e82-448f043d8db3", "Vela532", "Maude482",
                       "999-75-6624", "568 Hills Branch", "Closed fracture of hip", "359817006", "Body Height", "Ibuprofen"]
        #expect(filesContaining(needles, under: dir.path).isEmpty)
    }

    @Test("tiny input: every record lands in the shard of its patient and counts add up")
    func partitioning() throws {
        let (vaultDir, vault) = try newVault()
        defer { withExtendedLifetime(vaultDir) {} }
        let input = TemporaryDirectory("input")
        try TinySynthea.write(to: input.path, patients: 40)
        let report = try Ingestor(vault: vault).ingest(dataset: "tiny", format: .syntheaCSV, paths: [input.path], shards: 5, replace: false)
        #expect(report.records.patients == 40 && report.records.observations == 80 && report.records.conditions == 40)
        let manifest = try DatasetCatalog(vault: vault).manifest("tiny")
        let kek = try vault.keyring.material(dataset: "tiny", kind: .kek, version: manifest.kek.version)
        var patients = 0
        for entry in manifest.shards {
            let path = vault.layout.datasetDirectory("tiny") + "/" + manifest.generationDirectory + "/" + entry.file
            let decoded = try ShardReader.decrypt(path: path, expected: ShardExpectation(vaultId: vault.id, dataset: "tiny", generation: 1,
                                                                                        shardCount: 5, entry: entry, schemaId: ColumnarCodec.schemaId), kek: kek)
            // Each patient has exactly one condition, two observations, etc. in the same shard.
            #expect(decoded.counts.conditions == decoded.counts.patients)
            #expect(decoded.counts.observations == 2 * decoded.counts.patients)
            patients += decoded.counts.patients
        }
        #expect(patients == 40)
    }

    @Test("several Synthea folders make one dataset; a patient in two of them is refused and nothing is published")
    func severalFolders() throws {
        let (vaultDir, vault) = try newVault()
        defer { withExtendedLifetime(vaultDir) {} }
        let first = TemporaryDirectory("first"), second = TemporaryDirectory("second")
        _ = try SyntheaGenerator(patients: 30, seed: 1).write(to: URL(fileURLWithPath: first.path + "/out"))
        _ = try SyntheaGenerator(patients: 20, seed: 2).write(to: URL(fileURLWithPath: second.path + "/out"))
        let report = try Ingestor(vault: vault).ingest(dataset: "both", format: .syntheaCSV, paths: [first.path + "/out", second.path + "/out"],
                                                       shards: 3, replace: false)
        #expect(report.records.patients == 50)
        #expect(Verifier(vault: vault).verify(dataset: "both", deep: true).ok)

        #expect {
            try Ingestor(vault: vault).ingest(dataset: "twice", format: .syntheaCSV, paths: [first.path + "/out", first.path + "/out"],
                                              shards: 3, replace: false)
        } throws: { error in
            let e = error as? VaultError
            return e?.message == "duplicate patient id" && e?.location?.contains("patients.csv") == true
        }
        #expect(!FileManager.default.fileExists(atPath: vault.layout.datasetDirectory("twice") + "/manifest.json"))
        // A folder missing a file is named before anything is read.
        try FileManager.default.removeItem(atPath: second.path + "/out/procedures.csv")
        #expect {
            try Ingestor(vault: vault).ingest(dataset: "broken", format: .syntheaCSV, paths: [first.path + "/out", second.path + "/out"],
                                              shards: 3, replace: false)
        } throws: { error in
            (error as? VaultError)?.location == second.path + "/out" && "\(error)".contains("procedures.csv")
        }
    }

    @Test("each input file is read once, front to back: named pipes can stand in for the CSV files")
    func namedPipes() throws {
        let (vaultDir, vault) = try newVault()
        defer { withExtendedLifetime(vaultDir) {} }
        let plain = TemporaryDirectory("plain"), pipes = TemporaryDirectory("pipes")
        _ = try SyntheaGenerator(patients: 25, seed: 9).write(to: URL(fileURLWithPath: plain.path + "/out"))
        let names = ["patients", "conditions", "observations", "medications", "encounters", "procedures", "immunizations"]
        var feeders: [Thread] = []
        for name in names {
            let pipe = pipes.path + "/\(name).csv"
            #expect(mkfifo(pipe, 0o600) == 0)
            let source = plain.path + "/out/\(name).csv"
            let feeder = Thread {
                // Blocks until ingest opens the pipe, like `zstd -dc file.zst > pipe`.
                guard let data = FileManager.default.contents(atPath: source), let out = FileHandle(forWritingAtPath: pipe) else { return }
                out.write(data)
                try? out.close()
            }
            feeder.start()
            feeders.append(feeder)
        }
        let report = try Ingestor(vault: vault).ingest(dataset: "piped", format: .syntheaCSV, paths: [pipes.path], shards: 2, replace: false)
        let direct = try Ingestor(vault: vault).ingest(dataset: "direct", format: .syntheaCSV, paths: [plain.path + "/out"], shards: 2, replace: false)
        #expect(report.records == direct.records && report.records.patients == 25)
    }

    @Test("re-ingesting a name needs --replace; a replace makes a new generation and removes the old one")
    func replaceGenerations() throws {
        let (vaultDir, vault) = try newVault()
        defer { withExtendedLifetime(vaultDir) {} }
        let input = TemporaryDirectory("input")
        try TinySynthea.write(to: input.path)
        let ingestor = Ingestor(vault: vault)
        _ = try ingestor.ingest(dataset: "d", format: .syntheaCSV, paths: [input.path], shards: 2, replace: false)
        #expect(throws: VaultError.self) { _ = try ingestor.ingest(dataset: "d", format: .syntheaCSV, paths: [input.path], shards: 2, replace: false) }
        let second = try ingestor.ingest(dataset: "d", format: .syntheaCSV, paths: [input.path], shards: 3, replace: true)
        #expect(second.generation == 2)
        #expect(!FileManager.default.fileExists(atPath: vault.layout.datasetDirectory("d") + "/g000001"))
        let manifest = try DatasetCatalog(vault: vault).manifest("d")
        #expect(manifest.previousManifestSha256 != nil)
        #expect(Verifier(vault: vault).verify(dataset: "d", deep: true).ok)
    }

    struct BadInput: Sendable, CustomStringConvertible {
        var name: String
        var file: String
        var content: String?
        var expectedLocation: String
        var description: String { name }
    }

    static let badInputs: [BadInput] = [
        BadInput(name: "malformed row", file: "conditions.csv",
                 content: "START,STOP,PATIENT,ENCOUNTER,CODE,DESCRIPTION\n2010-01-01,,\(TinySynthea.patientId(0)),e,1\n",
                 expectedLocation: "conditions.csv:2"),
        BadInput(name: "unknown column", file: "immunizations.csv", content: "DATE,PATIENT,ENCOUNTER,CODE,DESCRIPTION,BASE_COST,SURPRISE\n",
                 expectedLocation: "immunizations.csv:1 field 'SURPRISE'"),
        BadInput(name: "bad date", file: "conditions.csv",
                 content: "START,STOP,PATIENT,ENCOUNTER,CODE,DESCRIPTION\n2010-13-01,,\(TinySynthea.patientId(0)),e,1,x\n",
                 expectedLocation: "conditions.csv:2 field 'START'"),
        BadInput(name: "record of a patient that does not exist", file: "medications.csv",
                 content: "START,STOP,PATIENT,PAYER,ENCOUNTER,CODE,DESCRIPTION,BASE_COST,PAYER_COVERAGE,DISPENSES,TOTALCOST,REASONCODE,REASONDESCRIPTION\n2015-05-05T10:00:00Z,,\(TinySynthea.patientId(0)),p,e,1,x,1,0,1,1,,\n2015-05-05T10:00:00Z,,no-such-patient,p,e,1,x,1,0,1,1,,\n",
                 expectedLocation: "medications.csv:3 field 'PATIENT'"),
        BadInput(name: "numeric observation that is not a number", file: "observations.csv",
                 content: "DATE,PATIENT,ENCOUNTER,CATEGORY,CODE,DESCRIPTION,VALUE,UNITS,TYPE\n2015-05-05T10:00:00Z,\(TinySynthea.patientId(1)),e,lab,4548-4,A1c,seven,%,numeric\n",
                 expectedLocation: "observations.csv:2 field 'VALUE'"),
        BadInput(name: "missing file", file: "procedures.csv", content: nil, expectedLocation: ""),
    ]

    @Test("bad input gets an error naming file, line and field, and the existing dataset is not damaged", arguments: badInputs)
    func badInput(_ bad: BadInput) throws {
        let (vaultDir, vault) = try newVault()
        defer { withExtendedLifetime(vaultDir) {} }
        let good = TemporaryDirectory("good")
        try TinySynthea.write(to: good.path)
        let ingestor = Ingestor(vault: vault)
        _ = try ingestor.ingest(dataset: "d", format: .syntheaCSV, paths: [good.path], shards: 2, replace: false)
        let before = try FileIO.readAll(vault.layout.datasetDirectory("d") + "/" + ManifestFile.name)

        let badDir = TemporaryDirectory("bad")
        try TinySynthea.write(to: badDir.path, overrides: bad.content.map { [bad.file: $0] } ?? [:])
        if bad.content == nil { try FileManager.default.removeItem(atPath: badDir.path + "/" + bad.file) }
        do {
            _ = try ingestor.ingest(dataset: "d", format: .syntheaCSV, paths: [badDir.path], shards: 2, replace: true)
            Issue.record("bad input was accepted")
        } catch let error as VaultError {
            if bad.content == nil {
                #expect(error.code == .noInput)
                #expect(error.message.contains(bad.file))
            } else {
                #expect(error.code == .dataError)
                #expect(error.location?.hasSuffix(bad.expectedLocation) == true, "location was \(error.location ?? "nil")")
            }
        }
        // The existing generation is intact and nothing half-ingested is visible.
        #expect(try FileIO.readAll(vault.layout.datasetDirectory("d") + "/" + ManifestFile.name) == before)
        #expect(Verifier(vault: vault).verify(dataset: "d", deep: true).ok)
        let leftovers = try FileIO.listDirectory(vault.layout.datasetDirectory("d")).filter { $0.hasPrefix(".staging") }
        #expect(leftovers.isEmpty)
    }

    @Test("verify detects a swapped, deleted, foreign or extra shard and names it")
    func shardAttacks() throws {
        let (vaultDir, vault) = try newVault()
        defer { withExtendedLifetime(vaultDir) {} }
        let input = TemporaryDirectory("input")
        try TinySynthea.write(to: input.path, patients: 30)
        let ingestor = Ingestor(vault: vault)
        _ = try ingestor.ingest(dataset: "a", format: .syntheaCSV, paths: [input.path], shards: 3, replace: false)
        _ = try ingestor.ingest(dataset: "b", format: .syntheaCSV, paths: [input.path], shards: 3, replace: false)
        let gen = vault.layout.datasetDirectory("a") + "/g000001"
        let s0 = gen + "/shard-00000.svs", s1 = gen + "/shard-00001.svs"
        let original0 = try FileIO.readAll(s0), original1 = try FileIO.readAll(s1)
        func failing() -> [String] {
            let r = Verifier(vault: vault).verify(dataset: "a", deep: false)
            return r.shards.filter { !$0.ok }.map(\.shard) + r.problems
        }
        #expect(failing().isEmpty)

        // Swap two shards.
        try Data(original1).write(to: URL(fileURLWithPath: s0))
        try Data(original0).write(to: URL(fileURLWithPath: s1))
        #expect(Set(failing()) == [s0, s1])

        // Delete one.
        try Data(original1).write(to: URL(fileURLWithPath: s1))
        try FileManager.default.removeItem(atPath: s0)
        #expect(failing() == [s0])

        // Copy a shard from another dataset in its place.
        try FileManager.default.copyItem(atPath: vault.layout.datasetDirectory("b") + "/g000001/shard-00000.svs", toPath: s0)
        #expect(failing() == [s0])

        // An extra file.
        try Data(original0).write(to: URL(fileURLWithPath: s0))
        try Data(original0).write(to: URL(fileURLWithPath: gen + "/shard-00003.svs"))
        #expect(failing().count == 1 && failing()[0].contains("shard-00003.svs"))
        try FileManager.default.removeItem(atPath: gen + "/shard-00003.svs")
        #expect(failing().isEmpty)
    }

    @Test("an altered or replayed manifest is rejected")
    func manifestAttacks() throws {
        let (vaultDir, vault) = try newVault()
        defer { withExtendedLifetime(vaultDir) {} }
        let input = TemporaryDirectory("input")
        try TinySynthea.write(to: input.path, patients: 10)
        _ = try Ingestor(vault: vault).ingest(dataset: "a", format: .syntheaCSV, paths: [input.path], shards: 2, replace: false)
        _ = try Ingestor(vault: vault).ingest(dataset: "b", format: .syntheaCSV, paths: [input.path], shards: 2, replace: false)
        let path = vault.layout.datasetDirectory("a") + "/" + ManifestFile.name
        let original = try FileIO.readAll(path)
        var text = String(decoding: original, as: UTF8.self)
        text = text.replacingOccurrences(of: "\"patients\":10", with: "\"patients\":11")
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        #expect(!Verifier(vault: vault).verify(dataset: "a", deep: false).ok)
        // Manifest of dataset b presented as a's: signed under b's key, so a's key rejects it.
        try Data(try FileIO.readAll(vault.layout.datasetDirectory("b") + "/" + ManifestFile.name)).write(to: URL(fileURLWithPath: path))
        #expect(!Verifier(vault: vault).verify(dataset: "a", deep: false).ok)
        try Data(original).write(to: URL(fileURLWithPath: path))
        #expect(Verifier(vault: vault).verify(dataset: "a", deep: false).ok)
    }

    @Test("init refuses to overwrite a vault; the root key file is mode 0600; the keyring holds no key in the clear")
    func initSafety() throws {
        let (dir, vault) = try newVault()
        defer { withExtendedLifetime(dir) {} }
        #expect(throws: VaultError.self) { try Vault.initialize(at: dir.path) }
        let attributes = try FileManager.default.attributesOfItem(atPath: vault.layout.keys + "/root.key")
        #expect((attributes[.posixPermissions] as? Int) == 0o600)
        try vault.keyring.ensureDatasetKeys("x")
        try vault.keyring.save()
        let kek = try vault.keyring.material(dataset: "x", kind: .kek, version: 1).unsafeExportedBytes()
        let keyring = try FileIO.readAll(vault.layout.keys + "/keyring.json")
        #expect(!Data(keyring).contains(Data(kek)))
        #expect(!String(decoding: keyring, as: UTF8.self).contains(Data(kek).base64EncodedString()))
        // Reopening works and gives the same key.
        let reopened = try Vault.open(at: dir.path)
        #expect(try reopened.keyring.material(dataset: "x", kind: .kek, version: 1).unsafeExportedBytes() == kek)
    }

    @Test("CSV reader handles quotes, doubled quotes, embedded newlines and CRLF")
    func csvReader() throws {
        let dir = TemporaryDirectory()
        let path = dir.path + "/t.csv"
        try "a,b,c\r\n\"x, y\",\"he said \"\"hi\"\"\",\"multi\nline\"\r\nlast,,\n".write(toFile: path, atomically: true, encoding: .utf8)
        let csv = try CSVReader(path: path, blockSize: 8)
        #expect(try csv.next())
        #expect((0..<3).map { csv.string($0) } == ["a", "b", "c"])
        #expect(try csv.next())
        #expect((0..<3).map { csv.string($0) } == ["x, y", "he said \"hi\"", "multi\nline"])
        #expect(try csv.next())
        #expect(csv.line == 4)
        #expect((0..<3).map { csv.string($0) } == ["last", "", ""])
        #expect(try !csv.next())
    }

    @Test("dates and times parse to UTC")
    func times() {
        #expect(ClinicalTime.days(Array("1970-01-02".utf8)) == 1)
        #expect(ClinicalTime.days(Array("1969-12-31".utf8)) == -1)
        #expect(ClinicalTime.seconds(Array("2000-03-01T00:00:00Z".utf8)) == 951_868_800)
        #expect(ClinicalTime.seconds(Array("2000-03-01T01:00:00+01:00".utf8)) == 951_868_800)
        #expect(ClinicalTime.seconds(Array("2000-03-01T00:00:00.123-00:00".utf8)) == 951_868_800)
        #expect(ClinicalTime.seconds(Array("2000-02-30x".utf8)) == nil)
        #expect(ClinicalTime.seconds(Array("2000-13-01".utf8)) == nil)
    }

    @Test("a manifest signed with the KEK (or any key but the dataset's signing key) is rejected")
    func manifestSignedWithOtherKeys() throws {
        let (vaultDir, vault) = try newVault()
        defer { withExtendedLifetime(vaultDir) {} }
        let input = TemporaryDirectory("input")
        try TinySynthea.write(to: input.path, patients: 8)
        _ = try Ingestor(vault: vault).ingest(dataset: "a", format: .syntheaCSV, paths: [input.path], shards: 2, replace: false)
        _ = try Ingestor(vault: vault).ingest(dataset: "b", format: .syntheaCSV, paths: [input.path], shards: 2, replace: false)
        let path = vault.layout.datasetDirectory("a") + "/" + ManifestFile.name
        let original = try FileIO.readAll(path)
        let (body, _) = try ManifestFile.split(original, path: path)
        for (keyDataset, kind) in [("a", KeyKind.kek), ("a", .partition), ("b", .signing)] {
            let key = try vault.keyring.material(dataset: keyDataset, kind: kind, version: 1)
            for claimedId in [Keyring.keyId(keyDataset, kind), "a/signing"] {
                var text = String(decoding: body, as: UTF8.self)
                text = text.replacingOccurrences(of: "\"signing\":{\"id\":\"a/signing\"", with: "\"signing\":{\"id\":\"\(claimedId)\"")
                let newBody = Array(text.utf8)
                let mac = try HMACSHA256.authenticate(key: key, ManifestFile.macInput(newBody))
                let signature = "{\"alg\":\"HMAC-SHA256\",\"keyId\":\"\(claimedId)\",\"keyVersion\":1,\"mac\":\"\(Hex.encode(mac))\"}"
                try Data(newBody + [10] + Array(signature.utf8) + [10]).write(to: URL(fileURLWithPath: path))
                #expect(throws: VaultError.self, "signed with \(keyDataset)/\(kind.rawValue), claiming \(claimedId)") {
                    _ = try ManifestFile.load(path, dataset: "a", vault: vault)
                }
                #expect(!Verifier(vault: vault).verify(dataset: "a", deep: true).ok)
            }
        }
        try Data(original).write(to: URL(fileURLWithPath: path))
        #expect(Verifier(vault: vault).verify(dataset: "a", deep: true).ok)
        // Another dataset's manifest under this name is refused by datasets show too.
        try Data(try FileIO.readAll(vault.layout.datasetDirectory("b") + "/" + ManifestFile.name)).write(to: URL(fileURLWithPath: path))
        #expect(throws: VaultError.self) { _ = try DatasetCatalog(vault: vault).manifest("a") }
    }

    @Test("an edited keyring entry (dataset, state, version) does not unwrap or does not load")
    func keyringTamper() throws {
        let (vaultDir, vault) = try newVault()
        defer { withExtendedLifetime(vaultDir) {} }
        try vault.keyring.ensureDatasetKeys("a")
        try vault.keyring.ensureDatasetKeys("b")
        try vault.keyring.save()
        let path = vault.layout.keys + "/keyring.json"
        let original = try FileIO.readAll(path)
        func edited(_ transform: (inout [String: Any]) -> Void) throws -> Vault {
            var json = try JSONSerialization.jsonObject(with: Data(original)) as! [String: Any]
            var keys = json["keys"] as! [[String: Any]]
            transform(&keys[0])
            json["keys"] = keys
            try JSONSerialization.data(withJSONObject: json).write(to: URL(fileURLWithPath: path))
            return try Vault.open(at: vaultDir.path)
        }
        // Moving a's KEK to dataset b: the id no longer matches, refused at load.
        #expect(throws: VaultError.self) { _ = try edited { $0["dataset"] = "b" } }
        // Changing its state: the wrap no longer authenticates.
        let stateEdited = try edited { $0["state"] = "decrypt-only" }
        #expect(throws: VaultError.self) { _ = try stateEdited.keyring.material(dataset: "a", kind: .kek, version: 1) }
        // Out-of-range version: refused at load, no crash.
        #expect(throws: VaultError.self) { _ = try edited { $0["version"] = -1 } }
        try Data(original).write(to: URL(fileURLWithPath: path))
        #expect(try Vault.open(at: vaultDir.path).keyring.material(dataset: "a", kind: .kek, version: 1).count == 32)
    }

    @Test("default shard count: at least 4, one per 384 MiB of input, at most 4,096; the benchmark harness, which feeds ingest through pipes of no size, uses the same rule")
    func defaultShardCount() throws {
        let perShard = Ingestor.defaultInputBytesPerShard
        #expect(perShard == 384 << 20)
        #expect(Ingestor.defaultShardCount(inputBytes: 0) == 4)
        #expect(Ingestor.defaultShardCount(inputBytes: 4 * perShard) == 4)
        #expect(Ingestor.defaultShardCount(inputBytes: 10 * perShard + 1) == 11)
        #expect(Ingestor.defaultShardCount(inputBytes: 1 << 50) == 4096)
        let harness = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Benchmarks/harness.py")
        let text = try String(contentsOf: harness, encoding: .utf8)
        #expect(text.contains("per_shard = \(perShard >> 20) << 20") && text.contains("max(4, min(4096,"),
                "Benchmarks/harness.py's default_shards no longer matches Ingestor.defaultShardCount")
    }
}
