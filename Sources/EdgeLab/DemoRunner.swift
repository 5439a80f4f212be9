import ArgumentParser
import CloudStub
import EdgeCore
import EdgeSimulators
import EdgeStore
import EdgeTestSupport
import Foundation
import Logging
import Synchronization

/// `medic-edge demo`: the real parts on free loopback ports (mosquitto, the cloud stub, the
/// daemon as a subprocess of this very binary), the device simulators in-process, and a
/// scripted clinic morning printed as it happens; then the totals, computed from the
/// daemon's outbox and the ids the cloud stub received. See docs/demo.md.
struct DemoRunner {
    let keepSeconds: Double
    var fast = false

    struct StepFailed: Error, CustomStringConvertible {
        let step: String
        let detail: String
        var description: String { "\(step): \(detail)" }
    }

    /// How fast the story goes.
    struct Pace {
        /// Rate multiplier of presence sensors, room monitors and the wearable gateway.
        var ambientRate: Double
        /// The fridge reads every 60 / fridgeRate seconds.
        var fridgeRate: Double
        var betweenScans: Double
        var outage: Double
        var backlogEvery: Double
        /// Seconds after launch when the no-show becomes due (start + grace).
        var noShowAt: Double
        var graceMinutes: Double
        static let full = Pace(ambientRate: 30, fridgeRate: 60, betweenScans: 1.5, outage: 12, backlogEvery: 3, noShowAt: 38, graceMinutes: 0.5)
        static let fast = Pace(ambientRate: 40, fridgeRate: 150, betweenScans: 0.4, outage: 5, backlogEvery: 1.5, noShowAt: 19, graceMinutes: 0.25)
    }

    static let site = "pleno-cuidado"
    static let tenant = "6f1c2a9e-0000-4000-8000-000000000001"
    static let zone = TimeZone(identifier: "America/Sao_Paulo")!
    static let fridgeRoomId = "400e0000-0000-4000-8000-0000000000f1"
    static let staffName = "demo"
    static let staffPassword = "pleno-demo-2026"

    func run() async throws {
        let log = StoryLog(zone: DemoRunner.zone)
        let world = DemoWorld()
        let story = Task { try await self.story(log, world) }
        let interrupt = InterruptHandler(
            onSignal: { sig in
                log.line("stop", sig == SIGINT ? "Ctrl-C: stopping…" : "SIGTERM: stopping…")
                story.cancel()
            }, onForce: { world.forceKill() })
        let result = await story.result
        await world.cleanup(log)
        switch result {
        case .success:
            return
        case .failure where interrupt.interrupted:
            if world.storyDone { return }
            log.plain("demo interrupted: everything it started is stopped and its temporary files are removed")
            throw ExitCode(130)
        case .failure(let e as StepFailed):
            FileHandle.standardError.write(Data("medic-edge demo: FAILED at \(e.step): \(e.detail)\n".utf8))
            throw ExitCode(1)
        case .failure(let e):
            FileHandle.standardError.write(Data("medic-edge demo: FAILED: \(e)\n".utf8))
            throw ExitCode(1)
        }
    }

    // MARK: the story

