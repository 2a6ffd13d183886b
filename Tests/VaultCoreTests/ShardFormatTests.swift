import Foundation
import Testing
import VaultCrypto
@testable import VaultCore

@Suite("Shard format")
struct ShardFormatTests {
    static func sealSample(in dir: String, plaintext: [UInt8], schemaId: String = ColumnarCodec.schemaId) throws -> (SealedShardInfo, ShardExpectation, SecureBytes, SecureBytes) {
        let kek = try SecureBytes.random(count: 32)
        let signing = try SecureBytes.random(count: 32)
        let vaultId = [UInt8](repeating: 7, count: 16)
        let path = dir + "/" + Manifest.shardFile(0)
        let info = try plaintext.withUnsafeBytes {
            try ShardSealer.seal(plaintext: $0, to: path, vaultId: vaultId, dataset: "ds", generation: 1, shardIndex: 0, shardCount: 1,
                                 schemaId: schemaId, kek: ("ds/kek", 1, kek), signing: ("ds/signing", 1, signing))
        }
        let entry = ManifestShard(index: 0, file: Manifest.shardFile(0), size: info.size, headerSha256: Hex.encode(info.headerSha256),
                                  bodySha256: Hex.encode(info.bodySha256), dataKeyId: Hex.encode(info.header.dataKeyId),
                                  kekVersion: 1, signingVersion: 1, records: try DecodedShard.decode(plaintext.withUnsafeBytes { $0 }).counts)
        return (info, ShardExpectation(vaultId: vaultId, dataset: "ds", generation: 1, shardCount: 1, entry: entry, schemaId: schemaId), kek, signing)
    }

    static func samplePlaintext(patients: Int) -> [UInt8] {
        var tables = ShardTables()
        for i in 0..<patients {
            let p = [UInt8](repeating: UInt8(i & 0xff), count: 15) + [UInt8(i >> 8)]
            tables.addPatient(.init(pseudonym: p, birthDate: Int32(i), deathDate: Absent.date, sex: i % 2 == 0 ? "male" : "female",
                                    race: "white", ethnicity: "nonhispanic", state: "Utah"))
            for j in 0..<20 {
                _ = tables.add(.observation(pseudonym: p, time: Int64(j), category: "vital-signs", code: "39156-5", value: Double(j) + 0.5,
                                            unit: "kg/m2", text: ""))
            }
        }
        return tables.encode()
    }

    @Test("a sealed shard verifies, decrypts and decodes to the same records")
    func roundTrip() throws {
        let dir = TemporaryDirectory()
        let plaintext = Self.samplePlaintext(patients: 200)
        let (info, expected, kek, signing) = try Self.sealSample(in: dir.path, plaintext: plaintext)
        #expect(info.size == 4096 + ChunkedEncryption.ciphertextLength(plaintextLength: plaintext.count) + 80)
        let path = dir.path + "/" + expected.entry.file
        try ShardReader.verifySignature(path: path, expected: expected, signingKey: signing)
        let decoded = try ShardReader.decrypt(path: path, expected: expected, kek: kek)
        #expect(decoded.counts.patients == 200)
        #expect(decoded.counts.observations == 4000)
        guard case .float64(let values)? = decoded.tables[.observations]?[4] else { Issue.record("value column missing"); return }
        #expect(values.prefix(3) == [0.5, 1.5, 2.5])
    }

    @Test("flipping any single byte of a shard is detected by verify")
    func singleByteFlips() throws {
        let dir = TemporaryDirectory()
        let (_, expected, kek, signing) = try Self.sealSample(in: dir.path, plaintext: Self.samplePlaintext(patients: 60))
        let path = dir.path + "/" + expected.entry.file
        let original = try FileIO.readAll(path)
        // Every byte of the preamble, the header and the first padding bytes, every trailer
        // byte, the chunk header, and a stride through the body.
        var positions = Set(0..<400)
        positions.formUnion((original.count - 80)..<original.count)
        positions.formUnion(4096..<(4096 + 56 + 32))
        positions.formUnion(stride(from: 4096, to: original.count - 80, by: 97))
        positions.insert(4095)
        var accepted: [Int] = []
        for position in positions.sorted() {
            var mutated = original
            mutated[position] ^= 0x01
            try Data(mutated).write(to: URL(fileURLWithPath: path))
            do {
                try ShardReader.verifySignature(path: path, expected: expected, signingKey: signing)
                accepted.append(position)
            } catch let error as VaultError {
                #expect(error.code == .dataError)
                #expect(error.location == path, "the error must name the shard")
            }
        }
        #expect(accepted.isEmpty, "flips accepted at offsets \(accepted.prefix(10))")
        // Deep decryption alone also rejects body flips (without the signature check).
        var mutated = original
        mutated[4096 + 56 + 100] ^= 0x80
        try Data(mutated).write(to: URL(fileURLWithPath: path))
        #expect(throws: VaultError.self) { try ShardReader.decrypt(path: path, expected: expected, kek: kek) }
    }

