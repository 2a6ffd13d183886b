import Foundation
import Testing
@testable import VaultCore

@Suite("Synthea-shaped CSV generator")
struct GeneratorTests {
    /// Records per patient in the 59-patient Synthea sample (testdata/patients/synthea_csv_59),
    /// measured with python3: rows of each file divided by 59.
    static let sampleAverages: [(file: String, perPatient: Double)] = [
        ("conditions.csv", 26.00), ("observations.csv", 367.75), ("medications.csv", 30.03),
        ("encounters.csv", 43.90), ("procedures.csv", 78.59), ("immunizations.csv", 15.10),
    ]

    /// The header lines of the sample's files.
    static let expectedHeaders: [String: String] = [
        "patients.csv": "Id,BIRTHDATE,DEATHDATE,SSN,DRIVERS,PASSPORT,PREFIX,FIRST,LAST,SUFFIX,MAIDEN,MARITAL,RACE,ETHNICITY,GENDER,BIRTHPLACE,ADDRESS,CITY,STATE,COUNTY,ZIP,LAT,LON,HEALTHCARE_EXPENSES,HEALTHCARE_COVERAGE",
        "conditions.csv": "START,STOP,PATIENT,ENCOUNTER,CODE,DESCRIPTION",
        "observations.csv": "DATE,PATIENT,ENCOUNTER,CATEGORY,CODE,DESCRIPTION,VALUE,UNITS,TYPE",
        "medications.csv": "START,STOP,PATIENT,PAYER,ENCOUNTER,CODE,DESCRIPTION,BASE_COST,PAYER_COVERAGE,DISPENSES,TOTALCOST,REASONCODE,REASONDESCRIPTION",
        "encounters.csv": "Id,START,STOP,PATIENT,ORGANIZATION,PROVIDER,PAYER,ENCOUNTERCLASS,CODE,DESCRIPTION,BASE_ENCOUNTER_COST,TOTAL_CLAIM_COST,PAYER_COVERAGE,REASONCODE,REASONDESCRIPTION",
        "procedures.csv": "START,STOP,PATIENT,ENCOUNTER,CODE,DESCRIPTION,BASE_COST,REASONCODE,REASONDESCRIPTION",
        "immunizations.csv": "DATE,PATIENT,ENCOUNTER,CODE,DESCRIPTION,BASE_COST",
    ]

    /// Files whose records point to a patient and an encounter, with the columns holding
    /// their start and (optional) stop dates.
    static let recordFiles: [(file: String, start: String, stop: String?)] = [
        ("conditions.csv", "START", "STOP"), ("observations.csv", "DATE", nil), ("medications.csv", "START", "STOP"),
        ("procedures.csv", "START", "STOP"), ("immunizations.csv", "DATE", nil),
    ]

    // MARK: Tests

    @Test("the same patients and seed give byte-identical files; another seed gives other files")
    func determinism() throws {
        try withTemporaryDirectory { root in
            let first = root.appendingPathComponent("a"), second = root.appendingPathComponent("b"), other = root.appendingPathComponent("c")
            let summaryA = try SyntheaGenerator(patients: 40, seed: 42).write(to: first)
            let summaryB = try SyntheaGenerator(patients: 40, seed: 42).write(to: second)
            _ = try SyntheaGenerator(patients: 40, seed: 43).write(to: other)
            #expect(summaryA == summaryB)
            for name in SyntheaGenerator.fileNames {
                let a = try Data(contentsOf: first.appendingPathComponent(name))
                let b = try Data(contentsOf: second.appendingPathComponent(name))
                let c = try Data(contentsOf: other.appendingPathComponent(name))
                #expect(a == b, "\(name) differs between two runs with the same seed")
                #expect(a != c, "\(name) is the same for seeds 42 and 43")
            }
            let idsA = try readCSV(first.appendingPathComponent("patients.csv")).values("Id")
            let idsC = try readCSV(other.appendingPathComponent("patients.csv")).values("Id")
            #expect(Set(idsA).isDisjoint(with: idsC), "patient ids should derive from the seed")
        }
    }

    @Test("each file starts with the header line of the Synthea sample")
    func headers() throws {
        try withTemporaryDirectory { root in
            _ = try SyntheaGenerator(patients: 3, seed: 7).write(to: root)
            #expect(Set(SyntheaGenerator.fileNames) == Set(Self.expectedHeaders.keys))
            for name in SyntheaGenerator.fileNames {
                let text = try String(contentsOf: root.appendingPathComponent(name), encoding: .utf8)
                let header = text.split(separator: "\n", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init)
                #expect(header == Self.expectedHeaders[name], "header of \(name)")
            }
        }
    }

