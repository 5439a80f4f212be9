import Foundation
import Testing
@testable import EdgeCore
import EdgeTestSupport

/// A generated November 2026 in São Paulo (UTC−03:00 all month, no daylight saving): a reading
/// every 5 minutes with known values at known times, and a reference chart computed by plain
/// arithmetic and linear scans (not the calendar nor the binary searches the chart uses).
enum GenMonth {
    static let zone = Clinic.saoPaulo
    /// 2026-11-01T00:00:00-03:00.
    static let novStart: Int64 = 1_793_502_000_000
    static let day: Int64 = 86_400_000
    static let step: Int64 = 5 * Clinic.minute
    static let workday = Workday.standard

    /// (day index from 1 November — −1 is 31 October —, minute of the local day).
    static func local(_ t: Int64) -> (day: Int, minute: Int) {
        let l = t - novStart
        let d = l >= 0 ? l / day : -((-l + day - 1) / day)
        return (Int(d), Int((l - d * day) / Clinic.minute))
    }

    /// 07:00 is 3.0x (x the day), 19:00 the day's highest 7.9x, 03:00 the night's lowest 2.5x,
    /// 22:00 the evening's high 7.6x (lower than 19:00: the next opening's max must not take the
    /// closing reading); 31 October 23:00 is 1.5 (the 1st's overnight min); else 4.0–7.0.
    static func temp(_ t: Int64) -> Double {
        let (d, m) = local(t)
        // Whole hundredths divided once, so that 301 / 100 is exactly the literal 3.01.
        if d == -1 && m == 23 * 60 { return 1.5 }
        switch m {
        case 7 * 60: return Double(301 + d) / 100
        case 19 * 60: return Double(791 + d) / 100
        case 3 * 60: return Double(251 + d) / 100
        case 22 * 60: return Double(761 + d) / 100
        default:
            let k: Int = ((m * 7 + d * 13) % 31 + 31) % 31
            return Double(40 + k) / 10
        }
    }

    /// Readings from `from` to `to` (exclusive) every 5 minutes, minus the silences: all of
    /// 10 November and 11 November before 08:00.
    static func readings(from: Int64, to: Int64) -> [ColdReading] {
        var out: [ColdReading] = []
        var t = from
        while t < to {
            let (d, m) = local(t)
            if !(d == 9 || (d == 10 && m < 8 * 60)) { out.append(ColdReading(atMs: t, tempC: temp(t))) }
            t += step
        }
        return out
    }

    struct Ref { var opening: ChartPoint?; var closing: ChartPoint?; var min: Double?; var max: Double?; var count: Int }

    /// The chart's rules by brute force over every reading, for day index `d`.
    static func reference(_ r: [ColdReading], day d: Int) -> Ref {
        let start = novStart + Int64(d) * day
        let opens = start + 7 * Clinic.hour, closes = start + 19 * Clinic.hour, prevCloses = closes - day
        let today = r.filter { $0.atMs >= start && $0.atMs < start + day }.map(\.tempC)
        var ref = Ref(opening: nil, closing: nil, min: today.min(), max: today.max(), count: today.count)
        let work = r.filter { $0.atMs >= opens && $0.atMs <= closes }
        if let o = work.first, let c = work.last {
            let night = r.filter { $0.atMs > prevCloses && $0.atMs <= o.atMs }.map(\.tempC)
            let span = r.filter { $0.atMs >= o.atMs && $0.atMs <= c.atMs }.map(\.tempC)
            ref.opening = ChartPoint(atMs: o.atMs, currentC: o.tempC, minC: night.min()!, maxC: night.max()!)
            ref.closing = ChartPoint(atMs: c.atMs, currentC: c.tempC, minC: span.min()!, maxC: span.max()!)
        }
        return ref
    }

    static func at(_ d: Int, _ h: Int, _ m: Int = 0) -> Int64 { novStart + Int64(d) * day + Int64(h) * Clinic.hour + Int64(m) * Clinic.minute }
}

@Suite("Cold chain daily chart (CONTRACT §6)")
struct ColdChainChartTests {
    static let room = "geladeira-vacinas"

    static func excursion(_ id: String, _ from: Int64, _ to: Int64?, min: Double = 8.1, max: Double = 9.4, by: String? = nil, action: String? = nil)
        -> ExcursionRecord
    {
        ExcursionRecord(
            id: id, room: room, device: "termo-1", startedMs: from, endedMs: to, minC: min, maxC: max, ackBy: by, ackMs: by == nil ? nil : to,
            action: action)
    }

