import Crypto
import Foundation

/// Writes JSON text by hand: the appliance builds event bodies from parts (some of them a
/// device's payload as received), so it needs exact control and no re-encoding.
public struct JSONText: Sendable {
    public private(set) var text: String = "{"
    private var first = true
    public init() { text.reserveCapacity(256) }

    /// Whether `s` has a character JSON must escape (most keys and values have none).
    @inline(__always)
    static func needsEscape(_ s: String) -> Bool {
        s.utf8.contains { $0 < 0x20 || $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") }
    }

    public static func quote(_ s: String) -> String {
        if !needsEscape(s) { return "\"" + s + "\"" }
        var out = "\""
        out.reserveCapacity(s.utf8.count + 2)
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where u.value < 0x20:
                out += String(format: "\\u%04x", u.value)
            default: out.unicodeScalars.append(u)
            }
        }
        return out + "\""
    }
    public static func number(_ d: Double) -> String {
        if d.isFinite, d == d.rounded(), abs(d) < 1e15 { return String(Int64(d)) }
        return d.isFinite ? "\(d)" : "null"
    }

    private mutating func appendQuoted(_ s: String) {
        if JSONText.needsEscape(s) { text += JSONText.quote(s); return }
        text += "\""; text += s; text += "\""
    }
    private mutating func key(_ k: String) {
        if !first { text += "," }
        first = false
        appendQuoted(k)
        text += ":"
    }
    public mutating func add(_ k: String, _ v: String?) {
        key(k)
        if let v { appendQuoted(v) } else { text += "null" }
    }
    public mutating func add(_ k: String, _ v: Double?) { key(k); text += v.map(JSONText.number) ?? "null" }
    public mutating func add(_ k: String, _ v: Int) { key(k); text += String(v) }
    public mutating func add(_ k: String, _ v: Int64) { key(k); text += String(v) }
    public mutating func add(_ k: String, _ v: Bool) { key(k); text += v ? "true" : "false" }
    /// Adds already-valid JSON text as the value.
    public mutating func addRaw(_ k: String, _ json: String) { key(k); text += json }
    public func finished() -> String { text + "}" }

    public static func object(_ build: (inout JSONText) -> Void) -> String {
        var j = JSONText(); build(&j); return j.finished()
    }
}