    @Test("every record points to an existing patient, and to an existing encounter of that patient")
    func referentialIntegrity() throws {
        try withTemporaryDirectory { root in
            _ = try SyntheaGenerator(patients: 60, seed: 11).write(to: root)
            let patients = Set(try readCSV(root.appendingPathComponent("patients.csv")).values("Id"))
            #expect(patients.count == 60)
            let encounters = try readCSV(root.appendingPathComponent("encounters.csv"))
            var encounterPatient: [String: String] = [:]
            let idColumn = try encounters.column("Id"), patientColumn = try encounters.column("PATIENT")
            for row in encounters.rows {
                #expect(patients.contains(row[patientColumn]), "encounter \(row[idColumn]) has an unknown patient")
                #expect(encounterPatient.updateValue(row[patientColumn], forKey: row[idColumn]) == nil, "duplicate encounter id")
            }
            for (file, _, _) in Self.recordFiles {
                let table = try readCSV(root.appendingPathComponent(file))
                let patient = try table.column("PATIENT"), encounter = try table.column("ENCOUNTER")
                var problems = 0
                for row in table.rows where encounterPatient[row[encounter]] != row[patient] || !patients.contains(row[patient]) {
                    problems += 1
                }
                #expect(problems == 0, "\(file): \(problems) records with an unknown patient or encounter")
                #expect(!table.rows.isEmpty, "\(file) has no records")
            }
        }
    }

    @Test("the summary's counts equal the files' line counts and sizes")
    func summaryMatchesFiles() throws {
        try withTemporaryDirectory { root in
            let summary = try SyntheaGenerator(patients: 50, seed: 5).write(to: root)
            let counts: [String: Int] = [
                "patients.csv": summary.records.patients, "conditions.csv": summary.records.conditions, "observations.csv": summary.records.observations,
                "medications.csv": summary.records.medications, "encounters.csv": summary.records.encounters, "procedures.csv": summary.records.procedures,
                "immunizations.csv": summary.records.immunizations,
            ]
            var bytes = 0
            for name in SyntheaGenerator.fileNames {
                let data = try Data(contentsOf: root.appendingPathComponent(name))
                bytes += data.count
                let lines = data.reduce(0) { $0 + ($1 == 10 ? 1 : 0) }
                #expect(data.last == 10, "\(name) ends with a line break")
                #expect(!data.contains(13), "\(name) has no carriage returns")
                #expect(lines - 1 == counts[name], "\(name): \(lines - 1) records, summary says \(counts[name] ?? -1)")
                #expect(try readCSV(root.appendingPathComponent(name)).rows.count == counts[name], "\(name) has no blank or broken lines")
            }
            #expect(summary.records.patients == 50)
            #expect(summary.bytesWritten == bytes)
        }
    }

    @Test("refuses to overwrite existing files and leaves them untouched")
    func noOverwrite() throws {
        try withTemporaryDirectory { root in
            let keep = Data("keep me\n".utf8)
            try keep.write(to: root.appendingPathComponent("observations.csv"))
            #expect(throws: VaultError.self) { try SyntheaGenerator(patients: 2, seed: 1).write(to: root) }
            #expect(try Data(contentsOf: root.appendingPathComponent("observations.csv")) == keep)
            let left = try FileManager.default.contentsOfDirectory(atPath: root.path)
            #expect(left == ["observations.csv"], "nothing else was created: \(left)")

            // A finished output is not overwritten by a second run either.
            let out = root.appendingPathComponent("out")
            _ = try SyntheaGenerator(patients: 2, seed: 1).write(to: out)
            let before = try Data(contentsOf: out.appendingPathComponent("patients.csv"))
            #expect(throws: VaultError.self) { try SyntheaGenerator(patients: 3, seed: 2).write(to: out) }
            #expect(try Data(contentsOf: out.appendingPathComponent("patients.csv")) == before)
        }
    }

    @Test("records per patient are in the same range as the sample's")
    func averagesNearSample() throws {
        try withTemporaryDirectory { root in
            let n = 400
            let summary = try SyntheaGenerator(patients: n, seed: 2024).write(to: root)
            let generated: [String: Int] = [
                "conditions.csv": summary.records.conditions, "observations.csv": summary.records.observations, "medications.csv": summary.records.medications,
                "encounters.csv": summary.records.encounters, "procedures.csv": summary.records.procedures, "immunizations.csv": summary.records.immunizations,
            ]
            for (file, sample) in Self.sampleAverages {
                let average = Double(generated[file] ?? 0) / Double(n)
                // A 30% band: the sample has only 59 patients and its standard deviations are large.
                #expect(average >= sample * 0.7 && average <= sample * 1.3, "\(file): \(average) per patient, sample \(sample)")
            }
        }
    }

