import CLibCrypto
import Foundation

/// Staff passwords: PBKDF2-HMAC-SHA256 (RFC 8018 §5.2, by the system libcrypto),
/// a random 16-byte salt per account, a 32-byte derived key, and the iteration count stored
/// with each row (so the cost can be raised later without breaking existing accounts).
/// Verification compares in constant time.
enum StaffPassword {
    /// The cost for new accounts made by `staff add`: 600,000 iterations (CONTRACT §4;
    /// OWASP's figure for PBKDF2-HMAC-SHA256). Verification uses the count stored with each
    /// row, so accounts made with an older, lower count still sign in.
    static let defaultIterations = 600_000
    static let saltBytes = 16
    static let keyBytes = 32
    static let minimumLength = 8
    static let maximumBytes = 1024

    struct Stored: Sendable, Equatable {
        var salt: [UInt8]
        var hash: [UInt8]
        var iterations: Int
    }

    enum Problem: Error, Equatable, CustomStringConvertible {
        case tooShort, tooLong, blank
        var description: String {
            switch self {
            case .tooShort: return "the password must have at least \(StaffPassword.minimumLength) characters"
            case .tooLong: return "the password must have at most \(StaffPassword.maximumBytes) bytes"
            case .blank: return "the password must not be only spaces"
            }
        }
    }

    static func check(_ password: String) throws(Problem) {
        if password.utf8.count > maximumBytes { throw .tooLong }
        if password.count < minimumLength { throw .tooShort }
        if password.allSatisfy({ $0.isWhitespace }) { throw .blank }
    }

    /// A new salted hash of `password`.
    static func make(_ password: String, iterations: Int = defaultIterations) -> Stored {
        var rng = SystemRandomNumberGenerator()
        let salt = (0..<saltBytes).map { _ in UInt8.random(in: 0...255, using: &rng) }
        return Stored(
            salt: salt, hash: pbkdf2(password: Array(password.utf8), salt: salt, iterations: iterations, length: keyBytes),
            iterations: iterations)
    }

    /// Whether `password` matches `stored`; the final comparison takes the same time
    /// wherever the first differing byte is.
    static func verify(_ password: String, against stored: Stored) -> Bool {
        guard stored.iterations >= 1, stored.hash.count == keyBytes, !stored.salt.isEmpty else { return false }
        let derived = pbkdf2(password: Array(password.utf8), salt: stored.salt, iterations: stored.iterations, length: stored.hash.count)
        return constantTimeEquals(derived, stored.hash)
    }

    /// Burns the same time as a verification, for names that do not exist (no timing hint).
    static func dummyVerify(_ password: String) {
        _ = verify(password, against: dummy)
    }
    private static let dummy = Stored(
        salt: Array(repeating: 0x5a, count: saltBytes), hash: Array(repeating: 0, count: keyBytes),
        iterations: defaultIterations)

    /// Compares every byte, whatever the content; only the lengths (public) short-cut.
    static func constantTimeEquals(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        var diff: UInt8 = 0
        a.withUnsafeBufferPointer { pa in
            b.withUnsafeBufferPointer { pb in
                for i in 0..<pa.count { diff |= pa[i] ^ pb[i] }
            }
        }
        return diff == 0
    }

    /// PBKDF2 with HMAC-SHA256 as the PRF (RFC 8018 §5.2), by the system libcrypto's
    /// `PKCS5_PBKDF2_HMAC`: 600,000 iterations take about 0.35 s on the 2-core build host,
    /// where a loop over swift-crypto's HMAC took about 1.2 s for 210,000 in a debug build.
    static func pbkdf2(password: [UInt8], salt: [UInt8], iterations: Int, length: Int) -> [UInt8] {
        precondition(iterations >= 1 && iterations <= Int(Int32.max) && length >= 1)
        var out = [UInt8](repeating: 0, count: length)
        let ok = password.withUnsafeBytes { pw in
            salt.withUnsafeBufferPointer { sl in
                out.withUnsafeMutableBufferPointer { o in
                    PKCS5_PBKDF2_HMAC(
                        pw.baseAddress?.assumingMemoryBound(to: CChar.self), Int32(pw.count),
                        sl.baseAddress, Int32(sl.count), Int32(iterations), EVP_sha256(), Int32(length), o.baseAddress)
                }
            }
        }
        // Only an allocation failure inside libcrypto fails here: no hash is better than a wrong one.
        precondition(ok == 1, "PKCS5_PBKDF2_HMAC failed")
        return out
    }
}
