import Foundation
import Testing
@testable import EdgeCore

@Suite("Retry-After: only delay-seconds and IMF-fixdate, capped at 60 s")
struct RetryAfterTests {
    /// 2026-12-07T12:00:00Z
    static let now = Date(timeIntervalSince1970: 1_796_644_800)

    @Test(
        "Given delay-seconds (digits only), when read, then the wait is that many seconds, capped at 60",
        arguments: [
            ("0", 0.0), ("7", 7), ("60", 60), ("61", 60), ("0120", 60), ("007", 7), (" 5 ", 5), ("\t3", 3),
            ("999999999", 60), ("99999999999999999999999999999999", 60), ("0000000000000000000001", 1),
        ])
    func delaySeconds(_ header: String, _ expected: Double) {
        #expect(RetryAfter.seconds(header, now: Self.now) == expected)
    }

    @Test(
        "Given anything that is neither digits nor an IMF-fixdate, when read, then it is ignored (nil), never a crash",
        arguments: [
            "nan", "NaN", "inf", "-inf", "+inf", "infinity", "-1", "+5", "1e308", "1e3", "abc", "", "   ", "0x10",
            "5.5.5", "5.5", "1,5", "٣", "１２", "5 s", "5s", "12 34", "\u{0}", "-0", "Sun, 06 Nov 1994 08:49:37 UTC",
            "Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994", "Sun, 31 Feb 2026 08:49:37 GMT",
            "Sun, 06 Nov 1994 24:00:00 GMT", "Xyz, 06 Nov 1994 08:49:37 GMT", "Sun, 06 Noo 1994 08:49:37 GMT",
            "Sun, 6 Nov 1994 08:49:37 GMT", "Sun,  06 Nov 1994 08:49:37 GMT",
        ])
    func ignored(_ header: String) {
        #expect(RetryAfter.seconds(header, now: Self.now) == nil)
    }

    @Test("Given no header, when read, then nil")
    func absent() {
        #expect(RetryAfter.seconds(nil, now: Self.now) == nil)
    }

    @Test("Given an IMF-fixdate, when read, then the wait runs to that date (past = 0, far future = 60)")
    func httpDate() {
        #expect(RetryAfter.seconds("Mon, 07 Dec 2026 12:00:30 GMT", now: Self.now) == 30)
        #expect(RetryAfter.seconds("Mon, 07 Dec 2026 12:00:00 GMT", now: Self.now) == 0)
        #expect(RetryAfter.seconds("Sun, 06 Nov 1994 08:49:37 GMT", now: Self.now) == 0)
        #expect(RetryAfter.seconds("Fri, 31 Dec 9999 23:59:59 GMT", now: Self.now) == 60)
        #expect(RetryAfter.seconds("Mon, 07 Dec 2026 13:00:00 GMT", now: Self.now) == 60)
    }

    @Test("Given IMF-fixdates, when parsed, then they are the right instants (leap days included)")
    func imfFixdate() {
        #expect(RetryAfter.imfFixdate("Sun, 06 Nov 1994 08:49:37 GMT") == Date(timeIntervalSince1970: 784_111_777))
        #expect(RetryAfter.imfFixdate("Thu, 01 Jan 1970 00:00:00 GMT") == Date(timeIntervalSince1970: 0))
        #expect(RetryAfter.imfFixdate("Tue, 29 Feb 2028 00:00:00 GMT") == Date(timeIntervalSince1970: 1_835_395_200))
        #expect(RetryAfter.imfFixdate("Mon, 07 Dec 2026 12:00:00 GMT") == Self.now)
        #expect(RetryAfter.imfFixdate("Mon, 29 Feb 2027 00:00:00 GMT") == nil)
        #expect(RetryAfter.imfFixdate("Mon, 29 Feb 2100 00:00:00 GMT") == nil)
        #expect(RetryAfter.imfFixdate("Tue, 29 Feb 2000 00:00:00 GMT") != nil)
    }

    @Test("Given a smaller cap, when read, then the wait is capped there")
    func cap() {
        #expect(RetryAfter.seconds("30", now: Self.now, cap: 10) == 10)
        #expect(RetryAfter.seconds("30", now: Self.now, cap: -5) == 0)
    }

    @Test("Given random text (seeded), when read, then the answer is nil or within 0...60, never a trap")
    func fuzz() {
        var rng = DecoderFuzzTests.Seeded(state: 0x5eed_2026)
        let alphabet = Array("0123456789 -+.eEinfaxNGMT,:\t\u{0}ÿ٣")
        for _ in 0..<20_000 {
            let n = Int(rng.next() % 32)
            let s = String((0..<n).map { _ in alphabet[Int(rng.next() % UInt64(alphabet.count))] })
            if let v = RetryAfter.seconds(s, now: Self.now) {
                #expect(v >= 0 && v <= 60, "\(s.debugDescription) -> \(v)")
            }
        }
    }
}
