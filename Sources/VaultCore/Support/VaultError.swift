/// An error from the vault: a code that maps to a sysexits exit status, a message that
/// says what is wrong, and where (file, line, field, shard), when known.
public struct VaultError: Error, CustomStringConvertible, Sendable {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        public let name: String
        /// The sysexits(3) status the command-line tool exits with.
        public let exitStatus: Int32
        public var description: String { name }

        public static let usage = Code(name: "usage", exitStatus: 64)
        /// Bad input data, or a failed verification.
        public static let dataError = Code(name: "data error", exitStatus: 65)
        public static let noInput = Code(name: "missing input", exitStatus: 66)
        public static let cannotCreate = Code(name: "cannot create", exitStatus: 73)
        public static let ioError = Code(name: "I/O error", exitStatus: 74)
        /// The audit log cannot be written, so the access was refused.
        public static let auditUnavailable = Code(name: "audit log unavailable", exitStatus: 74)
        public static let permissionDenied = Code(name: "permission denied", exitStatus: 77)
        public static let configuration = Code(name: "configuration error", exitStatus: 78)
        public static let software = Code(name: "internal error", exitStatus: 70)
    }

    public let code: Code
    public let message: String
    /// Where: a file path, optionally with a line and field, or a shard name.
    public let location: String?
    public let underlying: String?

    public init(_ code: Code, _ message: String, location: String? = nil, underlying: (any Error)? = nil) {
        self.code = code
        self.message = message
        self.location = location
        self.underlying = underlying.map { String(describing: $0) }
    }

    public var description: String {
        var text = location.map { "\($0): \(message)" } ?? message
        if let underlying { text += " (\(underlying))" }
        return text
    }

    /// A location of the form `file:line: field 'NAME'`.
    public static func at(_ file: String, line: Int? = nil, field: String? = nil) -> String {
        var text = file
        if let line { text += ":\(line)" }
        if let field { text += " field '\(field)'" }
        return text
    }
}

extension VaultError {
    /// Wraps a system call failure with errno's text.
    static func system(_ code: Code, _ what: String, path: String, errno err: Int32) -> VaultError {
        VaultError(code, "\(what): \(String(cString: strerror(err)))", location: path)
    }
}

#if canImport(Glibc)
import Glibc
#endif
