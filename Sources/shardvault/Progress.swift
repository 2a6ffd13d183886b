import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A one-line progress display on standard error, redrawn in place, shown only when
/// standard error is a terminal (never in pipes, logs or CI output) and `TERM` is not
/// `dumb`. It shows counts and sizes only, never data.
final class TerminalProgress: @unchecked Sendable {
    // Mutable state is accessed only under `lock`.
    private let lock = NSLock()
    private let label: String
    private let started = Date()
    private var lastDraw = Date.distantPast
    private var drawn = false
    let enabled: Bool

    init(_ label: String, enabled: Bool = TerminalProgress.terminal) {
        self.label = label
        self.enabled = enabled
    }

    static var terminal: Bool {
        isatty(STDERR_FILENO) == 1 && ProcessInfo.processInfo.environment["TERM"] != "dumb"
    }

    /// Redraws at most ten times a second, and always for the last step.
    func update(done: Int, total: Int, bytes: Int, unit: String = "shards") {
        guard enabled else { return }
        lock.withLock {
            let now = Date()
            guard done == total || now.timeIntervalSince(lastDraw) >= 0.1 else { return }
            lastDraw = now
            let seconds = now.timeIntervalSince(started)
            let percent = total > 0 ? done * 100 / total : 100
            let rate = seconds > 0 ? Double(bytes) / 1e6 / seconds : 0
            let line = String(format: "%@: %d/%d %@  %3d%%  %@  %.0f MB/s  %.1f s", label, done, total, unit, percent,
                              Console.bytes(bytes), rate, seconds)
            FileHandle.standardError.write(Data(("\r\u{1B}[2K" + line).utf8))
            drawn = true
        }
    }

    /// Clears the line, so that what follows starts on a clean one.
    func finish() {
        guard enabled else { return }
        lock.withLock {
            if drawn { FileHandle.standardError.write(Data("\r\u{1B}[2K".utf8)) }
            drawn = false
        }
    }
}
