import Foundation
import Testing
import VaultCore

/// Resource faults: a full file system under data/, missing key files. Clean errors with
/// the right exit codes, nothing stored lost or corrupted.
@Suite("resource faults", .serialized)
struct ResourceFaultCLITests {
    @Test("an ingest onto a full data/ file system exits 74 naming the cause, leaves no staging behind, and the existing dataset still verifies deep",
          .enabled(if: CLI.testdata != nil, "needs ../shared/testdata"),
          .enabled(if: CLI.unshareWorks, "'unshare -m' does not work here (needs root or CAP_SYS_ADMIN): skipped the full file system"))
    func fullDataFileSystem() throws {
        let dir = TempDir()
        let vault = try KeyCLITests.vault(dir)
        let binary = try #require(CLI.binary)
        let input = try #require(CLI.testdata) + "/patients/synthea_csv_59"
        func quoted(_ s: String) -> String { "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'" }
        let work = dir.path + "/work"
        try FileManager.default.createDirectory(atPath: work + "/copy", withIntermediateDirectories: true)
        let script = """
        set -u
        V=\(quoted(vault)); W=\(quoted(work)); B=\(quoted(binary)); IN=\(quoted(input))
        cp -a "$V/data/." "$W/copy/" || exit 91
        mount -t tmpfs -o size=4m tmpfs "$V/data" || exit 92
        cp -a "$W/copy/." "$V/data/" || exit 93
        dd if=/dev/zero of="$V/data/fill" bs=4k count=$(( ( $(df -k --output=avail "$V/data" | tail -1) - 200 ) / 4 )) 2>/dev/null
        "$B" ingest --vault "$V" --dataset big --format synthea-csv --shards 2 "$IN" >"$W/out" 2>"$W/err"
        echo $? >"$W/rc"
        "$B" verify --vault "$V" --dataset d --deep >"$W/vout" 2>"$W/verr"
        echo $? >"$W/vrc"
        ls -a "$V/data" "$V/data/big" >"$W/listing" 2>&1
        exit 0
        """
        let shell = try CLI.runProgram("/usr/bin/unshare", ["-m", "sh", "-c", script])
        #expect(shell.status == 0, "\(shell.stdout) \(shell.stderr)")
        func read(_ name: String) -> String { ((try? String(contentsOfFile: work + "/" + name, encoding: .utf8)) ?? "").trimmingCharacters(in: .whitespacesAndNewlines) }
        #expect(read("rc") == "74", "ingest exit \(read("rc")): \(read("err"))")
        #expect(read("err").contains("No space left on device"), "\(read("err"))")
        #expect(read("vrc") == "0", "the existing dataset: \(read("vout")) \(read("verr"))")
        #expect(!read("listing").contains(".staging-") && !read("listing").contains("manifest"), "\(read("listing"))")
        // Outside the namespace: the real data/ was never touched, the log records the failure.
        #expect(try CLI.run(["verify", "--vault", vault, "--deep"]).status == 0)
        let errors = try CLI.run(["audit", "log", "--vault", vault, "--action", "ingest", "--outcome", "error", "--json"])
        #expect(errors.stdout.contains("\"dataset\":\"big\""), "\(errors.stdout)")
        #expect(try CLI.run(["audit", "verify", "--vault", vault]).status == 0)
    }

    @Test("a missing root key, audit key or keyring stops every command with exit 78 naming the file; put back, the vault works unchanged",
          .enabled(if: CLI.testdata != nil, "needs ../shared/testdata"))
    func missingKeyFiles() throws {
        let dir = TempDir()
        let vault = try KeyCLITests.vault(dir)
        let expected = try KeyCLITests.numbers(vault, dir)
        for file in ["root.key", "audit.key", "keyring.json"] {
            let path = vault + "/keys/" + file
            try FileManager.default.moveItem(atPath: path, toPath: dir.path + "/" + file)
            for args in [["verify", "--deep"], ["analyze", "--spec", dir.path + "/spec.json", "--as", "alice"], ["keys", "list"], ["audit", "verify"]] {
                let r = try CLI.run(args + ["--vault", vault])
                #expect(r.status == 78 && r.stderr.contains(file), "\(file), \(args): \(r.status) \(r.stderr)")
                #expect(!r.stdout.contains("OK"))
            }
            try FileManager.default.moveItem(atPath: dir.path + "/" + file, toPath: path)
            #expect(try KeyCLITests.numbers(vault, dir) == expected, "\(file)")
        }
        #expect(try CLI.run(["verify", "--vault", vault, "--deep"]).status == 0)
        #expect(try CLI.run(["audit", "verify", "--vault", vault]).status == 0)
    }
}
