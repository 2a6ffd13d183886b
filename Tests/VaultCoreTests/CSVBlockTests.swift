import Foundation
import Testing
import VaultCrypto
@testable import VaultCore

@Suite("CSV files cut into blocks and parsed by several lanes")
struct CSVBlockTests {
    /// A deterministic generator (SplitMix64), so a failure can be replayed.
    struct Random {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        mutating func pick<T>(_ from: [T]) -> T { from[Int(next() % UInt64(from.count))] }
    }

    /// Fields that test every rule of the reader: quoted separators and newlines, doubled
    /// quotes, a quote in the middle of a plain field, text after a closing quote, CR.
    static let fields = ["", "a", "plain text", "\"q,uo\"", "\"he said \"\"hi\"\"\"", "\"multi\nline\"", "x\"y",
                         "\"\"", "\"a\"b", "\"x\r\ny\"", "\"\"\"\"", "7.25", "a\rb", "\",\n,\""]

    static func trickyCSV(seed: UInt64) -> String {
        var random = Random(state: seed)
        var text = ""
        let records = 1 + Int(random.next() % 40)
        for r in 0..<records {
            if random.next() % 11 == 0 { text += "\n" } // a blank line
            let width = 1 + Int(random.next() % 5)
            text += (0..<width).map { _ in random.pick(fields) }.joined(separator: ",")
            let last = r == records - 1
            if !last || random.next() % 3 != 0 { text += random.pick(["\n", "\r\n"]) }
        }
        if random.next() % 9 == 0 { text += "tail,\"never closed\nat all" }
        return text
    }

    /// Every record (line and fields) a reader gives, then how it ended.
    static func records(_ next: () throws -> CSVReader?) -> [String] {
        var out: [String] = []
        do {
            while let csv = try next() {
                out.append("\(csv.line): " + (0..<csv.fields.count).map { csv.string($0).debugDescription }.joined(separator: " | "))
            }
            out.append("end")
        } catch {
            out.append("error: \(error)")
        }
        return out
    }

    @Test("blocks end only where a record ends: block by block gives the records and lines of one pass",
          arguments: [1, 2, 3, 5, 8, 13, 64, 4096])
    func blocksMatchOnePass(blockSize: Int) throws {
        let dir = TemporaryDirectory()
        let path = dir.path + "/t.csv"
        for seed in UInt64(0)..<80 {
            let text = Self.trickyCSV(seed: seed &* 7919 &+ UInt64(blockSize))
            try text.write(toFile: path, atomically: true, encoding: .utf8)
            let whole = try CSVReader(path: path)
            let expected = Self.records { try whole.next() ? whole : nil }

            let blocks = try CSVBlockReader(path: path, blockSize: blockSize)
            var current: CSVReader?
            var lengths: [Int] = []
            let actual = Self.records {
                while true {
                    if let csv = current, try csv.next() { return csv }
                    guard let block = try blocks.next() else { return nil }
                    lengths.append(block.bytes.count)
                    current = CSVReader(bytes: block.bytes, path: path, firstLine: block.firstLine)
                }
            }
            #expect(actual == expected, "seed \(seed), block size \(blockSize): \(text.debugDescription)")
            #expect(lengths.reduce(0, +) == text.utf8.count && blocks.bytesRead == text.utf8.count)
        }
    }

    @Test("a block ends after the last newline outside quotes, whatever the quoting before it")
    func lastRecordEnd() {
        func end(_ text: String) -> Int? { CSVBlockReader.lastRecordEnd(Array(text.utf8)) }
        #expect(end("a,b\nc,d\ne") == 8)
        #expect(end("a,\"b\nc\"") == nil)             // the only newline is quoted
        #expect(end("a,\"b\nc\"\nd") == 8)
        #expect(end("x\"y\nz") == 4)                  // a quote inside a plain field is a plain character
        #expect(end("\"a\"\"\n\"\nb") == 7)           // a doubled quote does not close the field
        #expect(end("a,\"b\"") == nil)
        #expect(end("a,\"b\"\"") == nil)              // a doubled quote might continue past the block
        #expect(end("\"a\"b\nc") == 5)                // text after a closing quote, then the end of the record
        #expect(CSVBlockReader.newlines(Array("a\nb\n\"c\nd\"\n".utf8)) == 4)
        #expect(CSVBlockReader.newlines(Array(String(repeating: "0123456\n", count: 9).utf8) + [10]) == 10)
    }

