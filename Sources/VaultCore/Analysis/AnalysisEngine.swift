import Foundation

/// Mergeable partial aggregates of one job: per group, the cohort's patient count and every
/// value of each observation measure (kept whole, so quantiles are exact).
public struct PartialAggregate: Sendable, Equatable {
    public struct Group: Sendable, Equatable {
        public var patients = 0
        /// One list per observation measure, in the spec's order.
        public var values: [[Double]]
    }

    public var groups: [[String]: Group] = [:]
    let observationMeasures: Int

    public init(observationMeasures: Int) { self.observationMeasures = observationMeasures }

    public mutating func merge(_ other: PartialAggregate) {
        for (key, g) in other.groups {
            var mine = groups[key] ?? Group(values: Array(repeating: [], count: observationMeasures))
            mine.patients += g.patients
            for i in 0..<min(mine.values.count, g.values.count) { mine.values[i].append(contentsOf: g.values[i]) }
            groups[key] = mine
        }
    }
}

/// Evaluates a job spec over the decoded tables of one shard.
public enum AnalysisEngine {
    struct Tables {
        var pseudonymCount: Int
        var birth: [Int32], death: [Int32]
        var sex: (entries: [String], indices: [UInt32])
        var race: (entries: [String], indices: [UInt32])
        var ethnicity: (entries: [String], indices: [UInt32])
        var state: (entries: [String], indices: [UInt32])
        var conditionPatients = PatientRuns(), conditionCode = CodeColumn()
        var medicationPatients = PatientRuns(), medicationCode = CodeColumn()
        var observationPatients = PatientRuns(), observationCode = CodeColumn(), observationValue = ValueColumn.wide([])

        /// Reads the columns `AnalysisEngine.columns(for:)` names for `spec`, compact or
        /// widened; tables the spec does not use are left empty. Every clinical row must
        /// name one of the shard's patients.
        init(_ shard: DecodedShard, spec: JobSpec) throws {
            let used = AnalysisEngine.columns(for: spec)
            func table(_ kind: RecordKind) -> [Column] { used[kind] == nil ? [] : shard.tables[kind] ?? [] }
            func column(_ c: [Column], _ i: Int) -> Column { i < c.count ? c[i] : .skipped(rows: 0) }
            func int32(_ c: [Column], _ i: Int) throws -> [Int32] {
                guard case .int32(let v) = column(c, i).widened() else { throw VaultError(.dataError, "shard plaintext lacks an int32 column \(i)") }
                return v
            }
            func dict(_ c: [Column], _ i: Int) throws -> (entries: [String], indices: [UInt32]) {
                guard case .dictionary(let e, let x) = column(c, i).widened() else { throw VaultError(.dataError, "shard plaintext lacks a dictionary column \(i)") }
                return (e, x)
            }
            let p = table(.patients)
            birth = try int32(p, 1)
            death = try int32(p, 2)
            sex = try dict(p, 3)
            // Group keys in one vocabulary whatever the input format (Demographics).
            race = try dict(p, 4)
            race.entries = race.entries.map(Demographics.race)
            ethnicity = try dict(p, 5)
            ethnicity.entries = ethnicity.entries.map(Demographics.ethnicity)
            state = try dict(p, 6)
            state.entries = state.entries.map(Demographics.state)
            pseudonymCount = birth.count
            let n = pseudonymCount
            let c = table(.conditions)
            if !c.isEmpty {
                conditionPatients = try PatientRuns(column(c, 0), patients: n, table: "condition")
                conditionCode = try CodeColumn(column(c, 3), table: "condition")
            }
            let m = table(.medications)
            if !m.isEmpty {
                medicationPatients = try PatientRuns(column(m, 0), patients: n, table: "medication")
                medicationCode = try CodeColumn(column(m, 3), table: "medication")
            }
            let o = table(.observations)
            if !o.isEmpty {
                observationPatients = try PatientRuns(column(o, 0), patients: n, table: "observation")
                observationCode = try CodeColumn(column(o, 3), table: "observation")
                observationValue = try ValueColumn(column(o, 4))
            }
            // The loops read codes and values at the rows the runs name, unchecked.
            for (what, patients, codes, values) in [("condition", conditionPatients, conditionCode, nil), ("medication", medicationPatients, medicationCode, nil),
                                                    ("observation", observationPatients, observationCode, observationValue.count)] {
                guard patients.rowCount == codes.count, values == nil || values == codes.count else {
                    throw VaultError(.dataError, "the \(what) table's columns differ in length")
                }
            }
        }
    }