/// RFC 3339 times in UTC with a `Z`, millisecond precision when needed.
public enum Time {
    /// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil),
    /// no Calendar needed.
    public static func daysFromCivil(year: Int, month: Int, day: Int) -> Int {
        let yy = month <= 2 ? year - 1 : year
        let era = (yy >= 0 ? yy : yy - 399) / 400
        let yoe = yy - era * 400
        let mp = (month + 9) % 12
        let doy = (153 * mp + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    public static func rfc3339(_ date: Date) -> String {
        let ms = Int64((date.timeIntervalSince1970 * 1000).rounded(.down))
        return rfc3339(ms: ms)
    }
    public static func rfc3339(ms: Int64) -> String {
        var secs = ms / 1000
        var milli = ms % 1000
        if milli < 0 { milli += 1000; secs -= 1 }
        var t = time_t(secs)
        var tmv = tm()
        gmtime_r(&t, &tmv)
        // Hot path (every event carries a time): digits by hand, no String(format:).
        var out = [UInt8](); out.reserveCapacity(24)
        func put(_ v: Int, _ width: Int) {
            var d = [UInt8](repeating: UInt8(ascii: "0"), count: width)
            var x = v
            for i in stride(from: width - 1, through: 0, by: -1) { d[i] = UInt8(ascii: "0") + UInt8(x % 10); x /= 10 }
            out.append(contentsOf: d)
        }
        put(Int(tmv.tm_year) + 1900, 4); out.append(UInt8(ascii: "-")); put(Int(tmv.tm_mon) + 1, 2); out.append(UInt8(ascii: "-"))
        put(Int(tmv.tm_mday), 2); out.append(UInt8(ascii: "T")); put(Int(tmv.tm_hour), 2); out.append(UInt8(ascii: ":"))
        put(Int(tmv.tm_min), 2); out.append(UInt8(ascii: ":")); put(Int(tmv.tm_sec), 2)
        if milli != 0 { out.append(UInt8(ascii: ".")); put(Int(milli), 3) }
        out.append(UInt8(ascii: "Z"))
        return String(decoding: out, as: UTF8.self)
    }
    /// Parses RFC 3339 (`Z` or an offset, optional fraction). Returns Unix milliseconds.
    public static func parseMs(_ s: String) -> Int64? {
        let u = Array(s.utf8)
        guard u.count >= 20 else { return nil }
        func num(_ a: Int, _ n: Int) -> Int? {
            guard a + n <= u.count else { return nil }
            var v = 0
            for i in a..<(a + n) { let c = u[i]; guard c >= 48 && c <= 57 else { return nil }; v = v * 10 + Int(c - 48) }
            return v
        }
        guard let y = num(0, 4), u[4] == 45, let mo = num(5, 2), u[7] == 45, let d = num(8, 2),
              u[10] == 84 || u[10] == 116 || u[10] == 32, let h = num(11, 2), u[13] == 58, let mi = num(14, 2), u[16] == 58,
              let se = num(17, 2) else { return nil }
        let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
        let monthDays = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
        guard (1...12).contains(mo), d >= 1, d <= monthDays[mo - 1], h < 24, mi < 60, se < 61 else { return nil }
        var i = 19
        var frac: Int64 = 0
        if i < u.count, u[i] == 46 {
            i += 1
            var digits = 0
            while i < u.count, u[i] >= 48, u[i] <= 57 {
                if digits < 3 { frac = frac * 10 + Int64(u[i] - 48) }
                digits += 1; i += 1
            }
            guard digits > 0 else { return nil }
            if digits < 3 { for _ in digits..<3 { frac *= 10 } }
        }
        guard i < u.count else { return nil }
        var offset = 0
        if u[i] == 90 || u[i] == 122 { i += 1 } else if u[i] == 43 || u[i] == 45 {
            guard let oh = num(i + 1, 2), u.count > i + 3, u[i + 3] == 58, let om = num(i + 4, 2), oh < 24, om < 60 else { return nil }
            offset = (oh * 60 + om) * 60 * (u[i] == 43 ? 1 : -1)
            i += 6
        } else { return nil }
        guard i == u.count else { return nil }
        let days = daysFromCivil(year: y, month: mo, day: d)
        let secs = Int64(days) * 86400 + Int64(h * 3600 + mi * 60 + se) - Int64(offset)
        return secs * 1000 + frac
    }
    public static func nowMs() -> Int64 { Int64((Date().timeIntervalSince1970 * 1000).rounded(.down)) }
}

/// UUID version 7 (time-ordered), lowercase. Monotonic within one process.
public final class UUIDv7: @unchecked Sendable {
    private let lock = NSLock()
    private var lastMs: Int64 = 0
    private var counter: UInt16 = 0
    public init() {}
    public static let shared = UUIDv7()

    /// Random bits drawn 64 words at a time (one CSPRNG call instead of a `getrandom` per id).
    private var pool = [UInt64](repeating: 0, count: 64)
    private var poolUsed = 64

    /// The next 64 random bits (call with the lock held).
    private func random() -> UInt64 {
        if poolUsed == pool.count {
            // BoringSSL's CSPRNG (seeded from the kernel), 512 bytes per call.
            let key = SymmetricKey(size: SymmetricKeySize(bitCount: pool.count * 64))
            key.withUnsafeBytes { src in pool.withUnsafeMutableBytes { $0.copyMemory(from: src) } }
            poolUsed = 0
        }
        poolUsed += 1
        return pool[poolUsed - 1]
    }

    public func next(nowMs: Int64 = Time.nowMs()) -> String {
        lock.lock()
        var ms = max(nowMs, lastMs)
        if ms == lastMs {
            counter &+= 1
            if counter >= 0x0fff { ms += 1; counter = 0 }
        } else {
            // A new millisecond starts its counter at a random point in the lower quarter.
            counter = UInt16(truncatingIfNeeded: random() & 0x03ff)
        }
        lastMs = ms
        let c = counter
        let r = random()
        lock.unlock()
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
