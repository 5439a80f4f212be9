import Foundation

// The cold chain's daily chart (CONTRACT §6 "Daily chart"): the PNI's "mapa de controle de
// temperatura" drawn from a room's recorded readings and excursions. Pure logic, no I/O: the
// caller reads the readings of `readingWindow` and the excursions overlapping the month.

/// A reading picked for the chart (the opening or the closing) with the min/max of its window.
public struct ChartPoint: Sendable, Equatable {
    public var atMs: Int64
    public var currentC: Double
    public var minC: Double
    public var maxC: Double
    public init(atMs: Int64, currentC: Double, minC: Double, maxC: Double) {
        self.atMs = atMs; self.currentC = currentC; self.minC = minC; self.maxC = maxC
    }
}

/// One local day of the chart. Everything is nil (and `readings` 0) on a day without readings.
public struct ChartDay: Sendable, Equatable {
    /// The local day, YYYY-MM-DD.
    public var date: String
    /// The local day's [start, end) in Unix ms (not in the JSON; the CSV uses them).
    public var startMs: Int64
    public var endMs: Int64
    public var opening: ChartPoint?
    public var closing: ChartPoint?
    public var dayMinC: Double?
    public var dayMaxC: Double?
    /// Readings in [00:00, 24:00) local.
    public var readings: Int
    /// The excursions overlapping the day, oldest first.
    public var excursions: [ExcursionRecord]
    public init(
        date: String, startMs: Int64, endMs: Int64, opening: ChartPoint?, closing: ChartPoint?, dayMinC: Double?, dayMaxC: Double?,
        readings: Int, excursions: [ExcursionRecord]
    ) {
        self.date = date; self.startMs = startMs; self.endMs = endMs; self.opening = opening; self.closing = closing
        self.dayMinC = dayMinC; self.dayMaxC = dayMaxC; self.readings = readings; self.excursions = excursions
    }
}

/// A room's chart for one month: one `ChartDay` per local day of the month.
public struct ChartMonth: Sendable, Equatable {
    public var room: String
    /// YYYY-MM.
    public var month: String
    /// The clinic's zone: the CSV shows times as local HH:MM.
    public var timeZone: TimeZone
    public var days: [ChartDay]
    public init(room: String, month: String, timeZone: TimeZone, days: [ChartDay]) {
        self.room = room; self.month = month; self.timeZone = timeZone; self.days = days
    }
}

/// A chart request that cannot be answered as asked (a line a person can act on).
public struct ChartError: Error, CustomStringConvertible, Equatable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// How the chart is read (also in docs/cold-chain.md, "How the chart is read"). For a local day D
/// in the clinic's zone, with `opens`/`closes` the workday's minutes turned into instants of D
/// by the zone's calendar (so a daylight-saving day is still right):
/// - `opening` is the first reading in [opens(D), closes(D)]; its min/max are over the readings
///   after closes(D − 1) up to and including it: the overnight min/max (after the previous day's
///   closing reading, which is the last one at or before closes(D − 1)). On the 1st, D − 1 is the
///   previous month's last day: its evening is part of the window the caller reads.
/// - `closing` is the last reading in [opens(D), closes(D)]; its min/max are over the readings
///   from the opening reading up to and including it: the working day's min/max. A day with
///   readings but none within the workday has neither (the CSV says so).
/// - `dayMinC`, `dayMaxC` and `readings` are over [00:00, 24:00) of D.
/// - An excursion is listed on every day its [started, ended) overlaps (an open one up to now),
///   so one across midnight appears on both days.
/// - Days after now in the current month are present with nulls (nothing has been read yet);
///   the CSV calls them "dia futuro".
public enum ColdChainChart {
    // MARK: The window and the month

    /// The readings `month(...)` needs: `fromMs ≤ atMs < toMs`, from the previous month's last
    /// day's `closes` (the 1st's overnight min/max start after it) to the first instant of the next
    /// month. Excursions to pass: those with `startedMs < toMs` and not ended before `fromMs`
    /// (`endedMs` nil or `> fromMs`). Passing more is harmless: each day takes only its own.
    public static func readingWindow(month: String, timeZone: TimeZone, workday: Workday) throws -> (fromMs: Int64, toMs: Int64) {
        let (y, m) = try parseMonth(month)
        let cal = calendar(timeZone)
        let first = date(cal, y, m, 1, minute: 0)
        let last = cal.date(byAdding: .day, value: -1, to: first)!
        let lc = cal.dateComponents([.year, .month, .day], from: last)
        let from = date(cal, lc.year!, lc.month!, lc.day!, minute: workday.closesMinute)
        let next = cal.date(byAdding: .month, value: 1, to: first)!
        let nc = cal.dateComponents([.year, .month], from: next)
        return (ms(from), ms(date(cal, nc.year!, nc.month!, 1, minute: 0)))
    }

