import ArgumentParser
import CloudStub
import EdgeCore
import EdgeHTTPClient
import EdgeStore
import EdgeTestSupport
import Foundation
import Synchronization

/// `medic-edge bench drain`: the drain after an outage. Fills the outbox with N events
/// directly in the database (daemon stopped), then measures start-to-ready (with that
/// backlog and with an empty database), the drain to the cloud stub (events/s, MB/s), the
/// daemon's memory while draining, and — the limit — the stub's own capacity measured by a
/// client posting pre-built batches of the same size. A probe sensor keeps publishing during
/// the drain (ingest must keep flowing).
struct BenchDrain: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "drain", abstract: "Drain N pending events to the cloud stub vs. the stub's own capacity; start-to-ready; memory.")

    @Option(help: "Events in the outbox before the daemon starts.") var events = 1_000_000
    @Option(name: .customLong("max-batch"), help: "cloud.max_batch for the daemon, and the batch size of the capacity client.")
    var maxBatch = 500
    @Option(name: .customLong("capacity-seconds"), help: "How long the capacity client posts.") var capacitySeconds = 5.0
    @Option(name: .customLong("probe-rate"), help: "Sensor messages/s published (and acked) during the drain; 0: none.")
    var probeRate = 10.0
    @Option(help: "Give up the drain after this many seconds.") var timeout = 3600.0
    @Option(name: .customLong("ready-runs"), help: "Start-to-ready measurements per database (empty, backlog).") var readyRuns = 3
    @Option(name: .customLong("fill-only"), help: "Only write the backlog into DIR/medic-edge.sqlite and exit (for profiling the daemon by hand).")
    var fillOnly: String?

    func run() async throws {
        BenchEnv.start("drain")
        if let dir = fillOnly {
            let f = try await BenchDrain.fill(dataDir: dir, count: events)
            say("filled \(dir)/medic-edge.sqlite: \(events) events in \(Fmt.f(f.seconds)) s")
            return
        }
        guard events >= 1, events <= 20_000_000, maxBatch >= 1, maxBatch <= 5000, capacitySeconds > 0, capacitySeconds <= 600,
            probeRate >= 0, probeRate <= 1000, timeout > 0, readyRuns >= 1, readyRuns <= 20
        else {
            throw ValidationError("--events 1…20000000, --max-batch 1…5000, --capacity-seconds 0…600, --probe-rate 0…1000, --ready-runs 1…20")
        }
        let broker = try await BenchEnv.broker()
        let (stub, cloudPort) = try await BenchEnv.stub(ClinicDay().seed)
        let n = events
        var daemons: [DaemonProcess] = []
        func teardown() async {
            for d in daemons { await BenchEnv.stop(d) }
            try? await stub.stop()
            await BenchEnv.stop(broker)
            BenchCleanup.shared.removeDirs()
        }
        do {
            try await body(broker: broker, stub: stub, cloudPort: cloudPort, n: n) { daemons.append($0) }
        } catch {
            await teardown()
            throw error
        }
        await teardown()
        BenchEnv.finish()
    }

    func body(broker: Broker, stub: CloudStub, cloudPort: Int, n: Int, made: (DaemonProcess) -> Void) async throws {
        // 1. Start-to-ready with an empty database.
        var readyEmpty: [Double] = []
        for _ in 0..<readyRuns {
            let d = try BenchEnv.daemon(mqttPort: broker.port, cloudPort: cloudPort, maxBatch: maxBatch)
            made(d)
            readyEmpty.append(try await BenchEnv.startTimed(d))
            try await Task.sleep(for: .milliseconds(300))
            await BenchEnv.stop(d)
            try? FileManager.default.removeItem(atPath: d.dir)
        }
        say("ready (spawn → /healthz 200), empty database: " + readyEmpty.map { Fmt.f($0 * 1000, 0) + " ms" }.joined(separator: ", "))

        // 2. The backlog, written straight into the daemon's database.
        let daemon = try BenchEnv.daemon(mqttPort: broker.port, cloudPort: cloudPort, maxBatch: maxBatch)
        made(daemon)
        say("filling the outbox with \(n) events (10 % clinical, data 300–500 bytes)…")
        let fill = try await BenchDrain.fill(dataDir: daemon.dataDir, count: n)
        let dbBytes = BenchDrain.fileBytes(daemon.dataDir)
        say(
            "fill: \(n) events in \(Fmt.f(fill.seconds)) s (\(Fmt.int(Double(n) / fill.seconds))/s); data mean "
                + "\(Fmt.int(Double(fill.dataBytes) / Double(n))) B; "
                + "as Inngest JSON \(Fmt.f(Double(fill.jsonBytes) / 1e6)) MB; database on disk \(Fmt.f(Double(dbBytes) / 1e6)) MB")

        // 3. The limit: the stub's own capacity, pre-built batches of the same size, one connection.
        say("limit: the stub's capacity (pre-built batches of \(maxBatch), \(Fmt.f(capacitySeconds)) s)…")
        let cap = try await BenchDrain.capacity(port: cloudPort, batch: maxBatch, seconds: capacitySeconds)
        stub.clearEvents()

        // 4. Start-to-ready with the backlog (cloud down for the first runs, so nothing drains).
        stub.setFaults(CloudStubFaults(mode: .down, eventsOnly: true))
        var readyBacklog: [Double] = []
        for _ in 0..<(readyRuns - 1) {
            readyBacklog.append(try await BenchEnv.startTimed(daemon))
            try await Task.sleep(for: .milliseconds(300))
            await BenchEnv.stop(daemon)
        }
        stub.setFaults(CloudStubFaults())
        stub.clearEvents()
        let pendingBefore = try BenchDrain.countOutbox(dataDir: daemon.dataDir)

        // 5. The drain.
        let tSpawn = benchNowNs()
        let ready = try await BenchEnv.startTimed(daemon)
        readyBacklog.append(ready)
        let pid = daemon.pid ?? 0
        say("ready (spawn → /healthz 200), \(pendingBefore) pending: " + readyBacklog.map { Fmt.f($0 * 1000, 0) + " ms" }.joined(separator: ", "))
        say("draining (daemon pid \(pid), cloud.max_batch \(maxBatch))…")
        let tReady = benchNowNs()
        let daemonCPU = Proc.CPUMeter(pid)
        let benchCPU = Proc.CPUMeter(getpid())
        let probe = probeRate > 0 ? try await Probe(port: broker.port, site: BenchEnv.site, rate: probeRate) : nil
        probe?.start()
        var rssMax = 0
        var rssSamples: [Int] = []
        var tDone: UInt64?
        var lastPrint = benchNowNs()
        var lastCount = 0
        let deadline = tReady + UInt64(timeout * 1e9)
        while benchNowNs() < deadline {
            let st = stub.stats()
            if let r = Proc.rssKB(pid) { rssMax = max(rssMax, r); rssSamples.append(r) }
            if st.uniqueIds >= n { tDone = benchNowNs(); break }
            if benchNowNs() - lastPrint >= 10_000_000_000 {
                let dt = Double(benchNowNs() - lastPrint) / 1e9
                say(
                    "  t+\(Fmt.f(Double(benchNowNs() - tReady) / 1e9, 0)) s: \(st.uniqueIds) delivered "
                        + "(\(Fmt.int(Double(st.uniqueIds - lastCount) / dt))/s), "
                        + "VmRSS \(Fmt.mib(Proc.rssKB(pid))), requests \(st.eventRequests)")
                lastPrint = benchNowNs(); lastCount = st.uniqueIds
            }
            if let p = daemon.process, !p.isRunning { throw BenchError("the daemon died while draining: \(daemon.log().suffix(1500))") }
            try await Task.sleep(for: .milliseconds(250))
        }
        let cpuD = daemonCPU?.percent() ?? .nan
        let cpuB = benchCPU?.percent() ?? .nan
        probe?.stop()
        // Then the probe's own events: wait for outbox.pending = 0.
        var tPendingZero: UInt64?
        if tDone != nil {
            let end = Date().addingTimeInterval(120)
            while Date() < end {
                if let p = await BenchEnv.pending(daemon), p == 0 { tPendingZero = benchNowNs(); break }
                if let r = Proc.rssKB(pid) { rssMax = max(rssMax, r) }
                try await Task.sleep(for: .milliseconds(100))
            }
        }
        let hwm = Proc.hwmKB(pid)
        let rssEnd = Proc.rssKB(pid)
        let st = stub.stats()
        let status = try? await daemon.status()
        // Every backlog id, once.
        let received = stub.receivedEvents()
        var seen = Set<String>()
        seen.reserveCapacity(n)
        var backlogSeen = 0, others = 0, repeats = 0
        for e in received {
            guard let id = e["id"]?.stringValue else { continue }
            if !seen.insert(id).inserted { repeats += 1; continue }
            if fill.ids.contains(id) { backlogSeen += 1 } else { others += 1 }
        }
        let probeLat = probe?.latencies() ?? Latencies([])
        let probeSent = probe?.sent.load(ordering: .relaxed) ?? 0
        let probeLost = probe?.lost.load(ordering: .relaxed) ?? 0
        probe?.close()
        await BenchEnv.stop(daemon)

        // Report.
        let capRate = Double(cap.events) / cap.seconds
        let capMB = Double(cap.bytes) / 1e6 / cap.seconds
        say("")
        say(
            "limit: cloud stub capacity, \(cap.requests) pre-built requests of \(maxBatch) events "
                + "(\(Fmt.f(Double(cap.bytes) / Double(max(cap.requests, 1)) / 1024)) KiB each), one connection, \(Fmt.f(cap.seconds)) s:"
        )
        say(
            "  \(Fmt.int(capRate)) events/s, \(Fmt.f(capMB)) MB/s, statuses "
                + "\(cap.statuses.sorted { $0.key < $1.key }.map { "\($0.key)×\($0.value)" }.joined(separator: " "))"
        )
        if let tDone {
            let secs = Double(tDone - tReady) / 1e9
            let rate = Double(n) / secs
            let mbs = Double(fill.jsonBytes) / 1e6 / secs
            say(
                "drain: \(n) events delivered in \(Fmt.f(secs)) s after ready (\(Fmt.f(Double(tDone - tSpawn) / 1e9)) s after spawn): "
                    + "\(Fmt.int(rate)) events/s, \(Fmt.f(mbs)) MB/s")
            say("  ratio drain / stub capacity: \(Fmt.pct(rate / capRate)) — target ≥ 50 %: \(Fmt.verdict(rate / capRate >= 0.5))")
            say(
                "  outbox.pending = 0 "
                    + (tPendingZero.map { "after \(Fmt.f(Double($0 - tReady) / 1e9)) s" }
                        ?? "NOT reached within 120 s after the backlog was delivered")
            )
        } else {
            say("drain: NOT finished within \(Fmt.f(timeout)) s: \(st.uniqueIds) of \(n) delivered")
        }
        say("  daemon CPU while draining \(Fmt.f(cpuD)) % of one core; this process (stub + probe) \(Fmt.f(cpuB)) %")
        say(
            "stub: events received \(st.eventsReceived), unique ids \(st.uniqueIds), duplicates \(st.duplicateIds), requests \(st.eventRequests) "
                + "(\(st.requestsByStatus.sorted { $0.key < $1.key }.map { "\($0.key)×\($0.value)" }.joined(separator: " ")))")
        say(
            "  backlog ids received: \(backlogSeen) of \(n) (each once: \(Fmt.verdict(backlogSeen == n && repeats == 0))); "
                + "other events (the probe's): \(others); repeated ids: \(repeats)"
        )
        say("  daemon status at the end: outbox \(status?["outbox"]?.text ?? "?"), storage \(status?["storage"]?["state"]?.stringValue ?? "?")")
        let readyMax = (readyEmpty + readyBacklog).max() ?? .nan
        say(
            "ready: empty database max \(Fmt.f((readyEmpty.max() ?? .nan) * 1000, 0)) ms, with \(pendingBefore) pending max "
                + "\(Fmt.f((readyBacklog.max() ?? .nan) * 1000, 0)) ms — "
                + "ratio \(Fmt.f((readyBacklog.max() ?? .nan) / (readyEmpty.max() ?? .nan), 2))×; target ≤ 1 s either way: "
                + "\(Fmt.verdict(readyMax <= 1))"
        )
        let sorted = rssSamples.sorted()
        let median = sorted.isEmpty ? nil : sorted[sorted.count / 2]
        say(
            "memory while draining: peak VmRSS sampled \(Fmt.mib(rssMax)) (median \(Fmt.mib(median)), at the end \(Fmt.mib(rssEnd))), VmHWM "
                + "\(Fmt.mib(hwm)) — target ≤ 64 MiB: \(Fmt.verdict((hwm ?? .max) <= 64 * 1024))"
        )
        if probe != nil {
            say(
                "ingest during the drain: \(probeSent) probe messages at \(Fmt.f(probeRate)) msgs/s, acked \(probeLat.count), lost \(probeLost); "
                    + "publish → ack p50 \(Fmt.ms(probeLat.p50)) ms, p99 \(Fmt.ms(probeLat.p99)) ms, max \(Fmt.ms(probeLat.max)) ms")
        }
    }

    // MARK: fill

    struct Fill: Sendable {
        var seconds: Double
        var dataBytes: Int
        var jsonBytes: Int
        var ids: Set<String>
    }

    /// Realistic outbox rows: 90 % `integration/iot.event` readings, 10 % clinical events,
    /// `data` 300–500 bytes, created over the last 72 hours (an outage).
    struct Generator {
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        let tenant = "6f1c2a9e-0000-4000-8000-000000000001"
        mutating func rand() -> UInt64 {
            state ^= state << 13; state ^= state >> 7; state ^= state << 17
            return state
        }
        struct Row: Sendable { var name: String; var cls: EventClass; var source: String; var data: String; var ms: Int64 }

        mutating func row(_ i: Int, ms: Int64) -> Row {
            let at = Time.rfc3339(ms: ms)
            let r = rand()
            let target = 300 + Int(r % 201)
            if i % 10 == 7 {
                let appt = String(format: "a1000000-0000-4000-8000-%012d", i)
                switch (r >> 8) % 3 {
                case 0:
                    let data = JSONText.object { j in
                        j.add("tenant_id", tenant); j.add("site_id", BenchEnv.site); j.add("appointment_id", appt)
                        j.add("patient_id", String(format: "9a000000-0000-4000-8000-%012d", i % 5000)); j.add("device_id", "k1")
                        j.add("method", "qr"); j.add("checked_in_at", at)
                    }
                    return Row(name: "clinic/checkin.recorded", cls: .clinical, source: "appointment:\(appt)", data: data, ms: ms)
                case 1:
                    let data = JSONText.object { j in
                        j.add("tenant_id", tenant); j.add("site_id", BenchEnv.site); j.add("appointment_id", appt)
                        j.add("patient_id", String(format: "9a000000-0000-4000-8000-%012d", i % 5000))
                        j.add("professional_id", "7a1e0000-0000-4000-8000-0000000000e1"); j.add("scheduled_start", at); j.add("detected_at", at)
                    }
                    return Row(name: "clinic/noshow.detected", cls: .clinical, source: "appointment:\(appt)", data: data, ms: ms)
                default:
                    let data = JSONText.object { j in
                        j.add("tenant_id", tenant); j.add("site_id", BenchEnv.site); j.add("room_id", "geladeira-vacinas")
                        j.add("device_id", "fridge-1"); j.add("metric", "temperature_c"); j.add("value", 8.4 + Double(r % 20) / 10)
                        j.add("min", 2.0); j.add("max", 8.0); j.add("state", "raised"); j.add("at", at)
                    }
                    return Row(name: "clinic/environment.alert", cls: .clinical, source: "room:geladeira-vacinas", data: data, ms: ms)
                }
            }
            let dev = "env-\(String(format: "%02d", i % 40))"
            let room = "sala-\(i % 10 + 1)"
            var payload =
                "{\"ts\":\"\(at)\",\"temperature_c\":\(JSONText.number(20 + Double(r % 80) / 10)),"
                + "\"humidity_pct\":\(JSONText.number(40 + Double(r % 300) / 10)),\"co2_ppm\":\(450 + Int(r % 700)),\"msg_id\":\"\(dev)-\(i)\""
            let base = 330 + payload.utf8.count
            if target > base + 12 { payload += ",\"fw_diag\":\"" + String(repeating: "d", count: target - base - 12) + "\"" }
            payload += "}"
            let data = JSONText.object { j in
                j.add("tenant_id", tenant); j.add("site_id", BenchEnv.site); j.add("device_id", dev); j.add("device_type", "environment")
                j.add("event_type", "environment"); j.addRaw("payload", payload); j.add("room_id", room)
                j.add("cloud_room_id", "400e0000-0000-4000-8000-\(String(format: "%012d", i % 10 + 1))"); j.add("created_at", at)
            }
            return Row(name: "integration/iot.event", cls: .telemetry, source: "device:\(dev)", data: data, ms: ms)
        }
    }

    static func fill(dataDir: String, count: Int) async throws -> Fill {
        let db = try AppDatabase.open(dataDir: dataDir)
        let ids = UUIDv7()
        var gen = Generator()
        let now = Time.nowMs()
        let span: Int64 = 72 * 3_600_000
        var all = Set<String>()
        all.reserveCapacity(count)
        var dataBytes = 0, jsonBytes = 2
        let t0 = benchNowNs()
        var i = 0
        while i < count {
            let k = min(20_000, count - i)
            var rows: [Generator.Row] = []
            rows.reserveCapacity(k)
            for j in i..<(i + k) { rows.append(gen.row(j, ms: now - span + span * Int64(j) / Int64(count))) }
            let chunk = rows
            let made: [(String, Int)] = try await db.write { d in
                var out: [(String, Int)] = []
                out.reserveCapacity(chunk.count)
                for r in chunk {
                    let id = try d.enqueue(name: r.name, eventClass: r.cls, source: r.source, data: r.data, nowMs: r.ms, ids: ids)
                    let json = OutboxEvent(seq: 0, id: id, name: r.name, eventClass: r.cls, source: r.source, data: r.data, createdMs: r.ms).json
                    out.append((id, json.utf8.count + 1))
                }
                return out
            }
            for (r, m) in zip(chunk, made) { all.insert(m.0); dataBytes += r.data.utf8.count; jsonBytes += m.1 }
            i += k
        }
        try await db.checkpointAndClose()
        return Fill(seconds: Double(benchNowNs() - t0) / 1e9, dataBytes: dataBytes, jsonBytes: jsonBytes, ids: all)
    }

    /// Rows in the outbox, read with a plain read-only connection (daemon stopped).
    static func countOutbox(dataDir: String) throws -> Int {
        let q = try StoreInspector(dataDir: dataDir, busyTimeout: 0)
        defer { try? q.close() }
        return try q.outboxCount()
    }

    static func fileBytes(_ dataDir: String) -> Int64 {
        var total: Int64 = 0
        for s in ["", "-wal", "-shm"] {
            if let a = try? FileManager.default.attributesOfItem(atPath: dataDir + "/medic-edge.sqlite" + s), let n = a[.size] as? NSNumber {
                total += n.int64Value
            }
        }
        return total
    }

    // MARK: the limit

    struct Capacity: Sendable {
        var requests = 0, events = 0, bytes = 0
        var seconds = 0.0
        var statuses: [Int: Int] = [:]
    }

    /// Posts pre-built batches of `batch` events (the same generator, fresh ids) one after
    /// another on one connection for `seconds`.
    static func capacity(port: Int, batch: Int, seconds: Double) async throws -> Capacity {
        var gen = Generator(state: 0x1234_5678_9ABC_DEF1)
        let ids = UUIDv7()
        let now = Time.nowMs()
        // Enough distinct batches for a few seconds; reused (as duplicates) beyond that.
        let bodies: [[UInt8]] = (0..<max(4, min(400, 200_000 / batch))).map { b in
            var parts: [String] = []
            parts.reserveCapacity(batch)
            for j in 0..<batch {
                let i = b * batch + j
                let r = gen.row(i, ms: now - 1000 + Int64(i % 1000))
                parts.append(
                    OutboxEvent(seq: 0, id: ids.next(nowMs: r.ms), name: r.name, eventClass: r.cls, source: r.source, data: r.data, createdMs: r.ms)
                        .json)
            }
            return Array(("[" + parts.joined(separator: ",") + "]").utf8)
        }
        let http = CurlHTTPClient(label: "bench-capacity")
        let url = "http://127.0.0.1:\(port)/e/test-key"
        var cap = Capacity()
        // Warm the connection.
        _ = try await http.send(
            HTTPRequest(method: "POST", url: url, headers: [("Content-Type", "application/json")], body: bodies[0], connectTimeout: 2, timeout: 15))
        let t0 = benchNowNs()
        let end = t0 + UInt64(seconds * 1e9)
        var k = 1
        while benchNowNs() < end {
            let body = bodies[k % bodies.count]
            let r = try await http.send(
                HTTPRequest(method: "POST", url: url, headers: [("Content-Type", "application/json")], body: body, connectTimeout: 2, timeout: 15))
            cap.statuses[r.status, default: 0] += 1
            cap.requests += 1
            if r.status == 200 { cap.events += batch; cap.bytes += body.count }
            k += 1
        }
        cap.seconds = Double(benchNowNs() - t0) / 1e9
        return cap
    }
}

