import CloudStub
import EdgeCore
@testable import EdgeStore
import GRDB
import EdgeTestSupport
import Foundation
import Testing

/// The vaccine fridge as a data logger (CONTRACT §6): excursions with their alarm on a timer,
/// surviving kill -9; sensor silence on the monotonic clock, surviving restarts; the staff's
/// acknowledgement. Real daemon, broker, cloud stub and SQLite file.
@Suite("Cold chain: excursions, alarms, silence, acknowledgement", .serialized)
struct ColdChainTests {
    /// alarm after 3 s, silence after `silence` minutes.
    static func config(alarm: Double = 0.05, silence: Double = 10) -> String {
        """
        rooms:
          geladeira-vacinas: {name: Geladeira de vacinas, limits: {temperature_c: {min: 2, max: 8, hysteresis: 0.5}},
                              cold_chain: {alarm_delay_minutes: \(alarm), silence_minutes: \(silence),
                                           workday: {opens: "07:00", closes: "19:00"}}}

        """
    }

    final class Fridge: @unchecked Sendable {
        let env: Env
        var n = 0
        init(_ env: Env) { self.env = env }
        /// Publishes a reading (its own `ts` when given) and waits for its ack.
        func send(_ t: Double, ts: String? = nil, device: String = "fridge-1") async throws {
            n += 1
            let payload = JSONText.object { j in
                j.add("temperature_c", t); j.add("msg_id", "c\(n)")
                if let ts { j.add("ts", ts) }
            }
            try env.device.publish(env.topic("room/geladeira-vacinas/environment/\(device)"), payload)
            let id = "c\(n)"
            try await env.device.waitFor(env.topic("device/\(device)/ack")) { $0["msg_id"]?.stringValue == id }
        }
    }

    static func excursions(_ env: Env, _ staff: ConsoleTests.Staffer, open: Bool) async throws -> [JSON] {
        let r = try await env.daemon.get("/api/v1/coldchain/excursions" + (open ? "?open=true" : ""), headers: ConsoleTests.bearer(staff))
        try #require(r.status == 200, "\(r.status) \(r.text)")
        return try JSON.parse(r.body)["excursions"]?.arrayValue ?? []
    }

    @Test("A door opened briefly: started and ended, no alarm; min/max up to (not including) the reading that ended it")
    func shortOpening() async throws {
        let env = try await Env.start(extraConfig: Self.config(alarm: 0.5))
        defer { Task { await env.stop() } }
        let f = Fridge(env)
        for t in [4.5, 8.6, 9.1, 7.9, 7.4] { try await f.send(t) }  // 7.9 is inside [2, 8] but not the band: still in it
        let ev = try await env.waitForCloudEvents("clinic/coldchain.excursion", count: 2)
        #expect(ev.map { $0["data"]?["state"]?.stringValue ?? "" } == ["started", "ended"])
        let ended = try #require(ev.last?["data"])
        #expect(ended["min_c"]?.doubleValue == 7.9 && ended["max_c"]?.doubleValue == 9.1)
        #expect(ended["device_id"]?.stringValue == "fridge-1" && ended["room_id"]?.stringValue == "geladeira-vacinas")
        #expect(ended["ended_at"]?.stringValue != nil && ended["duration_seconds"]?.doubleValue != nil)
        #expect(ev[0]["data"]?["excursion_id"]?.stringValue == ended["excursion_id"]?.stringValue)
        #expect(ev[0]["data"]?["ended_at"]?.isNull == true, "ended_at is null until it ends")
        try await Task.sleep(for: .milliseconds(1500))
        #expect(env.cloudEvents(named: "clinic/coldchain.excursion").count == 2, "no alarm for a short opening")
        // The §1.4 alert is unchanged: raised on 8.6, cleared on 7.4.
        let alerts = try await env.waitForCloudEvents("clinic/environment.alert", count: 2)
        #expect(alerts.map { $0["data"]?["state"]?.stringValue ?? "" } == ["raised", "cleared"])
        await env.stop()
    }

