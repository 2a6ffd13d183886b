/// The record kinds a dataset holds, shared by every input format.
public enum RecordKind: UInt8, CaseIterable, Codable, Sendable, CustomStringConvertible {
    case patients = 1, conditions, observations, medications, encounters, procedures, immunizations

    public var description: String { name }
    public var name: String {
        switch self {
        case .patients: return "patients"
        case .conditions: return "conditions"
        case .observations: return "observations"
        case .medications: return "medications"
        case .encounters: return "encounters"
        case .procedures: return "procedures"
        case .immunizations: return "immunizations"
        }
    }
}

/// Record counts per kind.
public struct RecordCounts: Codable, Sendable, Equatable {
    public var patients = 0
    public var conditions = 0
    public var observations = 0
    public var medications = 0
    public var encounters = 0
    public var procedures = 0
    public var immunizations = 0

    public init() {}

    public subscript(kind: RecordKind) -> Int {
        get {
            switch kind {
            case .patients: return patients
            case .conditions: return conditions
            case .observations: return observations
            case .medications: return medications
            case .encounters: return encounters
            case .procedures: return procedures
            case .immunizations: return immunizations
            }
        }
        set {
            switch kind {
            case .patients: patients = newValue
            case .conditions: conditions = newValue
            case .observations: observations = newValue
            case .medications: medications = newValue
            case .encounters: encounters = newValue
            case .procedures: procedures = newValue
            case .immunizations: immunizations = newValue
            }
        }
    }

    public static func + (a: RecordCounts, b: RecordCounts) -> RecordCounts {
        var out = a
        for kind in RecordKind.allCases { out[kind] += b[kind] }
        return out
    }

    public var total: Int { RecordKind.allCases.reduce(0) { $0 + self[$1] } }
}

/// Sentinels for absent values in the columnar encoding.
public enum Absent {
    public static let date: Int32 = .min
    public static let time: Int64 = .min
}

/// One record of any kind, in the internal model, as parsed from an input format.
/// The patient is identified only by its 16-byte keyed pseudonym.
public enum ClinicalRecord: Sendable {
    case patient(Patient)
    case condition(pseudonym: [UInt8], start: Int64, stop: Int64, code: String)
    case observation(pseudonym: [UInt8], time: Int64, category: String, code: String, value: Double, unit: String, text: String)
    case medication(pseudonym: [UInt8], start: Int64, stop: Int64, code: String)
    case encounter(pseudonym: [UInt8], start: Int64, stop: Int64, encounterClass: String, code: String)
    case procedure(pseudonym: [UInt8], start: Int64, code: String)
    case immunization(pseudonym: [UInt8], time: Int64, code: String)

    public struct Patient: Sendable {
        public var pseudonym: [UInt8]
        public var birthDate: Int32
        public var deathDate: Int32
        public var sex: String
        public var race: String
        public var ethnicity: String
        public var state: String

        public init(pseudonym: [UInt8], birthDate: Int32, deathDate: Int32, sex: String, race: String, ethnicity: String, state: String) {
            self.pseudonym = pseudonym
            self.birthDate = birthDate
            self.deathDate = deathDate
            self.sex = sex
            self.race = race
            self.ethnicity = ethnicity
            self.state = state
        }
    }

    public var kind: RecordKind {
        switch self {
        case .patient: return .patients
        case .condition: return .conditions
        case .observation: return .observations
        case .medication: return .medications
        case .encounter: return .encounters
        case .procedure: return .procedures
        case .immunization: return .immunizations
        }
    }

    public var pseudonym: [UInt8] {
        switch self {
        case .patient(let p): return p.pseudonym
        case .condition(let p, _, _, _), .medication(let p, _, _, _): return p
        case .observation(let p, _, _, _, _, _, _): return p
        case .encounter(let p, _, _, _, _): return p
        case .procedure(let p, _, _), .immunization(let p, _, _): return p
        }
    }
}
