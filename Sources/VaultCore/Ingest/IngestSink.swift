import Foundation
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
/// its shard's encrypted staging file, and counts. Sources that read several files at once
/// take one `Lane` per thread; the rest use the sink's own lane through `emit`.
public final class IngestSink: @unchecked Sendable {
    struct Source {
        var path: String
        var patientField: String
    }

    /// One reading thread's share: its own pseudonym cache and counts; records go to the
    /// shared staging files, each under its own lock.
    final class Lane: @unchecked Sendable {
        private unowned let sink: IngestSink
        private let pseudonymizer: Pseudonymizer
        fileprivate(set) var counts = RecordCounts()

        fileprivate init(sink: IngestSink, pseudonymizer: Pseudonymizer) {
            self.sink = sink
            self.pseudonymizer = pseudonymizer
        }

        func pseudonym(of patientId: String) throws -> [UInt8] {
            try pseudonymizer.pseudonym(patientId)
        }

        func pseudonym(bytes: UnsafeRawBufferPointer) throws -> [UInt8] {
            try pseudonymizer.pseudonym(bytes: bytes)
        }

        func emit(_ record: ClinicalRecord, source: Int, line: Int) throws {
            let shard = Pseudonymizer.shard(of: record.pseudonym, count: sink.shardCount)
            try sink.spillLocks[shard].withLock { try sink.spills[shard].append(record, source: source, line: line) }
            counts[record.kind] += 1
        }

        /// Adds the counts of a block's records.
        func add(_ more: RecordCounts) {
            for kind in RecordKind.allCases { counts[kind] += more[kind] }
        }
    }

    /// Records encoded in `SpillCodec.encode`'s layout, in input order, each with its shard.
    struct EncodedRecords {
        var bytes = LittleEndianWriter()
        var ends: [Int] = []
        var shards: [Int32] = []
        var counts = RecordCounts()
    }

    /// The records parsed from one block of input, waiting to be committed to the staging
    /// files. Holds plaintext: `reset()` wipes it.
    final class RecordBatch: @unchecked Sendable {
        var contents = EncodedRecords()

        func reset() {
            secureWipe(&contents.bytes.bytes)
            contents.bytes.bytes.removeAll(keepingCapacity: true)
            contents.ends.removeAll(keepingCapacity: true)
            contents.shards.removeAll(keepingCapacity: true)
            contents.counts = RecordCounts()
        }
    }

    /// Appends a batch's records to their shards' staging files, in order.
    func commit(_ batch: RecordBatch) throws {
        try batch.contents.bytes.bytes.withUnsafeBytes { all in
            var start = 0
            for (end, shard) in zip(batch.contents.ends, batch.contents.shards) {
                let record = UnsafeRawBufferPointer(rebasing: all[start..<end])
                try spillLocks[Int(shard)].withLock { try spills[Int(shard)].append(encoded: record) }
                start = end
            }
        }
    }

    private let pseudonymizer: Pseudonymizer
    let shardCount: Int
    private let spills: [SpillWriter]
    private let spillLocks: [NSLock]
    private let lock = NSLock()
    private var lanes: [Lane] = []
    private var ownLane: Lane!
    private(set) var sources: [Source] = []
    /// Records received, by kind, over every lane.
    public var counts: RecordCounts {
        lock.withLock { lanes.reduce(into: RecordCounts()) { total, lane in for kind in RecordKind.allCases { total[kind] += lane.counts[kind] } } }
    }
    /// Input files that were read, and how many bytes.
    public private(set) var inputBytes = 0
    /// Files present in the input but not ingested (record kinds the model does not hold).
    public private(set) var skippedFiles: [String] = []

    init(pseudonymizer: Pseudonymizer, shardCount: Int, spills: [SpillWriter]) {
        self.pseudonymizer = pseudonymizer
        self.shardCount = shardCount
        self.spills = spills
        self.spillLocks = spills.map { _ in NSLock() }
        ownLane = lane()
    }

    /// A new lane for one reading thread.
    func lane() -> Lane {
        let made = Lane(sink: self, pseudonymizer: pseudonymizer.fresh())
        lock.withLock { lanes.append(made) }
        return made
    }

    private var sourceIndex: [String: Int] = [:]

    /// Registers an input file and the field that names a record's patient; the returned
    /// number identifies them in error locations. The same pair gives the same number.
    func registerSource(path: String, patientField: String) -> Int {
        let key = path + "\u{0}" + patientField
        return lock.withLock {
            if let known = sourceIndex[key] { return known }
            sources.append(Source(path: path, patientField: patientField))
            sourceIndex[key] = sources.count - 1
            return sources.count - 1
        }
    }

    func noteInputBytes(_ n: Int) { lock.withLock { inputBytes += n } }
    func noteSkipped(_ path: String) { lock.withLock { skippedFiles.append(path) } }

    func pseudonym(of patientId: String) throws -> [UInt8] {
        try ownLane.pseudonym(of: patientId)
    }

    func emit(_ record: ClinicalRecord, source: Int, line: Int) throws {
        try ownLane.emit(record, source: source, line: line)
    }
}
