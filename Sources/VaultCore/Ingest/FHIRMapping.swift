#if canImport(Glibc)
import Glibc
#endif

// FHIR R4 resources to internal records, and the small JSON parser the FHIR sources use.
//
// Mapping, by resource type (anything else is counted as not ingested):
//
//   Patient            id (or the bundle entry's urn:uuid fullUrl), birthDate, deceasedDateTime (the calendar date
//                      as written is the death date; deceasedBoolean alone counts as alive), gender (male, female,
//                      other, unknown; absent = unknown), US Core race and ethnicity (the `text` sub-extension, else
//                      the first ombCategory display), address[0].state
//   Condition          subject, onsetDateTime | onsetPeriod.start | recordedDate, abatementDateTime | abatementPeriod.end,
//                      code (SNOMED CT preferred)
//   Observation        subject, effectiveDateTime | effectivePeriod.start | effectiveInstant | issued,
//                      category[0].coding[0].code, code (LOINC preferred), value[x]. An Observation with `component`
//                      and no value[x] (a blood pressure panel, say) becomes one record per component, each with the
//                      component's code and value and the panel's time and category; with a value[x] the components
//                      are ignored; with neither it is one record without a value.
//   MedicationRequest  subject, authoredOn, no stop; MedicationStatement and MedicationAdministration: subject,
//                      effectiveDateTime | effectivePeriod.start (| dateAsserted), effectivePeriod.end. The code is
//                      medicationCodeableConcept (RxNorm preferred) or the code of the Medication that
//                      medicationReference points to (contained, in the same bundle, or in the bulk export).
//   Encounter          subject, period.start, period.end, class.code, type[0] (SNOMED CT preferred; may be absent)
//   Procedure          subject, performedDateTime | performedPeriod.start, code (SNOMED CT preferred)
//   Immunization       patient, occurrenceDateTime, vaccineCode (CVX preferred)
//
// Patient references are `Patient/ID` (relative or absolute, `_history` ignored) or `urn:uuid:ID`; in a bundle a
// reference that is the fullUrl of one of its Patient entries resolves to that Patient's id.

/// A problem with one field of a resource, before it is given a file and line.
struct FHIRFieldError: Error {
    let message: String
    /// FHIRPath-like name of the field, relative to the resource.
    let field: String
    init(_ message: String, _ field: String) {
        self.message = message
        self.field = field
    }
}

/// Turns FHIR R4 resources into `ClinicalRecord`s (see the table at the top of this file).
struct FHIRMapper {
    /// Maps a source patient id to its pseudonym.
    let pseudonym: (String) throws -> [UInt8]

    /// What references can resolve to outside the resource itself.
    struct References {
        /// Bundle entry fullUrl -> Patient id, for the Patients of the current bundle.
        var patients: [String: String] = [:]
        /// `Medication/ID` or a bundle entry fullUrl -> medication code.
        var medications: [String: String] = [:]
    }

    static let snomed = "http://snomed.info/sct"
    static let loinc = "http://loinc.org"
    static let rxnorm = "http://www.nlm.nih.gov/research/umls/rxnorm"
    static let cvx = "http://hl7.org/fhir/sid/cvx"
    static let usCoreRace = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-race"
    static let usCoreEthnicity = "http://hl7.org/fhir/us/core/StructureDefinition/us-core-ethnicity"

    /// The resource types that become records.
    static let ingestedTypes: Set<String> = ["Patient", "Condition", "Observation", "MedicationRequest", "MedicationStatement",
                                             "MedicationAdministration", "Encounter", "Procedure", "Immunization"]

    /// The field that holds the patient reference of a resource type (the patient's own id for Patient).
    static func patientField(of type: String) -> String {
        switch type {
        case "Patient": return "id"
        case "Immunization": return "patient.reference"
        default: return "subject.reference"
        }
    }

