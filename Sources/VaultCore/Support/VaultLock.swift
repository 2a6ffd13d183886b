#if canImport(Glibc)
import Glibc
#endif

/// An advisory lock on a vault (`flock` on `keys/.lock`): commands that change the vault
/// take it exclusively, readers take it shared, so a reader never sees a generation
/// being replaced and two writers never interleave. Released when the value is released
/// or the process ends.
public final class VaultLock {
    public enum Mode: Sendable { case shared, exclusive }
    private let fd: Int32

    /// Waits for the lock. Fails if the lock file cannot be opened.
    public init(layout: VaultLayout, mode: Mode) throws {
        let path = layout.keys + "/.lock"
        fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw VaultError.system(.ioError, "cannot open the vault lock", path: path, errno: errno) }
        while flock(fd, mode == .exclusive ? LOCK_EX : LOCK_SH) != 0 {
            if errno == EINTR { continue }
            let err = errno
            close(fd)
            throw VaultError.system(.ioError, "cannot lock the vault", path: path, errno: err)
        }
    }

    deinit { close(fd) }
}