/// A sensor that keeps publishing during the drain, one message at a time, and times each
/// ack (publish → ack received).
final class Probe: Sendable {
    let mqtt: BenchMQTT
    let acks = Arrivals()
    let sent = Atomic<Int>(0)
    let lost = Atomic<Int>(0)
    private let lat = Mutex<[UInt64]>([])
    private let stopFlag = Atomic<Bool>(false)
    private let done = DispatchSemaphore(value: 0)
    private let running = Atomic<Bool>(false)
    let rate: Double
    let topic: String

    init(port: Int, site: String, rate: Double) async throws {
        self.rate = rate
        topic = "clinic/\(site)/room/sala-1/environment/probe-1"
        let acks = self.acks
        mqtt = try await BenchMQTT(port: port, clientId: "bench-probe") { _, msgs in
            for m in msgs {
                guard let j = try? JSON.parse(m.payload), let id = j["msg_id"]?.stringValue else { continue }
                acks.put(id, atNs: m.receivedAtNs)
            }
        }
        try await mqtt.subscribe(["clinic/\(site)/device/probe-1/ack"])
    }

    func start() {
        running.store(true, ordering: .relaxed)
        let t = Thread { [self] in
            let tag = String(UUID().uuidString.prefix(6)).lowercased()
            var i = 0
            let period = 1.0 / rate
            while !stopFlag.load(ordering: .relaxed) {
                let t0 = benchNowNs()
                let id = "\(tag)-\(i)"
                mqtt.publish(topic, SensorPayload.environment(msgId: id, n: i, ts: Time.rfc3339(Date())))
                sent.add(1, ordering: .relaxed)
                if let a = acks.wait(id, timeout: 5) { let d = a.atNs &- t0; lat.withLock { $0.append(d) } } else { lost.add(1, ordering: .relaxed) }
                i += 1
                let spent = Double(benchNowNs() - t0) / 1e9
                if spent < period { usleep(UInt32((period - spent) * 1e6)) }
            }
            done.signal()
        }
        t.name = "bench-probe"
        t.start()
    }

    func stop() {
        guard running.exchange(false, ordering: .relaxed) else { return }
        stopFlag.store(true, ordering: .relaxed)
        done.wait()
    }
    func latencies() -> Latencies { Latencies(lat.withLock { $0 }) }
    func close() { stop(); mqtt.close() }
}
