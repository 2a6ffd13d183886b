/// An error from the crypto layer. A struct with a code, so new cases do not break callers.
public struct CryptoError: Error, CustomStringConvertible, Sendable, Equatable {
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        let name: String
        public var description: String { name }
        /// Authentication failed: a tag, MAC or commitment did not match.
        public static let authenticationFailed = Code(name: "authentication failed")
        /// A key, nonce or other parameter has a length or value the primitive does not accept.
        public static let invalidParameter = Code(name: "invalid parameter")
        /// The input is malformed: truncated, too long, or of an impossible length.
        public static let malformedInput = Code(name: "malformed input")
        /// The underlying library reported an internal failure.
        public static let libraryFailure = Code(name: "library failure")
        /// The system random generator failed.
        public static let randomFailure = Code(name: "random failure")
    }

    public let code: Code
    public let message: String
    /// Detail reported by the underlying library, if any. Never contains key material.
    public let detail: String?

    public init(_ code: Code, _ message: String, detail: String? = nil) {
        self.code = code
        self.message = message
        self.detail = detail
    }

    public var description: String {
        if let detail, !detail.isEmpty { return "\(code): \(message) (\(detail))" }
        return "\(code): \(message)"
    }
}
