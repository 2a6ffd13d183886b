import Foundation
import VaultCrypto

/// A key reference: id and version.
public struct KeyRef: Codable, Sendable, Equatable {
    public var id: String
    public var version: Int
}

/// One shard as listed in a manifest.
public struct ManifestShard: Codable, Sendable, Equatable {
    public var index: Int
    public var file: String
    public var size: Int
    public var headerSha256: String
    public var bodySha256: String
    public var dataKeyId: String
    public var kekVersion: Int
    public var signingVersion: Int
    public var records: RecordCounts

    public init(index: Int, file: String, size: Int, headerSha256: String, bodySha256: String, dataKeyId: String,
                kekVersion: Int, signingVersion: Int, records: RecordCounts) {
        self.index = index
        self.file = file
        self.size = size
        self.headerSha256 = headerSha256
        self.bodySha256 = bodySha256
        self.dataKeyId = dataKeyId
        self.kekVersion = kekVersion
        self.signingVersion = signingVersion
        self.records = records
    }
}

/// The signed list of a dataset generation's shards (docs/manifest-format.md).
public struct Manifest: Codable, Sendable, Equatable {
    public static let format = "shardvault.manifest.v1"
    public var format: String
    public var vaultId: String
    public var dataset: String
    public var generation: Int
    public var created: String
    public var schemaId: String
    public var sourceFormat: String
    public var shardCount: Int
    /// SHA-256 of the previous generation's manifest file, or nil for the first.
    public var previousManifestSha256: String?
    public var kek: KeyRef
    public var signing: KeyRef
    public var partition: KeyRef
    public var totals: RecordCounts
    public var shards: [ManifestShard]

    /// Folder of this generation's shards, relative to the dataset folder.
    public var generationDirectory: String { Manifest.generationDirectory(generation) }
    static func generationDirectory(_ generation: Int) -> String { String(format: "g%06d", generation) }
    static func shardFile(_ index: Int) -> String { String(format: "shard-%05d.svs", index) }
}

/// The signature line of a manifest file.
struct ManifestSignature: Codable {
    var alg: String
    var keyId: String
    var keyVersion: Int
    var mac: String
}

public enum ManifestFile {
    public static let name = "manifest.jsonl"

    static func macInput(_ body: [UInt8]) -> [UInt8] {
        var w = CanonicalWriter(label: "shardvault/manifest/v1")
        w.raw(body)
        return w.bytes
    }

    static func encoder() -> JSONEncoder {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return e
    }

    /// Line 1: the manifest as compact JSON with sorted keys. Line 2: its signature.
    static func encode(_ manifest: Manifest, signingKey: SecureBytes) throws -> [UInt8] {
        let body = [UInt8](try encoder().encode(manifest))
        let mac = try HMACSHA256.authenticate(key: signingKey, macInput(body))
        let signature = ManifestSignature(alg: "HMAC-SHA256", keyId: manifest.signing.id, keyVersion: manifest.signing.version, mac: Hex.encode(mac))
        return body + [10] + [UInt8](try encoder().encode(signature)) + [10]
    }

    /// Parses the two lines without checking the signature.
    static func parse(_ bytes: [UInt8], path: String) throws -> (manifest: Manifest, body: [UInt8], signature: ManifestSignature) {
        let lines = bytes.split(separator: 10, omittingEmptySubsequences: false)
        guard lines.count == 3, lines[2].isEmpty else {
            throw VaultError(.dataError, "manifest must be exactly two lines (body, signature)", location: path)
        }
        let body = Array(lines[0])
        do {
            let manifest = try JSONDecoder().decode(Manifest.self, from: Data(body))
            let signature = try JSONDecoder().decode(ManifestSignature.self, from: Data(lines[1]))
            return (manifest, body, signature)
        } catch {
            throw VaultError(.dataError, "manifest is not valid JSON of format \(Manifest.format)", location: path, underlying: error)
        }
    }

    /// Reads and authenticates a manifest with the dataset's signing key.
    public static func load(_ path: String, keyring: Keyring) throws -> Manifest {
        let bytes = try FileIO.readAll(path)
        let (manifest, body, signature) = try parse(bytes, path: path)
        guard manifest.format == Manifest.format else {
            throw VaultError(.dataError, "unsupported manifest format '\(manifest.format)'", location: path)
        }
        guard signature.alg == "HMAC-SHA256", signature.keyId == manifest.signing.id, signature.keyVersion == manifest.signing.version,
              let mac = Hex.decode(signature.mac), mac.count == 32 else {
            throw VaultError(.dataError, "manifest signature line is malformed or names another key", location: path)
        }
        let key = try keyring.material(id: signature.keyId, version: signature.keyVersion)
        let expected = try HMACSHA256.authenticate(key: key, macInput(body))
        guard ConstantTime.equals(expected, mac) else {
            throw VaultError(.dataError, "manifest signature does not verify: the manifest was altered", location: path)
        }
        return manifest
    }
}
