import Foundation
import Testing
@testable import VaultCore

@Suite("Job specs: JSON and YAML, every field, errors with file and line")
struct JobSpecTests {
    static let example = """
    {"dataset": "synthea", "purpose": "HRESCH", "asOf": "2020-01-01",
     "cohort": {"sex": ["female"], "age": {"min": 18, "max": 64}, "alive": true,
                "conditions": {"anyOf": ["44054006"]},
                "medications": {"anyOf": ["860975"]},
                "observations": [{"code": "4548-4", "min": 6.5}]},
     "groupBy": ["sex", "ageBand10"],
     "measures": [{"name": "patients", "count": "patients"},
                  {"name": "bmi", "observation": "39156-5",
                   "stats": ["count", "mean", "stddev", "min", "max", "p50", "p90"]}],
     "disclosure": {"minCell": 11}}
    """

    @Test("the issue's example parses to exactly what it says, and the same spec in YAML is equal")
    func example() throws {
        let spec = try JobSpec.parse(Self.example, file: "job.json")
        #expect(spec.dataset == "synthea" && spec.purpose == "HRESCH" && spec.asOf == "2020-01-01")
        #expect(spec.cohort.sex == [.female] && spec.cohort.ageMin == 18 && spec.cohort.ageMax == 64 && spec.cohort.alive == true)
        #expect(spec.cohort.conditions == ["44054006"] && spec.cohort.medications == ["860975"])
        #expect(spec.cohort.observations == [.init(code: "4548-4", min: 6.5, max: nil)])
        #expect(spec.groupBy == [.sex, .ageBand10])
        #expect(spec.measures == [.patients(name: "patients"),
                                  .observation(name: "bmi", code: "39156-5", stats: [.count, .mean, .stddev, .min, .max, .percentile(50), .percentile(90)])])
        #expect(spec.minCell == 11)
        let yaml = """
        dataset: synthea
        purpose: HRESCH
        asOf: "2020-01-01"
        cohort:
          sex: [female]
          age: {min: 18, max: 64}
          alive: true
          conditions: {anyOf: ["44054006"]}
          medications: {anyOf: ["860975"]}
          observations:
            - {code: "4548-4", min: 6.5}
        groupBy: [sex, ageBand10]
        measures:
          - {name: patients, count: patients}
          - name: bmi
            observation: "39156-5"
            stats: [count, mean, stddev, min, max, p50, p90]
        disclosure: {minCell: 11}
        """
        #expect(try JobSpec.parse(yaml, file: "job.yaml") == spec)
    }

    @Test("a minimal spec: every cohort field is optional")
    func minimal() throws {
        let spec = try JobSpec.parse(#"{"dataset": "d", "purpose": "PUBHLTH", "measures": [{"name": "n", "count": "patients"}]}"#, file: "j")
        #expect(spec.cohort == JobSpec.Cohort() && spec.groupBy.isEmpty && spec.minCell == nil)
        #expect(spec.asOf.count == 10)
    }

    @Test("each mistake is an error naming the file and line", arguments: [
        ("{\"dataset\": \"d\",\n \"purpose\": \"HRESCH\",\n \"colour\": 1,\n \"measures\": [{\"name\": \"n\", \"count\": \"patients\"}]}", 3, "unknown field 'colour'"),
        ("{\"dataset\": \"d\",\n \"purpose\": \"NOPE\",\n \"measures\": [{\"name\": \"n\", \"count\": \"patients\"}]}", 2, "PurposeOfUse"),
        ("{\"dataset\": \"d\", \"purpose\": \"HRESCH\",\n \"measures\": [{\"name\": \"b\", \"observation\": \"x\",\n   \"stats\": [\"p101\"]}]}", 3, "statistic 'p101'"),
        ("{\"dataset\": \"d\", \"purpose\": \"HRESCH\",\n \"measures\": [\n  {\"name\": \"b\", \"observation\": \"x\", \"count\": \"patients\"}]}", 3, "either count"),
        ("{\"dataset\": \"d\", \"purpose\": \"HRESCH\",\n \"groupBy\": [\"zip\"],\n \"measures\": [{\"name\": \"n\", \"count\": \"patients\"}]}", 2, "groupBy 'zip'"),
        ("{\"dataset\": \"d\", \"purpose\": \"HRESCH\",\n \"cohort\": {\"age\":\n   {\"min\": 70, \"max\": 18}},\n \"measures\": [{\"name\": \"n\", \"count\": \"patients\"}]}", 3, "age.min is above age.max"),
        ("{\"dataset\": \"d\", \"purpose\": \"HRESCH\", \"asOf\": \"2020-02-30\",\n \"measures\": [{\"name\": \"n\", \"count\": \"patients\"}]}", 1, "asOf"),
        ("{\"dataset\": \"D!\", \"purpose\": \"HRESCH\",\n \"measures\": [{\"name\": \"n\", \"count\": \"patients\"}]}", 1, "invalid dataset name"),
        ("{\"dataset\": \"d\", \"purpose\": \"HRESCH\"}", 1, "needs 'measures'"),
        ("{\"dataset\": \"d\", \"purpose\": \"HRESCH\",\n \"measures\": [{\"name\": \"n\", \"count\": \"patients\"},\n  {\"name\": \"n\", \"count\": \"patients\"}]}", 3, "two measures are named 'n'"),
        ("{\"dataset\": \"d\", \"purpose\": \"HRESCH\",\n \"disclosure\": {\"minCell\": 0},\n \"measures\": [{\"name\": \"n\", \"count\": \"patients\"}]}", 2, "minCell"),
    ])
    func mistakes(text: String, line: Int, words: String) {
        do {
            _ = try JobSpec.parse(text, file: "spec.json")
            Issue.record("accepted: \(text)")
        } catch let problem as JobSpec.Problem {
            #expect(problem.location == "spec.json:\(line)", "\(problem)")
            #expect(problem.message.contains(words), "\(problem)")
        } catch {
            Issue.record("unexpected error \(error)")
        }
    }

    @Test("a spec may raise the policy's minimum cell size, never lower it")
    func minCell() throws {
        var spec = try JobSpec.parse(Self.example, file: "j")
        #expect(try spec.effectiveMinCell(policyFloor: 5) == 11)
        #expect(try spec.effectiveMinCell(policyFloor: 11) == 11)
        #expect(throws: VaultError.self) { try spec.effectiveMinCell(policyFloor: 20) }
        spec.minCell = nil
        #expect(try spec.effectiveMinCell(policyFloor: 20) == 20)
        #expect(try spec.effectiveMinCell(policyFloor: nil) == 1)
    }

    @Test("group keys: Synthea CSV and FHIR spellings of race, ethnicity and state meet in one vocabulary; others are kept as written",
          arguments: [
              ("race", "white", "White"), ("race", "White", "White"), ("race", "black", "Black or African American"),
              ("race", "Black or African American", "Black or African American"), ("race", "native", "American Indian or Alaska Native"),
              ("race", "hawaiian", "Native Hawaiian or Other Pacific Islander"), ("race", "other", "Other"), ("race", "", "Unknown"),
              ("race", " Asian ", "Asian"), ("race", "martian", "martian"),
              ("ethnicity", "nonhispanic", "Not Hispanic or Latino"), ("ethnicity", "Hispanic or Latino", "Hispanic or Latino"),
              ("ethnicity", "hispanic", "Hispanic or Latino"), ("ethnicity", "", "Unknown"),
              ("state", "California", "CA"), ("state", "CA", "CA"), ("state", "ma", "MA"), ("state", "District of Columbia", "DC"),
              ("state", "Ontario", "Ontario"), ("state", "", "Unknown"),
          ])
    func demographics(dimension: String, raw: String, expected: String) {
        let mapped = switch dimension {
        case "race": Demographics.race(raw)
        case "ethnicity": Demographics.ethnicity(raw)
        default: Demographics.state(raw)
        }
        #expect(mapped == expected)
        #expect(Demographics.stateNames.count == 56 && Set(Demographics.stateNames.map(\.code)).count == 56)
    }

    @Test("group keys are trimmed as Foundation trims whitespace: spaces, tabs and other space separators at either end, nothing else")
    func demographicsTrim() {
        let samples = ["", " ", "\t\t", "white", " white", "white ", "\twhite\u{00A0}", "\u{3000}Tokyo\u{2003}", "two  words", " \nnewline\n ",
                       "e\u{0301} ", " \u{0301}", "\u{200B}zero width\u{200B}", "a\u{00A0}b", "\u{1680}ogham"]
        for raw in samples {
            #expect(Demographics.trim(raw) == raw.trimmingCharacters(in: .whitespaces), "\(raw.unicodeScalars.map { String($0.value, radix: 16) })")
        }
    }
}