    func story(_ log: StoryLog, _ world: DemoWorld) async throws {
        let pace = fast ? Pace.fast : Pace.full
        let launch = Date()
        log.plain("medic-edge demo: a clinic morning at Pleno Cuidado, simulated on this machine (times in America/Sao_Paulo)")

        // Preflight: mosquitto, and the daemon's binary.
        guard let mosquitto = DemoRunner.findMosquitto() else {
            throw StepFailed(step: "setup", detail: "mosquitto is not installed: apt-get install -y mosquitto")
        }
        _ = mosquitto
        // The daemon: the medic-edge binary beside this lab binary (or $MEDIC_EDGE_BIN).
        let daemonBinary = Harness.binaryPath()
        guard FileManager.default.isExecutableFile(atPath: daemonBinary), (daemonBinary as NSString).lastPathComponent != "medic-edge-lab" else {
            throw StepFailed(step: "setup", detail: "the daemon binary medic-edge is not beside medic-edge-lab: swift build --product medic-edge")
        }
        setenv("MEDIC_EDGE_BIN", daemonBinary, 1)

        // The clinic day: appointments around now, one that will be a no-show.
        var day = ClinicDay(now: launch)
        let helena = ClinicDay.Patient(
            id: "9a000000-0000-4000-8000-000000000005", name: "Helena Prado Lima",
            phone: "+5511990000005", qr: "medic-qr:v1:helena:5e5e5e5e5e")
        day.patients.append(helena)
        day.book(day.maria, startMinutes: 20)
        day.book(day.joao, startMinutes: 35, professional: day.draAna, room: day.sala3, service: day.nutricao)
        day.book(day.beatriz, startMinutes: 50)
        let noShowStart = launch.addingTimeInterval(pace.noShowAt - pace.graceMinutes * 60)
        let noShowAppt = day.book(
            day.carlos, startMinutes: noShowStart.timeIntervalSince(launch) / 60, minutes: 40,
            professional: day.draAna, room: day.sala3, service: day.nutricao)
        day.book(helena, startMinutes: 26 * 60)  // tomorrow
        var seed = day.seed
        seed.eventKey = "demo-key"
        seed.directusToken = "demo-token"
        seed.collections["rooms", default: []].append(
            .object([
                "id": .string(DemoRunner.fridgeRoomId), "name": "Geladeira de vacinas",
                "iot_config": .object(["mqtt_room_id": "geladeira-vacinas"]),
                "created_at": .string(ClinicDay.iso(launch.addingTimeInterval(-86400 * 60))), "updated_at": .null,
            ]))

        // The real parts.
        let root = Harness.tempDir("medic-edge-demo")
        world.set { $0.root = root }
        let broker: Broker
        do {
            broker = try Broker()
            world.set { $0.broker = broker }
            try await broker.start()
        } catch is CancellationError { throw CancellationError() } catch {
            throw StepFailed(step: "setup", detail: "mosquitto did not start (\(error)); is it installed? apt-get install -y mosquitto")
        }
        log.line("setup", "working directory \(root) (deleted at the end)")
        log.line("setup", "mosquitto (MQTT broker) on 127.0.0.1:\(broker.port)")

        let stub = CloudStub(seed: seed, logger: Logger(label: "cloud-stub", factory: { _ in SwiftLogNoOpLogHandler() }))
        world.set { $0.stub = stub }
        let cloudPort = try await stub.start()
        log.line(
            "setup",
            "cloud stub (Inngest Event API + Directus REST) on http://127.0.0.1:\(cloudPort): "
                + "\(day.patients.count) patients, \(day.appointments.count) appointments, 3 rooms")

        let coldMinutes = DemoRunner.coldChainMinutes(pace)
        let yaml = """
            site_id: \(DemoRunner.site)
            tenant_id: \(DemoRunner.tenant)
            timezone: America/Sao_Paulo
            data_dir: {DATA_DIR}
            log_level: notice
            mqtt: {host: 127.0.0.1, port: \(broker.port), client_id: medic-edge-demo}
            http: {listen: "127.0.0.1:{HTTP_PORT}"}
            cloud:
              events_url: http://127.0.0.1:\(cloudPort)/e/demo-key
              directus_url: http://127.0.0.1:\(cloudPort)
              directus_token: demo-token
              roster_sync_seconds: 1
              connect_timeout_seconds: 1
              request_timeout_seconds: 2
            checkin: {open_before_minutes: 120}
            noshow: {grace_minutes: \(pace.graceMinutes), check_interval_seconds: 1}
            rooms:
              geladeira-vacinas:
                name: Geladeira de vacinas
                limits: {temperature_c: {min: 2, max: 8, hysteresis: 0.5}}
                cold_chain: {alarm_delay_minutes: \(String(format: "%.4f", coldMinutes.alarm)),
                             silence_minutes: \(String(format: "%.4f", coldMinutes.silence)),
                             workday: {opens: "07:00", closes: "19:00"}}

            """
        try FileManager.default.createDirectory(atPath: root + "/daemon", withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let daemon = try DaemonProcess(configYAML: yaml, dir: root + "/daemon")
        world.set { $0.daemon = daemon }
        do { try await daemon.start() } catch is CancellationError { throw CancellationError() } catch {
            throw StepFailed(
                step: "setup",
                detail: "the daemon did not become ready: \(error)\n--- daemon log (last lines) ---\n"
                    + daemon.log().split(separator: "\n").suffix(15).joined(separator: "\n"))
        }
        let console = "http://127.0.0.1:\(daemon.httpPort)/"
        log.line("setup", "medic-edge daemon ready (site \(DemoRunner.site), pid \(daemon.pid ?? 0)); console \(console)")
        // A reception account for the console (best effort; the demo does not need it).
        let staff = Task { () -> Bool in
            let r = try? await DaemonProcess.runCLI(
                ["staff", "add", DemoRunner.staffName, "--config", daemon.configPath],
                stdin: "\(DemoRunner.staffPassword)\n\(DemoRunner.staffPassword)\n", timeout: 30)
            return r?.0 == 0
        }
        world.set { $0.staff = staff }

        let roster = try await waitFor("roster sync", timeout: 20) { () -> JSON? in
            let s = try await daemon.status()
            guard s["roster"]?["last_sync_at"]?.stringValue != nil,
                Int(s["roster"]?["appointments"]?.doubleValue ?? 0) >= day.appointments.count
            else { return nil }
            return s["roster"]
        }
        log.line(
            "setup",
            "roster synced from the cloud: \(Int(roster["patients"]?.doubleValue ?? 0)) patients, "
                + "\(Int(roster["appointments"]?.doubleValue ?? 0)) appointments (kept locally for offline check-in)")

        // The devices.
        var settings = SimSettings(port: broker.port, site: DemoRunner.site, rate: pace.ambientRate)
        settings.rates[.fridge] = pace.fridgeRate
        settings.seed = 20_261_129
        let sim = DeviceSimulator(settings: settings)
        world.set { $0.sim = sim }
        let kiosk = sim.addKiosk(id: "kiosk-recepcao-1", room: "recepcao", auto: false)
        let presence = sim.addPresence(id: "pres-sala-2", room: "sala-2", auto: false)
        sim.addPresence(id: "pres-sala-3", room: "sala-3", auto: true)
        sim.addEnvironment(id: "env-sala-2", room: "sala-2")
        sim.addEnvironment(id: "env-sala-3", room: "sala-3")
        // The fridge's data logger sends no live reading before its buffer is flushed.
        let fridge = sim.addFridge(id: "env-geladeira", room: DemoRunner.fridgeRoom, autoExcursions: false, sending: false)
        let history = FridgeHistory.make(endingAt: Date(), days: 30, intervalSeconds: 300, zone: DemoRunner.zone, seed: 20_261_129)
        sim.addWearableGateway(id: "gw-1", patients: day.patients.map(\.id), batchSize: 20...60)
        let watchFridge = DemoFlag()
        let lastPhase = Mutex("")
        let firstWearable = DemoFlag()
        sim.onEvent { e in
            switch e {
            case .fridge(_, _, let t, let phase) where watchFridge.isOn:
                // Every reading of the story, but a held door once.
                let repeated = lastPhase.withLock { last in
                    defer { last = phase }; return last == phase && phase == FridgeSim.Phase.holding.rawValue
                }
                if !repeated { log.line("fridge", "env-geladeira reads \(SimText.celsius(t)) (\(phase))") }
            case .acked(let d, let m, nil, let sends) where d == "gw-1" && firstWearable.setOnce():
                log.line("wearable", "gw-1 batch \(m) acked after the appliance committed it (sent \(sends)×); the gateway stops resending it")
            case .acked(let d, let m, let err?, _):
                log.line("devices", "\(d): \(m) rejected by the appliance: \(err)")
            default: break
            }
        }
        do { try await sim.start() } catch is CancellationError { throw CancellationError() } catch {
            throw StepFailed(step: "devices", detail: "\(error)")
        }
        log.line(
            "devices", "\(sim.deviceIds.count) simulated devices online (retained status, will offline): \(sim.deviceIds.joined(separator: ", "))")
        try await flushHistory(log, fridge: fridge, history: history)

        // Check-ins at the kiosk.
        var latencies: [Double] = []
        func scan(_ qr: String, _ label: String, expect: String, note: String = "") async throws {
            guard let a = await kiosk.scan(qr, label: label, timeout: 15) else {
                try Task.checkCancellation()
                throw StepFailed(step: "check-in", detail: "the kiosk got no result within 15 s")
            }
            latencies.append(a.millis)
            log.line("kiosk", "\(label) → \(a.outcome) in \(SimText.ms(a.millis))\(note): \"\(a.message)\"")
            guard a.outcome == expect else { throw StepFailed(step: "check-in", detail: "expected \(expect), got \(a.outcome)") }
            try await pause(pace.betweenScans)
        }
        func at(_ minutes: Double) -> String { log.clock(launch.addingTimeInterval(minutes * 60)).prefix(5).description }
        try await scan(day.maria.qr, "QR scanned (appointment at \(at(20)))", expect: "checked_in")
        try await scan(day.joao.qr, "QR scanned (appointment at \(at(35)))", expect: "checked_in")
        try await scan(
            "medic-qr:v1:outra-clinica:" + String(UInt32.random(in: 0...UInt32.max), radix: 16), "QR from another clinic", expect: "unknown_code")
        try await scan(day.maria.qr, "the same patient scans again", expect: "already_checked_in")

        // An occupancy change.
        log.line("room", "pres-sala-2 sees 2 people come into Sala 2")
        await presence.set(occupied: true, people: 2)
        _ = try await waitForCloud(stub, "clinic/room.occupancy_changed", step: "occupancy", timeout: 15) {
            $0["data"]?["room_id"]?.stringValue == "sala-2" && $0["data"]?["occupied"]?.boolValue == true
        }
        log.line("room", "Sala 2 is occupied → the cloud received clinic/room.occupancy_changed (occupied: true)")

        // The internet goes down.
        stub.setFaults(CloudStubFaults(mode: .down))
        let downAt = Date()
        log.line("cloud", "the clinic's internet goes down: every cloud request now fails (HTTP 503)")
        let state = try await waitFor("cloud down", timeout: 15) { () -> String? in
            let s = try await daemon.status()["cloud"]?["state"]?.stringValue
            return s == "online" ? nil : s
        }
        log.line("cloud", "the appliance notices: cloud \(state); check-in and the devices carry on locally")
        try await scan(day.beatriz.qr, "QR scanned (appointment at \(at(50)))", expect: "checked_in", note: " with the cloud down")
        try await scan(helena.qr, "QR scanned (appointment tomorrow)", expect: "no_appointment", note: " with the cloud down")
        let cold = try await coldChain(
            log, daemon: daemon, fridge: fridge, history: history, pace: pace, staff: staff, watchFridge: watchFridge)
        repeat {
            try await pause(pace.backlogEvery)
            let s = try await daemon.status()
            let pending = Int(s["outbox"]?["pending"]?.doubleValue ?? 0)
            let oldest = s["outbox"]?["oldest_pending_at"]?.stringValue.flatMap(Time.parseMs)
            let age = oldest.map { " (oldest \(Int(Double(Time.nowMs() - $0) / 1000)) s)" } ?? ""
            log.line("cloud", "backlog: \(pending) events waiting on the appliance's disk\(age)")
        } while Date().timeIntervalSince(downAt) < pace.outage

        // The internet comes back.
        let reader = try openReader(daemon)
        world.set { $0.reader = reader }
        let held = try await reader.outboxIds()
        stub.setFaults(CloudStubFaults())
        let backAt = Date()
        log.line("cloud", "the internet is back; \(held.count) events are waiting, the uplink resumes by itself (no restart)")
        try await waitFor("backlog drain", timeout: 60, poll: 0.1) { () -> Bool? in
            Int(try await daemon.status()["outbox"]?["pending"]?.doubleValue ?? -1) == 0 ? true : nil
        }
        let drainSeconds = Date().timeIntervalSince(backAt)
        let missing = try await waitFor("backlog ids at the cloud", timeout: 10) { () -> [String]? in
            let ids = Set(stub.receivedEvents().compactMap { $0["id"]?.stringValue })
            let m = held.filter { !ids.contains($0) }
            return m.isEmpty ? m : nil
        }
        _ = missing
        log.line(
            "cloud",
            "backlog drained to 0 in \(String(format: "%.1f", drainSeconds)) s; all \(held.count) events held during the outage "
                + "are at the cloud (checked id by id)")
        try await coldChainAtCloud(log, stub: stub, facts: cold)

        // The no-show.
        if cloudEvents(stub, "clinic/noshow.detected").isEmpty {
            log.line(
                "noshow",
                "waiting for the \(log.clock(noShowStart).prefix(5)) appointment (Dra. Ana, Sala 3): "
                    + "no check-in yet, no-show grace \(SimText.number(pace.graceMinutes * 60)) s")
        }
        let noshow = try await waitForCloud(
            stub, "clinic/noshow.detected", step: "no-show",
            timeout: max(20, pace.noShowAt - Date().timeIntervalSince(launch) + 20)
        ) { _ in true }
        let detected = noshow["data"]?["detected_at"]?.stringValue.flatMap(Time.parseMs).map { Date(timeIntervalSince1970: Double($0) / 1000) }
        let offline = detected.map { $0 >= downAt && $0 < backAt } ?? false
        guard noshow["data"]?["appointment_id"]?.stringValue == noShowAppt else {
            throw StepFailed(step: "no-show", detail: "a no-show for an unexpected appointment")
        }
        log.line(
            "noshow",
            "no-show: the \(log.clock(noShowStart).prefix(5)) appointment with Dra. Ana (Nutrição, Sala 3) had no check-in "
                + "\(SimText.number(pace.graceMinutes * 60)) s after its start → clinic/noshow.detected at the cloud"
                + (detected.map { " (detected \(log.clock($0))\(offline ? ", while the cloud was down" : ""))" } ?? ""))

        // The devices go off; their offline statuses are facts too.
        await sim.stop()
        world.set { $0.simStopped = true }
        let deviceCount = sim.deviceIds.count
        _ = try await waitFor("offline statuses at the cloud", timeout: 20) { () -> Bool? in
            cloudEvents(stub, "integration/device.status_changed").filter { $0["data"]?["state"]?.stringValue == "offline" }.count >= deviceCount
                ? true : nil
        }
        log.line("devices", "devices switched off: each published its offline status (\(deviceCount) device.status_changed events at the cloud)")

        // The totals: what the appliance recorded (its outbox sequence: every event gets the
        // next number when it is committed) against the distinct ids the cloud received.
        func totals() async throws -> (recorded: Int, pending: Int, dead: Int, dropped: Int) {
            try await reader.totals()
        }
        _ = try? await waitFor("the last events delivered", timeout: 15, poll: 0.1) { () -> Bool? in
            let t = try await totals()
            return t.pending == 0 && t.recorded == Set(stub.receivedEvents().compactMap { $0["id"]?.stringValue }).count ? true : nil
        }
        let t = try await totals()
        let events = stub.receivedEvents()
        var byName: [String: Set<String>] = [:]
        for e in events {
            guard let id = e["id"]?.stringValue, let name = e["name"]?.stringValue else { continue }
            byName[name, default: []].insert(id)
        }
        let delivered = Set(events.compactMap { $0["id"]?.stringValue }).count
        let duplicates = stub.stats().duplicateIds
        let lost = t.recorded - delivered
        let m = (try? await daemon.get("/metrics").text) ?? ""
        let msgs = DemoRunner.messageCounts(m)
        let sims = sim.stats()
        let gw = sims.first { $0.device == "gw-1" }
        latencies.sort()
        let median = latencies.isEmpty ? 0 : latencies[latencies.count / 2]

        log.plain("")
        log.plain("totals")
        log.plain("  events recorded by the appliance    \(pad(t.recorded))  (its outbox sequence)")
        log.plain("  delivered (unique ids at the cloud) \(pad(delivered))")
        log.plain("  duplicates at the cloud             \(pad(duplicates))  (harmless: the cloud dedupes by id)")
        log.plain("  pending / refused by the cloud      \(pad(t.pending)) / \(t.dead)")
        log.plain("  lost = recorded − delivered         \(pad(lost))")
        log.plain("  by event: " + byName.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value.count)" }.joined(separator: ", "))
        log.plain(
            "  device messages: \(msgs.accepted) accepted, \(msgs.duplicate) resent copies stored once, \(msgs.rejected) rejected; "
                + "wearable batches \(gw?.acked ?? 0) acked (\(gw?.resent ?? 0) resends); kiosk answers, median \(SimText.ms(median))")
        let staffOK = await staff.value
        log.plain("console: \(console)" + (staffOK ? " (sign in as \(DemoRunner.staffName) / \(DemoRunner.staffPassword))" : ""))
        if lost != 0 || t.pending != 0 || t.dead != 0 || t.dropped != 0 {
            throw StepFailed(
                step: "totals",
                detail: "lost \(lost), pending \(t.pending), refused \(t.dead), dropped \(t.dropped): every recorded event must reach the cloud")
        }
        if byName["clinic/noshow.detected"]?.count != 1 {
            throw StepFailed(step: "totals", detail: "expected exactly one no-show signal, got \(byName["clinic/noshow.detected"]?.count ?? 0)")
        }
        world.set { $0.storyDone = true }

        if keepSeconds > 0 {
            log.line("keep", "everything stays up for \(SimText.number(keepSeconds)) s: open \(console) (Ctrl-C to stop)")
            try await Task.sleep(for: .milliseconds(Int(keepSeconds * 1000)))
        }
    }

    // MARK: helpers

    func pad(_ n: Int) -> String { let s = String(n); return String(repeating: " ", count: max(0, 6 - s.count)) + s }

    func pause(_ seconds: Double) async throws { try await Task.sleep(for: .milliseconds(Int(seconds * 1000))) }

    /// Polls `f` until it returns a value; a step failure after `timeout` seconds.
    @discardableResult
    func waitFor<T: Sendable>(_ step: String, timeout: Double, poll: Double = 0.05, _ f: () async throws -> T?) async throws -> T {
        let deadline = Date().addingTimeInterval(timeout)
        while true {
            try Task.checkCancellation()
            if let v = try? await f() { return v }
            if Date() > deadline { throw StepFailed(step: step, detail: "nothing after \(Int(timeout)) s") }
            try await Task.sleep(for: .milliseconds(Int(poll * 1000)))
        }
    }

    func cloudEvents(_ stub: CloudStub, _ name: String) -> [JSON] {
        stub.receivedEvents().filter { $0["name"]?.stringValue == name }.map(\.asJSON)
    }

    func waitForCloud(_ stub: CloudStub, _ name: String, step: String, timeout: Double, where match: @escaping (JSON) -> Bool) async throws -> JSON {
        try await waitFor(step, timeout: timeout) { () -> JSON? in cloudEvents(stub, name).first(where: match) }
    }

    /// A read-only connection to the daemon's database (WAL: it never blocks the daemon).
    func openReader(_ daemon: DaemonProcess) throws -> StoreInspector {
        try StoreInspector(dataDir: daemon.dataDir, busyTimeout: 5)
    }

    static func messageCounts(_ metrics: String) -> (accepted: Int, duplicate: Int, rejected: Int) {
        var a = 0, d = 0, r = 0
        for line in metrics.split(separator: "\n") where line.hasPrefix("medic_edge_mqtt_messages_total{") {
            let n = Int(Double(line.split(separator: " ").last ?? "") ?? 0)
            if line.contains(#"result="accepted""#) {
                a += n
            } else if line.contains(#"result="duplicate""#) {
                d += n
            } else if line.contains(#"result="rejected""#) {
                r += n
            }
        }
        return (a, d, r)
    }

    static func findMosquitto() -> String? {
        let known = Harness.mosquittoPath()
        if known.hasPrefix("/") { return known }
        for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":") {
            let p = "\(dir)/mosquitto"
            if FileManager.default.isExecutableFile(atPath: p) { return p }
        }
        return nil
    }
}

