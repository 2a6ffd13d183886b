import VaultCrypto

/// A C2SP tlog-checkpoint (c2sp.org/tlog-checkpoint) carried in a C2SP signed note
/// (c2sp.org/signed-note), signed with Ed25519:
///
///     <origin>\n<tree size>\n<base64 root hash>\n
///     \n
///     — <key name> base64(key ID (4 bytes) || Ed25519 signature)\n
///
/// key ID = SHA-256(key name || 0x0A || 0x01 || public key)[0..<4].
public struct Checkpoint: Sendable, Equatable {
    public var origin: String
    public var treeSize: Int
    public var rootHash: [UInt8]

    public init(origin: String, treeSize: Int, rootHash: [UInt8]) {
        self.origin = origin
        self.treeSize = treeSize
        self.rootHash = rootHash
    }

    /// The note text: three lines, each ending in a newline.
    public var text: String { "\(origin)\n\(treeSize)\n\(Base64.encode(rootHash))\n" }

    public struct FormatError: Error, CustomStringConvertible, Sendable {
        public let description: String
        init(_ text: String) { description = text }
    }

    /// Parses a checkpoint note text (extension lines after the root are allowed and ignored).
    public static func parse(text: String) throws -> Checkpoint {
        var lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        guard lines.last == "" else { throw FormatError("checkpoint text must end in a newline") }
        lines.removeLast()
        guard lines.count >= 3 else { throw FormatError("checkpoint needs origin, tree size and root hash lines") }
        guard !lines[0].isEmpty else { throw FormatError("checkpoint origin is empty") }
        guard let size = Int(lines[1]), size >= 0, String(size) == lines[1] else {
            throw FormatError("checkpoint tree size '\(lines[1])' is not a decimal number")
        }
        guard let root = Base64.decode(lines[2]), root.count == MerkleTree.hashLength else {
            throw FormatError("checkpoint root hash is not base64 of 32 bytes")
        }
        return Checkpoint(origin: lines[0], treeSize: size, rootHash: root)
    }
}

/// An Ed25519 note signer/verifier identity: a key name and a public key.
public struct NoteVerifier: Sendable, Equatable {
    public let name: String
    public let publicKey: [UInt8]

    public init(name: String, publicKey: [UInt8]) throws {
        guard !name.isEmpty, !name.contains(where: { $0.isWhitespace || $0 == "+" }) else {
            throw Checkpoint.FormatError("key name must be non-empty, without spaces or '+'")
        }
        guard publicKey.count == Ed25519.publicKeyLength else { throw Checkpoint.FormatError("Ed25519 public key must be 32 bytes") }
        self.name = name
        self.publicKey = publicKey
    }

    /// SHA-256(name || 0x0A || 0x01 || public key)[0..<4].
    public var keyId: [UInt8] {
        Array(Digest.sha256(Array(name.utf8) + [0x0A, 0x01] + publicKey).prefix(4))
    }

    /// The note verifier key string, `name+hex(key id)+base64(0x01 || public key)`.
    public var verifierKey: String { "\(name)+\(Hex.encode(keyId))+\(Base64.encode([0x01] + publicKey))" }
}

public enum SignedNote {
    static let dash = "\u{2014} "

    /// Signs `text` (which must end in a newline) and returns the whole note.
    public static func sign(text: String, name: String, seed: SecureBytes) throws -> String {
        guard text.hasSuffix("\n") else { throw Checkpoint.FormatError("note text must end in a newline") }
        let verifier = try NoteVerifier(name: name, publicKey: try Ed25519.publicKey(seed: seed))
        let signature = try Ed25519.sign(Array(text.utf8), seed: seed)
        return text + "\n" + dash + name + " " + Base64.encode(verifier.keyId + signature) + "\n"
    }

    /// Splits a note into text and signature lines, checks the signature by `verifier`,
    /// and returns the text. Signatures by other keys are ignored; the note is rejected
    /// unless `verifier` signed it.
    public static func open(_ note: String, verifier: NoteVerifier) throws -> String {
        guard note.hasSuffix("\n"), let separator = note.range(of: "\n\n", options: .backwards) else {
            throw Checkpoint.FormatError("not a signed note: no blank line before the signatures")
        }
        guard !note.unicodeScalars.contains(where: { $0.value < 0x20 && $0 != "\n" }) else {
            throw Checkpoint.FormatError("signed note contains a control character")
        }
        let text = String(note[note.startIndex..<note.index(after: separator.lowerBound)])
        let signatureLines = note[separator.upperBound...].split(separator: "\n", omittingEmptySubsequences: false).dropLast()
        guard !signatureLines.isEmpty else { throw Checkpoint.FormatError("signed note has no signature") }
        var verified = false
        for line in signatureLines {
            guard line.hasPrefix(dash) else { throw Checkpoint.FormatError("malformed signature line") }
            let rest = line.dropFirst(dash.count)
            guard let space = rest.lastIndex(of: " ") else { throw Checkpoint.FormatError("malformed signature line") }
            let name = String(rest[rest.startIndex..<space])
            guard let blob = Base64.decode(String(rest[rest.index(after: space)...])), blob.count > 4 else {
                throw Checkpoint.FormatError("signature is not base64 of a key ID and a signature")
            }
            guard name == verifier.name, Array(blob.prefix(4)) == verifier.keyId else { continue } // unknown key: ignored
            guard Ed25519.verify(Array(blob.dropFirst(4)), message: Array(text.utf8), publicKey: verifier.publicKey) else {
                throw Checkpoint.FormatError("signature by \(name) does not verify")
            }
            verified = true
        }
        guard verified else { throw Checkpoint.FormatError("note is not signed by \(verifier.name)") }
        return text
    }
}
