import Foundation
import Testing
import VaultCore

// End-to-end tests of the audit log through the real `shardvault` binary: what each command
// records, tamper detection, Merkle proofs checked by an independent RFC 9162 verifier written
// here, the checkpoint signature checked with openssl, the FHIR AuditEvent export, and fail-closed
// behaviour when the audit folder is full, read-only or damaged.

// MARK: - Independent SHA-256 (FIPS 180-4), so that no hash here comes from the code under test

fileprivate enum ReferenceSHA256 {
    private static let k: [UInt32] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
        0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
        0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
        0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
        0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
        0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
        0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
    ]

    private static func rotr(_ x: UInt32, _ n: UInt32) -> UInt32 { (x >> n) | (x << (32 - n)) }

    static func hash(_ message: [UInt8]) -> [UInt8] {
        var h: [UInt32] = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]
        var data = message
        let bitLength = UInt64(message.count) &* 8
        data.append(0x80)
        while data.count % 64 != 56 { data.append(0) }
        for i in (0..<8).reversed() { data.append(UInt8(truncatingIfNeeded: bitLength >> (UInt64(i) * 8))) }
        var w = [UInt32](repeating: 0, count: 64)
        for chunk in stride(from: 0, to: data.count, by: 64) {
            for t in 0..<16 {
                let o = chunk + 4 * t
                w[t] = UInt32(data[o]) << 24 | UInt32(data[o + 1]) << 16 | UInt32(data[o + 2]) << 8 | UInt32(data[o + 3])
            }
            for t in 16..<64 {
                let s0 = rotr(w[t - 15], 7) ^ rotr(w[t - 15], 18) ^ (w[t - 15] >> 3)
                let s1 = rotr(w[t - 2], 17) ^ rotr(w[t - 2], 19) ^ (w[t - 2] >> 10)
                w[t] = w[t - 16] &+ s0 &+ w[t - 7] &+ s1
            }
            var a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7]
            for t in 0..<64 {
                let bigS1 = rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)
                let ch = (e & f) ^ (~e & g)
                let t1 = hh &+ bigS1 &+ ch &+ k[t] &+ w[t]
                let bigS0 = rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)
                let maj = (a & b) ^ (a & c) ^ (b & c)
                let t2 = bigS0 &+ maj
                hh = g; g = f; f = e; e = d &+ t1; d = c; c = b; b = a; a = t1 &+ t2
            }
            h[0] = h[0] &+ a; h[1] = h[1] &+ b; h[2] = h[2] &+ c; h[3] = h[3] &+ d
            h[4] = h[4] &+ e; h[5] = h[5] &+ f; h[6] = h[6] &+ g; h[7] = h[7] &+ hh
        }
        return h.flatMap { [UInt8($0 >> 24), UInt8(($0 >> 16) & 0xFF), UInt8(($0 >> 8) & 0xFF), UInt8($0 & 0xFF)] }
    }
}

fileprivate enum AuditHex {
    static func encode(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef")
        return String(bytes.flatMap { [digits[Int($0 >> 4)], digits[Int($0 & 15)]] })
    }

    static func decode(_ text: String) -> [UInt8]? {
        let chars = Array(text.utf8)
        guard chars.count % 2 == 0 else { return nil }
        func nibble(_ c: UInt8) -> UInt8? {
            switch c {
            case 48...57: return c - 48
            case 97...102: return c - 87
            case 65...70: return c - 55
            default: return nil
            }
        }
        var out: [UInt8] = []
        for i in stride(from: 0, to: chars.count, by: 2) {
            guard let hi = nibble(chars[i]), let lo = nibble(chars[i + 1]) else { return nil }
            out.append(hi << 4 | lo)
        }
        return out
    }
}

// MARK: - Independent RFC 9162 Merkle tree verification (sections 2.1.1, 2.1.3.2, 2.1.4.2)

fileprivate enum RFC9162 {
    static func leafHash(_ entry: [UInt8]) -> [UInt8] { ReferenceSHA256.hash([0x00] + entry) }
    static func nodeHash(_ left: [UInt8], _ right: [UInt8]) -> [UInt8] { ReferenceSHA256.hash([0x01] + left + right) }

    /// MTH(D[n]) over leaf hashes (2.1.1): k is the largest power of two smaller than n.
    static func root(_ leaves: ArraySlice<[UInt8]>) -> [UInt8] {
        if leaves.isEmpty { return ReferenceSHA256.hash([]) }
        if leaves.count == 1 { return leaves[leaves.startIndex] }
        var k = 1
        while k * 2 < leaves.count { k *= 2 }
        let mid = leaves.startIndex + k
        return nodeHash(root(leaves[leaves.startIndex..<mid]), root(leaves[mid...]))
    }

    /// 2.1.3.2 Verifying an Inclusion Proof.
    static func verifyInclusion(leafIndex: Int, treeSize: Int, leafHash: [UInt8], path: [[UInt8]], rootHash: [UInt8]) -> Bool {
        guard leafHash.count == 32, rootHash.count == 32, path.allSatisfy({ $0.count == 32 }) else { return false }
        // 1. leaf_index must be below tree_size.
        guard leafIndex >= 0, leafIndex < treeSize else { return false }
        // 2. fn = leaf_index, sn = tree_size - 1.  3. r = hash.
        var fn = leafIndex, sn = treeSize - 1
        var r = leafHash
        // 4. For each value p in the inclusion_path array:
        for p in path {
            // a. If sn is 0, stop and fail.
            if sn == 0 { return false }
            // b. If LSB(fn) is set, or if fn is equal to sn:
            if fn & 1 == 1 || fn == sn {
                r = nodeHash(p, r)
                // ii. If LSB(fn) is not set, right-shift fn and sn until LSB(fn) is set or fn is 0.
                if fn & 1 == 0 {
                    while fn & 1 == 0 && fn != 0 { fn >>= 1; sn >>= 1 }
                }
            } else {
                r = nodeHash(r, p)
            }
            // c. Right-shift fn and sn once.
            fn >>= 1
            sn >>= 1
        }
        // 5. sn must be 0 and r must equal root_hash.
        return sn == 0 && r == rootHash
    }

    /// 2.1.4.2 Verifying Consistency between Two Tree Heads (defined for 0 < first < second; equal
    /// sizes are consistent when the proof is empty and the heads are identical).
    static func verifyConsistency(first: Int, second: Int, firstHash: [UInt8], secondHash: [UInt8], path consistencyPath: [[UInt8]]) -> Bool {
        guard first > 0, first <= second else { return false }
        if first == second { return consistencyPath.isEmpty && firstHash == secondHash }
        guard firstHash.count == 32, secondHash.count == 32, consistencyPath.allSatisfy({ $0.count == 32 }) else { return false }
        // 1. An empty consistency_path fails.
        guard !consistencyPath.isEmpty else { return false }
        var path = consistencyPath
        // 2. If first is an exact power of 2, prepend first_hash.
        if first & (first - 1) == 0 { path.insert(firstHash, at: 0) }
        // 3. fn = first - 1, sn = second - 1.
        var fn = first - 1, sn = second - 1
        // 4. If LSB(fn) is set, right-shift fn and sn until LSB(fn) is not set.
        while fn & 1 == 1 { fn >>= 1; sn >>= 1 }
        // 5. fr = sr = path[0].
        var fr = path[0], sr = path[0]
        // 6. For each subsequent value c:
        for c in path.dropFirst() {
            if sn == 0 { return false }
            if fn & 1 == 1 || fn == sn {
                fr = nodeHash(c, fr)
                sr = nodeHash(c, sr)
                if fn & 1 == 0 {
                    while fn & 1 == 0 && fn != 0 { fn >>= 1; sn >>= 1 }
                }
            } else {
                sr = nodeHash(sr, c)
            }
            fn >>= 1
            sn >>= 1
        }
        // 7. fr == first_hash, sr == second_hash, sn == 0.
        return fr == firstHash && sr == secondHash && sn == 0
    }
}

