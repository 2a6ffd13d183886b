import Foundation
/// Reads Synthea CSV export folders (patients, conditions, observations, medications,
/// encounters, procedures, immunizations; other files are listed as not ingested). Several
/// folders (say, the outputs of several Synthea runs) make one dataset; every folder is
/// checked before any is read, and a patient in two folders is refused as a duplicate.
/// Each file is read once, front to back, so a named pipe can stand in for it. Files of
/// different kinds are read at the same time, one lane per core (`lanes`), each kind by one
/// lane only and in the order above, so every table's rows keep the input's order.
struct SyntheaCSVSource: RecordSource {
    let directories: [String]
    var lanes = 1

    struct FileSpec {
        let kind: RecordKind
        let file: String
        let required: [String]
        let known: Set<String>
    }

    static let specs: [FileSpec] = [
        FileSpec(kind: .patients, file: "patients.csv", required: ["Id", "BIRTHDATE", "GENDER"],
                 known: ["Id", "BIRTHDATE", "DEATHDATE", "SSN", "DRIVERS", "PASSPORT", "PREFIX", "FIRST", "MIDDLE", "LAST", "SUFFIX",
                         "MAIDEN", "MARITAL", "RACE", "ETHNICITY", "GENDER", "BIRTHPLACE", "ADDRESS", "CITY", "STATE", "COUNTY", "FIPS",
                         "ZIP", "LAT", "LON", "HEALTHCARE_EXPENSES", "HEALTHCARE_COVERAGE", "INCOME"]),
        FileSpec(kind: .conditions, file: "conditions.csv", required: ["START", "PATIENT", "CODE"],
                 known: ["START", "STOP", "PATIENT", "ENCOUNTER", "SYSTEM", "CODE", "DESCRIPTION"]),
        FileSpec(kind: .observations, file: "observations.csv", required: ["DATE", "PATIENT", "CODE", "VALUE"],
                 known: ["DATE", "PATIENT", "ENCOUNTER", "CATEGORY", "CODE", "DESCRIPTION", "VALUE", "UNITS", "TYPE"]),
        FileSpec(kind: .medications, file: "medications.csv", required: ["START", "PATIENT", "CODE"],
                 known: ["START", "STOP", "PATIENT", "PAYER", "ENCOUNTER", "CODE", "DESCRIPTION", "BASE_COST", "PAYER_COVERAGE",
                         "DISPENSES", "TOTALCOST", "REASONCODE", "REASONDESCRIPTION"]),
        FileSpec(kind: .encounters, file: "encounters.csv", required: ["START", "PATIENT", "CODE"],
                 known: ["Id", "START", "STOP", "PATIENT", "ORGANIZATION", "PROVIDER", "PAYER", "ENCOUNTERCLASS", "CODE", "DESCRIPTION",
                         "BASE_ENCOUNTER_COST", "TOTAL_CLAIM_COST", "PAYER_COVERAGE", "REASONCODE", "REASONDESCRIPTION"]),
        FileSpec(kind: .procedures, file: "procedures.csv", required: ["PATIENT", "CODE"],
                 known: ["START", "STOP", "DATE", "PATIENT", "ENCOUNTER", "SYSTEM", "CODE", "DESCRIPTION", "BASE_COST", "REASONCODE",
                         "REASONDESCRIPTION"]),
        FileSpec(kind: .immunizations, file: "immunizations.csv", required: ["DATE", "PATIENT", "CODE"],
                 known: ["DATE", "PATIENT", "ENCOUNTER", "CODE", "DESCRIPTION", "BASE_COST"]),
    ]