    static func parsedDays(_ json: String) throws -> [[String: JSON]] {
        let root = try JSON.parse(json)
        return try #require(root["days"]?.arrayValue).map { try #require($0.objectValue) }
    }

    /// A CSV number back to a Double ("4,5" → 4.5); nil for an empty cell.
    static func number(_ cell: String) -> Double? { cell.isEmpty ? nil : Double(cell.replacingOccurrences(of: ",", with: ".")) }

    @Test("Given the readings window for November 2026, then it runs from 31 October 19:00 local to 1 December 00:00 local")
    func window() throws {
        let w = try ColdChainChart.readingWindow(month: "2026-11", timeZone: GenMonth.zone, workday: .standard)
        #expect(w.fromMs == GenMonth.at(-1, 19))
        #expect(w.toMs == GenMonth.at(30, 0))
        #expect(Time.rfc3339(ms: w.fromMs) == "2026-10-31T22:00:00Z")
        #expect(Time.rfc3339(ms: w.toMs) == "2026-12-01T03:00:00Z")
    }

    @Test(
        "A month of 5-minute readings with known values: every day's opening, closing, extremes and count match the reference (struct, JSON, CSV)"
    )
    func generatedMonth() throws {
        let w = try ColdChainChart.readingWindow(month: "2026-11", timeZone: GenMonth.zone, workday: .standard)
        // A day of readings before the window too: the chart must take only its own.
        let readings = GenMonth.readings(from: w.fromMs - GenMonth.day, to: w.toMs)
        let now = GenMonth.at(30, 10)
        let m = try ColdChainChart.month(
            room: Self.room, month: "2026-11", timeZone: GenMonth.zone, workday: .standard, readings: readings, excursions: [], nowMs: now)
        #expect(m.days.count == 30)
        let json = try Self.parsedDays(ColdChainChart.json(m, nowMs: now))
        let csv = csvRows(ColdChainChart.csv(m, nowMs: now))
        #expect(json.count == 30 && csv.count == 31)
        for d in 0..<30 {
            let ref = GenMonth.reference(readings, day: d)
            let day = m.days[d]
            let date = String(format: "2026-11-%02d", d + 1)
            #expect(day.date == date)
            #expect(day.opening == ref.opening, "\(date) opening")
            #expect(day.closing == ref.closing, "\(date) closing")
            #expect(day.dayMinC == ref.min && day.dayMaxC == ref.max && day.readings == ref.count, "\(date) extremes and count")
            // The JSON, value by value.
            let j = json[d]
            #expect(j["date"]?.stringValue == date)
            for (key, point) in [("opening", ref.opening), ("closing", ref.closing)] {
                if let point {
                    let o = try #require(j[key]?.objectValue, "\(date) \(key)")
                    #expect(o["at"]?.stringValue == Time.rfc3339(ms: point.atMs))
                    #expect(o["current_c"]?.doubleValue == point.currentC)
                    #expect(o["min_c"]?.doubleValue == point.minC && o["max_c"]?.doubleValue == point.maxC, "\(date) \(key)")
                } else {
                    #expect(j[key]?.isNull == true, "\(date) \(key) is null")
                }
            }
            #expect(j["day_min_c"]?.doubleValue == ref.min && j["day_max_c"]?.doubleValue == ref.max)
            #expect(j["readings"]?.doubleValue == Double(ref.count))
            #expect(j["excursions"]?.arrayValue == [])
            // The CSV, value by value.
            let row = csv[d + 1]
            #expect(row.count == ColdChainChart.csvColumns.count)
            #expect(row[0] == String(format: "%02d/11/2026", d + 1))
            for (offset, point) in [(1, ref.opening), (5, ref.closing)] {
                #expect(row[offset] == (point.map { KioskMessages.clock($0.atMs, zone: GenMonth.zone) } ?? ""))
                #expect(Self.number(row[offset + 1]) == point?.currentC, "\(date) column \(offset + 1)")
                #expect(Self.number(row[offset + 2]) == point?.minC && Self.number(row[offset + 3]) == point?.maxC)
            }
            #expect(Self.number(row[9]) == ref.min && Self.number(row[10]) == ref.max && row[11] == String(ref.count))
            #expect(row[12...14] == ["", "", ""])
            #expect(row[15] == (ref.count == 0 ? "sem leituras" : "ok"), "\(date) state")
        }

        // The same, spelled out for a few days.
        // 1 November: the overnight min/max take 31 October's evening (1.5 at 23:00, 7.6 at 22:00).
        #expect(m.days[0].opening == ChartPoint(atMs: GenMonth.at(0, 7), currentC: 3.01, minC: 1.5, maxC: 7.6))
        #expect(csv[1][0...4] == ["01/11/2026", "07:00", "3,01", "1,5", "7,6"])
        // 2 November: after 1 November's closing (7.91 at 19:00, not included) up to 07:00.
        #expect(m.days[1].opening == ChartPoint(atMs: GenMonth.at(1, 7), currentC: 3.02, minC: 2.52, maxC: 7.61))
        #expect(m.days[1].closing == ChartPoint(atMs: GenMonth.at(1, 19), currentC: 7.92, minC: 3.02, maxC: 7.92))
        #expect(m.days[1].dayMinC == 2.52 && m.days[1].dayMaxC == 7.92 && m.days[1].readings == 288)
        #expect(csv[2][5...11] == ["19:00", "7,92", "3,02", "7,92", "2,52", "7,92", "288"])
        // 10 November: silent all day — present, with nulls, and said so.
        #expect(m.days[9].opening == nil && m.days[9].closing == nil && m.days[9].dayMinC == nil && m.days[9].readings == 0)
        #expect(csv[10] == ["10/11/2026"] + Array(repeating: "", count: 10) + ["0", "", "", "", "sem leituras"])
        // 11 November: silent until 08:00 — the opening is the 08:00 reading, alone in its window.
        let at8 = GenMonth.at(10, 8)
        let v8 = GenMonth.temp(at8)
        #expect(m.days[10].opening == ChartPoint(atMs: at8, currentC: v8, minC: v8, maxC: v8))
        #expect(m.days[10].readings == 192)
    }

