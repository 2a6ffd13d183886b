import Foundation
import Yams

/// A declarative analysis job (docs/job-spec.md), read from JSON or YAML.
public struct JobSpec: Sendable, Equatable {
    public enum Sex: String, Sendable, CaseIterable { case female, male }
    public enum Dimension: String, Sendable, CaseIterable { case sex, ageBand10, race, ethnicity, state }

    public struct ObservationFilter: Sendable, Equatable {
        public var code: String
        public var min: Double?
        public var max: Double?
    }

    public struct Cohort: Sendable, Equatable {
        public var sex: [Sex]?
        public var ageMin: Int?
        public var ageMax: Int?
        public var alive: Bool?
        public var conditions: [String]?
        public var medications: [String]?
        public var observations: [ObservationFilter] = []
    }

    public enum Statistic: Sendable, Equatable, CustomStringConvertible {
        case count, mean, stddev, min, max
        /// A quantile, 0...100 (p50 = median), interpolated linearly.
        case percentile(Int)

        init?(_ text: String) {
            switch text {
            case "count": self = .count
            case "mean": self = .mean
            case "stddev": self = .stddev
            case "min": self = .min
            case "max": self = .max
            default:
                guard text.hasPrefix("p"), let n = Int(text.dropFirst()), (0...100).contains(n), String(n) == text.dropFirst() else { return nil }
                self = .percentile(n)
            }
        }

        public var description: String {
            switch self {
            case .count: return "count"
            case .mean: return "mean"
            case .stddev: return "stddev"
            case .min: return "min"
            case .max: return "max"
            case .percentile(let n): return "p\(n)"
            }
        }
    }

    public enum Measure: Sendable, Equatable {
        case patients(name: String)
        case observation(name: String, code: String, stats: [Statistic])

        public var name: String {
            switch self {
            case .patients(let name), .observation(let name, _, _): return name
            }
        }
    }

    public var dataset: String
    public var purpose: String
    /// The reference date for age and `alive`, `YYYY-MM-DD`.
    public var asOf: String
    public var cohort: Cohort
    public var groupBy: [Dimension]
    public var measures: [Measure]
    public var minCell: Int?

    /// A problem in a spec: where (file:line) and what.
    public struct Problem: Error, CustomStringConvertible, Sendable {
        public let location: String
        public let message: String
        public var description: String { "\(location): \(message)" }
    }

