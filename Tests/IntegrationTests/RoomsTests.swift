import CloudStub
import EdgeCore
import EdgeTestSupport
import Foundation
import Testing

/// Rooms, sensors and wearables: occupancy, environment alerts, device health, wearable
/// forwarding, device acks and no-show signals.
@Suite("Rooms, sensors and wearables", .serialized)
struct RoomsTests {
    static let fridgeConfig = """
        rooms:
          geladeira-vacinas: {name: Geladeira de vacinas, limits: {temperature_c: {min: 2, max: 8, hysteresis: 0.5}}}
          sala-2: {name: Sala 2 (Acupuntura)}

        """

    @Test("Occupancy with two presence devices in one room: changes only when the room's state changes; offline stops counting")
    func occupancy() async throws {
        let env = try await Env.start(day: ClinicDay(), extraConfig: Self.fridgeConfig)
        defer { Task { await env.stop() } }
        let t = { (d: String) in env.topic("room/sala-2/presence/\(d)") }
        var n = 0
        func send(_ d: String, _ occ: Bool) async throws {
            n += 1
            try env.device.publish(t(d), #"{"occupied": \#(occ), "msg_id": "o\#(n)"}"#)
            try await env.device.waitFor(env.topic("device/\(d)/ack")) { $0["msg_id"]?.stringValue == "o\(n)" }
        }
        try await send("p1", false)  // a first false is no change
        try await send("p1", true)  // change → occupied
        try await send("p2", true)  // still occupied
        try await send("p1", false)  // p2 still says occupied
        try await send("p2", false)  // change → free
        try await send("p2", true)  // change → occupied
        // p2 goes offline (its will): the room is free again.
        try env.device.publish(env.topic("device/p2/status"), #"{"state": "offline", "type": "presence_sensor", "room_id": "sala-2"}"#, retain: true)
        let events = try await env.waitForCloudEvents("clinic/room.occupancy_changed", count: 4)
        #expect(events.map { $0["data"]?["occupied"]?.boolValue ?? false } == [true, false, true, false])
        #expect(events.allSatisfy { $0["data"]?["room_id"]?.stringValue == "sala-2" })
        #expect(events.allSatisfy { $0["data"]?["cloud_room_id"]?.stringValue == ClinicDay().sala2 })
        try await Task.sleep(for: .milliseconds(400))
        #expect(env.cloudEvents(named: "clinic/room.occupancy_changed").count == 4)
        // each accepted presence message is one iot.event with the payload as received
        let iot = try await env.waitForCloudEvents("integration/iot.event", count: 6) { $0["data"]?["event_type"]?.stringValue == "presence" }
        #expect(
            iot.allSatisfy {
                $0["data"]?["device_type"]?.stringValue == "presence_sensor" && $0["data"]?["cloud_room_id"]?.stringValue == ClinicDay().sala2
            })
        // the seed's iot_events fields, all of them (the event text is written by hand)
        for e in iot {
            let d = e["data"]
            #expect(d?["tenant_id"]?.stringValue == "6f1c2a9e-0000-4000-8000-000000000001")
            #expect(d?["site_id"]?.stringValue == env.site)
            #expect(d?["device_id"]?.stringValue?.isEmpty == false)
            #expect(d?["room_id"]?.stringValue == "sala-2")
            #expect(d?["payload"]?["occupied"] != nil, "the payload as received")
            #expect(Time.parseMs(d?["created_at"]?.stringValue ?? "") != nil, "created_at is RFC 3339")
        }
        await env.stop()
    }

    @Test(
        "The vaccine fridge 5, 9, 9.5, 7.8, 7.4, 1.5, 3 °C, limits 2–8, hysteresis 0.5: raised, cleared, raised, cleared; state survives a restart"
    )
    func fridge() async throws {
        let env = try await Env.start(extraConfig: Self.fridgeConfig)
        defer { Task { await env.stop() } }
        let topic = env.topic("room/geladeira-vacinas/environment/fridge-1")
        var i = 0
        func reading(_ t: Double) async throws {
            i += 1
            try env.device.publish(topic, #"{"temperature_c": \#(t), "msg_id": "t\#(i)", "battery": 91}"#)
            try await env.device.waitFor(env.topic("device/fridge-1/ack")) { $0["msg_id"]?.stringValue == "t\(i)" }
        }
        for t in [5, 9, 9.5, 7.8] { try await reading(t) }
        // restart between 7.8 (still raised) and 7.4 (clears): the state is in the database
        #expect(await env.daemon.terminate() == 0)
        try await env.daemon.start()
        let rooms = try await env.daemon.status()
        #expect(rooms["alerts"]?["active"]?.doubleValue == 1)
        for t in [7.4, 1.5, 3] { try await reading(t) }
        let alerts = try await env.waitForCloudEvents("clinic/environment.alert", count: 4)
        #expect(alerts.map { $0["data"]?["state"]?.stringValue ?? "" } == ["raised", "cleared", "raised", "cleared"])
        #expect(alerts.map { $0["data"]?["value"]?.doubleValue ?? 0 } == [9, 7.4, 1.5, 3])
        #expect(
            alerts.allSatisfy {
                $0["data"]?["min"]?.doubleValue == 2 && $0["data"]?["max"]?.doubleValue == 8 && $0["data"]?["metric"]?.stringValue == "temperature_c"
            })
        #expect(
            alerts.allSatisfy { $0["data"]?["device_id"]?.stringValue == "fridge-1" && $0["data"]?["room_id"]?.stringValue == "geladeira-vacinas" })
        try await Task.sleep(for: .milliseconds(300))
        #expect(env.cloudEvents(named: "clinic/environment.alert").count == 4)
        // unknown fields are forwarded as received
        let iot = env.cloudEvents(named: "integration/iot.event").filter { $0["data"]?["event_type"]?.stringValue == "environment" }
        #expect(iot.count == 7)
        #expect(iot.allSatisfy { $0["data"]?["payload"]?["battery"]?.doubleValue == 91 })
        // The status's alert count is read by housekeeping once a second (no table read per request).
        try await Harness.waitUntil("no active alert in the status", timeout: 5) {
            try await env.daemon.status()["alerts"]?["active"]?.doubleValue == 0
        }
        await env.stop()
    }

