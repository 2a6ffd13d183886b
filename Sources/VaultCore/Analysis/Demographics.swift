import Foundation

/// One vocabulary for the demographic group keys, whatever the input format: Synthea CSV
/// writes `white`, `nonhispanic` and `California` where its FHIR export of the same patient
/// writes `White`, `Not Hispanic or Latino` and `CA`. Race and ethnicity become the OMB
/// category names (as in US Core's `ombCategory` display), state the two-letter USPS code;
/// an empty value becomes `Unknown`, and a value outside the tables is kept as written
/// (trimmed), so nothing is silently merged. See docs/job-spec.md.
enum Demographics {
    static let unknown = "Unknown"

    static func race(_ raw: String) -> String { lookup(raw, races) }
    static func ethnicity(_ raw: String) -> String { lookup(raw, ethnicities) }
    static func state(_ raw: String) -> String { lookup(raw, states) }

    private static func lookup(_ raw: String, _ table: [String: String]) -> String {
        let trimmed = trim(raw)
        if trimmed.isEmpty { return unknown }
        return table[trimmed.lowercased()] ?? trimmed
    }

    /// `raw` without leading and trailing spaces and tabs (Unicode space separators, and the
    /// zero-width space), as Foundation's `trimmingCharacters(in: .whitespaces)` on Linux,
    /// without its NSString path.
    static func trim(_ raw: String) -> String {
        func space(_ c: Unicode.Scalar) -> Bool { c == "\t" || c == "\u{200B}" || c.properties.generalCategory == .spaceSeparator }
        let scalars = raw.unicodeScalars
        guard let first = scalars.firstIndex(where: { !space($0) }), let last = scalars.lastIndex(where: { !space($0) }) else { return "" }
        if first == scalars.startIndex && last == scalars.index(before: scalars.endIndex) { return raw }
        return String(scalars[first...last])
    }

    private static let races: [String: String] = {
        var table: [String: String] = [:]
        for (name, aliases) in [
            ("White", ["white"]),
            ("Black or African American", ["black"]),
            ("Asian", ["asian"]),
            ("American Indian or Alaska Native", ["native"]),
            ("Native Hawaiian or Other Pacific Islander", ["hawaiian"]),
            ("Other", ["other", "other race"]),
            (unknown, ["unknown"]),
        ] {
            table[name.lowercased()] = name
            for alias in aliases { table[alias] = name }
        }
        return table
    }()

    private static let ethnicities: [String: String] = [
        "hispanic": "Hispanic or Latino", "hispanic or latino": "Hispanic or Latino",
        "nonhispanic": "Not Hispanic or Latino", "not hispanic or latino": "Not Hispanic or Latino",
        "unknown": unknown,
    ]

    /// USPS codes of the states, the District of Columbia and the inhabited territories.
    static let stateNames: [(code: String, name: String)] = [
        ("AL", "Alabama"), ("AK", "Alaska"), ("AZ", "Arizona"), ("AR", "Arkansas"), ("CA", "California"),
        ("CO", "Colorado"), ("CT", "Connecticut"), ("DE", "Delaware"), ("DC", "District of Columbia"),
        ("FL", "Florida"), ("GA", "Georgia"), ("HI", "Hawaii"), ("ID", "Idaho"), ("IL", "Illinois"),
        ("IN", "Indiana"), ("IA", "Iowa"), ("KS", "Kansas"), ("KY", "Kentucky"), ("LA", "Louisiana"),
        ("ME", "Maine"), ("MD", "Maryland"), ("MA", "Massachusetts"), ("MI", "Michigan"), ("MN", "Minnesota"),
        ("MS", "Mississippi"), ("MO", "Missouri"), ("MT", "Montana"), ("NE", "Nebraska"), ("NV", "Nevada"),
        ("NH", "New Hampshire"), ("NJ", "New Jersey"), ("NM", "New Mexico"), ("NY", "New York"),
        ("NC", "North Carolina"), ("ND", "North Dakota"), ("OH", "Ohio"), ("OK", "Oklahoma"), ("OR", "Oregon"),
        ("PA", "Pennsylvania"), ("RI", "Rhode Island"), ("SC", "South Carolina"), ("SD", "South Dakota"),
        ("TN", "Tennessee"), ("TX", "Texas"), ("UT", "Utah"), ("VT", "Vermont"), ("VA", "Virginia"),
        ("WA", "Washington"), ("WV", "West Virginia"), ("WI", "Wisconsin"), ("WY", "Wyoming"),
        ("AS", "American Samoa"), ("GU", "Guam"), ("MP", "Northern Mariana Islands"), ("PR", "Puerto Rico"),
        ("VI", "U.S. Virgin Islands"),
    ]

    private static let states: [String: String] = {
        var table = ["unknown": unknown]
        for (code, name) in stateNames {
            table[code.lowercased()] = code
            table[name.lowercased()] = code
        }
        return table
    }()
}