    /// Parses and validates a spec; every problem is reported with its line.
    public static func parse(_ text: String, file: String) throws -> JobSpec {
        func fail(_ node: Node?, _ message: String) -> Problem { Problem(location: "\(file):\(node?.mark?.line ?? 1)", message: message) }
        let root: Node?
        do { root = try Yams.compose(yaml: text) } catch {
            throw Problem(location: file, message: "not valid JSON or YAML: \(error)")
        }
        guard let root, root.mapping != nil else { throw fail(root, "a job spec is an object with dataset, purpose, measures, ...") }
        func string(_ node: Node, _ field: String) throws -> String {
            guard let s = node.scalar?.string, !s.isEmpty else { throw fail(node, "'\(field)' must be a non-empty string") }
            return s
        }
        func strings(_ node: Node, _ field: String) throws -> [String] {
            guard let seq = node.sequence, !seq.isEmpty else { throw fail(node, "'\(field)' must be a non-empty list") }
            return try seq.map { try string($0, field) }
        }
        func number(_ node: Node, _ field: String) throws -> Double {
            guard let v = node.float ?? node.int.map(Double.init), v.isFinite else { throw fail(node, "'\(field)' must be a number") }
            return v
        }
        func integer(_ node: Node, _ field: String, _ range: ClosedRange<Int>) throws -> Int {
            guard let v = node.int, range.contains(v) else { throw fail(node, "'\(field)' must be a whole number in \(range.lowerBound)...\(range.upperBound)") }
            return v
        }
        func fields(_ node: Node, _ what: String, allowed: [String]) throws -> [(String, Node, Node)] {
            guard let map = node.mapping else { throw fail(node, "'\(what)' must be an object") }
            return try map.map { k, v in
                let key = k.string ?? ""
                guard allowed.contains(key) else { throw fail(k, "unknown field '\(key)' in \(what) (expected: \(allowed.joined(separator: ", ")))") }
                return (key, k, v)
            }
        }

        var dataset: String?, purpose: String?, asOf: String?
        var cohort = Cohort()
        var groupBy: [Dimension] = []
        var measures: [Measure] = []
        var minCell: Int?
        for (key, _, value) in try fields(root, "the job spec", allowed: ["dataset", "purpose", "asOf", "cohort", "groupBy", "measures", "disclosure"]) {
            switch key {
            case "dataset":
                dataset = try string(value, key)
                do { try Vault.validateDatasetName(dataset ?? "") } catch let error as VaultError { throw fail(value, error.message) }
            case "purpose":
                purpose = try string(value, key)
                guard PurposeOfUse.codes.contains(purpose ?? "") else { throw fail(value, "purpose '\(purpose ?? "")' is not an HL7 PurposeOfUse code") }
            case "asOf":
                asOf = try string(value, key)
                guard (asOf ?? "").utf8.count == 10, ClinicalTime.days(Array((asOf ?? "").utf8)) != nil else { throw fail(value, "asOf must be a date YYYY-MM-DD") }
            case "cohort":
                for (field, _, v) in try fields(value, "cohort", allowed: ["sex", "age", "alive", "conditions", "medications", "observations"]) {
                    switch field {
                    case "sex":
                        cohort.sex = try strings(v, "sex").map { s in
                            guard let sex = Sex(rawValue: s) else { throw fail(v, "sex '\(s)' must be female or male") }
                            return sex
                        }
                    case "age":
                        for (bound, _, b) in try fields(v, "age", allowed: ["min", "max"]) {
                            let n = try integer(b, "age.\(bound)", 0...200)
                            if bound == "min" { cohort.ageMin = n } else { cohort.ageMax = n }
                        }
                        if let lo = cohort.ageMin, let hi = cohort.ageMax, lo > hi { throw fail(v, "age.min is above age.max") }
                    case "alive":
                        guard let b = v.bool else { throw fail(v, "'alive' must be true or false") }
                        cohort.alive = b
                    case "conditions", "medications":
                        var codes: [String] = []
                        for (_, _, list) in try fields(v, field, allowed: ["anyOf"]) { codes = try strings(list, "\(field).anyOf") }
                        guard !codes.isEmpty else { throw fail(v, "'\(field)' needs anyOf: [codes]") }
                        if field == "conditions" { cohort.conditions = codes } else { cohort.medications = codes }
                    default: // observations
                        guard let seq = v.sequence, !seq.isEmpty else { throw fail(v, "'observations' must be a non-empty list") }
                        for item in seq {
                            var filter = ObservationFilter(code: "", min: nil, max: nil)
                            for (f, _, fv) in try fields(item, "an observation filter", allowed: ["code", "min", "max"]) {
                                switch f {
                                case "code": filter.code = try string(fv, "code")
                                case "min": filter.min = try number(fv, "min")
                                default: filter.max = try number(fv, "max")
                                }
                            }
                            guard !filter.code.isEmpty else { throw fail(item, "an observation filter needs a 'code'") }
                            if let lo = filter.min, let hi = filter.max, lo > hi { throw fail(item, "min is above max") }
                            cohort.observations.append(filter)
                        }
                    }
                }
            case "groupBy":
                groupBy = try strings(value, key).map { d in
                    guard let dim = Dimension(rawValue: d) else { throw fail(value, "groupBy '\(d)' must be one of \(Dimension.allCases.map(\.rawValue).joined(separator: ", "))") }
                    return dim
                }
                guard Set(groupBy).count == groupBy.count else { throw fail(value, "groupBy names a dimension twice") }
            case "measures":
                guard let seq = value.sequence, !seq.isEmpty else { throw fail(value, "'measures' must be a non-empty list") }
                for item in seq {
                    var name: String?, count: String?, observation: String?, stats: [Statistic]?
                    for (f, _, fv) in try fields(item, "a measure", allowed: ["name", "count", "observation", "stats"]) {
                        switch f {
                        case "name": name = try string(fv, "name")
                        case "count": count = try string(fv, "count")
                        case "observation": observation = try string(fv, "observation")
                        default:
                            stats = try strings(fv, "stats").map { s in
                                guard let st = Statistic(s) else { throw fail(fv, "statistic '\(s)' must be count, mean, stddev, min, max or pNN (0-100)") }
                                return st
                            }
                        }
                    }
                    guard let name else { throw fail(item, "a measure needs a 'name'") }
                    guard !measures.contains(where: { $0.name == name }) else { throw fail(item, "two measures are named '\(name)'") }
                    switch (count, observation) {
                    case ("patients"?, nil):
                        guard stats == nil else { throw fail(item, "a patient count takes no 'stats'") }
                        measures.append(.patients(name: name))
                    case (nil, let code?):
                        guard let stats, !stats.isEmpty else { throw fail(item, "an observation measure needs 'stats'") }
                        measures.append(.observation(name: name, code: code, stats: stats))
                    case (let other?, nil):
                        throw fail(item, "count '\(other)' is not supported (use count: patients)")
                    default:
                        throw fail(item, "a measure has either count: patients or observation: CODE with stats")
                    }
                }
            default: // disclosure
                for (_, _, v) in try fields(value, "disclosure", allowed: ["minCell"]) { minCell = try integer(v, "minCell", 1...1_000_000) }
            }
        }
        guard let dataset else { throw fail(root, "the job spec needs a 'dataset'") }
        guard let purpose else { throw fail(root, "the job spec needs a 'purpose'") }
        guard !measures.isEmpty else { throw fail(root, "the job spec needs 'measures'") }
        let today = AuditTime.now().prefix(10)
        return JobSpec(dataset: dataset, purpose: purpose, asOf: asOf ?? String(today), cohort: cohort, groupBy: groupBy,
                       measures: measures, minCell: minCell)
    }

    /// Reads and parses a spec file.
    public static func load(_ path: String) throws -> JobSpec {
        let bytes = try FileIO.readAll(path)
        return try parse(String(decoding: bytes, as: UTF8.self), file: path)
    }

    /// The minimum cell size in force: the spec may raise the policy's floor, never lower it.
    public func effectiveMinCell(policyFloor: Int?) throws -> Int {
        let floor = policyFloor ?? 1
        if let minCell, minCell < floor {
            throw VaultError(.permissionDenied, "the job spec asks for minCell \(minCell), below the policy's floor of \(floor)")
        }
        return max(minCell ?? floor, floor)
    }
}
