import Foundation
import Testing
@testable import VaultCore

/// Where the FHIR samples of `../shared/testdata` are, when present.
private enum FHIRSamples {
    static var bulkNDJSON: String? { existing("/patients/bulk_fhir_r4_10") }
    static var bundlesArchive: String? { existing("/patients/synthea_fhir_r4_bundles_50.tgz") }

    private static func existing(_ relative: String) -> String? {
        guard let root = CoreTestData.root else { return nil }
        let path = root + relative
        return FileManager.default.fileExists(atPath: path) ? path : nil
    }
}

/// Expected record counts computed from the input with Foundation's JSONSerialization,
/// independently of the ingest code, by the rules documented in FHIRMapping.swift.
private enum ExpectedCounts {
    /// Adds the records one resource should produce. An Observation with `component` and
    /// no value[x] gives one record per component, otherwise one.
    static func add(_ resource: [String: Any], to counts: inout RecordCounts) {
        switch resource["resourceType"] as? String {
        case "Patient": counts.patients += 1
        case "Condition": counts.conditions += 1
        case "Observation":
            let hasValue = resource.keys.contains { $0.hasPrefix("value") }
            let components = resource["component"] as? [Any] ?? []
            counts.observations += !hasValue && !components.isEmpty ? components.count : 1
        case "MedicationRequest", "MedicationStatement", "MedicationAdministration": counts.medications += 1
        case "Encounter": counts.encounters += 1
        case "Procedure": counts.procedures += 1
        case "Immunization": counts.immunizations += 1
        default: break
        }
    }

    static func object(_ data: Data) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    /// Counts for a folder of NDJSON files, and the resources of the first Patient.
    static func ndjson(folder: String) throws -> (RecordCounts, firstPatient: [String: Any]?) {
        var counts = RecordCounts()
        var first: [String: Any]?
        for name in try FileManager.default.contentsOfDirectory(atPath: folder) where name.hasSuffix(".ndjson") && name != "log.ndjson" {
            let text = try String(contentsOfFile: folder + "/" + name, encoding: .utf8)
            for line in text.split(separator: "\n") where !line.allSatisfy(\.isWhitespace) {
                let resource = try object(Data(line.utf8))
                add(resource, to: &counts)
                if first == nil, resource["resourceType"] as? String == "Patient" { first = resource }
            }
        }
        return (counts, first)
    }

    /// Counts for the bundles of a .tgz, unpacked with /usr/bin/tar when present (else with
    /// the project's Inflate and TarReader), and the first Patient.
    static func bundles(archive: String) throws -> (RecordCounts, firstPatient: [String: Any]?) {
        var documents: [Data] = []
        if FileManager.default.isExecutableFile(atPath: "/usr/bin/tar") {
            let dir = TemporaryDirectory("fhir-unpacked")
            let tar = Process()
            tar.executableURL = URL(fileURLWithPath: "/usr/bin/tar")
            tar.arguments = ["-xzf", archive, "-C", dir.path]
            try tar.run()
            tar.waitUntilExit()
            #expect(tar.terminationStatus == 0)
            let enumerator = FileManager.default.enumerator(atPath: dir.path)
            var names: [String] = []
            while let rel = enumerator?.nextObject() as? String {
                if rel.hasSuffix(".json") { names.append(rel) }
            }
            for rel in names.sorted() { documents.append(try Data(contentsOf: URL(fileURLWithPath: dir.path + "/" + rel))) }
        } else {
            let tar = try Inflate.gzip(Array(try Data(contentsOf: URL(fileURLWithPath: archive))))
            for entry in try TarReader.entries(tar) where !entry.isDirectory && entry.name.hasSuffix(".json") {
                documents.append(Data(entry.contents))
            }
        }
        var counts = RecordCounts()
        var first: [String: Any]?
        for document in documents {
            let bundle = try object(document)
            for entry in bundle["entry"] as? [[String: Any]] ?? [] {
                guard let resource = entry["resource"] as? [String: Any] else { continue }
                add(resource, to: &counts)
                if first == nil, resource["resourceType"] as? String == "Patient" { first = resource }
            }
        }
        return (counts, first)
    }

    /// A patient's id and official family name, to look for in the vault's files.
    static func identifiers(_ patient: [String: Any]?) throws -> [String] {
        let patient = try #require(patient)
        let id = try #require(patient["id"] as? String)
        let names = try #require(patient["name"] as? [[String: Any]])
        let family = try #require(names.first?["family"] as? String)
        return [id, family]
    }
}

@Suite("FHIR ingest")
struct FHIRIngestTests {
    func newVault() throws -> (TemporaryDirectory, Vault) {
        let dir = TemporaryDirectory("vault")
        return (dir, try Vault.initialize(at: dir.path))
    }

