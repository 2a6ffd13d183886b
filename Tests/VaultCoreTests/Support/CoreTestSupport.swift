import Foundation
import Testing
@testable import VaultCore

/// Locates `../shared/testdata` beside the package, if present.
enum CoreTestData {
    static let root: String? = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<8 {
            url.deleteLastPathComponent()
            let candidate = url.appendingPathComponent("../shared/testdata").standardizedFileURL.path
            if FileManager.default.fileExists(atPath: candidate + "/README.md") { return candidate }
        }
        return nil
    }()

    static var syntheaCSV: String? { root.map { $0 + "/patients/synthea_csv_59" } }
    static var available: Bool { root != nil }
}

/// A temporary folder removed when the value is released.
final class TemporaryDirectory {
    let path: String
    init(_ label: String = "shardvault-test") {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("\(label)-\(UUID().uuidString)").path
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }
}

/// Writes a small Synthea-shaped CSV folder for tests that need input of known content.
enum TinySynthea {
    static let patientsHeader = "Id,BIRTHDATE,DEATHDATE,SSN,DRIVERS,PASSPORT,PREFIX,FIRST,LAST,SUFFIX,MAIDEN,MARITAL,RACE,ETHNICITY,GENDER,BIRTHPLACE,ADDRESS,CITY,STATE,COUNTY,ZIP,LAT,LON,HEALTHCARE_EXPENSES,HEALTHCARE_COVERAGE"

    static func write(to dir: String, patients: Int = 6, overrides: [String: String] = [:]) throws {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        var files: [String: String] = [:]
        var p = patientsHeader + "\n"
        var c = "START,STOP,PATIENT,ENCOUNTER,CODE,DESCRIPTION\n"
        var o = "DATE,PATIENT,ENCOUNTER,CATEGORY,CODE,DESCRIPTION,VALUE,UNITS,TYPE\n"
        var m = "START,STOP,PATIENT,PAYER,ENCOUNTER,CODE,DESCRIPTION,BASE_COST,PAYER_COVERAGE,DISPENSES,TOTALCOST,REASONCODE,REASONDESCRIPTION\n"
        var e = "Id,START,STOP,PATIENT,ORGANIZATION,PROVIDER,PAYER,ENCOUNTERCLASS,CODE,DESCRIPTION,BASE_ENCOUNTER_COST,TOTAL_CLAIM_COST,PAYER_COVERAGE,REASONCODE,REASONDESCRIPTION\n"
        var pr = "START,STOP,PATIENT,ENCOUNTER,CODE,DESCRIPTION,BASE_COST,REASONCODE,REASONDESCRIPTION\n"
        var im = "DATE,PATIENT,ENCOUNTER,CODE,DESCRIPTION,BASE_COST\n"
        for i in 0..<patients {
            let id = patientId(i)
            p += "\(id),19\(50 + i)-03-0\(1 + i % 9),,999-00-000\(i),,,Mr.,Zebulon\(i),Quixotic\(i),,,,white,nonhispanic,\(i % 2 == 0 ? "M" : "F"),Somewhere,1 Road,Town,Massachusetts,County,01000,42.1,-71.1,100.0,200.0\n"
            c += "2010-01-0\(1 + i % 9),,\(id),enc-\(i),44054006,\"Diabetes mellitus type 2 (disorder)\"\n"
            o += "2015-05-05T10:00:00Z,\(id),enc-\(i),laboratory,4548-4,Hemoglobin A1c,\(String(format: "%.1f", 7.25 + Double(i) / 10)),%,numeric\n"
            o += "2015-05-05T10:00:00Z,\(id),enc-\(i),survey,72166-2,Tobacco smoking status,Never smoked tobacco (finding),,text\n"
            m += "2015-05-05T10:00:00Z,,\(id),payer,enc-\(i),860975,Metformin,1.0,0.0,1,1.0,,\n"
            e += "enc-\(i),2015-05-05T10:00:00Z,2015-05-05T11:00:00Z,\(id),org,prov,payer,ambulatory,185345009,Encounter,1.0,1.0,1.0,,\n"
            pr += "2015-05-05T10:00:00Z,2015-05-05T10:30:00Z,\(id),enc-\(i),430193006,Medication Reconciliation,1.0,,\n"
            im += "2015-05-05T10:00:00Z,\(id),enc-\(i),140,Influenza,1.0\n"
        }
        files["patients.csv"] = p; files["conditions.csv"] = c; files["observations.csv"] = o; files["medications.csv"] = m
        files["encounters.csv"] = e; files["procedures.csv"] = pr; files["immunizations.csv"] = im
        for (name, text) in overrides { files[name] = text }
        for (name, text) in files { try text.write(toFile: dir + "/" + name, atomically: true, encoding: .utf8) }
    }

    static func patientId(_ i: Int) -> String { String(format: "0e1d2c3b-4a59-6877-8695-a4b3c2d1e%03d", i) }
}

/// Reads every file under `dir` and reports which needles occur in any of them.
func filesContaining(_ needles: [String], under dir: String) -> [String] {
    var found: [String] = []
    let enumerator = FileManager.default.enumerator(atPath: dir)
    var blobs: [(String, Data)] = []
    while let rel = enumerator?.nextObject() as? String {
        let path = dir + "/" + rel
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDir), !isDir.boolValue, let data = FileManager.default.contents(atPath: path) {
            blobs.append((rel, data))
        }
    }
    for needle in needles {
        let n = Data(needle.utf8)
        for (rel, data) in blobs where data.range(of: n) != nil { found.append("\(needle) in \(rel)") }
    }
    return found
}