    /// The month's chart. `readings` should be those of `readingWindow` (sorted by time; they are
    /// sorted here if not); `excursions` the room's excursions overlapping the month; `nowMs` is
    /// the time open excursions last until. Throws `ChartError` for a month that is not YYYY-MM.
    public static func month(
        room: String, month: String, timeZone: TimeZone, workday: Workday, readings: [ColdReading], excursions: [ExcursionRecord],
        nowMs: Int64
    ) throws -> ChartMonth {
        let (y, m) = try parseMonth(month)
        let cal = calendar(timeZone)
        let count = cal.range(of: .day, in: .month, for: date(cal, y, m, 1, minute: 0))!.count
        let sorted = sortedReadings(readings)
        let days = (1...count).map { d in
            build(cal, y, m, d, workday: workday, readings: sorted, excursions: excursions, nowMs: nowMs)
        }
        return ChartMonth(room: room, month: month, timeZone: timeZone, days: days)
    }

    /// One day's row (what `clinic/coldchain.daily_summary` sends). `readings` must cover
    /// (closes of the day before, end of the day); `date` is YYYY-MM-DD.
    public static func day(
        date text: String, timeZone: TimeZone, workday: Workday, readings: [ColdReading], excursions: [ExcursionRecord], nowMs: Int64
    ) throws -> ChartDay {
        guard LocalDay.bounds(text, zone: timeZone) != nil else {
            throw ChartError("date must be a day as YYYY-MM-DD (for example 2026-12-07), not \"\(text)\"")
        }
        let p = text.split(separator: "-").map { Int($0)! }
        return build(
            calendar(timeZone), p[0], p[1], p[2], workday: workday, readings: sortedReadings(readings), excursions: excursions,
            nowMs: nowMs)
    }

    /// "2026-12" → (2026, 12); a clear error otherwise.
    public static func parseMonth(_ text: String) throws -> (year: Int, month: Int) {
        let u = Array(text.utf8)
        let digits = u.count == 7 && u[4] == UInt8(ascii: "-") && u.enumerated().allSatisfy { $0.offset == 4 || (48...57).contains($0.element) }
        guard digits, let y = Int(text.prefix(4)), let m = Int(text.suffix(2)), (1...12).contains(m), (1970...9999).contains(y) else {
            throw ChartError("month must be YYYY-MM (for example 2026-12), not \"\(text)\"")
        }
        return (y, m)
    }

    // MARK: Writing it

    /// The chart as CONTRACT §6's JSON: `{"room_id", "month", "days": [...]}`.
    public static func json(_ m: ChartMonth, nowMs: Int64) -> String {
        JSONText.object { j in
            j.add("room_id", m.room)
            j.add("month", m.month)
            j.addRaw("days", "[" + m.days.map { dayJSON($0, nowMs: nowMs) }.joined(separator: ",") + "]")
        }
    }

    /// One day's JSON object as in the chart.
    public static func dayJSON(_ d: ChartDay, nowMs: Int64) -> String {
        JSONText.object { j in
            j.add("date", d.date)
            j.addRaw("opening", pointJSON(d.opening))
            j.addRaw("closing", pointJSON(d.closing))
            j.add("day_min_c", d.dayMinC)
            j.add("day_max_c", d.dayMaxC)
            j.add("readings", d.readings)
            j.addRaw("excursions", "[" + d.excursions.map { excursionJSON($0, nowMs: nowMs) }.joined(separator: ",") + "]")
        }
    }

    /// `{"at", "current_c", "min_c", "max_c"}`, or `null`.
    public static func pointJSON(_ p: ChartPoint?) -> String {
        guard let p else { return "null" }
        return JSONText.object { j in
            j.add("at", Time.rfc3339(ms: p.atMs))
            j.add("current_c", p.currentC)
            j.add("min_c", p.minC)
            j.add("max_c", p.maxC)
        }
    }

    static func excursionJSON(_ e: ExcursionRecord, nowMs: Int64) -> String {
        JSONText.object { j in
            j.add("id", e.id)
            j.add("started_at", Time.rfc3339(ms: e.startedMs))
            j.add("ended_at", e.endedMs.map { Time.rfc3339(ms: $0) })
            j.add("duration_seconds", e.durationSeconds(nowMs: nowMs))
            j.add("min_c", e.minC)
            j.add("max_c", e.maxC)
            j.add("acknowledged_by", e.ackBy)
            j.add("action", e.action)
        }
    }

    /// The day's fields of `clinic/coldchain.daily_summary` (date, opening, closing, day_min_c,
    /// day_max_c, readings, excursions as a count); the caller adds tenant, site and room.
    public static func addSummary(_ d: ChartDay, to j: inout JSONText) {
        j.add("date", d.date)
        j.addRaw("opening", pointJSON(d.opening))
        j.addRaw("closing", pointJSON(d.closing))
        j.add("day_min_c", d.dayMinC)
        j.add("day_max_c", d.dayMaxC)
        j.add("readings", d.readings)
        j.add("excursions", d.excursions.count)
    }

