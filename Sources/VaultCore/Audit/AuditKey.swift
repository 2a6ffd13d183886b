import Foundation
import VaultCrypto

/// The vault's audit keys in `keys/audit.key` (mode 0600): the Ed25519 seed that signs
/// checkpoints and the HMAC key that authenticates each entry.
///
/// File: `"SVAUDITK"` (8 bytes), u32 version, 32 bytes Ed25519 seed, 32 bytes MAC key.
public final class AuditKey: Sendable {
    static let magic = Array("SVAUDITK".utf8)
    static let fileLength = 8 + 4 + 32 + 32
    public let version: Int
    let seed: SecureBytes
    let macKey: SecureBytes
    /// The checkpoint signer's identity: key name (the log origin) and public key.
    public let verifier: NoteVerifier

    private init(version: Int, seed: SecureBytes, macKey: SecureBytes, origin: String) throws {
        self.version = version
        self.seed = seed
        self.macKey = macKey
        verifier = try NoteVerifier(name: origin, publicKey: try Ed25519.publicKey(seed: seed))
    }

    /// The origin line of the vault's checkpoints, also the key name.
    public static func origin(vaultId: [UInt8]) -> String { "shardvault/\(Hex.encode(vaultId))" }

    static func create(at path: String, vaultId: [UInt8]) throws -> AuditKey {
        let seed = try Ed25519.generateSeed()
        let macKey = try SecureBytes.random(count: 32)
        var w = CanonicalWriter()
        w.raw(magic)
        w.u32(1)
        var bytes = w.bytes
        seed.withUnsafeBytes { bytes.append(contentsOf: $0) }
        macKey.withUnsafeBytes { bytes.append(contentsOf: $0) }
        defer { secureWipe(&bytes) }
        try FileIO.writeAtomically(bytes, to: path, mode: 0o600, exclusive: true)
        return try AuditKey(version: 1, seed: seed, macKey: macKey, origin: origin(vaultId: vaultId))
    }

    static func load(from path: String, vaultId: [UInt8]) throws -> AuditKey {
        guard FileIO.exists(path) else {
            throw VaultError(.configuration, "the vault has no audit key, so nothing can be audited and nothing may be accessed", location: path)
        }
        var bytes = try FileIO.readAll(path, missing: .configuration)
        defer { secureWipe(&bytes) }
        var st = stat()
        if stat(path, &st) == 0 && (st.st_mode & 0o077) != 0 {
            throw VaultError(.permissionDenied, "audit key file is readable by group or others (mode \(String(st.st_mode & 0o777, radix: 8))); run chmod 600", location: path)
        }
        guard bytes.count == fileLength, Array(bytes[0..<8]) == magic else {
            throw VaultError(.configuration, "not a ShardVault audit key file", location: path)
        }
        var r = CanonicalReader(bytes, offset: 8)
        let version = Int(try r.u32("version"))
        return try AuditKey(version: version, seed: SecureBytes(copying: bytes[12..<44]), macKey: SecureBytes(copying: bytes[44..<76]),
                            origin: origin(vaultId: vaultId))
    }

    func mac(_ bytes: UnsafeBufferPointer<UInt8>) throws -> [UInt8] {
        let h = try HMACSHA256(key: macKey)
        h.update(UnsafeRawBufferPointer(bytes))
        return h.finalize()
    }

    /// A small JSON file authenticated with the MAC key: the body line, then the hex
    /// HMAC-SHA256 of `label` followed by the body.
    func authenticatedFile<T: Encodable>(_ value: T, label: String) throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let body = [UInt8](try encoder.encode(value))
        let tag = try (Array(label.utf8) + body).withUnsafeBufferPointer { try mac($0) }
        return body + [0x0A] + Array(Hex.encode(tag).utf8) + [0x0A]
    }

    /// Checks and decodes a file written by `authenticatedFile`; `what` names it in errors.
    func openAuthenticatedFile<T: Decodable>(_ bytes: [UInt8], as type: T.Type, label: String, path: String, what: String) throws -> T {
        guard let newline = bytes.firstIndex(of: 0x0A), bytes.count >= newline + 1 + 64 else {
            throw VaultError(.dataError, "\(what) is malformed or has no MAC", location: path)
        }
        let body = Array(bytes[..<newline])
        let given = Hex.decode(String(decoding: bytes[(newline + 1)...].prefix(64), as: UTF8.self)) ?? []
        let expected = try (Array(label.utf8) + body).withUnsafeBufferPointer { try mac($0) }
        guard ConstantTime.equals(expected, given) else {
            throw VaultError(.dataError, "\(what) does not authenticate under the audit key: it was altered or forged", location: path)
        }
        do { return try JSONDecoder().decode(T.self, from: Data(body)) } catch {
            throw VaultError(.dataError, "\(what) is malformed", location: path, underlying: error)
        }
    }

    /// Signs a checkpoint as a C2SP signed note.
    func sign(_ checkpoint: Checkpoint) throws -> String {
        try SignedNote.sign(text: checkpoint.text, name: verifier.name, seed: seed)
    }

    /// The public key as PEM (SubjectPublicKeyInfo), for `openssl pkeyutl -verify -pubin`.
    public var publicKeyPEM: String { Ed25519.publicKeyPEM(verifier.publicKey) }
}