// MARK: - Helpers

/// Runs any program (openssl, unshare) and collects its output, like `CLI.run`.
fileprivate enum AuditTool {
    static func run(_ executable: String, _ arguments: [String]) throws -> CLI.Result {
        try CLI.runProgram(executable, arguments)
    }

    static var unshareWorks: Bool { CLI.unshareWorks }

    static let opensslAvailable = FileManager.default.isExecutableFile(atPath: "/usr/bin/openssl")
}

/// One vault, initialised and ingested (59 Synthea patients) once per test run, as alice.
/// Tests work on copies of it.
fileprivate struct AuditFixture: Sendable {
    let vault: String
    let initResult: CLI.Result
    let ingestResult: CLI.Result
    let failure: String?

    static let folder = FileManager.default.temporaryDirectory.appendingPathComponent("svaudit-fixture-\(getpid())").path

    static let shared: AuditFixture = {
        atexit { try? FileManager.default.removeItem(atPath: AuditFixture.folder) }
        let vault = folder + "/vault"
        try? FileManager.default.removeItem(atPath: folder)
        try? FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let empty = CLI.Result(status: -1, stdout: "", stderr: "")
        do {
            let initResult = try CLI.run(["init", "--vault", vault, "--as", "alice"])
            guard initResult.status == 0, let testdata = CLI.testdata else {
                return AuditFixture(vault: vault, initResult: initResult, ingestResult: empty, failure: "init failed: \(initResult.stderr)")
            }
            // alice is the administrator (init made her one); the others get what the tests do.
            try """
            principals:
              "\(AuditContext.operatingSystemUser)": {roles: [administrator]}
              bob: {roles: [verifier]}
              auditor: {roles: [reviewer]}
              exporter: {roles: [reviewer]}
              x: {roles: [reviewer]}
            roles:
              verifier:
                allow:
                  - actions: [verify]
                    datasets: ["*"]
                    purposes: [TREAT]
              reviewer:
                allow:
                  - actions: [audit.*]
                    datasets: ["*"]
                    purposes: [HCOMPL]

            """.write(toFile: vault + "/policies/team.yaml", atomically: true, encoding: .utf8)
            let ingest = try CLI.run(["ingest", "--vault", vault, "--as", "alice", "--dataset", "syn", "--format", "synthea-csv",
                                      testdata + "/patients/synthea_csv_59"])
            return AuditFixture(vault: vault, initResult: initResult, ingestResult: ingest,
                                failure: ingest.status == 0 ? nil : "ingest failed: \(ingest.stderr)")
        } catch {
            return AuditFixture(vault: vault, initResult: empty, ingestResult: empty, failure: "cannot run shardvault: \(error)")
        }
    }()

    /// A private copy of the ingested vault in `dir`.
    static func copy(into dir: TempDir, name: String = "v") throws -> String {
        let fixture = shared
        if let failure = fixture.failure { throw FixtureError(message: failure) }
        let target = dir.path + "/" + name
        try FileManager.default.copyItem(atPath: fixture.vault, toPath: target)
        return target
    }

    struct FixtureError: Error, CustomStringConvertible { let message: String; var description: String { message } }
}

/// Parses JSON lines (`audit log --json`, `audit export`).
fileprivate func auditJSONLines(_ text: String) throws -> [[String: Any]] {
    try text.split(separator: "\n", omittingEmptySubsequences: true).map { line in
        guard let object = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else {
            throw AuditFixture.FixtureError(message: "not a JSON object: \(line)")
        }
        return object
    }
}

fileprivate func auditSeqs(_ entries: [[String: Any]]) -> [Int] { entries.compactMap { $0["seq"] as? Int } }

fileprivate func auditDataset(_ entry: [String: Any]) -> String? { (entry["resource"] as? [String: Any])?["dataset"] as? String }

/// The lines of a segment, without their newlines.
fileprivate func auditSegmentLines(_ path: String) throws -> [[UInt8]] {
    let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
    return bytes.split(separator: 0x0A, omittingEmptySubsequences: false).dropLast().map(Array.init)
}

/// Every regular file under `folder`, recursively, with its bytes.
fileprivate func auditFilesUnder(_ folder: String) throws -> [String: Data] {
    var out: [String: Data] = [:]
    guard let walker = FileManager.default.enumerator(atPath: folder) else { return out }
    while let relative = walker.nextObject() as? String {
        let path = folder + "/" + relative
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue {
            out[relative] = try Data(contentsOf: URL(fileURLWithPath: path))
        }
    }
    return out
}

/// A small RFC 4180 reader: quoted fields, doubled quotes, commas and newlines inside quotes.
fileprivate func auditReadCSV(_ path: String) throws -> [[String]] {
    let text = try String(contentsOfFile: path, encoding: .utf8)
    var rows: [[String]] = []
    var row: [String] = []
    var field = ""
    var quoted = false
    var chars = text.makeIterator()
    var pending: Character? = nil
    while let c = pending ?? chars.next() {
        pending = nil
        if quoted {
            if c == "\"" {
                if let next = chars.next() {
                    if next == "\"" { field.append("\"") } else { quoted = false; pending = next }
                } else { quoted = false }
            } else { field.append(c) }
        } else if c == "\"" {
            quoted = true
        } else if c == "," {
            row.append(field); field = ""
        } else if c == "\n" || c == "\r\n" {
            row.append(field); field = ""
            rows.append(row); row = []
        } else if c != "\r" {
            field.append(c)
        }
    }
    if !field.isEmpty || !row.isEmpty { row.append(field); rows.append(row) }
    return rows
}

// MARK: - Tests

@Suite("audit log through the shardvault command line",
       .enabled(if: CLI.binary != nil, "the shardvault binary is not built"))
struct AuditCLITests {
    static let segment0 = "log-000000000000.jsonl"

