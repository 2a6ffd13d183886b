import Foundation
import Testing

/// Locates the shared test data (`../shared/testdata` beside the package, found by walking
/// up from this file; the environment variable `SHARDVAULT_TESTDATA` overrides). The data
/// is read in place and never copied into the project.
enum TestData {
    /// The test data folder, or nil when it is not present.
    static let directory: URL? = {
        let manager = FileManager.default
        if let override = ProcessInfo.processInfo.environment["SHARDVAULT_TESTDATA"] {
            let url = URL(fileURLWithPath: override)
            return manager.fileExists(atPath: url.path) ? url : nil
        }
        var folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        while folder.path != "/" {
            let candidate = folder.appendingPathComponent("shared/testdata")
            if manager.fileExists(atPath: candidate.path) { return candidate }
            folder.deleteLastPathComponent()
        }
        return nil
    }()

    /// The file at `relative` inside the test data folder, or nil when it is absent.
    static func url(_ relative: String) -> URL? {
        guard let file = directory?.appendingPathComponent(relative),
              FileManager.default.fileExists(atPath: file.path) else { return nil }
        return file
    }

    /// The file at `relative`; when it is absent the calling test is cancelled (reported as
    /// skipped) with a message naming the file.
    static func require(_ relative: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> URL {
        guard let file = url(relative) else {
            try Test.cancel("skipped: test data file ../shared/testdata/\(relative) is not present", sourceLocation: sourceLocation)
        }
        return file
    }
}