    /// Maps one resource of an ingested type, appending its records (usually one) to `out`.
    /// `fullUrl` is the bundle entry's, used as the Patient id when the resource has none.
    func map(_ r: JSONTape.Value, type: String, fullUrl: String? = nil, references: References,
             into out: inout [ClinicalRecord]) throws {
        switch type {
        case "Patient":
            out.append(.patient(try patient(r, fullUrl: fullUrl)))
        case "Condition":
            let p = try patientPseudonym(r, "subject", references)
            let code = try Self.code(r["code"], preferring: Self.snomed, field: "code")
            guard let start = try time(r, "onsetDateTime") ?? time(r, "onsetPeriod", "start") ?? time(r, "recordedDate") else {
                throw FHIRFieldError("no onsetDateTime, onsetPeriod.start or recordedDate", "onsetDateTime")
            }
            let stop = try time(r, "abatementDateTime") ?? time(r, "abatementPeriod", "end") ?? Absent.time
            out.append(.condition(pseudonym: p, start: start, stop: stop, code: code))
        case "Observation":
            try observation(r, references, into: &out)
        case "MedicationRequest", "MedicationStatement", "MedicationAdministration":
            let p = try patientPseudonym(r, "subject", references)
            let code = try medicationCode(r, references)
            let start: Int64
            var stop = Absent.time
            if type == "MedicationRequest" {
                guard let authored = try time(r, "authoredOn") else { throw FHIRFieldError("missing value", "authoredOn") }
                start = authored
            } else {
                guard let effective = try time(r, "effectiveDateTime") ?? time(r, "effectivePeriod", "start")
                    ?? (type == "MedicationStatement" ? time(r, "dateAsserted") : nil) else {
                    throw FHIRFieldError("no effectiveDateTime or effectivePeriod.start", "effectiveDateTime")
                }
                start = effective
                stop = try time(r, "effectivePeriod", "end") ?? Absent.time
            }
            out.append(.medication(pseudonym: p, start: start, stop: stop, code: code))
        case "Encounter":
            let p = try patientPseudonym(r, "subject", references)
            guard let start = try time(r, "period", "start") else { throw FHIRFieldError("missing value", "period.start") }
            let stop = try time(r, "period", "end") ?? Absent.time
            let cls = try Self.string(r["class"]?["code"], "class.code") ?? ""
            var code = ""
            if let type = r["type"]?[0] { code = try Self.code(type, preferring: Self.snomed, field: "type[0]") }
            out.append(.encounter(pseudonym: p, start: start, stop: stop, encounterClass: cls, code: code))
        case "Procedure":
            let p = try patientPseudonym(r, "subject", references)
            let code = try Self.code(r["code"], preferring: Self.snomed, field: "code")
            guard let start = try time(r, "performedDateTime") ?? time(r, "performedPeriod", "start") else {
                throw FHIRFieldError("no performedDateTime or performedPeriod.start", "performedDateTime")
            }
            out.append(.procedure(pseudonym: p, start: start, code: code))
        case "Immunization":
            let p = try patientPseudonym(r, "patient", references)
            let code = try Self.code(r["vaccineCode"], preferring: Self.cvx, field: "vaccineCode")
            guard let time = try time(r, "occurrenceDateTime") else { throw FHIRFieldError("missing value", "occurrenceDateTime") }
            out.append(.immunization(pseudonym: p, time: time, code: code))
        default:
            throw FHIRFieldError("resource type '\(type)' is not ingested", "resourceType")
        }
    }

    // MARK: Resources

    private func patient(_ r: JSONTape.Value, fullUrl: String?) throws -> ClinicalRecord.Patient {
        var id = try Self.string(r["id"], "id")
        if id == nil, let fullUrl, fullUrl.hasPrefix("urn:uuid:") { id = String(fullUrl.dropFirst(9)) }
        guard let id, !id.isEmpty else { throw FHIRFieldError("missing value", "id") }
        guard let birthText = try Self.string(r["birthDate"], "birthDate") else { throw FHIRFieldError("missing value", "birthDate") }
        guard let birth = ClinicalTime.days(birthText.utf8) else { throw FHIRFieldError("not a date", "birthDate") }
        var death = Absent.date
        if let text = try Self.string(r["deceasedDateTime"], "deceasedDateTime") {
            // The calendar date as written (as in Synthea's CSV DEATHDATE), not the UTC day.
            guard ClinicalTime.seconds(text.utf8) != nil, let d = ClinicalTime.days(text.utf8.prefix(10)) else {
                throw FHIRFieldError("not a date-time", "deceasedDateTime")
            }
            guard d >= birth else { throw FHIRFieldError("death date is before birth date", "deceasedDateTime") }
            death = d
        }
        let sex: String
        switch try Self.string(r["gender"], "gender") {
        case nil: sex = "unknown"
        case let g? where g == "male" || g == "female" || g == "other" || g == "unknown": sex = g
        case _?: throw FHIRFieldError("unknown gender (expected male, female, other or unknown)", "gender")
        }
        var race = "", ethnicity = ""
        if let extensions = r["extension"] {
            for e in extensions.elements {
                guard let url = e["url"]?.string else { continue }
                if url == Self.usCoreRace {
                    race = Self.usCoreCategoryText(e)
                } else if url == Self.usCoreEthnicity {
                    ethnicity = Self.usCoreCategoryText(e)
                }
            }
        }
        let state = try Self.string(r["address"]?[0]?["state"], "address[0].state") ?? ""
        return .init(pseudonym: try pseudonym(id), birthDate: birth, deathDate: death, sex: sex, race: race, ethnicity: ethnicity,
                     state: state)
    }