    @Test("Given readings exactly at opens and exactly at closes, then they are the opening and the closing; a millisecond outside is not")
    func boundaries() throws {
        let r = [
            (6, 59, 1.0), (7, 0, 3.0), (12, 0, 5.0), (19, 0, 6.0), (19, 5, 9.0),
        ].map { ColdReading(atMs: GenMonth.at(2, $0.0, $0.1), tempC: $0.2) }
        let d = try ColdChainChart.day(
            date: "2026-11-03", timeZone: GenMonth.zone, workday: .standard, readings: r, excursions: [], nowMs: GenMonth.at(5, 0))
        #expect(d.opening == ChartPoint(atMs: GenMonth.at(2, 7), currentC: 3.0, minC: 1.0, maxC: 3.0))
        #expect(d.closing == ChartPoint(atMs: GenMonth.at(2, 19), currentC: 6.0, minC: 3.0, maxC: 6.0))
        #expect(d.dayMinC == 1.0 && d.dayMaxC == 9.0 && d.readings == 5)

        // One millisecond after opens / before closes is still inside; one before opens / after closes is not.
        let inner = [
            ColdReading(atMs: GenMonth.at(2, 7) - 1, tempC: 2.0), ColdReading(atMs: GenMonth.at(2, 7) + 1, tempC: 4.0),
            ColdReading(atMs: GenMonth.at(2, 19) - 1, tempC: 5.0), ColdReading(atMs: GenMonth.at(2, 19) + 1, tempC: 7.0),
        ]
        let e = try ColdChainChart.day(
            date: "2026-11-03", timeZone: GenMonth.zone, workday: .standard, readings: inner, excursions: [], nowMs: GenMonth.at(5, 0))
        #expect(e.opening == ChartPoint(atMs: GenMonth.at(2, 7) + 1, currentC: 4.0, minC: 2.0, maxC: 4.0))
        #expect(e.closing == ChartPoint(atMs: GenMonth.at(2, 19) - 1, currentC: 5.0, minC: 4.0, maxC: 5.0))

        // Readings only outside the workday: extremes and count, no opening or closing.
        let night = [ColdReading(atMs: GenMonth.at(2, 3), tempC: 4.0), ColdReading(atMs: GenMonth.at(2, 21), tempC: 5.0)]
        let n = try ColdChainChart.day(
            date: "2026-11-03", timeZone: GenMonth.zone, workday: .standard, readings: night, excursions: [], nowMs: GenMonth.at(5, 0))
        #expect(n.opening == nil && n.closing == nil && n.readings == 2 && n.dayMinC == 4.0 && n.dayMaxC == 5.0)
        let row = ColdChainChart.csvRow(n, zone: GenMonth.zone, nowMs: GenMonth.at(5, 0))
        #expect(row.last == "sem leituras no expediente")
    }

