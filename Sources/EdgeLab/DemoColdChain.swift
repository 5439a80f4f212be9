import CloudStub
import EdgeCore
import EdgeSimulators
import EdgeTestSupport
import Foundation

// The demo's cold-chain chapter (CONTRACT §6, docs/demo.md): the vaccine fridge's data logger
// flushes a month of buffered readings when it connects; then, with the internet down, the
// monthly chart, a short door opening (no alarm), a door left open (alarm), the staff's
// acknowledgement from the console, and a dead probe (sensor silence raised and cleared).
// Every step waits for its evidence on the appliance's own API (the cloud is down).

extension DemoRunner {
    static let fridgeRoom = "geladeira-vacinas"

    /// The cold-chain timing of the demo's config: the field's 15-minute alarm delay and
    /// 10-minute silence, compressed like the fridge's readings (one per simulated minute).
    static func coldChainMinutes(_ pace: Pace) -> (alarm: Double, silence: Double) {
        (15 / pace.fridgeRate, 10 / pace.fridgeRate)
    }

    /// A month of the logger's buffer, sent oldest first with flow control (before any live reading).
    func flushHistory(_ log: StoryLog, fridge: FridgeSim, history: FridgeHistory) async throws {
        let ex = history.excursions()
        log.line(
            "fridge",
            "env-geladeira (the vaccine fridge's data logger) connects with \(history.readings.count) readings in its buffer: "
                + "every 5 min for 30 days, each with its own ts and msg_id; \(ex.count) past excursions in them")
        let b: FridgeSim.Backfill
        do { b = try await fridge.sendHistory(history, window: 200, timeout: 90) } catch is CancellationError { throw CancellationError() } catch {
            throw StepFailed(step: "fridge history", detail: "\(error)")
        }
        fridge.resumeReadings()
        log.line(
            "fridge",
            "buffer flushed oldest first, at most \(b.window) unacknowledged at a time: \(b.readings) readings acked in "
                + "\(String(format: "%.1f", b.seconds)) s (\(b.resent) resends, \(b.rejected) rejected); live readings follow")
    }

    struct ColdChainFacts {
        var shortId = ""
        var longId = ""
        var silentFrom = Date()
    }