    /// The `text` sub-extension of a US Core race or ethnicity extension, else its first ombCategory's display.
    private static func usCoreCategoryText(_ e: JSONTape.Value) -> String {
        guard let parts = e["extension"] else { return "" }
        var omb: String?
        for part in parts.elements {
            switch part["url"]?.string {
            case "text": if let text = part["valueString"]?.string { return text }
            case "ombCategory": if omb == nil { omb = part["valueCoding"]?["display"]?.string }
            default: break
            }
        }
        return omb ?? ""
    }

    private func observation(_ r: JSONTape.Value, _ references: References, into out: inout [ClinicalRecord]) throws {
        let p = try patientPseudonym(r, "subject", references)
        guard let time = try time(r, "effectiveDateTime") ?? time(r, "effectivePeriod", "start") ?? time(r, "effectiveInstant")
            ?? time(r, "issued") else {
            throw FHIRFieldError("no effectiveDateTime, effectivePeriod.start, effectiveInstant or issued", "effectiveDateTime")
        }
        let category = try Self.string(r["category"]?[0]?["coding"]?[0]?["code"], "category[0].coding[0].code") ?? ""
        let code = try Self.code(r["code"], preferring: Self.loinc, field: "code")
        if !Self.hasValue(r), let components = r["component"], components.count > 0 {
            for (i, component) in components.elements.enumerated() {
                let field = "component[\(i)]"
                let componentCode = try Self.code(component["code"], preferring: Self.loinc, field: field + ".code")
                let v = try Self.observationValue(component, field: field)
                out.append(.observation(pseudonym: p, time: time, category: category, code: componentCode, value: v.value, unit: v.unit,
                                        text: v.text))
            }
            return
        }
        let v = try Self.observationValue(r, field: "")
        out.append(.observation(pseudonym: p, time: time, category: category, code: code, value: v.value, unit: v.unit, text: v.text))
    }

    /// Whether an Observation or component has a value[x] element.
    static func hasValue(_ r: JSONTape.Value) -> Bool {
        r.hasKey(withPrefix: "value")
    }

    /// value[x] of an Observation or component: numbers for Quantity and integer, text for
    /// CodeableConcept (its text, else first display, else code), string, boolean, dateTime
    /// and time. Other value types (Range, Ratio, Period, SampledData) and no value give NaN
    /// and empty text.
    static func observationValue(_ r: JSONTape.Value, field prefix: String) throws -> (value: Double, unit: String, text: String) {
        let dot = prefix.isEmpty ? "" : prefix + "."
        if let q = r["valueQuantity"] {
            var value = Double.nan
            if let v = q["value"] {
                guard let n = v.number, n.isFinite else { throw FHIRFieldError("not a number", dot + "valueQuantity.value") }
                value = n
            }
            let unit = try string(q["unit"], dot + "valueQuantity.unit") ?? string(q["code"], dot + "valueQuantity.code") ?? ""
            return (value, unit, "")
        }
        if let v = r["valueInteger"] {
            guard let n = v.number else { throw FHIRFieldError("not a number", dot + "valueInteger") }
            return (n, "", "")
        }
        if let c = r["valueCodeableConcept"] {
            let text = c["text"]?.string ?? c["coding"]?[0]?["display"]?.string ?? c["coding"]?[0]?["code"]?.string ?? ""
            return (.nan, "", text)
        }
        for key in ["valueString", "valueDateTime", "valueTime"] {
            if let v = r[key] {
                guard let s = v.string else { throw FHIRFieldError("not a string", dot + key) }
                return (.nan, "", s)
            }
        }
        if let v = r["valueBoolean"] {
            guard let b = v.bool else { throw FHIRFieldError("not a boolean", dot + "valueBoolean") }
            return (.nan, "", b ? "true" : "false")
        }
        return (.nan, "", "")
    }