    @Test("Given excursions across midnight, ending at midnight and still open, then each is listed on every day it overlaps and only those")
    func excursionsByDay() throws {
        let now = GenMonth.at(30, 10)  // 1 December 10:00
        let across = Self.excursion("e-across", GenMonth.at(4, 23, 50), GenMonth.at(5, 0, 20), by: "Enf. Ana", action: "Porta fechada")
        let toMidnight = Self.excursion("e-midnight", GenMonth.at(6, 23, 30), GenMonth.at(7, 0), min: 1.2, max: 1.9)
        let open = Self.excursion("e-open", GenMonth.at(28, 22), nil, min: 8.4, max: 8.4)
        let m = try ColdChainChart.month(
            room: Self.room, month: "2026-11", timeZone: GenMonth.zone, workday: .standard, readings: [],
            excursions: [open, toMidnight, across], nowMs: now)
        let listed = m.days.map { $0.excursions.map(\.id) }
        for (d, ids) in listed.enumerated() {
            switch d {
            case 4, 5: #expect(ids == ["e-across"], "day \(d + 1)")
            case 6: #expect(ids == ["e-midnight"], "day \(d + 1)")
            case 28, 29: #expect(ids == ["e-open"], "day \(d + 1)")
            default: #expect(ids.isEmpty, "day \(d + 1)")
            }
        }
        let json = try Self.parsedDays(ColdChainChart.json(m, nowMs: now))
        let e = try #require(json[4]["excursions"]?.arrayValue?.first?.objectValue)
        #expect(e["id"]?.stringValue == "e-across")
        #expect(e["started_at"]?.stringValue == "2026-11-06T02:50:00Z" && e["ended_at"]?.stringValue == "2026-11-06T03:20:00Z")
        #expect(e["duration_seconds"]?.doubleValue == 1800 && e["min_c"]?.doubleValue == 8.1 && e["max_c"]?.doubleValue == 9.4)
        #expect(e["acknowledged_by"]?.stringValue == "Enf. Ana" && e["action"]?.stringValue == "Porta fechada")
        let o = try #require(json[29]["excursions"]?.arrayValue?.first?.objectValue)
        #expect(o["ended_at"]?.isNull == true && o["acknowledged_by"]?.isNull == true && o["action"]?.isNull == true)
        #expect(o["duration_seconds"]?.doubleValue == Double((now - GenMonth.at(28, 22)) / 1000), "an open one lasts until now")

        let csv = csvRows(ColdChainChart.csv(m, nowMs: now))
        #expect(csv[5][12...15] == ["23:50–06/11 00:20 (30 min, 8,1–9,4 °C)", "Porta fechada", "Enf. Ana", "excursão, sem leituras"])
        #expect(csv[6][12] == "05/11 23:50–00:20 (30 min, 8,1–9,4 °C)")
        #expect(csv[7][12...14] == ["23:30–08/11 00:00 (30 min, 1,2–1,9 °C)", "pendente", "pendente"])
        #expect(csv[30][12] == "29/11 22:00–em aberto (36 h 00 min, 8,4 °C)")
        #expect(csv[30][15] == "excursão, sem leituras", "a day without readings says so even with an excursion")
    }

