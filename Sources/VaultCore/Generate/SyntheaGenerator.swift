public import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// What `SyntheaGenerator.write(to:)` produced: rows per record kind (the header lines
/// not counted) and bytes written.
public struct GenerationSummary: Sendable, Codable, Equatable {
    public var records: RecordCounts
    /// Bytes written over all seven files, header lines included.
    public var bytesWritten: Int

    public init(records: RecordCounts = RecordCounts(), bytesWritten: Int = 0) {
        self.records = records
        self.bytesWritten = bytesWritten
    }
}

/// A deterministic generator of synthetic patient records in the layout of Synthea's CSV
/// export (patients, conditions, observations, medications, encounters, procedures,
/// immunizations), at any scale.
///
/// Codes, value ranges and per-patient record counts are modelled on the 59-patient Synthea
/// sample in `testdata/patients/synthea_csv_59/` (see `SyntheaCodeTables.swift`); the people
/// are made up from syllables and random numbers. The same `(patients, seed)` always gives
/// byte-identical files: every patient draws from its own xoshiro256** stream derived from
/// the seed and the patient's index, and no clock, locale or system randomness is read.
/// Records are written patient by patient through one buffered writer per file, so memory
/// stays bounded (about 1 MiB per file plus one patient's plan) whatever the patient count.
///
/// History ends on 2022-03-01 (`SyntheaGenerator.exportDate`), as in the sample. Detail
/// (observations, screenings, vaccinations) is recorded for the last ten years of each life,
/// as Synthea does; older visits keep their encounter, conditions and medications.
public struct SyntheaGenerator: Sendable {
    public let patients: Int
    public let seed: UInt64

    public init(patients: Int, seed: UInt64) {
        self.patients = patients
        self.seed = seed
    }

    /// The seven files, in the order they are created.
    public static let fileNames = [
        "patients.csv", "conditions.csv", "observations.csv", "medications.csv",
        "encounters.csv", "procedures.csv", "immunizations.csv",
    ]

    /// The header line of each file, as in Synthea's CSV export.
    static let headers: [String: String] = [
        "patients.csv": "Id,BIRTHDATE,DEATHDATE,SSN,DRIVERS,PASSPORT,PREFIX,FIRST,LAST,SUFFIX,MAIDEN,MARITAL,RACE,ETHNICITY,GENDER,BIRTHPLACE,ADDRESS,CITY,STATE,COUNTY,ZIP,LAT,LON,HEALTHCARE_EXPENSES,HEALTHCARE_COVERAGE",
        "conditions.csv": "START,STOP,PATIENT,ENCOUNTER,CODE,DESCRIPTION",
        "observations.csv": "DATE,PATIENT,ENCOUNTER,CATEGORY,CODE,DESCRIPTION,VALUE,UNITS,TYPE",
        "medications.csv": "START,STOP,PATIENT,PAYER,ENCOUNTER,CODE,DESCRIPTION,BASE_COST,PAYER_COVERAGE,DISPENSES,TOTALCOST,REASONCODE,REASONDESCRIPTION",
        "encounters.csv": "Id,START,STOP,PATIENT,ORGANIZATION,PROVIDER,PAYER,ENCOUNTERCLASS,CODE,DESCRIPTION,BASE_ENCOUNTER_COST,TOTAL_CLAIM_COST,PAYER_COVERAGE,REASONCODE,REASONDESCRIPTION",
        "procedures.csv": "START,STOP,PATIENT,ENCOUNTER,CODE,DESCRIPTION,BASE_COST,REASONCODE,REASONDESCRIPTION",
        "immunizations.csv": "DATE,PATIENT,ENCOUNTER,CODE,DESCRIPTION,BASE_COST",
    ]

    /// The day the simulated history ends (UTC midnight): 2022-03-01, as in the sample.
    public static let exportDate = Date(timeIntervalSince1970: TimeInterval(SyntheaTime.exportTime))

    /// Writes the seven CSV files into `directory`, creating it if needed. Fails, without
    /// touching anything, if any of the seven files already exists; if writing fails part
    /// way, the files this call created are removed again.
    public func write(to directory: URL) throws -> GenerationSummary {
        guard patients >= 0 else {
            throw VaultError(.usage, "the patient count must not be negative (got \(patients))")
        }
        let folder = directory.path
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: folder, isDirectory: &isDirectory) {
            guard isDirectory.boolValue else {
                throw VaultError(.cannotCreate, "output path exists and is not a folder", location: folder)
            }
        } else {
            do {
                try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            } catch {
                throw VaultError(.cannotCreate, "cannot create output folder", location: folder, underlying: error)
            }
        }
        let paths = Self.fileNames.map { directory.appendingPathComponent($0).path }
        for path in paths where access(path, F_OK) == 0 {
            throw VaultError(.cannotCreate, "refusing to overwrite an existing file", location: path)
        }

        var sinks: [SyntheaCSVSink] = []
        do {
            for path in paths { sinks.append(try SyntheaCSVSink(creating: path)) }
        } catch {
            for sink in sinks { sink.abandon() }
            throw error
        }
        let output = SyntheaOutput(sinks)
        do {
            for (name, sink) in zip(Self.fileNames, sinks) {
                sink.raw(Array((Self.headers[name] ?? "").utf8))
                sink.raw([UInt8(ascii: "\n")])
            }
            let world = SyntheaWorld(seed: seed)
            for index in 0..<patients {
                var simulation = SyntheaPatientSimulation(world: world, output: output, seed: seed, index: index)
                simulation.run()
                try output.checkFailures()
            }
            for sink in sinks { try sink.finish() }
        } catch {
            for sink in sinks { sink.abandon() }
            throw error
        }
        var records = RecordCounts()
        records.patients = output.patients.rows
        records.conditions = output.conditions.rows
        records.observations = output.observations.rows
        records.medications = output.medications.rows
        records.encounters = output.encounters.rows
        records.procedures = output.procedures.rows
        records.immunizations = output.immunizations.rows
        return GenerationSummary(records: records, bytesWritten: sinks.reduce(0) { $0 + $1.bytesWritten })
    }
}

// MARK: - CSV text

/// CSV quoting as Synthea's readers expect it: a field with a comma, quote or line break is
/// wrapped in quotes, and quotes inside it are doubled.
enum CSVText {
    static func field(_ text: String) -> [UInt8] { field(Array(text.utf8)) }

    static func field(_ bytes: [UInt8]) -> [UInt8] {
        let special = bytes.contains { $0 == UInt8(ascii: ",") || $0 == UInt8(ascii: "\"") || $0 == 10 || $0 == 13 }
        guard special else { return bytes }
        var out: [UInt8] = [UInt8(ascii: "\"")]
        out.reserveCapacity(bytes.count + 4)
        for b in bytes {
            if b == UInt8(ascii: "\"") { out.append(b) }
            out.append(b)
        }
        out.append(UInt8(ascii: "\""))
        return out
    }
}

// MARK: - Random numbers

/// xoshiro256** (Blackman and Vigna), seeded through SplitMix64. Every draw the generator
/// makes goes through here, with integer arithmetic and IEEE additions and multiplications
/// only, so output does not depend on the platform's libm.
struct SyntheaRandom {
    private var s0: UInt64
    private var s1: UInt64
    private var s2: UInt64
    private var s3: UInt64

    init(seed: UInt64) {
        var state = seed
        s0 = Self.splitMix(&state)
        s1 = Self.splitMix(&state)
        s2 = Self.splitMix(&state)
        s3 = Self.splitMix(&state)
    }

    static func splitMix(_ state: inout UInt64) -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A seed for stream `stream` of the generator seeded with `seed`.
    static func streamSeed(_ seed: UInt64, _ stream: UInt64) -> UInt64 {
        var state = seed ^ (stream &* 0xD1B5_4A32_D192_ED03)
        return splitMix(&state)
    }

    @inline(__always)
    mutating func next() -> UInt64 {
        let result = ((s1 &* 5) << 7 | (s1 &* 5) >> 57) &* 9
        let t = s1 << 17
        s2 ^= s0
        s3 ^= s1
        s1 ^= s2
        s0 ^= s3
        s2 ^= t
        s3 = (s3 << 45) | (s3 >> 19)
        return result
    }

    /// Uniform in `0..<bound` (Lemire's multiply-and-reject).
    mutating func below(_ bound: UInt64) -> UInt64 {
        precondition(bound > 0, "empty range")
        var product = next().multipliedFullWidth(by: bound)
        if product.low < bound {
            let threshold = (0 &- bound) % bound
            while product.low < threshold { product = next().multipliedFullWidth(by: bound) }
        }
        return product.high
    }

    mutating func int(_ range: ClosedRange<Int>) -> Int {
        range.lowerBound + Int(below(UInt64(range.upperBound - range.lowerBound) + 1))
    }

    mutating func pick<T>(_ items: [T]) -> T { items[Int(below(UInt64(items.count)))] }

    /// Uniform in [0, 1).
    @inline(__always)
    mutating func unit() -> Double { Double(next() >> 11) * 0x1p-53 }

    mutating func uniform(_ low: Double, _ high: Double) -> Double { low + (high - low) * unit() }

    mutating func chance(_ p: Double) -> Bool { unit() < p }

    /// Approximately standard normal: the Irwin-Hall sum of four uniforms, rescaled
    /// (bounded to about ±3.5, which suits clinical values).
    mutating func normal() -> Double {
        (unit() + unit() + unit() + unit() - 2) * 1.7320508075688772
    }

    mutating func normal(_ mean: Double, _ sd: Double) -> Double { mean + sd * normal() }

    mutating func uuid() -> (UInt64, UInt64) {
        let hi = (next() & ~0xF000) | 0x4000
        let lo = (next() & 0x3FFF_FFFF_FFFF_FFFF) | 0x8000_0000_0000_0000
        return (hi, lo)
    }
}

// MARK: - Dates

enum SyntheaTime {
    static let minute: Int64 = 60
    static let hour: Int64 = 3_600
    static let day: Int64 = 86_400
    /// Mean Gregorian year.
    static let year: Int64 = 31_556_952
    static let exportTime: Int64 = daysFromCivil(2022, 3, 1) * day
    static let covidStart: Int64 = daysFromCivil(2020, 3, 1) * day
    static let vaccineStart: Int64 = daysFromCivil(2021, 1, 4) * day

    /// Days since 1970-01-01 of a proleptic Gregorian date.
    static func daysFromCivil(_ year: Int64, _ month: Int64, _ day: Int64) -> Int64 {
        Int64(ClinicalTime.days(year: Int(year), month: Int(month), day: Int(day)))
    }

    static func civil(fromDays days: Int64) -> (year: Int64, month: Int64, day: Int64) {
        let c = ClinicalTime.civil(fromDays: Int(days))
        return (Int64(c.year), Int64(c.month), Int64(c.day))
    }

    @inline(__always)
    static func floorDiv(_ a: Int64, _ b: Int64) -> Int64 {
        let q = a / b
        return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q
    }

    static func startOfDay(_ t: Int64) -> Int64 { floorDiv(t, day) * day }
}

/// Renders numbers, dates and ids straight into a byte buffer.
enum SyntheaFormat {
    static let hexDigits: [UInt8] = Array("0123456789abcdef".utf8)

    /// `YYYY-MM-DD`: 10 bytes.
    @inline(__always)
    static func date(_ t: Int64, into p: UnsafeMutablePointer<UInt8>) -> Int {
        let (y, m, d) = SyntheaTime.civil(fromDays: SyntheaTime.floorDiv(t, SyntheaTime.day))
        let year = Int(max(0, min(9999, y)))
        p[0] = 48 + UInt8(year / 1000)
        p[1] = 48 + UInt8(year / 100 % 10)
        p[2] = 48 + UInt8(year / 10 % 10)
        p[3] = 48 + UInt8(year % 10)
        p[4] = UInt8(ascii: "-")
        p[5] = 48 + UInt8(m / 10)
        p[6] = 48 + UInt8(m % 10)
        p[7] = UInt8(ascii: "-")
        p[8] = 48 + UInt8(d / 10)
        p[9] = 48 + UInt8(d % 10)
        return 10
    }

    /// `YYYY-MM-DDTHH:MM:SSZ`: 20 bytes.
    @inline(__always)
    static func timestamp(_ t: Int64, into p: UnsafeMutablePointer<UInt8>) -> Int {
        _ = date(t, into: p)
        let seconds = Int(t - SyntheaTime.floorDiv(t, SyntheaTime.day) * SyntheaTime.day)
        let h = seconds / 3600, m = seconds / 60 % 60, s = seconds % 60
        p[10] = UInt8(ascii: "T")
        p[11] = 48 + UInt8(h / 10)
        p[12] = 48 + UInt8(h % 10)
        p[13] = UInt8(ascii: ":")
        p[14] = 48 + UInt8(m / 10)
        p[15] = 48 + UInt8(m % 10)
        p[16] = UInt8(ascii: ":")
        p[17] = 48 + UInt8(s / 10)
        p[18] = 48 + UInt8(s % 10)
        p[19] = UInt8(ascii: "Z")
        return 20
    }