    private func medicationCode(_ r: JSONTape.Value, _ references: References) throws -> String {
        if let concept = r["medicationCodeableConcept"] {
            return try Self.code(concept, preferring: Self.rxnorm, field: "medicationCodeableConcept")
        }
        guard let ref = try Self.string(r["medicationReference"]?["reference"], "medicationReference.reference") else {
            throw FHIRFieldError("no medicationCodeableConcept or medicationReference", "medicationCodeableConcept")
        }
        if ref.hasPrefix("#"), let contained = r["contained"] {
            let id = String(ref.dropFirst())
            for c in contained.elements where c["id"]?.string == id {
                return try Self.code(c["code"], preferring: Self.rxnorm, field: "contained.code")
            }
        }
        if let code = references.medications[ref] { return code }
        throw FHIRFieldError("does not resolve to a Medication in the input", "medicationReference.reference")
    }

    /// The code of a Medication resource (for resolving medicationReference), or nil.
    static func medicationCode(ofMedication r: JSONTape.Value) -> String? {
        try? code(r["code"], preferring: rxnorm, field: "code")
    }

    // MARK: Fields

    private func patientPseudonym(_ r: JSONTape.Value, _ element: String, _ references: References) throws -> [UInt8] {
        try pseudonym(try Self.patientId(r, element, references))
    }

    /// The Patient id a reference element (`subject` or `patient`) points to.
    static func patientId(_ r: JSONTape.Value, _ element: String, _ references: References) throws -> String {
        let field = element + ".reference"
        guard let ref = try string(r[element]?["reference"], field), !ref.isEmpty else { throw FHIRFieldError("missing value", field) }
        if let id = references.patients[ref] { return id }
        if ref.hasPrefix("urn:uuid:") {
            let id = String(ref.dropFirst(9))
            if !id.isEmpty { return id }
        } else {
            // Patient/ID, an absolute URL ending in Patient/ID, or .../Patient/ID/_history/N.
            let parts = ref.split(separator: "/", omittingEmptySubsequences: false)
            if let at = parts.lastIndex(of: "Patient"), at + 1 < parts.count, !parts[at + 1].isEmpty {
                return String(parts[at + 1])
            }
        }
        // The reference itself is not echoed: it may identify a patient.
        throw FHIRFieldError("not a reference to a Patient (expected Patient/ID or urn:uuid:ID)", field)
    }

    /// A string element, nil when absent; an error when it is there but not a string.
    static func string(_ v: JSONTape.Value?, _ field: String) throws -> String? {
        guard let v, !v.isNull else { return nil }
        guard let s = v.string else { throw FHIRFieldError("not a string", field) }
        return s
    }

    /// A date or date-time element (`r[key]` or `r[key][sub]`) as seconds since the epoch,
    /// nil when absent; an error when it cannot be parsed.
    private func time(_ r: JSONTape.Value, _ key: String, _ sub: String? = nil) throws -> Int64? {
        var v = r[key]
        var field = key
        if let sub {
            v = v?[sub]
            field += "." + sub
        }
        guard let v, !v.isNull else { return nil }
        guard let t = v.withStringBytes({ ClinicalTime.seconds($0) }) ?? nil else { throw FHIRFieldError("not a date or date-time", field) }
        return t
    }

    /// The code of a CodeableConcept: the first coding of the preferred system that has a
    /// code, else the first coding that has a code. An error when there is none.
    static func code(_ concept: JSONTape.Value?, preferring system: String, field: String) throws -> String {
        guard let concept, !concept.isNull else { throw FHIRFieldError("missing value", field) }
        guard concept.isObject else { throw FHIRFieldError("not a CodeableConcept", field) }
        var first: String?
        if let codings = concept["coding"] {
            for (i, coding) in codings.elements.enumerated() {
                guard let code = try string(coding["code"], "\(field).coding[\(i)].code"), !code.isEmpty else { continue }
                if coding["system"]?.string == system { return code }
                if first == nil { first = code }
            }
        }
        guard let first else { throw FHIRFieldError("no coding with a code", field + ".coding") }
        return first
    }
}