    func read(into sink: IngestSink) throws {
        for directory in directories {
            guard FileIO.isDirectory(directory) else {
                throw VaultError(.noInput, "not a folder of Synthea CSV files", location: directory)
            }
            for spec in Self.specs where !FileIO.exists(directory + "/" + spec.file) {
                throw VaultError(.noInput, "missing file \(spec.file) (a Synthea CSV export needs patients, conditions, observations, medications, encounters, procedures and immunizations)", location: directory)
            }
        }
        let ingested = Set(Self.specs.map(\.file))
        for directory in directories {
            for name in try FileIO.listDirectory(directory) where name.hasSuffix(".csv") && !ingested.contains(name) {
                sink.noteSkipped(directory + "/" + name)
            }
        }
        let plan = Self.assign(Self.specs.map { spec in directories.reduce(0) { $0 + FileIO.size($1 + "/" + spec.file) } }, lanes: lanes)
        let failure = FirstFailure()
        DispatchQueue.concurrentPerform(iterations: plan.count) { index in
            let lane = sink.lane()
            do {
                for directory in directories {
                    for spec in plan[index].map({ Self.specs[$0] }) where !failure.happened {
                        try read(spec, in: directory, into: sink, lane: lane, failure: failure)
                    }
                }
            } catch {
                failure.record(error)
            }
        }
        if let error = failure.error { throw error }
    }

    /// Splits the kinds (by their total input bytes) over at most `lanes` lanes, largest
    /// first onto the least loaded; each lane keeps the kinds in their usual order.
    static func assign(_ sizes: [Int], lanes: Int) -> [[Int]] {
        let count = max(1, min(lanes, sizes.count))
        var plan = [[Int]](repeating: [], count: count)
        var load = [Int](repeating: 0, count: count)
        for kind in sizes.indices.sorted(by: { (sizes[$0], $1) > (sizes[$1], $0) }) {
            let lane = load.indices.min { (load[$0], $0) < (load[$1], $1) }!
            plan[lane].append(kind)
            load[lane] += max(sizes[kind], 1)
        }
        return plan.filter { !$0.isEmpty }.map { $0.sorted() }
    }

    /// The first error of any lane, which stops the others.
    final class FirstFailure: @unchecked Sendable {
        private let lock = NSLock()
        private var first: (any Error)?
        var happened: Bool { lock.withLock { first != nil } }
        var error: (any Error)? { lock.withLock { first } }
        func record(_ error: any Error) { lock.withLock { if first == nil { first = error } } }
    }

