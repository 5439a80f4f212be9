import Foundation
import Testing
@testable import EdgeCore

@Suite("JSONText: hand-written JSON")
struct JSONTextTests {
    @Test(
        "Given text with quotes, backslashes and control characters, when quoted, then it is escaped",
        arguments: [
            ("Maria", #""Maria""#), ("Dr. \"Erick\"", #""Dr. \"Erick\"""#), (#"C:\dados"#, #""C:\\dados""#),
            ("a\nb\rc\td", #""a\nb\rc\td""#), ("\u{0}\u{1}\u{1f}", #""\u0000\u0001\u001f""#), ("\u{08}\u{0C}", #""\u0008\u000c""#),
            ("Olá, São Paulo 😀", "\"Olá, São Paulo 😀\""), ("\u{7f}", "\"\u{7f}\""), ("", #""""#), ("/", #""/""#),
        ])
    func quote(_ input: String, _ expected: String) throws {
        #expect(JSONText.quote(input) == expected)
        #expect(try JSON.parse(JSONText.quote(input)) == .string(input), "quoting round-trips through the parser")
    }

    @Test(
        "Given numbers, when written, then whole numbers are integers and non-finite ones are null",
        arguments: [
            (72.0, "72"), (-3.0, "-3"), (0.0, "0"), (-0.0, "0"), (22.4, "22.4"), (-40.5, "-40.5"),
            (1_795_959_000_000.0, "1795959000000"), (999_999_999_999_999.0, "999999999999999"),
            (Double.nan, "null"), (Double.infinity, "null"), (-Double.infinity, "null"),
        ])
    func number(_ d: Double, _ expected: String) {
        #expect(JSONText.number(d) == expected)
    }

    @Test(
        "Given large and tiny numbers, when written, then the text is valid JSON of the same value",
        arguments: [1e15, -1e15, 1e21, 1.5e300, 1e-7, Double.leastNonzeroMagnitude, 0.1, 123.456, Double.greatestFiniteMagnitude])
    func numberIsValidJSON(_ d: Double) throws {
        #expect(try JSON.parse(JSONText.number(d)) == .number(d))
    }

    @Test("Given an event body built by parts, when finished, then it is one valid JSON object")
    func builder() throws {
        let raw = #"{"occupied":true,"battery":87}"#
        let text = JSONText.object { j in
            j.add("site_id", "pleno-cuidado")
            j.add("room_id", nil as String?)
            j.add("value", 7.4)
            j.add("min", nil as Double?)
            j.add("count", 3)
            j.add("ts", Int64(1_795_959_000_000))
            j.add("occupied", true)
            j.addRaw("payload", raw)
        }
        #expect(
            text
                == #"{"site_id":"pleno-cuidado","room_id":null,"value":7.4,"min":null,"count":3,"ts":1795959000000,"occupied":true,"#
                + #""payload":{"occupied":true,"battery":87}}"#
        )
        let v = try JSON.parse(text)
        #expect(v["payload"]?["battery"] == .number(87))
        #expect(JSONText.object { _ in } == "{}")
    }
}

@Suite("Time: RFC 3339 in and out")
struct TimeTests {
    @Test(
        "Given Unix milliseconds, when formatted, then the text is UTC with Z and millis only when needed",
        arguments: [
            (Int64(0), "1970-01-01T00:00:00Z"), (1_795_957_331_000, "2026-11-29T13:02:11Z"),
            (1_795_959_000_000, "2026-11-29T13:30:00Z"), (1_795_959_000_007, "2026-11-29T13:30:00.007Z"),
            (1_795_959_000_120, "2026-11-29T13:30:00.120Z"), (1_709_208_000_000, "2024-02-29T12:00:00Z"),
            (-1, "1969-12-31T23:59:59.999Z"), (-1000, "1969-12-31T23:59:59Z"), (946_684_800_000, "2000-01-01T00:00:00Z"),
        ])
    func format(_ ms: Int64, _ expected: String) {
        #expect(Time.rfc3339(ms: ms) == expected)
        #expect(Time.parseMs(expected) == ms, "round trip")
    }

    @Test("Given a Date, when formatted, then milliseconds are truncated")
    func formatDate() {
        #expect(Time.rfc3339(Date(timeIntervalSince1970: 1_795_959_000.1239)) == "2026-11-29T13:30:00.123Z")
    }

    @Test(
        "Given times with offsets, fractions or Z, when parsed, then the instant is right",
        arguments: [
            ("2026-11-29T13:30:00Z", Int64(1_795_959_000_000)),
            ("2026-11-29T10:30:00-03:00", 1_795_959_000_000),
            ("2026-11-29T16:00:00+02:30", 1_795_959_000_000),
            ("2026-11-29T13:30:00+00:00", 1_795_959_000_000),
            ("2026-11-29T13:30:00-00:00", 1_795_959_000_000),
            ("2026-11-29t13:30:00z", 1_795_959_000_000),
            ("2026-11-29 13:30:00Z", 1_795_959_000_000),
            ("2026-11-29T13:30:00.5Z", 1_795_959_000_500),
            ("2026-11-29T13:30:00.05Z", 1_795_959_000_050),
            ("2026-11-29T13:30:00.123Z", 1_795_959_000_123),
            ("2026-11-29T10:30:00.250-03:00", 1_795_959_000_250),
            ("2026-11-29T23:30:00-03:00", 1_796_005_800_000),  // 02:30Z next day
            ("1969-12-31T23:59:59.5Z", -500),
            ("2024-02-29T12:00:00Z", 1_709_208_000_000),
        ])
    func parse(_ text: String, _ ms: Int64) {
        #expect(Time.parseMs(text) == ms)
    }

    @Test(
        "Given malformed times, when parsed, then nil",
        arguments: [
            "", "2026-11-29", "2026-11-29T13:30:00", "2026-11-29T13:30Z", "2026-11-29T13:30:00.Z", "2026-11-29T13:30:00+0300",
            "2026-11-29T13:30:00+03", "2026-11-29T13:30:00+03:0", "2026-11-29T13:30:00Zjunk", "2026-11-29T13:30:00 Z",
            "2026-13-29T13:30:00Z", "2026-00-29T13:30:00Z", "2026-11-32T13:30:00Z", "2026-11-00T13:30:00Z",
            "2026-11-29T24:00:00Z", "2026-11-29T13:60:00Z", "2026-11-29T13:30:61Z", "2026/11/29T13:30:00Z",
            "2026-11-29X13:30:00Z", "26-11-29T13:30:00Zzz", "2026-11-29T13:30:00EST", "１２３４-11-29T13:30:00Z",
            "yesterday at noon, roughly",
        ])
    func invalid(_ text: String) {
        #expect(Time.parseMs(text) == nil)
    }

    @Test(
        "Given impossible calendar dates or offsets, when parsed, then nil",
        arguments: [
            "2026-02-30T10:00:00Z", "2026-04-31T10:00:00Z", "2025-02-29T10:00:00Z",
            "2026-11-29T13:30:00+24:00", "2026-11-29T13:30:00+03:99",
        ])
    func impossibleDates(_ text: String) {
        do {
            #expect(Time.parseMs(text) == nil)
        }
    }

    // More than 3 fraction digits (microseconds, as many firmwares and Python's isoformat write)
    // trap in `for _ in digits..<3` (JSONText.swift:92): a Range with lowerBound > upperBound.
    // A trap cannot be caught in-process, so these run as exit tests in a child process.
    @Test("Given a time with microseconds, when parsed, then the fraction is truncated to ms (no crash)")
    func microsecondsDoNotCrash() async {
        do {
            await #expect(processExitsWith: .success) {
                guard Time.parseMs("2026-11-29T13:30:00.123456Z") == 1_795_959_000_123,
                    Time.parseMs("2026-11-29T10:30:00.1234-03:00") == 1_795_959_000_123
                else { exit(1) }
            }
        }
    }

    @Test("Given a presence reading whose ts has microseconds, when validated, then the daemon does not crash")
    func deviceTsWithMicrosecondsDoesNotCrash() async {
        do {
            await #expect(processExitsWith: .success) {
                let o = try! JSON.parse(#"{"occupied":true,"ts":"2026-11-29T13:31:00.000001Z"}"#).objectValue!
                guard PayloadRules.presence(o).successValue != nil else { exit(1) }
            }
        }
    }

    @Test("Given many instants, when formatted and parsed, then they round-trip")
    func roundTripMany() {
        var ms: Int64 = -86_400_000 * 400
        while ms < 4_102_444_800_000 {  // up to 2100
            let text = Time.rfc3339(ms: ms)
            #expect(Time.parseMs(text) == ms)
            ms += 86_400_000 * 37 + 3_601_001
        }
    }
}

@Suite("UUIDv7: time-ordered event ids")
struct UUIDv7Tests {
    static let shape = #"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$"#

