internal import COpenSSL

/// Secret bytes that wipe themselves when released and never print.
///
/// Keys, data keys and derived secrets live in this type. It compares in constant time,
/// has no `description` that shows its contents, and clears its memory with
/// `OPENSSL_cleanse` in `deinit`.
public final class SecureBytes: @unchecked Sendable {
    // Immutable after initialisation except through `withUnsafeMutableBytes`, which
    // callers use only while they own the value exclusively; hence @unchecked Sendable.
    private let storage: UnsafeMutableRawBufferPointer
    /// The logical length; the allocation is at least one byte so that it is never empty.
    public let count: Int

    /// `count` zero bytes.
    public init(zeroedCount count: Int) {
        storage = UnsafeMutableRawBufferPointer.allocate(byteCount: Swift.max(count, 1), alignment: 16)
        storage.initializeMemory(as: UInt8.self, repeating: 0)
        self.count = count
    }

    /// Copies `bytes`. The caller should wipe its own copy where it can.
    public convenience init<Bytes: Sequence>(copying bytes: Bytes) where Bytes.Element == UInt8 {
        var array = Array(bytes)
        defer { secureWipe(&array) }
        self.init(zeroedCount: array.count)
        array.withUnsafeBytes { source in
            if source.count > 0 { storage.baseAddress!.copyMemory(from: source.baseAddress!, byteCount: source.count) }
        }
    }

    /// `count` bytes from the system CSPRNG.
    public static func random(count: Int) throws -> SecureBytes {
        let bytes = SecureBytes(zeroedCount: count)
        try bytes.withUnsafeMutableBytes { try SystemRandom.fill($0) }
        return bytes
    }

    deinit {
        OPENSSL_cleanse(storage.baseAddress, storage.count)
        storage.deallocate()
    }

    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeRawBufferPointer(rebasing: storage[0..<count]))
    }

    public func withUnsafeMutableBytes<R>(_ body: (UnsafeMutableRawBufferPointer) throws -> R) rethrows -> R {
        try body(UnsafeMutableRawBufferPointer(rebasing: storage[0..<count]))
    }

    /// A copy of a sub-range, as new secret bytes.
    public func slice(_ range: Range<Int>) -> SecureBytes {
        precondition(range.lowerBound >= 0 && range.upperBound <= count, "slice out of bounds")
        let out = SecureBytes(zeroedCount: range.count)
        withUnsafeBytes { src in
            out.withUnsafeMutableBytes { dst in
                if range.count > 0 { dst.baseAddress!.copyMemory(from: src.baseAddress! + range.lowerBound, byteCount: range.count) }
            }
        }
        return out
    }

    /// Exposes the bytes as an array. Only for writing wrapped forms or test comparisons;
    /// the caller owns wiping the copy.
    public func unsafeExportedBytes() -> [UInt8] {
        withUnsafeBytes { Array($0) }
    }

    /// Constant-time equality.
    public func constantTimeEquals(_ other: SecureBytes) -> Bool {
        withUnsafeBytes { a in other.withUnsafeBytes { b in ConstantTime.equals(a, b) } }
    }
}

extension SecureBytes: CustomStringConvertible, CustomDebugStringConvertible {
    public var description: String { "SecureBytes(\(count) bytes, redacted)" }
    public var debugDescription: String { description }
}

/// Constant-time comparison of byte strings (for MACs, tags and commitments).
public enum ConstantTime {
    /// True when both buffers have the same length and the same contents. The time taken
    /// depends only on the length, not on where the buffers differ.
    public static func equals(_ a: UnsafeRawBufferPointer, _ b: UnsafeRawBufferPointer) -> Bool {
        guard a.count == b.count else { return false }
        if a.count == 0 { return true }
        return CRYPTO_memcmp(a.baseAddress, b.baseAddress, a.count) == 0
    }

    public static func equals<A: ContiguousBytes, B: ContiguousBytes>(_ a: A, _ b: B) -> Bool {
        a.withUnsafeBytes { pa in b.withUnsafeBytes { pb in equals(pa, pb) } }
    }
}

/// Byte containers that expose contiguous storage (arrays, slices).
public protocol ContiguousBytes {
    func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R
}
extension Array: ContiguousBytes where Element == UInt8 {}
extension ArraySlice: ContiguousBytes where Element == UInt8 {}
extension SecureBytes: ContiguousBytes {}
extension UnsafeRawBufferPointer: ContiguousBytes {
    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R { try body(self) }
}

/// Wipes an array of bytes in place (best effort for non-secret-typed temporaries).
public func secureWipe(_ bytes: inout [UInt8]) {
    bytes.withUnsafeMutableBytes { OPENSSL_cleanse($0.baseAddress, $0.count) }
}

/// The system CSPRNG (OpenSSL's DRBG seeded from the kernel).
public enum SystemRandom {
    public static func fill(_ buffer: UnsafeMutableRawBufferPointer) throws {
        guard buffer.count > 0 else { return }
        try ossl(RAND_bytes(buffer.baseAddress!.assumingMemoryBound(to: UInt8.self), Int32(buffer.count)),
                 .randomFailure, "RAND_bytes failed")
    }

    public static func bytes(_ count: Int) throws -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        try out.withUnsafeMutableBytes { try fill($0) }
        return out
    }
}

/// Wipes a region of memory that held secrets.
public func secureZero(_ buffer: UnsafeMutableRawBufferPointer) {
    guard buffer.count > 0 else { return }
    OPENSSL_cleanse(buffer.baseAddress, buffer.count)
}