    /// `8-4-4-4-12` lowercase hex: 36 bytes.
    static func uuid(_ id: (UInt64, UInt64), into p: UnsafeMutablePointer<UInt8>) -> Int {
        var out = 0
        hexDigits.withUnsafeBufferPointer { hex in
            for position in 0..<32 {
                if position == 8 || position == 12 || position == 16 || position == 20 {
                    p[out] = UInt8(ascii: "-")
                    out += 1
                }
                let word = position < 16 ? id.0 : id.1
                let shift = UInt64(60 - 4 * (position & 15))
                p[out] = hex[Int((word >> shift) & 0xF)]
                out += 1
            }
        }
        return out
    }

    /// An integer in decimal.
    @inline(__always)
    static func int(_ value: Int64, into p: UnsafeMutablePointer<UInt8>) -> Int {
        var n = 0
        var v = value.magnitude
        if value < 0 {
            p[0] = UInt8(ascii: "-")
            n = 1
        }
        var digits = 1
        var x = v
        while x >= 10 {
            x /= 10
            digits += 1
        }
        var i = n + digits - 1
        repeat {
            p[i] = 48 + UInt8(v % 10)
            v /= 10
            i -= 1
        } while v > 0
        return n + digits
    }

    private static let powersOfTen: [Double] = [1, 10, 100, 1000, 10000, 100_000, 1_000_000, 10_000_000, 100_000_000]

    /// A fixed-point decimal with `decimals` digits after the point (0...8).
    @inline(__always)
    static func fixed(_ value: Double, _ decimals: Int, into p: UnsafeMutablePointer<UInt8>) -> Int {
        let scale = powersOfTen[decimals]
        let scaled = Int64((abs(value) * scale).rounded())
        var n = 0
        if value < 0 && scaled != 0 {
            p[0] = UInt8(ascii: "-")
            n = 1
        }
        let divisor = Int64(scale)
        n += int(scaled / divisor, into: p + n)
        if decimals > 0 {
            p[n] = UInt8(ascii: ".")
            n += 1
            var fraction = scaled % divisor
            var i = decimals - 1
            while i >= 0 {
                p[n + i] = 48 + UInt8(fraction % 10)
                fraction /= 10
                i -= 1
            }
            n += decimals
        }
        return n
    }

    static func render(_ capacity: Int, _ body: (UnsafeMutablePointer<UInt8>) -> Int) -> [UInt8] {
        [UInt8](unsafeUninitializedCapacity: capacity) { buffer, count in
            count = body(buffer.baseAddress!)
        }
    }

    static func timestamp(_ t: Int64) -> [UInt8] { render(20) { timestamp(t, into: $0) } }
    static func date(_ t: Int64) -> [UInt8] { render(10) { date(t, into: $0) } }
    static func uuid(_ id: (UInt64, UInt64)) -> [UInt8] { render(36) { uuid(id, into: $0) } }
}

// MARK: - Buffered CSV writer

/// One output file: rows are assembled in a 1 MiB buffer and written with write(2) when it
/// fills. The file is created with O_EXCL, so an existing file is never replaced.
final class SyntheaCSVSink {
    let path: String
    private var fd: Int32
    private let base: UnsafeMutablePointer<UInt8>
    private var count = 0
    private static let flushThreshold = 1 << 20
    /// Room past the threshold for the row being assembled; no row comes near it.
    private static let capacity = flushThreshold + (1 << 16)
    private(set) var rows = 0
    private(set) var bytesWritten = 0
    /// The first write error; later rows are dropped and the error is reported by `check()`.
    private(set) var failure: VaultError?

    init(creating path: String) throws {
        self.path = path
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            let err = errno
            let reason = err == EEXIST ? "refusing to overwrite an existing file" : "cannot create file: \(String(cString: strerror(err)))"
            throw VaultError(.cannotCreate, reason, location: path)
        }
        base = .allocate(capacity: Self.capacity)
    }

    deinit {
        base.deallocate()
        if fd >= 0 { close(fd) }
    }

    @inline(__always)
    private func reserve(_ n: Int) -> UnsafeMutablePointer<UInt8> {
        precondition(count + n <= Self.capacity, "CSV row longer than the writer's slack")
        return base + count
    }

    @inline(__always)
    func raw(_ bytes: [UInt8]) {
        let n = bytes.count
        guard n > 0 else { return }
        let p = reserve(n)
        bytes.withUnsafeBufferPointer { p.update(from: $0.baseAddress!, count: n) }
        count += n
    }

    @inline(__always)
    func byte(_ b: UInt8) {
        reserve(1).pointee = b
        count += 1
    }

    @inline(__always) func comma() { byte(UInt8(ascii: ",")) }

    /// A field followed by a comma.
    @inline(__always)
    func field(_ bytes: [UInt8]) {
        raw(bytes)
        comma()
    }

    @inline(__always) func timestamp(_ t: Int64) { count += SyntheaFormat.timestamp(t, into: reserve(20)) }
    @inline(__always) func date(_ t: Int64) { count += SyntheaFormat.date(t, into: reserve(10)) }
    @inline(__always) func fixed(_ v: Double, _ decimals: Int) { count += SyntheaFormat.fixed(v, decimals, into: reserve(48)) }
    @inline(__always) func int(_ v: Int) { count += SyntheaFormat.int(Int64(v), into: reserve(21)) }

    /// Ends a row and writes the buffer out once it passes the threshold.
    @inline(__always)
    func endRow() {
        byte(10)
        rows += 1
        if count >= Self.flushThreshold { flush() }
    }

    private func flush() {
        defer {
            bytesWritten += count
            count = 0
        }
        guard failure == nil, count > 0 else { return }
        var offset = 0
        while offset < count {
            let n = Glibc.write(fd, base + offset, count - offset)
            if n < 0 {
                if errno == EINTR { continue }
                failure = VaultError(.ioError, "write failed: \(String(cString: strerror(errno)))", location: path)
                return
            }
            offset += n
        }
    }

    func check() throws {
        if let failure { throw failure }
    }

    /// Writes what is buffered and closes the file.
    func finish() throws {
        flush()
        try check()
        if close(fd) != 0 {
            fd = -1
            throw VaultError(.ioError, "close failed: \(String(cString: strerror(errno)))", location: path)
        }
        fd = -1
    }

    /// Closes and removes the file (after a failure).
    func abandon() {
        if fd >= 0 {
            close(fd)
            fd = -1
        }
        unlink(path)
    }
}

/// The seven writers, by record kind.
final class SyntheaOutput {
    let patients: SyntheaCSVSink
    let conditions: SyntheaCSVSink
    let observations: SyntheaCSVSink
    let medications: SyntheaCSVSink
    let encounters: SyntheaCSVSink
    let procedures: SyntheaCSVSink
    let immunizations: SyntheaCSVSink
    private let all: [SyntheaCSVSink]

    init(_ sinks: [SyntheaCSVSink]) {
        precondition(sinks.count == 7, "one writer per file")
        patients = sinks[0]
        conditions = sinks[1]
        observations = sinks[2]
        medications = sinks[3]
        encounters = sinks[4]
        procedures = sinks[5]
        immunizations = sinks[6]
        all = sinks
    }

    func checkFailures() throws {
        for sink in all { try sink.check() }
    }
}

// MARK: - Shared entities

/// Organizations, providers and payers the encounters point to (ids only; their own files
/// are not written). Derived from the seed, so they are stable for a given seed.
struct SyntheaWorld: Sendable {
    static let clinicCount = 48
    static let hospitalCount = 16
    static let providersPerOrganization = 4

    let organizations: [[UInt8]]
    let providers: [[UInt8]]
    /// 0 Medicare, 1 Medicaid, 2 no insurance, 3... private insurers.
    let payers: [[UInt8]]

    init(seed: UInt64) {
        var rng = SyntheaRandom(seed: SyntheaRandom.streamSeed(seed, 0xFFFF_FFFF_FFFF_FF00))
        let organizationCount = Self.clinicCount + Self.hospitalCount
        organizations = (0..<organizationCount).map { _ in SyntheaFormat.uuid(rng.uuid()) }
        providers = (0..<(organizationCount * Self.providersPerOrganization)).map { _ in SyntheaFormat.uuid(rng.uuid()) }
        payers = (0..<10).map { _ in SyntheaFormat.uuid(rng.uuid()) }
    }
}

// MARK: - Patient simulation

/// What happens at one planned visit.
enum SyntheaVisitKind {
    case wellness
    case hypertensionFollowUp
    case diabetesFollowUp
    case lipidFollowUp
    case heartFailureFollowUp
    case asthmaFollowUp
    case acute(Int)
    case covid(hospitalDays: Int, intensiveCare: Bool)
    case prenatalInitial(pregnancy: Int)
    case prenatal(pregnancy: Int, number: Int)
    case miscarriage(pregnancy: Int)
    case delivery(pregnancy: Int)
    case postnatal
    case contraception(method: Int, first: Bool)
    case contraceptiveInjection
    case covidVaccine(dose: Int, brand: Int)
    case painProblem
    case painAdmission
    case movementTherapy
    case allergyInitial
    case allergyFollowUp
    case immunotherapy
    case adhdTherapy
    case wisdomTeeth
    case appendicitis
    case overdose
    case detox
    case hipFracture
    case stroke
    case skilledNursing(days: Int)
    case homeVisit
    case pulmonaryRehabilitation
    case hospice(until: Int64)
    case fatalEvent
    case deathCertificate

    /// Visits at which chronic medications are renewed.
    var renewsMedications: Bool {
        switch self {
        case .wellness, .hypertensionFollowUp, .diabetesFollowUp, .lipidFollowUp, .heartFailureFollowUp, .asthmaFollowUp: return true
        default: return false
        }
    }
}

struct SyntheaVisit {
    var time: Int64
    var kind: SyntheaVisitKind
    var sequence: Int
}

/// A chronic condition planned for a patient: when it starts, and when a check-up first records it.
struct SyntheaChronic {
    enum Kind: Int, CaseIterable {
        case hypertension, prediabetes, diabetes, hyperlipidemia, anemia, chronicSinusitis
        case lowBackPain, neckPain, chronicPain, migraine, fibromyalgia, osteoarthritisKnee, osteoarthritisHip
        case childhoodAsthma, emphysema, coronaryHeartDisease, heartFailure, alzheimers, osteoporosis
        case adhd, allergicRhinitis, rheumatoidArthritis
    }
    var onset: Int64
    /// Time of the check-up that records it, if one happens before the end of the history.
    var diagnosis: Int64?
}

/// One patient's life: planned first (demographics, conditions, visits), then written visit by visit.
struct SyntheaPatientSimulation {
    typealias T = SyntheaTime
    let world: SyntheaWorld
    let output: SyntheaOutput
    var rng: SyntheaRandom

    // Demographics.
    let id: [UInt8]
    let female: Bool
    let race: SyntheaRace
    let hispanic: Bool
    let otherLanguage: Bool
    let birth: Int64
    let end: Int64
    let dead: Bool
    let windowStart: Int64
    let address: [UInt8]
    let insurance: Int              // 1 Medicaid, 2 none, 3+ private
    let clinic: Int
    let provider: Int
    let adultHeight: Double
    let growthZ: Double
    let adultBMI: Double
    let systolicBase: Double
    let diastolicBase: Double
    let smoking: Int                // 0 never, 1 former, 2 current
    var prapareAnswers: [[UInt8]]
    let householdSize: Int
    let income: Int

    // Planned conditions and visits.
    var chronic: [SyntheaChronic.Kind: SyntheaChronic] = [:]
    var visits: [SyntheaVisit] = []
    var pregnancies: [(start: Int64, delivery: Int64, miscarriage: Bool)] = []
    var deathCause: SyntheaConcept?
    var covidInfection: Int64?

    // State while writing.
    var activeMedications: [(medication: SyntheaMedication, reason: SyntheaConcept?)] = []
    var pendingMedications: [(time: Int64, medication: SyntheaMedication, reason: SyntheaConcept?)] = []
    var recorded: Set<Int> = []     // one-off findings and conditions already written, by key
    var vaccinesGiven = 0           // index into the childhood schedule
    var lastTd: Int64 = .min
    var lastWellnessTime: Int64 = .min
    var lastQualityTime: Int64 = .min / 2
    var lastFlu: Int64 = .min / 2
    var daly = 0.0
    var expenses = 0.0
    var coverage = 0.0
    var obesityRecorded = false
    var educationRecorded = false

    // The visit being written.
    var visitId: [UInt8] = []
    var visitStart: [UInt8] = []
    var visitTime: Int64 = 0
    var visitStop: Int64 = 0
    var visitCost = 0.0
    var detailed = true
    var nextRenewal: [Int64?] = []
    var nextWellness: [Int64?] = []

