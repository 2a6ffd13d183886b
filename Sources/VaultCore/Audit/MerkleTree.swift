import VaultCrypto

/// RFC 6962 / RFC 9162 Merkle tree hashing and proofs, over SHA-256:
/// leaf = SHA-256(0x00 || data), node = SHA-256(0x01 || left || right), the empty tree
/// hashes to SHA-256(""), and a tree of n leaves splits at the largest power of two < n.
public enum MerkleTree {
    public static let hashLength = 32

    public static func leafHash<B: ContiguousBytes>(_ data: B) -> [UInt8] {
        let digest = try! Digest(.sha256) // context creation fails only when memory is exhausted
        digest.update([0])
        digest.update(data)
        return digest.finalize()
    }

    public static func nodeHash(_ left: [UInt8], _ right: [UInt8]) -> [UInt8] {
        let digest = try! Digest(.sha256)
        digest.update([1])
        digest.update(left)
        digest.update(right)
        return digest.finalize()
    }

    public static var emptyRoot: [UInt8] { Digest.sha256([UInt8]()) }

    /// The root of the tree whose leaf hashes are `leaves`, in one pass with a stack of
    /// at most log2(n) + 1 hashes.
    public static func root(leafHashes leaves: [[UInt8]]) -> [UInt8] {
        guard !leaves.isEmpty else { return emptyRoot }
        var stack: [[UInt8]] = []
        for (i, leaf) in leaves.enumerated() {
            stack.append(leaf)
            var count = i + 1
            while count & 1 == 0 {
                let right = stack.removeLast()
                let left = stack.removeLast()
                stack.append(nodeHash(left, right))
                count >>= 1
            }
        }
        var hash = stack.removeLast()
        while let left = stack.popLast() { hash = nodeHash(left, hash) }
        return hash
    }

    /// The largest power of two strictly less than n (n > 1).
    static func split(_ n: Int) -> Int {
        var k = 1
        while k << 1 < n { k <<= 1 }
        return k
    }

    /// The audit path of leaf `index` in the tree of `leaves` (RFC 9162 2.1.3.1).
    public static func inclusionProof(index: Int, leafHashes leaves: [[UInt8]]) throws -> [[UInt8]] {
        guard index >= 0 && index < leaves.count else {
            throw VaultError(.usage, "leaf index \(index) is outside a tree of size \(leaves.count)")
        }
        return path(index, leaves[...])
    }

    private static func path(_ m: Int, _ d: ArraySlice<[UInt8]>) -> [[UInt8]] {
        let n = d.count
        if n <= 1 { return [] }
        let k = split(n)
        let start = d.startIndex
        if m < k {
            return path(m, d[start..<start + k]) + [root(leafHashes: Array(d[(start + k)...]))]
        }
        return path(m - k, d[(start + k)...]) + [root(leafHashes: Array(d[start..<start + k]))]
    }

    /// The consistency proof from the first `oldSize` leaves to all of `leaves` (RFC 9162 2.1.4.1).
    public static func consistencyProof(oldSize: Int, leafHashes leaves: [[UInt8]]) throws -> [[UInt8]] {
        guard oldSize >= 1 && oldSize <= leaves.count else {
            throw VaultError(.usage, "old size \(oldSize) must be between 1 and the tree size \(leaves.count)")
        }
        if oldSize == leaves.count { return [] }
        return subproof(oldSize, leaves[...], true)
    }

    private static func subproof(_ m: Int, _ d: ArraySlice<[UInt8]>, _ complete: Bool) -> [[UInt8]] {
        let n = d.count
        if m == n { return complete ? [] : [root(leafHashes: Array(d))] }
        let k = split(n)
        let start = d.startIndex
        if m <= k {
            return subproof(m, d[start..<start + k], complete) + [root(leafHashes: Array(d[(start + k)...]))]
        }
        return subproof(m - k, d[(start + k)...], false) + [root(leafHashes: Array(d[start..<start + k]))]
    }

    /// Why a proof was rejected.
    public struct ProofError: Error, CustomStringConvertible, Sendable {
        public let description: String
        init(_ text: String) { description = text }
    }

