import ArgumentParser
import CloudStub
import EdgeCore
import EdgeMQTT
import EdgeTestSupport
import Foundation
import Synchronization

/// `medic-edge bench ingest`: sustained durable ingest of environment messages with msg_id
/// (QoS 1, acked on …/device/{id}/ack after the commit), with a window of messages in flight;
/// next to the same broker delivering the same QoS-1 messages to a plain discarding
/// subscriber with the same window (the limit).
struct BenchIngest: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ingest", abstract: "Durable acked ingest msgs/s vs. the broker feeding a discarding subscriber; CPU and memory.")

    @Option(help: "Seconds measured, per side.") var seconds = 10.0
    @Option(help: "Seconds before measuring, per side.") var warmup = 2.0
    @Option(help: "Messages in flight (published, not yet acked/received).") var window = 1000
    @Option(help: "Simulated sensors (spread over ten rooms).") var devices = 50
    @Flag(help: "Also forward to the cloud stub while ingesting (the uplink runs; default: no cloud configured).")
    var cloud = false

    struct Side {
        var label: String
        var measured: Int
        var seconds: Double
        var perSecond: [Int]
        var published: Int
        var completed: Int
        var cpu: [(String, Double)]
        var rate: Double { Double(measured) / seconds }
    }

    func run() async throws {
        BenchEnv.start("ingest")
        guard seconds > 0, seconds <= 3600, warmup >= 0, warmup <= 600, window >= 1, window <= 100_000, devices >= 1, devices <= 10_000 else {
            throw ValidationError("--seconds 0…3600, --warmup 0…600, --window 1…100000, --devices 1…10000")
        }
        let broker = try await BenchEnv.broker()
        let site = BenchEnv.site
        let win = window, secs = seconds, warm = warmup, devs = devices

        // 1. The limit: the same broker, the same messages, a subscriber that only counts.
        let received = BenchCounter()
        let sub = try await BenchMQTT(port: broker.port, clientId: "bench-discard") { _, msgs in received.add(msgs.count) }
        try await sub.subscribe(["clinic/bench-limit/#"])
        let limitPub = try await BenchMQTT(port: broker.port, clientId: "bench-limit-pub")
        let limitTopics = SensorPayload.topics(site: "bench-limit", devices: devs)
        say("limit: the broker delivering to a discarding subscriber (window \(win), \(Fmt.f(warm)) s warm-up, \(Fmt.f(secs)) s)…")
        let brokerPid = broker.pid
        let limit = try await onThread("bench-limit") {
            BenchIngest.windowed(
                label: "limit", pub: limitPub, topics: limitTopics, completed: received, window: win,
                warmup: warm, seconds: secs, pids: [("mosquitto", brokerPid), ("bench", getpid())])
        }
        _ = try? await Harness.waitUntil("limit drained", timeout: 10, poll: 0.02) { received.count >= limit.published }
        sub.close(); limitPub.close()

        // 2. The daemon.
        var stub: (CloudStub, Int)?
        if cloud { stub = try await BenchEnv.stub(ClinicDay().seed) }
        let daemon = try BenchEnv.daemon(mqttPort: broker.port, cloudPort: stub?.1)
        let acks = BenchCounter()
        let ackErrors = BenchCounter()
        var daemonSide: Side?
        var rssMax = 0
        var hwm: Int?
        var drainedAfter: Double?
        var pendingAtEnd: Int?
        do {
            try await BenchEnv.start(daemon)
            let pid = daemon.pid ?? 0
            let dev = try await BenchMQTT(port: broker.port, clientId: "bench-sensors") { _, msgs in
                var e = 0
                for m in msgs where String(decoding: m.payload, as: UTF8.self).contains("\"error\"") { e += 1 }
                if e > 0 { ackErrors.add(e) }
                acks.add(msgs.count)
            }
            try await dev.subscribe(["clinic/\(site)/device/+/ack"])
            let topics = SensorPayload.topics(site: site, devices: devs)
            say(
                "daemon (pid \(pid), cloud \(cloud ? "stub up" : "not configured")): durable acked ingest (window \(win), \(Fmt.f(warm)) s warm-up, "
                    + "\(Fmt.f(secs)) s)…"
            )
            let sampler = Task {
                var m = 0
                while !Task.isCancelled {
                    if let r = Proc.rssKB(pid) { m = max(m, r) }
                    try? await Task.sleep(for: .milliseconds(250))
                }
                return m
            }
            let side = try await onThread("bench-ingest") {
                BenchIngest.windowed(
                    label: "daemon", pub: dev, topics: topics, completed: acks, window: win, warmup: warm, seconds: secs,
                    pids: [("medic-edge", pid), ("mosquitto", brokerPid), ("bench", getpid())])
            }
            daemonSide = side
            let t0 = benchNowNs()
            if (try? await Harness.waitUntil("all acked", timeout: 60, poll: 0.01) { acks.count >= side.published }) != nil {
                drainedAfter = Double(benchNowNs() - t0) / 1e9
            }
            sampler.cancel()
            rssMax = await sampler.value
            hwm = Proc.hwmKB(pid)
            pendingAtEnd = await BenchEnv.pending(daemon)
            dev.close()
        } catch {
            await BenchEnv.stop(daemon); try? await stub?.0.stop(); await BenchEnv.stop(broker); BenchCleanup.shared.removeDirs()
            throw error
        }
        await BenchEnv.stop(daemon)
        try? await stub?.0.stop()
        await BenchEnv.stop(broker)
        BenchCleanup.shared.removeDirs()

        guard let d = daemonSide else { return }
        say("")
        say("per-second counts (limit: messages received; daemon: acks received)")
        say("  limit : " + limit.perSecond.map(String.init).joined(separator: " "))
        say("  daemon: " + d.perSecond.map(String.init).joined(separator: " "))
        say("")
        say("  " + Fmt.pad("side", 50) + Fmt.lpad("msgs/s", 10) + Fmt.lpad("min/s", 9) + Fmt.lpad("max/s", 9) + "   CPU (% of one core)")
        for s in [limit, d] {
            let cpu: String = s.cpu.map { "\($0.0) \(Fmt.f($0.1)) %" }.joined(separator: ", ")
            let cols: [String] = [
                Fmt.pad(s.label, 50), Fmt.lpad(Fmt.int(s.rate), 10), Fmt.lpad(String(s.perSecond.min() ?? 0), 9),
                Fmt.lpad(String(s.perSecond.max() ?? 0), 9), "   ", cpu,
            ]
            say("  " + cols.joined())
        }
        let ratio = d.rate / limit.rate
        say("")
        say("ratio daemon / limit: \(Fmt.pct(ratio)) — target ≥ 60 %: \(Fmt.verdict(ratio >= 0.6))")
        say(
            "daemon memory: peak VmRSS sampled \(Fmt.mib(rssMax)), VmHWM \(Fmt.mib(hwm)) — target ≤ 64 MiB: "
                + "\(Fmt.verdict((hwm ?? .max) <= 64 * 1024))"
        )
        say(
            "acks with an error: \(ackErrors.count); published \(d.published), acked \(acks.count)"
                + (drainedAfter.map { "; in-flight window acked \(Fmt.f($0 * 1000, 0)) ms after the publisher stopped" }
                    ?? "; NOT all acked within 60 s")
                + "; outbox pending at the end: \(pendingAtEnd.map(String.init) ?? "?")")
        BenchEnv.finish()
    }

    /// Keeps `window` messages in flight (published − completed) for `warmup + seconds`;
    /// counts completions per second. Blocking: runs on its own thread.
    static func windowed(
        label: String, pub: BenchMQTT, topics: [(topic: String, device: String)], completed: BenchCounter, window: Int,
        warmup: Double, seconds: Double, pids: [(String, Int32?)]
    ) -> Side {
        let clock = TimestampCache()
        let tag = String(UUID().uuidString.prefix(6)).lowercased()
        var published = 0
        let t0 = benchNowNs()
        let measureStart = t0 + UInt64(warmup * 1e9)
        let end = measureStart + UInt64(seconds * 1e9)
        var nextTick = measureStart + 1_000_000_000
        var startCount = 0
        var lastTickCount = 0
        var perSecond: [Int] = []
        var meters: [(String, Proc.CPUMeter)] = []
        var measuring = false
        while true {
            let now = benchNowNs()
            if now >= end {
                if measuring && perSecond.count < Int(seconds.rounded(.down)) { perSecond.append(completed.count - lastTickCount) }
                break
            }
            if !measuring && now >= measureStart {
                measuring = true
                startCount = completed.count
                lastTickCount = startCount
                meters = pids.compactMap { p in Proc.CPUMeter(p.1).map { (p.0, $0) } }
            }
            if measuring && now >= nextTick {
                let c = completed.count
                perSecond.append(c - lastTickCount)
                lastTickCount = c
                nextTick += 1_000_000_000
            }
            let inflight = published - completed.count
            if inflight < window {
                let ts = clock.now()
                for _ in 0..<(window - inflight) {
                    let (topic, _) = topics[published % topics.count]
                    pub.publish(topic, SensorPayload.environment(msgId: "\(tag)-\(published)", n: published, ts: ts))
                    published += 1
                }
            } else {
                _ = completed.sem.wait(timeout: .now() + .milliseconds(5))
            }
        }
        let measured = completed.count - startCount
        let cpu = meters.map { ($0.0, $0.1.percent()) }
        return Side(
            label: label == "limit" ? "limit: broker → discarding subscriber" : "daemon: durable ingest, acked after commit",
            measured: measured, seconds: seconds, perSecond: perSecond, published: published, completed: completed.count, cpu: cpu)
    }
}
