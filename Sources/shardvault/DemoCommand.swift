import ArgumentParser
import Foundation
import VaultCore

/// The main job on the embedded defaults, step by step, each step a real command.
struct Demo: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the demo: init a vault, generate and ingest a Synthea-shaped sample, analyze the example spec in parallel worker processes, reveal it, verify the audit log.",
        discussion: "Every step is a shardvault command, printed before it runs. The vault is a throw-away folder unless --dir is given.")
    @Option(help: "Patients in the generated sample.") var patients: Int = 1000
    @Option(help: ArgumentHelp("Keep the demo vault in this new folder.", valueName: "DIR")) var dir: String?

    /// The documented example spec (docs/job-spec.md): HbA1c and BMI of living adults, by
    /// sex and ten-year age band.
    static let exampleSpec = """
    {"dataset": "demo", "purpose": "HRESCH", "asOf": "2024-01-01",
     "cohort": {"age": {"min": 18}, "alive": true},
     "groupBy": ["sex", "ageBand10"],
     "measures": [{"name": "patients", "count": "patients"},
                  {"name": "hba1c", "observation": "4548-4", "stats": ["count", "mean", "p50", "p90"]},
                  {"name": "bmi", "observation": "39156-5", "stats": ["count", "mean", "stddev", "min", "max"]}],
     "disclosure": {"minCell": 11}}

    """

    func validate() throws {
        guard patients >= 1 else { throw ValidationError("--patients must be at least 1") }
    }

    func run() throws {
        try runCommand {
            let me = try Analyze.selfPath()
            let work: String
            if let dir {
                guard !FileManager.default.fileExists(atPath: dir) else { throw VaultError(.cannotCreate, "refusing to use an existing folder", location: dir) }
                work = dir
            } else {
                work = FileManager.default.temporaryDirectory.appendingPathComponent("shardvault-demo-\(UUID().uuidString.prefix(8))").path
            }
            try FileManager.default.createDirectory(atPath: work, withIntermediateDirectories: true)
            defer { if dir == nil { try? FileManager.default.removeItem(atPath: work) } }
            let vault = work + "/vault"
            let user = AuditContext.operatingSystemUser

            func step(_ arguments: [String], capture: Bool = false) throws -> String {
                FileHandle.standardOutput.write(Data("\n$ shardvault \(arguments.joined(separator: " "))\n".utf8))
                let process = Process()
                process.executableURL = URL(fileURLWithPath: me)
                process.arguments = arguments
                let pipe = Pipe()
                if capture { process.standardOutput = pipe }
                try process.run()
                let data = capture ? pipe.fileHandleForReading.readDataToEndOfFile() : Data()
                process.waitUntilExit()
                guard process.terminationStatus == 0 else { throw ExitCode(process.terminationStatus) }
                return String(decoding: data, as: UTF8.self)
            }

            _ = try step(["init", "--vault", vault])
            _ = try step(["generate", "--patients", String(patients), "--seed", "2026", work + "/sample"])
            _ = try step(["ingest", "--vault", vault, "--dataset", "demo", "--format", "synthea-csv", work + "/sample"])
            let policy = """
            # Demo: \(user) may analyze and reveal for research, groups of at least 11 patients.
            principals:
              "\(user)-researcher": {roles: [researcher]}
            roles:
              researcher:
                allow:
                  - actions: [analyze, reveal, results.read]
                    datasets: ["*"]
                    purposes: [HRESCH]
                disclosure: {minCell: 11}

            """
            try policy.write(toFile: vault + "/policies/research.yaml", atomically: true, encoding: .utf8)
            try Self.exampleSpec.write(toFile: work + "/spec.json", atomically: true, encoding: .utf8)
            FileHandle.standardOutput.write(Data("\n# policies/research.yaml:\n\(policy)\n# spec.json:\n\(Self.exampleSpec)".utf8))
            _ = try step(["policy", "check", "--vault", vault])
            let researcher = "\(user)-researcher"
            let analysis = try step(["analyze", "--vault", vault, "--spec", work + "/spec.json", "--as", researcher, "--json"], capture: true)
            FileHandle.standardOutput.write(Data(analysis.utf8))
            guard let object = try? JSONSerialization.jsonObject(with: Data(analysis.utf8)) as? [String: Any], let id = object["result"] as? String else {
                throw VaultError(.software, "analyze printed no result id")
            }
            _ = try step(["results", "reveal", id, "--vault", vault, "--as", researcher, "--pretty"])
            _ = try step(["audit", "log", "--vault", vault, "--action", "analyze"])
            _ = try step(["audit", "verify", "--vault", vault])
            FileHandle.standardOutput.write(Data("\nDemo complete.\(dir == nil ? " The throw-away vault is removed." : " The vault is in \(vault).")\n".utf8))
        }
    }
}