    /// Ingests and returns the error ingest throws (nil when it succeeds).
    func ingestError(_ format: InputFormat, _ paths: [String]) throws -> VaultError? {
        let (dir, vault) = try newVault()
        defer { withExtendedLifetime(dir) {} }
        do {
            _ = try Ingestor(vault: vault).ingest(dataset: "bad", format: format, paths: paths, shards: 2, replace: false)
            return nil
        } catch let error as VaultError {
            return error
        }
    }

    // MARK: Real samples

    @Test("the bulk FHIR NDJSON sample (13 patients) ingests with counts computed from its lines",
          .enabled(if: FHIRSamples.bulkNDJSON != nil, "../shared/testdata/patients/bulk_fhir_r4_10 is absent: skipped"))
    func bulkNDJSONSample() throws {
        let folder = try #require(FHIRSamples.bulkNDJSON)
        let (expected, firstPatient) = try ExpectedCounts.ndjson(folder: folder)
        #expect(expected.patients == 13)
        let (dir, vault) = try newVault()
        let report = try Ingestor(vault: vault).ingest(dataset: "bulk", format: .fhirNDJSON, paths: [folder], shards: 4, replace: false)
        #expect(report.records == expected)
        #expect(report.skippedFiles.contains { $0.contains("Organization.000.ndjson") && $0.contains("43 Organization") })
        #expect(report.skippedFiles.contains { $0.hasSuffix("log.ndjson (bulk export log, not resources)") })
        #expect(Verifier(vault: vault).verify(dataset: "bulk", deep: true).ok)
        #expect(filesContaining(try ExpectedCounts.identifiers(firstPatient), under: dir.path).isEmpty)
        print("bulk NDJSON sample: \(report.records), \(String(format: "%.2f", report.seconds)) s")
    }

    @Test("the Synthea FHIR bundles sample (.tgz, 50 patients) ingests with counts computed from its entries",
          .enabled(if: FHIRSamples.bundlesArchive != nil, "../shared/testdata/patients/synthea_fhir_r4_bundles_50.tgz is absent: skipped"))
    func bundleArchiveSample() throws {
        let archive = try #require(FHIRSamples.bundlesArchive)
        let (expected, firstPatient) = try ExpectedCounts.bundles(archive: archive)
        #expect(expected.patients == 50)
        let (dir, vault) = try newVault()
        let report = try Ingestor(vault: vault).ingest(dataset: "bundles", format: .fhirBundle, paths: [archive], shards: 4, replace: false)
        #expect(report.records == expected)
        #expect(report.skippedFiles.contains { $0.hasPrefix(archive + " (") && $0.contains(" Claim") && $0.contains(" Organization") })
        #expect(report.skippedFiles.contains { $0.contains("1 archive files not ending in .json") })
        #expect(!report.skippedFiles.contains { $0.contains("fhir_name_map") })
        #expect(Verifier(vault: vault).verify(dataset: "bundles", deep: true).ok)
        #expect(filesContaining(try ExpectedCounts.identifiers(firstPatient), under: dir.path).isEmpty)
        print("FHIR bundles sample: \(report.records), \(String(format: "%.2f", report.seconds)) s")
    }

    // MARK: Small fixtures

    static let patient = #"{"resourceType":"Patient","id":"p1","gender":"female","birthDate":"1970-02-03","name":[{"family":"Quixotic9"}]}"#

    func write(_ files: [String: String], in dir: TemporaryDirectory) throws {
        for (name, text) in files { try text.write(toFile: dir.path + "/" + name, atomically: true, encoding: .utf8) }
    }