// MARK: - JSON

/// A parsed JSON text (RFC 8259) held as a flat tape of nodes over its bytes. Strings and
/// numbers stay byte ranges until asked for, so parsing allocates nothing per value, and one
/// tape is reused document after document. Invalid UTF-8 inside strings is not rejected (it
/// decodes to U+FFFD).
final class JSONTape {
    enum Kind: UInt8 { case object, array, string, number, `true`, `false`, null }

    /// 16 bytes: texts are limited to 2 GiB.
    struct Node {
        /// Byte range: a string's content without quotes, a number's text, a container's brackets.
        var start: Int32
        var end: Int32
        /// Index of the first node after this node's subtree.
        var next: Int32
        var kind: Kind
        /// Strings: the text has backslash escapes.
        var escaped = false

        var lower: Int { Int(start) }
        var upper: Int { Int(end) }
        var after: Int { Int(next) }
    }

    struct SyntaxError: Error, CustomStringConvertible {
        let message: String
        /// Byte offset in the text where the problem was found.
        let offset: Int
        var description: String { message }
    }

    static let maximumDepth = 512

    private var storage: UnsafeMutablePointer<UInt8>
    private var capacity: Int
    private(set) var count = 0
    private(set) var nodes: [Node] = []
    private var stack: [Int32] = []

    init(capacity: Int = 1 << 16) {
        self.capacity = max(capacity, 16)
        storage = .allocate(capacity: self.capacity)
    }

    deinit { storage.deallocate() }

    /// The root value of the last text parsed.
    var root: Value { Value(tape: self, index: 0) }

    /// Copies `text` in and parses it. Throws `SyntaxError` for anything that is not exactly
    /// one JSON value, optionally surrounded by whitespace.
    func parse(_ text: UnsafeRawBufferPointer) throws {
        if text.count > capacity {
            storage.deallocate()
            capacity = max(text.count, capacity * 2)
            storage = .allocate(capacity: capacity)
        }
        if let base = text.baseAddress, text.count > 0 { storage.update(from: base.assumingMemoryBound(to: UInt8.self), count: text.count) }
        count = text.count
        nodes.removeAll(keepingCapacity: true)
        stack.removeAll(keepingCapacity: true)
        try parseStorage()
    }

