import Foundation
import Testing
import VaultCrypto
@testable import VaultCore

/// RFC 6962 / 9162 tree hashing and proofs, against the transparency-dev/merkle vectors.
@Suite("Merkle tree (RFC 6962)")
struct MerkleTreeTests {
    static var merkleDir: String? { CoreTestData.root.map { $0 + "/merkle" } }

    static func jsonFiles(_ sub: String) -> [String] {
        guard let dir = merkleDir.map({ $0 + "/" + sub }), let e = FileManager.default.enumerator(atPath: dir) else { return [] }
        return e.compactMap { $0 as? String }.filter { $0.hasSuffix(".json") }.sorted().map { dir + "/" + $0 }
    }

    /// Base64 hashes; a value that is not valid base64 becomes a non-32-byte hash, which
    /// verification must reject (some vectors carry such garbage on purpose).
    static func hash(_ value: Any?) -> [UInt8] {
        guard let text = value as? String else { return [] }
        return Base64.decode(text) ?? Array(text.utf8)
    }

    /// Runs every vector file of a folder through `check` and expects acceptance exactly
    /// where the file says `wantErr: false`; returns how many were meant to pass.
    static func runVectors(_ sub: String, _ check: ([String: Any], [[UInt8]]) throws -> Void) throws -> (files: Int, valid: Int) {
        let files = jsonFiles(sub)
        var valid = 0
        for file in files {
            let json = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: file))) as? [String: Any])
            let wantErr = json["wantErr"] as? Bool ?? false
            let proof = (json["proof"] as? [Any] ?? []).map { hash($0) }
            let accepted = (try? check(json, proof)) != nil
            #expect(accepted == !wantErr, "\(file): \(json["desc"] ?? "")")
            if !wantErr { valid += 1 }
        }
        return (files.count, valid)
    }

    @Test("every inclusion vector gives the expected outcome (98 files, the failing ones included)",
          .enabled(if: merkleDir != nil, "../shared/testdata is absent: skipped merkle/inclusion"))
    func inclusionVectors() throws {
        let counts = try Self.runVectors("inclusion") { json, proof in
            try MerkleTree.verifyInclusion(index: json["leafIdx"] as? Int ?? -1, treeSize: json["treeSize"] as? Int ?? -1,
                                           leafHash: Self.hash(json["leafHash"]), proof: proof, root: Self.hash(json["root"]))
        }
        #expect(counts.files == 98 && counts.valid == 6)
    }

    @Test("every consistency vector gives the expected outcome (98 files, the failing ones included)",
          .enabled(if: merkleDir != nil, "../shared/testdata is absent: skipped merkle/consistency"))
    func consistencyVectors() throws {
        let counts = try Self.runVectors("consistency") { json, proof in
            try MerkleTree.verifyConsistency(oldSize: json["size1"] as? Int ?? -1, newSize: json["size2"] as? Int ?? -1,
                                             oldRoot: Self.hash(json["root1"]), newRoot: Self.hash(json["root2"]), proof: proof)
        }
        #expect(counts.files == 98 && counts.valid == 6)
    }

    @Test("the reference tree: leaf hashes, roots of sizes 0-8, and generated proofs equal the published ones",
          .enabled(if: merkleDir != nil, "../shared/testdata is absent: skipped merkle/rfc6962_reference_tree.json"))
    func referenceTree() throws {
        let url = URL(fileURLWithPath: Self.merkleDir! + "/rfc6962_reference_tree.json")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any])
        func hex(_ v: Any?) -> [UInt8] { Hex.decode(v as? String ?? "") ?? [] }
        #expect(MerkleTree.emptyRoot == hex(json["emptyTreeRoot"]))
        let leaves = try #require(json["leaves"] as? [[String: Any]])
        let leafHashes = leaves.map { MerkleTree.leafHash(hex($0["data"])) }
        #expect(leafHashes == leaves.map { hex($0["leafHash"]) })
        for entry in try #require(json["roots"] as? [[String: Any]]) {
            let size = try #require(entry["treeSize"] as? Int)
            #expect(MerkleTree.root(leafHashes: Array(leafHashes.prefix(size))) == hex(entry["root"]), "size \(size)")
        }
        for entry in try #require(json["inclusionProofs"] as? [[String: Any]]) {
            let index = try #require(entry["leafIndex"] as? Int), size = try #require(entry["treeSize"] as? Int)
            let expected = (entry["proof"] as? [String] ?? []).map { Hex.decode($0) ?? [] }
            let proof = try MerkleTree.inclusionProof(index: index, leafHashes: Array(leafHashes.prefix(size)))
            #expect(proof == expected, "inclusion \(index) in \(size)")
            try MerkleTree.verifyInclusion(index: index, treeSize: size, leafHash: leafHashes[index], proof: proof, root: hex(entry["root"]))
        }
        for entry in try #require(json["consistencyProofs"] as? [[String: Any]]) {
            let m = try #require(entry["size1"] as? Int), n = try #require(entry["size2"] as? Int)
            let expected = (entry["proof"] as? [String] ?? []).map { Hex.decode($0) ?? [] }
            let proof = try MerkleTree.consistencyProof(oldSize: m, leafHashes: Array(leafHashes.prefix(n)))
            #expect(proof == expected, "consistency \(m) -> \(n)")
            try MerkleTree.verifyConsistency(oldSize: m, newSize: n, oldRoot: hex(entry["root1"]), newRoot: hex(entry["root2"]), proof: proof)
        }
    }

    @Test("generated proofs verify for every leaf and size pair up to 40, and any altered proof fails")
    func generatedProofs() throws {
        let leaves = (0..<40).map { MerkleTree.leafHash([UInt8]("entry \($0)".utf8)) }
        for size in 1...40 {
            let tree = Array(leaves.prefix(size))
            let root = MerkleTree.root(leafHashes: tree)
            for index in 0..<size {
                let proof = try MerkleTree.inclusionProof(index: index, leafHashes: tree)
                try MerkleTree.verifyInclusion(index: index, treeSize: size, leafHash: tree[index], proof: proof, root: root)
                if !proof.isEmpty {
                    var bad = proof
                    bad[bad.count / 2][0] ^= 1
                    #expect(throws: MerkleTree.ProofError.self) {
                        try MerkleTree.verifyInclusion(index: index, treeSize: size, leafHash: tree[index], proof: bad, root: root)
                    }
                }
                #expect(throws: MerkleTree.ProofError.self) {
                    try MerkleTree.verifyInclusion(index: (index + 1) % size == index ? index + 1 : (index + 1) % size, treeSize: size,
                                                   leafHash: tree[index], proof: proof, root: root)
                }
            }
            for old in 1...size {
                let proof = try MerkleTree.consistencyProof(oldSize: old, leafHashes: tree)
                let oldRoot = MerkleTree.root(leafHashes: Array(tree.prefix(old)))
                try MerkleTree.verifyConsistency(oldSize: old, newSize: size, oldRoot: oldRoot, newRoot: root, proof: proof)
                if old < size {
                    // A forked history: the old tree with one leaf changed is not consistent.
                    var forked = Array(tree.prefix(old))
                    forked[old - 1][0] ^= 1
                    #expect(throws: MerkleTree.ProofError.self) {
                        try MerkleTree.verifyConsistency(oldSize: old, newSize: size, oldRoot: MerkleTree.root(leafHashes: forked),
                                                         newRoot: root, proof: proof)
                    }
                }
            }
        }
    }
}
