import EdgeCore
import EdgeMQTT
import EdgeTestSupport
import Foundation
import Testing

/// QR check-in at the kiosk, internet or not.
@Suite("QR check-in at the kiosk", .serialized)
struct CheckinTests {
    @Test("Given Maria has an appointment in 30 minutes, when her QR is scanned, the kiosk says checked in and the cloud gets one check-in")
    func checkedIn() async throws {
        var day = ClinicDay()
        let appt = day.book(day.maria, startMinutes: 30)
        let env = try await Env.start(day: day)
        defer { Task { await env.stop() } }
        let r = try await env.scan(day.maria.qr, scanId: "k1-000001")
        #expect(r["outcome"]?.stringValue == "checked_in")
        #expect(r["patient"]?["first_name"]?.stringValue == "Maria")
        #expect(r["patient"]?.objectValue?.keys.sorted() == ["first_name"])
        #expect(r["appointment"]?["id"]?.stringValue == appt)
        #expect(r["appointment"]?["professional"]?.stringValue == "Dr. Erick")
        #expect(r["appointment"]?["room"]?.stringValue == "Sala 2")
        #expect(r["appointment"]?["service"]?.stringValue == "Acupuntura")
        let msg = r["message"]?.stringValue ?? ""
        #expect(msg.hasPrefix("Olá, Maria! Check-in feito. Sua consulta com Dr. Erick é às "))
        #expect(msg.hasSuffix(", na Sala 2."))
        #expect(!msg.contains("Aparecida"))
        let events = try await env.waitForCloudEvents("clinic/checkin.recorded", count: 1)
        let d = events[0]["data"]!
        #expect(d["appointment_id"]?.stringValue == appt)
        #expect(d["patient_id"]?.stringValue == day.maria.id)
        #expect(d["method"]?.stringValue == "qr")
        #expect(d["device_id"]?.stringValue == "k1")
        #expect(d["tenant_id"]?.stringValue == "6f1c2a9e-0000-4000-8000-000000000001")
        #expect(d["site_id"]?.stringValue == "test-site")
        #expect(Time.parseMs(d["checked_in_at"]?.stringValue ?? "") != nil)
        // the qr_scan telemetry carries {scan_id, outcome} only
        let iot = try await env.waitForCloudEvents("integration/iot.event", count: 1) { $0["data"]?["event_type"]?.stringValue == "qr_scan" }
        #expect(iot[0]["data"]?["payload"]?.objectValue?.keys.sorted() == ["outcome", "scan_id"])
        #expect(try await env.metric(#"medic_edge_checkins_total{outcome="checked_in"}"#) == 1)
        #expect(try await env.metric("medic_edge_checkin_seconds_count") == 1)

        // Replayed scan_id: the same result, no second check-in.
        let again = try await env.scan(day.maria.qr, scanId: "k1-000001")
        #expect(again == r)
        // A second scan (new scan_id) of the same patient: already checked in.
        let second = try await env.scan(day.maria.qr, scanId: "k1-000002")
        #expect(second["outcome"]?.stringValue == "already_checked_in")
        #expect(second["patient"]?["first_name"]?.stringValue == "Maria")
        try await Task.sleep(for: .milliseconds(600))
        #expect(env.cloudEvents(named: "clinic/checkin.recorded").count == 1)
        await env.stop()
    }

