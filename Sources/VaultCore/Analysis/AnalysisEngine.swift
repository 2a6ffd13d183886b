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
        var conditionPatient: [Int32], conditionCode: (entries: [String], indices: [UInt32])
        var medicationPatient: [Int32], medicationCode: (entries: [String], indices: [UInt32])
        var observationPatient: [Int32], observationCode: (entries: [String], indices: [UInt32]), observationValue: [Double]

        /// Reads the columns `AnalysisEngine.columns(for:)` names for `spec`; tables the
        /// spec does not use are left empty.
        init(_ shard: DecodedShard, spec: JobSpec) throws {
            let used = AnalysisEngine.columns(for: spec)
            func table(_ kind: RecordKind) -> [Column] { used[kind] == nil ? [] : shard.tables[kind] ?? [] }
            func int32(_ c: [Column], _ i: Int) throws -> [Int32] {
                guard i < c.count, case .int32(let v) = c[i] else { throw VaultError(.dataError, "shard plaintext lacks an int32 column \(i)") }
                return v
            }
            func dict(_ c: [Column], _ i: Int) throws -> (entries: [String], indices: [UInt32]) {
                guard i < c.count, case .dictionary(let e, let x) = c[i] else { throw VaultError(.dataError, "shard plaintext lacks a dictionary column \(i)") }
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
            let c = table(.conditions)
            conditionPatient = c.isEmpty ? [] : try int32(c, 0)
            conditionCode = c.isEmpty ? ([], []) : try dict(c, 3)
            let m = table(.medications)
            medicationPatient = m.isEmpty ? [] : try int32(m, 0)
            medicationCode = m.isEmpty ? ([], []) : try dict(m, 3)
            let o = table(.observations)
            observationPatient = o.isEmpty ? [] : try int32(o, 0)
            observationCode = o.isEmpty ? ([], []) : try dict(o, 3)
            if o.isEmpty { observationValue = [] } else {
                guard o.count > 4, case .float64(let v) = o[4] else { throw VaultError(.dataError, "shard plaintext lacks the observation values") }
                observationValue = v
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
        func having(_ patients: [Int32], _ codes: (entries: [String], indices: [UInt32]), _ wanted: [String]) -> [Bool] {
            let wantedSet = Set(wanted)
            let match = codes.entries.map { wantedSet.contains($0) }
            var has = [Bool](repeating: false, count: n)
            for (row, p) in patients.enumerated() where match[Int(codes.indices[row])] { has[Int(p)] = true }
            return has
        }
        if let codes = spec.cohort.conditions {
            let has = having(t.conditionPatient, t.conditionCode, codes)
            for i in 0..<n where !has[i] { inCohort[i] = false }
        }
        if let codes = spec.cohort.medications {
            let has = having(t.medicationPatient, t.medicationCode, codes)
            for i in 0..<n where !has[i] { inCohort[i] = false }
        }
        for filter in spec.cohort.observations {
            var has = [Bool](repeating: false, count: n)
            let match = t.observationCode.entries.map { $0 == filter.code }
            for (row, p) in t.observationPatient.enumerated() where match[Int(t.observationCode.indices[row])] {
                let v = t.observationValue[row]
                guard v.isFinite else { continue }
                if let lo = filter.min, v < lo { continue }
                if let hi = filter.max, v > hi { continue }
                has[Int(p)] = true
            }
            for i in 0..<n where !has[i] { inCohort[i] = false }
        }

        let observationMeasures = spec.measures.compactMap { m -> String? in
            if case .observation(_, let code, _) = m { return code }
            return nil
        }
        var partial = PartialAggregate(observationMeasures: observationMeasures.count)
        var keyOf = [[String]?](repeating: nil, count: n)
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
            keyOf[i] = key
            partial.groups[key, default: PartialAggregate.Group(values: Array(repeating: [], count: observationMeasures.count))].patients += 1
        }
        if !observationMeasures.isEmpty {
            // For each dictionary entry, which measures it feeds.
            let feeds = t.observationCode.entries.map { code in observationMeasures.indices.filter { observationMeasures[$0] == code } }
            for (row, p) in t.observationPatient.enumerated() {
                let targets = feeds[Int(t.observationCode.indices[row])]
                guard !targets.isEmpty, let key = keyOf[Int(p)] else { continue }
                let v = t.observationValue[row]
                guard v.isFinite else { continue }
                for m in targets { partial.groups[key]?.values[m].append(v) }
            }
        }
        return partial
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
