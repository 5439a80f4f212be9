import ArgumentParser
import CloudStub
import EdgeCore
import EdgeMQTT
import EdgeStore
import EdgeTestSupport
import Foundation
import Synchronization

/// `medic-edge bench checkin`: kiosk publish → result received, through a real mosquitto and
/// the real daemon (a subprocess of this binary), alone and under background sensor load,
/// cloud up and cloud down; next to the limit measured in the same run: one MQTT QoS-1 round
/// trip through the same broker plus one fsync'd SQLite commit.
struct BenchCheckin: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "checkin",
        abstract: "Kiosk publish → result received (p50/p99/max), next to one MQTT round trip + one fsync'd commit.")

    @Option(help: "Scans measured per phase (each with a fresh scan_id).") var scans = 2000
    @Option(name: .customLong("background-rate"), help: "Environment messages/s (QoS 1, with msg_id) in the loaded phases.")
    var backgroundRate = 2000.0
    @Option(help: "Scans before each phase, not measured.") var warmup = 100
    @Option(name: .customLong("gap-ms"), help: "Pause between scans (a kiosk scans one patient at a time).") var gapMs = 2.0
    @Option(name: .customLong("limit-samples"), help: "Round trips and commits measured for the limit.") var limitSamples = 2000
    @Option(help: "Patients in the roster, each with an appointment in 30 minutes.") var patients = 200
    @Option(name: .customLong("phase-timeout"), help: "Seconds a phase may take at most (scans left are reported as not sent).")
    var phaseTimeout = 180.0

    @Option(
        name: .customLong("purge-days"),
        help: ArgumentHelp(
            "Days of old records past retention (a clinic of 100 check-ins a day: 100 check-ins and kiosk results, 10 no-shows, "
                + "100 audit lines each) written into the running daemon's database; scans are measured around its retention "
                + "job's next run, which purges them (0: no such phase).")
    ) var purgeDays = 0

    func run() async throws {
        BenchEnv.start("checkin")
        guard scans > 0, scans <= 1_000_000, limitSamples > 0, limitSamples <= 1_000_000, patients >= 1, patients <= 100_000 else {
            throw ValidationError("--scans, --limit-samples and --patients must be positive (at most 1,000,000 / 100,000)")
        }
        let broker = try await BenchEnv.broker()
        let day = BenchEnv.clinicDay(patients: patients)
        let (stub, cloudPort) = try await BenchEnv.stub(day.seed)
        let daemon = try BenchEnv.daemon(mqttPort: broker.port, cloudPort: cloudPort)
        let daemonStart = Date()
        try await BenchEnv.start(daemon)
        try await BenchEnv.waitRoster(daemon, patients: day.patients.count, appointments: day.appointments.count)
        say(
            "set-up: mosquitto :\(broker.port), cloud stub :\(cloudPort), daemon pid \(daemon.pid ?? 0); roster \(day.patients.count) patients, "
                + "\(day.appointments.count) appointments"
        )

        let site = BenchEnv.site
        let results = Arrivals()
        let kiosk = try await BenchMQTT(port: broker.port, clientId: "bench-kiosk") { _, msgs in
            for m in msgs {
                guard let j = try? JSON.parse(m.payload), let sid = j["scan_id"]?.stringValue else { continue }
                results.put(sid, atNs: m.receivedAtNs, note: j["outcome"]?.stringValue ?? "?")
            }
        }
        try await kiosk.subscribe(["clinic/\(site)/kiosk/+/result"])
        let background = try await RatePublisher(port: broker.port, site: site, rate: backgroundRate)

        // The limit: a pinger and a reflector through the same broker, and a temp SQLite file.
        let pongs = Arrivals()
        let pinger = try await BenchMQTT(port: broker.port, clientId: "bench-pinger") { _, msgs in
            for m in msgs {
                let key = String(decoding: m.payload.prefix { $0 != UInt8(ascii: "|") }, as: UTF8.self)
                pongs.put(key, atNs: m.receivedAtNs)
            }
        }
        try await pinger.subscribe(["bench/pong"])
        let reflector = try await BenchMQTT(port: broker.port, clientId: "bench-reflector") { me, msgs in
            for m in msgs { try? me.client.publish(topic: "bench/pong", payload: m.payload, qos: 1) }
        }
        try await reflector.subscribe(["bench/ping"])
        let limitDir = Harness.tempDir("bench-sqlite")
        BenchCleanup.shared.track(dir: limitDir)

        // Known codes in turn, every tenth an unknown one.
        var qrs: [String] = []
        var known = 0
        while known < day.patients.count {
            if qrs.count % 10 == 9 { qrs.append("medic-qr:v1:unknown-\(qrs.count)") } else { qrs.append(day.patients[known].qr); known += 1 }
        }
        let codes = qrs
        let phaseDeadline = phaseTimeout
        let topic = "clinic/\(site)/kiosk/k1/scan"
        let n = scans, warm = warmup, gap = gapMs, ls = limitSamples

        func limit(_ label: String) async throws -> (mqtt: Latencies, sqlite: Latencies) {
            let mqtt = try await onThread("bench-ping") { BenchCheckin.pingPong(pinger, pongs: pongs, count: ls) }
            let sql = try await onThread("bench-sqlite") { try BenchCheckin.sqliteCommits(dir: limitDir, label: label, count: ls) }
            return (mqtt, sql)
        }
        func phase(_ label: String, loaded: Bool) async throws -> PhaseResult {
            stub.clearEvents()  // the stub keeps every event in memory
            let bg0 = background.sent.load(ordering: .relaxed), ack0 = background.acks.count
            let bgStart = benchNowNs()
            if loaded { background.start(); try await Task.sleep(for: .seconds(1)) }
            let daemonCPU = Proc.CPUMeter(daemon.pid)
            let tag = String(UUID().uuidString.prefix(6)).lowercased()
            _ = try await onThread("bench-kiosk-warmup") {
                BenchCheckin.scanLoop(
                    kiosk, results: results, topic: topic, qrs: codes, idPrefix: "w\(tag)", count: warm, gapMs: gap, deadline: phaseDeadline)
            }
            let run = try await onThread("bench-kiosk") {
                BenchCheckin.scanLoop(
                    kiosk, results: results, topic: topic, qrs: codes, idPrefix: "s\(tag)", count: n, gapMs: gap, deadline: phaseDeadline)
            }
            let lag = background.sent.load(ordering: .relaxed) - background.acks.count
            let cpu = daemonCPU?.percent() ?? .nan
            background.stop()
            let bgSecs = Double(benchNowNs() - bgStart) / 1e9
            let settled = loaded ? await background.settle(timeout: 120) : true
            let bgSent = background.sent.load(ordering: .relaxed) - bg0
            let bgAcked = background.acks.count - ack0
            return PhaseResult(
                label: label, lat: run.0, outcomes: run.1, lost: run.2, loaded: loaded,
                bgRate: loaded ? Double(bgSent) / bgSecs : 0, bgSent: bgSent, bgAcked: bgAcked, bgSettled: settled,
                daemonCPU: cpu, rssKB: daemon.pid.flatMap(Proc.rssKB), bgLag: loaded ? lag : 0)
        }

        func teardown() async {
            background.close(); kiosk.close(); pinger.close(); reflector.close()
            await BenchEnv.stop(daemon)
            try? await stub.stop()
            await BenchEnv.stop(broker)
            BenchCleanup.shared.removeDirs()
        }
        var phases: [PhaseResult] = []
        var limits: [(String, Latencies, Latencies)] = []
        var purgePhase: (Latencies, Int, String)?
        do {
            if purgeDays > 0 {
                // The retention job runs at the daemon's start and every 60 s after: the old
                // records are written now (after the first run), and scans are measured from
                // shortly before the second run until just after it logs what it removed.
                try await BenchCheckin.fillOldRecords(dataDir: daemon.dataDir, days: min(purgeDays, 3650))
                let from = daemonStart.addingTimeInterval(56)
                if from > Date() { try await Task.sleep(for: .seconds(from.timeIntervalSinceNow)) }
                say("phase 0: scans around the retention job's run (\(Time.rfc3339(Date())))…")
                var lat: [Latencies] = []
                var lost = 0, after = 0, line = ""
                for round in 0..<400 where Date() < daemonStart.addingTimeInterval(120) && after < 3 {
                    let run = try await onThread("bench-kiosk-purge") {
                        BenchCheckin.scanLoop(
                            kiosk, results: results, topic: topic, qrs: codes, idPrefix: "p\(round)", count: 50, gapMs: gap, deadline: phaseDeadline)
                    }
                    lat.append(run.0)
                    lost += run.2
                    if let l = daemon.log().split(separator: "\n").first(where: { $0.contains("retention: removed") }) {
                        line = String(l)
                        after += 1
                    }
                }
                purgePhase = (Latencies(lat.flatMap(\.sorted)), lost, line.isEmpty ? "(no purge logged within 120 s of the start)" : line)
            }
            say("measuring the limit (idle)…")
            let idle = try await limit("idle")
            limits.append(("idle", idle.mqtt, idle.sqlite))
            stub.setFaults(CloudStubFaults())
            say("phase 1/4: cloud up, alone… (\(Time.rfc3339(Date())))")
            phases.append(try await phase("cloud up, alone", loaded: false))
            say("phase 2/4: cloud up, \(Int(backgroundRate)) msgs/s background… (\(Time.rfc3339(Date())))")
            // the limit under the same background load
            background.start()
            try await Task.sleep(for: .seconds(1))
            let busy = try await limit("loaded")
            background.stop()
            _ = await background.settle(timeout: 120)
            limits.append(("with \(Int(backgroundRate)) msgs/s background", busy.mqtt, busy.sqlite))
            phases.append(try await phase("cloud up, background", loaded: true))
            stub.setFaults(CloudStubFaults(mode: .down))
            try await Task.sleep(for: .seconds(1))
            say("phase 3/4: cloud down, alone…")
            phases.append(try await phase("cloud down, alone", loaded: false))
            say("phase 4/4: cloud down, \(Int(backgroundRate)) msgs/s background…")
            phases.append(try await phase("cloud down, background", loaded: true))
            stub.setFaults(CloudStubFaults())
        } catch {
            await teardown()
            throw error
        }
        let errors = background.errors.count
        let cloudState = (try? await daemon.status())?["cloud"]?["state"]?.stringValue ?? "?"
        let hwm = daemon.pid.flatMap(Proc.hwmKB)
        await teardown()

        // Report.
        say("")
        say("limit, measured in this run (\(ls) samples each; ms):")
        say("  " + Fmt.pad("condition", 34) + Fmt.pad("MQTT QoS-1 round trip p50/p99", 32) + Fmt.pad("fsync'd commit p50/p99", 26) + "sum p50/p99")
        for (label, m, s) in limits {
            say(
                "  " + Fmt.pad(label, 34) + Fmt.pad("\(Fmt.ms(m.p50)) / \(Fmt.ms(m.p99))", 32)
                    + Fmt.pad("\(Fmt.ms(s.p50)) / \(Fmt.ms(s.p99))", 26) + "\(Fmt.ms(m.p50 + s.p50)) / \(Fmt.ms(m.p99 + s.p99))")
        }
        say("")
        say("check-in: kiosk publish → result received (\(n) scans per phase after \(warm) warm-up, \(Fmt.f(gapMs)) ms between scans; ms)")
        say(
            "  " + Fmt.pad("phase", 24) + Fmt.lpad("n", 6) + Fmt.lpad("p50", 9) + Fmt.lpad("p99", 9) + Fmt.lpad("max", 9)
                + Fmt.lpad("lost", 6) + Fmt.lpad("p99/limit", 11) + Fmt.lpad("daemon CPU", 12)
                + "  background (sent/acked, rate, unacked at end)  outcomes")
        for p in phases {
            let lim = p.loaded ? limits[1] : limits[0]
            let limP99 = lim.1.p99 + lim.2.p99
            let bg = p.loaded ? "\(p.bgSent)/\(p.bgAcked)\(p.bgSettled ? "" : " (NOT all acked)"), \(Fmt.int(p.bgRate))/s, lag \(p.bgLag)" : "-"
            let outcomes: String = p.outcomes.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            let ratio: String = Fmt.f(p.lat.p99 / limP99, 2) + "×"
            let cpu: String = Fmt.f(p.daemonCPU) + " %"
            let cols: [String] = [
                Fmt.pad(p.label, 24), Fmt.lpad(String(p.lat.count), 6), Fmt.lpad(Fmt.ms(p.lat.p50), 9),
                Fmt.lpad(Fmt.ms(p.lat.p99), 9), Fmt.lpad(Fmt.ms(p.lat.max), 9), Fmt.lpad(String(p.lost), 6),
                Fmt.lpad(ratio, 11), Fmt.lpad(cpu, 12), "  ", Fmt.pad(bg, 40), outcomes,
            ]
            say("  " + cols.joined())
        }
        if let (lat, lost, line) = purgePhase {
            say(
                "  " + Fmt.pad("around the purge", 24) + Fmt.lpad(String(lat.count), 6) + Fmt.lpad(Fmt.ms(lat.p50), 9)
                    + Fmt.lpad(Fmt.ms(lat.p99), 9) + Fmt.lpad(Fmt.ms(lat.max), 9) + Fmt.lpad(String(lost), 6)
                    + "  (\(purgeDays) days of old records purged by the retention job: \(line))")
        }
        say("")
        let worst = phases.map(\.lat.p99).max() ?? .nan
        let lost = phases.map(\.lost).reduce(0, +)
        say(
            "target: p99 ≤ 5 ms in every phase → worst p99 \(Fmt.ms(worst)) ms: "
                + "\(Fmt.verdict(worst <= 5 && lost == 0))\(lost > 0 ? " (\(lost) scans got no result within 5 s)" : "")"
        )
        say("background acks with an error: \(errors); daemon VmHWM \(Fmt.mib(hwm)); cloud state at the end: \(cloudState)")
        BenchEnv.finish()
    }

    struct PhaseResult {
        var label: String
        var lat: Latencies
        var outcomes: [String: Int]
        var lost: Int
        var loaded: Bool
        var bgRate: Double
        var bgSent: Int
        var bgAcked: Int
        var bgSettled: Bool
        var daemonCPU: Double
        var rssKB: Int?
        /// Background messages sent but not yet acked when the last scan was answered.
        var bgLag: Int
    }

    /// Publishes scans one at a time and waits for each result (5 s at most).
    static func scanLoop(
        _ kiosk: BenchMQTT, results: Arrivals, topic: String, qrs: [String], idPrefix: String,
        count: Int, gapMs: Double, deadline: Double
    ) -> (Latencies, [String: Int], Int) {
        var lat: [UInt64] = []
        lat.reserveCapacity(count)
        var outcomes: [String: Int] = [:]
        var lost = 0
        let end = Date().addingTimeInterval(deadline)
        for i in 0..<count {
            if Date() > end {
                outcomes["(not sent: phase deadline)", default: 0] += count - i
                break
            }
            let sid = "\(idPrefix)-\(i)"
            let payload = JSONText.object { j in
                j.add("scan_id", sid); j.add("qr", qrs[i % qrs.count]); j.add("ts", Time.rfc3339(Date()))
            }
            let t0 = benchNowNs()
            kiosk.publish(topic, payload)
            if let a = results.wait(sid, timeout: 5) {
                lat.append(a.atNs &- t0)
                outcomes[a.note, default: 0] += 1
            } else {
                lost += 1
            }
            if gapMs > 0 { usleep(UInt32(gapMs * 1000)) }
        }
        return (Latencies(lat), outcomes, lost)
    }

    /// One MQTT QoS-1 round trip: publish on bench/ping → the reflector republishes on
    /// bench/pong → received here.
    static func pingPong(_ pinger: BenchMQTT, pongs: Arrivals, count: Int) -> Latencies {
        let pad = String(repeating: "x", count: 100)
        var lat: [UInt64] = []
        lat.reserveCapacity(count)
        let tag = String(UUID().uuidString.prefix(6))
        let end = Date().addingTimeInterval(180)
        for i in 0..<(count + 50) where Date() < end {
            let key = "\(tag)\(i)"
            let t0 = benchNowNs()
            pinger.publish("bench/ping", key + "|" + pad)
            if let a = pongs.wait(key, timeout: 5), i >= 50 { lat.append(a.atNs &- t0) }
            usleep(500)
        }
        return Latencies(lat)
    }

    /// `--purge-days`: records past every retention (400 days old and more), written into the
    /// running daemon's database (a second connection, one transaction a day), for its
    /// retention job to purge.
    static func fillOldRecords(dataDir: String, days: Int) async throws {
        let db = try AppDatabase.open(dataDir: dataDir)
        let dayMs: Int64 = 86_400_000
        let oldest = Time.nowMs() - Int64(400 + days) * dayMs
        let t0 = benchNowNs()
        for d in 0..<days {
            let base = oldest + Int64(d) * dayMs
            try await db.write { tx in
                for k in 0..<100 {
                    let at = base + Int64(k) * 300_000, id = "old-\(d)-\(k)"
                    try tx.recordCheckin(
                        appointmentId: id, patientId: "p-\(k)", nowMs: at, method: "qr", device: "k1", staff: nil, eventId: "e-\(id)")
                    try tx.saveKioskResult(deviceId: "k1", scanId: id, outcome: "checked_in", result: "{}", nowMs: at)
                }
                for k in 0..<10 { try tx.recordNoShow(appointmentId: "ns-\(d)-\(k)", nowMs: base + Int64(k) * 60_000, eventId: "e-ns-\(d)-\(k)") }
                for k in 0..<100 { try tx.audit(name: "recepcao", action: "login", target: nil, nowMs: base + Int64(k) * 60_000) }
            }
        }
        say(
            "set-up: \(days) days of old records (\(days * 310) rows) written in \(Fmt.f(Double(benchNowNs() - t0) / 1e9)) s "
                + "for the retention job to purge"
        )
    }

    /// One small insert per transaction, WAL, synchronous = FULL: the fsync'd commit each
    /// check-in needs.
    static func sqliteCommits(dir: String, label: String, count: Int) throws -> Latencies {
        let q = try CommitProbe(path: dir + "/limit-\(label).sqlite")
        let result = String(repeating: "r", count: 200)
        var lat: [UInt64] = []
        lat.reserveCapacity(count)
        let end = Date().addingTimeInterval(180)
        for i in 0..<(count + 20) where Date() < end {
            let t0 = benchNowNs()
            try q.commitOne(scanId: "s\(i)", result: result)
            if i >= 20 { lat.append(benchNowNs() - t0) }
            usleep(500)
        }
        try q.close()
        return Latencies(lat)
    }
}