    @Test("Given an id, when made, then it is a lowercase v7 UUID with the RFC 4122 variant")
    func shapeOfId() throws {
        let gen = UUIDv7()
        for _ in 0..<200 {
            let id = gen.next()
            #expect(id.range(of: Self.shape, options: .regularExpression) != nil, "\(id)")
            #expect(id == id.lowercased())
            let u = try #require(UUID(uuidString: id))
            #expect(u.uuid.6 >> 4 == 7, "version nibble")
            #expect(u.uuid.8 >> 6 == 0b10, "variant bits")
        }
    }

    @Test("Given a fixed millisecond, when ids are made, then the first 48 bits carry it")
    func timestampBits() {
        let ms: Int64 = 1_795_959_000_000
        let id = UUIDv7().next(nowMs: ms)
        let hex = id.replacingOccurrences(of: "-", with: "")
        #expect(Int64(hex.prefix(12), radix: 16) == ms)
    }

    @Test("Given many calls in the same millisecond, when ids are made, then they strictly increase and are unique")
    func monotonicSameMillisecond() {
        let gen = UUIDv7()
        let ms: Int64 = 1_795_959_000_000
        var prev = ""
        var seen = Set<String>()
        for i in 0..<10_000 {
            let id = gen.next(nowMs: ms)
            if i > 0, !(prev < id) { Issue.record("not increasing at \(i): \(prev) then \(id)"); break }
            seen.insert(id)
            prev = id
        }
        #expect(seen.count == 10_000)
    }

