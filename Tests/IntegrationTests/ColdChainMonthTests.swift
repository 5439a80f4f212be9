import CloudStub
import EdgeCore
import EdgeTestSupport
import Foundation
import Testing

/// Issue 14 point 7: a clinic month of a vaccine fridge against the real daemon, on the real
/// clock. The 38 days before now in São Paulo (the daemon logs a late reading at its own `ts`
/// up to 40 days back): a reading every 5 minutes published with its `ts`, with known opening
/// and closing values, two excursions (one past the alarm delay, one short door opening), one
/// silence of five hours; then the live silence alert, and the charts of the months those days
/// fall in (two or three: days before the readings show as without readings, days after today
/// as future days) checked day by day, value by value, JSON and CSV, against what the
/// generator says.
@Suite("Cold chain: a month's chart from the real daemon", .serialized)
struct ColdChainMonthTests {
    static let room = "geladeira-vacinas"
    static let device = "termo-1"
    static let day: Int64 = 86_400_000
    static let minute: Int64 = 60_000
    static let hour: Int64 = 3_600_000
    /// UTC−03:00 all year (no daylight saving since 2019): a local day is 24 hours from midnight.
    static let zone = TimeZone(identifier: "America/Sao_Paulo")!
    static var calendar: Calendar {
        var cal = Calendar(identifier: .gregorian)
        cal.timeZone = zone
        return cal
    }

    static let config = """
        rooms:
          geladeira-vacinas: {name: Geladeira de vacinas, limits: {temperature_c: {min: 2, max: 8, hysteresis: 0.5}},
                              cold_chain: {alarm_delay_minutes: 15, silence_minutes: 0.1,
                                           workday: {opens: "07:00", closes: "19:00"}}}

        """

    /// The generated days, relative to today's local midnight.
    struct Gen {
        let today: Int64
        /// Day d (0 is today, −1 yesterday), h:m local.
        func at(_ d: Int, _ h: Int, _ m: Int = 0) -> Int64 { today + Int64(d) * day + Int64(h) * hour + Int64(m) * minute }
        static let firstDay = -38
        static let longDay = -20, shortDay = -12, silentDay = -5

        /// The reading at `t`, nil in the silence. Inside the hysteresis band [2.5, 7.5] except
        /// the two excursions: 07:00 is 3.0x (x grows by 0.01 a day), 19:00 the day's highest
        /// 7.0x, 03:00 the night's lowest 2.6x, 22:00 the evening's high 6.6x (below 19:00, so the
        /// next opening's max cannot be the closing reading); the first day at 23:00 is 2.55,
        /// the next day's overnight min.
        func temp(_ t: Int64) -> Double? {
            let l = t - today
            let d = Int(l >= 0 ? l / day : -((-l + day - 1) / day))
            let m = Int((l - Int64(d) * day) / minute)
            let x = d - Self.firstDay
            if d == Self.firstDay && m == 23 * 60 { return 2.55 }
            // 10:00–10:40: out for 40 minutes (an alarm at 15); 7.9 is back inside [2, 8] but not
            // the band, so it still counts; 6.0 ends it.
            if d == Self.longDay && (600...640).contains(m) { return [8.6, 9.1, 8.8, 9.4, 8.9, 8.5, 8.2, 7.9, 6.0][(m - 600) / 5] }
            // 14:00–14:10: the door opened, 10 minutes, no alarm.
            if d == Self.shortDay && (840...850).contains(m) { return [8.3, 8.4, 5.0][(m - 840) / 5] }
            // 05:00–09:55: the sensor silent.
            if d == Self.silentDay && (300..<600).contains(m) { return nil }
            switch m {
            case 7 * 60: return Double(301 + x) / 100
            case 19 * 60: return Double(701 + x) / 100
            case 3 * 60: return Double(261 + x) / 100
            case 22 * 60: return Double(661 + x) / 100
            default:
                let k: Int = ((m * 7 + d * 13) % 21 + 21) % 21
                return Double(40 + k) / 10
            }
        }

