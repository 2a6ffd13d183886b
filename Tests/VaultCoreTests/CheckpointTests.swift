import Foundation
import Testing
import VaultCrypto
@testable import VaultCore

@Suite("Signed checkpoints (C2SP signed note, tlog-checkpoint)")
struct CheckpointTests {
    let seed: SecureBytes
    let verifier: NoteVerifier

    init() throws {
        seed = try Ed25519.generateSeed()
        verifier = try NoteVerifier(name: "vault.example/audit", publicKey: try Ed25519.publicKey(seed: seed))
    }

    func signed(_ checkpoint: Checkpoint) throws -> String {
        try SignedNote.sign(text: checkpoint.text, name: verifier.name, seed: seed)
    }

    @Test("a signed checkpoint opens with its key and parses back")
    func roundTrip() throws {
        let root = MerkleTree.root(leafHashes: (0..<5).map { MerkleTree.leafHash([UInt8($0)]) })
        let checkpoint = Checkpoint(origin: "vault.example/audit", treeSize: 5, rootHash: root)
        let note = try signed(checkpoint)
        #expect(note.hasPrefix("vault.example/audit\n5\n\(Base64.encode(root))\n\n\u{2014} vault.example/audit "))
        #expect(try Checkpoint.parse(text: try SignedNote.open(note, verifier: verifier)) == checkpoint)
    }

    @Test("key ID follows the spec: SHA-256(name || 0x0A || 0x01 || key)[0..<4]")
    func keyId() throws {
        let expected = Array(Digest.sha256(Array("vault.example/audit".utf8) + [10, 1] + verifier.publicKey).prefix(4))
        #expect(verifier.keyId == expected)
        #expect(verifier.verifierKey.hasPrefix("vault.example/audit+\(Hex.encode(expected))+"))
    }

    @Test("edited text, size, root, signature, or another key are rejected")
    func attacks() throws {
        let checkpoint = Checkpoint(origin: "vault.example/audit", treeSize: 7, rootHash: [UInt8](repeating: 3, count: 32))
        let note = try signed(checkpoint)
        #expect(throws: (any Error).self) { _ = try SignedNote.open(note.replacingOccurrences(of: "\n7\n", with: "\n8\n"), verifier: verifier) }
        #expect(throws: (any Error).self) { _ = try SignedNote.open(note.replacingOccurrences(of: "vault.example/audit\n", with: "vault.example/audiT\n"), verifier: verifier) }
        var bytes = Array(note.utf8)
        bytes[bytes.count - 10] = bytes[bytes.count - 10] == UInt8(ascii: "A") ? UInt8(ascii: "B") : UInt8(ascii: "A")
        #expect(throws: (any Error).self) { _ = try SignedNote.open(String(decoding: bytes, as: UTF8.self), verifier: verifier) }
        let otherSeed = try Ed25519.generateSeed()
        let forged = try SignedNote.sign(text: checkpoint.text, name: verifier.name, seed: otherSeed)
        #expect(throws: (any Error).self) { _ = try SignedNote.open(forged, verifier: verifier) }
        // A signature by an unknown key is ignored, but the note still needs ours.
        let other = try SignedNote.sign(text: checkpoint.text, name: "someone.else/log", seed: otherSeed)
        #expect(throws: (any Error).self) { _ = try SignedNote.open(other, verifier: verifier) }
        let both = note + String(other.split(separator: "\n").last!) + "\n"
        #expect(try SignedNote.open(both, verifier: verifier) == checkpoint.text)
        #expect(throws: (any Error).self) { _ = try Checkpoint.parse(text: "origin\n-1\n\(Base64.encode([UInt8](repeating: 0, count: 32)))\n") }
        #expect(throws: (any Error).self) { _ = try Checkpoint.parse(text: "origin\n1\nnotbase64\n") }
    }
}