    init(world: SyntheaWorld, output: SyntheaOutput, seed: UInt64, index: Int) {
        self.world = world
        self.output = output
        var rng = SyntheaRandom(seed: SyntheaRandom.streamSeed(seed, UInt64(index)))
        id = SyntheaFormat.uuid(rng.uuid())
        female = rng.chance(0.5)
        race = SyntheaDemographics.races.pick(&rng)
        hispanic = rng.chance(SyntheaDemographics.hispanicShare)
        otherLanguage = rng.chance(hispanic ? 0.45 : 0.12)

        // Age at the export date: roughly uniform 0-90, as in the sample; older people may have died.
        let potentialAge = rng.uniform(0.05, 90)
        let birthDay = T.startOfDay(T.exportTime - Int64(potentialAge * Double(T.year)))
        birth = birthDay
        let deathChance = potentialAge >= 60 ? 0.42 : (potentialAge >= 30 ? 0.06 : 0.01)
        if rng.chance(deathChance) {
            let deathAge = potentialAge * rng.uniform(0.3, 0.99)
            let deathTime = birthDay + Int64(max(0.5, deathAge) * Double(T.year)) + Int64(rng.int(0...86_399))
            dead = deathTime < T.exportTime - T.day
            end = dead ? deathTime : T.exportTime
        } else {
            dead = false
            end = T.exportTime
        }
        windowStart = end - 10 * T.year

        var street = [UInt8](SyntheaPatientSimulation.fakeName(&rng, digits: false).utf8)
        street = Array("\(rng.int(100...1099)) ".utf8) + street + Array(" \(rng.pick(SyntheaDemographics.streetTypes))".utf8)
        if rng.chance(0.3) {
            street += Array(" \(rng.pick(SyntheaDemographics.unitKinds)) \(rng.int(1...99))".utf8)
        }
        address = CSVText.field(street)
        let insuranceDraw = rng.unit()
        insurance = insuranceDraw < 0.14 ? 1 : (insuranceDraw < 0.19 ? 2 : 3 + rng.int(0...6))
        clinic = rng.int(0...(SyntheaWorld.clinicCount - 1))
        provider = clinic * SyntheaWorld.providersPerOrganization + rng.int(0...(SyntheaWorld.providersPerOrganization - 1))
        adultHeight = female ? rng.normal(163, 6.5) : rng.normal(176, 7)
        growthZ = rng.normal()
        adultBMI = max(19, rng.normal(29.5, 3.4))
        systolicBase = rng.normal(119, 7)
        diastolicBase = rng.normal(82, 5)
        let smokingDraw = rng.unit()
        smoking = smokingDraw < 0.8 ? 0 : (smokingDraw < 0.97 ? 1 : 2)
        prapareAnswers = SyntheaObs.prapareItems.map { $0.answers.pick(&rng) }
        householdSize = max(1, min(8, Int(rng.normal(4.2, 1.9).rounded())))
        let incomeChoices = [1_553, 5_395, 14_200, 28_739, 28_987, 41_250, 62_800, 94_050, 118_452, 129_773, 134_564]
        income = rng.pick(incomeChoices) + rng.int(-500...500)
        self.rng = rng
    }

    /// A made-up capitalised name from syllables, with Synthea's numeric suffix if `digits`.
    static func fakeName(_ rng: inout SyntheaRandom, digits: Bool) -> String {
        var name = rng.pick(SyntheaDemographics.nameStarts)
        if rng.chance(0.6) { name += rng.pick(SyntheaDemographics.nameMiddles) }
        name += rng.pick(SyntheaDemographics.nameEnds)
        if digits { name += String(rng.int(1...999)) }
        return name
    }

    @inline(__always) func age(_ t: Int64) -> Double { Double(t - birth) / Double(T.year) }
    @inline(__always) func time(atAge years: Double) -> Int64 { birth + Int64(years * Double(T.year)) }
    func diagnosed(_ kind: SyntheaChronic.Kind, by t: Int64) -> Bool {
        guard let d = chronic[kind]?.diagnosis else { return false }
        return d <= t
    }
    func has(_ kind: SyntheaChronic.Kind) -> Bool { chronic[kind] != nil }

    mutating func timeOfDay() -> Int64 { Int64(rng.int(0...86_399)) }

    // MARK: Running

    mutating func run() {
        planConditions()
        planVisits()
        visits.sort { $0.time != $1.time ? $0.time < $1.time : $0.sequence < $1.sequence }
        // Look-ahead tables for STOP dates: the next renewal visit and the next adult check-up.
        nextRenewal = Array(repeating: nil, count: visits.count)
        nextWellness = Array(repeating: nil, count: visits.count)
        var renewal: Int64?
        var wellness: Int64?
        for i in stride(from: visits.count - 1, through: 0, by: -1) {
            nextRenewal[i] = renewal
            nextWellness[i] = wellness
            if visits[i].kind.renewsMedications { renewal = visits[i].time }
            if case .wellness = visits[i].kind { wellness = visits[i].time }
        }
        for i in visits.indices { write(visitAt: i) }
        writePatient()
    }

    // MARK: Planning

    mutating func planConditions() {
        let lifespan = age(end)
        func plan(_ kind: SyntheaChronic.Kind, _ probability: Double, ages: ClosedRange<Double>) {
            guard rng.chance(probability) else { return }
            let onsetAge = rng.uniform(ages.lowerBound, ages.upperBound)
            guard onsetAge < lifespan else { return }
            chronic[kind] = SyntheaChronic(onset: time(atAge: onsetAge))
        }
        let metabolicRisk = max(0, (adultBMI - 24) * 0.025)
        // Synthea assesses hypertension risk at 18, so most cases start then (14 of 15 in the sample).
        plan(.hypertension, 0.28 + metabolicRisk, ages: rng.chance(0.8) ? 18...18.5 : 30...60)
        plan(.prediabetes, 0.22 + metabolicRisk, ages: 25...65)
        if let pre = chronic[.prediabetes], rng.chance(0.45) {
            let onset = pre.onset + Int64(rng.uniform(1, 12) * Double(T.year))
            if onset < end { chronic[.diabetes] = SyntheaChronic(onset: onset) }
        }
        plan(.hyperlipidemia, 0.12, ages: 35...70)
        plan(.anemia, female ? 0.22 : 0.08, ages: 10...80)
        plan(.chronicSinusitis, 0.2, ages: 10...60)
        plan(.lowBackPain, 0.17, ages: 20...60)
        plan(.neckPain, 0.12, ages: 20...60)
        plan(.chronicPain, 0.08, ages: 25...65)
        plan(.migraine, female ? 0.12 : 0.04, ages: 15...45)
        plan(.fibromyalgia, female ? 0.04 : 0.01, ages: 25...55)
        plan(.osteoarthritisKnee, 0.1, ages: 50...80)
        plan(.osteoarthritisHip, 0.04, ages: 55...85)
        plan(.childhoodAsthma, 0.03, ages: 2...8)
        if smoking > 0 { plan(.emphysema, 0.3, ages: 50...75) }
        plan(.coronaryHeartDisease, female ? 0.04 : 0.08, ages: 50...80)
        plan(.heartFailure, 0.04, ages: 60...85)
        plan(.alzheimers, 0.03, ages: 65...85)
        if female { plan(.osteoporosis, 0.15, ages: 55...75) }
        plan(.adhd, 0.03, ages: 6...10)
        plan(.allergicRhinitis, 0.06, ages: 1...12)
        plan(.rheumatoidArthritis, 0.01, ages: 30...60)
    }

    /// Adds a visit if it falls inside the patient's life.
    mutating func add(_ t: Int64, _ kind: SyntheaVisitKind) {
        guard t > birth, t <= end else { return }
        visits.append(SyntheaVisit(time: t, kind: kind, sequence: visits.count))
    }

    mutating func planVisits() {
        let lifespan = age(end)
        // Check-ups: well-child visits in the first three years, then yearly to 18; adults
        // every three years before the recorded window until 50, otherwise yearly.
        var wellnessTimes: [Int64] = []
        for days in [3, 61, 122, 183, 274, 365, 456, 548, 730, 913, 1095] {
            wellnessTimes.append(birth + Int64(days) * T.day + timeOfDay())
        }
        let offset = Int64(rng.int(0...60)) * T.day
        // Patients on long-term medication are seen yearly (their prescriptions are renewed there).
        let medicated: [SyntheaChronic.Kind] = [.hypertension, .diabetes, .hyperlipidemia, .coronaryHeartDisease, .heartFailure, .emphysema]
        let firstMedicated = medicated.compactMap { chronic[$0]?.onset }.min() ?? .max
        var year = 4
        while Double(year) < lifespan + 1 {
            let t = time(atAge: Double(year)) + offset + timeOfDay()
            if year >= 18 && year < 50 && t < windowStart && (year - 18) % (t < firstMedicated ? 4 : 2) != 0 {
                year += 1
                continue
            }
            wellnessTimes.append(t)
            year += 1
        }
        // Like the sample, check-ups of children before the recorded window are mostly absent.
        wellnessTimes = wellnessTimes.filter { t in
            t > birth && t <= end && (t >= windowStart || age(t) >= 18 || rng.chance(0.04))
        }
        for t in wellnessTimes { add(t, .wellness) }

        // Chronic conditions are recorded at the first check-up after onset.
        for kind in SyntheaChronic.Kind.allCases {
            guard var c = chronic[kind] else { continue }
            c.diagnosis = wellnessTimes.first { $0 >= c.onset }
            chronic[kind] = c
        }
        planFollowUps()
        planAcuteEpisodes(lifespan: lifespan)
        if female { planPregnanciesAndContraception(lifespan: lifespan) }
        planCovid()
        planPrograms(lifespan: lifespan)
        if dead { planDeath() }
    }

    mutating func planFollowUps() {
        func every(_ kind: SyntheaChronic.Kind, months: ClosedRange<Int>, until limit: Int64? = nil, _ visit: SyntheaVisitKind) {
            guard let start = chronic[kind]?.diagnosis else { return }
            var t = start + Int64(rng.int(months)) * 30 * T.day
            let stop = min(end, limit ?? end)
            while t <= stop {
                if t >= windowStart { add(T.startOfDay(t) + timeOfDay(), visit) }
                t += Int64(rng.int(months)) * 30 * T.day
            }
        }
        every(.diabetes, months: 5...8, .diabetesFollowUp)
        every(.hyperlipidemia, months: 10...14, .lipidFollowUp)
        every(.heartFailure, months: 4...8, .heartFailureFollowUp)
        every(.childhoodAsthma, months: 10...14, until: time(atAge: 18), .asthmaFollowUp)
        if let d = chronic[.hypertension]?.diagnosis {
            add(d + Int64(rng.int(20...60)) * T.day, .hypertensionFollowUp)
            var t = d + T.year
            while t <= end {
                if t >= windowStart && rng.chance(0.25) { add(t + Int64(rng.int(0...200)) * T.day, .hypertensionFollowUp) }
                t += T.year
            }
        }
        let painKinds: [SyntheaChronic.Kind] = [.lowBackPain, .neckPain, .chronicPain, .migraine, .fibromyalgia]
        if let first = painKinds.compactMap({ chronic[$0]?.diagnosis }).min() {
            var t = first + Int64(rng.int(30...120)) * T.day
            while t <= end {
                if t >= windowStart { add(t, .painProblem) }
                t += Int64(rng.int(60...260)) * T.day
            }
            if rng.chance(0.3) {
                var session = max(first, windowStart) + Int64(rng.int(30...400)) * T.day
                for _ in 0..<rng.int(6...12) {
                    add(session, .movementTherapy)
                    session += 7 * T.day + Int64(rng.int(-3600...3600))
                }
            }
        }
        // Admissions for severe chronic pain and migraine, with opioid prescriptions.
        if let first = [chronic[.chronicPain]?.diagnosis, chronic[.migraine]?.diagnosis].compactMap({ $0 }).min() {
            var t = first + Int64(rng.int(60...400)) * T.day
            while t <= end {
                if t >= windowStart { add(t, .painAdmission) }
                t += Int64(rng.int(150...540)) * T.day
            }
        }
        if let d = chronic[.heartFailure]?.diagnosis { planRehabilitation(after: d + Int64(rng.int(30...300)) * T.day, chance: 0.4) }
        // Home care for frail patients.
        if let first = [chronic[.alzheimers]?.diagnosis, chronic[.heartFailure]?.diagnosis].compactMap({ $0 }).min() {
            var t = first + Int64(rng.int(60...300)) * T.day
            while t <= end {
                if t >= windowStart { add(t, .homeVisit) }
                t += Int64(rng.int(40...120)) * T.day
            }
        }
        if let d = chronic[.emphysema]?.diagnosis, rng.chance(0.3) {
            var session = d + Int64(rng.int(20...90)) * T.day
            for _ in 0..<rng.int(6...10) {
                add(session, .pulmonaryRehabilitation)
                session += 7 * T.day
            }
        }
        if let d = chronic[.adhd]?.diagnosis {
            var session = d + Int64(rng.int(14...60)) * T.day
            for _ in 0..<rng.int(3...8) {
                add(session, .adhdTherapy)
                session += Int64(rng.int(14...40)) * T.day
            }
        }
        if let d = chronic[.allergicRhinitis]?.diagnosis {
            let initial = d + Int64(rng.int(7...40)) * T.day
            add(initial, .allergyInitial)
            add(initial + Int64(rng.int(300...420)) * T.day, .allergyFollowUp)
            if rng.chance(0.35) {
                var shot = initial + Int64(rng.int(20...60)) * T.day
                for _ in 0..<rng.int(24...48) {
                    add(shot, .immunotherapy)
                    shot += Int64(rng.int(26...34)) * T.day
                }
            }
        }
    }