    @Test("A door left open: the alarm comes on the timer without another reading; kill -9 mid-excursion does not split it")
    func alarmAndKill9() async throws {
        let env = try await Env.start(extraConfig: Self.config(alarm: 0.05))
        defer { Task { await env.stop() } }
        let f = Fridge(env)
        try await f.send(5)
        try await f.send(9.4)
        let started = try await env.waitForCloudEvents("clinic/coldchain.excursion", count: 1)
        let id = try #require(started[0]["data"]?["excursion_id"]?.stringValue)
        // No more readings: the alarm comes from the timer after 3 s.
        let alarm = try await env.waitForCloudEvents("clinic/coldchain.excursion", count: 2, timeout: 10)
        #expect(alarm[1]["data"]?["state"]?.stringValue == "alarm" && alarm[1]["data"]?["excursion_id"]?.stringValue == id)
        #expect((alarm[1]["data"]?["duration_seconds"]?.doubleValue ?? 0) >= 3)
        #expect(try await env.metric(#"medic_edge_coldchain_alarm{room="geladeira-vacinas"}"#) == 1)
        #expect(try await env.metric(#"medic_edge_coldchain_excursion_open{room="geladeira-vacinas"}"#) == 1)
        #expect(try await env.metric(#"medic_edge_coldchain_temperature_celsius{room="geladeira-vacinas"}"#) == 9.4)
        // kill -9 in the middle of it, then more readings: the same excursion goes on.
        await env.daemon.kill9()
        try await env.daemon.start()
        try await f.send(10.2)
        try await f.send(6.1)
        let all = try await env.waitForCloudEvents("clinic/coldchain.excursion", count: 3)
        let states = all.map { $0["data"]?["state"]?.stringValue ?? "" }
        #expect(states == ["started", "alarm", "ended"], "one excursion: \(states)")
        #expect(all.allSatisfy { $0["data"]?["excursion_id"]?.stringValue == id })
        let ended = try #require(all.last?["data"])
        #expect(ended["min_c"]?.doubleValue == 9.4 && ended["max_c"]?.doubleValue == 10.2)
        // Each transition is one event with its own id, fixed when recorded.
        #expect(Set(all.compactMap { $0["id"]?.stringValue }).count == 3)
        // The gauges follow within the timer's second.
        try await Harness.waitUntil("the excursion gauge back to 0", timeout: 5) {
            try await env.metric(#"medic_edge_coldchain_excursion_open{room="geladeira-vacinas"}"#) == 0
        }
        await env.stop()
    }

    @Test("Acknowledgement: 201 with who and when, 409 the second time, 404 unknown, 400 without an action; the cloud is told")
    func acknowledgement() async throws {
        let env = try await Env.start(extraConfig: Self.config(alarm: 0.05))
        defer { Task { await env.stop() } }
        try await ConsoleTests.addStaff(env)
        let staff = try await ConsoleTests.signIn(env)
        let f = Fridge(env)
        try await f.send(9.0)
        _ = try await env.waitForCloudEvents("clinic/coldchain.excursion", count: 2, timeout: 10)  // started, alarm
        let open = try await Self.excursions(env, staff, open: true)
        try #require(open.count == 1)
        let e = open[0]
        #expect(e["state"]?.stringValue == "alarm" && e["room_id"]?.stringValue == "geladeira-vacinas")
        #expect(e["acknowledged_by"]?.isNull == true && e["ended_at"]?.isNull == true)
        let id = try #require(e["id"]?.stringValue)
        let path = "/api/v1/coldchain/excursions/\(id)/ack"
        let action = "Porta fechada; vacinas transferidas para a caixa térmica às 10:05."
        var r = try await env.daemon.send("POST", path, body: #"{"action": ""}"#, headers: ConsoleTests.bearer(staff))
        #expect(r.status == 400)
        r = try await env.daemon.send("POST", path, body: JSONText.object { $0.add("action", action) }, headers: ConsoleTests.bearer(staff))
        #expect(r.status == 201, "\(r.text)")
        let body = try JSON.parse(r.body)
        #expect(body["id"]?.stringValue == id && body["acknowledged_by"]?.stringValue == "recepcao" && body["action"]?.stringValue == action)
        #expect(Time.parseMs(body["acknowledged_at"]?.stringValue ?? "") != nil)
        r = try await env.daemon.send("POST", path, body: #"{"action": "de novo"}"#, headers: ConsoleTests.bearer(staff))
        #expect(r.status == 409 && ConsoleTests.errorCode(r) == "already_acknowledged")
        #expect(r.text.contains("recepcao"))
        r = try await env.daemon.send(
            "POST", "/api/v1/coldchain/excursions/nope/ack", body: #"{"action": "x"}"#, headers: ConsoleTests.bearer(staff))
        #expect(r.status == 404)
        r = try await env.daemon.send("POST", path, body: #"{"action": "x"}"#)
        #expect(r.status == 401)
        let acked = try await env.waitForCloudEvents("clinic/coldchain.excursion_acknowledged", count: 1)
        let d = try #require(acked.first?["data"])
        #expect(d["excursion_id"]?.stringValue == id && d["acknowledged_by"]?.stringValue == "recepcao" && d["action"]?.stringValue == action)
        #expect(d["room_id"]?.stringValue == "geladeira-vacinas" && d["acknowledged_at"]?.stringValue != nil)
        // Still open (acknowledged, not ended): listed with who and the action.
        let again = try await Self.excursions(env, staff, open: true)
        #expect(again.first?["acknowledged_by"]?.stringValue == "recepcao" && again.first?["action"]?.stringValue == action)
        // The staff audit has it.
        let db = try AppDatabase.open(dataDir: env.daemon.dataDir, readonly: true)
        let audit = try db.writer.read { try Row.fetchAll($0, sql: "SELECT name, action, target FROM staff_audit WHERE action = 'coldchain_ack'") }
        #expect(audit.count == 1 && audit.first?["target"] == id && audit.first?["name"] == "recepcao")
        // Ended later: the last 30 days still list it.
        try await f.send(5)
        let recent = try await Self.excursions(env, staff, open: false)
        #expect(recent.count == 1 && recent[0]["state"]?.stringValue == "ended")
        #expect(try await Self.excursions(env, staff, open: true).isEmpty)
        await env.stop()
    }

    @Test(
        "Sensor silence: raised after silence_minutes without a reading, on the rooms API; cleared by a reading; silent at start-up after a long stop"
    )
    func silence() async throws {
        let env = try await Env.start(extraConfig: Self.config(alarm: 15, silence: 0.05))
        defer { Task { await env.stop() } }
        try await ConsoleTests.addStaff(env)
        let staff = try await ConsoleTests.signIn(env)
        let f = Fridge(env)
        try await f.send(4.2)
        let raised = try await env.waitForCloudEvents("clinic/coldchain.sensor_silent", count: 1, timeout: 10)
        let d = try #require(raised.first?["data"])
        #expect(d["state"]?.stringValue == "raised" && d["device_id"]?.stringValue == "fridge-1" && d["last_reading_at"]?.stringValue != nil)
        func fridgeRoom() async throws -> JSON? {
            let r = try await env.daemon.get("/api/v1/rooms", headers: ConsoleTests.bearer(staff))
            return try JSON.parse(r.body)["rooms"]?.arrayValue?.first { $0["id"]?.stringValue == "geladeira-vacinas" }
        }
        var room = try #require(try await fridgeRoom())
        #expect(room["cold_chain"]?["sensor_silent"]?.boolValue == true)
        #expect(room["alerts"]?.arrayValue?.contains { $0["metric"]?.stringValue == "sensor_silent" } == true)
        #expect(try await env.metric(#"medic_edge_coldchain_sensor_silent{room="geladeira-vacinas"}"#) == 1)
        try await f.send(4.3)
        let both = try await env.waitForCloudEvents("clinic/coldchain.sensor_silent", count: 2)
        #expect(both[1]["data"]?["state"]?.stringValue == "cleared")
        room = try #require(try await fridgeRoom())
        #expect(room["cold_chain"]?["sensor_silent"]?.boolValue == false)
        // Stopped, the sensor dies meanwhile; at start-up the fridge is silent once silence_minutes have passed.
        #expect(await env.daemon.terminate() == 0)
        try await Task.sleep(for: .seconds(4))
        try await env.daemon.start()
        let three = try await env.waitForCloudEvents("clinic/coldchain.sensor_silent", count: 3, timeout: 10)
        #expect(three[2]["data"]?["state"]?.stringValue == "raised")
        // A restart while silent does not raise it again (it survives, it is not repeated).
        #expect(await env.daemon.terminate() == 0)
        try await env.daemon.start()
        try await Task.sleep(for: .seconds(2))
        #expect(env.cloudEvents(named: "clinic/coldchain.sensor_silent").count == 3)
        room = try #require(try await fridgeRoom())
        #expect(room["cold_chain"]?["sensor_silent"]?.boolValue == true)
        await env.stop()
    }

    @Test(
        "Daily summary: once per fridge and day after closing, the day's chart row; not for days before the first reading; not again after a restart")
    func dailySummary() async throws {
        let zone = TimeZone(identifier: "America/Sao_Paulo")!
        var cal = Calendar(identifier: .gregorian)
        cal.timeZone = zone
        // The workday closed a minute ago (today's summary is due), opening at midnight.
        var minute = cal.component(.hour, from: Date()) * 60 + cal.component(.minute, from: Date())
        if minute < 3 {
            try await Task.sleep(for: .seconds(Double(3 - minute) * 60))
            minute = 3
        }
        let closes = Workday.text(ofMinute: minute - 1)
        let env = try await Env.start(
            extraConfig: """
                rooms:
                  geladeira-vacinas: {name: Geladeira de vacinas, limits: {temperature_c: {min: 2, max: 8, hysteresis: 0.5}},
                                      cold_chain: {workday: {opens: "00:00", closes: "\(closes)"}}}

                """)
        defer { Task { await env.stop() } }
        let f = Fridge(env)
        let today = LocalDay.dayString(Time.nowMs(), zone: zone)
        let yesterday = LocalDay.addDays(today, -1, zone: zone)
        let (y0, _) = try #require(LocalDay.bounds(yesterday, zone: zone))
        try await f.send(4.0, ts: Time.rfc3339(ms: y0))
        try await f.send(4.6, ts: Time.rfc3339(ms: y0 + 60_000))
        try await f.send(5.0)
        let sums = try await env.waitForCloudEvents("clinic/coldchain.daily_summary", count: 2, timeout: 25)
        let byDate = Dictionary(uniqueKeysWithValues: sums.compactMap { e in e["data"]?["date"]?.stringValue.map { ($0, e["data"]!) } })
        #expect(Set(byDate.keys) == [yesterday, today], "no summary before the first reading's day")
        let y = try #require(byDate[yesterday])
        #expect(y["readings"]?.doubleValue == 2 && y["day_min_c"]?.doubleValue == 4.0 && y["day_max_c"]?.doubleValue == 4.6)
        #expect(y["opening"]?["current_c"]?.doubleValue == 4.0 && y["closing"]?["current_c"]?.doubleValue == 4.6)
        #expect(y["closing"]?["max_c"]?.doubleValue == 4.6 && y["excursions"]?.doubleValue == 0)
        #expect(y["room_id"]?.stringValue == "geladeira-vacinas" && y["tenant_id"]?.stringValue != nil)
        let t = try #require(byDate[today])
        #expect(t["readings"]?.doubleValue == 1 && t["closing"]?.isNull == true, "today's reading came after closing")
        // Once: a restart does not send them again.
        #expect(await env.daemon.terminate() == 0)
        try await env.daemon.start()
        try await Task.sleep(for: .seconds(12))
        #expect(env.cloudEvents(named: "clinic/coldchain.daily_summary").count == 2)
        await env.stop()
    }
}
