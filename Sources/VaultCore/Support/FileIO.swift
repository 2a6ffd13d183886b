import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Crash-safe file writes: write to a temporary file in the same folder, fsync it,
/// rename it over the target, fsync the folder. A reader sees the old file or the new
/// one, never half of one.
enum FileIO {
    static func fsyncDirectory(_ directory: String) throws {
        let fd = open(directory, O_RDONLY | O_DIRECTORY)
        guard fd >= 0 else { throw VaultError.system(.ioError, "cannot open folder to sync it", path: directory, errno: errno) }
        defer { close(fd) }
        guard fsync(fd) == 0 else { throw VaultError.system(.ioError, "fsync of folder failed", path: directory, errno: errno) }
        try FaultInjection.point("sync")
    }

    /// Writes `bytes` to `path` atomically with the given mode.
    static func writeAtomically(_ bytes: [UInt8], to path: String, mode: mode_t = 0o644, exclusive: Bool = false) throws {
        if exclusive && access(path, F_OK) == 0 {
            throw VaultError(.cannotCreate, "refusing to overwrite an existing file", location: path)
        }
        let temporary = try writeTemporary(bytes, beside: path, mode: mode)
        if exclusive {
            // link() fails if the target exists, so two writers cannot both win.
            guard link(temporary, path) == 0 else {
                let err = errno
                unlink(temporary)
                throw VaultError.system(.cannotCreate, "cannot create file", path: path, errno: err)
            }
            unlink(temporary)
        } else {
            try commitTemporary(temporary, to: path)
        }
        try fsyncDirectory((path as NSString).deletingLastPathComponent)
    }

    /// Writes `bytes` to a new temporary file in the folder of `path` and fsyncs it.
    /// Returns the temporary's path; nothing is visible under `path` yet.
    static func writeTemporary(_ bytes: [UInt8], beside path: String, mode: mode_t) throws -> String {
        let temporary = path + ".tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        guard fd >= 0 else { throw VaultError.system(.cannotCreate, "cannot create file", path: temporary, errno: errno) }
        do {
            try writeAll(fd: fd, bytes, path: temporary)
            guard fsync(fd) == 0 else { throw VaultError.system(.ioError, "fsync failed", path: temporary, errno: errno) }
            try FaultInjection.point("sync")
        } catch {
            close(fd)
            unlink(temporary)
            throw error
        }
        close(fd)
        return temporary
    }

    /// Renames a temporary written by `writeTemporary` over `path`: the commit point.
    /// On failure the temporary is removed and `path` is unchanged. The caller fsyncs the
    /// folder afterwards; a failure there does not undo the rename.
    static func commitTemporary(_ temporary: String, to path: String) throws {
        guard rename(temporary, path) == 0 else {
            let err = errno
            unlink(temporary)
            throw VaultError.system(.ioError, "rename failed", path: path, errno: err)
        }
    }

    static func writeAll(fd: Int32, _ bytes: [UInt8], path: String) throws {
        try bytes.withUnsafeBytes { try writeAll(fd: fd, $0, path: path) }
    }

    static func writeAll(fd: Int32, _ bytes: UnsafeRawBufferPointer, path: String) throws {
        var offset = 0
        while offset < bytes.count {
            let n = write(fd, bytes.baseAddress! + offset, bytes.count - offset)
            if n < 0 {
                if errno == EINTR { continue }
                throw VaultError.system(.ioError, "write failed", path: path, errno: errno)
            }
            offset += n
        }
    }

    static func readAll(_ path: String, missing: VaultError.Code = .noInput) throws -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            let code: VaultError.Code = errno == ENOENT ? missing : (errno == EACCES ? .permissionDenied : .ioError)
            throw VaultError.system(code, "cannot open", path: path, errno: errno)
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw VaultError.system(.ioError, "cannot stat", path: path, errno: errno) }
        var out = [UInt8](repeating: 0, count: Int(st.st_size))
        var offset = 0
        try out.withUnsafeMutableBytes { buffer in
            while offset < buffer.count {
                let n = read(fd, buffer.baseAddress! + offset, buffer.count - offset)
                if n < 0 {
                    if errno == EINTR { continue }
                    throw VaultError.system(.ioError, "read failed", path: path, errno: errno)
                }
                if n == 0 { break }
                offset += n
            }
        }
        if offset < out.count { out.removeSubrange(offset...) }
        return out
    }

    static func exists(_ path: String) -> Bool { access(path, F_OK) == 0 }

    static func size(_ path: String) -> Int {
        var st = stat()
        return stat(path, &st) == 0 ? Int(st.st_size) : 0
    }

    static func isDirectory(_ path: String) -> Bool {
        var st = stat()
        return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
    }

    static func makeDirectory(_ path: String, mode: mode_t = 0o755) throws {
        if isDirectory(path) { return }
        guard mkdir(path, mode) == 0 || errno == EEXIST else {
            throw VaultError.system(.cannotCreate, "cannot create folder", path: path, errno: errno)
        }
    }

    static func listDirectory(_ path: String) throws -> [String] {
        do {
            return try FileManager.default.contentsOfDirectory(atPath: path).sorted()
        } catch {
            throw VaultError(.noInput, "cannot list folder", location: path, underlying: error)
        }
    }

    static func removeTree(_ path: String) {
        try? FileManager.default.removeItem(atPath: path)
    }
}

/// A buffered, append-only file writer over a raw descriptor.
final class BufferedFileWriter {
    let path: String
    private let fd: Int32
    private var buffer: [UInt8] = []
    private let capacity: Int
    private(set) var bytesWritten: Int = 0
    private var closed = false

    init(creating path: String, mode: mode_t = 0o600, capacity: Int = 1 << 20) throws {
        self.path = path
        self.capacity = capacity
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode)
        guard fd >= 0 else { throw VaultError.system(.cannotCreate, "cannot create file", path: path, errno: errno) }
        buffer.reserveCapacity(capacity)
    }

    deinit { if !closed { close(fd) } }

    func write(_ bytes: UnsafeRawBufferPointer) throws {
        if buffer.count + bytes.count > capacity { try flush() }
        if bytes.count >= capacity {
            try FileIO.writeAll(fd: fd, bytes, path: path)
        } else {
            buffer.append(contentsOf: bytes)
        }
        bytesWritten += bytes.count
    }

    func write(_ bytes: [UInt8]) throws { try bytes.withUnsafeBytes { try write($0) } }

    func flush() throws {
        guard !buffer.isEmpty else { return }
        try FileIO.writeAll(fd: fd, buffer, path: path)
        buffer.removeAll(keepingCapacity: true)
    }

    /// Writes bytes at an absolute offset (after flushing), for fixed-size headers.
    func writeAt(_ bytes: [UInt8], offset: off_t) throws {
        try flush()
        let n = bytes.withUnsafeBytes { pwrite(fd, $0.baseAddress!, $0.count, offset) }
        guard n == bytes.count else { throw VaultError.system(.ioError, "pwrite failed", path: path, errno: errno) }
    }

    /// Flushes, fsyncs and closes.
    func finish() throws {
        try flush()
        guard fsync(fd) == 0 else { throw VaultError.system(.ioError, "fsync failed", path: path, errno: errno) }
        try FaultInjection.point("sync")
        close(fd)
        closed = true
    }
}