    mutating func planAcuteEpisodes(lifespan: Double) {
        // Acute episodes: a Bernoulli draw per quarter, at a rate that depends on age.
        var quarterStart = birth + 30 * T.day
        while quarterStart < end {
            let a = age(quarterStart)
            let yearlyRate = a < 12 ? 0.6 : (a < 65 ? 0.44 : 0.5)
            let scale = quarterStart >= windowStart ? 1.0 : 0.07
            if rng.chance(yearlyRate * scale / 4) {
                let t = quarterStart + Int64(rng.int(0...90)) * T.day + timeOfDay()
                let kind = pickAcuteKind(age: age(t))
                add(t, .acute(kind))
            }
            quarterStart += T.year / 4
        }
        // One-off surgical and injury events.
        if rng.chance(0.12) {
            let t = time(atAge: rng.uniform(16, 25))
            add(t, .wisdomTeeth)
        }
        if rng.chance(0.07) { add(time(atAge: rng.uniform(8, 45)), .appendicitis) }
        // Hip fractures and strokes in later life, often followed by a skilled-nursing stay and home care.
        if lifespan > 70 && rng.chance(0.2) {
            let t = time(atAge: rng.uniform(70, max(70.5, lifespan)))
            add(t, .hipFracture)
            planRehabilitation(after: t, chance: 0.7)
        }
        if lifespan > 60 && rng.chance(0.08) {
            let t = time(atAge: rng.uniform(60, max(60.5, lifespan)))
            add(t, .stroke)
            planRehabilitation(after: t, chance: 0.8)
        }
    }

    mutating func planRehabilitation(after t: Int64, chance: Double) {
        guard rng.chance(chance) else { return }
        let days = rng.int(12...30)
        let admit = t + Int64(rng.int(2...6)) * T.day
        add(admit, .skilledNursing(days: days))
        var home = admit + Int64(days + 2) * T.day
        for _ in 0..<rng.int(2...6) {
            add(home, .homeVisit)
            home += 7 * T.day
        }
    }

    mutating func pickAcuteKind(age a: Double) -> Int {
        let kinds = SyntheaAcute.kinds
        var total = 0
        var weights = [Int](repeating: 0, count: kinds.count)
        for (i, k) in kinds.enumerated() {
            let allowed: Bool
            switch k.group {
            case .anyone: allowed = true
            case .child: allowed = a < 12
            case .adult: allowed = a >= 18
            case .female: allowed = female && a >= 12
            case .elderly: allowed = a >= 50
            }
            if allowed {
                weights[i] = k.weight
                total += k.weight
            }
        }
        var r = rng.int(0...(total - 1))
        for (i, w) in weights.enumerated() {
            if r < w { return i }
            r -= w
        }
        return 0
    }

    mutating func planPregnanciesAndContraception(lifespan: Double) {
        var busyUntil = time(atAge: 18)
        var ageYear = 18
        while ageYear <= 42 && Double(ageYear) < lifespan {
            let yearStart = time(atAge: Double(ageYear))
            if yearStart >= busyUntil && rng.chance(0.075) {
                let conception = yearStart + Int64(rng.int(0...300)) * T.day
                let number = pregnancies.count
                let miscarriage = rng.chance(0.3)
                let initial = conception + Int64(rng.int(42...63)) * T.day + timeOfDay()
                if miscarriage {
                    let lost = conception + Int64(rng.int(70...90)) * T.day
                    pregnancies.append((initial, lost, true))
                    add(initial, .prenatalInitial(pregnancy: number))
                    add(lost, .miscarriage(pregnancy: number))
                    busyUntil = lost + 90 * T.day
                } else {
                    let delivery = conception + Int64(rng.int(266...287)) * T.day
                    pregnancies.append((initial, delivery, false))
                    add(initial, .prenatalInitial(pregnancy: number))
                    var visit = initial + 28 * T.day
                    var n = 0
                    while visit < delivery - 7 * T.day {
                        add(visit, .prenatal(pregnancy: number, number: n))
                        n += 1
                        visit += (visit - conception > 196 * T.day ? 21 : 49) * T.day
                    }
                    add(delivery, .delivery(pregnancy: number))
                    add(delivery + Int64(rng.int(35...50)) * T.day, .postnatal)
                    busyUntil = delivery + Int64(rng.int(300...900)) * T.day
                }
            }
            ageYear += 1
        }
        // Contraception: a yearly consultation and prescription for women who use it.
        guard rng.chance(0.4) else { return }
        let method = Int(rng.below(UInt64(SyntheaMedications.contraceptives.items.count)))
        let kind = SyntheaMedications.contraceptives.items[method].1
        var t = time(atAge: rng.uniform(15, 22))
        let stopAge = time(atAge: 45)
        var first = true
        while t < min(end, stopAge) {
            let clash = pregnancies.contains { t >= $0.start - 60 * T.day && t <= $0.delivery + 60 * T.day }
            if !clash && (t >= windowStart || rng.chance(0.1)) {
                add(t, .contraception(method: method, first: first))
                first = false
                if kind == .injection && t >= windowStart {
                    for quarter in 1...3 { add(t + Int64(quarter) * 91 * T.day, .contraceptiveInjection) }
                }
            }
            t += T.year + Int64(rng.int(-20...20)) * T.day
        }
    }

    mutating func planCovid() {
        guard end > T.covidStart + 30 * T.day else { return }
        if rng.chance(0.13) {
            let latest = min(end, T.exportTime - 14 * T.day)
            if latest > T.covidStart {
                let t = T.covidStart + Int64(rng.unit() * Double(latest - T.covidStart))
                covidInfection = t
                let a = age(t)
                let hospital = a > 5 && rng.chance(min(0.6, 0.06 + a / 180))
                let days = hospital ? rng.int(5...14) : 0
                add(t, .covid(hospitalDays: days, intensiveCare: hospital && rng.chance(0.25)))
                if hospital && a >= 65 && rng.chance(0.5) {
                    add(t + Int64(days + 1) * T.day, .skilledNursing(days: rng.int(10...25)))
                }
            }
        }
        // Vaccination in 2021 for those of twelve and over who accept it; older people first.
        let vaccinationAge = age(T.vaccineStart + 120 * T.day)
        if vaccinationAge >= 12 && rng.chance(0.6) {
            let brandDraw = rng.unit()
            let brand = brandDraw < 0.7 ? 0 : (brandDraw < 0.9 ? 1 : 2)
            let delay = Int64(max(0, 85 - vaccinationAge) * 2.5 + Double(rng.int(0...40)))
            let first = T.vaccineStart + delay * T.day + timeOfDay()
            add(first, .covidVaccine(dose: 1, brand: brand))
            if brand != 2 { add(first + (brand == 0 ? 21 : 28) * T.day, .covidVaccine(dose: 2, brand: brand)) }
        }
    }

    mutating func planPrograms(lifespan: Double) {
        // Drug misuse: an overdose and detoxification for some adults.
        if lifespan > 20 && rng.chance(0.035) {
            let t = time(atAge: rng.uniform(18, min(60, lifespan)))
            add(t, .overdose)
            var stay = t + Int64(rng.int(20...90)) * T.day
            for _ in 0..<rng.int(1...3) {
                add(stay, .detox)
                stay += Int64(rng.int(60...200)) * T.day
            }
        }
    }

    mutating func planDeath() {
        let a = age(end)
        if let infection = covidInfection, end - infection < 60 * T.day {
            deathCause = SyntheaConditions.covid
        } else if has(.heartFailure) {
            deathCause = SyntheaConditions.heartFailure
        } else if has(.emphysema) {
            deathCause = SyntheaConditions.emphysema
        } else if has(.alzheimers) {
            deathCause = SyntheaConditions.alzheimers
        } else if has(.coronaryHeartDisease) {
            deathCause = rng.chance(0.5) ? SyntheaConditions.myocardialInfarction : SyntheaConditions.cardiacArrest
        } else {
            let causes: [(SyntheaConcept, Int)] = a < 50
                ? [(SyntheaConditions.concussionInjury, 4), (SyntheaConditions.drugOverdose, 3), (SyntheaConditions.cardiacArrest, 2), (SyntheaConditions.sepsis, 1)]
                : [(SyntheaConditions.stroke, 25), (SyntheaConditions.pneumonia, 20), (SyntheaConditions.myocardialInfarction, 15),
                   (SyntheaConditions.cardiacArrest, 15), (SyntheaConditions.sepsis, 15), (SyntheaConditions.concussionInjury, 5)]
            deathCause = SyntheaWeighted(causes).pick(&rng)
        }
        let chronicCause = has(.heartFailure) || has(.emphysema) || has(.alzheimers)
        if a >= 45 && (chronicCause || rng.chance(0.5)) {
            let start = end - Int64(rng.int(20...90)) * T.day
            add(start, .hospice(until: end))
        } else {
            add(end - Int64(rng.int(1800...14_400)), .fatalEvent)
        }
        add(end, .deathCertificate)
    }

    // MARK: Writing visits

