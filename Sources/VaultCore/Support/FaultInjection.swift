import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Test-only crash points: with `SHARDVAULT_CRASH_AT=POINT:N` in the environment, the
/// process kills itself (SIGKILL, as a power cut would stop it) the Nth time it reaches
/// POINT. `sync` is reached after every fsync/fdatasync (each durable step), the other
/// points at named steps of the key rotations. It only ever stops its own process;
/// unset, it does nothing.
public enum FaultInjection {
    static let setting: (point: String, count: Int)? = {
        guard let raw = ProcessInfo.processInfo.environment["SHARDVAULT_CRASH_AT"], let colon = raw.lastIndex(of: ":"),
              let n = Int(raw[raw.index(after: colon)...]), n >= 1 else { return nil }
        return (String(raw[..<colon]), n)
    }()
    static let counter = AtomicCounter()

    static func point(_ name: String) throws {
        guard let setting, setting.point == name else { return }
        if counter.increment() + 1 == setting.count { kill(getpid(), SIGKILL) }
    }
}