    @Test("Given many ids, when made, then their 62 random bits differ (drawn from a pool, never reused)")
    func randomTails() {
        let gen = UUIDv7()
        var tails = Set<String>()
        for _ in 0..<5_000 { tails.insert(String(gen.next(nowMs: 1_795_959_000_000).suffix(17))) }
        #expect(tails.count == 5_000)
    }

    @Test("Given the clock going backwards, when ids are made, then they still increase")
    func clockBackwards() {
        let gen = UUIDv7()
        let a = gen.next(nowMs: 1_795_959_000_000)
        let b = gen.next(nowMs: 1_795_958_000_000)
        let c = gen.next(nowMs: 1_795_959_000_001)
        #expect(a < b)
        #expect(b < c)
    }

    @Test("Given ids from increasing milliseconds, when compared, then string order is time order")
    func timeOrder() {
        let gen = UUIDv7()
        var prev = gen.next(nowMs: 1_000)
        for ms in stride(from: Int64(1_001), to: 200_000_000_000, by: 999_999_937) {
            let id = gen.next(nowMs: ms)
            #expect(prev < id)
            prev = id
        }
    }

    @Test("Given concurrent callers, when ids are made, then all are unique")
    func concurrentUnique() async {
        let gen = UUIDv7()
        let ids = await withTaskGroup(of: [String].self) { group in
            for _ in 0..<4 { group.addTask { (0..<1000).map { _ in gen.next(nowMs: 42) } } }
            var all: [String] = []
            for await part in group { all += part }
            return all
        }
        #expect(Set(ids).count == 4000)
    }
}

@Suite("ClockWatch")
struct ClockWatchTests {
    @Test("Forward over 10 min and backward over 2 min are jumps, reported once; small drift is not; skipped spans are remembered")
    func jumps() {
        let w = ClockWatch()
        let t0: Int64 = 1_800_000_000_000
        var mono: UInt64 = 5_000_000_000
        #expect(w.observe(wallMs: t0, monoNs: mono) == nil, "the first observation is the baseline")
        mono += 1_000_000_000
        #expect(w.observe(wallMs: t0 + 1_000 + 9 * 60_000, monoNs: mono) == nil, "9 minutes of drift is not a jump")
        mono += 1_000_000_000
        let base = t0 + 2_000 + 9 * 60_000
        let fwd = w.observe(wallMs: base + 3 * 3600_000, monoNs: mono)
        #expect(fwd?.direction == .forward && fwd?.seconds == 3 * 3600)
        #expect(w.wasSkipped(base + 3600_000) && w.wasSkipped(base + 3 * 3600_000))
        #expect(!w.wasSkipped(base) && !w.wasSkipped(base + 3 * 3600_000 + 1))
        #expect(w.observe(wallMs: base + 3 * 3600_000, monoNs: mono) == nil, "reported once")
        mono += 1_000_000_000
        #expect(w.observe(wallMs: base + 3 * 3600_000 + 1_000 - 90_000, monoNs: mono) == nil, "90 s back is not a jump")
        mono += 1_000_000_000
        let back = w.observe(wallMs: base + 3 * 3600_000 - 10 * 60_000, monoNs: mono)
        #expect(back?.direction == .backward)
        #expect(w.sinceLastJumpNs(monoNs: mono + 7) == 7)
    }
}