    private func read(_ spec: FileSpec, in directory: String, into sink: IngestSink, lane: IngestSink.Lane, failure: FirstFailure) throws {
        let path = directory + "/" + spec.file
        let csv = try CSVReader(path: path)
        guard try csv.next() else { throw VaultError(.dataError, "file is empty (no header line)", location: VaultError.at(path, line: 1)) }
        var column: [String: Int] = [:]
        for i in 0..<csv.fields.count {
            var name = csv.string(i)
            if i == 0 && name.hasPrefix("\u{FEFF}") { name.removeFirst() }
            guard spec.known.contains(name) else {
                throw VaultError(.dataError, "unknown column '\(name)' in \(spec.file)", location: VaultError.at(path, line: 1, field: name))
            }
            guard column[name] == nil else {
                throw VaultError(.dataError, "duplicate column '\(name)'", location: VaultError.at(path, line: 1, field: name))
            }
            column[name] = i
        }
        for name in spec.required where column[name] == nil {
            throw VaultError(.dataError, "required column '\(name)' is missing", location: VaultError.at(path, line: 1, field: name))
        }
        let source = sink.registerSource(path: path, patientField: spec.kind == .patients ? "Id" : "PATIENT")
        let width = csv.fields.count

        // Column positions, looked up once rather than per row.
        struct Columns { var id: Int?, birthdate: Int?, deathdate: Int?, race: Int?, ethnicity: Int?, gender: Int?, state: Int?, start: Int?, stop: Int?, date: Int?, patient: Int?, code: Int?, category: Int?, value: Int?, units: Int?, type: Int?, encounterclass: Int? }
        let c = Columns(id: column["Id"], birthdate: column["BIRTHDATE"], deathdate: column["DEATHDATE"], race: column["RACE"], ethnicity: column["ETHNICITY"], gender: column["GENDER"], state: column["STATE"], start: column["START"], stop: column["STOP"], date: column["DATE"], patient: column["PATIENT"], code: column["CODE"], category: column["CATEGORY"], value: column["VALUE"], units: column["UNITS"], type: column["TYPE"], encounterclass: column["ENCOUNTERCLASS"])
        func text(_ i: Int?) -> String { i.map { csv.string($0) } ?? "" }
        func fail(_ message: String, _ name: String) -> VaultError {
            VaultError(.dataError, message, location: VaultError.at(path, line: csv.line, field: name))
        }
        func time(_ index: Int?, _ name: String, required: Bool) throws -> Int64 {
            guard let i = index, !csv.isEmpty(i) else {
                if required { throw fail("missing value", name) }
                return Absent.time
            }
            guard let t = ClinicalTime.seconds(csv.bytes(i)) else { throw fail("not a date or date-time", name) }
            return t
        }
        func date(_ index: Int?, _ name: String, required: Bool) throws -> Int32 {
            guard let i = index, !csv.isEmpty(i) else {
                if required { throw fail("missing value", name) }
                return Absent.date
            }
            guard let d = ClinicalTime.days(csv.bytes(i)) else { throw fail("not a date", name) }
            return d
        }
        func required(_ index: Int?, _ name: String) throws -> String {
            guard let i = index, !csv.isEmpty(i) else { throw fail("missing value", name) }
            return csv.string(i)
        }

        while try csv.next() {
            guard csv.fields.count == width else {
                if csv.fields.count == 1 && csv.isEmpty(0) { continue } // blank line
                throw VaultError(.dataError, "row has \(csv.fields.count) fields, the header has \(width)", location: VaultError.at(path, line: csv.line))
            }
            let record: ClinicalRecord
            switch spec.kind {
            case .patients:
                let id = try required(c.id, "Id")
                let gender = try required(c.gender, "GENDER")
                let sex: String
                switch gender {
                case "M", "m", "male": sex = "male"
                case "F", "f", "female": sex = "female"
                default: throw fail("unknown GENDER value (expected M or F)", "GENDER")
                }
                let birth = try date(c.birthdate, "BIRTHDATE", required: true)
                let death = try date(c.deathdate, "DEATHDATE", required: false)
                if death != Absent.date && death < birth { throw fail("death date is before birth date", "DEATHDATE") }
                record = .patient(.init(pseudonym: try lane.pseudonym(of: id), birthDate: birth, deathDate: death, sex: sex,
                                        race: text(c.race), ethnicity: text(c.ethnicity), state: text(c.state)))
            case .conditions:
                record = .condition(pseudonym: try lane.pseudonym(of: try required(c.patient, "PATIENT")), start: try time(c.start, "START", required: true),
                                    stop: try time(c.stop, "STOP", required: false), code: try required(c.code, "CODE"))
            case .observations:
                let type = text(c.type)
                let raw = text(c.value)
                var value = Double.nan
                var textValue = ""
                if type == "numeric" {
                    guard let v = Double(raw), v.isFinite else { throw fail("numeric observation value is not a number", "VALUE") }
                    value = v
                } else if type.isEmpty, let v = Double(raw), v.isFinite {
                    value = v
                } else {
                    textValue = raw
                }
                record = .observation(pseudonym: try lane.pseudonym(of: try required(c.patient, "PATIENT")), time: try time(c.date, "DATE", required: true),
                                      category: text(c.category), code: try required(c.code, "CODE"), value: value, unit: text(c.units), text: textValue)
            case .medications:
                record = .medication(pseudonym: try lane.pseudonym(of: try required(c.patient, "PATIENT")), start: try time(c.start, "START", required: true),
                                     stop: try time(c.stop, "STOP", required: false), code: try required(c.code, "CODE"))
            case .encounters:
                record = .encounter(pseudonym: try lane.pseudonym(of: try required(c.patient, "PATIENT")), start: try time(c.start, "START", required: true),
                                    stop: try time(c.stop, "STOP", required: false), encounterClass: text(c.encounterclass), code: try required(c.code, "CODE"))
            case .procedures:
                let start = c.start != nil ? try time(c.start, "START", required: true) : try time(c.date, "DATE", required: true)
                record = .procedure(pseudonym: try lane.pseudonym(of: try required(c.patient, "PATIENT")), start: start, code: try required(c.code, "CODE"))
            case .immunizations:
                record = .immunization(pseudonym: try lane.pseudonym(of: try required(c.patient, "PATIENT")), time: try time(c.date, "DATE", required: true),
                                       code: try required(c.code, "CODE"))
            }
            try lane.emit(record, source: source, line: csv.line)
            if csv.line & 0xFFF == 0 && failure.happened { return }
        }
        sink.noteInputBytes(FileIO.size(path))
    }
}
