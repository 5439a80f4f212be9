import Crypto
import Foundation

/// Staff passwords: PBKDF2-HMAC-SHA256 (RFC 8018 §5.2) on swift-crypto's `HMAC<SHA256>`,
/// a random 16-byte salt per account, a 32-byte derived key, and the iteration count stored
/// with each row (so the cost can be raised later without breaking existing accounts).
/// Verification compares in constant time.
enum StaffPassword {
    /// The cost for new accounts made by `staff add`: 210,000 iterations (OWASP's 2021
    /// figure for PBKDF2-HMAC-SHA256; never below 100,000). Verification uses the count
    /// stored with each row. (Unit tests pass a small count to `make` to stay fast.)
    static let defaultIterations = 210_000
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
        return Stored(salt: salt, hash: pbkdf2(password: Array(password.utf8), salt: salt, iterations: iterations, length: keyBytes),
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
    private static let dummy = Stored(salt: Array(repeating: 0x5a, count: saltBytes), hash: Array(repeating: 0, count: keyBytes),
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

    /// PBKDF2 with HMAC-SHA256 as the PRF. The keyed HMAC state is built once and copied for
    /// each iteration (a value copy of the two primed SHA-256 states), so every iteration costs
    /// two compression rounds plus the finalisations, like the reference implementations.
    static func pbkdf2(password: [UInt8], salt: [UInt8], iterations: Int, length: Int) -> [UInt8] {
        precondition(iterations >= 1 && length >= 1)
        let prf = HMAC<SHA256>(key: SymmetricKey(data: password))
        let hLen = SHA256.byteCount
        let blocks = (length + hLen - 1) / hLen
        var out: [UInt8] = []
        out.reserveCapacity(blocks * hLen)
        var u = [UInt8](repeating: 0, count: hLen)
        var t = [UInt8](repeating: 0, count: hLen)
        for block in 1...blocks {
            var h = prf
            h.update(data: salt)
            h.update(data: [UInt8(truncatingIfNeeded: block >> 24), UInt8(truncatingIfNeeded: block >> 16),
                            UInt8(truncatingIfNeeded: block >> 8), UInt8(truncatingIfNeeded: block)])
            copy(h.finalize(), into: &u)
            t = u
            if iterations > 1 {
                for _ in 2...iterations {
                    var h = prf
                    h.update(data: u)
                    copy(h.finalize(), into: &u)
                    t.withUnsafeMutableBufferPointer { pt in
                        u.withUnsafeBufferPointer { pu in
                            for i in 0..<hLen { pt[i] ^= pu[i] }
                        }
                    }
                }
            }
            out.append(contentsOf: t)
        }
        return Array(out.prefix(length))
    }

    @inline(__always)
    private static func copy(_ mac: HMAC<SHA256>.MAC, into u: inout [UInt8]) {
        mac.withUnsafeBytes { src in
            u.withUnsafeMutableBytes { dst in dst.copyMemory(from: src) }
        }
    }
}
