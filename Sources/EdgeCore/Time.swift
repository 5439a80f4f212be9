import Foundation

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
            let se = num(17, 2)
        else { return nil }
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
        if u[i] == 90 || u[i] == 122 {
            i += 1
        } else if u[i] == 43 || u[i] == 45 {
            guard let oh = num(i + 1, 2), u.count > i + 3, u[i + 3] == 58, let om = num(i + 4, 2), oh < 24, om < 60 else { return nil }
            offset = (oh * 60 + om) * 60 * (u[i] == 43 ? 1 : -1)
            i += 6
        } else {
            return nil
        }
        guard i == u.count else { return nil }
        let days = daysFromCivil(year: y, month: mo, day: d)
        let secs = Int64(days) * 86400 + Int64(h * 3600 + mi * 60 + se) - Int64(offset)
        return secs * 1000 + frac
    }
    public static func nowMs() -> Int64 { Int64((Date().timeIntervalSince1970 * 1000).rounded(.down)) }
}