    /// The columns an evaluation of `spec` reads, by table and position: the patients'
    /// demographics always; a condition's or a medication's patient and code when the
    /// cohort filters on them; an observation's patient, code and value when the cohort
    /// or a measure uses observations.
    public static func columns(for spec: JobSpec) -> [RecordKind: Set<Int>] {
        var used: [RecordKind: Set<Int>] = [.patients: [1, 2, 3, 4, 5, 6]]
        if spec.cohort.conditions != nil { used[.conditions] = [0, 3] }
        if spec.cohort.medications != nil { used[.medications] = [0, 3] }
        let observes = spec.measures.contains { if case .observation = $0 { return true } else { return false } }
        if observes || !spec.cohort.observations.isEmpty { used[.observations] = [0, 3, 4] }
        return used
    }

    /// Whole years from `birth` to `asOf` (both day numbers).
    static func age(birth: Int, asOf: Int) -> Int {
        let b = ClinicalTime.civil(fromDays: birth), a = ClinicalTime.civil(fromDays: asOf)
        return a.year - b.year - ((a.month, a.day) < (b.month, b.day) ? 1 : 0)
    }

    static func ageBand10(_ age: Int) -> String {
        let low = (age / 10) * 10
        return "\(low)-\(low + 9)"
    }

    /// The patients of the cohort, and the partial aggregates of the measures.
    public static func evaluate(_ spec: JobSpec, shard: DecodedShard) throws -> PartialAggregate {
        let t = try Tables(shard, spec: spec)
        guard let asOf = ClinicalTime.days(Array(spec.asOf.utf8)).map(Int.init) else {
            throw VaultError(.usage, "asOf '\(spec.asOf)' is not a date")
        }
        let n = t.pseudonymCount
        var inCohort = [Bool](repeating: true, count: n)
        var ages = [Int](repeating: 0, count: n)
        for i in 0..<n {
            // A patient born after asOf is in no cohort: they did not exist then.
            guard t.birth[i] != Absent.date, Int(t.birth[i]) <= asOf else { inCohort[i] = false; continue }
            ages[i] = age(birth: Int(t.birth[i]), asOf: asOf)
            if let sexes = spec.cohort.sex, !sexes.contains(where: { $0.rawValue == t.sex.entries[Int(t.sex.indices[i])] }) { inCohort[i] = false; continue }
            if let lo = spec.cohort.ageMin, ages[i] < lo { inCohort[i] = false; continue }
            if let hi = spec.cohort.ageMax, ages[i] > hi { inCohort[i] = false; continue }
            if let alive = spec.cohort.alive {
                let dead = t.death[i] != Absent.date && Int(t.death[i]) <= asOf
                if alive == dead { inCohort[i] = false; continue }
            }
        }
        if let codes = spec.cohort.conditions {
            let has = having(t.conditionPatients, t.conditionCode, codes, among: inCohort)
            for i in 0..<n where !has[i] { inCohort[i] = false }
        }
        if let codes = spec.cohort.medications {
            let has = having(t.medicationPatients, t.medicationCode, codes, among: inCohort)
            for i in 0..<n where !has[i] { inCohort[i] = false }
        }
        for filter in spec.cohort.observations {
            var has = [Bool](repeating: false, count: n)
            let match = t.observationCode.entries.map { $0 == filter.code }
            if match.contains(true) {
                let width = t.observationCode.width
                t.observationCode.withIndices { codes in
                    t.observationPatients.forEachRun { p, rows in
                        guard inCohort[p] else { return }
                        for row in rows where match[Int(PackedIntegers.load(codes, width: width, at: row))] {
                            let v = t.observationValue[row]
                            guard v.isFinite else { continue }
                            if let lo = filter.min, v < lo { continue }
                            if let hi = filter.max, v > hi { continue }
                            has[p] = true
                            break
                        }
                    }
                }
            }
            for i in 0..<n where !has[i] { inCohort[i] = false }
        }

        let observationMeasures = spec.measures.compactMap { m -> String? in
            if case .observation(_, let code, _) = m { return code }
            return nil
        }
        // Groups numbered in order of first appearance; each patient of the cohort gets its
        // group's number, so that the per-row loop below looks up no string keys.
        var groupKeys: [[String]] = [], groupNumber: [[String]: Int] = [:], groupPatients: [Int] = []
        var groupOf = [Int](repeating: -1, count: n)
        for i in 0..<n where inCohort[i] {
            let key = spec.groupBy.map { dimension -> String in
                switch dimension {
                case .sex: return t.sex.entries[Int(t.sex.indices[i])]
                case .ageBand10: return ageBand10(ages[i])
                case .race: return t.race.entries[Int(t.race.indices[i])]
                case .ethnicity: return t.ethnicity.entries[Int(t.ethnicity.indices[i])]
                case .state: return t.state.entries[Int(t.state.indices[i])]
                }
            }
            let g: Int
            if let known = groupNumber[key] { g = known } else {
                g = groupKeys.count
                groupNumber[key] = g
                groupKeys.append(key)
                groupPatients.append(0)
            }
            groupOf[i] = g
            groupPatients[g] += 1
        }
        let measureCount = observationMeasures.count
        // values[g * measureCount + m]: the values of measure m in group g.
        var values = [[Double]](repeating: [], count: groupKeys.count * measureCount)
        // For each dictionary entry, which measures it feeds (most feed none).
        let feeds = t.observationCode.entries.map { code in observationMeasures.indices.filter { observationMeasures[$0] == code } }
        let feedsAny = feeds.map { !$0.isEmpty }
        if feedsAny.contains(true) && !groupKeys.isEmpty {
            let width = t.observationCode.width
            t.observationCode.withIndices { codes in
                t.observationPatients.forEachRun { p, rows in
                    let g = groupOf[p]
                    guard g >= 0 else { return }
                    for row in rows {
                        let code = Int(PackedIntegers.load(codes, width: width, at: row))
                        guard feedsAny[code] else { continue }
                        let v = t.observationValue[row]
                        guard v.isFinite else { continue }
                        for m in feeds[code] { values[g * measureCount + m].append(v) }
                    }
                }
            }
        }
        var partial = PartialAggregate(observationMeasures: measureCount)
        for (g, key) in groupKeys.enumerated() {
            partial.groups[key] = PartialAggregate.Group(patients: groupPatients[g],
                                                         values: Array(values[(g * measureCount)..<((g + 1) * measureCount)]))
        }
        return partial
    }

