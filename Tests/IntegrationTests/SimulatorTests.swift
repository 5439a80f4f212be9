import CloudStub
import EdgeCore
import EdgeSimulators
import EdgeTestSupport
import Foundation
import Synchronization
import Testing

/// The device simulators against the real daemon, and the one-command demo.
@Suite("Device simulators and the demo", .serialized)
struct SimulatorTests {
    static let fridgeConfig = """
        rooms:
          geladeira-vacinas: {name: Geladeira de vacinas, limits: {temperature_c: {min: 2, max: 8, hysteresis: 0.5}}}

        """

    func settings(_ env: Env, rate: Double) -> SimSettings {
        var s = SimSettings(port: env.broker.port, site: env.site, rate: rate)
        s.seed = 42
        s.minResendSeconds = 0.3
        return s
    }

    func accepted(_ env: Env, _ kind: String) async throws -> Double {
        try await env.metric(#"medic_edge_mqtt_messages_total{kind="\#(kind)",result="accepted"}"#) ?? 0
    }

    @Test("Given every simulated device type, the daemon accepts their messages, acks them, and raises and clears the fridge alert")
    func everyDeviceType() async throws {
        var day = ClinicDay()
        day.book(day.maria, startMinutes: 30)
        let env = try await Env.start(day: day, extraConfig: SimulatorTests.fridgeConfig)
        defer { Task { await env.stop() } }

        let sim = DeviceSimulator(settings: settings(env, rate: 60))
        let kiosk = sim.addKiosk(codes: [day.maria.qr], auto: false)
        let presence = sim.addPresence(id: "pres-sala-2", room: "sala-2", auto: false)
        sim.addPresence(id: "pres-sala-3", room: "sala-3", auto: true)
        sim.addEnvironment(id: "env-sala-2", room: "sala-2")
        let fridge = sim.addFridge(autoExcursions: false, intervalSeconds: 60)
        let gateway = sim.addWearableGateway(patients: day.patients.map(\.id), batchSize: 5...20, auto: false)
        sim.addStatusDevice(reboots: false)
        try await sim.start()
        let devices = sim.deviceIds.count
        #expect(devices == 7)

        // Every device publishes its retained online status.
        try await Harness.waitUntil("online statuses accepted", timeout: 15) {
            try await self.accepted(env, "device_status") >= Double(devices)
        }
        // Kiosk: a known code checks in; an unknown one does not.
        let r1 = try #require(await kiosk.scan(day.maria.qr, label: "known"))
        #expect(r1.outcome == "checked_in")
        #expect(r1.firstName == "Maria")
        // On a busy machine the kiosk may resend its scan_id once; the result is the same and
        // there is still one check-in (the resend test below checks exactly one at the cloud).
        #expect(r1.sends >= 1)
        let r2 = try #require(await kiosk.scan("medic-qr:v1:not-ours:0000", label: "unknown"))
        #expect(r2.outcome == "unknown_code")
        // Presence: a scripted change is acked, and makes one occupancy change.
        #expect(await presence.set(occupied: true, people: 2))
        _ = try await env.waitForCloudEvents("clinic/room.occupancy_changed", count: 1) { $0["data"]?["room_id"]?.stringValue == "sala-2" }
        // Fridge: a door-open excursion raises the alert, and the recovery clears it.
        fridge.openDoor(peak: 9.4, holdReadings: 1)
        let alerts = try await env.waitForCloudEvents("clinic/environment.alert", count: 2, timeout: 30)
        #expect(alerts.map { $0["data"]?["state"]?.stringValue } == ["raised", "cleared"])
        #expect((alerts[0]["data"]?["value"]?.doubleValue ?? 0) > 8)
        #expect((alerts[1]["data"]?["value"]?.doubleValue ?? 99) <= 7.5)
        // Wearables: two batches, each acked.
        let b1 = gateway.enqueueBatch(samples: 10)
        let b2 = gateway.enqueueBatch(samples: 15)
        try await Harness.waitUntil("both wearable batches acked", timeout: 15) { gateway.ackedBatches == [b1, b2] }
        // The room monitor and the other sensor keep publishing on their own.
        try await Harness.waitUntil("environment readings accepted", timeout: 15) {
            try await self.accepted(env, "environment") >= 5
        }

        #expect(try await accepted(env, "kiosk_scan") == 2)
        #expect(try await accepted(env, "wearable") == 2)
        #expect(try await accepted(env, "presence") >= 1)
        #expect(try await env.metric(#"medic_edge_wearable_samples_total{result="accepted"}"#) == 25)
        for kind in ["kiosk_scan", "presence", "environment", "wearable", "device_status", "unknown"] {
            #expect(try await env.metric(#"medic_edge_mqtt_messages_total{kind="\#(kind)",result="rejected"}"#) == 0, "\(kind) rejections")
        }
        #expect(sim.stats().allSatisfy { $0.ackErrors == 0 })
        #expect(sim.stats().reduce(0) { $0 + $1.acked } >= 10)
        // Every tracked message gets its ack: at some instant nothing is waiting.
        try await Harness.waitUntil("no message waiting for its ack", timeout: 10, poll: 0.01) {
            sim.stats().allSatisfy { $0.pending == 0 }
        }

        // A clean stop: every device says offline.
        await sim.stop()
        let offline = try await env.waitForCloudEvents("integration/device.status_changed", count: devices) {
            $0["data"]?["state"]?.stringValue == "offline"
        }
        #expect(Set(offline.compactMap { $0["data"]?["device_id"]?.stringValue }) == Set(sim.deviceIds))
        await env.stop()
    }

    @Test("Given the daemon is down, the wearable gateway resends its batch (same msg_id) until the ack, then stops; the cloud gets it once")
    func gatewayResendsUntilAck() async throws {
        let env = try await Env.start(cloud: true)
        defer { Task { await env.stop() } }
        #expect(await env.daemon.terminate() == 0)

        // Resend after 30 s / 60 = 0.5 s.
        let sim = DeviceSimulator(settings: settings(env, rate: 60))
        let gateway = sim.addWearableGateway(patients: [ClinicDay().maria.id], batchSize: 3...3, auto: false)
        try await sim.start()
        let msgId = gateway.enqueueBatch()
        try await Harness.waitUntil("three sends without an ack", timeout: 10) { (gateway.sends(of: msgId) ?? 0) >= 3 }
        #expect(gateway.ackedBatches.isEmpty)

        try await env.daemon.start()
        try await Harness.waitUntil("the ack", timeout: 15) { gateway.ackedBatches == [msgId] }
        let sends = try #require(gateway.sends(of: msgId))
        #expect(sends >= 3)
        // No more sends once acked (at least four resend intervals later).
        try await Task.sleep(for: .seconds(2.5))
        #expect(gateway.sends(of: msgId) == sends)
        #expect(gateway.stats.published == sends)
        #expect(gateway.stats.pending == 0)
        // Every copy reached the daemon (its persistent session kept them while it was down):
        // stored once, the rest counted as duplicates and acked again.
        try await Harness.waitUntil("every copy seen by the daemon", timeout: 10) {
            let a = try await self.accepted(env, "wearable")
            let d = try await env.metric(#"medic_edge_mqtt_messages_total{kind="wearable",result="duplicate"}"#) ?? 0
            return a == 1 && Int(a + d) == sends
        }
        let received = try await env.waitForCloudEvents("integration/wearable.received", count: 1)
        #expect(received[0]["data"]?["msg_id"]?.stringValue == msgId)
        try await Task.sleep(for: .milliseconds(500))
        #expect(env.cloudEvents(named: "integration/wearable.received").count == 1)
        await sim.stop()
        await env.stop()
    }

    @Test("A kiosk resends the same scan_id until the result, and gets one check-in")
    func kioskResendsScan() async throws {
        var day = ClinicDay()
        day.book(day.joao, startMinutes: 15)
        let env = try await Env.start(day: day)
        defer { Task { await env.stop() } }
        // Stop the daemon so the first sends go unanswered (the broker keeps them for its session).
        #expect(await env.daemon.terminate() == 0)
        let sim = DeviceSimulator(settings: settings(env, rate: 6))  // resend after 3 s / 6 = 0.5 s
        let kiosk = sim.addKiosk(auto: false)
        try await sim.start()
        let restart = Task {
            try await Task.sleep(for: .seconds(1.6))
            try await env.daemon.start()
        }
        let answer = try #require(await kiosk.scan(day.joao.qr, label: "known", timeout: 30))
        try await restart.value
        #expect(answer.outcome == "checked_in")
        #expect(answer.sends >= 2)
        try await Task.sleep(for: .milliseconds(800))
        #expect(try await env.metric(#"medic_edge_checkins_total{outcome="checked_in"}"#) == 1)
        #expect(try await self.accepted(env, "kiosk_scan") == 1)
        _ = try await env.waitForCloudEvents("clinic/checkin.recorded", count: 1)
        #expect(env.cloudEvents(named: "clinic/checkin.recorded").count == 1)
        await sim.stop()
        await env.stop()
    }

    @Test("A fridge logger's month: every 5 min in time order, ending now, inside 2–8 °C but for two known excursions")
    func fridgeHistoryShape() throws {
        let zone = TimeZone(identifier: "America/Sao_Paulo")!
        let end = Date(timeIntervalSince1970: 1_796_644_800)  // 2026-12-07T12:00:00Z
        let h = FridgeHistory.make(endingAt: end, days: 30, intervalSeconds: 300, zone: zone, seed: 7)
        #expect(h.readings.count == 8640)
        let last = try #require(h.readings.last).at
        #expect(last <= end && end.timeIntervalSince(last) < 300)
        #expect(zip(h.readings, h.readings.dropFirst()).allSatisfy { $1.at.timeIntervalSince($0.at) == 300 })
        // The same seed, the same record (the demo checks the chart against it).
        #expect(FridgeHistory.make(endingAt: end, days: 30, intervalSeconds: 300, zone: zone, seed: 7).readings == h.readings)
        let ex = h.excursions()
        #expect(ex.count == 2)
        // The door left ajar 4 days before the end, at 14:05 local: long enough for a 15-minute alarm.
        let ajar = try #require(ex.last)
        #expect(h.day(ajar.startedAt) == "2026-12-03")
        #expect(ajar.endedAt.timeIntervalSince(ajar.startedAt) >= 20 * 60)
        #expect(ajar.maxC >= 9.4 && ajar.maxC <= 9.8)
        // The power cut 19 days before the end, at night.
        #expect(h.day(ex[0].startedAt) == "2026-11-18")
        // Outside the excursions the fridge stays in range (the door pattern included).
        let inside = h.readings.filter { r in !ex.contains { r.at >= $0.startedAt && r.at < $0.endedAt } }
        #expect(inside.allSatisfy { (2...8).contains($0.temperatureC) })
        #expect(h.readingsPerDay().values.reduce(0, +) == 8640)
        #expect(h.months == ["2026-11", "2026-12"])
    }

    @Test("The demo's chart check: the appliance's chart of a logger's month matches it day by day; a day missing readings is named")
    func fridgeHistoryAgainstChart() throws {
        let zone = TimeZone(identifier: "America/Sao_Paulo")!
        let end = Date(timeIntervalSince1970: 1_796_644_800)  // 2026-12-07T12:00:00Z
        let h = FridgeHistory.make(endingAt: end, zone: zone, seed: 7)
        let nowMs = Int64(end.timeIntervalSince1970 * 1000)
        let excursions = h.excursions().enumerated().map { i, e in
            ExcursionRecord(
                id: "x\(i)", room: "geladeira-vacinas", device: "env-geladeira", startedMs: Int64(e.startedAt.timeIntervalSince1970 * 1000),
                endedMs: Int64(e.endedAt.timeIntervalSince1970 * 1000), minC: e.minC, maxC: e.maxC)
        }
        // The chart as the appliance draws it (EdgeCore's ColdChainChart), as JSON.
        func chartDays(_ readings: [FridgeHistory.Reading]) throws -> [JSON] {
            let cold = readings.map { ColdReading(atMs: Int64($0.at.timeIntervalSince1970 * 1000), tempC: $0.temperatureC) }
            return try h.months.flatMap { month in
                let m = try ColdChainChart.month(
                    room: "geladeira-vacinas", month: month, timeZone: zone, workday: .standard, readings: cold, excursions: excursions,
                    nowMs: nowMs)
                return try JSON.parse(Array(ColdChainChart.json(m, nowMs: nowMs).utf8))["days"]?.arrayValue ?? []
            }
        }
        let ok = h.check(chartDays: try chartDays(h.readings), excludingDay: "2026-12-07")
        #expect(ok.mismatches.isEmpty, "\(ok.mismatches)")
        #expect(ok.checked == 29)  // 2026-11-07 (partial) and 2026-12-07 (today) aside
        // A reading lost on 2026-11-20 is found and named.
        let lossy = h.readings.filter { h.day($0.at) != "2026-11-20" || $0.at != h.readings.first { h.day($0.at) == "2026-11-20" }?.at }
        let bad = h.check(chartDays: try chartDays(lossy), excludingDay: "2026-12-07")
        #expect(bad.mismatches.count == 1)
        #expect(bad.mismatches.first?.hasPrefix("2026-11-20: the chart has 287 readings") == true, "\(bad.mismatches)")
    }

    @Test("A logger flushing its buffer keeps at most its window unacknowledged, then sends the rest in time order as acks come")
    func historyFlowControl() async throws {
        let env = try await Env.start(cloud: false, extraConfig: SimulatorTests.fridgeConfig)
        defer { Task { await env.stop() } }
        // The daemon stops: nothing is acked, so the window fills and the logger waits.
        #expect(await env.daemon.terminate() == 0)
        let sim = DeviceSimulator(settings: settings(env, rate: 1))  // resends after 10 s: none in this test
        let fridge = sim.addFridge(autoExcursions: false, sending: false)
        try await sim.start()
        let history = FridgeHistory.make(endingAt: Date(), days: 1, intervalSeconds: 300, zone: TimeZone(identifier: "UTC")!)
        #expect(history.readings.count == 288)
        let flush = Task { try await fridge.sendHistory(history, window: 40, timeout: 60) }
        try await Harness.waitUntil("the window filled", timeout: 10) { fridge.stats.published >= 40 }
        try await Task.sleep(for: .milliseconds(700))
        #expect(fridge.stats.published == 40, "published \(fridge.stats.published) with no ack: the window is 40")
        #expect(fridge.stats.pending == 40)

        try await env.daemon.start()
        let b = try await flush.value
        #expect(b.readings == 288)
        #expect(b.rejected == 0)
        #expect(fridge.stats.pending == 0)
        #expect(try await accepted(env, "environment") == 288)
        // Nothing live went out while the buffer was flushed, and the probe stays quiet until told.
        #expect(fridge.stats.acked == 288)
        await sim.stop()
        await env.stop()
    }

    @Test("`medic-edge simulate --fridge-story door-short,door-long,dead-sensor`: an excursion without alarm, one with, a silence raised and cleared")
    func fridgeStoriesCommand() async throws {
        // One simulated minute is 0.2 s at --rate 300: the field's 15-minute delays become 3 s.
        let env = try await Env.start(
            extraConfig: """
                rooms:
                  geladeira-vacinas:
                    name: Geladeira de vacinas
                    limits: {temperature_c: {min: 2, max: 8, hysteresis: 0.5}}
                    cold_chain: {alarm_delay_minutes: 0.05, silence_minutes: 0.05}

                """)
        defer { Task { await env.stop() } }
        // The stories outlast the appliance's timers (checked once a second) by a margin.
        let (code, out) = try await DaemonProcess.runCLI(
            [
                "simulate", "--port", String(env.broker.port), "--site", env.site, "--rate", "300", "--seed", "3", "--stats-every", "0",
                "--fridge-story", "door-short,door-long,dead-sensor", "--alarm-delay-minutes", "25", "--silence-minutes", "25",
            ], timeout: 90)
        #expect(code == 0, "simulate output:\n\(out)")
        #expect(out.contains("story door-short") && out.contains("story door-long") && out.contains("story dead-sensor"))
        #expect(out.contains("stories done"))
        let events = try await env.waitForCloudEvents("clinic/coldchain.excursion", count: 5, timeout: 20)
        var byExcursion: [String: [String]] = [:]
        var order: [String] = []
        for e in events {
            guard let id = e["data"]?["excursion_id"]?.stringValue, let state = e["data"]?["state"]?.stringValue else { continue }
            if byExcursion[id] == nil { order.append(id) }
            byExcursion[id, default: []].append(state)
        }
        #expect(order.count == 2)
        #expect(order.first.flatMap { byExcursion[$0] } == ["started", "ended"], "the short opening makes no alarm")
        #expect(order.last.flatMap { byExcursion[$0] } == ["started", "alarm", "ended"])
        // The dead probe: raised, then cleared (a first pair may come from the daemon's start,
        // before the probe's first reading: a fridge never heard is silent too).
        let silence = try await env.waitForCloudEvents("clinic/coldchain.sensor_silent", count: 2, timeout: 15)
        let states = silence.compactMap { $0["data"]?["state"]?.stringValue }
        #expect(states.suffix(2) == ["raised", "cleared"], "\(states)")
        #expect(states.filter { $0 == "raised" }.count == states.filter { $0 == "cleared" }.count)
        await env.stop()
    }

    /// The temporary directory the demo printed (`working directory /tmp/medic-edge-demo-…`).
    static func workingDirectory(_ out: String) -> String? {
        guard let r = out.range(of: "working directory ") else { return nil }
        return String(out[r.upperBound...].prefix { !$0.isWhitespace })
    }

    @Test("`medic-edge demo --fast` runs the whole story and ends with lost = 0, printing no QR text, full name or phone")
    func demo() async throws {
        let started = Date()
        let (code, out) = try await DaemonProcess.runCLI(["demo", "--fast"], timeout: 180)
        let seconds = Date().timeIntervalSince(started)
        #expect(code == 0, "demo output:\n\(out)")
        let lost = out.split(separator: "\n").first { $0.contains("lost = recorded − delivered") }
        #expect(lost?.split(separator: " ").last == "0", "demo output:\n\(out)")
        for line in [
            "checked_in", "already_checked_in", "unknown_code", "no_appointment", "internet goes down",
            "backlog drained to 0", "no-show", "console: http://127.0.0.1:",
            // The cold chain (CONTRACT §6), with the internet down.
            "8640 readings acked in", "0 rejected", "shorter than the alarm delay → no alarm", "ALARM: excursion",
            "acknowledges the alarm with the action taken → 201", "a second acknowledgement → 409", "SENSOR SILENT",
            "sensor silence CLEARED", "at the cloud, by id: clinic/coldchain.excursion ",
            "clinic/coldchain.excursion_acknowledged 1, clinic/coldchain.sensor_silent 2",
            "started, ended (no alarm); door left open", "started, alarm, ended, acknowledged; dead probe: silence raised, cleared",
        ] {
            #expect(out.contains(line), "missing \(line)")
        }
        // The monthly chart, checked day by day against the logger's buffer (or, while the chart
        // route is not in the build, said to be skipped).
        #expect(
            out.contains("whole days match the logger's buffer reading for reading"),
            "no chart line")
        // The cold chain's events in the totals: 2 past excursions and 2 live ones (3 + 3 + 2 + 3).
        #expect(out.contains("clinic/coldchain.excursion 11,"), "demo output:\n\(out)")
        #expect(out.contains("Olá, Maria!"))
        let day = ClinicDay()
        for secret in ["medic-qr:", "Aparecida", "Souza", "Pedro", "Nunes", "+5511", "Helena Prado"] + day.patients.map(\.phone) {
            #expect(!out.contains(secret), "the demo printed \(secret)")
        }
        #expect(seconds < 90, "the fast demo took \(seconds) s")
        // Nothing left behind: its temporary directory is gone.
        let dir = try #require(SimulatorTests.workingDirectory(out))
        #expect(dir.contains("medic-edge-demo-") && !FileManager.default.fileExists(atPath: dir))
    }

    @Test("Ctrl-C during the demo stops it early and cleanly: exit 130, the broker and the daemon are gone")
    func demoInterrupted() async throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Harness.binaryPath())
        p.arguments = ["demo", "--fast"]
        let out = Pipe()
        p.standardOutput = out
        p.standardError = out
        let buffer = LockedText()
        out.fileHandleForReading.readabilityHandler = { h in buffer.append(String(decoding: h.availableData, as: UTF8.self)) }
        try p.run()
        defer { if p.isRunning { kill(p.processIdentifier, SIGKILL) } }
        try await Harness.waitUntil("the first check-in", timeout: 60) { buffer.text.contains("checked_in") }
        kill(p.processIdentifier, SIGINT)
        let deadline = Date().addingTimeInterval(30)
        while p.isRunning && Date() < deadline { try await Task.sleep(for: .milliseconds(50)) }
        #expect(!p.isRunning, "the demo did not stop within 30 s of Ctrl-C")
        out.fileHandleForReading.readabilityHandler = nil
        let text = buffer.text
        #expect(p.terminationStatus == 130, "output:\n\(text)")
        #expect(text.contains("Ctrl-C"))
        #expect(text.contains("stopped: daemon"))
        let dir = try #require(SimulatorTests.workingDirectory(text))
        #expect(!FileManager.default.fileExists(atPath: dir), "\(dir) left behind")
        // The ports it printed no longer answer.
        for (prefix, suffix) in [("mosquitto (MQTT broker) on 127.0.0.1:", ""), ("console http://127.0.0.1:", "/")] {
            if let r = text.range(of: prefix) {
                let port = Int(text[r.upperBound...].prefix { $0.isNumber }) ?? 0
                _ = suffix
                #expect(port > 0 && !Harness.canConnect(port: port), "port \(port) still open")
            } else {
                Issue.record("the demo did not print \(prefix)")
            }
        }
    }
}

final class LockedText: Sendable {
    private let value = Mutex("")
    func append(_ s: String) { value.withLock { $0 += s } }
    var text: String { value.withLock { $0 } }
}
