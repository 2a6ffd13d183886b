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

    /// Splits the file into its two lines and decodes the signature line.
    static func split(_ bytes: [UInt8], path: String) throws -> (body: [UInt8], signature: ManifestSignature) {
        let lines = bytes.split(separator: 10, omittingEmptySubsequences: false)
        guard lines.count == 3, lines[2].isEmpty else {
            throw VaultError(.dataError, "manifest must be exactly two lines (body, signature)", location: path)
        }
        do {
            return (Array(lines[0]), try JSONDecoder().decode(ManifestSignature.self, from: Data(lines[1])))
        } catch {
            throw VaultError(.dataError, "manifest signature line is not valid JSON", location: path, underlying: error)
        }
    }

    /// Reads a manifest, checks its signature under `dataset`'s signing key (the key id is
    /// derived from the dataset, never taken from the file) before parsing the body, then
    /// checks that the body describes that dataset of this vault and is self-consistent.
    public static func load(_ path: String, dataset: String, vault: Vault) throws -> Manifest {
        try load(bytes: try FileIO.readAll(path), path: path, dataset: dataset, vault: vault)
    }

    /// As `load(_:dataset:vault:)`, for manifest bytes already read from `path`.
    static func load(bytes: [UInt8], path: String, dataset: String, vault: Vault) throws -> Manifest {
        let (body, signature) = try split(bytes, path: path)
        let signingId = Keyring.keyId(dataset, .signing)
        guard signature.alg == "HMAC-SHA256", signature.keyId == signingId, let mac = Hex.decode(signature.mac), mac.count == 32 else {
            throw VaultError(.dataError, "manifest signature line is malformed or names a key other than \(signingId)", location: path)
        }
        let key = try vault.keyring.material(dataset: dataset, kind: .signing, version: signature.keyVersion)
        let expected = try HMACSHA256.authenticate(key: key, macInput(body))
        guard ConstantTime.equals(expected, mac) else {
            throw VaultError(.dataError, "manifest signature does not verify: the manifest was altered or belongs elsewhere", location: path)
        }
        let manifest: Manifest
        do { manifest = try JSONDecoder().decode(Manifest.self, from: Data(body)) } catch {
            throw VaultError(.dataError, "manifest is not valid JSON of format \(Manifest.format)", location: path, underlying: error)
        }
        func bad(_ what: String) -> VaultError { VaultError(.dataError, "manifest \(what)", location: path) }
        guard manifest.format == Manifest.format else { throw bad("has unsupported format '\(manifest.format)'") }
        guard manifest.dataset == dataset, manifest.vaultId == vault.idHex else {
            throw bad("describes dataset '\(manifest.dataset)' of vault \(manifest.vaultId), not '\(dataset)' of this vault")
        }
        guard manifest.signing == KeyRef(id: signingId, version: signature.keyVersion),
              manifest.kek.id == Keyring.keyId(dataset, .kek), manifest.partition.id == Keyring.keyId(dataset, .partition) else {
            throw bad("names keys that are not this dataset's")
        }
        guard ColumnarCodec.supportedSchemas.contains(manifest.schemaId) else { throw bad("has unknown schema '\(manifest.schemaId)'") }
        guard manifest.generation >= 1, (1...65_535).contains(manifest.shardCount), manifest.shards.count == manifest.shardCount else {
            throw bad("has an impossible generation or shard count")
        }
        for (i, shard) in manifest.shards.enumerated() {
            guard shard.index == i, shard.file == Manifest.shardFile(i), shard.size > 0, shard.kekVersion >= 1, shard.signingVersion >= 1 else {
                throw bad("shard entry \(i) is inconsistent with its position")
            }
        }
        guard manifest.shards.reduce(RecordCounts(), { $0 + $1.records }) == manifest.totals else {
            throw bad("totals differ from the sum of its shards")
        }
        return manifest
    }
}