    @Test("Every other outcome: unknown code, hash-as-QR, no appointment, cancelled, rescheduled, invalid request")
    func otherOutcomes() async throws {
        var day = ClinicDay()
        day.book(day.joao, startMinutes: 60, status: "cancelled")
        day.book(day.beatriz, startMinutes: 30, status: "rescheduled")
        day.book(day.carlos, startMinutes: 60 * 5)  // outside the 120-minute window
        let env = try await Env.start(day: day)
        defer { Task { await env.stop() } }
        #expect(try await env.scan("medic-qr:v1:nobody", scanId: "s1")["outcome"]?.stringValue == "unknown_code")
        let unknown = try await env.scan(QRCode.hash(day.maria.qr), scanId: "s2")
        #expect(unknown["outcome"]?.stringValue == "unknown_code", "a scanned text equal to a stored hash must not match")
        #expect(unknown["patient"] == nil)
        #expect(try await env.scan(day.joao.qr, scanId: "s3")["outcome"]?.stringValue == "no_appointment")
        #expect(try await env.scan(day.beatriz.qr, scanId: "s4")["outcome"]?.stringValue == "no_appointment")
        #expect(try await env.scan(day.carlos.qr, scanId: "s5")["outcome"]?.stringValue == "no_appointment")
        #expect(try await env.scan(day.maria.qr, scanId: "s6")["outcome"]?.stringValue == "no_appointment")
        // invalid requests: qr missing, too long; answered because scan_id is readable
        try env.device.publish(env.topic("kiosk/k1/scan"), #"{"scan_id": "s7"}"#)
        let inv = try await env.device.waitFor(env.topic("kiosk/k1/result")) { $0["scan_id"]?.stringValue == "s7" }
        #expect(inv[0]["outcome"]?.stringValue == "invalid_request")
        #expect(inv[0]["message"]?.stringValue?.isEmpty == false)
        try env.device.publish(
            env.topic("kiosk/k1/scan"),
            JSONText.object {
                $0.add("scan_id", "s8"); $0.add("qr", String(repeating: "q", count: 513))
            })
        #expect(
            try await env.device.waitFor(env.topic("kiosk/k1/result")) { $0["scan_id"]?.stringValue == "s8" }[0]["outcome"]?.stringValue
                == "invalid_request")
        // without a readable scan_id: dead-lettered only
        try env.device.publish(env.topic("kiosk/k1/scan"), "not json at all")
        try env.device.publish(env.topic("kiosk/k1/scan"), #"{"qr": "x"}"#)
        try await Harness.waitUntil("two kiosk dead letters") {
            (try await env.metric(#"medic_edge_mqtt_messages_total{kind="kiosk_scan",result="rejected"}"#) ?? 0) >= 4
        }
        #expect(try await env.metric(#"medic_edge_checkins_total{outcome="unknown_code"}"#) == 2)
        #expect(try await env.metric(#"medic_edge_checkins_total{outcome="no_appointment"}"#) == 4)
        #expect(env.cloudEvents(named: "clinic/checkin.recorded").isEmpty)
        await env.stop()
    }

    @Test("Two appointments today: the earliest eligible wins; the next only when inside its window")
    func twoAppointments() async throws {
        var day = ClinicDay()
        let first = day.book(day.maria, startMinutes: 20, minutes: 30)
        let later = day.book(day.maria, startMinutes: 100, minutes: 30, professional: day.draAna, room: day.sala3, service: day.nutricao)
        let far = day.book(day.joao, startMinutes: 20)
        _ = far
        day.book(day.joao, startMinutes: 200)
        let env = try await Env.start(day: day)
        defer { Task { await env.stop() } }
        let r1 = try await env.scan(day.maria.qr, scanId: "a1")
        #expect(r1["appointment"]?["id"]?.stringValue == first)
        let r2 = try await env.scan(day.maria.qr, scanId: "a2")
        #expect(r2["outcome"]?.stringValue == "checked_in")
        #expect(r2["appointment"]?["id"]?.stringValue == later)
        #expect(r2["appointment"]?["professional"]?.stringValue == "Dra. Ana")
        #expect(r2["appointment"]?["room"]?.stringValue == "Sala 3")
        let r3 = try await env.scan(day.joao.qr, scanId: "a3")
        #expect(r3["outcome"]?.stringValue == "checked_in")
        let r4 = try await env.scan(day.joao.qr, scanId: "a4")
        #expect(r4["outcome"]?.stringValue == "already_checked_in", "the 200-minute one is outside its window")
        await env.stop()
    }

    @Test("Window edges: open exactly open_before before start; closed exactly at scheduled_end; a late no_show still checks in")
    func windowEdges() async throws {
        var day = ClinicDay()
        // open_before is 1 minute here; the window opens 1 s ago (start is 59 s ahead).
        day.book(day.maria, startMinutes: 59.0 / 60.0, minutes: 10)
        // Ended 1 s ago.
        day.book(day.joao, startMinutes: -10 - 1.0 / 60.0, minutes: 10)
        // Started 20 minutes ago, already marked no_show by the cloud: a late arrival.
        let late = day.book(day.beatriz, startMinutes: -20, minutes: 50, status: "no_show")
        // Opens in 60 s: not yet.
        day.book(day.carlos, startMinutes: 2, minutes: 10)
        let env = try await Env.start(day: day, extraConfig: "checkin: {open_before_minutes: 1}\n")
        defer { Task { await env.stop() } }
        #expect(try await env.scan(day.maria.qr, scanId: "e1")["outcome"]?.stringValue == "checked_in")
        #expect(try await env.scan(day.joao.qr, scanId: "e2")["outcome"]?.stringValue == "no_appointment")
        let r = try await env.scan(day.beatriz.qr, scanId: "e3")
        #expect(r["outcome"]?.stringValue == "checked_in")
        #expect(r["appointment"]?["id"]?.stringValue == late)
        #expect(try await env.scan(day.carlos.qr, scanId: "e4")["outcome"]?.stringValue == "no_appointment")
        await env.stop()
    }

    @Test("Roster changes in the cloud are picked up by the incremental pull: a new patient, a cancelled appointment")
    func rosterChanges() async throws {
        var day = ClinicDay()
        let joaoAppt = day.book(day.joao, startMinutes: 40)
        let env = try await Env.start(day: day)
        defer { Task { await env.stop() } }
        let stub = try #require(env.stub)
        // A new patient with an appointment, booked in the cloud now.
        let newPatient = ClinicDay.Patient(
            id: "9a000000-0000-4000-8000-0000000000aa", name: "Helena Prado", phone: "+5511990000099", qr: "medic-qr:v1:helena:abcdef")
        stub.upsert(collection: "patients", rows: [day.patientRow(newPatient)])
        var extra = ClinicDay(now: day.now)
        extra.book(newPatient, startMinutes: 15, id: "a0000000-0000-4000-8000-0000000000aa", createdDaysAgo: 0)
        stub.upsert(collection: "appointments", rows: extra.appointments)
        // Cancel João's appointment (updated_at moves forward).
        var cancelled = day.appointments[0]
        if case .object(var o) = cancelled {
            o["status"] = "cancelled"; o["updated_at"] = .string(Time.rfc3339(Date()))
            cancelled = .object(o)
        }
        stub.upsert(collection: "appointments", rows: [cancelled])
        try await Harness.waitUntil("new patient synced", timeout: 10) {
            try await env.scan(newPatient.qr, scanId: "r-\(UUID().uuidString.prefix(6))")["outcome"]?.stringValue == "checked_in"
        }
        let cancelledScan = try await env.scan(day.joao.qr, scanId: "r-joao")
        #expect(cancelledScan["outcome"]?.stringValue == "no_appointment", "João's appointment \(joaoAppt) was cancelled upstream")
        await env.stop()
    }

    @Test("A patient deleted upstream is removed by the start-up reconciliation; an appointment booked long ago for a day in the window is pulled")
    func reconciliation() async throws {
        var day = ClinicDay()
        day.book(day.joao, startMinutes: 30)
        // Booked 40 days ago for today: its created_at/updated_at are older than any cursor.
        let old = day.book(day.maria, startMinutes: 45, createdDaysAgo: 40)
        let env = try await Env.start(day: day)
        defer { Task { await env.stop() } }
        let stub = try #require(env.stub)
        let r = try await env.scan(day.maria.qr, scanId: "old-1")
        #expect(r["appointment"]?["id"]?.stringValue == old)
        stub.delete(collection: "patients", id: day.joao.id)
        #expect(await env.daemon.terminate() == 0)
        try await env.daemon.start()
        try await Harness.waitUntil("reconciled", timeout: 15) {
            try await env.scan(day.joao.qr, scanId: "gone-\(UUID().uuidString.prefix(6))")["outcome"]?.stringValue == "unknown_code"
        }
        await env.stop()
    }

    @Test("Check-in works with the cloud down (Directus 503, events 503) and is sent when it comes back")
    func cloudDown() async throws {
        var day = ClinicDay()
        day.book(day.maria, startMinutes: 30)
        let env = try await Env.start(day: day)
        defer { Task { await env.stop() } }
        let stub = try #require(env.stub)
        stub.setFaults(.init(mode: .down))
        try await Task.sleep(for: .milliseconds(800))  // a failed roster pull meanwhile keeps the roster
        let r = try await env.scan(day.maria.qr, scanId: "d1")
        #expect(r["outcome"]?.stringValue == "checked_in")
        try await Task.sleep(for: .milliseconds(500))
        #expect(env.cloudEvents(named: "clinic/checkin.recorded").isEmpty)
        stub.setFaults(.init(mode: .none))
        let ev = try await env.waitForCloudEvents("clinic/checkin.recorded", count: 1, timeout: 30)
        #expect(ev.count == 1)
        await env.stop()
    }

    @Test(
        "A scan is answered ahead of a waiting telemetry flood: its result comes before the flood's last ack; every flood message is acked once"
    )
    func scanJumpsTheQueue() async throws {
        var day = ClinicDay()
        day.book(day.maria, startMinutes: 30)
        let env = try await Env.start(day: day)
        defer { Task { await env.stop() } }
        let flood = 3000
        for i in 0..<flood {
            try env.device.publish(env.topic("room/sala-2/presence/p\(i % 8)"), #"{"occupied": \#(i % 2 == 0), "msg_id": "f\#(i)"}"#)
        }
        let r = try await env.scan(day.maria.qr, scanId: "k1-flood", timeout: 60)
        #expect(r["outcome"]?.stringValue == "checked_in")
        var acks: [MQTTMessage] = []
        try await Harness.waitUntil("\(flood) flood acks", timeout: 120) {
            acks = (0..<8).flatMap { env.device.messages(on: env.topic("device/p\($0)/ack")) }
            return acks.count >= flood
        }
        let ids = Set(acks.compactMap { try? JSON.parse($0.payload)["msg_id"]?.stringValue })
        #expect(ids.count == flood && acks.count == flood, "each flood message acked exactly once")
        let result = try #require(env.device.messages(on: env.topic("kiosk/k1/result")).first)
        let lastAck = acks.map(\.receivedAtNs).max() ?? 0
        #expect(result.receivedAtNs < lastAck, "the scan's result was published before the flood was through")
        await env.stop()
    }

    @Test("kill -9 right after a result is published: after restart the check-in and its event are there")
    func killAfterResult() async throws {
        var day = ClinicDay()
        day.book(day.maria, startMinutes: 30)
        let env = try await Env.start(day: day)
        defer { Task { await env.stop() } }
        let stub = try #require(env.stub)
        stub.setFaults(.init(mode: .down, eventsOnly: true))
        let r = try await env.scan(day.maria.qr, scanId: "kill-1")
        #expect(r["outcome"]?.stringValue == "checked_in")
        await env.daemon.kill9()
        stub.setFaults(.init(mode: .none))
        try await env.daemon.start()
        let ev = try await env.waitForCloudEvents("clinic/checkin.recorded", count: 1, timeout: 30)
        #expect(ev[0]["data"]?["patient_id"]?.stringValue == day.maria.id)
        // And the replay after restart answers the same, without a second check-in.
        let again = try await env.scan(day.maria.qr, scanId: "kill-1")
        #expect(again == r)
        await env.stop()
    }

    @Test("The QR text never reaches the database, the logs or the cloud")
    func privacy() async throws {
        var day = ClinicDay()
        day.book(day.maria, startMinutes: 30)
        let env = try await Env.start(day: day)
        defer { Task { await env.stop() } }
        let secret = day.maria.qr
        _ = try await env.scan(secret, scanId: "p1")
        _ = try await env.scan("medic-qr:v1:stranger:5555", scanId: "p2")
        try env.device.publish(
            env.topic("kiosk/k1/scan"),
            JSONText.object {
                $0.add("scan_id", "p3"); $0.add("qr", secret + String(repeating: "!", count: 600))
            })
        try await env.device.waitFor(env.topic("kiosk/k1/result")) { $0["scan_id"]?.stringValue == "p3" }
        _ = try await env.waitForCloudEvents("clinic/checkin.recorded", count: 1)
        _ = await env.daemon.terminate()
        var blob = Data()
        for f in (try? FileManager.default.contentsOfDirectory(atPath: env.daemon.dataDir)) ?? [] {
            blob.append(try Data(contentsOf: URL(fileURLWithPath: env.daemon.dataDir + "/" + f)))
        }
        blob.append(Data(env.daemon.log().utf8))
        for e in env.stub?.receivedEvents() ?? [] { blob.append(Data(e.serialized().utf8)) }
        let hay = String(decoding: blob, as: UTF8.self)
        #expect(!blob.isEmpty)
        for needle in [secret, "medic-qr:v1:stranger:5555"] {
            #expect(!hay.contains(needle), "found the QR text \(needle)")
        }
        #expect(!env.daemon.log().contains("Maria Aparecida"), "full names never go to the logs")
        #expect(!env.daemon.log().contains("+5511990000001"), "phones never go to the logs")
        await env.stop()
    }
}