        /// From the first day at 12:00 to the last 5 minutes before `nowMs`.
        func readings(nowMs: Int64) -> [ColdReading] {
            var out: [ColdReading] = []
            for t in stride(from: at(Self.firstDay, 12), to: nowMs - 2 * minute, by: Int(5 * minute)) {
                if let v = temp(t) { out.append(ColdReading(atMs: t, tempC: v)) }
            }
            return out
        }
    }

    struct Ref {
        var opening: (at: Int64, cur: Double, min: Double, max: Double)?
        var closing: (at: Int64, cur: Double, min: Double, max: Double)?
        var min: Double?
        var max: Double?
        var count: Int
        init(min: Double?, max: Double?, count: Int) { opening = nil; closing = nil; self.min = min; self.max = max; self.count = count }
    }

    /// The chart's rules (CONTRACT §6, docs/cold-chain.md) by brute force, for the local day from `start`.
    static func reference(_ r: [ColdReading], dayStart start: Int64) -> Ref {
        let opens = start + 7 * hour, closes = start + 19 * hour, prevCloses = closes - day
        let today = r.filter { $0.atMs >= start && $0.atMs < start + day }.map(\.tempC)
        var ref = Ref(min: today.min(), max: today.max(), count: today.count)
        let work = r.filter { $0.atMs >= opens && $0.atMs <= closes }
        if let o = work.first, let c = work.last {
            let night = r.filter { $0.atMs > prevCloses && $0.atMs <= o.atMs }.map(\.tempC)
            let span = r.filter { $0.atMs >= o.atMs && $0.atMs <= c.atMs }.map(\.tempC)
            ref.opening = (o.atMs, o.tempC, night.min()!, night.max()!)
            ref.closing = (c.atMs, c.tempC, span.min()!, span.max()!)
        }
        return ref
    }

    /// The stub's events of one name, as JSON (filtered before converting: the month's 8,000
    /// telemetry events are there too).
    static func events(_ env: Env, _ name: String) -> [JSON] {
        (env.stub?.receivedEvents() ?? []).filter { $0.objectValue?["name"]?.stringValue == name }.map(\.asJSON)
    }

    /// A CSV number back to a Double ("4,5" → 4.5); nil for an empty cell.
    static func number(_ cell: String) -> Double? { cell.isEmpty ? nil : Double(cell.replacingOccurrences(of: ",", with: ".")) }

    typealias Point = (at: Int64, cur: Double, min: Double, max: Double)