    /// Which patients among `candidates` have a row whose code is one of `wanted`.
    static func having(_ patients: PatientRuns, _ codes: CodeColumn, _ wanted: [String], among candidates: [Bool]) -> [Bool] {
        let wantedSet = Set(wanted)
        let match = codes.entries.map { wantedSet.contains($0) }
        var has = [Bool](repeating: false, count: candidates.count)
        guard match.contains(true) else { return has }
        let width = codes.width
        codes.withIndices { indices in
            patients.forEachRun { p, rows in
                guard candidates[p] else { return }
                for row in rows where match[Int(PackedIntegers.load(indices, width: width, at: row))] {
                    has[p] = true
                    break
                }
            }
        }
        return has
    }
}

/// A clinical table's patient column as runs: run `i` is patient `patients[i]` on rows
/// `ends[i - 1]..<ends[i]` (rows come patient by patient, so there are about as many runs
/// as patients).
struct PatientRuns {
    private(set) var patients: [Int32] = []
    private(set) var ends: [Int] = []

    init() {}

    /// From a compact run column or a per-row one; every patient must be one of `patients`.
    init(_ column: Column, patients count: Int, table: String) throws {
        switch column {
        case .runs(let values, let ends):
            patients = values
            self.ends = ends
        case .int32(let rows):
            for (row, p) in rows.enumerated() {
                if row > 0 && p == patients[patients.count - 1] { ends[ends.count - 1] = row + 1 } else {
                    patients.append(p)
                    ends.append(row + 1)
                }
            }
        default:
            throw VaultError(.dataError, "shard plaintext lacks the \(table) patient column")
        }
        var low = Int32.max, high = Int32.min
        for p in patients { low = Swift.min(low, p); high = Swift.max(high, p) }
        guard patients.isEmpty || (low >= 0 && Int(high) < count) else {
            throw VaultError(.dataError, "the \(table) table refers to patient row \(low < 0 ? low : high), but the shard has \(count) patients")
        }
    }

