internal import COpenSSL
#if canImport(Glibc)
internal import Glibc
#endif

/// Algorithm handles fetched once from the default provider. They are immutable after
/// fetching and OpenSSL documents them as safe to share between threads.
enum Algorithms {
    nonisolated(unsafe) static let aes128GCM: OpaquePointer? = EVP_CIPHER_fetch(nil, "AES-128-GCM", nil)
    nonisolated(unsafe) static let aes192GCM: OpaquePointer? = EVP_CIPHER_fetch(nil, "AES-192-GCM", nil)
    nonisolated(unsafe) static let aes256GCM: OpaquePointer? = EVP_CIPHER_fetch(nil, "AES-256-GCM", nil)
    nonisolated(unsafe) static let sha256: OpaquePointer? = EVP_MD_fetch(nil, "SHA256", nil)
    nonisolated(unsafe) static let sha512: OpaquePointer? = EVP_MD_fetch(nil, "SHA512", nil)
    nonisolated(unsafe) static let hmac: OpaquePointer? = EVP_MAC_fetch(nil, "HMAC", nil)
    nonisolated(unsafe) static let hkdf: OpaquePointer? = EVP_KDF_fetch(nil, "HKDF", nil)

    static func gcm(keyLength: Int) -> OpaquePointer? {
        switch keyLength {
        case 16: return aes128GCM
        case 24: return aes192GCM
        case 32: return aes256GCM
        default: return nil
        }
    }
}

/// Builds an OSSL_PARAM array whose strings and buffers outlive the call that uses it.
final class ParamBuilder {
    private var owned: [UnsafeMutableRawPointer] = []
    private var params: [OSSL_PARAM] = []

    private func keep(_ text: String) -> UnsafeMutablePointer<CChar> {
        let pointer = strdup(text)!
        owned.append(UnsafeMutableRawPointer(pointer))
        return pointer
    }

    func utf8(_ key: String, _ value: String) {
        params.append(OSSL_PARAM_construct_utf8_string(keep(key), keep(value), 0))
    }

    func int(_ key: String, _ value: Int32) {
        let storage = malloc(MemoryLayout<Int32>.size)!.bindMemory(to: Int32.self, capacity: 1)
        storage.initialize(to: value)
        owned.append(UnsafeMutableRawPointer(storage))
        params.append(OSSL_PARAM_construct_int(keep(key), storage))
    }

    /// Copies `bytes` into owned memory, which is wiped when the builder is released.
    func octets(_ key: String, _ bytes: UnsafeRawBufferPointer) {
        let size = Swift.max(bytes.count, 1)
        let storage = malloc(size)!
        if bytes.count > 0 { storage.copyMemory(from: bytes.baseAddress!, byteCount: bytes.count) }
        owned.append(storage)
        sizes[storage] = size
        params.append(OSSL_PARAM_construct_octet_string(keep(key), storage, bytes.count))
    }

    private var sizes: [UnsafeMutableRawPointer: Int] = [:]

    func withParams<R>(_ body: (UnsafePointer<OSSL_PARAM>) throws -> R) rethrows -> R {
        var all = params
        all.append(OSSL_PARAM_construct_end())
        return try all.withUnsafeBufferPointer { try body($0.baseAddress!) }
    }

    deinit {
        for pointer in owned {
            if let size = sizes[pointer] { OPENSSL_cleanse(pointer, size) }
            free(pointer)
        }
    }
}