    @Test("dates parse, births precede deaths, and every record falls within its patient's life")
    func datesConsistent() throws {
        try withTemporaryDirectory { root in
            _ = try SyntheaGenerator(patients: 60, seed: 99).write(to: root)
            let export = "2022-03-01"
            let patients = try readCSV(root.appendingPathComponent("patients.csv"))
            let id = try patients.column("Id"), born = try patients.column("BIRTHDATE"), died = try patients.column("DEATHDATE")
            var life: [String: (String, String)] = [:]
            var deaths = 0
            for row in patients.rows {
                #expect(isDate(row[born]), "birth date \(row[born])")
                if !row[died].isEmpty {
                    deaths += 1
                    #expect(isDate(row[died]), "death date \(row[died])")
                    #expect(row[died] > row[born], "death after birth")
                }
                #expect(row[born] <= export)
                life[row[id]] = (row[born], row[died].isEmpty ? export : row[died])
            }
            #expect(deaths > 0 && deaths < patients.rows.count)

            var files = Self.recordFiles.map { ($0.file, $0.start, $0.stop) }
            files.append(("encounters.csv", "START", "STOP"))
            for (file, startName, stopName) in files {
                let table = try readCSV(root.appendingPathComponent(file))
                let patient = try table.column("PATIENT"), start = try table.column(startName)
                let stop = try stopName.map { try table.column($0) }
                let isDateOnly = file == "conditions.csv"
                var bad = 0
                for row in table.rows {
                    guard let span = life[row[patient]] else {
                        bad += 1
                        continue
                    }
                    let (birth, end) = span
                    let s = row[start]
                    if !(isDateOnly ? isDate(s) : isTimestamp(s)) || s.prefix(10) < birth || s.prefix(10) > end { bad += 1 }
                    if let stop, !row[stop].isEmpty {
                        let e = row[stop]
                        if !(isDateOnly ? isDate(e) : isTimestamp(e)) || e < s || e.prefix(10) > end { bad += 1 }
                    }
                }
                #expect(bad == 0, "\(file): \(bad) dates that do not parse or fall outside the patient's life")
            }
        }
    }

    @Test("diabetics have diabetes codes, higher HbA1c and metformin; BMI is recorded")
    func diabetesCorrelation() throws {
        try withTemporaryDirectory { root in
            _ = try SyntheaGenerator(patients: 200, seed: 3).write(to: root)
            let conditions = try readCSV(root.appendingPathComponent("conditions.csv"))
            let code = try conditions.column("CODE"), patient = try conditions.column("PATIENT")
            let diabetics = Set(conditions.rows.filter { $0[code] == "44054006" }.map { $0[patient] })
            #expect(!diabetics.isEmpty)

            let observations = try readCSV(root.appendingPathComponent("observations.csv"))
            let oCode = try observations.column("CODE"), oPatient = try observations.column("PATIENT")
            let value = try observations.column("VALUE"), units = try observations.column("UNITS")
            var high = [false: 0, true: 0], total = [false: 0, true: 0]
            var bmiCount = 0
            for row in observations.rows {
                if row[oCode] == "4548-4" {
                    #expect(row[units] == "%")
                    let diabetic = diabetics.contains(row[oPatient])
                    total[diabetic, default: 0] += 1
                    if let v = Double(row[value]), v > 6.5 { high[diabetic, default: 0] += 1 }
                } else if row[oCode] == "39156-5" {
                    bmiCount += 1
                    #expect(row[units] == "kg/m2")
                }
            }
            #expect(bmiCount > 0)
            let diabeticShare = Double(high[true] ?? 0) / Double(max(1, total[true] ?? 0))
            let otherShare = Double(high[false] ?? 0) / Double(max(1, total[false] ?? 0))
            #expect((total[true] ?? 0) > 0 && (total[false] ?? 0) > 0)
            #expect(diabeticShare > 0.5 && diabeticShare > otherShare + 0.3, "HbA1c > 6.5: diabetics \(diabeticShare), others \(otherShare)")

            let medications = try readCSV(root.appendingPathComponent("medications.csv"))
            let mCode = try medications.column("CODE"), mPatient = try medications.column("PATIENT")
            let onMetformin = Set(medications.rows.filter { $0[mCode] == "860975" }.map { $0[mPatient] })
            #expect(!onMetformin.isEmpty && onMetformin.isSubset(of: diabetics))
        }
    }

    @Test("fields with commas, quotes or line breaks are quoted as CSV requires")
    func quoting() {
        #expect(CSVText.field("Hypertension") == Array("Hypertension".utf8))
        #expect(CSVText.field("Fracture, closed") == Array("\"Fracture, closed\"".utf8))
        #expect(CSVText.field("say \"hi\"") == Array("\"say \"\"hi\"\"\"".utf8))
        #expect(CSVText.field("two\nlines") == Array("\"two\nlines\"".utf8))
        let parsed = parseCSVLine("a,\"b, c\",\"d \"\"e\"\"\",")
        #expect(parsed == ["a", "b, c", "d \"e\"", ""])
    }