    var rowCount: Int { ends.last ?? 0 }

    /// Calls `body` with each run's patient and rows, in order.
    @inline(__always)
    func forEachRun(_ body: (Int, Range<Int>) -> Void) {
        patients.withUnsafeBufferPointer { patients in
            ends.withUnsafeBufferPointer { ends in
                var start = 0
                for i in 0..<patients.count {
                    body(Int(patients[i]), start..<ends[i])
                    start = ends[i]
                }
            }
        }
    }
}

/// A dictionary-coded column: its entries, and one index of 1, 2 or 4 bytes per row
/// (checked against the entries when decoded).
struct CodeColumn {
    private(set) var entries: [String] = []
    private var indices = PackedIntegers(width: 1, bytes: [])

    init() {}

    init(_ column: Column, table: String) throws {
        switch column {
        case .packedDictionary(let entries, let indices):
            self.entries = entries
            self.indices = indices
        case .dictionary(let entries, let wide):
            self.entries = entries
            var bytes: [UInt8] = []
            bytes.reserveCapacity(4 * wide.count)
            for index in wide { withUnsafeBytes(of: index.littleEndian) { bytes.append(contentsOf: $0) } }
            indices = PackedIntegers(width: 4, bytes: bytes)
        default:
            throw VaultError(.dataError, "shard plaintext lacks the \(table) codes")
        }
    }

    var width: Int { indices.width }
    var count: Int { indices.count }

    @inline(__always)
    func withIndices<R>(_ body: (UnsafeRawBufferPointer) -> R) -> R { indices.bytes.withUnsafeBytes(body) }
}

/// Observation values: as decoded, or kept packed and decoded one by one as read.
enum ValueColumn {
    case wide([Double])
    case packed(base: Int64, power: Double, none: UInt64, values: PackedIntegers)

    init(_ column: Column) throws {
        switch column {
        case .float64(let values): self = .wide(values)
        case .packedDecimal(let scale, let base, let values):
            self = .packed(base: base, power: ColumnarCodec.powersOfTen[scale], none: ColumnarCodec.noneOffset(width: values.width), values: values)
        default: throw VaultError(.dataError, "shard plaintext lacks the observation values")
        }
    }

    var count: Int {
        switch self {
        case .wide(let values): return values.count
        case .packed(_, _, _, let values): return values.count
        }
    }

    subscript(_ row: Int) -> Double {
        switch self {
        case .wide(let values): return values[row]
        case .packed(let base, let power, let none, let values): return ColumnarCodec.decimal(values[row], base: base, power: power, none: none)
        }
    }
}

/// The revealed result of an analysis.
public struct AnalysisResult: Sendable {
    public struct Statistics: Sendable, Equatable {
        public var values: [(name: String, value: Double?)]
        public static func == (a: Statistics, b: Statistics) -> Bool {
            a.values.map(\.name) == b.values.map(\.name) && a.values.map(\.value) == b.values.map(\.value)
        }
    }

    public enum MeasureValue: Sendable, Equatable {
        case count(Int)
        case statistics(Statistics)
    }

    public struct Group: Sendable, Equatable {
        public var key: [(dimension: String, value: String)]
        public var suppressed: Bool
        /// In the spec's order; empty when suppressed.
        public var measures: [(name: String, value: MeasureValue)]
        public static func == (a: Group, b: Group) -> Bool {
            a.key.map(\.dimension) == b.key.map(\.dimension) && a.key.map(\.value) == b.key.map(\.value) && a.suppressed == b.suppressed
                && a.measures.map(\.name) == b.measures.map(\.name) && a.measures.map(\.value) == b.measures.map(\.value)
        }
    }