    /// The CSV header, in the order of the columns.
    public static let csvColumns = [
        "Data", "Abertura (hora)", "Abertura atual (°C)", "Abertura mín (°C)", "Abertura máx (°C)", "Fechamento (hora)",
        "Fechamento atual (°C)", "Fechamento mín (°C)", "Fechamento máx (°C)", "Mínima do dia (°C)", "Máxima do dia (°C)", "Leituras",
        "Excursões", "Ações tomadas", "Responsável", "Situação",
    ]

    /// The chart as a Brazilian spreadsheet opens it: UTF-8 with a BOM, `;` between cells, CRLF
    /// lines, decimal commas, dates DD/MM/YYYY and times local HH:MM; one line per day. An empty
    /// cell is a value that does not exist, and the "Situação" column says why ("sem leituras",
    /// "sem leituras no expediente", "dia futuro") — a day without readings never looks fine.
    public static func csv(_ m: ChartMonth, nowMs: Int64) -> String {
        var out = "\u{FEFF}" + csvColumns.map(csvCell).joined(separator: ";") + "\r\n"
        for d in m.days { out += csvRow(d, zone: m.timeZone, nowMs: nowMs).map(csvCell).joined(separator: ";") + "\r\n" }
        return out
    }

    /// One day's cells, unquoted (free text already guarded against formula injection).
    static func csvRow(_ d: ChartDay, zone: TimeZone, nowMs: Int64) -> [String] {
        let p = d.date.split(separator: "-")
        let date = "\(p[2])/\(p[1])/\(p[0])"
        func point(_ pt: ChartPoint?) -> [String] {
            guard let pt else { return ["", "", "", ""] }
            return [KioskMessages.clock(pt.atMs, zone: zone), decimal(pt.currentC), decimal(pt.minC), decimal(pt.maxC)]
        }
        let excursions = d.excursions.map { excursionCell($0, day: d, zone: zone, nowMs: nowMs) }.joined(separator: " | ")
        let actions = d.excursions.map { $0.action ?? "pendente" }.joined(separator: " | ")
        let who = d.excursions.map { $0.ackBy ?? "pendente" }.joined(separator: " | ")
        let state: String
        if !d.excursions.isEmpty {
            state = d.readings == 0 ? "excursão, sem leituras" : "excursão"
        } else if d.readings == 0 {
            state = d.startMs > nowMs ? "dia futuro" : "sem leituras"
        } else if d.opening == nil {
            state = "sem leituras no expediente"
        } else {
            state = "ok"
        }
        return [date] + point(d.opening) + point(d.closing) + [
            d.dayMinC.map(decimal) ?? "", d.dayMaxC.map(decimal) ?? "", String(d.readings), excursions, guardFormula(actions),
            guardFormula(who), state,
        ]
    }

    /// "10:02–10:40 (38 min, 8,1–9,4 °C)"; a time not on the row's day has its DD/MM, an open
    /// excursion ends "em aberto".
    static func excursionCell(_ e: ExcursionRecord, day: ChartDay, zone: TimeZone, nowMs: Int64) -> String {
        func time(_ t: Int64) -> String {
            let clock = KioskMessages.clock(t, zone: zone)
            guard t < day.startMs || t >= day.endMs else { return clock }
            let p = LocalDay.dayString(t, zone: zone).split(separator: "-")
            return "\(p[2])/\(p[1]) \(clock)"
        }
        let end = e.endedMs.map(time) ?? "em aberto"
        let s = e.durationSeconds(nowMs: nowMs)
        let duration: String
        if s < 60 {
            duration = "\(s) s"
        } else {
            let mins = (s + 30) / 60
            duration = mins < 60 ? "\(mins) min" : String(format: "%d h %02d min", mins / 60, mins % 60)
        }
        let range = e.minC == e.maxC ? decimal(e.minC) : decimal(e.minC) + "–" + decimal(e.maxC)
        return "\(time(e.startedMs))–\(end) (\(duration), \(range) °C)"
    }

    /// 4.5 → "4,5"; 5 → "5,0"; 4.567 → "4,57" (two decimals at most, one at least).
    public static func decimal(_ v: Double) -> String {
        guard v.isFinite else { return "" }
        var s = String(format: "%.2f", v)
        if s.hasSuffix("0") { s.removeLast() }
        if s == "-0.0" { s = "0.0" }
        return s.replacingOccurrences(of: ".", with: ",")
    }

