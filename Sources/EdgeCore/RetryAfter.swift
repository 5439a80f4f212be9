import Foundation

/// The `Retry-After` header of a cloud answer (CONTRACT §2), read defensively: the header
/// comes from the cloud, a proxy or a captive portal, so any text at all may arrive.
///
/// Honoured only in the two forms of RFC 9110 §10.2.3:
/// - delay-seconds: ASCII digits only (`"0"`, `"7"`, `"0120"`); no sign, point, exponent or
///   hex prefix;
/// - an HTTP-date in the IMF-fixdate form (`"Sun, 06 Nov 1994 08:49:37 GMT"`); a date in the
///   past means no wait (0).
///
/// Anything else (`nan`, `inf`, `-1`, `1e308`, `0x10`, `5.5`, text, an empty value) is
/// ignored: `seconds` returns nil and the caller keeps its own back-off. A valid value is
/// capped at `cap` (60 s by default), so no answer can hold the uplink back for long.
public enum RetryAfter {
    public static let defaultCap: Double = 60

    /// The wait the header asks for, in seconds within `0...cap`, or nil when it is absent
    /// or not one of the two valid forms.
    public static func seconds(_ header: String?, now: Date = Date(), cap: Double = RetryAfter.defaultCap) -> Double? {
        guard let header else { return nil }
        let value = header.trimmingCharacters(in: CharacterSet(charactersIn: " \t"))
        guard !value.isEmpty else { return nil }
        let cap = max(0, cap)
        if value.utf8.allSatisfy({ $0 >= UInt8(ascii: "0") && $0 <= UInt8(ascii: "9") }) {
            // Digits only. Leading zeros are allowed; more than 9 significant digits is past
            // any cap anyone would use, so no integer conversion can overflow.
            let significant = value.utf8.drop(while: { $0 == UInt8(ascii: "0") })
            if significant.count > 9 { return cap }
            let n = significant.reduce(0) { $0 * 10 + Int($1 - UInt8(ascii: "0")) }
            return min(Double(n), cap)
        }
        guard let date = imfFixdate(value) else { return nil }
        let delta = date.timeIntervalSince(now)
        guard delta.isFinite else { return nil }
        return min(max(0, delta), cap)
    }

    private static let dayNames = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
    private static let monthNames = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

    /// Parses exactly `Day, DD Mon YYYY HH:MM:SS GMT` (29 characters), checking every field's
    /// range (and that the day exists in that month). The day name is checked for form only,
    /// as recipients do.
    public static func imfFixdate(_ s: String) -> Date? {
        let b = Array(s.utf8)
        guard b.count == 29 else { return nil }
        func text(_ r: Range<Int>) -> String { String(decoding: b[r], as: UTF8.self) }
        func number(_ r: Range<Int>) -> Int? {
            var n = 0
            for i in r {
                guard b[i] >= UInt8(ascii: "0"), b[i] <= UInt8(ascii: "9") else { return nil }
                n = n * 10 + Int(b[i] - UInt8(ascii: "0"))
            }
            return n
        }
        let sp = UInt8(ascii: " "), colon = UInt8(ascii: ":")
        guard dayNames.contains(text(0..<3)), b[3] == UInt8(ascii: ","), b[4] == sp, b[7] == sp, b[11] == sp,
            b[16] == sp, b[19] == colon, b[22] == colon, b[25] == sp, text(26..<29) == "GMT",
            let day = number(5..<7), let monthIndex = monthNames.firstIndex(of: text(8..<11)),
            let year = number(12..<16), let hour = number(17..<19), let minute = number(20..<22),
            let second = number(23..<25)
        else { return nil }
        let month = monthIndex + 1
        let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
        let daysInMonth = [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][monthIndex]
        guard (1...daysInMonth).contains(day), hour <= 23, minute <= 59, second <= 60 else { return nil }
        let days = Time.daysFromCivil(year: year, month: month, day: day)
        let seconds = Double(days) * 86_400 + Double(hour * 3600 + minute * 60 + min(second, 59))
        return Date(timeIntervalSince1970: seconds)
    }
}