/// A thread-safe boolean for event handlers.
final class DemoFlag: Sendable {
    private let value = Mutex(false)
    var isOn: Bool { value.withLock { $0 } }
    func set(_ v: Bool) { value.withLock { $0 = v } }
    /// True the first time only.
    func setOnce() -> Bool {
        value.withLock { v in
            defer { v = true }; return !v
        }
    }
}

/// What the demo started, for the cleanup (also after Ctrl-C or a failed step).
final class DemoWorld: Sendable {
    struct Parts {
        var root: String?
        var broker: Broker?
        var stub: CloudStub?
        var daemon: DaemonProcess?
        var sim: DeviceSimulator?
        var reader: StoreInspector?
        var staff: Task<Bool, Never>?
        var simStopped = false
        var storyDone = false
    }
    private let parts = Mutex(Parts())

    func set(_ f: (inout Parts) -> Void) { parts.withLock { f(&$0) } }
    var storyDone: Bool { parts.withLock { $0.storyDone } }

    /// Second Ctrl-C: no cleanup, just make sure no child survives.
    func forceKill() {
        let p = parts.withLock { $0 }
        if let pid = p.daemon?.pid { kill(pid, SIGKILL) }
        if let pid = p.broker?.pid { kill(pid, SIGKILL) }
    }

    func cleanup(_ log: StoryLog) async {
        let p = parts.withLock { $0 }
        if let sim = p.sim, !p.simStopped { await sim.stop() }
        _ = await p.staff?.value  // a short-lived `medic-edge staff add` child (bounded by its own time-out)
        try? p.reader?.close()
        var stopped: [String] = []
        if let d = p.daemon, d.process != nil {
            let wasRunning = d.process?.isRunning ?? false
            let code = await d.terminate(timeout: 12)
            if wasRunning { stopped.append(code.map { "daemon (exit \($0))" } ?? "daemon (killed)") }
        }
        if let s = p.stub { try? await s.stop(); stopped.append("cloud stub") }
        if let b = p.broker {
            await b.stop()
            try? FileManager.default.removeItem(atPath: b.dir)
            stopped.append("mosquitto")
        }
        if let r = p.root { try? FileManager.default.removeItem(atPath: r) }
        if !stopped.isEmpty { log.line("stop", "stopped: \(stopped.joined(separator: ", ")); temporary files removed") }
    }
}