    /// Free text that a spreadsheet would run as a formula (starting with = + - @, a tab or a
    /// carriage return) gets a leading apostrophe, which shows it as text.
    public static func guardFormula(_ s: String) -> String {
        guard let f = s.unicodeScalars.first, "=+-@\t\r".unicodeScalars.contains(f) else { return s }
        return "'" + s
    }

    /// RFC 4180: a cell with `;`, `"`, CR or LF is quoted, its quotes doubled.
    public static func csvCell(_ s: String) -> String {
        guard s.contains(where: { $0 == ";" || $0 == "\"" || $0 == "\n" || $0 == "\r" || $0 == "\r\n" }) else { return s }
        return "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }

    // MARK: The day's arithmetic

    static func build(
        _ cal: Calendar, _ y: Int, _ m: Int, _ d: Int, workday: Workday, readings r: [ColdReading], excursions: [ExcursionRecord],
        nowMs: Int64
    ) -> ChartDay {
        let startDate = date(cal, y, m, d, minute: 0)
        let prev = cal.dateComponents([.year, .month, .day], from: cal.date(byAdding: .day, value: -1, to: startDate)!)
        let next = cal.dateComponents([.year, .month, .day], from: cal.date(byAdding: .day, value: 1, to: startDate)!)
        let start = ms(startDate)
        let end = ms(date(cal, next.year!, next.month!, next.day!, minute: 0))
        let opens = ms(date(cal, y, m, d, minute: workday.opensMinute))
        let closes = ms(date(cal, y, m, d, minute: workday.closesMinute))
        let prevCloses = ms(date(cal, prev.year!, prev.month!, prev.day!, minute: workday.closesMinute))

        let dayFrom = lowerBound(r, start), dayTo = lowerBound(r, end)
        let (dayMin, dayMax) = extremes(r, dayFrom..<dayTo)
        var opening: ChartPoint?
        var closing: ChartPoint?
        let i = lowerBound(r, opens)
        let k = upperBound(r, closes) - 1
        if i < r.count, r[i].atMs <= closes, k >= i {
            let (oMin, oMax) = extremes(r, upperBound(r, prevCloses)..<(i + 1))
            opening = ChartPoint(atMs: r[i].atMs, currentC: r[i].tempC, minC: oMin!, maxC: oMax!)
            let (cMin, cMax) = extremes(r, i..<(k + 1))
            closing = ChartPoint(atMs: r[k].atMs, currentC: r[k].tempC, minC: cMin!, maxC: cMax!)
        }
        let overlapping =
            excursions
            .filter { e in e.startedMs < end && max(e.endedMs ?? nowMs, e.startedMs + 1) > start }
            .sorted { $0.startedMs < $1.startedMs }
        return ChartDay(
            date: String(format: "%04d-%02d-%02d", y, m, d), startMs: start, endMs: end, opening: opening, closing: closing,
            dayMinC: dayMin, dayMaxC: dayMax, readings: dayTo - dayFrom, excursions: overlapping)
    }

    static func extremes(_ r: [ColdReading], _ range: Range<Int>) -> (Double?, Double?) {
        guard !range.isEmpty else { return (nil, nil) }
        var lo = r[range.lowerBound].tempC, hi = lo
        for x in r[range] { lo = min(lo, x.tempC); hi = max(hi, x.tempC) }
        return (lo, hi)
    }

    /// The first index whose reading is at or after `t`.
    static func lowerBound(_ r: [ColdReading], _ t: Int64) -> Int {
        var lo = 0, hi = r.count
        while lo < hi { let mid = (lo + hi) / 2; if r[mid].atMs < t { lo = mid + 1 } else { hi = mid } }
        return lo
    }
    /// The first index whose reading is after `t`.
    static func upperBound(_ r: [ColdReading], _ t: Int64) -> Int {
        var lo = 0, hi = r.count
        while lo < hi { let mid = (lo + hi) / 2; if r[mid].atMs <= t { lo = mid + 1 } else { hi = mid } }
        return lo
    }

    static func sortedReadings(_ r: [ColdReading]) -> [ColdReading] {
        zip(r, r.dropFirst()).allSatisfy { $0.atMs <= $1.atMs } ? r : r.sorted { $0.atMs < $1.atMs }
    }

    static func calendar(_ zone: TimeZone) -> Calendar {
        var cal = Calendar(identifier: .gregorian)
        cal.timeZone = zone
        return cal
    }
    /// The instant `minute` minutes into local day y-m-d (by the calendar: a skipped hour moves it on).
    static func date(_ cal: Calendar, _ y: Int, _ m: Int, _ d: Int, minute: Int) -> Date {
        cal.date(from: DateComponents(year: y, month: m, day: d, hour: minute / 60, minute: minute % 60))!
    }
    static func ms(_ d: Date) -> Int64 { Int64((d.timeIntervalSince1970 * 1000).rounded()) }
}