    mutating func write(visitAt index: Int) {
        let visit = visits[index]
        visitTime = visit.time
        visitStart = SyntheaFormat.timestamp(visit.time)
        visitId = SyntheaFormat.uuid(rng.uuid())
        visitCost = 0
        detailed = visit.time >= windowStart
        let renewalStop = nextRenewal[index]
        let wellnessStop = nextWellness[index]
        let a = age(visit.time)

        var type = SyntheaEncounters.symptom
        var duration = 15 * T.minute
        var reason: SyntheaConcept?
        var organization = clinic
        var practitioner = provider

        func hospital(_ rng: inout SyntheaRandom) -> (Int, Int) {
            let org = SyntheaWorld.clinicCount + Int(rng.below(UInt64(SyntheaWorld.hospitalCount)))
            return (org, org * SyntheaWorld.providersPerOrganization + Int(rng.below(UInt64(SyntheaWorld.providersPerOrganization))))
        }

        switch visit.kind {
        case .wellness:
            if a < 18 {
                type = SyntheaEncounters.wellChild
            } else {
                let draw = rng.unit()
                type = draw < 0.93 ? SyntheaEncounters.generalExam : (draw < 0.98 ? SyntheaEncounters.checkUpOutpatient : SyntheaEncounters.checkUpAmbulatory)
            }
            if !detailed && rng.chance(0.04) { detailed = true }
            writeWellness(age: a, renewalStop: renewalStop, wellnessStop: wellnessStop)

        case .hypertensionFollowUp:
            type = SyntheaEncounters.hypertensionFollowUp
            reason = SyntheaConditions.hypertension
            renewMedications(stop: renewalStop)
            writeVitals(age: a, full: false)

        case .diabetesFollowUp:
            type = SyntheaEncounters.followUp
            reason = SyntheaConditions.diabetes
            renewMedications(stop: renewalStop)
            writeGlycemicLabs(age: a)
            writeMetabolicPanel(age: a)
            observation(SyntheaObs.microalbumin, rng.normal(28, 20))
            observation(SyntheaObs.egfr, rng.normal(88, 18))
            for (i, (concept, p)) in SyntheaConditions.diabetesComplications.enumerated() where !recorded.contains(1000 + i) {
                if rng.chance(p / 6) {
                    recorded.insert(1000 + i)
                    condition(concept, stop: nil)
                }
            }

        case .lipidFollowUp:
            type = SyntheaEncounters.followUp
            renewMedications(stop: renewalStop)
            writeMetabolicPanel(age: a)
            for kind in SyntheaObs.hepaticPanel { observation(kind) }

        case .heartFailureFollowUp:
            type = SyntheaEncounters.followUp
            reason = SyntheaConditions.heartFailure
            renewMedications(stop: renewalStop)
            writeVitals(age: a, full: false)
            observation(SyntheaObs.ntProBNP)
            observation(SyntheaObs.ejectionFraction)
            textObservation(SyntheaObs.nyhaFunctional, rng.pick(SyntheaObs.nyhaClasses))
            procedure(SyntheaProcedures.echocardiography, reason: SyntheaConditions.heartFailure)

        case .asthmaFollowUp:
            type = SyntheaEncounters.asthmaFollowUp
            reason = SyntheaConditions.childhoodAsthma
            renewMedications(stop: renewalStop)

        case .acute(let kindIndex):
            let kind = SyntheaAcute.kinds[kindIndex]
            switch kind.setting {
            case .clinic:
                type = rng.chance(0.1) ? SyntheaEncounters.urgentCare : SyntheaEncounters.symptom
            case .emergency:
                type = rng.chance(0.5) ? SyntheaEncounters.emergencyAdmission : SyntheaEncounters.emergencyRoom
                duration = Int64(rng.int(1...4)) * T.hour
                (organization, practitioner) = hospital(&rng)
            case .urgentCare:
                type = SyntheaEncounters.urgentCare
            }
            reason = kind.condition
            writeAcute(kind, age: a)

        case .covid(let hospitalDays, let intensiveCare):
            reason = SyntheaConditions.covid
            duration = 30 * T.minute
            writeCovid(hospitalDays: hospitalDays, intensiveCare: intensiveCare, age: a)
            if hospitalDays > 0 {
                type = intensiveCare ? SyntheaEncounters.intensiveCare : SyntheaEncounters.isolation
                duration = Int64(hospitalDays) * T.day
                (organization, practitioner) = hospital(&rng)
            }

        case .prenatalInitial(let number):
            type = SyntheaEncounters.prenatalInitial
            reason = SyntheaConditions.normalPregnancy
            let pregnancy = pregnancies[number]
            condition(SyntheaConditions.normalPregnancy, stop: pregnancy.miscarriage ? nil : pregnancy.delivery)
            for p in SyntheaProcedures.prenatalInitial where rng.chance(0.92) {
                procedure(p, reason: SyntheaConditions.normalPregnancy)
            }

        case .prenatal(_, let number):
            type = SyntheaEncounters.prenatal
            reason = SyntheaConditions.normalPregnancy
            procedure(SyntheaProcedures.fundalHeight, reason: SyntheaConditions.normalPregnancy)
            procedure(SyntheaProcedures.fetalHeart, reason: SyntheaConditions.normalPregnancy)
            if number == 2 {
                for p in SyntheaProcedures.prenatalMidterm { procedure(p, reason: SyntheaConditions.normalPregnancy) }
            }
            if number == 4 {
                procedure(SyntheaProcedures.pertussisVaccination, reason: SyntheaConditions.normalPregnancy)
                procedure(SyntheaProcedures.groupBStrep, reason: SyntheaConditions.normalPregnancy)
                if rng.chance(0.15) { procedure(SyntheaProcedures.rhImmunization, reason: SyntheaConditions.normalPregnancy) }
            }
            if number == 3 && rng.chance(0.05) {
                condition(rng.chance(0.5) ? SyntheaConditions.preeclampsia : SyntheaConditions.eclampsia, stop: visitTime + 60 * T.day)
            }

        case .miscarriage:
            type = SyntheaEncounters.prenatal
            reason = SyntheaConditions.normalPregnancy
            condition(SyntheaConditions.miscarriage, stop: nil)

        case .delivery:
            type = SyntheaEncounters.obstetricEmergency
            reason = SyntheaConditions.normalPregnancy
            duration = Int64(rng.int(6...30)) * T.hour
            (organization, practitioner) = hospital(&rng)
            procedure(SyntheaProcedures.childbirth, reason: SyntheaConditions.normalPregnancy)
            if rng.chance(0.5) { procedure(SyntheaProcedures.episiotomy, reason: SyntheaConditions.normalPregnancy) }
            procedure(SyntheaProcedures.physicalExamBirth, reason: nil)
            if rng.chance(0.05) { condition(SyntheaConditions.fetusComplication, stop: visitTime + 30 * T.day) }

        case .postnatal:
            type = SyntheaEncounters.postnatal
            procedure(SyntheaProcedures.depressionScreeningPregnancy, reason: nil)
            procedure(SyntheaProcedures.motherExam, reason: SyntheaConditions.normalPregnancy)

        case .contraception(let method, let first):
            type = SyntheaEncounters.consultation
            let (medication, kind) = SyntheaMedications.contraceptives.items[method]
            medicationRecord(medication, start: visitTime, stop: min(visitTime + T.year, end), reason: nil, dispenses: 12)
            if first || rng.chance(0.2) {
                switch kind {
                case .implant: procedure(first ? SyntheaProcedures.implantInsertion : SyntheaProcedures.implantRemoval, reason: nil)
                case .intrauterine: if first { procedure(SyntheaProcedures.iudInsertion, reason: nil) }
                case .injection: procedure(SyntheaProcedures.intramuscularInjection, reason: nil)
                case .oral: break
                }
            }

        case .contraceptiveInjection:
            type = SyntheaEncounters.patientProcedureOutpatient
            procedure(SyntheaProcedures.intramuscularInjection, reason: nil)

        case .covidVaccine(_, let brand):
            type = SyntheaEncounters.vaccination
            immunization([SyntheaImmunizations.covidPfizer, SyntheaImmunizations.covidModerna, SyntheaImmunizations.covidJanssen][brand])

        case .painProblem:
            type = rng.chance(0.8) ? SyntheaEncounters.problemOutpatient : SyntheaEncounters.problemAmbulatory
            if detailed && rng.chance(0.12) {
                observation(SyntheaObs.painInterferenceActivity)
                observation(SyntheaObs.painInterferenceEnjoyment)
                observation(SyntheaObs.painAverage)
            }
            if detailed && rng.chance(0.05) { textObservation(SyntheaObs.drugScreen, SyntheaObs.negative) }
            if rng.chance(0.12) {
                let medication = SyntheaMedications.painRelief.pick(&rng)
                medicationRecord(medication, start: visitTime, stop: min(end, visitTime + Int64(rng.int(14...90)) * T.day), reason: nil, dispenses: rng.int(1...3))
            }

        case .painAdmission:
            type = SyntheaEncounters.inpatient
            duration = Int64(rng.int(4...30)) * T.hour
            (organization, practitioner) = hospital(&rng)
            if detailed { observation(SyntheaObs.painScore, Double(rng.int(4...9))) }
            for _ in 0..<rng.int(1...2) {
                let medication = SyntheaMedications.postSurgery.pick(&rng)
                medicationRecord(medication, start: visitTime, stop: min(end, visitTime + Int64(rng.int(7...30)) * T.day), reason: nil, dispenses: rng.int(1...3))
            }

        case .movementTherapy:
            type = SyntheaEncounters.patientProcedureAmbulatory
            observation(SyntheaObs.painReported)
            procedure(SyntheaProcedures.movementTherapy, reason: nil)

        case .pulmonaryRehabilitation:
            type = SyntheaEncounters.patientProcedureOutpatient
            reason = SyntheaConditions.emphysema
            procedure(SyntheaProcedures.pulmonaryRehabilitation, reason: SyntheaConditions.emphysema)

        case .adhdTherapy:
            type = SyntheaEncounters.problemAmbulatory
            reason = SyntheaConditions.adhd
            procedure(SyntheaProcedures.cognitiveTherapy, reason: SyntheaConditions.adhd)

        case .allergyInitial, .allergyFollowUp:
            let initial: Bool
            if case .allergyInitial = visit.kind { initial = true } else { initial = false }
            type = initial ? SyntheaEncounters.allergyInitial : SyntheaEncounters.allergyFollowUp
            for kind in SyntheaObs.allergyPanel { observation(kind) }
            if initial {
                procedure(SyntheaProcedures.allergyScreening, reason: nil)
                if rng.chance(0.3) { longPrescription(SyntheaMedications.epinephrineAutoInjector, reason: nil) }
            }

        case .immunotherapy:
            type = SyntheaEncounters.outpatientProcedure
            procedure(SyntheaProcedures.immunotherapy, reason: nil)

        case .wisdomTeeth:
            type = SyntheaEncounters.inpatient
            reason = SyntheaConditions.impactedMolars
            duration = Int64(rng.int(2...6)) * T.hour
            (organization, practitioner) = hospital(&rng)
            condition(SyntheaConditions.impactedMolars, stop: nil)
            procedure(SyntheaProcedures.wisdomTooth, reason: nil)
            for _ in 0..<rng.int(1...3) {
                medicationRecord(SyntheaMedications.postSurgery.pick(&rng), start: visitTime, stop: min(end, visitTime + 7 * T.day), reason: nil, dispenses: 1)
            }

        case .appendicitis:
            type = SyntheaEncounters.emergencyAdmission
            reason = SyntheaConditions.appendicitis
            duration = Int64(rng.int(20...60)) * T.hour
            (organization, practitioner) = hospital(&rng)
            condition(SyntheaConditions.appendicitis, stop: nil)
            if rng.chance(0.1) { condition(SyntheaConditions.appendixRupture, stop: nil) }
            procedure(SyntheaProcedures.appendectomy, reason: SyntheaConditions.appendicitis)
            condition(SyntheaConditions.appendectomyHistory, stop: nil)
            medicationRecord(SyntheaMedications.postSurgery.pick(&rng), start: visitTime, stop: min(end, visitTime + 7 * T.day), reason: nil, dispenses: 1)

        case .overdose:
            type = SyntheaEncounters.emergencyRoom
            reason = SyntheaConditions.drugOverdose
            duration = Int64(rng.int(2...8)) * T.hour
            (organization, practitioner) = hospital(&rng)
            condition(SyntheaConditions.drugOverdose, stop: nil)

        case .detox:
            type = SyntheaEncounters.detox
            reason = SyntheaConditions.drugOverdose
            duration = Int64(rng.int(1...5)) * T.day
            (organization, practitioner) = hospital(&rng)
            if detailed {
                observation(SyntheaObs.dast10, Double(rng.int(3...9)))
                if rng.chance(0.5) { textObservation(SyntheaObs.drugScreen, SyntheaObs.negative) }
            }

        case .hipFracture:
            type = SyntheaEncounters.emergencyAdmission
            reason = SyntheaConditions.hipFracture
            duration = Int64(rng.int(4...30)) * T.hour
            (organization, practitioner) = hospital(&rng)
            condition(SyntheaConditions.hipFracture, stop: min(visitTime + Int64(rng.int(56...90)) * T.day, end))
            procedure(SyntheaProcedures.pelvisXRay, reason: SyntheaConditions.hipFracture)
            procedure(SyntheaProcedures.orthopedicAdmission, reason: SyntheaConditions.hipFracture)
            if detailed && has(.osteoporosis) { observation(SyntheaObs.dxaTScore, rng.normal(-2.8, 0.4)) }
            medicationRecord(SyntheaMedications.postSurgery.pick(&rng), start: visitTime, stop: min(end, visitTime + 14 * T.day), reason: nil, dispenses: 1)

        case .stroke:
            type = SyntheaEncounters.stroke
            reason = SyntheaConditions.stroke
            duration = Int64(rng.int(6...48)) * T.hour
            (organization, practitioner) = hospital(&rng)
            if !recorded.contains(6000) {
                recorded.insert(6000)
                condition(SyntheaConditions.stroke, stop: nil)
            }
            medicationRecord(SyntheaMedications.alteplase, start: visitTime, stop: min(end, visitTime + T.day), reason: SyntheaConditions.stroke, dispenses: 1)
            activate(SyntheaMedications.clopidogrel, reason: nil)

        case .skilledNursing(let days):
            type = SyntheaEncounters.skilledNursing
            duration = Int64(days) * T.day
            (organization, practitioner) = hospital(&rng)
            writeSkilledNursing(days: days)

        case .homeVisit:
            type = SyntheaEncounters.home
            procedure(SyntheaProcedures.nursingCare, reason: nil)
            if rng.chance(0.6) { procedure(SyntheaProcedures.physicalTherapy, reason: nil) }
            if rng.chance(0.2) { procedure(SyntheaProcedures.occupationalTherapy, reason: nil) }

        case .hospice(let until):
            type = SyntheaEncounters.hospice
            duration = until - visitTime
            if let cause = deathCause { reason = cause }
            var day = visitTime
            while day < until {
                procedure(SyntheaProcedures.hospiceCare, reason: nil, at: day)
                day += Int64(rng.int(1...3)) * T.day
            }

        case .fatalEvent:
            (organization, practitioner) = hospital(&rng)
            duration = end - visitTime
            writeFatalEvent(type: &type, reason: &reason)

        case .deathCertificate:
            type = SyntheaEncounters.deathCertification
            duration = 0
            detailed = true
            if let cause = deathCause {
                textObservation(SyntheaObs.causeOfDeath, cause.description)
                reason = cause
            }
            if rng.chance(0.55) {
                procedure(SyntheaProcedures.certification, reason: nil)
                procedure(SyntheaProcedures.notifications, reason: nil)
            }
        }

        visitStop = min(visitTime + duration, end)
        writeEncounter(type: type, reason: reason, organization: organization, practitioner: practitioner)
    }

