import Foundation
import Testing
import VaultCrypto

/// Ed25519 (RFC 8032) for signed checkpoints.
@Suite("Ed25519 (RFC 8032)")
struct Ed25519Tests {
    /// RFC 8032 section 7.1, TEST 1 to 3 (transcribed; cross-checked with an independent implementation).
    static let rfc8032: [(seed: String, publicKey: String, message: String, signature: String)] = [
        ("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60", "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a", "",
         "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"),
        ("4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb", "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c", "72",
         "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00"),
        ("c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7", "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025", "af82",
         "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a"),
    ]

    static func hex(_ s: String) -> [UInt8] {
        var out: [UInt8] = []
        var i = s.startIndex
        while i < s.endIndex {
            let j = s.index(i, offsetBy: 2)
            out.append(UInt8(s[i..<j], radix: 16)!)
            i = j
        }
        return out
    }

    @Test("RFC 8032 test vectors: public key, signature, verification; altered inputs fail", arguments: 0..<3)
    func knownAnswers(_ n: Int) throws {
        let v = Self.rfc8032[n]
        let seed = SecureBytes(copying: Self.hex(v.seed))
        #expect(try Ed25519.publicKey(seed: seed) == Self.hex(v.publicKey))
        let signature = try Ed25519.sign(Self.hex(v.message), seed: seed)
        #expect(signature == Self.hex(v.signature))
        #expect(Ed25519.verify(signature, message: Self.hex(v.message), publicKey: Self.hex(v.publicKey)))
        var badSignature = signature
        badSignature[10] ^= 1
        #expect(!Ed25519.verify(badSignature, message: Self.hex(v.message), publicKey: Self.hex(v.publicKey)))
        #expect(!Ed25519.verify(signature, message: Self.hex(v.message) + [0], publicKey: Self.hex(v.publicKey)))
        let other = Self.hex(Self.rfc8032[(n + 1) % 3].publicKey)
        #expect(!Ed25519.verify(signature, message: Self.hex(v.message), publicKey: other))
        #expect(!Ed25519.verify(Array(signature.prefix(63)), message: Self.hex(v.message), publicKey: Self.hex(v.publicKey)))
    }

    @Test("the exported PEM public key verifies a signature with openssl pkeyutl",
          .enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/openssl"), "openssl command not installed"))
    func opensslInterop() throws {
        let seed = try Ed25519.generateSeed()
        let message = Array("shardvault checkpoint\n42\n".utf8)
        let signature = try Ed25519.sign(message, seed: seed)
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ed25519-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        try Ed25519.publicKeyPEM(try Ed25519.publicKey(seed: seed)).write(to: dir.appendingPathComponent("pub.pem"), atomically: true, encoding: .utf8)
        try Data(message).write(to: dir.appendingPathComponent("msg"))
        try Data(signature).write(to: dir.appendingPathComponent("sig"))
        func openssl(_ sig: String) throws -> Int32 {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
            p.arguments = ["pkeyutl", "-verify", "-pubin", "-inkey", dir.appendingPathComponent("pub.pem").path, "-rawin",
                           "-in", dir.appendingPathComponent("msg").path, "-sigfile", dir.appendingPathComponent(sig).path]
            p.standardOutput = FileHandle.nullDevice
            p.standardError = FileHandle.nullDevice
            try p.run()
            p.waitUntilExit()
            return p.terminationStatus
        }
        #expect(try openssl("sig") == 0)
        var bad = signature
        bad[0] ^= 1
        try Data(bad).write(to: dir.appendingPathComponent("bad"))
        #expect(try openssl("bad") != 0)
    }

    @Test("base64 round-trips and rejects malformed input")
    func base64() {
        for n in 0..<10 {
            let bytes = (0..<n).map { UInt8($0 * 37 & 0xff) }
            #expect(Base64.decode(Base64.encode(bytes)) == bytes)
            #expect(Base64.encode(bytes) == Data(bytes).base64EncodedString())
        }
        #expect(Base64.decode("abc") == nil)
        #expect(Base64.decode("a=bc") == nil)
        #expect(Base64.decode("ab!c") == nil)
    }
}