    func coldChain(
        _ log: StoryLog, daemon: DaemonProcess, fridge: FridgeSim, history: FridgeHistory, pace: Pace, staff: Task<Bool, Never>,
        watchFridge: DemoFlag
    ) async throws -> ColdChainFacts {
        var facts = ColdChainFacts()
        let (alarmMinutes, silenceMinutes) = DemoRunner.coldChainMinutes(pace)
        let alarmSeconds = alarmMinutes * 60, silenceSeconds = silenceMinutes * 60
        guard await staff.value else {
            throw StepFailed(step: "cold chain", detail: "the reception account could not be made (medic-edge staff add)")
        }
        let login = try await daemon.send(
            "POST", "/api/v1/session", body: #"{"name": "\#(DemoRunner.staffName)", "password": "\#(DemoRunner.staffPassword)"}"#)
        guard login.status == 200, let token = (try? JSON.parse(login.body))?["token"]?.stringValue else {
            throw StepFailed(step: "cold chain", detail: "sign-in answered \(login.status)")
        }
        let auth = [("Authorization", "Bearer \(token)")]
        log.line("console", "signed in as \(DemoRunner.staffName) (POST /api/v1/session → 200), with the cloud down")

        // The monthly chart.
        try await chart(log, daemon: daemon, auth: auth, history: history)

        func excursions() async throws -> [JSON] {
            let r = try await daemon.get("/api/v1/coldchain/excursions", headers: auth)
            guard r.status == 200 else { throw StepFailed(step: "cold chain", detail: "GET /api/v1/coldchain/excursions answered \(r.status)") }
            return try JSON.parse(r.body)["excursions"]?.arrayValue ?? []
        }
        func startedAfter(_ d: Date) -> (JSON) -> Bool {
            { e in (e["started_at"]?.stringValue.flatMap(Time.parseMs) ?? 0) >= Int64((d.timeIntervalSince1970 - 1) * 1000) }
        }
        let delayText = "\(SimText.number(alarmSeconds)) s here, 15 min in the field"
        // A duration here, and what it stands for in the field (the fridge reads once per simulated minute).
        func field(_ seconds: JSON?) -> String {
            let s = seconds?.doubleValue ?? 0
            return "\(SimText.number(s)) s (≈ \(SimText.number((s * pace.fridgeRate / 60).rounded())) min in the field)"
        }

        // A short opening: no alarm.
        log.line("fridge", "someone opens the fridge door for about a minute (limits 2–8 °C; alarm delay \(delayText))")
        let shortAt = Date()
        watchFridge.set(true)
        fridge.openDoor(peak: 9.0, holdReadings: 1)
        let short = try await waitFor("door-short excursion", timeout: 30 + alarmSeconds) { () -> JSON? in
            try await excursions().first { startedAfter(shortAt)($0) && $0["state"]?.stringValue == "ended" }
        }
        watchFridge.set(false)
        facts.shortId = short["id"]?.stringValue ?? ""
        guard short["alarm_at"]?.isNull ?? true else {
            throw StepFailed(
                step: "door-short", detail: "the short opening made an alarm (the excursion lasted \(short["duration_seconds"]?.doubleValue ?? 0) s)")
        }
        log.line(
            "coldchain",
            "excursion …\(facts.shortId.suffix(8)) started and ended after \(field(short["duration_seconds"])), "
                + "max \(SimText.celsius(short["max_c"]?.doubleValue ?? 0)): shorter than the alarm delay → no alarm")

        // The door left open: an alarm, on the appliance's timer.
        try await pause(pace.betweenScans)
        log.line("fridge", "the door is left open: the fridge warms past 8 °C and stays there")
        let longAt = Date()
        watchFridge.set(true)
        fridge.leaveDoorOpen(peak: 9.6)
        let alarm = try await waitFor("door-long alarm", timeout: 40 + alarmSeconds) { () -> JSON? in
            try await excursions().first { startedAfter(longAt)($0) && $0["state"]?.stringValue == "alarm" }
        }
        facts.longId = alarm["id"]?.stringValue ?? ""
        let startedMs = alarm["started_at"]?.stringValue.flatMap(Time.parseMs) ?? 0
        let alarmMs = alarm["alarm_at"]?.stringValue.flatMap(Time.parseMs) ?? 0
        log.line(
            "coldchain",
            "ALARM: excursion …\(facts.longId.suffix(8)) out of range for the alarm delay, \(field(.number(Double(alarmMs - startedMs) / 1000))) "
                + "→ clinic/coldchain.excursion (alarm) recorded for the cloud; the console shows it on every page")
        fridge.closeDoor()
        log.line("fridge", "someone closes the door")
        let ended = try await waitFor("door-long end", timeout: 40) { () -> JSON? in
            try await excursions().first { $0["id"]?.stringValue == facts.longId && $0["state"]?.stringValue == "ended" }
        }
        watchFridge.set(false)
        log.line(
            "coldchain",
            "excursion …\(facts.longId.suffix(8)) ended after \(field(ended["duration_seconds"])), "
                + "min \(SimText.celsius(ended["min_c"]?.doubleValue ?? 0)), max \(SimText.celsius(ended["max_c"]?.doubleValue ?? 0))")

        // The acknowledgement, from the console.
        let action = "Porta fechada; vacinas mantidas na geladeira e avaliadas pela enfermeira responsável."
        let path = "/api/v1/coldchain/excursions/\(facts.longId)/ack"
        let ack = try await daemon.send("POST", path, body: JSONText.object { $0.add("action", action) }, headers: auth)
        guard ack.status == 201, let ackDoc = try? JSON.parse(ack.body) else {
            throw StepFailed(step: "acknowledgement", detail: "POST \(path) answered \(ack.status): \(ack.text)")
        }
        log.line(
            "console",
            "\(ackDoc["acknowledged_by"]?.stringValue ?? "?") acknowledges the alarm with the action taken → 201 "
                + "(clinic/coldchain.excursion_acknowledged recorded): \"\(action)\"")
        let again = try await daemon.send("POST", path, body: JSONText.object { $0.add("action", "de novo") }, headers: auth)
        guard again.status == 409 else {
            throw StepFailed(step: "acknowledgement", detail: "a second acknowledgement answered \(again.status), not 409")
        }
        let message = (try? JSON.parse(again.body))?["error"]?["message"]?.stringValue ?? again.text
        log.line("console", "a second acknowledgement → 409: \"\(message)\"")

        // A dead probe: sensor silence.
        try await pause(pace.betweenScans)
        func silent() async throws -> Bool? {
            let r = try await daemon.get("/api/v1/rooms", headers: auth)
            let rooms = try JSON.parse(r.body)["rooms"]?.arrayValue ?? []
            return rooms.first { $0["id"]?.stringValue == DemoRunner.fridgeRoom }?["cold_chain"]?["sensor_silent"]?.boolValue
        }
        log.line(
            "fridge",
            "the fridge's probe dies: env-geladeira stays connected but sends no reading "
                + "(silence time \(SimText.number(silenceSeconds)) s here, 10 min in the field)"
        )
        facts.silentFrom = Date()
        fridge.stopReadings()
        _ = try await waitFor("sensor silence", timeout: 30 + silenceSeconds) { () -> Bool? in try await silent() == true ? true : nil }
        log.line(
            "coldchain",
            "SENSOR SILENT after \(SimText.number(Date().timeIntervalSince(facts.silentFrom).rounded())) s without a reading "
                + "→ clinic/coldchain.sensor_silent (raised), an alert on the console")
        fridge.resumeReadings()
        log.line("fridge", "the probe is replaced: readings resume")
        _ = try await waitFor("sensor silence cleared", timeout: 20) { () -> Bool? in try await silent() == false ? true : nil }
        log.line("coldchain", "sensor silence CLEARED by the first reading → clinic/coldchain.sensor_silent (cleared)")
        return facts
    }

    /// The monthly chart of the months the history covers, checked day by day against it.
    func chart(_ log: StoryLog, daemon: DaemonProcess, auth: [(String, String)], history: FridgeHistory) async throws {
        let base = "/api/v1/coldchain/\(DemoRunner.fridgeRoom)/chart?month="
        var days: [JSON] = []
        for month in history.months {
            let r = try await daemon.get(base + month, headers: auth)
            guard r.status == 200, let doc = try? JSON.parse(r.body), let ds = doc["days"]?.arrayValue else {
                throw StepFailed(step: "chart", detail: "GET \(base)\(month) answered \(r.status): \(r.text.prefix(200))")
            }
            let withReadings = ds.filter { ($0["readings"]?.doubleValue ?? 0) > 0 }
            let readings = ds.reduce(0) { $0 + Int($1["readings"]?.doubleValue ?? 0) }
            let excursions = ds.reduce(0) { $0 + ($1["excursions"]?.arrayValue?.count ?? 0) }
            log.line(
                "chart",
                "Mapa de controle de temperatura \(month) (GET …/chart?month=\(month)): \(ds.count) days, \(withReadings.count) with readings, "
                    + "\(readings) readings, \(excursions) excursions")
            days += ds
        }
        // Day by day against the logger's buffer (today aside: live readings too).
        let (checked, mismatches) = history.check(chartDays: days, excludingDay: history.day(Date()))
        if let first = mismatches.first {
            throw StepFailed(step: "chart", detail: first + (mismatches.count > 1 ? " (and \(mismatches.count - 1) more days)" : ""))
        }
        guard checked > 0 else { throw StepFailed(step: "chart", detail: "no day of the logger's buffer on the chart") }
        var perDayExcursions: [String: Int] = [:]
        for e in history.excursions() { perDayExcursions[history.day(e.startedAt), default: 0] += 1 }
        // A few rows as the printed chart shows them: the days of the past excursions, and yesterday.
        let yesterday = history.day(Date().addingTimeInterval(-86_400))
        let shown = Set(perDayExcursions.keys).union([yesterday])
        for d in days where shown.contains(d["date"]?.stringValue ?? "") {
            log.line("chart", "  " + DemoRunner.chartRow(d))
        }
        log.line("chart", "\(checked) whole days match the logger's buffer reading for reading, with their excursions")
    }

    static func chartRow(_ d: JSON) -> String {
        func c(_ v: JSON?) -> String { v?.doubleValue.map { String(format: "%.1f", $0) } ?? "–" }
        func clock(_ v: JSON?) -> String {
            guard let s = v?.stringValue, let ms = Time.parseMs(s) else { return "–" }
            let f = DateFormatter()
            f.locale = Locale(identifier: "en_US_POSIX"); f.timeZone = DemoRunner.zone; f.dateFormat = "HH:mm"
            return f.string(from: Date(timeIntervalSince1970: Double(ms) / 1000))
        }
        func mark(_ name: String, _ m: JSON?) -> String {
            guard let m, !m.isNull else { return "\(name) –" }
            return "\(name) \(clock(m["at"])) \(c(m["current_c"])) °C (min \(c(m["min_c"])), max \(c(m["max_c"])))"
        }
        let ex = d["excursions"]?.arrayValue ?? []
        let exText =
            ex.isEmpty
            ? "no excursion"
            : ex.map { e in
                "excursion \(clock(e["started_at"]))–\(clock(e["ended_at"])) max \(c(e["max_c"])) °C"
            }.joined(separator: ", ")
        return "\(d["date"]?.stringValue ?? "?")  \(mark("opening", d["opening"])) · \(mark("closing", d["closing"])) · "
            + "day \(c(d["day_min_c"]))–\(c(d["day_max_c"])) °C · \(Int(d["readings"]?.doubleValue ?? 0)) readings · \(exText)"
    }

    /// After the cloud is back: the cold chain's events at the stub, by name and by story.
    func coldChainAtCloud(_ log: StoryLog, stub: CloudStub, facts: ColdChainFacts) async throws {
        func states(_ id: String) -> [String] {
            cloudEvents(stub, "clinic/coldchain.excursion").filter { $0["data"]?["excursion_id"]?.stringValue == id }
                .compactMap { $0["data"]?["state"]?.stringValue }
        }
        let want: [(String, [String])] = [(facts.shortId, ["started", "ended"]), (facts.longId, ["started", "alarm", "ended"])]
        let silentFromMs = Int64(facts.silentFrom.timeIntervalSince1970 * 1000)
        func silence() -> [String] {
            cloudEvents(stub, "clinic/coldchain.sensor_silent").filter { ($0["data"]?["at"]?.stringValue.flatMap(Time.parseMs) ?? 0) >= silentFromMs }
                .compactMap { $0["data"]?["state"]?.stringValue }
        }
        _ = try await waitFor("cold-chain events at the cloud", timeout: 20) { () -> Bool? in
            let ok =
                want.allSatisfy { Set(states($0.0)) == Set($0.1) }
                && cloudEvents(stub, "clinic/coldchain.excursion_acknowledged").contains { $0["data"]?["excursion_id"]?.stringValue == facts.longId }
                && Set(silence()) == ["raised", "cleared"]
            return ok ? true : nil
        }
        let names = [
            "clinic/coldchain.excursion", "clinic/coldchain.excursion_acknowledged", "clinic/coldchain.sensor_silent",
            "clinic/coldchain.daily_summary",
        ]
        let counts = names.map { n in (n, Set(cloudEvents(stub, n).compactMap { $0["id"]?.stringValue }).count) }.filter { $0.1 > 0 }
        log.line("coldchain", "at the cloud, by id: " + counts.map { "\($0.0) \($0.1)" }.joined(separator: ", "))
        log.line(
            "coldchain",
            "short opening …\(facts.shortId.suffix(8)): \(states(facts.shortId).joined(separator: ", ")) (no alarm); door left open "
                + "…\(facts.longId.suffix(8)): \(states(facts.longId).joined(separator: ", ")), acknowledged; "
                + "dead probe: silence \(silence().joined(separator: ", "))"
        )
    }
}