    mutating func writeWellness(age a: Double, renewalStop: Int64?, wellnessStop: Int64?) {
        // Chronic conditions first recorded at this check-up, with their medications.
        for kind in SyntheaChronic.Kind.allCases {
            guard let c = chronic[kind], c.diagnosis == visitTime else { continue }
            diagnose(kind)
        }
        activatePending()
        if a >= 18 { writeSocialFindings(age: a, stop: wellnessStop) } else if a >= 14 && rng.chance(0.04) {
            condition(SyntheaConditions.riskActivity, stop: wellnessStop)
            if detailed { procedure(SyntheaProcedures.healthRisksEducation, reason: SyntheaConditions.riskActivity) }
        }
        renewMedications(stop: renewalStop)

        let bmi = bmiAt(age: a)
        if a >= 18 && bmi >= 30 && !obesityRecorded {
            obesityRecorded = true
            condition(SyntheaConditions.obesity, stop: nil)
        }
        guard detailed else {
            lastWellnessTime = visitTime
            _ = dueChildhoodVaccines()
            return
        }

        writeVitals(age: a, full: true)
        if a >= 18 {
            writeAdultScreening(age: a)
        } else if a >= 12 {
            observation(SyntheaObs.phq9Teen, Double(teenDepressionScore()))
            procedure(SyntheaProcedures.depressionScreening, reason: nil)
            procedure(SyntheaProcedures.phq9Screening, reason: nil)
            if rng.chance(0.4) {
                observation(SyntheaObs.gad7, Double(anxietyScore()))
                procedure(SyntheaProcedures.anxietyAssessment, reason: nil)
            }
            if rng.chance(0.5) {
                procedure(SyntheaProcedures.substanceUse, reason: nil)
                procedure(SyntheaProcedures.crafft, reason: nil)
            }
        }
        if a < 18 && rng.chance(0.12) { procedure(SyntheaProcedures.anticipatoryGuidance, reason: nil) }
        if !activeMedications.isEmpty || rng.chance(0.1) {
            procedure(SyntheaProcedures.medicationReconciliation, reason: nil)
        }

        // Laboratory work.
        let diabetic = diagnosed(.diabetes, by: visitTime)
        let prediabetic = diagnosed(.prediabetes, by: visitTime)
        if a >= 18 {
            let lipidRisk = diagnosed(.hyperlipidemia, by: visitTime) || diagnosed(.coronaryHeartDisease, by: visitTime) || diabetic
            if lipidRisk || rng.chance(0.22) { writeLipidPanel() }
            if diabetic || prediabetic || (diagnosed(.hypertension, by: visitTime) && rng.chance(0.5)) || rng.chance(0.15) {
                writeGlycemicLabs(age: a)
                writeMetabolicPanel(age: a)
            } else if rng.chance(0.05) {
                writeGlycemicLabs(age: a)
            }
            if diagnosed(.anemia, by: visitTime) || rng.chance(0.15) { writeBloodCount() }
            if diagnosed(.emphysema, by: visitTime) {
                observation(SyntheaObs.fev1fvc, rng.normal(45, 12))
                procedure(SyntheaProcedures.spirometry, reason: SyntheaConditions.emphysema)
            }
            if diagnosed(.osteoporosis, by: visitTime) && rng.chance(0.5) { observation(SyntheaObs.dxaTScore, rng.normal(-2.6, 0.4)) }
            if diagnosed(.alzheimers, by: visitTime) { observation(SyntheaObs.mmse, rng.normal(14, 5)) }
            if a >= 50 && rng.chance(0.06) { procedure(SyntheaProcedures.colonoscopy, reason: nil) }
            if diagnosed(.hypertension, by: visitTime) && rng.chance(0.03) { procedure(SyntheaProcedures.hemodialysis, reason: nil) }
        } else if diagnosed(.anemia, by: visitTime) || rng.chance(0.15) {
            writeBloodCount()
        }

        // Quality of life, once a year in the recorded window.
        if visitTime >= windowStart && visitTime - lastQualityTime >= 300 * T.day {
            lastQualityTime = visitTime
            let qols = qualityOfLife()
            if lastWellnessTime != .min {
                daly += (1 - qols) * Double(visitTime - lastWellnessTime) / Double(T.year)
            }
            observation(SyntheaObs.qaly, max(0, a - daly))
            observation(SyntheaObs.daly, daly)
            observation(SyntheaObs.qols, qols)
        }
        lastWellnessTime = visitTime

        writeImmunizations(age: a)
    }

    mutating func writeAdultScreening(age a: Double) {
        if rng.chance(0.74) {
            writePrapare(age: a)
            procedure(SyntheaProcedures.socialNeeds, reason: nil)
        }
        if rng.chance(0.75) {
            let phq2 = min(6, max(0, Int(rng.normal(1.2, 1.0).rounded())))
            observation(SyntheaObs.phq2, Double(phq2))
            procedure(SyntheaProcedures.depressionScreening, reason: nil)
            procedure(SyntheaProcedures.phq2Screening, reason: nil)
            if phq2 >= 3 {
                observation(SyntheaObs.phq9, Double(rng.int(5...22)))
                procedure(SyntheaProcedures.phq9Screening, reason: nil)
            }
        }
        if rng.chance(0.45) {
            observation(SyntheaObs.gad7, Double(anxietyScore()))
            procedure(SyntheaProcedures.anxietyAssessment, reason: nil)
        }
        if rng.chance(0.6) {
            procedure(SyntheaProcedures.substanceUse, reason: nil)
            if rng.chance(0.45) {
                observation(SyntheaObs.auditC, Double(max(0, min(12, Int(rng.normal(1.6, 1.6).rounded())))))
                procedure(SyntheaProcedures.auditC, reason: nil)
            }
            if rng.chance(0.4) {
                observation(SyntheaObs.dast10, Double(max(0, min(10, Int(rng.normal(1.1, 1.2).rounded())))))
                procedure(SyntheaProcedures.drugAbuseScreening, reason: nil)
            }
        }
        if rng.chance(0.3) {
            observation(SyntheaObs.hark, rng.chance(0.92) ? 0 : Double(rng.int(1...4)))
            procedure(SyntheaProcedures.domesticAbuseScreening, reason: nil)
        }
        if a >= 65 {
            let score = Double(rng.int(0...12) * 10 + rng.int(0...5))
            observation(SyntheaObs.morseScore, score)
            textObservation(SyntheaObs.morseLevel, SyntheaObs.morseLevels[score < 25 ? 0 : (score <= 45 ? 1 : 2)])
            procedure(SyntheaProcedures.morseFall, reason: nil)
        }
    }

    mutating func writePrapare(age a: Double) {
        for i in prapareAnswers.indices where rng.chance(0.12) {
            prapareAnswers[i] = SyntheaObs.prapareItems[i].answers.pick(&rng)
        }
        let items = SyntheaObs.prapareItems
        for i in 0..<8 { textObservation(items[i].kind, prapareAnswers[i]) }
        textObservation(SyntheaObs.prapareIncome, Array(String(income).utf8))
        let payer = payerIndex(at: visitTime)
        let insuranceAnswer = payer == 0 ? "Medicare" : (payer == 1 ? "Medicaid" : (payer == 2 ? "None/uninsured" : "Private insurance"))
        textObservation(SyntheaObs.prapareInsurance, Array(insuranceAnswer.utf8))
        for i in 8..<10 { textObservation(items[i].kind, prapareAnswers[i]) }
        textObservation(SyntheaObs.prapareAddress, address)
        for i in 10..<12 { textObservation(items[i].kind, prapareAnswers[i]) }
        observation(SyntheaObs.prapareHousehold, Double(householdSize))
        textObservation(SyntheaObs.prapareLanguage, Array((otherLanguage ? "Language other than English" : "English").utf8))
        for i in 12..<14 { textObservation(items[i].kind, prapareAnswers[i]) }
        textObservation(SyntheaObs.prapareRace, race.surveyAnswer)
        textObservation(SyntheaObs.prapareHispanic, Array((hispanic ? "Yes" : "No").utf8))
    }

    mutating func writeSocialFindings(age a: Double, stop: Int64?) {
        if !educationRecorded {
            educationRecorded = true
            if let education = SyntheaConditions.education.pick(&rng) { condition(education, stop: nil) }
        }
        if a < 67 {
            let draw = rng.unit()
            if draw < 0.45 {
                condition(SyntheaConditions.fullTime, stop: stop)
            } else if draw < 0.56 {
                condition(SyntheaConditions.partTime, stop: stop)
            } else if draw < 0.61 {
                condition(SyntheaConditions.notInLaborForce, stop: stop)
            } else if draw < 0.62 && !recorded.contains(2000) {
                recorded.insert(2000)
                condition(SyntheaConditions.unemployed, stop: nil)
            }
        }
        if rng.chance(0.23) { condition(SyntheaConditions.stress, stop: stop) }
        if rng.chance(0.065) { condition(SyntheaConditions.limitedSocialContact, stop: stop) }
        if rng.chance(0.05) { condition(SyntheaConditions.socialIsolation, stop: stop) }
        if female && rng.chance(0.07) { condition(SyntheaConditions.partnerAbuse, stop: rng.chance(0.7) ? stop : nil) }
        if rng.chance(0.02) { condition(SyntheaConditions.violence, stop: stop) }
        if rng.chance(0.005) { condition(SyntheaConditions.severeAnxiety, stop: stop) }
        for (i, (concept, share, ends)) in SyntheaConditions.onceFindings.enumerated() where !recorded.contains(3000 + i) {
            if rng.chance(share / 8) {
                recorded.insert(3000 + i)
                condition(concept, stop: ends ? stop : nil)
            }
        }
    }

    /// Childhood vaccines due by this visit. Doses due before the recorded window were given
    /// but are not on record, so they are skipped here.
    mutating func dueChildhoodVaccines() -> [SyntheaConcept] {
        let ageDays = Int((visitTime - birth) / T.day)
        let schedule = SyntheaImmunizations.childhoodSchedule
        var due: [SyntheaConcept] = []
        while vaccinesGiven < schedule.count && schedule[vaccinesGiven].days <= ageDays + 2 {
            let dueTime = birth + Int64(schedule[vaccinesGiven].days) * T.day
            if dueTime + 400 * T.day >= windowStart { due += schedule[vaccinesGiven].vaccines }
            vaccinesGiven += 1
        }
        return due
    }

    mutating func writeImmunizations(age a: Double) {
        for vaccine in dueChildhoodVaccines() { immunization(vaccine) }
        if a >= 0.5 && visitTime - lastFlu >= 300 * T.day && rng.chance(0.96) {
            lastFlu = visitTime
            immunization(SyntheaImmunizations.influenza)
        }
        if a >= 19 {
            if lastTd == .min {
                // The adolescent Tdap counts as the last dose; the adult boosters follow every ten years.
                lastTd = visitTime - Int64(rng.int(0...9)) * T.year
            } else if visitTime - lastTd >= 10 * T.year {
                immunization(SyntheaImmunizations.td)
                lastTd = visitTime
            }
        }
        if a >= 19 && a < 26 && !recorded.contains(4000) && rng.chance(0.05) {
            recorded.insert(4000)
            immunization(SyntheaImmunizations.hepBAdult)
        }
        if a >= 40 && a < 46 && !recorded.contains(4001) && rng.chance(0.04) {
            recorded.insert(4001)
            immunization(SyntheaImmunizations.hepAAdult)
        }
        if a >= 50 && !recorded.contains(4002) && rng.chance(0.15) {
            recorded.insert(4002)
            immunization(SyntheaImmunizations.zoster)
        }
        if a >= 65 && !recorded.contains(4003) {
            recorded.insert(4003)
            immunization(SyntheaImmunizations.pcv13)
        } else if a >= 66 && !recorded.contains(4004) {
            recorded.insert(4004)
            immunization(SyntheaImmunizations.pneumococcal23)
        }
    }

    mutating func writeAcute(_ kind: SyntheaAcuteKind, age a: Double) {
        let days = rng.int(kind.minDays...kind.maxDays)
        let stop = visitTime + Int64(days) * T.day
        condition(kind.condition, stop: stop)
        let sinusitis = kind.condition.code == SyntheaAcute.kinds[0].condition.code || kind.condition.code == SyntheaAcute.kinds[3].condition.code
        if sinusitis, let onset = chronic[.chronicSinusitis]?.onset, onset <= visitTime, !recorded.contains(5000) {
            recorded.insert(5000)
            condition(SyntheaConditions.chronicSinusitis, stop: nil)
        }
        if detailed || rng.chance(0.2) {
            if kind.feverish { observation(SyntheaObs.bodyTemperature, rng.normal(38.6, 0.7)) }
            if rng.chance(0.12) { writeVitals(age: a, full: false) }
        }
        for (medication, p) in kind.medications where rng.chance(p) {
            medicationRecord(medication, start: visitTime, stop: min(end, visitTime + Int64(min(days, 14)) * T.day), reason: kind.condition, dispenses: 1)
        }
        if kind.setting == .emergency && rng.chance(0.5) {
            let medication = a < 12 ? SyntheaMedications.childPainRelief : SyntheaMedications.injuryRelief.pick(&rng)
            medicationRecord(medication, start: visitTime, stop: min(end, visitTime + 14 * T.day), reason: nil, dispenses: rng.int(1...3))
        }
        for (p, chance) in kind.procedures where rng.chance(chance) {
            procedure(p, reason: kind.condition)
        }
    }

    mutating func writeCovid(hospitalDays: Int, intensiveCare: Bool, age a: Double) {
        condition(SyntheaConditions.suspectedCovid, stop: visitTime + T.hour)
        let recovery = visitTime + Int64(hospitalDays + rng.int(10...25)) * T.day
        condition(SyntheaConditions.covid, stop: recovery)
        for (symptom, p) in SyntheaConditions.covidSymptoms where rng.chance(p) {
            condition(symptom, stop: recovery)
        }
        textObservation(SyntheaObs.covidPCR, SyntheaObs.detected)
        observation(SyntheaObs.bodyTemperature, rng.normal(38.8, 0.6))
        procedure(SyntheaProcedures.faceMask, reason: SyntheaConditions.suspectedCovid)
        guard hospitalDays > 0 else { return }
        condition(SyntheaConditions.pneumonia, stop: recovery)
        condition(SyntheaConditions.hypoxemia, stop: recovery)
        condition(SyntheaConditions.respiratoryDistress, stop: recovery)
        if rng.chance(0.6) { condition(SyntheaConditions.respiratoryFailure, stop: recovery) }
        if intensiveCare {
            condition(SyntheaConditions.viralSepsis, stop: recovery)
            if rng.chance(0.3) { condition(SyntheaConditions.septicShock, stop: recovery) }
        }
        medicationRecord(SyntheaMedications.enoxaparin, start: visitTime, stop: min(end, visitTime + Int64(hospitalDays) * T.day), reason: nil, dispenses: hospitalDays)
        medicationRecord(SyntheaMedications.acetaminophen500, start: visitTime, stop: min(end, visitTime + Int64(hospitalDays) * T.day), reason: nil, dispenses: hospitalDays)
        if visitTime < SyntheaTime.daysFromCivil(2020, 7, 1) * T.day && rng.chance(0.5) {
            medicationRecord(SyntheaMedications.hydroxychloroquine, start: visitTime, stop: min(end, visitTime + 5 * T.day), reason: SyntheaConditions.covid, dispenses: 2)
        }
        procedure(SyntheaProcedures.chestXRay, reason: SyntheaConditions.covid)
        // Daily observations through the stay.
        for day in 0..<hospitalDays {
            let t = visitTime + Int64(day) * T.day + Int64(rng.int(0...3600))
            guard t <= end else { break }
            let stamp = SyntheaFormat.timestamp(t)
            withTimestamp(stamp) { sim in
                sim.observation(SyntheaObs.oxygenSaturationArterial, sim.rng.normal(82, 4))
                sim.observation(SyntheaObs.bodyTemperature, sim.rng.normal(38.5, 0.8))
                sim.observation(SyntheaObs.respiratoryRate, sim.rng.normal(26, 4))
                sim.observation(SyntheaObs.heartRate, sim.rng.normal(104, 12))
                sim.observation(SyntheaObs.diastolic, sim.rng.normal(84, 9))
                sim.observation(SyntheaObs.systolic, sim.rng.normal(128, 14))
                sim.observation(SyntheaObs.bodyWeight, sim.weightAt(age: a))
                for kind in SyntheaObs.cbc { sim.observation(kind) }
                sim.writeMetabolicPanel(age: a)
                for kind in SyntheaObs.inpatientLabs { sim.observation(kind) }
                if intensiveCare {
                    for kind in SyntheaObs.bloodGas { sim.observation(kind) }
                    sim.procedure(SyntheaProcedures.ventilation, reason: SyntheaConditions.covid, at: t)
                }
                sim.procedure(SyntheaProcedures.oxygenByMask, reason: SyntheaConditions.hypoxemia, at: t)
                sim.procedure(SyntheaProcedures.pronePosition, reason: SyntheaConditions.hypoxemia, at: t)
            }
        }
    }