    func parse(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try parse($0) }
    }

    private func parseStorage() throws {
        guard count < Int(Int32.max) else { throw SyntaxError(message: "text larger than 2 GiB", offset: 0) }
        // Work on local arrays: appends to a class's stored array pay for exclusivity checks.
        var nodes: [Node] = []
        var stack: [Int32] = []
        swap(&nodes, &self.nodes)
        swap(&stack, &self.stack)
        defer {
            swap(&nodes, &self.nodes)
            swap(&stack, &self.stack)
        }
        try Self.parse(UnsafePointer(storage), count, &nodes, &stack)
    }

    // The parser is a loop over static functions that take the position inout: closures that
    // capture it would cost an exclusivity check per byte in debug builds.

    private static func parse(_ p: UnsafePointer<UInt8>, _ n: Int, _ nodes: inout [Node], _ stack: inout [Int32]) throws {
        var i = 0
        value: while true {
            i = skipSpace(p, n, i)
            guard i < n else { throw fail("expected a value", i, n) }
            let c = p[i]
            if c == 0x7B || c == 0x5B { // { [
                let isObject = c == 0x7B
                let index = Int32(nodes.count)
                nodes.append(Node(start: Int32(i), end: Int32(i + 1), next: index + 1, kind: isObject ? .object : .array))
                i = skipSpace(p, n, i + 1)
                if i < n && p[i] == (isObject ? 0x7D : 0x5D) {
                    i += 1
                    nodes[Int(index)].end = Int32(i)
                } else {
                    guard stack.count < maximumDepth else { throw fail("nested too deeply", i, n) }
                    stack.append(index)
                    if isObject { try key(p, n, &i, &nodes) }
                    continue value
                }
            } else if c == 0x22 {
                try string(p, n, &i, &nodes)
            } else if c == 0x2D || (c >= 0x30 && c <= 0x39) {
                try number(p, n, &i, &nodes)
            } else if c == 0x74 {
                try literal(p, n, &i, "true", .true, &nodes)
            } else if c == 0x66 {
                try literal(p, n, &i, "false", .false, &nodes)
            } else if c == 0x6E {
                try literal(p, n, &i, "null", .null, &nodes)
            } else {
                throw fail("unexpected character", i, n)
            }
            // A value is complete: continue or close the enclosing containers.
            while let top = stack.last {
                i = skipSpace(p, n, i)
                let isObject = nodes[Int(top)].kind == .object
                guard i < n else { throw fail(isObject ? "unterminated object" : "unterminated array", i, n) }
                if p[i] == 0x2C {
                    i += 1
                    if isObject { try key(p, n, &i, &nodes) }
                    continue value
                }
                guard p[i] == (isObject ? 0x7D : 0x5D) else { throw fail(isObject ? "expected ',' or '}'" : "expected ',' or ']'", i, n) }
                i += 1
                nodes[Int(top)].end = Int32(i)
                nodes[Int(top)].next = Int32(nodes.count)
                stack.removeLast()
            }
            i = skipSpace(p, n, i)
            guard i == n else { throw fail("unexpected text after the JSON value", i, n) }
            return
        }
    }

    private static func fail(_ message: String, _ i: Int, _ n: Int) -> SyntaxError {
        SyntaxError(message: i < n ? "\(message) at byte \(i + 1)" : "\(message): the text ends early", offset: i)
    }

    private static let ones: UInt64 = 0x0101_0101_0101_0101
    private static let highBits: UInt64 = 0x8080_8080_8080_8080

    /// Eight bytes from `p + i` (which must be in range).
    private static func word(_ p: UnsafePointer<UInt8>, _ i: Int) -> UInt64 {
        var x: UInt64 = 0
        memcpy(&x, p + i, 8)
        return x
    }

    private static func skipSpace(_ p: UnsafePointer<UInt8>, _ n: Int, _ from: Int) -> Int {
        var i = from
        // Indentation: eight spaces at a time.
        while i + 8 <= n && word(p, i) == 0x2020_2020_2020_2020 { i += 8 }
        while i < n {
            let c = p[i]
            guard c == 0x20 || c == 0x0A || c == 0x0D || c == 0x09 else { break }
            i += 1
        }
        return i
    }

    /// A string; `p[i]` is its opening quote.
    private static func string(_ p: UnsafePointer<UInt8>, _ n: Int, _ i: inout Int, _ nodes: inout [Node]) throws {
        let start = i + 1
        var j = start
        var escaped = false
        let ones = Self.ones, highBits = Self.highBits
        let quotes = ones &* 0x22, backslashes = ones &* 0x5C, controls = ones &* 0x20
        while true {
            // Eight plain bytes at a time: none is a quote, a backslash or below 0x20 (the
            // zero-byte test may flag a plain byte after a special one; that only slows it).
            while j + 8 <= n {
                let x = word(p, j)
                let q = x ^ quotes, b = x ^ backslashes
                guard ((q &- ones) & ~q | (b &- ones) & ~b | (x &- controls) & ~x) & highBits == 0 else { break }
                j += 8
            }
            guard j < n else { throw fail("unterminated string", j, n) }
            let c = p[j]
            if c == 0x22 { break }
            if c == 0x5C {
                escaped = true
                guard j + 1 < n else { throw fail("unterminated string", j + 1, n) }
                let e = p[j + 1]
                if e == 0x75 {
                    guard j + 5 < n, hexValue(p[j + 2]) != nil, hexValue(p[j + 3]) != nil, hexValue(p[j + 4]) != nil,
                          hexValue(p[j + 5]) != nil else { throw fail("bad \\u escape", j, n) }
                    j += 6
                } else if e == 0x22 || e == 0x5C || e == 0x2F || e == 0x62 || e == 0x66 || e == 0x6E || e == 0x72 || e == 0x74 {
                    j += 2
                } else {
                    throw fail("bad escape in string", j, n)
                }
                continue
            }
            guard c >= 0x20 else { throw fail("control character in string", j, n) }
            j += 1
        }
        nodes.append(Node(start: Int32(start), end: Int32(j), next: Int32(nodes.count + 1), kind: .string, escaped: escaped))
        i = j + 1
    }

    /// `"key" :` inside an object.
    private static func key(_ p: UnsafePointer<UInt8>, _ n: Int, _ i: inout Int, _ nodes: inout [Node]) throws {
        i = skipSpace(p, n, i)
        guard i < n, p[i] == 0x22 else { throw fail("expected a string key", i, n) }
        try string(p, n, &i, &nodes)
        i = skipSpace(p, n, i)
        guard i < n, p[i] == 0x3A else { throw fail("expected ':'", i, n) }
        i += 1
    }

    private static func digits(_ p: UnsafePointer<UInt8>, _ n: Int, _ i: inout Int) -> Int {
        let from = i
        while i < n && p[i] >= 0x30 && p[i] <= 0x39 { i += 1 }
        return i - from
    }

    private static func number(_ p: UnsafePointer<UInt8>, _ n: Int, _ i: inout Int, _ nodes: inout [Node]) throws {
        let start = i
        if p[i] == 0x2D { i += 1 }
        guard i < n, p[i] >= 0x30 && p[i] <= 0x39 else { throw fail("bad number", i, n) }
        if p[i] == 0x30 { i += 1 } else { _ = digits(p, n, &i) }
        if i < n && p[i] == 0x2E {
            i += 1
            guard digits(p, n, &i) > 0 else { throw fail("bad number", i, n) }
        }
        if i < n && (p[i] == 0x65 || p[i] == 0x45) {
            i += 1
            if i < n && (p[i] == 0x2B || p[i] == 0x2D) { i += 1 }
            guard digits(p, n, &i) > 0 else { throw fail("bad number", i, n) }
        }
        nodes.append(Node(start: Int32(start), end: Int32(i), next: Int32(nodes.count + 1), kind: .number))
    }

    private static func literal(_ p: UnsafePointer<UInt8>, _ n: Int, _ i: inout Int, _ word: StaticString, _ kind: Kind,
                                _ nodes: inout [Node]) throws {
        let length = word.utf8CodeUnitCount
        guard i + length <= n, memcmp(p + i, word.utf8Start, length) == 0 else { throw fail("unexpected character", i, n) }
        nodes.append(Node(start: Int32(i), end: Int32(i + length), next: Int32(nodes.count + 1), kind: kind))
        i += length
    }

    static func hexValue(_ c: UInt8) -> UInt32? {
        switch c {
        case 0x30...0x39: return UInt32(c - 0x30)
        case 0x61...0x66: return UInt32(c - 0x57)
        case 0x41...0x46: return UInt32(c - 0x37)
        default: return nil
        }
    }

    /// The text of a string node, escapes resolved.
    func string(at index: Int) -> String {
        let node = nodes[index]
        let raw = UnsafeBufferPointer(start: storage + node.lower, count: node.upper - node.lower)
        guard node.escaped else { return String(decoding: raw, as: UTF8.self) }
        var out: [UInt8] = []
        out.reserveCapacity(raw.count)
        var i = 0
        func appendScalar(_ v: UInt32) {
            let scalar = Unicode.Scalar(v) ?? "\u{FFFD}"
            out.append(contentsOf: Array(String(Character(scalar)).utf8))
        }
        func hex4(_ at: Int) -> UInt32? {
            guard at + 4 <= raw.count else { return nil }
            var v: UInt32 = 0
            for k in 0..<4 {
                guard let h = Self.hexValue(raw[at + k]) else { return nil }
                v = v << 4 | h
            }
            return v
        }
        while i < raw.count {
            let c = raw[i]
            guard c == 0x5C, i + 1 < raw.count else { out.append(c); i += 1; continue }
            let e = raw[i + 1]
            i += 2
            switch e {
            case 0x62: out.append(0x08)
            case 0x66: out.append(0x0C)
            case 0x6E: out.append(0x0A)
            case 0x72: out.append(0x0D)
            case 0x74: out.append(0x09)
            case 0x75:
                guard let u = hex4(i) else { out.append(0x3F); continue }
                i += 4
                if (0xD800..<0xDC00).contains(u), i + 1 < raw.count, raw[i] == 0x5C, raw[i + 1] == 0x75,
                   let low = hex4(i + 2), (0xDC00..<0xE000).contains(low) {
                    i += 6
                    appendScalar(0x10000 + ((u - 0xD800) << 10) + (low - 0xDC00))
                } else {
                    appendScalar(u)
                }
            default: out.append(e) // " \ /
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Whether the (unescaped) string node at `index` equals `key`.
    func stringEquals(_ index: Int, _ key: UnsafeBufferPointer<UInt8>) -> Bool {
        let node = nodes[index]
        if node.escaped { return string(at: index).utf8.elementsEqual(key) }
        let length = node.upper - node.lower
        return length == key.count && (length == 0 || memcmp(storage + node.lower, key.baseAddress!, length) == 0)
    }

    /// Calls `body` with the raw bytes of an unescaped string node.
    func withRawBytes<R>(_ index: Int, _ body: (UnsafeBufferPointer<UInt8>) -> R) -> R {
        let node = nodes[index]
        return body(UnsafeBufferPointer(start: storage + node.lower, count: node.upper - node.lower))
    }

    /// A view of one node of a tape. Valid until the tape parses the next text.
    struct Value {
        let tape: JSONTape
        let index: Int

        var kind: Kind { tape.nodes[index].kind }
        var isNull: Bool { kind == .null }
        var isObject: Bool { kind == .object }

        /// The member `key` of an object; nil when absent or not an object.
        subscript(key: String) -> Value? {
            var key = key
            return key.withUTF8 { member($0) }
        }

        private func member(_ key: UnsafeBufferPointer<UInt8>) -> Value? {
            let nodes = tape.nodes
            guard nodes[index].kind == .object else { return nil }
            var k = index + 1
            let end = nodes[index].after
            while k < end {
                if tape.stringEquals(k, key) { return Value(tape: tape, index: k + 1) }
                k = nodes[k + 1].after
            }
            return nil
        }

        /// The element at `position` of an array; nil when out of range or not an array.
        subscript(position: Int) -> Value? {
            let nodes = tape.nodes
            guard nodes[index].kind == .array, position >= 0 else { return nil }
            var k = index + 1
            var remaining = position
            let end = nodes[index].after
            while k < end {
                if remaining == 0 { return Value(tape: tape, index: k) }
                remaining -= 1
                k = nodes[k].after
            }
            return nil
        }

        /// The elements of an array (empty for anything else).
        var elements: [Value] {
            let nodes = tape.nodes
            guard nodes[index].kind == .array else { return [] }
            var out: [Value] = []
            var k = index + 1
            let end = nodes[index].after
            while k < end {
                out.append(Value(tape: tape, index: k))
                k = nodes[k].after
            }
            return out
        }

        /// Number of elements of an array, or members of an object.
        var count: Int {
            let nodes = tape.nodes
            let isObject = nodes[index].kind == .object
            guard isObject || nodes[index].kind == .array else { return 0 }
            var n = 0
            var k = index + 1
            let end = nodes[index].after
            while k < end {
                n += 1
                k = isObject ? nodes[k + 1].after : nodes[k].after
            }
            return n
        }

        /// The member names of an object.
        var keys: [String] {
            let nodes = tape.nodes
            guard nodes[index].kind == .object else { return [] }
            var out: [String] = []
            var k = index + 1
            let end = nodes[index].after
            while k < end {
                out.append(tape.string(at: k))
                k = nodes[k + 1].after
            }
            return out
        }

        /// Whether an object has a member whose name starts with `prefix` (ASCII).
        func hasKey(withPrefix prefix: StaticString) -> Bool {
            let nodes = tape.nodes
            guard nodes[index].kind == .object else { return false }
            let length = prefix.utf8CodeUnitCount
            var k = index + 1
            let end = nodes[index].after
            while k < end {
                let found = tape.withRawBytes(k) { $0.count >= length && memcmp($0.baseAddress!, prefix.utf8Start, length) == 0 }
                if found { return true }
                k = nodes[k + 1].after
            }
            return false
        }

        var string: String? { kind == .string ? tape.string(at: index) : nil }

        /// Calls `body` with the UTF-8 of a string value (escapes resolved); nil when not a string.
        func withStringBytes<R>(_ body: (UnsafeBufferPointer<UInt8>) -> R) -> R? {
            let node = tape.nodes[index]
            guard node.kind == .string else { return nil }
            if !node.escaped { return tape.withRawBytes(index, body) }
            var text = tape.string(at: index)
            return text.withUTF8(body)
        }

        var number: Double? {
            guard kind == .number else { return nil }
            return tape.withRawBytes(index) { Double(String(decoding: $0, as: UTF8.self)) }
        }

        var bool: Bool? {
            switch kind {
            case .true: return true
            case .false: return false
            default: return nil
            }
        }
    }
}
