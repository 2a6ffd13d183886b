import Foundation
import Testing
import VaultCore

/// No identifier or clinical value of the input may appear in any file the vault writes or
/// in anything a command prints, except in a result a principal explicitly reveals.
@Suite("no leaks of identifiers or clinical values", .serialized)
struct LeakCLITests {
    /// Identifiers and clinical text of every patient of the CSV sample: ids, names, SSNs,
    /// driver's licences, addresses, and the descriptions of their records.
    static func needles(_ folder: String) throws -> Set<String> {
        var out = Set<String>()
        func rows(_ file: String) throws -> [[String: String]] {
            let text = try String(contentsOfFile: folder + "/" + file, encoding: .utf8)
            var lines = text.split(separator: "\n").map(String.init)
            let header = lines.removeFirst().split(separator: ",", omittingEmptySubsequences: false).map(String.init)
            // The sample has no quoted fields in the columns used here; rows with quotes are skipped.
            return lines.filter { !$0.contains("\"") }.map { line in
                Dictionary(zip(header, line.split(separator: ",", omittingEmptySubsequences: false).map(String.init)), uniquingKeysWith: { a, _ in a })
            }
        }
        for r in try rows("patients.csv") {
            for field in ["Id", "SSN", "DRIVERS", "FIRST", "LAST", "ADDRESS"] {
                if let v = r[field], v.count >= 6 { out.insert(v) }
            }
        }
        for file in ["conditions.csv", "medications.csv", "observations.csv"] {
            for r in try rows(file).prefix(400) {
                if let v = r["DESCRIPTION"], v.count >= 12 { out.insert(v) }
                if let v = r["ENCOUNTER"], v.count >= 6 { out.insert(v) }
            }
        }
        return out
    }

    static func found(_ needles: Set<String>, in haystack: Data) -> [String] {
        needles.filter { haystack.range(of: Data($0.utf8)) != nil }.sorted()
    }

    @Test("ingest of CSV, NDJSON and Bundles, analyses in processes and threads, every listing, log and export: no id, name, SSN, address or record text in any vault file or any output but the revealed result",
          .enabled(if: CLI.testdata != nil, "needs ../shared/testdata"))
    func noLeaks() throws {
        let testdata = try #require(CLI.testdata)
        let csv = testdata + "/patients/synthea_csv_59"
        let needles = try Self.needles(csv)
        #expect(needles.count > 300)
        let dir = TempDir()
        let vault = try KeyCLITests.vault(dir) // the CSV sample as dataset d
        var printed = Data()
        func run(_ args: [String]) throws -> CLI.Result {
            let r = try CLI.run(args)
            printed.append(Data(r.stdout.utf8))
            printed.append(Data(r.stderr.utf8))
            return r
        }
        #expect(try run(["ingest", "--vault", vault, "--dataset", "bundles", "--format", "fhir-bundle", testdata + "/patients/synthea_fhir_r4_bundles_50.tgz"]).status == 0)
        #expect(try run(["ingest", "--vault", vault, "--dataset", "bulk", "--format", "fhir-ndjson", testdata + "/patients/bulk_fhir_r4_10"]).status == 0)
        // A failed ingest: its error must not quote the input either.
        let broken = dir.path + "/broken"
        try FileManager.default.copyItem(atPath: csv, toPath: broken)
        let patients = try String(contentsOfFile: broken + "/patients.csv", encoding: .utf8)
        try patients.replacingOccurrences(of: ",M,", with: ",X,").write(toFile: broken + "/patients.csv", atomically: true, encoding: .utf8)
        #expect(try run(["ingest", "--vault", vault, "--dataset", "broken", "--format", "synthea-csv", broken]).status == 65)

        var revealed = Data()
        for isolation in ["process", "thread"] {
            let analysis = try run(["analyze", "--vault", vault, "--spec", dir.path + "/spec.json", "--as", "alice", "--json", "--isolation", isolation])
            let id = try #require((try JSONSerialization.jsonObject(with: Data(analysis.stdout.utf8)) as? [String: Any])?["result"] as? String)
            _ = try run(["results", "show", id, "--vault", vault])
            revealed.append(Data(try CLI.run(["results", "reveal", id, "--vault", vault, "--as", "alice"]).stdout.utf8))
        }
        for args in [["datasets", "list"], ["datasets", "show", "d"], ["verify", "--deep"], ["results", "list"], ["keys", "list"],
                     ["keys", "usage", "--dataset", "d"], ["audit", "log"], ["audit", "log", "--json"], ["audit", "export", "--format", "fhir"],
                     ["audit", "verify"], ["policy", "check"]] {
            _ = try run(args + ["--vault", vault])
        }
        _ = try run(["keys", "rotate", "--vault", vault, "--dataset", "d", "--kek"])
        _ = try run(["keys", "rewrap", "--vault", vault, "--dataset", "d"])

        #expect(Self.found(needles, in: printed).isEmpty, "printed: \(Self.found(needles, in: printed).prefix(10))")
        var leaks: [String] = []
        let enumerator = FileManager.default.enumerator(atPath: vault)
        var files = 0
        while let name = enumerator?.nextObject() as? String {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: vault + "/" + name, isDirectory: &isDirectory), !isDirectory.boolValue else { continue }
            files += 1
            let data = try Data(contentsOf: URL(fileURLWithPath: vault + "/" + name))
            for needle in Self.found(needles, in: data) { leaks.append("\(name): \(needle)") }
        }
        #expect(files > 20)
        #expect(leaks.isEmpty, "\(leaks.prefix(10))")
        // The check can see a leak: the revealed results are aggregates, but the input is not.
        #expect(!Self.found(needles, in: try Data(contentsOf: URL(fileURLWithPath: csv + "/patients.csv"))).isEmpty)
        #expect(Self.found(needles, in: revealed).isEmpty)
    }
}