    mutating func writeSkilledNursing(days: Int) {
        procedure(SyntheaProcedures.historyAndPhysical, reason: nil)
        procedure(SyntheaProcedures.initialAssessment, reason: nil)
        procedure(SyntheaProcedures.carePlan, reason: nil)
        for day in 0..<days {
            let t = visitTime + Int64(day) * T.day
            guard t <= end else { break }
            procedure(SyntheaProcedures.nursingCare, reason: nil, at: t)
            procedure(SyntheaProcedures.physicalTherapy, reason: nil, at: t)
            procedure(SyntheaProcedures.occupationalTherapy, reason: nil, at: t)
            if rng.chance(0.8) { procedure(SyntheaProcedures.professionalServices, reason: nil, at: t) }
            if rng.chance(0.5) { procedure(SyntheaProcedures.speechTherapy, reason: nil, at: t) }
        }
        procedure(SyntheaProcedures.preDischarge, reason: nil, at: min(end, visitTime + Int64(days) * T.day))
        procedure(SyntheaProcedures.snfDischarge, reason: nil, at: min(end, visitTime + Int64(days) * T.day))
    }

    mutating func writeFatalEvent(type: inout SyntheaEncounterType, reason: inout SyntheaConcept?) {
        guard let cause = deathCause else { return }
        reason = cause
        let code = cause.code
        if code == SyntheaConditions.stroke.code {
            type = SyntheaEncounters.stroke
            condition(cause, stop: nil)
            medicationRecord(SyntheaMedications.alteplase, start: visitTime, stop: end, reason: cause, dispenses: 1)
            medicationRecord(SyntheaMedications.clopidogrel, start: visitTime, stop: end, reason: cause, dispenses: 1)
        } else if code == SyntheaConditions.myocardialInfarction.code {
            type = SyntheaEncounters.myocardialInfarction
            condition(cause, stop: nil)
            medicationRecord(SyntheaMedications.aspirin, start: visitTime, stop: end, reason: cause, dispenses: 1)
            procedure(SyntheaProcedures.echocardiography, reason: cause)
        } else if code == SyntheaConditions.cardiacArrest.code {
            type = SyntheaEncounters.cardiacArrest
            condition(cause, stop: nil)
            medicationRecord(SyntheaMedications.epinephrine, start: visitTime, stop: end, reason: nil, dispenses: 1)
            medicationRecord(SyntheaMedications.amiodarone, start: visitTime, stop: end, reason: nil, dispenses: 1)
            medicationRecord(SyntheaMedications.atropine, start: visitTime, stop: end, reason: nil, dispenses: 1)
            procedure(SyntheaProcedures.echocardiography, reason: cause)
        } else if code == SyntheaConditions.sepsis.code || code == SyntheaConditions.pneumonia.code {
            type = code == SyntheaConditions.sepsis.code ? SyntheaEncounters.intensiveCare : SyntheaEncounters.inpatient
            condition(cause, stop: nil)
            if code == SyntheaConditions.sepsis.code {
                medicationRecord(SyntheaMedications.piperacillinTazobactam, start: visitTime, stop: end, reason: cause, dispenses: 1)
                medicationRecord(SyntheaMedications.vancomycin, start: visitTime, stop: end, reason: cause, dispenses: 1)
                medicationRecord(SyntheaMedications.norepinephrine, start: visitTime, stop: end, reason: SyntheaConditions.septicShock, dispenses: 1)
            } else {
                medicationRecord(SyntheaMedications.azithromycin, start: visitTime, stop: end, reason: cause, dispenses: 1)
            }
        } else {
            type = SyntheaEncounters.emergencyAdmission
            if !recordedCondition(cause) { condition(cause, stop: nil) }
        }
    }

    /// True if a chronic condition with this concept is already on record.
    func recordedCondition(_ concept: SyntheaConcept) -> Bool {
        for (kind, c) in chronic where c.diagnosis != nil && conceptFor(kind).code == concept.code { return true }
        return false
    }

    // MARK: Conditions and medications

    func conceptFor(_ kind: SyntheaChronic.Kind) -> SyntheaConcept {
        switch kind {
        case .hypertension: return SyntheaConditions.hypertension
        case .prediabetes: return SyntheaConditions.prediabetes
        case .diabetes: return SyntheaConditions.diabetes
        case .hyperlipidemia: return SyntheaConditions.hyperlipidemia
        case .anemia: return SyntheaConditions.anemia
        case .chronicSinusitis: return SyntheaConditions.chronicSinusitis
        case .lowBackPain: return SyntheaConditions.lowBackPain
        case .neckPain: return SyntheaConditions.neckPain
        case .chronicPain: return SyntheaConditions.chronicPain
        case .migraine: return SyntheaConditions.migraine
        case .fibromyalgia: return SyntheaConditions.fibromyalgia
        case .osteoarthritisKnee: return SyntheaConditions.osteoarthritisKnee
        case .osteoarthritisHip: return SyntheaConditions.osteoarthritisHip
        case .childhoodAsthma: return SyntheaConditions.childhoodAsthma
        case .emphysema: return SyntheaConditions.emphysema
        case .coronaryHeartDisease: return SyntheaConditions.coronaryHeartDisease
        case .heartFailure: return SyntheaConditions.heartFailure
        case .alzheimers: return SyntheaConditions.alzheimers
        case .osteoporosis: return SyntheaConditions.osteoporosis
        case .adhd: return SyntheaConditions.adhd
        case .allergicRhinitis: return rng0IsEven ? SyntheaConditions.allergicRhinitis : SyntheaConditions.allergicRhinitisSeasonal
        case .rheumatoidArthritis: return SyntheaConditions.rheumatoidArthritis
        }
    }

    /// A stable per-patient bit for choices that must not consume random draws.
    var rng0IsEven: Bool { id[0] & 1 == 0 }

    /// Records a chronic condition at this check-up and starts its treatment.
    mutating func diagnose(_ kind: SyntheaChronic.Kind) {
        let concept = conceptFor(kind)
        // Chronic sinusitis is written at the first sinus infection after onset.
        if kind == .chronicSinusitis { return }
        condition(concept, stop: nil)
        typealias M = SyntheaMedications
        switch kind {
        case .hypertension:
            activate(M.lisinopril, reason: concept)
            if rng.chance(0.75) { pendingMedications.append((visitTime + Int64(rng.uniform(1, 4) * Double(T.year)), M.amlodipine, concept)) }
            if rng.chance(0.65) { pendingMedications.append((visitTime + Int64(rng.uniform(2, 6) * Double(T.year)), M.hydrochlorothiazide, concept)) }
        case .diabetes:
            if rng.chance(0.92) { activate(M.metformin, reason: concept) }
        case .hyperlipidemia:
            activate(M.simvastatin, reason: concept)
        case .anemia:
            longPrescription(rng.chance(0.6) ? M.ferrousSulfate : M.vitaminB12, reason: nil)
        case .osteoarthritisKnee, .osteoarthritisHip:
            if rng.chance(0.7) { activate(SyntheaMedications.injuryRelief.items[0], reason: concept) }
        case .childhoodAsthma:
            activate(M.fluticasone, reason: concept)
            activate(M.albuterolInhaler, reason: concept)
        case .emphysema:
            activate(M.fluticasoneSalmeterol, reason: concept)
            activate(M.albuterolSolution, reason: concept)
        case .coronaryHeartDisease:
            activate(M.nitroglycerin, reason: nil)
            activate(M.clopidogrel, reason: nil)
            activate(M.simvastatin20, reason: nil)
            if rng.chance(0.5) { activate(M.amlodipine5, reason: nil) }
        case .heartFailure:
            activate(M.carvedilol, reason: concept)
            activate(M.losartan, reason: concept)
            activate(M.furosemide, reason: concept)
        case .alzheimers:
            activate(M.galantamine, reason: concept)
            pendingMedications.append((visitTime + 2 * T.year, M.memantine, concept))
        case .osteoporosis:
            activate(M.alendronate, reason: nil)
        case .rheumatoidArthritis:
            activate(M.methotrexate, reason: concept)
            activate(M.naproxen500, reason: concept)
        case .allergicRhinitis:
            longPrescription(age(visitTime) < 12 ? M.loratadine : M.cetirizine, reason: nil)
        case .prediabetes, .chronicSinusitis, .lowBackPain, .neckPain, .chronicPain, .migraine, .fibromyalgia, .adhd:
            break
        }
    }

    /// A single prescription that runs for months to years.
    mutating func longPrescription(_ medication: SyntheaMedication, reason: SyntheaConcept?) {
        let months = rng.int(6...24)
        medicationRecord(medication, start: visitTime, stop: min(end, visitTime + Int64(months) * 30 * T.day), reason: reason, dispenses: months * 10)
    }

    /// Starts a chronic medication; its records are written at each renewal visit.
    mutating func activate(_ medication: SyntheaMedication, reason: SyntheaConcept?) {
        guard !activeMedications.contains(where: { $0.medication.concept.code == medication.concept.code }) else { return }
        activeMedications.append((medication, reason))
    }

    mutating func activatePending() {
        guard !pendingMedications.isEmpty else { return }
        var remaining: [(time: Int64, medication: SyntheaMedication, reason: SyntheaConcept?)] = []
        for pending in pendingMedications {
            if pending.time <= visitTime { activate(pending.medication, reason: pending.reason) } else { remaining.append(pending) }
        }
        pendingMedications = remaining
    }

    /// One record per active chronic medication, running to the next renewal visit.
    mutating func renewMedications(stop: Int64?) {
        let until: Int64? = stop ?? (dead ? end : nil)
        for (medication, reason) in activeMedications {
            let months: Int
            if let until { months = max(1, Int((until - visitTime) / (30 * T.day))) } else { months = 12 }
            medicationRecord(medication, start: visitTime, stop: until, reason: reason, dispenses: months)
        }
    }

    // MARK: Values

    /// Share of adult height reached at an age (a smoothed growth curve).
    static let growth: [(Double, Double)] = [
        (0, 0.29), (0.25, 0.35), (0.5, 0.39), (1, 0.43), (2, 0.50), (3, 0.55), (5, 0.63), (8, 0.73),
        (10, 0.79), (12, 0.86), (14, 0.93), (16, 0.98), (18, 1.0),
    ]
    static let childBMI: [(Double, Double)] = [
        (0, 13.5), (0.5, 17), (1, 17.5), (2, 16.5), (5, 15.5), (8, 16.5), (12, 19), (15, 21), (18, 22.5),
    ]

    static func interpolate(_ table: [(Double, Double)], _ x: Double) -> Double {
        if x <= table[0].0 { return table[0].1 }
        for i in 1..<table.count where x <= table[i].0 {
            let (x0, y0) = table[i - 1], (x1, y1) = table[i]
            return y0 + (y1 - y0) * (x - x0) / (x1 - x0)
        }
        return table[table.count - 1].1
    }

    func heightAt(age a: Double) -> Double {
        let shrink = a > 50 ? (a - 50) * 0.1 : 0
        return adultHeight * Self.interpolate(Self.growth, a) - shrink
    }

    func bmiAt(age a: Double) -> Double {
        let child = Self.interpolate(Self.childBMI, a) * (1 + 0.1 * growthZ)
        if a <= 18 { return child }
        if a < 35 { return child + (adultBMI - child) * (a - 18) / 17 }
        return adultBMI + min(a - 35, 30) * 0.04
    }

    func weightAt(age a: Double) -> Double {
        let h = heightAt(age: a) / 100
        return bmiAt(age: a) * h * h
    }

