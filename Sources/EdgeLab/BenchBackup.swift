import ArgumentParser
import CloudStub
import EdgeCore
import EdgeTestSupport
import Foundation
import Synchronization

/// `medic-edge bench backup`: kiosk publish → result received with and without
/// `medic-edge backup` running back to back (CONTRACT §7: a backup never holds the writer for
/// more than a few milliseconds), under the same background sensor load, on a database grown
/// first (the cloud down, so the outbox keeps every event). Phases alternate (without, with,
/// without, with) and each condition's scans are pooled, so a drift of the machine's load
/// falls on both. Target: p99 with backups ≤ 2 × p99 without.
struct BenchBackup: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backup",
        abstract: "Kiosk p50/p99 with and without medic-edge backup running back to back (target: p99 within 2×).")

    @Option(help: "Scans measured per condition (split over two phases each).") var scans = 2000
    @Option(name: .customLong("background-rate"), help: "Environment messages/s (QoS 1, acked) during the phases.") var backgroundRate = 500.0
    @Option(help: "Events to pile up in the outbox first (the cloud down), to give the backup a database to copy.") var fill = 50_000
    @Option(name: .customLong("gap-ms"), help: "Pause between scans.") var gapMs = 2.0
    @Option(help: "Patients in the roster, each with an appointment in 30 minutes.") var patients = 200
    @Flag(
        name: .customLong("like-unit"), inversion: .prefixedNo,
        help: "Run each backup as medic-edge-backup.service does: nice 10, idle I/O class (ionice -c 3).")
    var likeUnit = true

    func run() async throws {
        BenchEnv.start("backup")
        guard scans >= 2, scans <= 1_000_000, fill >= 0, fill <= 5_000_000, patients >= 1, patients <= 100_000 else {
            throw ValidationError("--scans 2…1,000,000, --fill 0…5,000,000, --patients 1…100,000")
        }
        let broker = try await BenchEnv.broker()
        let day = BenchEnv.clinicDay(patients: patients)
        let (stub, cloudPort) = try await BenchEnv.stub(day.seed)
        let daemon = try BenchEnv.daemon(mqttPort: broker.port, cloudPort: cloudPort)
        try await BenchEnv.start(daemon)
        try await BenchEnv.waitRoster(daemon, patients: day.patients.count, appointments: day.appointments.count)
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
        let filler = try await RatePublisher(port: broker.port, site: site, rate: 5000, devices: 50)
        let backupDir = Harness.tempDir("bench-backups")
        BenchCleanup.shared.track(dir: backupDir)

        func teardown() async {
            background.close(); filler.close(); kiosk.close()
            await BenchEnv.stop(daemon)
            try? await stub.stop()
            await BenchEnv.stop(broker)
            BenchCleanup.shared.removeDirs()
        }

        var qrs: [String] = []
        var known = 0
        while known < day.patients.count {
            if qrs.count % 10 == 9 { qrs.append("medic-qr:v1:unknown-\(qrs.count)") } else { qrs.append(day.patients[known].qr); known += 1 }
        }
        let codes = qrs
        let topic = "clinic/\(site)/kiosk/k1/scan"
        let gap = gapMs
        let half = scans / 2
        let config = daemon.configPath
        let bin = Harness.binaryPath()

        var without: [UInt64] = [], with: [UInt64] = []
        var lostWithout = 0, lostWith = 0
        var backupSeconds: [Double] = []
        var backupFailures: [String] = []
        var dbBytes: Int64 = 0
        do {
            stub.setFaults(CloudStubFaults(mode: .down))
            if fill > 0 {
                say("filling the outbox with \(fill) events (cloud down)…")
                filler.start()
                try await Harness.waitUntil("\(fill) events pending", timeout: 600, poll: 0.5) { (await BenchEnv.pending(daemon) ?? 0) >= fill }
                filler.stop()
                _ = await filler.settle(timeout: 120)
            }
            dbBytes = ["", "-wal"].reduce(Int64(0)) { sum, s in
                sum
                    + (((try? FileManager.default.attributesOfItem(atPath: daemon.dataDir + "/medic-edge.sqlite" + s))?[.size] as? NSNumber)?
                        .int64Value ?? 0)
            }
            say("database: \(Fmt.f(Double(dbBytes) / 1_048_576)) MiB, \(await BenchEnv.pending(daemon) ?? 0) events pending")
            background.start()
            try await Task.sleep(for: .seconds(1))
            for round in 0..<4 {
                let backups = round % 2 == 1
                say("phase \(round + 1)/4: \(backups ? "backups running back to back" : "no backup")…")
                let stopFlag = BackupLoopFlag()
                var loop: Task<([Double], [String]), Never>?
                if backups {
                    loop = Task.detached {
                        var secs: [Double] = [], failures: [String] = []
                        var k = 0
                        while !stopFlag.isSet {
                            let t0 = benchNowNs()
                            let file = backupDir + "/b\(round)-\(k).sqlite"
                            let args = ["backup", file, "--config", config]
                            let (program, argv) = likeUnit ? ("/usr/bin/ionice", ["-c", "3", "nice", "-n", "10", bin] + args) : (bin, args)
                            if let (code, out) = try? await Harness.runProgram(program, argv, timeout: 600) {
                                if code == 0 { secs.append(Double(benchNowNs() - t0) / 1e9) } else { failures.append(String(out.suffix(300))) }
                            }
                            try? FileManager.default.removeItem(atPath: file)
                            k += 1
                        }
                        return (secs, failures)
                    }
                    try await Task.sleep(for: .milliseconds(300))
                }
                let tag = String(UUID().uuidString.prefix(6)).lowercased()
                let run = try await onThread("bench-kiosk") {
                    BenchCheckin.scanLoop(
                        kiosk, results: results, topic: topic, qrs: codes, idPrefix: "b\(round)\(tag)", count: half, gapMs: gap, deadline: 600)
                }
                if let loop {
                    stopFlag.set()
                    let (s, f) = await loop.value
                    backupSeconds += s
                    backupFailures += f
                    with += run.0.sorted
                    lostWith += run.2
                } else {
                    without += run.0.sorted
                    lostWithout += run.2
                }
            }
            background.stop()
            _ = await background.settle(timeout: 120)
        } catch {
            await teardown()
            throw error
        }
        let sentBg = background.sent.load(ordering: .relaxed)
        await teardown()

        let a = Latencies(without), b = Latencies(with)
        say("")
        say("check-in: kiosk publish → result received (\(half * 2) scans per condition in two phases each, \(Fmt.f(gapMs)) ms apart; ms)")
        say(
            "  database \(Fmt.f(Double(dbBytes) / 1_048_576)) MiB; background \(Int(backgroundRate)) msgs/s "
                + "(\(sentBg) sent during the phases); cloud down"
        )
        say("  " + Fmt.pad("condition", 34) + Fmt.lpad("n", 6) + Fmt.lpad("p50", 9) + Fmt.lpad("p99", 9) + Fmt.lpad("max", 9) + Fmt.lpad("lost", 6))
        for (label, l, lost) in [("no backup", a, lostWithout), ("backups back to back", b, lostWith)] {
            say(
                "  " + Fmt.pad(label, 34) + Fmt.lpad(String(l.count), 6) + Fmt.lpad(Fmt.ms(l.p50), 9) + Fmt.lpad(Fmt.ms(l.p99), 9)
                    + Fmt.lpad(Fmt.ms(l.max), 9) + Fmt.lpad(String(lost), 6))
        }
        let bs = Latencies(backupSeconds.map { UInt64($0 * 1e9) })
        say(
            "  backups: \(backupSeconds.count) completed during the scans (each \(Fmt.ms(bs.p50)) ms median, \(Fmt.ms(bs.max)) ms at most), "
                + "\(backupFailures.count) failed\(backupFailures.first.map { ": \($0)" } ?? ""); "
                + (likeUnit ? "run as the unit does (nice 10, ionice -c 3)" : "run at the daemon's priority (--no-like-unit)"))
        let ratio = b.p99 / a.p99
        say("target: p99 with backups ≤ 2 × p99 without → \(Fmt.f(ratio, 2))×: \(Fmt.verdict(ratio <= 2 && lostWith == 0 && backupFailures.isEmpty))")
        BenchEnv.finish()
    }
}

final class BackupLoopFlag: Sendable {
    private let value = Atomic<Bool>(false)
    func set() { value.store(true, ordering: .relaxed) }
    var isSet: Bool { value.load(ordering: .relaxed) }
}