    @Test("truncation and appended bytes are detected")
    func truncationAndExtension() throws {
        let dir = TemporaryDirectory()
        let (_, expected, _, signing) = try Self.sealSample(in: dir.path, plaintext: Self.samplePlaintext(patients: 40))
        let path = dir.path + "/" + expected.entry.file
        let original = try FileIO.readAll(path)
        let chunkBoundaries = stride(from: 4096 + 56, to: original.count - 80, by: ChunkedEncryption.sealedChunkSize).flatMap { [$0 - 1, $0, $0 + 1] }
        for length in [0, 10, 4095, 4096, 4097, original.count - 81, original.count - 80, original.count - 1] + chunkBoundaries where length < original.count && length >= 0 {
            try Data(original[0..<length]).write(to: URL(fileURLWithPath: path))
            #expect(throws: VaultError.self, "truncated to \(length)") { try ShardReader.verifySignature(path: path, expected: expected, signingKey: signing) }
        }
        for extra in [[UInt8](repeating: 0, count: 1), [UInt8](repeating: 0xAB, count: 16400)] {
            try Data(original + extra).write(to: URL(fileURLWithPath: path))
            #expect(throws: VaultError.self) { try ShardReader.verifySignature(path: path, expected: expected, signingKey: signing) }
        }
    }

    @Test("a wrong signing key or a wrong KEK is rejected")
    func wrongKeys() throws {
        let dir = TemporaryDirectory()
        let (_, expected, _, _) = try Self.sealSample(in: dir.path, plaintext: Self.samplePlaintext(patients: 5))
        let path = dir.path + "/" + expected.entry.file
        #expect(throws: VaultError.self) { try ShardReader.verifySignature(path: path, expected: expected, signingKey: try SecureBytes.random(count: 32)) }
        #expect(throws: VaultError.self) { _ = try ShardReader.decrypt(path: path, expected: expected, kek: try SecureBytes.random(count: 32)) }
    }

    @Test("a shard presented as another index, generation or dataset is rejected (wrong context)")
    func wrongContext() throws {
        let dir = TemporaryDirectory()
        let (_, expected, kek, signing) = try Self.sealSample(in: dir.path, plaintext: Self.samplePlaintext(patients: 5))
        let path = dir.path + "/" + expected.entry.file
        var other = expected
        other.generation = 2
        #expect(throws: VaultError.self) { try ShardReader.verifySignature(path: path, expected: other, signingKey: signing) }
        #expect(throws: VaultError.self) { _ = try ShardReader.decrypt(path: path, expected: other, kek: kek) }
        other = expected
        other.dataset = "other"
        #expect(throws: VaultError.self) { _ = try ShardReader.decrypt(path: path, expected: other, kek: kek) }
    }

    @Test("header canonical encoding round-trips and padding must be zero")
    func headerEncoding() throws {
        let header = ShardHeader(vaultId: Array(repeating: 1, count: 16), dataset: "d", generation: 3, shardIndex: 2, shardCount: 9,
                                 schemaId: ColumnarCodec.schemaId, dataKeyId: Array(repeating: 2, count: 16), kekId: "d/kek", kekVersion: 4,
                                 signingKeyId: "d/signing", signingVersion: 5, wrapAlgorithm: 1, wrappedDEK: Array(repeating: 9, count: 60))
        var block = header.block()
        #expect(block.count == 4096)
        #expect(try ShardHeader.parse(block: block) == header)
        block[4000] = 1
        #expect(throws: VaultError.self) { try ShardHeader.parse(block: block) }
    }
}