    mutating func writeVitals(age a: Double, full: Bool) {
        let height = heightAt(age: a)
        let bmi = bmiAt(age: a) + rng.normal(0, 0.3)
        let weight = bmi * height * height / 10_000
        if full {
            observation(SyntheaObs.bodyHeight, height)
            observation(SyntheaObs.painScore, Double(max(0, min(10, Int(rng.normal(2.2, 1.6).rounded())))))
        }
        observation(SyntheaObs.bodyWeight, weight)
        if full {
            if a < 2 {
                observation(SyntheaObs.weightForLength, min(99.9, max(1, 50 + 28 * growthZ + rng.normal(0, 5))))
                observation(SyntheaObs.headCircumference, min(52, 34 + 16 * (1 - 1 / (1 + 1.6 * a)) + rng.normal(0, 0.8)))
            }
            if a >= 2 {
                observation(SyntheaObs.bmi, bmi)
                if a < 18 { observation(SyntheaObs.bmiPercentile, min(99.9, max(1, 50 + 28 * growthZ + rng.normal(0, 5)))) }
            }
        }
        var systolic: Double, diastolic: Double
        if a < 13 {
            systolic = rng.normal(106, 6)
            diastolic = rng.normal(72, 4)
        } else {
            systolic = systolicBase + max(0, a - 40) * 0.3 + rng.normal(0, 5)
            diastolic = diastolicBase + rng.normal(0, 4)
            if diagnosed(.hypertension, by: visitTime) {
                systolic += rng.normal(20, 8)
                diastolic += rng.normal(10, 5)
            }
        }
        observation(SyntheaObs.diastolic, diastolic.rounded())
        observation(SyntheaObs.systolic, systolic.rounded())
        let heartRate = a < 1 ? rng.normal(135, 12) : (a < 12 ? rng.normal(100 - 2.5 * a, 8) : rng.normal(76, 9))
        observation(SyntheaObs.heartRate, heartRate.rounded())
        let respiration = a < 1 ? rng.normal(38, 4) : (a < 12 ? rng.normal(22 - 0.6 * a, 2) : rng.normal(14.5, 1.2))
        observation(SyntheaObs.respiratoryRate, max(12, respiration.rounded()))
        if full {
            let status = a < 12 ? 0 : (a < 18 ? min(smoking, 1) : smoking)
            textObservation(SyntheaObs.tobacco, SyntheaObs.tobaccoStatus[status])
        }
    }

    /// HbA1c and glucose, following the patient's glycaemic state.
    mutating func writeGlycemicLabs(age a: Double) {
        let hba1c: Double
        if diagnosed(.diabetes, by: visitTime) {
            hba1c = min(12.5, max(6.0, rng.normal(7.6, 0.9)))
        } else if diagnosed(.prediabetes, by: visitTime) {
            hba1c = min(6.4, max(5.7, rng.normal(6.05, 0.2)))
        } else {
            hba1c = min(5.6, max(4.3, rng.normal(5.2, 0.25)))
        }
        observation(SyntheaObs.hba1c, hba1c)
    }

    mutating func writeMetabolicPanel(age a: Double) {
        let glucose: Double
        if diagnosed(.diabetes, by: visitTime) {
            glucose = min(320, max(126, rng.normal(165, 32)))
        } else if diagnosed(.prediabetes, by: visitTime) {
            glucose = min(125, max(100, rng.normal(110, 7)))
        } else {
            glucose = min(99, max(65, rng.normal(84, 8)))
        }
        observation(SyntheaObs.glucose, glucose)
        for kind in SyntheaObs.metabolicRest { observation(kind) }
    }

    mutating func writeLipidPanel() {
        let treated = activeMedications.contains { $0.medication.concept.code == SyntheaMedications.simvastatin.concept.code }
        if diagnosed(.hyperlipidemia, by: visitTime) {
            let shift = treated ? 0.6 : 1.0
            observation(SyntheaObs.totalCholesterol, 180 + shift * rng.normal(65, 15))
            observation(SyntheaObs.triglycerides, 140 + shift * rng.normal(70, 25))
            observation(SyntheaObs.ldl, 95 + shift * rng.normal(60, 15))
            observation(SyntheaObs.hdl, rng.normal(44, 7))
        } else {
            observation(SyntheaObs.totalCholesterol)
            observation(SyntheaObs.triglycerides)
            observation(SyntheaObs.ldl)
            observation(SyntheaObs.hdl)
        }
    }

    mutating func writeBloodCount() {
        let anemic = diagnosed(.anemia, by: visitTime)
        for (i, kind) in SyntheaObs.cbc.enumerated() {
            if i >= 8 && rng.chance(0.3) { continue }
            if anemic && i == 2 {
                observation(kind, rng.normal(10.4, 0.6))
            } else {
                observation(kind)
            }
        }
    }

    mutating func teenDepressionScore() -> Int { rng.chance(0.8) ? rng.int(0...5) : rng.int(6...24) }
    mutating func anxietyScore() -> Int { rng.chance(0.85) ? rng.int(0...6) : rng.int(7...20) }

    func qualityOfLife() -> Double {
        var burden = 0.0
        let weights: [(SyntheaChronic.Kind, Double)] = [
            (.diabetes, 0.05), (.hypertension, 0.02), (.emphysema, 0.2), (.heartFailure, 0.2), (.alzheimers, 0.3),
            (.chronicPain, 0.12), (.lowBackPain, 0.1), (.neckPain, 0.08), (.migraine, 0.1), (.fibromyalgia, 0.1),
            (.coronaryHeartDisease, 0.1), (.osteoarthritisKnee, 0.06), (.osteoarthritisHip, 0.06), (.childhoodAsthma, 0.03),
            (.rheumatoidArthritis, 0.1), (.anemia, 0.02),
        ]
        for (kind, weight) in weights where diagnosed(kind, by: visitTime) { burden += weight }
        if obesityRecorded { burden += 0.03 }
        return max(0.1, 1 - burden)
    }

    func payerIndex(at t: Int64) -> Int { age(t) >= 65 ? 0 : insurance }

    func payerShare(_ payer: Int) -> Double {
        switch payer {
        case 0: return 0.8
        case 1: return 0.9
        case 2: return 0
        default: return 0.7
        }
    }

    // MARK: Rows

    /// Runs `body` with observation and procedure rows stamped `stamp` instead of the visit start.
    mutating func withTimestamp(_ stamp: [UInt8], _ body: (inout SyntheaPatientSimulation) -> Void) {
        let saved = visitStart
        visitStart = stamp
        body(&self)
        visitStart = saved
    }

    mutating func observation(_ kind: SyntheaObservationKind) {
        observation(kind, rng.normal(kind.mean, kind.sd))
    }

    mutating func observation(_ kind: SyntheaObservationKind, _ value: Double) {
        let out = output.observations
        out.field(visitStart)
        out.field(id)
        out.field(visitId)
        out.raw(kind.head)
        out.fixed(min(kind.high, max(kind.low, value)), 1)
        out.raw(kind.tail)
        out.endRow()
    }

    mutating func textObservation(_ kind: SyntheaObservationKind, _ value: [UInt8]) {
        let out = output.observations
        out.field(visitStart)
        out.field(id)
        out.field(visitId)
        out.raw(kind.head)
        out.raw(value)
        out.raw(kind.tail)
        out.endRow()
    }

    mutating func condition(_ concept: SyntheaConcept, stop: Int64?) {
        let out = output.conditions
        out.date(visitTime)
        out.comma()
        if let stop, stop <= end { out.date(max(stop, visitTime)) } else if let _ = stop, dead { out.date(end) }
        out.comma()
        out.field(id)
        out.field(visitId)
        out.raw(concept.codeAndDescription)
        out.endRow()
    }

    mutating func procedure(_ p: SyntheaProcedure, reason: SyntheaConcept?, at time: Int64? = nil) {
        let out = output.procedures
        let start = time ?? visitTime
        let cost = p.spread == 0 ? p.cost : max(1, p.cost * (1 + p.spread * rng.normal()))
        visitCost += cost
        if time == nil { out.raw(visitStart) } else { out.timestamp(start) }
        out.comma()
        out.timestamp(min(start + 15 * T.minute, max(end, start)))
        out.comma()
        out.field(id)
        out.field(visitId)
        out.raw(p.concept.codeAndDescription)
        out.comma()
        out.fixed(cost, 2)
        out.comma()
        if let reason {
            out.raw(reason.codeAndDescription)
        } else {
            out.comma()
        }
        out.endRow()
    }

    mutating func immunization(_ vaccine: SyntheaConcept) {
        let out = output.immunizations
        visitCost += 136
        out.field(visitStart)
        out.field(id)
        out.field(visitId)
        out.raw(vaccine.codeAndDescription)
        out.raw(Self.immunizationCost)
        out.endRow()
    }

    static let immunizationCost: [UInt8] = Array(",136.00".utf8)

    mutating func medicationRecord(_ medication: SyntheaMedication, start: Int64, stop: Int64?, reason: SyntheaConcept?, dispenses: Int) {
        let out = output.medications
        let payer = payerIndex(at: start)
        let total = medication.baseCost * Double(dispenses)
        let covered = total * payerShare(payer)
        visitCost += total
        out.timestamp(start)
        out.comma()
        if let stop, stop <= end { out.timestamp(max(stop, start)) }
        out.comma()
        out.field(id)
        out.field(world.payers[payer])
        out.field(visitId)
        out.raw(medication.concept.codeAndDescription)
        out.comma()
        out.fixed(medication.baseCost, 2)
        out.comma()
        out.fixed(covered, 2)
        out.comma()
        out.int(dispenses)
        out.comma()
        out.fixed(total, 2)
        out.comma()
        if let reason {
            out.raw(reason.codeAndDescription)
        } else {
            out.comma()
        }
        out.endRow()
    }

    mutating func writeEncounter(type: SyntheaEncounterType, reason: SyntheaConcept?, organization: Int, practitioner: Int) {
        let out = output.encounters
        let payer = payerIndex(at: visitTime)
        let total = type.baseCost + visitCost
        let covered = total * payerShare(payer) * rng.uniform(0.85, 1)
        expenses += total - covered
        coverage += covered
        out.field(visitId)
        out.raw(visitStart)
        out.comma()
        out.timestamp(visitStop)
        out.comma()
        out.field(id)
        out.field(world.organizations[organization])
        out.field(world.providers[practitioner])
        out.field(world.payers[payer])
        out.raw(type.fragment)
        out.comma()
        out.fixed(type.baseCost, 2)
        out.comma()
        out.fixed(total, 2)
        out.comma()
        out.fixed(covered, 2)
        out.comma()
        if let reason {
            out.raw(reason.codeAndDescription)
        } else {
            out.comma()
        }
        out.endRow()
    }

    mutating func writePatient() {
        let out = output.patients
        let adultAtEnd = age(end) >= 18
        let married = adultAtEnd && rng.chance(0.78)
        let first = SyntheaPatientSimulation.fakeName(&rng, digits: true)
        let last = SyntheaPatientSimulation.fakeName(&rng, digits: true)
        out.field(id)
        out.date(birth)
        out.comma()
        if dead { out.date(end) }
        out.comma()
        out.raw(Array("999-\(twoDigits(rng.int(10...99)))-\(rng.int(1000...9999))".utf8))
        out.comma()
        if age(end) >= 16 && rng.chance(0.92) { out.raw(Array("S999\(rng.int(10000...99999))".utf8)) }
        out.comma()
        if adultAtEnd && rng.chance(0.85) { out.raw(Array("X\(rng.int(10_000_000...99_999_999))X".utf8)) }
        out.comma()
        if adultAtEnd { out.raw(Array((female ? (married ? "Mrs." : "Ms.") : "Mr.").utf8)) }
        out.comma()
        out.field(CSVText.field(first))
        out.field(CSVText.field(last))
        if adultAtEnd && rng.chance(0.02) { out.raw(Array(rng.pick(SyntheaDemographics.suffixes).utf8)) }
        out.comma()
        if female && married { out.raw(CSVText.field(SyntheaPatientSimulation.fakeName(&rng, digits: true))) }
        out.comma()
        if adultAtEnd && rng.chance(0.9) { out.raw(Array((married ? "M" : "S").utf8)) }
        out.comma()
        out.field(race.csv)
        out.field(Array((hispanic ? "hispanic" : "nonhispanic").utf8))
        out.field(Array((female ? "F" : "M").utf8))
        let county = SyntheaDemographics.counties.pick(&rng)
        if rng.chance(0.8) {
            out.raw(CSVText.field("\(rng.pick(SyntheaDemographics.californiaTowns))  California  US"))
        } else {
            out.raw(rng.pick(SyntheaDemographics.foreignBirthplaces))
        }
        out.comma()
        out.field(address)
        out.field(rng.pick(county.towns))
        out.field(Array("California".utf8))
        out.field(county.name)
        if rng.chance(0.95) {
            let zip = String(county.zipPrefix * 100 + rng.int(0...99))
            out.raw(Array((String(repeating: "0", count: max(0, 5 - zip.count)) + zip).utf8))
        }
        out.comma()
        out.fixed(county.latitude + rng.uniform(-0.25, 0.25), 8)
        out.comma()
        out.fixed(county.longitude + rng.uniform(-0.25, 0.25), 8)
        out.comma()
        out.fixed(expenses, 2)
        out.comma()
        out.fixed(coverage, 2)
        out.endRow()
    }

    func twoDigits(_ n: Int) -> String { n < 10 ? "0\(n)" : String(n) }
}