    @Test("Given the current month, then the days after now are present with nulls and the CSV calls them future days")
    func currentMonth() throws {
        let now = GenMonth.at(14, 12, 2)  // 15 November 12:02
        let w = try ColdChainChart.readingWindow(month: "2026-11", timeZone: GenMonth.zone, workday: .standard)
        let readings = GenMonth.readings(from: w.fromMs, to: now + 1)
        let m = try ColdChainChart.month(
            room: Self.room, month: "2026-11", timeZone: GenMonth.zone, workday: .standard, readings: readings, excursions: [], nowMs: now)
        #expect(m.days.count == 30)
        #expect(m.days[14].closing?.atMs == GenMonth.at(14, 12), "today's closing so far is the last reading")
        #expect(m.days[14].readings == 12 * 12 + 1)
        for d in m.days[15...] { #expect(d.opening == nil && d.closing == nil && d.dayMinC == nil && d.readings == 0 && d.excursions.isEmpty) }
        let csv = csvRows(ColdChainChart.csv(m, nowMs: now))
        #expect(csv[15].last == "ok" && csv[16].last == "dia futuro" && csv[30].last == "dia futuro")
        #expect(csv[10].last == "sem leituras", "the silent 10 November, in the past, is not a future day")
    }

    @Test("Given the CSV, then it starts with a BOM, uses ; and CRLF, decimal commas, quotes per RFC 4180 and guards against formulas")
    func csvFormat() throws {
        let now = GenMonth.at(30, 10)
        let start = GenMonth.at(2, 10, 2), end = GenMonth.at(2, 10, 40)
        let tricky = Self.excursion(
            "e1", start, end, min: -1.5, max: 9.4, by: "@Beto; \"Chefe\"", action: "=HYPERLINK(\"http://x\";\"ok\")\nligou para a Dra.")
        let minus = Self.excursion("e2", GenMonth.at(2, 14), GenMonth.at(2, 14, 0) + 45_000, min: 8.2, max: 8.2, by: "Ana", action: "-2+3")
        let readings = [ColdReading(atMs: GenMonth.at(2, 7), tempC: -1.5), ColdReading(atMs: GenMonth.at(2, 19), tempC: 4.567)]
        let m = try ColdChainChart.month(
            room: Self.room, month: "2026-11", timeZone: GenMonth.zone, workday: .standard, readings: readings, excursions: [minus, tricky],
            nowMs: now)
        let text = ColdChainChart.csv(m, nowMs: now)
        #expect(text.unicodeScalars.first == "\u{FEFF}")
        #expect(Array(text.utf8.prefix(3)) == [0xEF, 0xBB, 0xBF])
        let header =
            "\u{FEFF}Data;Abertura (hora);Abertura atual (°C);Abertura mín (°C);Abertura máx (°C);Fechamento (hora);Fechamento atual (°C);"
            + "Fechamento mín (°C);Fechamento máx (°C);Mínima do dia (°C);Máxima do dia (°C);Leituras;Excursões;"
            + "Ações tomadas;Responsável;Situação\r\n"
        #expect(text.hasPrefix(header))
        #expect(text.hasSuffix("\r\n"))
        let rows = csvRows(String(text.dropFirst()))
        #expect(rows.count == 31 && rows.allSatisfy { $0.count == 16 })
        let r = rows[3]
        #expect(r[0...11] == ["03/11/2026", "07:00", "-1,5", "-1,5", "-1,5", "19:00", "4,57", "-1,5", "4,57", "-1,5", "4,57", "2"])
        #expect(r[12] == "10:02–10:40 (38 min, -1,5–9,4 °C) | 14:00–14:00 (45 s, 8,2 °C)")
        #expect(r[13] == "'=HYPERLINK(\"http://x\";\"ok\")\nligou para a Dra. | -2+3", "a formula gets an apostrophe; the text is kept")
        #expect(r[14] == "'@Beto; \"Chefe\" | Ana")
        // The raw line: the cells with ; " or a newline are quoted with doubled quotes.
        #expect(text.contains(";\"'=HYPERLINK(\"\"http://x\"\";\"\"ok\"\")\nligou para a Dra. | -2+3\";\"'@Beto; \"\"Chefe\"\" | Ana\";excursão\r\n"))

        #expect(ColdChainChart.decimal(4.5) == "4,5" && ColdChainChart.decimal(5) == "5,0" && ColdChainChart.decimal(-0.001) == "0,0")
        #expect(ColdChainChart.decimal(-12.25) == "-12,25" && ColdChainChart.decimal(.nan) == "")
        for bad in ["=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx"] { #expect(ColdChainChart.guardFormula(bad) == "'" + bad) }
        for fine in ["Porta fechada", "1-2", "'já", ""] { #expect(ColdChainChart.guardFormula(fine) == fine) }
        #expect(ColdChainChart.csvCell("a\r\nb") == "\"a\r\nb\"" && ColdChainChart.csvCell("plain") == "plain")
    }

    @Test(
        "Given a month that is not YYYY-MM, then it is rejected with a clear error",
        arguments: ["", "2026-1", "2026-13", "2026-00", "26-11", "2026/11", "2026-11-01", "２０２６-11", "abcd-ef", "0999-11", " 2026-11", "2026-+1"])
    func badMonths(_ text: String) {
        #expect(throws: ChartError("month must be YYYY-MM (for example 2026-12), not \"\(text)\"")) {
            try ColdChainChart.month(
                room: Self.room, month: text, timeZone: GenMonth.zone, workday: .standard, readings: [], excursions: [], nowMs: 0)
        }
        #expect(throws: ChartError.self) { try ColdChainChart.readingWindow(month: text, timeZone: GenMonth.zone, workday: .standard) }
    }

    @Test("Given a bad date for one day, then it is rejected; months of 28, 29 and 31 days have that many rows")
    func datesAndLengths() throws {
        for bad in ["2026-11-31", "2026-02-29", "07/12/2026", ""] {
            #expect(throws: ChartError.self) {
                try ColdChainChart.day(date: bad, timeZone: GenMonth.zone, workday: .standard, readings: [], excursions: [], nowMs: 0)
            }
        }
        for (month, n) in [("2026-02", 28), ("2028-02", 29), ("2026-12", 31), ("2026-04", 30)] {
            let m = try ColdChainChart.month(
                room: Self.room, month: month, timeZone: GenMonth.zone, workday: .standard, readings: [], excursions: [], nowMs: 0)
            #expect(m.days.count == n && m.days.last?.date == "\(month)-\(n)")
        }
    }

    @Test("Given a zone with daylight saving, when the clocks go forward, then opens is 07:00 on the local clock and the day is 23 hours")
    func daylightSaving() throws {
        let ny = try #require(TimeZone(identifier: "America/New_York"))
        // 2026-03-08: 02:00 EST → 03:00 EDT. Local midnight is 05:00Z, 07:00 EDT is 11:00Z.
        let midnight: Int64 = 1_772_946_000_000
        #expect(Time.rfc3339(ms: midnight) == "2026-03-08T05:00:00Z")
        let r = [
            ColdReading(atMs: midnight + 6 * Clinic.hour - 1, tempC: 5.0),  // 10:59:59.999Z = 06:59 EDT
            ColdReading(atMs: midnight + 6 * Clinic.hour, tempC: 4.0),  // 11:00Z = 07:00 EDT
            ColdReading(atMs: midnight + 23 * Clinic.hour - 1, tempC: 6.0),  // 23:59:59.999 EDT
        ]
        let d = try ColdChainChart.day(
            date: "2026-03-08", timeZone: ny, workday: .standard, readings: r, excursions: [], nowMs: midnight + 2 * GenMonth.day)
        #expect(d.endMs - d.startMs == 23 * Clinic.hour)
        #expect(d.opening?.atMs == midnight + 6 * Clinic.hour && d.opening?.minC == 4.0 && d.opening?.maxC == 5.0)
        #expect(d.readings == 3)
    }

    @Test("Given a day's row, then the daily summary fields are the chart's opening, closing, extremes and counts")
    func dailySummary() throws {
        let r = [ColdReading(atMs: GenMonth.at(2, 7), tempC: 4.5), ColdReading(atMs: GenMonth.at(2, 19), tempC: 5.0)]
        let d = try ColdChainChart.day(
            date: "2026-11-03", timeZone: GenMonth.zone, workday: .standard, readings: r,
            excursions: [Self.excursion("e", GenMonth.at(2, 9), GenMonth.at(2, 9, 10))], nowMs: GenMonth.at(3, 0))
        let text = JSONText.object { j in
            j.add("room_id", Self.room)
            ColdChainChart.addSummary(d, to: &j)
        }
        #expect(
            text
                == #"{"room_id":"geladeira-vacinas","date":"2026-11-03","#
                + #""opening":{"at":"2026-11-03T10:00:00Z","current_c":4.5,"min_c":4.5,"max_c":4.5},"#
                + #""closing":{"at":"2026-11-03T22:00:00Z","current_c":5,"min_c":4.5,"max_c":5},"#
                + #""day_min_c":4.5,"day_max_c":5,"readings":2,"excursions":1}"#
        )
        let empty = try ColdChainChart.day(date: "2026-11-04", timeZone: GenMonth.zone, workday: .standard, readings: [], excursions: [], nowMs: 0)
        #expect(
            JSONText.object { ColdChainChart.addSummary(empty, to: &$0) }
                == #"{"date":"2026-11-04","opening":null,"closing":null,"day_min_c":null,"day_max_c":null,"readings":0,"excursions":0}"#)
    }
}
