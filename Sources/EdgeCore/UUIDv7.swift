import Crypto
import Foundation
import Synchronization

/// UUID version 7 (time-ordered), lowercase. Monotonic within one process.
public final class UUIDv7: Sendable {
    private struct State {
        var lastMs: Int64 = 0
        var counter: UInt16 = 0
        /// Random bits drawn 64 words at a time (one CSPRNG call instead of a `getrandom` per id).
        var pool = [UInt64](repeating: 0, count: 64)
        var poolUsed = 64

        /// The next 64 random bits.
        mutating func random() -> UInt64 {
            if poolUsed == pool.count {
                // BoringSSL's CSPRNG (seeded from the kernel), 512 bytes per call.
                let key = SymmetricKey(size: SymmetricKeySize(bitCount: pool.count * 64))
                key.withUnsafeBytes { src in pool.withUnsafeMutableBytes { $0.copyMemory(from: src) } }
                poolUsed = 0
            }
            poolUsed += 1
            return pool[poolUsed - 1]
        }
    }
    private let state = Mutex(State())
    public init() {}
    public static let shared = UUIDv7()

    public func next(nowMs: Int64 = Time.nowMs()) -> String {
        let (ms, c, r) = state.withLock { s in
            var ms = max(nowMs, s.lastMs)
            if ms == s.lastMs {
                s.counter &+= 1
                if s.counter >= 0x0fff { ms += 1; s.counter = 0 }
            } else {
                // A new millisecond starts its counter at a random point in the lower quarter.
                s.counter = UInt16(truncatingIfNeeded: s.random() & 0x03ff)
            }
            s.lastMs = ms
            return (ms, s.counter, s.random())
        }
        // 48 bits of ms, version 7 + 12 bits of counter, variant + 62 random bits.
        let hi = UInt64(ms & 0xffff_ffff_ffff) << 16 | 0x7000 | UInt64(c & 0x0fff)
        let lo = 0x8000_0000_0000_0000 | (r & 0x3fff_ffff_ffff_ffff)
        return String(unsafeUninitializedCapacity: 36) { out in
            let digits: StaticString = "0123456789abcdef"
            var i = 0
            func put(_ v: UInt64, _ nibbles: Int) {
                for k in stride(from: nibbles - 1, through: 0, by: -1) {
                    out[i] = digits.utf8Start[Int((v >> (4 * UInt64(k))) & 0xf)]; i += 1
                }
            }
            func dash() { out[i] = UInt8(ascii: "-"); i += 1 }
            put(hi >> 32, 8); dash(); put((hi >> 16) & 0xffff, 4); dash(); put(hi & 0xffff, 4); dash()
            put(lo >> 48, 4); dash(); put(lo & 0xffff_ffff_ffff, 12)
            return 36
        }
    }
}
