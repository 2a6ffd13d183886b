import VaultCrypto

/// The input formats ingest reads.
public enum InputFormat: String, CaseIterable, Sendable, Codable {
    case syntheaCSV = "synthea-csv"
    case fhirNDJSON = "fhir-ndjson"
    case fhirBundle = "fhir-bundle"
}

/// A reader of one input format that turns its files into internal records.
protocol RecordSource {
    /// Reads every input file and hands each record to `sink`. Throws a `VaultError`
    /// naming file, line and field for bad input.
    func read(into sink: IngestSink) throws
}

/// Receives parsed records during ingest: pseudonymises patients, routes each record to
/// its shard's encrypted staging file, and counts.
public final class IngestSink {
    struct Source {
        var path: String
        var patientField: String
    }

    private let pseudonymizer: Pseudonymizer
    let shardCount: Int
    private let spills: [SpillWriter]
    private(set) var sources: [Source] = []
    public private(set) var counts = RecordCounts()
    /// Input files that were read, and how many bytes.
    public private(set) var inputBytes = 0
    /// Files present in the input but not ingested (record kinds the model does not hold).
    public private(set) var skippedFiles: [String] = []

    init(pseudonymizer: Pseudonymizer, shardCount: Int, spills: [SpillWriter]) {
        self.pseudonymizer = pseudonymizer
        self.shardCount = shardCount
        self.spills = spills
    }

    private var sourceIndex: [String: Int] = [:]

    /// Registers an input file and the field that names a record's patient; the returned
    /// number identifies them in error locations. The same pair gives the same number.
    func registerSource(path: String, patientField: String) -> Int {
        let key = path + "\u{0}" + patientField
        if let known = sourceIndex[key] { return known }
        sources.append(Source(path: path, patientField: patientField))
        sourceIndex[key] = sources.count - 1
        return sources.count - 1
    }

    func noteInputBytes(_ n: Int) { inputBytes += n }
    func noteSkipped(_ path: String) { skippedFiles.append(path) }

    func pseudonym(of patientId: String) throws -> [UInt8] {
        try pseudonymizer.pseudonym(patientId)
    }

    func emit(_ record: ClinicalRecord, source: Int, line: Int) throws {
        let shard = Pseudonymizer.shard(of: record.pseudonym, count: shardCount)
        try spills[shard].append(record, source: source, line: line)
        counts[record.kind] += 1
    }
}
