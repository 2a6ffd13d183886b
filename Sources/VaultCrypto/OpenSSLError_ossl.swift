internal import COpenSSL

/// The one place where OpenSSL's error queue is read and turned into a `CryptoError`.
enum OpenSSLError {
    /// Drains the thread's OpenSSL error queue into a single readable string.
    static func drain() -> String {
        var parts: [String] = []
        while true {
            let code = ERR_get_error()
            if code == 0 { break }
            var buffer = [CChar](repeating: 0, count: 256)
            ERR_error_string_n(code, &buffer, buffer.count)
            let text = buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
            parts.append(text)
        }
        return parts.joined(separator: "; ")
    }

    /// Builds an error for a failed OpenSSL call, consuming the error queue.
    static func failure(_ code: CryptoError.Code, _ message: String) -> CryptoError {
        CryptoError(code, message, detail: drain())
    }

    /// Clears the error queue after an expected failure (such as a tag mismatch).
    static func clear() {
        ERR_clear_error()
    }
}

/// Checks the result of an OpenSSL call that returns 1 on success.
@inline(__always)
func ossl(_ result: Int32, _ code: CryptoError.Code = .libraryFailure, _ what: @autoclosure () -> String) throws {
    if result != 1 { throw OpenSSLError.failure(code, what()) }
}

@inline(__always)
func ossl(_ result: Int32, _ what: @autoclosure () -> String) throws {
    if result != 1 { throw OpenSSLError.failure(.libraryFailure, what()) }
}