    public var id: String
    public var dataset: String
    public var minCell: Int
    public var groups: [Group]

    /// Applies the disclosure rule and computes every statistic from merged partials.
    public static func finish(_ partial: PartialAggregate, spec: JobSpec, id: String, minCell: Int) -> AnalysisResult {
        var groups: [Group] = []
        var keys = Array(partial.groups.keys)
        if spec.groupBy.isEmpty && keys.isEmpty { keys = [[]] } // one group whose key is {}
        for key in keys.sorted(by: { $0.lexicographicallyPrecedes($1) }) {
            let g = partial.groups[key] ?? PartialAggregate.Group(values: [])
            let labelled = zip(spec.groupBy.map(\.rawValue), key).map { (dimension: $0, value: $1) }
            if g.patients < minCell {
                groups.append(Group(key: labelled, suppressed: true, measures: []))
                continue
            }
            var measures: [(name: String, value: MeasureValue)] = []
            var observationIndex = 0
            for measure in spec.measures {
                switch measure {
                case .patients(let name):
                    measures.append((name, .count(g.patients)))
                case .observation(let name, _, let stats):
                    let values = observationIndex < g.values.count ? g.values[observationIndex] : []
                    observationIndex += 1
                    measures.append((name, .statistics(Statistics(values: stats.map { ($0.description, statistic($0, of: values)) }))))
                }
            }
            groups.append(Group(key: labelled, suppressed: false, measures: measures))
        }
        return AnalysisResult(id: id, dataset: spec.dataset, minCell: minCell, groups: groups)
    }

    /// One statistic; nil over no values (and for stddev over fewer than two).
    static func statistic(_ s: JobSpec.Statistic, of values: [Double]) -> Double? {
        guard !values.isEmpty else { return s == .count ? 0 : nil }
        switch s {
        case .count: return Double(values.count)
        case .mean: return sum(values) / Double(values.count)
        case .min: return values.min()
        case .max: return values.max()
        case .stddev:
            guard values.count >= 2 else { return nil }
            let mean = sum(values) / Double(values.count)
            return (sum(values.map { ($0 - mean) * ($0 - mean) }) / Double(values.count - 1)).squareRoot()
        case .percentile(let p):
            let sorted = values.sorted()
            let h = Double(sorted.count - 1) * Double(p) / 100
            let lo = Int(h.rounded(.down))
            let hi = min(lo + 1, sorted.count - 1)
            return sorted[lo] + (h - Double(lo)) * (sorted[hi] - sorted[lo])
        }
    }

    /// Compensated (Neumaier) summation: the result does not depend on how the values were
    /// split across shards, to within the last bits.
    static func sum(_ values: [Double]) -> Double {
        var total = 0.0, compensation = 0.0
        for v in values {
            let t = total + v
            compensation += abs(total) >= abs(v) ? (total - t) + v : (v - t) + total
            total = t
        }
        return total + compensation
    }

    /// The revealed JSON (docs/job-spec.md): `{"result", "dataset", "minCell", "groups": [...]}`.
    public func json() throws -> [UInt8] {
        func number(_ v: Double?) -> Any { v.map { $0 as Any } ?? NSNull() }
        let object: [String: Any] = [
            "result": id,
            "dataset": dataset,
            "minCell": minCell,
            "groups": groups.map { g -> [String: Any] in
                var out: [String: Any] = ["key": Dictionary(uniqueKeysWithValues: g.key.map { ($0.dimension, $0.value) }), "suppressed": g.suppressed]
                if !g.suppressed {
                    out["measures"] = Dictionary(uniqueKeysWithValues: g.measures.map { m -> (String, Any) in
                        switch m.value {
                        case .count(let n): return (m.name, n)
                        case .statistics(let s):
                            return (m.name, Dictionary(uniqueKeysWithValues: s.values.map { ($0.name, $0.name == "count" ? $0.value.map { Int($0) as Any } ?? NSNull() : number($0.value)) }))
                        }
                    })
                }
                return out
            },
        ]
        return [UInt8](try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]))
    }
}