    /// Verifies an inclusion proof (RFC 9162 2.1.3.2).
    public static func verifyInclusion(index: Int, treeSize: Int, leafHash: [UInt8], proof: [[UInt8]], root: [UInt8]) throws {
        guard index >= 0, treeSize >= 0, index < treeSize else { throw ProofError("leaf index \(index) is not below tree size \(treeSize)") }
        guard leafHash.count == hashLength, root.count == hashLength, proof.allSatisfy({ $0.count == hashLength }) else {
            throw ProofError("a hash is not \(hashLength) bytes")
        }
        var fn = index, sn = treeSize - 1
        var r = leafHash
        for p in proof {
            guard sn != 0 else { throw ProofError("proof is longer than the path") }
            if fn & 1 == 1 || fn == sn {
                r = nodeHash(p, r)
                while fn & 1 == 0 && fn != 0 { fn >>= 1; sn >>= 1 }
            } else {
                r = nodeHash(r, p)
            }
            fn >>= 1
            sn >>= 1
        }
        guard sn == 0 else { throw ProofError("proof is shorter than the path") }
        guard ConstantTime.equals(r, root) else { throw ProofError("computed root does not match") }
    }

    /// Verifies a consistency proof (RFC 9162 2.1.4.2). A proof from size 0 is refused.
    public static func verifyConsistency(oldSize: Int, newSize: Int, oldRoot: [UInt8], newRoot: [UInt8], proof: [[UInt8]]) throws {
        guard oldSize >= 1 else { throw ProofError("consistency from an empty tree is not proved") }
        guard oldSize <= newSize else { throw ProofError("old size \(oldSize) exceeds new size \(newSize)") }
        if oldSize == newSize {
            // Equal sizes: the proof is empty and the roots are the same bytes.
            guard proof.isEmpty else { throw ProofError("proof between equal sizes must be empty") }
            guard ConstantTime.equals(oldRoot, newRoot) else { throw ProofError("roots of equal sizes differ") }
            return
        }
        guard oldRoot.count == hashLength, newRoot.count == hashLength, proof.allSatisfy({ $0.count == hashLength }) else {
            throw ProofError("a hash is not \(hashLength) bytes")
        }
        var path = proof
        if oldSize & (oldSize - 1) == 0 { path.insert(oldRoot, at: 0) }
        guard !path.isEmpty else { throw ProofError("proof is empty") }
        var fn = oldSize - 1, sn = newSize - 1
        while fn & 1 == 1 { fn >>= 1; sn >>= 1 }
        var fr = path[0], sr = path[0]
        for c in path.dropFirst() {
            guard sn != 0 else { throw ProofError("proof is longer than needed") }
            if fn & 1 == 1 || fn == sn {
                fr = nodeHash(c, fr)
                sr = nodeHash(c, sr)
                while fn & 1 == 0 && fn != 0 { fn >>= 1; sn >>= 1 }
            } else {
                sr = nodeHash(sr, c)
            }
            fn >>= 1
            sn >>= 1
        }
        guard sn == 0 else { throw ProofError("proof is shorter than needed") }
        guard ConstantTime.equals(fr, oldRoot) else { throw ProofError("old root does not match") }
        guard ConstantTime.equals(sr, newRoot) else { throw ProofError("new root does not match") }
    }
}

/// The right edge of an RFC 6962 tree: the roots of its perfect subtrees, largest first
/// (one per set bit of the size). Enough to append leaves and compute the root at every
/// size without keeping the leaves.
public struct MerkleFrontier: Sendable, Equatable {
    public private(set) var size: Int
    public private(set) var peaks: [[UInt8]]

    public init() {
        size = 0
        peaks = []
    }

    /// A frontier from saved peaks; nil when their number does not match the size.
    public init?(size: Int, peaks: [[UInt8]]) {
        guard size >= 0, size.nonzeroBitCount == peaks.count, peaks.allSatisfy({ $0.count == MerkleTree.hashLength }) else { return nil }
        self.size = size
        self.peaks = peaks
    }

    public mutating func append(leafHash: [UInt8]) {
        peaks.append(leafHash)
        var n = size
        while n & 1 == 1 {
            let right = peaks.removeLast()
            let left = peaks.removeLast()
            peaks.append(MerkleTree.nodeHash(left, right))
            n >>= 1
        }
        size += 1
    }

    public var root: [UInt8] {
        guard var hash = peaks.last else { return MerkleTree.emptyRoot }
        for left in peaks.dropLast().reversed() { hash = MerkleTree.nodeHash(left, hash) }
        return hash
    }
}