    /// Stages a Synthea folder into three shards' spill files, with a fixed key, and returns them.
    static func stage(_ folder: String, lanes: Int, blockSize: Int, partition: SecureBytes, spillKey: SecureBytes) throws -> [[UInt8]] {
        let dir = TemporaryDirectory("stage")
        let spills = try (0..<3).map { try SpillWriter(path: dir.path + "/spill-\($0)", key: spillKey, shard: $0) }
        let sink = IngestSink(pseudonymizer: Pseudonymizer(key: partition), shardCount: 3, spills: spills)
        var source = SyntheaCSVSource(directories: [folder], lanes: lanes)
        source.blockSize = blockSize
        try source.read(into: sink)
        for spill in spills { try spill.finish() }
        #expect(sink.counts.observations > 0 && sink.counts.patients > 0)
        return try (0..<3).map { try FileIO.readAll(dir.path + "/spill-\($0)") }
    }

    @Test("several lanes over small blocks stage the same records in the same order as one lane",
          .enabled(if: CoreTestData.available), arguments: [(2, 997), (3, 509), (4, 8192)])
    func lanesStageInOrder(lanes: Int, blockSize: Int) throws {
        let folder = CoreTestData.syntheaCSV!
        let partition = try SecureBytes.random(count: 32), spillKey = try SecureBytes.random(count: 32)
        let one = try Self.stage(folder, lanes: 1, blockSize: 4 << 20, partition: partition, spillKey: spillKey)
        let many = try Self.stage(folder, lanes: lanes, blockSize: blockSize, partition: partition, spillKey: spillKey)
        #expect(one.map(\.count).allSatisfy { $0 > 0 })
        // Same key and the same records in the same order: the same sealed bytes.
        #expect(many == one)
    }

    @Test("with several lanes the error reported is the first bad row of the file, every time")
    func firstErrorWins() throws {
        let vaultDir = TemporaryDirectory("vault"), input = TemporaryDirectory("input")
        let vault = try Vault.initialize(at: vaultDir.path)
        var rows = "DATE,PATIENT,ENCOUNTER,CATEGORY,CODE,DESCRIPTION,VALUE,UNITS,TYPE\n"
        for i in 0..<400 {
            let id = TinySynthea.patientId(i % 6)
            switch i {
            case 120: rows += "not a date,\(id),e,laboratory,4548-4,HbA1c,7.0,%,numeric\n" // line 122
            case 300: rows += "2015-05-05,\(id),e,laboratory,,HbA1c,7.0,%,numeric\n"       // line 302
            default: rows += "2015-05-05,\(id),e,laboratory,4548-4,HbA1c,7.\(i % 10),%,numeric\n"
            }
        }
        try TinySynthea.write(to: input.path, overrides: ["observations.csv": rows])
        var ingestor = Ingestor(vault: vault)
        ingestor.concurrency = 4
        ingestor.csvBlockSize = 200
        for attempt in 0..<5 {
            do {
                _ = try ingestor.ingest(dataset: "d\(attempt)", format: .syntheaCSV, paths: [input.path], shards: 2, replace: false)
                Issue.record("bad input was accepted")
            } catch let error as VaultError {
                #expect(error.location?.hasSuffix("observations.csv:122 field 'DATE'") == true, "location was \(error.location ?? "nil")")
            }
        }
    }

    @Test("a staging block that authenticates but ends inside a record is refused naming the staging file")
    func corruptStagingBlock() throws {
        let dir = TemporaryDirectory("staging")
        let path = dir.path + "/spill-00003"
        let key = try SecureBytes.random(count: 32)
        // A conditions record cut after its source number: sealed like a real block.
        let record: [UInt8] = [RecordKind.conditions.rawValue, 1, 0, 0, 0, 9]
        let sealed = try AESGCM(key: key).seal(nonce: SpillWriter.nonce(shard: 3, counter: 0), plaintext: record)
        var framed = CanonicalWriter()
        framed.u32(UInt32(sealed.count))
        try Data(framed.bytes + sealed).write(to: URL(fileURLWithPath: path))
        #expect {
            try SpillReader.forEachRecord(path: path, key: key, shard: 3) { _, body in try SpillCodec.skipBody(.conditions, &body) }
        } throws: { error in
            let error = error as? VaultError
            return error?.code == .ioError && error?.location == path && error?.message.hasPrefix("staging file is corrupt: plaintext truncated") == true
        }
        // The same block under another shard's nonce fails authentication instead.
        #expect { try SpillReader.forEachRecord(path: path, key: key, shard: 4) { _, _ in } } throws: { error in
            (error as? VaultError)?.message.contains("failed authentication") == true
        }
    }
}