    @Test("Acks only after commit, dedupe of a resent msg_id, also after kill -9 and restart")
    func ackDedupe() async throws {
        let env = try await Env.start()
        defer { Task { await env.stop() } }
        let topic = env.topic("room/sala-3/environment/env-9")
        try env.device.publish(topic, #"{"co2_ppm": 700, "msg_id": "same"}"#)
        try await env.device.waitFor(env.topic("device/env-9/ack"))
        try env.device.publish(topic, #"{"co2_ppm": 700, "msg_id": "same"}"#)
        try await env.device.waitFor(env.topic("device/env-9/ack"), count: 2)
        await env.daemon.kill9()
        try await env.daemon.start()
        try env.device.publish(topic, #"{"co2_ppm": 700, "msg_id": "same"}"#)
        let acks = try await env.device.waitFor(env.topic("device/env-9/ack"), count: 3)
        #expect(acks.allSatisfy { $0.text == #"{"msg_id":"same"}"# })
        #expect(try await env.metric(#"medic_edge_mqtt_messages_total{kind="environment",result="duplicate"}"#) == 1)
        try await Harness.waitUntil("delivered") { (try await env.daemon.status())["outbox"]?["pending"]?.doubleValue == 0 }
        // Stored once: one event id. (The same id may reach the cloud twice: a batch posted
        // just before the kill -9 is sent again after the restart, and the cloud dedupes by id.)
        let same = env.cloudEvents(named: "integration/iot.event").filter { $0["data"]?["payload"]?["msg_id"]?.stringValue == "same" }
        #expect(!same.isEmpty)
        #expect(Set(same.compactMap { $0["id"]?.stringValue }).count == 1, "\(same.compactMap { $0["id"]?.stringValue })")
        await env.stop()
    }

    @Test("A wearable batch with one bad sample: the rest is forwarded, the bad one counted, the batch acked")
    func wearable() async throws {
        let env = try await Env.start()
        defer { Task { await env.stop() } }
        let p = ClinicDay().maria.id
        let payload = """
            {"msg_id": "gw1-0042", "samples": [
              {"patient_id": "\(p)", "source": "garmin", "metric_type": "heart_rate", "value": 72, "unit": "bpm", \
            "recorded_at": "2026-11-29T12:00:00Z", "quality": "good"},
              {"patient_id": "\(p)", "source": "myspace", "metric_type": "heart_rate", "value": 70, "unit": "bpm", \
            "recorded_at": "2026-11-29T12:01:00Z"},
              {"patient_id": "\(p)", "source": "whoop", "metric_type": "hrv", "value": 55.5, "unit": "ms", \
            "recorded_at": "2026-11-29T12:02:00.123456Z"}
            ]}
            """
        try env.device.publish(env.topic("wearable/gw-1"), payload)
        let ack = try await env.device.waitFor(env.topic("device/gw-1/ack"))
        #expect(ack[0].text == #"{"msg_id":"gw1-0042"}"#)
        let ev = try await env.waitForCloudEvents("integration/wearable.received", count: 1)
        let samples = ev[0]["data"]?["samples"]?.arrayValue ?? []
        #expect(samples.count == 2)
        #expect(samples[0]["quality"]?.stringValue == "good")
        #expect(ev[0]["data"]?["gateway_id"]?.stringValue == "gw-1" && ev[0]["data"]?["msg_id"]?.stringValue == "gw1-0042")
        #expect(try await env.metric(#"medic_edge_wearable_samples_total{result="accepted"}"#) == 2)
        #expect(try await env.metric(#"medic_edge_wearable_samples_total{result="rejected"}"#) == 1)
        // without msg_id: rejected, nothing to ack
        try env.device.publish(env.topic("wearable/gw-1"), #"{"samples": []}"#)
        try await Harness.waitUntil("rejected") { (try await env.metric(#"medic_edge_dead_letters_total{reason="missing_field"}"#) ?? 0) == 1 }
        await env.stop()
    }

    @Test("Device status: a change is one event; the same retained status after a restart is none")
    func deviceStatus() async throws {
        let env = try await Env.start()
        defer { Task { await env.stop() } }
        try env.device.publish(
            env.topic("device/k1/status"), #"{"state": "online", "type": "checkin_kiosk", "room_id": "recepcao", "fw": "1.4.0"}"#, retain: true)
        _ = try await env.waitForCloudEvents("integration/device.status_changed", count: 1)
        #expect(await env.daemon.terminate() == 0)
        try await env.daemon.start()  // the retained status is delivered again: no change
        try await Task.sleep(for: .milliseconds(800))
        #expect(env.cloudEvents(named: "integration/device.status_changed").count == 1)
        try env.device.publish(env.topic("device/k1/status"), #"{"state": "offline", "type": "checkin_kiosk"}"#, retain: true)
        let ev = try await env.waitForCloudEvents("integration/device.status_changed", count: 2)
        #expect(ev.map { $0["data"]?["state"]?.stringValue ?? "" } == ["online", "offline"])
        #expect(ev.allSatisfy { $0["data"]?["device_type"]?.stringValue == "checkin_kiosk" })
        let iot = env.cloudEvents(named: "integration/iot.event").filter { $0["data"]?["event_type"]?.stringValue == "device_status" }
        #expect(iot.count == 2)
        // clean up the retained message
        try env.device.publish(env.topic("device/k1/status"), "", retain: true)
        await env.stop()
    }

    static let badPayloads: [(String, String, String)] = [
        ("room/sala-2/environment/e1", "{not json", "not_json"),
        ("room/sala-2/environment/e1", "[1,2]", "not_object"),
        ("room/sala-2/environment/e1", #"{"temperature_c": "hot", "msg_id": "x1"}"#, "wrong_type"),
        ("room/sala-2/environment/e1", #"{"temperature_c": 120, "msg_id": "x2"}"#, "out_of_range"),
        ("room/sala-2/environment/e1", #"{"msg_id": "x3"}"#, "missing_field"),
        ("room/sala-2/presence/p1", #"{"people": 2, "msg_id": "x4"}"#, "missing_field"),
        ("room/sala-2/presence/p1", #"{"occupied": "yes", "msg_id": "x5"}"#, "wrong_type"),
        ("device/d1/status", #"{"state": "online", "type": "toaster"}"#, "unknown_value"),
        ("device/d1/status", #"{"state": "sleeping"}"#, "unknown_value"),
        ("wearable/g1", #"{"msg_id": "x6", "samples": "many"}"#, "wrong_type"),
        ("room/sala 2/environment/e1", #"{"temperature_c": 20}"#, "bad_topic"),
    ]

    @Test("Every rejection reason from a table of bad payloads: a row, a counter, an error ack when addressable", arguments: badPayloads)
    func rejections(_ c: (String, String, String)) async throws {
        let env = try await Env.start(cloud: false)
        defer { Task { await env.stop() } }
        try env.device.publish(env.topic(c.0), c.1)
        try await Harness.waitUntil("rejected with \(c.2)") { (try await env.metric(#"medic_edge_dead_letters_total{reason="\#(c.2)"}"#) ?? 0) == 1 }
        if let mid = (try? JSON.parse(c.1))?["msg_id"]?.stringValue {
            let device = c.0.split(separator: "/").last(where: { _ in true }).map(String.init) ?? ""
            let dev = c.0.hasPrefix("wearable/") ? device : (c.0.hasPrefix("device/") ? String(c.0.split(separator: "/")[1]) : device)
            let ack = try await env.device.waitFor(env.topic("device/\(dev)/ack"))
            #expect(ack[0]["msg_id"]?.stringValue == mid && ack[0]["error"]?.stringValue == c.2)
        }
        let (_, out) = try await env.cli(["rejects"])
        #expect(out.contains(c.2))
        #expect(env.daemon.log().contains("rejected"))
        await env.stop()
    }

    @Test("No-show with real time: one signal per eligible appointment, none for cancelled or checked-in ones, none again after a restart")
    func noShow() async throws {
        var day = ClinicDay()
        let late = day.book(day.joao, startMinutes: -1, minutes: 30)
        day.book(day.beatriz, startMinutes: -1, minutes: 30, status: "cancelled")
        day.book(day.maria, startMinutes: -0.5, minutes: 30)
        day.book(day.carlos, startMinutes: 30)
        let env = try await Env.start(day: day, extraConfig: "noshow: {grace_minutes: 0.01, check_interval_seconds: 0.2}\n", waitForRoster: true)
        defer { Task { await env.stop() } }
        // Maria checks in before her grace ends? Her start was 30 s ago and grace 0.6 s: she is a no-show too, then arrives late.
        let ns = try await env.waitForCloudEvents("clinic/noshow.detected", count: 2, timeout: 20)
        let nsIds: [String] = ns.compactMap { e in e["data"]?["appointment_id"]?.stringValue }
        #expect(nsIds.contains(late))
        #expect(ns.allSatisfy { $0["data"]?["professional_id"]?.stringValue == day.drErick })
        let r = try await env.scan(day.maria.qr, scanId: "late-1")
        #expect(r["outcome"]?.stringValue == "checked_in", "a later check-in is still recorded")
        #expect(await env.daemon.terminate() == 0)
        try await env.daemon.start()
        try await Task.sleep(for: .seconds(1))
        #expect(env.cloudEvents(named: "clinic/noshow.detected").count == 2)
        await env.stop()
    }
}
