import Foundation
import Testing
@testable import VaultCore

/// The fuzzing entry points run in every test run: over the committed seeds and any saved
/// regression inputs (Fuzz/corpus, Fuzz/regressions), and over pseudo-random and mutated
/// bytes. A crash here fails the whole test run, as it would in the fuzzer.
@Suite("Fuzz targets over seeds, regressions and random bytes")
struct FuzzTargetTests {
    static let fuzzFolder: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.appendingPathComponent("Fuzz").path
    }()

    static func inputs(_ target: String) -> [[UInt8]] {
        var out: [[UInt8]] = []
        for folder in ["corpus", "regressions"] {
            let dir = fuzzFolder + "/" + folder + "/" + target
            for name in (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [] {
                if let data = FileManager.default.contents(atPath: dir + "/" + name) { out.append([UInt8](data)) }
            }
        }
        return out
    }

    @Test("every target returns on its seeds, on their truncations and bit flips, and on random bytes", arguments: FuzzTargets.names)
    func target(_ name: String) {
        var state: UInt64 = 0x5EED
        func next() -> UInt64 { state = state &* 6364136223846793005 &+ 1442695040888963407; return state >> 33 }
        var inputs = Self.inputs(name)
        #expect(!inputs.isEmpty || !["job-spec", "policy", "fhir-resource", "fhir-bundle", "plaintext"].contains(name), "no seeds for \(name)")
        for seed in inputs where !seed.isEmpty {
            for _ in 0..<50 {
                var m = seed
                m[Int(next()) % m.count] ^= UInt8(1 << (next() % 8))
                inputs.append(Array(m.prefix(Int(next()) % (m.count + 1))))
                inputs.append(m)
            }
        }
        for _ in 0..<200 { inputs.append((0..<Int(next() % 300)).map { _ in UInt8(truncatingIfNeeded: next()) }) }
        inputs.append([])
        for input in inputs { input.withUnsafeBytes { FuzzTargets.run(name, $0) } }
    }
}