    @Test("zero patients writes the headers only; a negative count is rejected")
    func edgeCounts() throws {
        try withTemporaryDirectory { root in
            let summary = try SyntheaGenerator(patients: 0, seed: 1).write(to: root.appendingPathComponent("empty"))
            #expect(summary == GenerationSummary(bytesWritten: summary.bytesWritten))
            let expectedBytes = Self.expectedHeaders.values.reduce(0) { $0 + $1.utf8.count + 1 }
            #expect(summary.bytesWritten == expectedBytes)
            #expect(throws: VaultError.self) { try SyntheaGenerator(patients: -1, seed: 1).write(to: root.appendingPathComponent("negative")) }
            #expect(!FileManager.default.fileExists(atPath: root.appendingPathComponent("negative").path))
        }
    }

    // MARK: Helpers

    func withTemporaryDirectory(_ body: (URL) throws -> Void) throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("generator-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: url) }
        try body(url)
    }

    struct Table {
        let header: [String]
        let rows: [[String]]

        func column(_ name: String) throws -> Int {
            guard let index = header.firstIndex(of: name) else { throw TableError(message: "no column \(name)") }
            return index
        }

        func values(_ name: String) throws -> [String] {
            let index = try column(name)
            return rows.map { $0[index] }
        }
    }

    struct TableError: Error { let message: String }

    /// Reads a CSV file; every row must have as many fields as the header.
    func readCSV(_ url: URL) throws -> Table {
        let text = try String(contentsOf: url, encoding: .utf8)
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        if lines.last == "" { lines.removeLast() }
        guard let first = lines.first else { throw TableError(message: "\(url.lastPathComponent) is empty") }
        let header = parseCSVLine(first)
        var rows: [[String]] = []
        rows.reserveCapacity(lines.count)
        for line in lines.dropFirst() {
            let fields = parseCSVLine(line)
            guard fields.count == header.count else {
                throw TableError(message: "\(url.lastPathComponent): \(fields.count) fields, expected \(header.count): \(line)")
            }
            rows.append(fields)
        }
        return Table(header: header, rows: rows)
    }

    func parseCSVLine(_ line: Substring) -> [String] { parseCSVLine(String(line)) }

    func parseCSVLine(_ line: String) -> [String] {
        var fields: [String] = []
        var field = [UInt8]()
        var quoted = false
        var bytes = Array(line.utf8).makeIterator()
        var pending = bytes.next()
        while let b = pending {
            pending = bytes.next()
            if quoted {
                if b == UInt8(ascii: "\"") {
                    if pending == UInt8(ascii: "\"") {
                        field.append(b)
                        pending = bytes.next()
                    } else {
                        quoted = false
                    }
                } else {
                    field.append(b)
                }
            } else if b == UInt8(ascii: ",") {
                fields.append(String(decoding: field, as: UTF8.self))
                field.removeAll(keepingCapacity: true)
            } else if b == UInt8(ascii: "\"") && field.isEmpty {
                quoted = true
            } else {
                field.append(b)
            }
        }
        fields.append(String(decoding: field, as: UTF8.self))
        return fields
    }

    /// `YYYY-MM-DD`, a real calendar day.
    func isDate(_ text: some StringProtocol) -> Bool {
        let parts = text.split(separator: "-")
        guard text.count == 10, parts.count == 3, parts[0].count == 4,
              let y = Int(parts[0]), let m = Int(parts[1]), let d = Int(parts[2]), (1...12).contains(m), d >= 1 else { return false }
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC") ?? calendar.timeZone
        let components = DateComponents(year: y, month: m, day: d)
        guard let date = calendar.date(from: components) else { return false }
        return calendar.component(.day, from: date) == d && calendar.component(.month, from: date) == m
    }

    /// `YYYY-MM-DDTHH:MM:SSZ`.
    func isTimestamp(_ text: String) -> Bool {
        let bytes = Array(text.utf8)
        guard bytes.count == 20, bytes[10] == UInt8(ascii: "T"), bytes[13] == UInt8(ascii: ":"),
              bytes[16] == UInt8(ascii: ":"), bytes[19] == UInt8(ascii: "Z"), isDate(text.prefix(10)) else { return false }
        guard let h = Int(text.dropFirst(11).prefix(2)), let m = Int(text.dropFirst(14).prefix(2)), let s = Int(text.dropFirst(17).prefix(2)) else {
            return false
        }
        return (0..<24).contains(h) && (0..<60).contains(m) && (0..<60).contains(s)
    }
}