    @Test("a broken JSON line is an error naming the file and line 2")
    func brokenLine() throws {
        let input = TemporaryDirectory("fhir-input")
        try write(["Patient.ndjson": Self.patient + "\n" + #"{"resourceType":"Patient","id":"p2","birthDate":"1980-01-01""# + "\n"], in: input)
        let error = try #require(try ingestError(.fhirNDJSON, [input.path]))
        #expect(error.code == .dataError)
        #expect(error.location == input.path + "/Patient.ndjson:2", "\(error)")
        #expect(error.message.hasPrefix("not valid JSON"))
    }

    @Test("a Condition whose patient is not in the input is an error naming the file and subject.reference")
    func unknownPatient() throws {
        let input = TemporaryDirectory("fhir-input")
        try write(["Patient.ndjson": Self.patient + "\n",
                   "Condition.ndjson": #"{"resourceType":"Condition","subject":{"reference":"Patient/p1"},"code":{"coding":[{"system":"http://snomed.info/sct","code":"44054006"}]},"onsetDateTime":"2010-01-01"}"#
                       + "\n" + #"{"resourceType":"Condition","subject":{"reference":"Patient/nobody"},"code":{"coding":[{"code":"1"}]},"onsetDateTime":"2010-01-01"}"# + "\n"],
                  in: input)
        let error = try #require(try ingestError(.fhirNDJSON, [input.path]))
        #expect(error.code == .dataError)
        #expect(error.location == input.path + "/Condition.ndjson:2 field 'subject.reference'", "\(error)")
        #expect(!error.description.contains("nobody"))
    }

    @Test("a Patient without birthDate, a Condition without subject, a bad date: errors name line and field",
          arguments: [
            (#"{"resourceType":"Patient","id":"p2","gender":"male"}"#, "birthDate"),
            (#"{"resourceType":"Condition","code":{"coding":[{"code":"1"}]},"onsetDateTime":"2010-01-01"}"#, "subject.reference"),
            (#"{"resourceType":"Condition","subject":{"reference":"Patient/p1"},"onsetDateTime":"2010-01-01"}"#, "code"),
            (#"{"resourceType":"Encounter","subject":{"reference":"Patient/p1"},"period":{"start":"2010-13-01"}}"#, "period.start"),
            (#"{"resourceType":"Immunization","patient":{"reference":"Group/g1"},"occurrenceDateTime":"2010-01-01","vaccineCode":{"coding":[{"code":"140"}]}}"#, "patient.reference"),
            (#"{"id":"x"}"#, "resourceType"),
          ])
    func missingField(line: String, field: String) throws {
        let input = TemporaryDirectory("fhir-input")
        try write(["data.ndjson": Self.patient + "\n\n" + line + "\n"], in: input)
        let error = try #require(try ingestError(.fhirNDJSON, [input.path]))
        #expect(error.code == .dataError)
        #expect(error.location == input.path + "/data.ndjson:3 field '\(field)'", "\(error)")
    }

    static func bundle(_ resources: [String]) -> String {
        let entries = resources.enumerated().map { #"{"fullUrl":"urn:uuid:u\#($0.offset)","resource":\#($0.element)}"# }
        return #"{"resourceType":"Bundle","type":"transaction","entry":[\#(entries.joined(separator: ","))]}"#
    }

    static let bundlePatient = #"{"resourceType":"Patient","id":"u0","gender":"male","birthDate":"1960-05-06","deceasedDateTime":"2020-01-01T10:00:00-05:00","extension":[{"url":"http://hl7.org/fhir/us/core/StructureDefinition/us-core-race","extension":[{"url":"ombCategory","valueCoding":{"display":"White"}},{"url":"text","valueString":"White"}]}],"address":[{"state":"Massachusetts"}]}"#

    @Test("bundles: urn:uuid references, blood pressure components, medicationReference, skipped types")
    func bundleMapping() throws {
        let input = TemporaryDirectory("fhir-input")
        let resources = [
            Self.bundlePatient,
            #"{"resourceType":"Medication","id":"m1","code":{"coding":[{"system":"http://www.nlm.nih.gov/research/umls/rxnorm","code":"1659131"}]}}"#,
            #"{"resourceType":"MedicationRequest","subject":{"reference":"urn:uuid:u0"},"medicationReference":{"reference":"urn:uuid:u1"},"authoredOn":"2014-11-06T07:07:25-08:00"}"#,
            #"{"resourceType":"Observation","subject":{"reference":"urn:uuid:u0"},"effectiveDateTime":"2014-11-06T07:07:25-08:00","category":[{"coding":[{"code":"vital-signs"}]}],"code":{"coding":[{"system":"http://loinc.org","code":"85354-9"}]},"component":[{"code":{"coding":[{"system":"http://loinc.org","code":"8480-6"}]},"valueQuantity":{"value":120,"unit":"mm[Hg]"}},{"code":{"coding":[{"system":"http://loinc.org","code":"8462-4"}]},"valueQuantity":{"value":80,"unit":"mm[Hg]"}}]}"#,
            #"{"resourceType":"Observation","subject":{"reference":"Patient/u0"},"issued":"2014-11-06T07:07:25.123-08:00","code":{"coding":[{"system":"http://loinc.org","code":"72166-2"}]},"valueCodeableConcept":{"text":"Never smoked"}}"#,
            #"{"resourceType":"Claim","patient":{"reference":"urn:uuid:u0"}}"#,
            #"{"resourceType":"Procedure","subject":{"reference":"urn:uuid:u0"},"code":{"coding":[{"system":"http://snomed.info/sct","code":"430193006"}]},"performedPeriod":{"start":"2014-11-06T07:07:25-08:00"}}"#,
        ]
        try write(["a.json": Self.bundle(resources),
                   "hospitalInformation1.json": Self.bundle([#"{"resourceType":"Organization","name":"General"}"#])], in: input)
        let (dir, vault) = try newVault()
        defer { withExtendedLifetime(dir) {} }
        let report = try Ingestor(vault: vault).ingest(dataset: "b", format: .fhirBundle, paths: [input.path], shards: 1, replace: false)
        var expected = RecordCounts()
        expected.patients = 1; expected.medications = 1; expected.observations = 3; expected.procedures = 1
        #expect(report.records == expected)
        #expect(report.skippedFiles == [input.path + " (1 Claim, 1 Medication, 1 Organization)"])
    }

    @Test("bundle errors name the file, the entry index and the field from the entry")
    func bundleErrors() throws {
        let input = TemporaryDirectory("fhir-input")
        let condition = #"{"resourceType":"Condition","code":{"coding":[{"code":"1"}]},"onsetDateTime":"2010-01-01"}"#
        try write(["a.json": Self.bundle([Self.bundlePatient, condition])], in: input)
        let error = try #require(try ingestError(.fhirBundle, [input.path + "/a.json"]))
        #expect(error.location == input.path + "/a.json:1 field 'entry[1].resource.subject.reference'", "\(error)")

        let orphan = #"{"resourceType":"Procedure","subject":{"reference":"urn:uuid:elsewhere"},"code":{"coding":[{"code":"1"}]},"performedDateTime":"2010-01-01"}"#
        try write(["b.json": Self.bundle([Self.bundlePatient, orphan])], in: input)
        let missing = try #require(try ingestError(.fhirBundle, [input.path + "/b.json"]))
        #expect(missing.location == input.path + "/b.json:1 field 'resource.subject.reference'", "\(missing)")

        try write(["c.json": #"{"resourceType":"Bundle","entry":[}"#], in: input)
        let broken = try #require(try ingestError(.fhirBundle, [input.path + "/c.json"]))
        #expect(broken.location == input.path + "/c.json" && broken.message.hasPrefix("not valid JSON"), "\(broken)")
    }

    @Test("an error inside a .tgz names archive.tgz:member.json",
          .enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/tar"), "/usr/bin/tar is absent: skipped"))
    func archiveErrorLocation() throws {
        let input = TemporaryDirectory("fhir-input")
        try FileManager.default.createDirectory(atPath: input.path + "/fhir", withIntermediateDirectories: true)
        let bad = #"{"resourceType":"Patient","id":"u0","gender":"male","birthDate":"sometime"}"#
        try write(["fhir/x.json": Self.bundle([bad])], in: input)
        let tar = Process()
        tar.executableURL = URL(fileURLWithPath: "/usr/bin/tar")
        tar.arguments = ["-czf", input.path + "/in.tgz", "-C", input.path, "fhir"]
        try tar.run()
        tar.waitUntilExit()
        let error = try #require(try ingestError(.fhirBundle, [input.path + "/in.tgz"]))
        #expect(error.location == input.path + "/in.tgz:fhir/x.json:0 field 'entry[0].resource.birthDate'", "\(error)")
    }

    // MARK: JSON parser

    @Test("the JSON tape reads escapes, surrogate pairs, numbers and nesting")
    func jsonTape() throws {
        let tape = JSONTape(capacity: 4)
        try tape.parse(Array(#" {"a":"x\"\\\/\n\u00e9\ud83d\ude00","b":[1,-2.5e3,true,false,null,{}],"c":{"d":[]}} "#.utf8))
        let root = tape.root
        #expect(root["a"]?.string == "x\"\\/\n\u{e9}\u{1F600}")
        #expect(root["b"]?.count == 6)
        #expect(root["b"]?[1]?.number == -2500)
        #expect(root["b"]?[2]?.bool == true && root["b"]?[4]?.isNull == true)
        #expect(root["b"]?[5]?.isObject == true && root["b"]?[6] == nil)
        #expect(root["c"]?["d"]?.count == 0)
        #expect(root.keys == ["a", "b", "c"])
        #expect(root["zz"] == nil)
    }

    @Test("the JSON tape refuses what is not exactly one JSON value",
          arguments: ["", "{", "{\"a\":1,}", "[1 2]", "{\"a\" 1}", "01", "1.", "-", "tru", "\"a\u{01}\"", "\"\\x\"", "{} {}", "[\"a]",
                      String(repeating: "[", count: 600) + String(repeating: "]", count: 600)])
    func jsonTapeRejects(text: String) {
        let tape = JSONTape()
        #expect(throws: JSONTape.SyntaxError.self) { try tape.parse(Array(text.utf8)) }
    }
}