    @Test("the reference SHA-256 and RFC 9162 verifier used below give the published answers")
    func referenceHashing() {
        #expect(AuditHex.encode(ReferenceSHA256.hash([])) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(AuditHex.encode(ReferenceSHA256.hash(Array("abc".utf8))) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(AuditHex.encode(ReferenceSHA256.hash(Array("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)))
                == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        #expect(AuditHex.encode(ReferenceSHA256.hash([UInt8](repeating: 0x61, count: 1000)))
                == "41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3")
        // RFC 6962 reference tree (8 leaves of the transparency-dev test vectors): root at size 8.
        let inputs: [[UInt8]] = [[], [0x00], [0x10], [0x20, 0x21], [0x30, 0x31], [0x40, 0x41, 0x42, 0x43],
                                 [0x50, 0x51, 0x52, 0x53, 0x54, 0x55, 0x56, 0x57],
                                 [0x60, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6a, 0x6b, 0x6c, 0x6d, 0x6e, 0x6f]]
        let leaves = inputs.map(RFC9162.leafHash)
        #expect(AuditHex.encode(RFC9162.root(leaves[...])) == "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328")
        #expect(AuditHex.encode(RFC9162.root(leaves[0..<3])) == "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77")
    }

    @Test("the independent RFC 9162 verifier agrees with all 196 transparency-dev proof vectors",
          .enabled(if: CLI.testdata != nil, "../shared/testdata is absent"))
    func referenceVerifierVectors() throws {
        // Sizes are unsigned 64-bit upstream (one case has leafIdx 2^64-1); those beyond Int are invalid here.
        struct Inclusion: Decodable { var leafIdx: UInt64; var treeSize: UInt64; var root: String?; var leafHash: String?; var proof: [String]?; var desc: String; var wantErr: Bool }
        struct Consistency: Decodable { var size1: UInt64; var size2: UInt64; var root1: String?; var root2: String?; var proof: [String]?; var desc: String; var wantErr: Bool }
        func bytes(_ b64: String?) -> [UInt8] { b64.flatMap { Data(base64Encoded: $0) }.map { [UInt8]($0) } ?? [] }
        func int(_ v: UInt64) -> Int { Int(exactly: v) ?? -1 }
        var counts = (inclusion: 0, consistency: 0)
        for kind in ["inclusion", "consistency"] {
            let folder = CLI.testdata! + "/merkle/" + kind
            for (name, data) in try auditFilesUnder(folder) where name.hasSuffix(".json") {
                if kind == "inclusion" {
                    let v = try JSONDecoder().decode(Inclusion.self, from: data)
                    let ok = RFC9162.verifyInclusion(leafIndex: int(v.leafIdx), treeSize: int(v.treeSize), leafHash: bytes(v.leafHash),
                                                     path: (v.proof ?? []).map { bytes($0) }, rootHash: bytes(v.root))
                    #expect(ok == !v.wantErr, "\(kind)/\(name): \(v.desc)")
                    counts.inclusion += 1
                } else {
                    let v = try JSONDecoder().decode(Consistency.self, from: data)
                    let ok = RFC9162.verifyConsistency(first: int(v.size1), second: int(v.size2), firstHash: bytes(v.root1), secondHash: bytes(v.root2),
                                                       path: (v.proof ?? []).map { bytes($0) })
                    #expect(ok == !v.wantErr, "\(kind)/\(name): \(v.desc)")
                    counts.consistency += 1
                }
            }
        }
        #expect(counts.inclusion == 98 && counts.consistency == 98)
    }

    // 1. ------------------------------------------------------------------------------------

    @Test("init, ingest, verify and a denied verify are each on the log with principal, action, dataset, purpose and outcome; filters select them; no patient data reaches audit/",
          .enabled(if: CLI.testdata != nil, "../shared/testdata is absent"))
    func acceptance() throws {
        let fixture = AuditFixture.shared
        #expect(fixture.initResult.status == 0, "init: \(fixture.initResult.stderr)")
        #expect(fixture.ingestResult.status == 0, "ingest: \(fixture.ingestResult.stderr)")
        let dir = TempDir()
        let vault = try AuditFixture.copy(into: dir)

        let verify = try CLI.run(["verify", "--vault", vault, "--as", "bob", "--purpose", "TREAT"])
        #expect(verify.status == 0, "\(verify.stderr)")
        #expect(verify.stdout.contains("OK"))
        let denied = try CLI.run(["verify", "--vault", vault, "--as", "carol", "--purpose", "NOPE"])
        #expect(denied.status == 77, "\(denied.stdout) \(denied.stderr)")
        #expect(denied.stderr.contains("NOPE"))
        #expect(!denied.stdout.contains("OK"))

        let logResult = try CLI.run(["audit", "log", "--vault", vault, "--json", "--as", "auditor"])
        #expect(logResult.status == 0, "\(logResult.stderr)")
        let log = try auditJSONLines(logResult.stdout)
        #expect(auditSeqs(log) == Array(0..<log.count), "sequence numbers run from 0 without gaps")
        func entries(_ action: String) -> [[String: Any]] { log.filter { $0["action"] as? String == action } }

        let initEntries = entries("vault.init")
        #expect(initEntries.count == 1)
        #expect(initEntries.first?["principal"] as? String == "alice")
        #expect(initEntries.first?["purpose"] as? String == "HSYSADMIN")
        #expect(initEntries.first?["outcome"] as? String == "success")
        #expect((initEntries.first?["resource"] as? [String: Any])?["vault"] != nil)

        let ingest = entries("ingest")
        #expect(ingest.count == 1)
        #expect(ingest.allSatisfy { $0["principal"] as? String == "alice" && auditDataset($0) == "syn" && $0["outcome"] as? String == "success"
                && $0["purpose"] as? String == "HSYSADMIN" })
        let writes = entries("shard.write")
        #expect(writes.count == 4, "one shard.write per shard (4 by default)")
        #expect(writes.allSatisfy { $0["principal"] as? String == "alice" && auditDataset($0) == "syn" && $0["outcome"] as? String == "success" })
        #expect(Set(writes.compactMap { ($0["resource"] as? [String: Any])?["shard"] as? String }).count == 4)
        let commits = entries("manifest.commit")
        #expect(commits.count == 1)
        #expect(commits.allSatisfy { $0["principal"] as? String == "alice" && auditDataset($0) == "syn" && $0["outcome"] as? String == "success"
                && ($0["resource"] as? [String: Any])?["generation"] as? Int == 1 })
        // Everything the ingest recorded comes after its authorisation and before the manifest commit.
        if let i = auditSeqs(ingest).first, let c = auditSeqs(commits).first {
            #expect(auditSeqs(writes).allSatisfy { $0 > i && $0 < c })
        }

        let verifies = entries("verify")
        #expect(verifies.count == 2)
        let allowed = verifies.first { $0["outcome"] as? String == "success" }
        #expect(allowed?["principal"] as? String == "bob")
        #expect(allowed?["purpose"] as? String == "TREAT")
        #expect(allowed.map(auditDataset) == "syn")
        let refused = verifies.first { $0["outcome"] as? String == "denied" }
        #expect(refused?["principal"] as? String == "carol")
        #expect(refused?["purpose"] as? String == "NOPE")
        #expect(refused.map(auditDataset) == "syn")
        #expect((refused?["reason"] as? String)?.contains("purpose") == true)
        #expect(log.last?["action"] as? String == "audit.read", "the review itself is on the log")
        #expect(log.last?["principal"] as? String == "auditor")
        #expect(log.last?["purpose"] as? String == "HCOMPL")

        // Filters: each gives exactly the matching entries of the log read above (the reviews
        // run as 'auditor' with purpose HCOMPL and no dataset, so they match none of them).
        func filtered(_ options: [String]) throws -> [Int] {
            let result = try CLI.run(["audit", "log", "--vault", vault, "--json", "--as", "auditor"] + options)
            #expect(result.status == 0, "\(options): \(result.stderr)")
            return auditSeqs(try auditJSONLines(result.stdout))
        }
        let alice = auditSeqs(log.filter { $0["principal"] as? String == "alice" })
        #expect(alice.count >= 8)
        #expect(try filtered(["--principal", "alice"]) == alice)
        #expect(try filtered(["--action", "shard"]) == auditSeqs(writes))
        #expect(try filtered(["--action", "shard.write"]) == auditSeqs(writes))
        #expect(try filtered(["--action", "manifest.commit"]) == auditSeqs(commits))
        #expect(try filtered(["--outcome", "denied"]) == auditSeqs(verifies.filter { $0["outcome"] as? String == "denied" }))
        #expect(try filtered(["--dataset", "syn"]) == auditSeqs(log.filter { auditDataset($0) == "syn" }))
        #expect(try filtered(["--purpose", "NOPE"]) == auditSeqs(verifies.filter { $0["purpose"] as? String == "NOPE" }))
        #expect(try filtered(["--purpose", "TREAT"]) == auditSeqs(verifies.filter { $0["purpose"] as? String == "TREAT" }))
        #expect(try filtered(["--purpose", "HSYSADMIN", "--principal", "alice"]) == alice)
        #expect(try filtered(["--since", "2999-01-01"]).isEmpty)
        #expect(try filtered(["--until", "2000-01-01"]).isEmpty)
        #expect(try filtered(["--since", "2000-01-01T00:00:00Z", "--until", "2999-01-01"]).prefix(log.count) == ArraySlice(auditSeqs(log)))
        let bad = try CLI.run(["audit", "log", "--vault", vault, "--outcome", "maybe"])
        #expect(bad.status == 64)

        // No patient identifier or value from the input appears in any byte under audit/ or in keys/audit.state.
        let sample = CLI.testdata! + "/patients/synthea_csv_59"
        let patients = try auditReadCSV(sample + "/patients.csv")
        let header = try #require(patients.first)
        func column(_ name: String) throws -> Int { try #require(header.firstIndex(of: name), "patients.csv has no \(name)") }
        let identifying = try ["Id", "SSN", "FIRST", "LAST", "ADDRESS", "DRIVERS", "PASSPORT", "MAIDEN"].map(column)
        var needles = Set<String>()
        for row in patients.dropFirst() where row.count == header.count {
            for i in identifying where row[i].count >= 4 { needles.insert(row[i]) }
        }
        #expect(needles.count > 59 * 4)
        let observations = try auditReadCSV(sample + "/observations.csv")
        let oh = try #require(observations.first)
        let (desc, value, encounter) = (try #require(oh.firstIndex(of: "DESCRIPTION")), try #require(oh.firstIndex(of: "VALUE")),
                                        try #require(oh.firstIndex(of: "ENCOUNTER")))
        var descriptions = Set<String>(), values = Set<String>(), encounters = Set<String>()
        for row in observations.dropFirst().prefix(4000) where row.count == oh.count {
            if row[desc].count >= 8 && descriptions.count < 60 { descriptions.insert(row[desc]) }
            // Text values, and numbers with three or more digits before the point (two-digit ones
            // could occur by chance in the seconds of an audit timestamp, "…:49.2…").
            let v = row[value]
            let isText = v.count >= 6 && v.contains(where: \.isLetter)
            let isLongNumber = (v.firstIndex(of: ".").map { v.distance(from: v.startIndex, to: $0) >= 3 } ?? false) && v.count >= 5
            if (isText || isLongNumber) && values.count < 80 { values.insert(v) }
            if encounters.count < 30 { encounters.insert(row[encounter]) }
        }
        #expect(descriptions.count >= 20 && values.count >= 20)
        needles.formUnion(descriptions)
        needles.formUnion(values)
        needles.formUnion(encounters)

        var files = try auditFilesUnder(vault + "/audit").map { ("audit/" + $0.key, $0.value) }
        files.append(("keys/audit.state", try Data(contentsOf: URL(fileURLWithPath: vault + "/keys/audit.state"))))
        #expect(files.count >= 4)
        var leaks: [String] = []
        for (name, bytes) in files {
            for needle in needles where bytes.range(of: Data(needle.utf8)) != nil { leaks.append("\(name) contains '\(needle)'") }
        }
        #expect(leaks.isEmpty, "\(leaks.prefix(10))")
        // The search itself can find what is there.
        #expect(files.contains { $0.1.range(of: Data("carol".utf8)) != nil })
    }

    // 2. ------------------------------------------------------------------------------------

    @Test("an edited, deleted, swapped, truncated or forged entry makes 'audit verify' exit 65 naming the segment and the entry",
          .enabled(if: CLI.testdata != nil, "../shared/testdata is absent"))
    func attacks() throws {
        let dir = TempDir()
        let pristine = try AuditFixture.copy(into: dir, name: "pristine")
        let control = try CLI.run(["audit", "verify", "--vault", pristine])
        #expect(control.status == 0, "the untouched copy verifies: \(control.stderr)")
        let lines = try auditSegmentLines(pristine + "/audit/" + Self.segment0)
        try #require(lines.count >= 10)
        let middle = lines.count / 2
        let last = lines.count - 1

        struct Attack {
            var name: String
            var entry: Int
            var apply: ([[UInt8]]) -> [UInt8]
        }
        func join(_ ls: [[UInt8]]) -> [UInt8] { ls.flatMap { $0 + [0x0A] } }
        let attacks: [Attack] = [
            Attack(name: "edit one byte", entry: middle) { ls in
                var ls = ls
                let i = ls[middle].count / 2
                let c = ls[middle][i]
                ls[middle][i] = (c >= 48 && c <= 57) ? 48 + (c - 48 + 1) % 10 : c ^ 0x01
                return join(ls)
            },
            Attack(name: "delete a line", entry: middle) { ls in
                var ls = ls
                ls.remove(at: middle)
                return join(ls)
            },
            Attack(name: "swap two lines", entry: middle) { ls in
                var ls = ls
                ls.swapAt(middle, middle + 1)
                return join(ls)
            },
            Attack(name: "truncate the last line", entry: last) { ls in
                var bytes = join(ls)
                bytes.removeLast(ls[last].count / 2 + 1)
                return bytes
            },
            Attack(name: "append a forged line", entry: last + 1) { ls in
                let previous = String(decoding: ls[last], as: UTF8.self)
                let prevField = "\"prev\":\""
                var forged = previous.replacingOccurrences(of: "{\"seq\":\(last),", with: "{\"seq\":\(last + 1),")
                if let start = forged.range(of: prevField) {
                    let hexStart = start.upperBound
                    let hexEnd = forged.index(hexStart, offsetBy: 64)
                    forged.replaceSubrange(hexStart..<hexEnd, with: AuditHex.encode(RFC9162.leafHash(ls[last])))
                }
                return join(ls) + Array(forged.utf8) + [0x0A]
            },
        ]
        for attack in attacks {
            let vault = dir.path + "/" + attack.name.replacingOccurrences(of: " ", with: "-")
            try FileManager.default.copyItem(atPath: pristine, toPath: vault)
            let segment = vault + "/audit/" + Self.segment0
            try Data(attack.apply(lines)).write(to: URL(fileURLWithPath: segment))
            let result = try CLI.run(["audit", "verify", "--vault", vault])
            #expect(result.status == 65, "\(attack.name): exit \(result.status), \(result.stderr)")
            #expect(!result.stdout.contains("OK"), "\(attack.name): \(result.stdout)")
            #expect(result.stderr.contains(Self.segment0), "\(attack.name): \(result.stderr)")
            #expect(result.stderr.contains("entry \(attack.entry)"), "\(attack.name): \(result.stderr)")
        }
        // The pristine copy was never touched and still verifies.
        #expect(try CLI.run(["audit", "verify", "--vault", pristine]).status == 0)
    }

    // 3. ------------------------------------------------------------------------------------

    @Test("'audit prove' and 'audit consistency' proofs verify under an independent RFC 9162 verifier, and a flipped hash does not",
          .enabled(if: CLI.testdata != nil, "../shared/testdata is absent"))
    func proofs() throws {
        let dir = TempDir()
        let vault = try AuditFixture.copy(into: dir)
        let initial = try auditSegmentLines(vault + "/audit/" + Self.segment0).count
        try #require(initial >= 15, "the ingested vault has \(initial) entries")

        struct Prove: Decodable {
            var leafIndex: Int
            var treeSize: Int
            var rootHash: String
            var leafHash: String
            var entry: String
            var proof: [String]
            var checkpoint: String?
        }
        struct Consistency: Decodable {
            var oldSize: Int
            var newSize: Int
            var oldRoot: String
            var newRoot: String
            var proof: [String]
        }
        var proofs: [Prove] = []
        let cases: [(Int, Int?)] = [(0, 1), (0, nil), (5, 7), (6, 8), (7, 8), (3, 13), (initial - 1, initial), (initial - 1, nil), (2, nil)]
        for (seq, size) in cases {
            let result = try CLI.run(["audit", "prove", String(seq), "--vault", vault, "--json"] + (size.map { ["--size", String($0)] } ?? []))
            #expect(result.status == 0, "prove \(seq) \(size.map(String.init) ?? "-"): \(result.stderr)")
            let out = try JSONDecoder().decode(Prove.self, from: Data(result.stdout.utf8))
            #expect(out.leafIndex == seq)
            if let size { #expect(out.treeSize == size) } else {
                #expect(out.treeSize > initial, "the default size includes the prove command's own entry")
                #expect(out.checkpoint != nil)
            }
            proofs.append(out)
        }
        var pairs = [(1, 2), (3, 10), (4, 8), (7, 15), (8, initial), (initial - 1, initial), (initial, initial), (1, initial), (5, initial + 3)]
        pairs.append((2, initial + 5))
        var consistencies: [Consistency] = []
        for (old, new) in pairs {
            let result = try CLI.run(["audit", "consistency", String(old), String(new), "--vault", vault, "--json"])
            #expect(result.status == 0, "consistency \(old) \(new): \(result.stderr)")
            let out = try JSONDecoder().decode(Consistency.self, from: Data(result.stdout.utf8))
            #expect(out.oldSize == old && out.newSize == new)
            consistencies.append(out)
        }

        // The log read directly from disk, hashed here.
        let lines = try auditSegmentLines(vault + "/audit/" + Self.segment0)
        let leaves = lines.map(RFC9162.leafHash)
        func hashes(_ hex: [String]) -> [[UInt8]] { hex.map { AuditHex.decode($0) ?? [] } }

        for p in proofs {
            let label = "prove \(p.leafIndex) size \(p.treeSize)"
            try #require(p.treeSize <= leaves.count, "\(label)")
            let entryBytes = Array(p.entry.utf8)
            #expect(entryBytes == lines[p.leafIndex], "\(label): the entry is the bytes of line \(p.leafIndex + 1)")
            #expect(p.leafHash == AuditHex.encode(RFC9162.leafHash(entryBytes)), "\(label): leaf hash is SHA-256(0x00 || entry)")
            let root = try #require(AuditHex.decode(p.rootHash))
            #expect(root == RFC9162.root(leaves[0..<p.treeSize]), "\(label): root is MTH of the first \(p.treeSize) lines")
            let path = hashes(p.proof)
            #expect(RFC9162.verifyInclusion(leafIndex: p.leafIndex, treeSize: p.treeSize, leafHash: RFC9162.leafHash(entryBytes),
                                            path: path, rootHash: root), "\(label)")
            if p.treeSize > 1 {
                #expect(!path.isEmpty)
                for i in path.indices {
                    var flipped = path
                    flipped[i][i % 32] ^= 0x20
                    #expect(!RFC9162.verifyInclusion(leafIndex: p.leafIndex, treeSize: p.treeSize, leafHash: RFC9162.leafHash(entryBytes),
                                                     path: flipped, rootHash: root), "\(label): flipped proof[\(i)] must fail")
                }
                #expect(!RFC9162.verifyInclusion(leafIndex: p.leafIndex, treeSize: p.treeSize, leafHash: RFC9162.leafHash(entryBytes),
                                                 path: Array(path.dropLast()), rootHash: root), "\(label): a shortened proof must fail")
                #expect(!RFC9162.verifyInclusion(leafIndex: (p.leafIndex + 1) % p.treeSize, treeSize: p.treeSize,
                                                 leafHash: RFC9162.leafHash(entryBytes), path: path, rootHash: root), "\(label): another index must fail")
            } else {
                #expect(path.isEmpty && root == RFC9162.leafHash(entryBytes))
            }
            var otherLeaf = RFC9162.leafHash(entryBytes)
            otherLeaf[0] ^= 1
            #expect(!RFC9162.verifyInclusion(leafIndex: p.leafIndex, treeSize: p.treeSize, leafHash: otherLeaf, path: path, rootHash: root))

            // Default size: the returned signed checkpoint is of the same tree.
            if let note = p.checkpoint {
                let noteLines = note.components(separatedBy: "\n")
                try #require(noteLines.count >= 5, "\(note)")
                #expect(noteLines[1] == String(p.treeSize), "\(label): checkpoint size")
                #expect(Data(base64Encoded: noteLines[2]).map { [UInt8]($0) } == root, "\(label): checkpoint root equals rootHash")
                #expect(noteLines[3] == "")
            }
        }

        for c in consistencies {
            let label = "consistency \(c.oldSize) \(c.newSize)"
            let oldRoot = try #require(AuditHex.decode(c.oldRoot)), newRoot = try #require(AuditHex.decode(c.newRoot))
            #expect(oldRoot == RFC9162.root(leaves[0..<c.oldSize]), "\(label): old root")
            #expect(newRoot == RFC9162.root(leaves[0..<c.newSize]), "\(label): new root")
            let path = hashes(c.proof)
            #expect(RFC9162.verifyConsistency(first: c.oldSize, second: c.newSize, firstHash: oldRoot, secondHash: newRoot, path: path), "\(label)")
            if c.oldSize == c.newSize {
                #expect(path.isEmpty)
            } else {
                for i in path.indices {
                    var flipped = path
                    flipped[i][31 - i % 32] ^= 0x80
                    #expect(!RFC9162.verifyConsistency(first: c.oldSize, second: c.newSize, firstHash: oldRoot, secondHash: newRoot, path: flipped),
                            "\(label): flipped proof[\(i)] must fail")
                }
                var wrongOld = oldRoot
                wrongOld[5] ^= 1
                #expect(!RFC9162.verifyConsistency(first: c.oldSize, second: c.newSize, firstHash: wrongOld, secondHash: newRoot, path: path))
            }
        }
        // Out-of-range requests are usage errors, not proofs.
        #expect(try CLI.run(["audit", "prove", "3", "--size", "3", "--vault", vault, "--json"]).status == 64)
        #expect(try CLI.run(["audit", "consistency", "5", "4", "--vault", vault, "--json"]).status == 64)
    }

    // 4. ------------------------------------------------------------------------------------

    @Test("the checkpoint's Ed25519 signature verifies with openssl and the printed public key; a changed text does not",
          .enabled(if: AuditTool.opensslAvailable, "/usr/bin/openssl is absent"))
    func checkpointSignatureWithOpenSSL() throws {
        let dir = TempDir()
        let vault = dir.path + "/v"
        #expect(try CLI.run(["init", "--vault", vault]).status == 0)
        #expect(try CLI.run(["verify", "--vault", vault]).status == 0)
        let pem = try CLI.run(["audit", "pubkey", "--vault", vault])
        #expect(pem.status == 0, "\(pem.stderr)")
        #expect(pem.stdout.hasPrefix("-----BEGIN PUBLIC KEY-----\n"))
        try pem.stdout.write(toFile: dir.path + "/pub.pem", atomically: true, encoding: .utf8)

        let note = try String(contentsOfFile: vault + "/audit/checkpoint", encoding: .utf8)
        let separator = try #require(note.range(of: "\n\n", options: .backwards), "\(note)")
        let text = String(note[..<separator.lowerBound]) + "\n"
        let textLines = text.split(separator: "\n").map(String.init)
        #expect(textLines.count == 3, "origin, size, root: \(text)")
        let signatureLines = note[separator.upperBound...].split(separator: "\n").map(String.init)
        #expect(signatureLines.count == 1)
        let line = try #require(signatureLines.first)
        #expect(line.hasPrefix("\u{2014} "))
        let fields = line.dropFirst(2).split(separator: " ")
        try #require(fields.count == 2, "\(line)")
        let name = String(fields[0])
        #expect(name == textLines.first, "the key name is the log origin")
        let blob = try #require(Data(base64Encoded: String(fields[1])).map { [UInt8]($0) })
        #expect(blob.count == 4 + 64)
        let signature = Array(blob.dropFirst(4))

        // Key ID = SHA-256(name || 0x0A || 0x01 || public key)[0..<4] (C2SP signed-note, Ed25519).
        let der = try #require(Data(base64Encoded: pem.stdout.split(separator: "\n").filter { !$0.hasPrefix("-----") }.joined()).map { [UInt8]($0) })
        #expect(der.count == 44, "Ed25519 SubjectPublicKeyInfo")
        let publicKey = Array(der.suffix(32))
        #expect(Array(blob.prefix(4)) == Array(ReferenceSHA256.hash(Array(name.utf8) + [0x0A, 0x01] + publicKey).prefix(4)))
        let verifierKey = try CLI.run(["audit", "pubkey", "--format", "note", "--vault", vault])
        #expect(verifierKey.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
                == "\(name)+\(AuditHex.encode(Array(blob.prefix(4))))+\(Data([0x01] + publicKey).base64EncodedString())")

        try Data(text.utf8).write(to: URL(fileURLWithPath: dir.path + "/text"))
        try Data(signature).write(to: URL(fileURLWithPath: dir.path + "/sig"))
        let openssl = ["pkeyutl", "-verify", "-pubin", "-inkey", dir.path + "/pub.pem", "-rawin", "-sigfile", dir.path + "/sig", "-in"]
        let good = try AuditTool.run("/usr/bin/openssl", openssl + [dir.path + "/text"])
        #expect(good.status == 0, "\(good.stdout) \(good.stderr)")
        #expect(good.stdout.contains("Signature Verified Successfully"))

        // A changed tree size, or a text without its final newline, does not verify.
        let changed = text.replacingOccurrences(of: "\n\(textLines[1])\n", with: "\n\(Int(textLines[1])! + 1)\n")
        #expect(changed != text)
        try Data(changed.utf8).write(to: URL(fileURLWithPath: dir.path + "/changed"))
        let bad = try AuditTool.run("/usr/bin/openssl", openssl + [dir.path + "/changed"])
        #expect(bad.status != 0)
        #expect(!bad.stdout.contains("Signature Verified Successfully"))
        try Data(text.dropLast().utf8).write(to: URL(fileURLWithPath: dir.path + "/short"))
        #expect(try AuditTool.run("/usr/bin/openssl", openssl + [dir.path + "/short"]).status != 0)
    }

    // 5. ------------------------------------------------------------------------------------

    struct FHIRAuditEvent: Decodable {
        struct Coding: Decodable { var system: String; var code: String; var display: String? }
        struct CodeableConcept: Decodable { var coding: [Coding]?; var text: String? }
        struct Identifier: Decodable { var system: String?; var value: String? }
        struct Reference: Decodable { var reference: String?; var identifier: Identifier?; var display: String? }
        struct Agent: Decodable { var type: CodeableConcept?; var who: Reference?; var name: String?; var requestor: Bool }
        struct Source: Decodable { var site: String?; var observer: Reference; var type: [Coding]? }
        struct Detail: Decodable { var type: String; var valueString: String?; var valueBase64Binary: String? }
        struct Entity: Decodable { var what: Reference?; var type: Coding?; var role: Coding?; var name: String?; var detail: [Detail]? }
        var resourceType: String
        var id: String
        var type: Coding
        var subtype: [Coding]?
        var action: String?
        var recorded: String
        var outcome: String?
        var outcomeDesc: String?
        var purposeOfEvent: [CodeableConcept]?
        var agent: [Agent]
        var source: Source
        var entity: [Entity]?
    }

    @Test("'audit export --format fhir' gives one valid R4 AuditEvent per entry; the denied entry has outcome 4",
          .enabled(if: CLI.testdata != nil, "../shared/testdata is absent"))
    func fhirExport() throws {
        let dir = TempDir()
        let vault = try AuditFixture.copy(into: dir)
        #expect(try CLI.run(["verify", "--vault", vault, "--as", "carol", "--purpose", "NOPE"]).status == 77)
        let logResult = try CLI.run(["audit", "log", "--vault", vault, "--json"])
        #expect(logResult.status == 0)
        let log = try auditJSONLines(logResult.stdout)
        let export = try CLI.run(["audit", "export", "--format", "fhir", "--vault", vault, "--as", "exporter"])
        #expect(export.status == 0, "\(export.stderr)")
        let lines = export.stdout.split(separator: "\n", omittingEmptySubsequences: false).dropLast().map(String.init)
        #expect(export.stdout.hasSuffix("\n"))
        #expect(lines.count == log.count + 1, "every entry the log listed, plus the export's own entry")

        let elements: Set<String> = ["resourceType", "id", "meta", "implicitRules", "language", "text", "contained", "extension",
                                     "modifierExtension", "type", "subtype", "action", "period", "recorded", "outcome", "outcomeDesc",
                                     "purposeOfEvent", "agent", "source", "entity"]
        let idPattern = try Regex("[A-Za-z0-9\\-\\.]{1,64}")
        let instant = try Regex("([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)-(0[1-9]|1[0-2])-(0[1-9]|[1-2][0-9]|3[0-1])T([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\\.[0-9]{1,9})?(Z|(\\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00))")
        var ids = Set<String>()
        var exportedSeqs: [Int] = []
        var denied: [FHIRAuditEvent] = []
        for (n, line) in lines.enumerated() {
            let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], "line \(n + 1)")
            #expect(Set(object.keys).isSubset(of: elements), "line \(n + 1): unknown elements \(Set(object.keys).subtracting(elements))")
            let event: FHIRAuditEvent
            do { event = try JSONDecoder().decode(FHIRAuditEvent.self, from: Data(line.utf8)) } catch {
                Issue.record("line \(n + 1) does not have the R4 AuditEvent shape: \(error)\n\(line)")
                continue
            }
            #expect(event.resourceType == "AuditEvent")
            #expect(event.id.wholeMatch(of: idPattern) != nil, "id '\(event.id)'")
            #expect(ids.insert(event.id).inserted, "ids are unique")
            #expect(!event.type.system.isEmpty && !event.type.code.isEmpty)
            #expect(event.recorded.wholeMatch(of: instant) != nil, "recorded '\(event.recorded)' is an instant with a time zone")
            #expect(!event.agent.isEmpty)
            for agent in event.agent {
                #expect(agent.who != nil || agent.name != nil, "agent has who or name")
                if let who = agent.who { #expect(who.identifier?.value?.isEmpty == false || who.reference != nil) }
            }
            #expect(event.source.observer.identifier?.value?.isEmpty == false || event.source.observer.reference != nil)
            #expect(["0", "4", "8", "12"].contains(event.outcome ?? "0"), "outcome \(event.outcome ?? "-")")
            #expect(["C", "R", "U", "D", "E"].contains(event.action ?? "R"), "action \(event.action ?? "-")")
            for purpose in event.purposeOfEvent ?? [] {
                #expect(purpose.coding?.isEmpty == false || purpose.text != nil)
                for coding in purpose.coding ?? [] {
                    #expect(coding.system == "http://terminology.hl7.org/CodeSystem/v3-ActReason")
                    #expect(!coding.code.isEmpty)
                }
            }
            for coding in event.subtype ?? [] { #expect(!coding.system.isEmpty && !coding.code.isEmpty) }
            for entity in event.entity ?? [] {
                #expect(entity.what != nil)
                if let type = entity.type { #expect(!type.system.isEmpty && !type.code.isEmpty) }
                for detail in entity.detail ?? [] {
                    #expect(!detail.type.isEmpty)
                    #expect(detail.valueString != nil || detail.valueBase64Binary != nil)
                }
            }
            // The entry the event came from, and its time.
            let seqText = event.entity?.first { $0.what?.identifier?.system == "urn:shardvault:audit-entry" }?.what?.identifier?.value
            if let seq = seqText.flatMap(Int.init) {
                exportedSeqs.append(seq)
                if seq < log.count {
                    #expect(log[seq]["time"] as? String == event.recorded)
                    #expect(event.subtype?.first?.code == log[seq]["action"] as? String)
                    #expect(event.agent.first?.who?.identifier?.value == log[seq]["principal"] as? String)
                    let purpose = event.purposeOfEvent?.first
                    #expect((purpose?.coding?.first?.code ?? purpose?.text) == log[seq]["purpose"] as? String)
                }
            } else {
                Issue.record("line \(n + 1) does not name its audit entry")
            }
            if event.outcome == "4" { denied.append(event) }
        }
        #expect(exportedSeqs == Array(0..<lines.count))
        #expect(denied.count == 1)
        let refused = try #require(denied.first)
        #expect(refused.subtype?.first?.code == "verify")
        #expect(refused.agent.first?.who?.identifier?.value == "carol")
        #expect(refused.outcomeDesc?.contains("denied") == true)
        // A purpose outside the v3-ActReason value set is exported as text, never as a Coding
        // in a code system that has no such code.
        #expect(refused.purposeOfEvent?.first?.coding == nil)
        #expect(refused.purposeOfEvent?.first?.text == "NOPE")
        let exportEntry = try auditJSONLines(try CLI.run(["audit", "log", "--vault", vault, "--json", "--action", "audit.export"]).stdout)
        #expect(exportEntry.count == 1 && exportEntry.first?["principal"] as? String == "exporter")

        // --since in the future exports nothing (but is itself recorded).
        let none = try CLI.run(["audit", "export", "--format", "fhir", "--since", "2999-01-01", "--vault", vault])
        #expect(none.status == 0 && none.stdout.isEmpty)
    }

    // 6. ------------------------------------------------------------------------------------

    @Test("with audit/ full or read-only, 'verify --deep' exits 74, prints no OK and decrypts nothing",
          .enabled(if: CLI.testdata != nil, "../shared/testdata is absent"),
          .enabled(if: AuditTool.unshareWorks, "'unshare -m' does not work here (needs root or CAP_SYS_ADMIN)"))
    func auditFileSystemFullOrReadOnly() throws {
        let dir = TempDir()
        let vault = try AuditFixture.copy(into: dir)
        let binary = try #require(CLI.binary)
        let deep = try CLI.run(["verify", "--vault", vault, "--deep"])
        #expect(deep.status == 0, "\(deep.stderr)")
        func decryptCount() throws -> Int {
            let result = try CLI.run(["audit", "log", "--vault", vault, "--json", "--action", "shard.decrypt"])
            #expect(result.status == 0, "\(result.stderr)")
            return try auditJSONLines(result.stdout).count
        }
        let decryptsBefore = try decryptCount()
        #expect(decryptsBefore == 4, "the successful deep verify recorded one decryption per shard")

        // tmpfs allocates whole pages, so a full tmpfs still takes bytes into the unused end of the
        // segment's last page. Grow the log (by 397-byte audit.read entries) until that slack is
        // below the 411 bytes of the verify request's own entry: then not even the request can be
        // recorded, and nothing at all may happen.
        let segment = vault + "/audit/" + Self.segment0
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        func slack() throws -> Int {
            let size = try FileManager.default.attributesOfItem(atPath: segment)[.size] as? Int ?? 0
            return (page - size % page) % page
        }
        var grown = 0
        while try slack() >= 400 && grown < 40 {
            #expect(try CLI.run(["audit", "checkpoint", "--vault", vault, "--as", "x"]).status == 0)
            grown += 1
        }
        try #require(try slack() < 400, "could not bring the segment's page slack below one entry")
        let linesBefore = try auditSegmentLines(segment).count
        let auditBefore = try auditFilesUnder(vault + "/audit")
        let stateBefore = try Data(contentsOf: URL(fileURLWithPath: vault + "/keys/audit.state"))

        func quoted(_ s: String) -> String { "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'" }
        let modes: [(name: String, setup: String, errno: String)] = [
            ("full", """
             mount -t tmpfs -o size=512k tmpfs "$V/audit" || exit 92
             cp -a "$W/copy/." "$V/audit/" || exit 93
             dd if=/dev/zero of="$V/audit/fill" bs=4k 2>/dev/null
             echo "dd exit $? (1 = disk full, as intended)"
             df -k "$V/audit"
             """, "No space left on device"),
            ("read-only", """
             mount -t tmpfs -o size=2m tmpfs "$V/audit" || exit 92
             cp -a "$W/copy/." "$V/audit/" || exit 93
             mount -o remount,ro "$V/audit" || exit 94
             """, "Read-only file system"),
        ]
        for mode in modes {
            let work = dir.path + "/work-" + mode.name
            try FileManager.default.createDirectory(atPath: work + "/copy", withIntermediateDirectories: true)
            let script = """
            set -u
            V=\(quoted(vault)); W=\(quoted(work)); B=\(quoted(binary))
            cp -a "$V/audit/." "$W/copy/" || exit 91
            \(mode.setup)
            "$B" verify --vault "$V" --deep --as x >"$W/out" 2>"$W/err"
            echo $? >"$W/rc"
            grep -c '"action":"shard.decrypt"' "$V/audit/\(Self.segment0)" >"$W/decrypts"
            wc -l <"$V/audit/\(Self.segment0)" >"$W/lines"
            echo "decrypt lines in the mounted log: $(cat "$W/decrypts"), complete lines: $(cat "$W/lines")"
            ls -la "$V/audit"
            exit 0
            """
            let shell = try AuditTool.run("/usr/bin/unshare", ["-m", "sh", "-c", script])
            let diagnosis = "shell exit \(shell.status)\n\(shell.stdout)\n\(shell.stderr)"
            #expect(shell.status == 0, "\(mode.name): \(diagnosis)")
            let rc = (try? String(contentsOfFile: work + "/rc", encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
            let out = (try? String(contentsOfFile: work + "/out", encoding: .utf8)) ?? ""
            let err = (try? String(contentsOfFile: work + "/err", encoding: .utf8)) ?? ""
            #expect(rc == "74", "\(mode.name): verify exit \(rc ?? "none"); stdout \(out); stderr \(err)\n\(diagnosis)")
            #expect(err.contains("audit log") && err.contains(mode.errno), "\(mode.name): \(err)\n\(diagnosis)")
            #expect(!out.split(separator: "\n").contains { $0.hasPrefix("OK") }, "\(mode.name): \(out)")
            #expect(!out.contains("OK"), "\(mode.name): \(out)")
            // Inside the namespace: not one complete entry was added, so no decryption was recorded or done.
            let mountedDecrypts = (try? String(contentsOfFile: work + "/decrypts", encoding: .utf8)).flatMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
            let mountedLines = (try? String(contentsOfFile: work + "/lines", encoding: .utf8)).flatMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
            #expect(mountedDecrypts == decryptsBefore, "\(mode.name): \(diagnosis)")
            #expect(mountedLines == linesBefore, "\(mode.name): \(diagnosis)")
        }

        // Outside the namespace nothing changed: same audit files, same writer state, no new decryptions.
        #expect(try auditFilesUnder(vault + "/audit") == auditBefore)
        #expect(try Data(contentsOf: URL(fileURLWithPath: vault + "/keys/audit.state")) == stateBefore)
        #expect(try decryptCount() == decryptsBefore)
        let after = try CLI.run(["audit", "verify", "--vault", vault])
        #expect(after.status == 0, "\(after.stderr)")
    }

    // 7. ------------------------------------------------------------------------------------

    @Test("with the current segment deleted, 'verify --deep' exits 74 naming the missing segment",
          .enabled(if: CLI.testdata != nil, "../shared/testdata is absent"))
    func deletedSegment() throws {
        let dir = TempDir()
        let vault = try AuditFixture.copy(into: dir)
        try FileManager.default.removeItem(atPath: vault + "/audit/" + Self.segment0)
        let result = try CLI.run(["verify", "--vault", vault, "--deep"])
        #expect(result.status == 74, "\(result.stdout) \(result.stderr)")
        #expect(result.stderr.contains(Self.segment0) && result.stderr.contains("missing"), "\(result.stderr)")
        #expect(!result.stdout.contains("OK"))
        #expect(!FileManager.default.fileExists(atPath: vault + "/audit/" + Self.segment0), "a deleted segment is never re-created")
        #expect(try CLI.run(["audit", "log", "--vault", vault]).status == 74)
    }

    // 8. ------------------------------------------------------------------------------------

    @Test("after 'audit archive' of several rolled segments the log still verifies alone, with the archive, and against a checkpoint saved before")
    func archive() throws {
        let dir = TempDir()
        let vault = dir.path + "/v"
        #expect(try CLI.run(["init", "--vault", vault, "--audit-segment-size", "4096"]).status == 0)
        #expect(try CLI.run(["generate", "--patients", "3", "--seed", "7", dir.path + "/csv"]).status == 0)
        for name in ["a", "b", "c"] {
            let ingest = try CLI.run(["ingest", "--vault", vault, "--dataset", name, "--format", "synthea-csv", "--shards", "2", dir.path + "/csv"])
            #expect(ingest.status == 0, "\(ingest.stderr)")
        }
        #expect(try CLI.run(["verify", "--vault", vault, "--deep"]).status == 0)
        let segments = try FileManager.default.contentsOfDirectory(atPath: vault + "/audit").filter { $0.hasPrefix("log-") }.sorted()
        #expect(segments.count >= 4, "\(segments)")
        for name in segments {
            let size = try FileManager.default.attributesOfItem(atPath: vault + "/audit/" + name)[.size] as? Int ?? 0
            #expect(size <= 4096, "\(name) is \(size) bytes")
        }
        let before = try CLI.run(["audit", "verify", "--vault", vault])
        #expect(before.status == 0, "\(before.stderr)")
        let entriesBefore = try auditJSONLines(try CLI.run(["audit", "log", "--vault", vault, "--json"]).stdout)
        let saved = dir.path + "/saved-checkpoint"
        try FileManager.default.copyItem(atPath: vault + "/audit/checkpoint", toPath: saved)

        let archive = dir.path + "/archive"
        let moved = try CLI.run(["audit", "archive", "--vault", vault, "--to", archive])
        #expect(moved.status == 0, "\(moved.stderr)")
        let left = try FileManager.default.contentsOfDirectory(atPath: vault + "/audit").filter { $0.hasPrefix("log-") }
        let archived = try FileManager.default.contentsOfDirectory(atPath: archive).filter { $0.hasPrefix("log-") }
        #expect(left.count == 1, "only the current segment stays: \(left)")
        #expect(archived.count >= segments.count - 1 && Set(archived).isDisjoint(with: left))
        #expect(FileManager.default.fileExists(atPath: vault + "/audit/base.json"))

        let alone = try CLI.run(["audit", "verify", "--vault", vault])
        #expect(alone.status == 0, "\(alone.stdout) \(alone.stderr)")
        let withArchive = try CLI.run(["audit", "verify", "--vault", vault, "--archive", archive])
        #expect(withArchive.status == 0, "\(withArchive.stdout) \(withArchive.stderr)")
        #expect(withArchive.stdout.contains("entries 0..."), "\(withArchive.stdout)")
        let fromSaved = try CLI.run(["audit", "verify", "--vault", vault, "--from-checkpoint", saved])
        #expect(fromSaved.status == 0, "\(fromSaved.stdout) \(fromSaved.stderr)")
        let both = try CLI.run(["audit", "verify", "--vault", vault, "--archive", archive, "--from-checkpoint", saved])
        #expect(both.status == 0, "\(both.stdout) \(both.stderr)")

        // The archived entries are still readable, unchanged, through --archive.
        let entriesAfter = try auditJSONLines(try CLI.run(["audit", "log", "--vault", vault, "--json", "--archive", archive]).stdout)
        #expect(auditSeqs(entriesAfter).prefix(entriesBefore.count) == ArraySlice(auditSeqs(entriesBefore)))
        #expect(entriesAfter.prefix(entriesBefore.count).map { $0["mac"] as? String } == entriesBefore.map { $0["mac"] as? String })

        // A saved checkpoint that the log does not match is refused.
        var forged = try String(contentsOfFile: saved, encoding: .utf8)
        let lines = forged.components(separatedBy: "\n")
        forged = forged.replacingOccurrences(of: "\n" + lines[1] + "\n", with: "\n" + String(Int(lines[1])! - 1) + "\n")
        try forged.write(toFile: dir.path + "/forged-checkpoint", atomically: true, encoding: .utf8)
        #expect(try CLI.run(["audit", "verify", "--vault", vault, "--from-checkpoint", dir.path + "/forged-checkpoint"]).status == 65)
    }
}
