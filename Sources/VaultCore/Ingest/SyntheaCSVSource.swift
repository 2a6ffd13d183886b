import Foundation
/// Reads Synthea CSV export folders (patients, conditions, observations, medications,
/// encounters, procedures, immunizations; other files are listed as not ingested). Several
/// folders (say, the outputs of several Synthea runs) make one dataset; every folder is
/// checked before any is read, and a patient in two folders is refused as a duplicate.
/// Each file is read once, front to back, so a named pipe can stand in for it; files are
/// read one after another in the order above. Each file is cut into blocks of whole
/// records that every lane (one per core, `lanes`) parses at once; the blocks' records
/// reach the staging files in the file's order, so every table keeps the input's order
/// and the first bad row reported is the first in the file.
struct SyntheaCSVSource: RecordSource {
    let directories: [String]
    var lanes = 1
    /// Bytes per block of a file handed to one lane.
    var blockSize = 4 << 20

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
        let lanes = (0..<max(1, lanes)).map { _ in sink.lane() }
        for directory in directories {
            for spec in Self.specs {
                try read(spec, in: directory, into: sink, lanes: lanes)
            }
        }
    }

    /// Reads one file: the header here, then its blocks on every lane at once.
    private func read(_ spec: FileSpec, in directory: String, into sink: IngestSink, lanes: [IngestSink.Lane]) throws {
        let path = directory + "/" + spec.file
        let reader = try CSVBlockReader(path: path, blockSize: blockSize)
        let empty = VaultError(.dataError, "file is empty (no header line)", location: VaultError.at(path, line: 1))
        guard let first = try reader.next() else { throw empty }
        let csv = CSVReader(bytes: first.bytes, path: path, firstLine: first.firstLine)
        guard try csv.next() else { throw empty }
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
        let shardCount = sink.shardCount
        let blocks = OrderedBlocks(head: csv, reader: reader, window: 2 * lanes.count)
        DispatchQueue.concurrentPerform(iterations: lanes.count) { index in
            let lane = lanes[index]
            while let (number, block) = blocks.take() {
                let batch = blocks.batch()
                do {
                    try parse(block, on: lane, into: batch)
                    lane.add(batch.contents.counts)
                    blocks.finish(number, batch) { try sink.commit($0) }
                } catch {
                    batch.reset()
                    blocks.fail(number, error)
                }
                blocks.recycle(block)
            }
        }
        if let error = blocks.finishFile() { throw error }
        sink.noteInputBytes(blocks.bytesRead)

        @Sendable func parse(_ csv: CSVReader, on lane: IngestSink.Lane, into batch: IngestSink.RecordBatch) throws {
            // The hot loop writes to a local copy, swapped back at the end.
            var out = IngestSink.EncodedRecords()
            swap(&out, &batch.contents)
            defer { swap(&out, &batch.contents) }
            func emit(_ kind: RecordKind, _ pseudonym: [UInt8], _ line: Int, _ body: (inout LittleEndianWriter) throws -> Void) throws {
                SpillCodec.header(kind, source: source, line: line, pseudonym: pseudonym, into: &out.bytes)
                try body(&out.bytes)
                out.ends.append(out.bytes.bytes.count)
                out.shards.append(Int32(Pseudonymizer.shard(of: pseudonym, count: shardCount)))
                out.counts[kind] += 1
            }
            func fail(_ message: String, _ name: String) -> VaultError {
                VaultError(.dataError, message, location: VaultError.at(path, line: csv.line, field: name))
            }
            func time(_ index: Int?, _ name: String, required: Bool) throws -> Int64 {
                guard let i = index, !csv.isEmpty(i) else {
                    if required { throw fail("missing value", name) }
                    return Absent.time
                }
                guard let t = csv.withField(i, { ClinicalTime.seconds($0) }) else { throw fail("not a date or date-time", name) }
                return t
            }
            func date(_ index: Int?, _ name: String, required: Bool) throws -> Int32 {
                guard let i = index, !csv.isEmpty(i) else {
                    if required { throw fail("missing value", name) }
                    return Absent.date
                }
                guard let d = csv.withField(i, { ClinicalTime.days($0) }) else { throw fail("not a date", name) }
                return d
            }
            func required(_ index: Int?, _ name: String) throws -> String {
                guard let i = index, !csv.isEmpty(i) else { throw fail("missing value", name) }
                return csv.string(i)
            }
            // Records go to the staging files straight from the field bytes (`emit(_:pseudonym:...)`),
            // in `SpillCodec.encode`'s layout; the checks run in the order of the fields.
            func patient(_ index: Int?, _ name: String) throws -> [UInt8] {
                guard let i = index, !csv.isEmpty(i) else { throw fail("missing value", name) }
                return try csv.withField(i) { try lane.pseudonym(bytes: $0) }
            }
            func field(_ index: Int?, _ w: inout LittleEndianWriter) {
                if let i = index { csv.appendField(i, to: &w) } else { w.u32(0) }
            }
            func requiredField(_ index: Int?, _ name: String, _ w: inout LittleEndianWriter) throws {
                guard let i = index, !csv.isEmpty(i) else { throw fail("missing value", name) }
                csv.appendField(i, to: &w)
            }
            func isNumeric(_ index: Int?) -> Bool {
                guard let i = index else { return false }
                return csv.withField(i) { $0.count == 7 && memcmp($0.baseAddress!, "numeric", 7) == 0 }
            }

            while try csv.next() {
                guard csv.fields.count == width else {
                    if csv.fields.count == 1 && csv.isEmpty(0) { continue } // blank line
                    throw VaultError(.dataError, "row has \(csv.fields.count) fields, the header has \(width)", location: VaultError.at(path, line: csv.line))
                }
                let line = csv.line
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
                    try emit(.patients, try lane.pseudonym(of: id), line) { w in
                        w.u32(UInt32(bitPattern: birth)); w.u32(UInt32(bitPattern: death))
                        SpillCodec.string(sex, &w); field(c.race, &w); field(c.ethnicity, &w); field(c.state, &w)
                    }
                case .conditions, .medications:
                    try emit(spec.kind, try patient(c.patient, "PATIENT"), line) { w in
                        w.u64(UInt64(bitPattern: try time(c.start, "START", required: true)))
                        w.u64(UInt64(bitPattern: try time(c.stop, "STOP", required: false)))
                        try requiredField(c.code, "CODE", &w)
                    }
                case .observations:
                    // A numeric value (TYPE numeric, or no TYPE and a number) goes in VALUE; any
                    // other value is kept as text.
                    let numeric = isNumeric(c.type)
                    var value = Double.nan
                    var textValue = false
                    if let i = c.value {
                        let parsed = Double(csv.string(i))
                        if numeric {
                            guard let v = parsed, v.isFinite else { throw fail("numeric observation value is not a number", "VALUE") }
                            value = v
                        } else if (c.type.map { csv.isEmpty($0) } ?? true), let v = parsed, v.isFinite {
                            value = v
                        } else {
                            textValue = true
                        }
                    } else if numeric {
                        throw fail("numeric observation value is not a number", "VALUE")
                    }
                    try emit(.observations, try patient(c.patient, "PATIENT"), line) { w in
                        w.u64(UInt64(bitPattern: try time(c.date, "DATE", required: true)))
                        field(c.category, &w)
                        try requiredField(c.code, "CODE", &w)
                        w.u64(value.bitPattern)
                        field(c.units, &w)
                        if textValue { field(c.value, &w) } else { w.u32(0) }
                    }
                case .encounters:
                    try emit(.encounters, try patient(c.patient, "PATIENT"), line) { w in
                        w.u64(UInt64(bitPattern: try time(c.start, "START", required: true)))
                        w.u64(UInt64(bitPattern: try time(c.stop, "STOP", required: false)))
                        field(c.encounterclass, &w)
                        try requiredField(c.code, "CODE", &w)
                    }
                case .procedures:
                    let start = c.start != nil ? try time(c.start, "START", required: true) : try time(c.date, "DATE", required: true)
                    try emit(.procedures, try patient(c.patient, "PATIENT"), line) { w in
                        w.u64(UInt64(bitPattern: start))
                        try requiredField(c.code, "CODE", &w)
                    }
                case .immunizations:
                    try emit(.immunizations, try patient(c.patient, "PATIENT"), line) { w in
                        w.u64(UInt64(bitPattern: try time(c.date, "DATE", required: true)))
                        try requiredField(c.code, "CODE", &w)
                    }
                }
            }
        }
    }
}