    @Test(
        "A month of 5-minute readings, two excursions, a silence: the excursion events, the live silence alert, the charts' JSON and CSV by day"
    )
    func month() async throws {
        let cal = Self.calendar
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        let gen = Gen(today: Int64(cal.startOfDay(for: Date()).timeIntervalSince1970 * 1000))
        let readings = gen.readings(nowMs: now)
        // One line per reading, published in time order by one mosquitto_pub.
        var lines = ""
        for (i, r) in readings.enumerated() {
            lines += JSONText.object { j in
                j.add("ts", Time.rfc3339(ms: r.atMs)); j.add("temperature_c", r.tempC); j.add("msg_id", "m\(i)")
            }
            lines += "\n"
        }
        let file = Harness.tempDir("coldmonth") + "/readings.txt"
        try lines.write(toFile: file, atomically: true, encoding: .utf8)

        let env = try await Env.start(extraConfig: Self.config)
        defer { Task { await env.stop() } }
        let acks = try await TopicCounter(port: env.broker.port, filter: env.topic("device/\(Self.device)/ack"))
        defer { acks.close() }
        let t0 = Date()
        let pub = try Harness.publishLines(
            port: env.broker.port, topic: env.topic("room/\(Self.room)/environment/\(Self.device)"), file: file, clientId: "termo-1-pub")
        defer { if pub.isRunning { kill(pub.processIdentifier, SIGKILL) } }
        try await ConsoleTests.addStaff(env)
        let staff = try await ConsoleTests.signIn(env)
        try await Harness.waitUntil("\(readings.count) readings acked", timeout: 90, poll: 0.2) { acks.counts.distinct >= readings.count }
        let published = Date()
        print("cold chain month: \(readings.count) readings published and acked in \(Int(published.timeIntervalSince(t0) * 1000)) ms")

        // Live: nothing more from the fridge — silent after silence_minutes (6 s), the last
        // reading being the generator's last.
        let lastAt = Time.rfc3339(ms: readings.last!.atMs)
        do {
            try await Harness.waitUntil("sensor_silent raised after the last reading", timeout: 40, poll: 0.5) {
                Self.events(env, "clinic/coldchain.sensor_silent").last?["data"]?["last_reading_at"]?.stringValue == lastAt
            }
        } catch {
            let seen = Self.events(env, "clinic/coldchain.sensor_silent").map { $0["data"]?.text ?? "" }
            let gauge = try? await env.metric(#"medic_edge_coldchain_sensor_silent{room="geladeira-vacinas"}"#)
            Issue.record(
                "sensor_silent events: \(seen); \(env.stub?.receivedEvents().count ?? 0) events at the cloud; gauge \(String(describing: gauge))")
            throw error
        }
        let silent = try #require(Self.events(env, "clinic/coldchain.sensor_silent").last?["data"])
        #expect(silent["state"]?.stringValue == "raised" && silent["device_id"]?.stringValue == Self.device)
        #expect(Date().timeIntervalSince(published) >= 3, "not before silence_minutes (6 s) after the last reading")
        print("cold chain month: silence raised at the cloud \(Int(Date().timeIntervalSince(published) * 1000)) ms after the last ack")

        // The excursions as the cloud saw them: one with its alarm, the door opening without.
        let excursionEvents = Self.events(env, "clinic/coldchain.excursion")
        #expect(excursionEvents.count == 5)
        let byId = Dictionary(grouping: excursionEvents.compactMap { $0["data"] }) { $0["excursion_id"]?.stringValue ?? "" }
        let longStart = gen.at(Gen.longDay, 10), shortStart = gen.at(Gen.shortDay, 14)
        let long = try #require(byId.values.first { $0.first?["started_at"]?.stringValue == Time.rfc3339(ms: longStart) })
        let short = try #require(byId.values.first { $0.first?["started_at"]?.stringValue == Time.rfc3339(ms: shortStart) })
        #expect(long.map { $0["state"]?.stringValue ?? "" } == ["started", "alarm", "ended"])
        #expect(short.map { $0["state"]?.stringValue ?? "" } == ["started", "ended"], "a 10-minute door opening makes no alarm")
        let longEnd = try #require(long.last), shortEnd = try #require(short.last)
        #expect(longEnd["ended_at"]?.stringValue == Time.rfc3339(ms: longStart + 40 * Self.minute))
        #expect(longEnd["duration_seconds"]?.doubleValue == 2400 && longEnd["min_c"]?.doubleValue == 7.9 && longEnd["max_c"]?.doubleValue == 9.4)
        #expect(shortEnd["duration_seconds"]?.doubleValue == 600 && shortEnd["min_c"]?.doubleValue == 8.3 && shortEnd["max_c"]?.doubleValue == 8.4)
        let longId = try #require(longEnd["excursion_id"]?.stringValue), shortId = try #require(shortEnd["excursion_id"]?.stringValue)

        // The staff acknowledge the long one with the action taken (a `;`, quotes, and a leading
        // `=` that a spreadsheet must not run).
        let action = "=Porta fechada; vacinas conferidas (\"ok\")"
        let ack = try await env.daemon.send(
            "POST", "/api/v1/coldchain/excursions/\(longId)/ack", body: JSONText.object { $0.add("action", action) },
            headers: ConsoleTests.bearer(staff))
        #expect(ack.status == 201, "\(ack.text)")

        // Every month the generated days fall in, JSON and CSV, day by day against the generator.
        var month = cal.dateComponents([.year, .month], from: Date(timeIntervalSince1970: Double(gen.at(Gen.firstDay, 0)) / 1000))
        let thisMonth = cal.dateComponents([.year, .month], from: Date())
        var checkedDays = 0
        var states: [String: Int] = [:]
        while true {
            let first = cal.date(from: DateComponents(year: month.year, month: month.month, day: 1))!
            let n = try await checkMonth(
                env, staff, gen: gen, readings: readings, first: first, ids: (longId, shortId), action: action, states: &states)
            checkedDays += n
            if month.year == thisMonth.year && month.month == thisMonth.month { break }
            month = cal.dateComponents([.year, .month], from: cal.date(byAdding: .month, value: 1, to: first)!)
        }
        #expect(checkedDays >= 38 && states["ok", default: 0] >= 30 && states["excursão"] == 2, "\(states)")
        print("cold chain month: \(checkedDays) days checked, \(states)")

        // Refusals: a bad month, a room that is not a fridge, no session.
        let bad = try await env.daemon.get("/api/v1/coldchain/\(Self.room)/chart?month=2026-13", headers: ConsoleTests.bearer(staff))
        #expect(bad.status == 400 && ConsoleTests.errorCode(bad) == "bad_month")
        let nofridge = try await env.daemon.get("/api/v1/coldchain/sala-1/chart", headers: ConsoleTests.bearer(staff))
        #expect(nofridge.status == 404)
        #expect(try await env.daemon.get("/api/v1/coldchain/\(Self.room)/chart").status == 401)
        print("cold chain month: whole test \(Int(Date().timeIntervalSince(t0) * 1000)) ms after the first publish")
        await env.stop()
    }

    /// One month's chart, JSON and CSV, checked day by day against the generator; returns the days checked.
    func checkMonth(
        _ env: Env, _ staff: ConsoleTests.Staffer, gen: Gen, readings: [ColdReading], first: Date, ids: (long: String, short: String),
        action: String, states: inout [String: Int]
    ) async throws -> Int {
        let cal = Self.calendar
        let ym = cal.dateComponents([.year, .month], from: first)
        let text = String(format: "%04d-%02d", ym.year!, ym.month!)
        let path = "/api/v1/coldchain/\(Self.room)/chart?month=\(text)"
        let r = try await env.daemon.get(path, headers: ConsoleTests.bearer(staff))
        try #require(r.status == 200, "\(r.status) \(r.text)")
        let chart = try JSON.parse(r.body)
        #expect(chart["room_id"]?.stringValue == Self.room && chart["month"]?.stringValue == text)
        let count = cal.range(of: .day, in: .month, for: first)!.count
        let firstMs = Int64(first.timeIntervalSince1970 * 1000)
        let days = try #require(chart["days"]?.arrayValue)
        try #require(days.count == count)

        let c = try await env.daemon.get(path + "&format=csv", headers: ConsoleTests.bearer(staff))
        try #require(c.status == 200, "\(c.status) \(c.text)")
        #expect(c.headers["content-type"] == "text/csv; charset=utf-8")
        #expect(c.headers["content-disposition"] == "attachment; filename=\"temperaturas-geladeira-vacinas-\(text).csv\"")
        #expect(Array(c.body.prefix(3)) == [0xEF, 0xBB, 0xBF], "UTF-8 with a BOM")
        let rows = csvRows(String(c.text.dropFirst()))
        try #require(rows.count == count + 1 && rows.allSatisfy { $0.count == 16 })
        #expect(rows[0].first == "Data" && rows[0].last == "Situação")
        let longStart = gen.at(Gen.longDay, 10)

        for (i, j) in days.enumerated() {
            let start = firstMs + Int64(i) * Self.day
            let d = Int((start - gen.today) / Self.day)
            let ref = Self.reference(readings, dayStart: start)
            let date = text + String(format: "-%02d", i + 1)
            #expect(j["date"]?.stringValue == date)
            for (key, p) in [("opening", ref.opening), ("closing", ref.closing)] {
                if let p {
                    let o = try #require(j[key]?.objectValue, "\(date) \(key)")
                    #expect(o["at"]?.stringValue == Time.rfc3339(ms: p.at), "\(date) \(key)")
                    #expect(o["current_c"]?.doubleValue == p.cur, "\(date) \(key)")
                    #expect(o["min_c"]?.doubleValue == p.min && o["max_c"]?.doubleValue == p.max, "\(date) \(key)")
                } else {
                    #expect(j[key]?.isNull == true, "\(date) \(key)")
                }
            }
            #expect(j["day_min_c"]?.doubleValue == ref.min && j["day_max_c"]?.doubleValue == ref.max, "\(date) extremes")
            #expect(j["readings"]?.doubleValue == Double(ref.count), "\(date) readings")
            let listed = j["excursions"]?.arrayValue?.compactMap { $0["id"]?.stringValue }
            #expect(listed == (d == Gen.longDay ? [ids.long] : d == Gen.shortDay ? [ids.short] : []), "\(date) excursions")

            let row = rows[i + 1]
            #expect(row[0] == String(format: "%02d/%02d/%04d", i + 1, ym.month!, ym.year!))
            let o: Point? = ref.opening, cl: Point? = ref.closing
            #expect(row[1] == (o.map { KioskMessages.clock($0.at, zone: Self.zone) } ?? ""), "\(date)")
            #expect(row[5] == (cl.map { KioskMessages.clock($0.at, zone: Self.zone) } ?? ""), "\(date)")
            let cells: [Double?] = [2, 3, 4, 6, 7, 8, 9, 10].map { Self.number(row[$0]) }
            let want: [Double?] = [o?.cur, o?.min, o?.max, cl?.cur, cl?.min, cl?.max, ref.min, ref.max]
            #expect(cells == want, "\(date)")
            #expect(row[11] == String(ref.count))
            switch d {
            case Gen.longDay:
                #expect(row[12...15] == ["10:00–10:40 (40 min, 7,9–9,4 °C)", "'" + action, "recepcao", "excursão"])
            case Gen.shortDay:
                #expect(row[12...15] == ["14:00–14:10 (10 min, 8,3–8,4 °C)", "pendente", "pendente", "excursão"])
            default:
                let state: String
                if ref.count > 0 {
                    state = ref.opening == nil ? "sem leituras no expediente" : "ok"
                } else {
                    state = d > 0 ? "dia futuro" : "sem leituras"
                }
                #expect(row[12...15] == ["", "", "", state], "\(date)")
            }
            states[row[15], default: 0] += 1

            // The generator's known values, spelled out.
            switch d {
            case Gen.firstDay + 1:
                #expect(j["opening"]?["min_c"]?.doubleValue == 2.55, "the overnight min is the previous day's 23:00")
                #expect(j["opening"]?["max_c"]?.doubleValue == 6.61 && j["opening"]?["current_c"]?.doubleValue == 3.02)
                #expect(row[1...4] == ["07:00", "3,02", "2,55", "6,61"])
            case Gen.firstDay + 2:
                #expect(j["opening"]?["max_c"]?.doubleValue == 6.62, "the previous closing (7.02 at 19:00) is not the next overnight's")
                #expect(j["closing"]?["current_c"]?.doubleValue == 7.03 && j["readings"]?.doubleValue == 288)
            case Gen.longDay:
                #expect(j["day_max_c"]?.doubleValue == 9.4 && j["closing"]?["max_c"]?.doubleValue == 9.4)
                let e = try #require(j["excursions"]?.arrayValue?.first)
                #expect(e["started_at"]?.stringValue == Time.rfc3339(ms: longStart) && e["duration_seconds"]?.doubleValue == 2400)
                #expect(e["ended_at"]?.stringValue == Time.rfc3339(ms: longStart + 40 * Self.minute))
                #expect(e["min_c"]?.doubleValue == 7.9 && e["max_c"]?.doubleValue == 9.4)
                #expect(e["acknowledged_by"]?.stringValue == "recepcao" && e["action"]?.stringValue == action)
            case Gen.shortDay:
                let e = try #require(j["excursions"]?.arrayValue?.first)
                #expect(e["duration_seconds"]?.doubleValue == 600 && e["acknowledged_by"]?.isNull == true && e["action"]?.isNull == true)
            case Gen.silentDay:
                #expect(j["readings"]?.doubleValue == 228, "five silent hours are 60 readings fewer")
                #expect(j["opening"]?["at"]?.stringValue == Time.rfc3339(ms: gen.at(d, 10)), "the opening is the first reading after the silence")
            default: break
            }
        }
        // The raw text: the action's cell quoted, its quotes doubled, the formula guarded.
        if c.text.contains("recepcao") {
            #expect(c.text.contains(#";"'=Porta fechada; vacinas conferidas (""ok"")";recepcao;excursão"#))
        }
        return count
    }
}
