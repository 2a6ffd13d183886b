import Foundation
import Testing
@testable import VaultCore

@Suite("Analysis engine over compact and widened columns")
struct AnalysisEngineTests {
    /// Specs that take every path of the engine: demographics only, a condition cohort
    /// with measures, a medication cohort with an observation range, and codes the
    /// dictionaries do not hold.
    static let specs = [
        #"{"dataset": "d", "purpose": "HRESCH", "asOf": "2024-01-01", "cohort": {"alive": true}, "groupBy": ["sex", "ageBand10"], "#
            + #""measures": [{"name": "n", "count": "patients"}]}"#,
        #"{"dataset": "d", "purpose": "HRESCH", "asOf": "2024-01-01", "cohort": {"conditions": {"anyOf": ["c1", "c5", "c29"]}}, "#
            + #""groupBy": ["sex"], "measures": [{"name": "n", "count": "patients"}, "#
            + #"{"name": "a", "observation": "o3", "stats": ["count", "mean", "p90"]}, {"name": "b", "observation": "o11", "stats": ["max"]}]}"#,
        #"{"dataset": "d", "purpose": "HRESCH", "asOf": "2024-01-01", "cohort": {"medications": {"anyOf": ["m"]}, "#
            + #""observations": [{"code": "o7", "min": -100, "max": 5000}]}, "groupBy": ["state"], "#
            + #""measures": [{"name": "n", "count": "patients"}, {"name": "a", "observation": "o7", "stats": ["count", "min", "max"]}]}"#,
        #"{"dataset": "d", "purpose": "HRESCH", "asOf": "2024-01-01", "cohort": {"conditions": {"anyOf": ["absent"]}, "#
            + #""observations": [{"code": "absent", "min": 0}]}, "measures": [{"name": "n", "count": "patients"}, "#
            + #"{"name": "a", "observation": "absent", "stats": ["count"]}]}"#,
    ]

    @Test("compact columns (runs, narrow codes, packed decimals) give the same partials as widened ones and as version 1",
          arguments: [false, true])
    func compactEqualsWidened(interleaved: Bool) throws {
        let tables = ColumnPackingTests.edgeTables(interleaved: interleaved, oddValues: false, bigDictionary: false)
        let packed = tables.encode(schemaId: ColumnPackingTests.v2), plain = tables.encode(schemaId: ColumnPackingTests.v1)
        let compact = try packed.withUnsafeBytes { try DecodedShard.decode($0, compact: true) }
        let wide = try packed.withUnsafeBytes { try DecodedShard.decode($0) }
        let version1 = try plain.withUnsafeBytes { try DecodedShard.decode($0) }
        // The compact forms are what the engine reads here, not widened copies.
        let observations = try #require(compact.tables[.observations])
        guard case .packedDecimal = observations[4], case .packedDictionary = observations[3] else {
            Issue.record("observation values or codes were widened")
            return
        }
        if case .runs = observations[0] { #expect(!interleaved) } else { #expect(interleaved) }
        var measured = 0
        for text in Self.specs {
            let spec = try JobSpec.parse(text, file: "spec.json")
            let expected = try AnalysisEngine.evaluate(spec, shard: wide)
            #expect(try AnalysisEngine.evaluate(spec, shard: compact) == expected, "\(text)")
            #expect(try AnalysisEngine.evaluate(spec, shard: version1) == expected, "\(text)")
            measured += expected.groups.values.reduce(0) { $0 + $1.values.reduce(0) { $0 + $1.count } }
        }
        #expect(measured > 0, "some spec collects observation values")
    }

    @Test("a clinical row naming no patient of the shard, or columns of unequal length, are refused with what is wrong")
    func badReferences() throws {
        let tables = ColumnPackingTests.edgeTables(interleaved: false, oddValues: false, bigDictionary: false)
        let packed = tables.encode(schemaId: ColumnPackingTests.v2)
        let shard = try packed.withUnsafeBytes { try DecodedShard.decode($0, compact: true) }
        let rows = tables.counts.observations
        let spec = try JobSpec.parse(Self.specs[1], file: "spec.json")
        func with(_ kind: RecordKind, patients column: Column) -> DecodedShard {
            var altered = shard
            altered.tables[kind]![0] = column
            return altered
        }
        let cases: [(DecodedShard, String)] = [
            (with(.observations, patients: .runs(values: [0, 40], ends: [1, rows])), "the observation table refers to patient row 40, but the shard has 40 patients"),
            (with(.observations, patients: .int32([-1] + [Int32](repeating: 0, count: rows - 1))),
             "the observation table refers to patient row -1, but the shard has 40 patients"),
            (with(.conditions, patients: .int32([Int32](repeating: 41, count: tables.counts.conditions))),
             "the condition table refers to patient row 41, but the shard has 40 patients"),
            (with(.observations, patients: .runs(values: [0], ends: [rows - 1])), "the observation table's columns differ in length"),
        ]
        for (altered, message) in cases {
            #expect { try AnalysisEngine.evaluate(spec, shard: altered) } throws: { error in
                (error as? VaultError)?.code == .dataError && (error as? VaultError)?.message == message
            }
        }
        #expect(try AnalysisEngine.evaluate(spec, shard: shard).groups.isEmpty == false)
    }
}
