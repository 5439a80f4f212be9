import CloudStub
import EdgeCore
import EdgeHTTPClient
import EdgeMQTT
import EdgeTestSupport
import Foundation
import Logging
import Synchronization

// Shared pieces of `medic-edge bench`: clocks, percentiles, /proc readings, a small MQTT
// wrapper that stamps arrivals in libmosquitto's own thread, blocking waits on dedicated
// threads (never on the cooperative pool: this box has two cores), and clean-up of every
// child process and temporary directory, also on Ctrl-C.

/// Prints and flushes at once (progress shows through a pipe).
func say(_ s: String = "") {
    print(s)
    fflush(nil)
}

/// An error that says what went wrong.
struct BenchError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

/// Monotonic nanoseconds, the same clock `MQTTMessage.receivedAtNs` uses.
@inline(__always) func benchNowNs() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

// MARK: - statistics

/// Latencies in nanoseconds; percentiles by nearest rank.
struct Latencies: Sendable {
    private(set) var sorted: [UInt64]
    init(_ ns: [UInt64]) { sorted = ns.sorted() }
    var count: Int { sorted.count }
    /// Milliseconds.
    func p(_ q: Double) -> Double {
        guard !sorted.isEmpty else { return .nan }
        let rank = Swift.max(1, Int((q / 100 * Double(sorted.count)).rounded(.up)))
        return Double(sorted[Swift.min(rank, sorted.count) - 1]) / 1e6
    }
    var p50: Double { p(50) }
    var p99: Double { p(99) }
    var max: Double { sorted.last.map { Double($0) / 1e6 } ?? .nan }
    var mean: Double { sorted.isEmpty ? .nan : Double(sorted.reduce(0, +)) / Double(sorted.count) / 1e6 }
}

enum Fmt {
    static func ms(_ v: Double) -> String { v.isNaN ? "-" : String(format: "%.3f", v) }
    static func f(_ v: Double, _ digits: Int = 1) -> String { v.isNaN || v.isInfinite ? "-" : String(format: "%.\(digits)f", v) }
    static func int(_ v: Double) -> String { v.isNaN || v.isInfinite ? "-" : String(Int(v.rounded())) }
    static func mib(_ kb: Int?) -> String { kb.map { String(format: "%.1f MiB", Double($0) / 1024) } ?? "-" }
    static func pct(_ v: Double) -> String { v.isNaN || v.isInfinite ? "-" : String(format: "%.1f %%", v * 100) }
    static func pad(_ s: String, _ n: Int) -> String { s.count >= n ? s : s + String(repeating: " ", count: n - s.count) }
    static func lpad(_ s: String, _ n: Int) -> String { s.count >= n ? s : String(repeating: " ", count: n - s.count) + s }
    static func verdict(_ ok: Bool) -> String { ok ? "MET" : "MISSED" }
}

// MARK: - /proc

enum Proc {
    /// The whole of a /proc file (they report size 0: read until EOF).
    static func readProcFile(_ path: String) -> String? {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            out.append(contentsOf: buf[0..<n])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// `VmRSS`, `VmHWM`, `RssAnon`, `RssFile`… of a process, in kB (nil when gone).
    static func status(_ pid: Int32) -> [String: Int]? {
        guard let text = readProcFile("/proc/\(pid)/status") else { return nil }
        return parseStatus(text)
    }
    /// The `Key:  N kB` lines of a /proc status dump.
    static func parseStatus(_ text: String) -> [String: Int] {
        var out: [String: Int] = [:]
        for line in text.split(separator: "\n") {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let rest = line[line.index(after: colon)...].split(whereSeparator: { $0 == " " || $0 == "\t" })
            if rest.count == 2, rest[1] == "kB", let v = Int(rest[0]) { out[String(line[..<colon])] = v }
        }
        return out
    }
    static func rssKB(_ pid: Int32) -> Int? { status(pid)?["VmRSS"] }

    /// Resident kB per mapping (file path, or [heap]/[anon]/…), largest first, from /proc/PID/smaps.
    static func rssByMapping(_ pid: Int32) -> [(String, Int)] {
        guard let text = readProcFile("/proc/\(pid)/smaps") else { return [] }
        var out: [String: Int] = [:]
        var current = "[anon]"
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: " ", omittingEmptySubsequences: true)
            guard let first = parts.first else { continue }
            if first.contains("-") && !first.hasSuffix(":") {
                current = parts.count >= 6 ? parts[5...].joined(separator: " ") : "[anon]"
            } else if first == "Rss:", parts.count >= 2, let v = Int(parts[1]) {
                out[current, default: 0] += v
            }
        }
        return out.sorted { $0.value > $1.value }
    }
    static func hwmKB(_ pid: Int32) -> Int? { status(pid)?["VmHWM"] }

    static let ticksPerSecond = Double(sysconf(Int32(_SC_CLK_TCK)))

    /// utime + stime in clock ticks (fields 14 and 15 of /proc/PID/stat).
    static func cpuTicks(_ pid: Int32) -> Int? {
        guard let text = readProcFile("/proc/\(pid)/stat"),
            let close = text.lastIndex(of: ")")
        else { return nil }
        // After "pid (comm) ": field 3 is the state; utime is field 14, stime field 15.
        let fields = text[text.index(after: close)...].split(separator: " ")
        guard fields.count > 13, let u = Int(fields[11]), let s = Int(fields[12]) else { return nil }
        return u + s
    }

    /// CPU use of `pid` between two readings, in % of one core.
    struct CPUMeter {
        let pid: Int32
        let ticks0: Int
        let t0: UInt64
        init?(_ pid: Int32?) {
            guard let pid, let t = Proc.cpuTicks(pid) else { return nil }
            self.pid = pid; ticks0 = t; t0 = benchNowNs()
        }
        func percent() -> Double {
            guard let t = Proc.cpuTicks(pid) else { return .nan }
            let secs = Double(benchNowNs() - t0) / 1e9
            return Double(t - ticks0) / Proc.ticksPerSecond / secs * 100
        }
    }

    static var selfPid: Int32 { getpid() }

    static func loadAverage() -> String {
        ((try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8)) ?? "?").split(separator: " ").prefix(3).joined(separator: " ")
    }
    static func memTotal() -> String {
        guard let text = try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8) else { return "?" }
        for line in text.split(separator: "\n") where line.hasPrefix("MemTotal:") {
            let kb = Int(line.split(separator: " ")[1]) ?? 0
            return String(format: "%.1f GiB", Double(kb) / 1_048_576)
        }
        return "?"
    }
}

// MARK: - process and directory clean-up

/// Every child process and temporary directory a bench made, removed at the end and on
/// SIGINT/SIGTERM (the children get SIGKILL: nothing of theirs is worth keeping).
final class BenchCleanup: Sendable {
    static let shared = BenchCleanup()
    private let pids = Mutex<Set<Int32>>([])
    private let dirs = Mutex<[String]>([])

    func track(pid: Int32?) { if let pid { _ = pids.withLock { $0.insert(pid) } } }
    func untrack(pid: Int32?) { if let pid { _ = pids.withLock { $0.remove(pid) } } }
    func track(dir: String) { dirs.withLock { $0.append(dir) } }

    func removeDirs() {
        let all = dirs.withLock { d -> [String] in
            defer { d = [] }; return d
        }
        for d in all { try? FileManager.default.removeItem(atPath: d) }
    }

    func installSignalHandlers() {
        benchInterrupt = InterruptHandler(onSignal: { [self] _ in
            for p in pids.withLock({ $0 }) { kill(p, SIGKILL) }
            removeDirs()
            FileHandle.standardError.write(Data("\nbench: interrupted; child processes killed, temporary directories removed\n".utf8))
            exit(130)
        })
    }
}

/// Kept alive for the process's life; written once, from the bench's start-up only.
nonisolated(unsafe) private var benchInterrupt: InterruptHandler?

/// What every bench prints first, and the shared set-up.
enum BenchEnv {
    static let site = "test-site"

    /// A clinic day of `patients` bench patients, each booked within the next 30–90 minutes.
    static func clinicDay(patients: Int) -> ClinicDay {
        var day = ClinicDay()
        for i in 0..<patients {
            let p = ClinicDay.Patient(
                id: String(format: "9a000000-0000-4000-8000-%012d", 1000 + i), name: "Paciente \(i) Bench",
                phone: "+55119\(String(format: "%08d", i))", qr: "medic-qr:v1:bench\(i):\(UUID().uuidString.prefix(10))")
            day.patients.append(p)
            day.book(p, startMinutes: 30 + Double(i % 60))
        }
        return day
    }

    static func start(_ title: String) {
        BenchCleanup.shared.installSignalHandlers()
        let bin = Harness.binaryPath()
        say("== medic-edge bench \(title)")
        say(
            "date: \(Time.rfc3339(Date()))  host: nproc=\(ProcessInfo.processInfo.activeProcessorCount) mem=\(Proc.memTotal()) "
                + "load(1/5/15 min)=\(Proc.loadAverage())"
        )
        say("daemon binary: \(bin)\(bin.contains("/debug/") ? "  (WARNING: a debug build; measure the release build)" : "")")
    }

    /// The last line of every bench: how busy the machine was.
    static func finish() {
        say("load at the end (1/5/15 min): \(Proc.loadAverage())")
    }

    static func broker() async throws -> Broker {
        let b = try Broker()
        BenchCleanup.shared.track(dir: b.dir)
        try await b.start()
        BenchCleanup.shared.track(pid: b.pid)
        return b
    }

    static func stop(_ b: Broker) async {
        let pid = b.pid
        await b.stop()
        BenchCleanup.shared.untrack(pid: pid)
    }

    static func stub(_ seed: CloudStubSeed) async throws -> (CloudStub, Int) {
        var logger = Logger(label: "bench-stub")
        logger.logLevel = .error
        let s = CloudStub(seed: seed, logger: logger)
        return (s, try await s.start())
    }

    /// The daemon's config: the harness's, with production-like intervals.
    static func daemonConfig(
        mqttPort: Int, cloudPort: Int?, maxBatch: Int = 500, rosterSyncSeconds: Double = 60,
        extra: String = ""
    ) -> String {
        DaemonProcess.standardConfig(
            mqttPort: mqttPort, cloudPort: cloudPort, rosterSyncSeconds: rosterSyncSeconds,
            connectTimeout: 2, requestTimeout: 15, cloudExtra: ["max_batch: \(maxBatch)"], extra: extra)
    }

    static func daemon(
        mqttPort: Int, cloudPort: Int?, maxBatch: Int = 500, rosterSyncSeconds: Double = 60,
        extra: String = ""
    ) throws -> DaemonProcess {
        let d = try DaemonProcess(
            configYAML: daemonConfig(
                mqttPort: mqttPort, cloudPort: cloudPort, maxBatch: maxBatch,
                rosterSyncSeconds: rosterSyncSeconds, extra: extra))
        BenchCleanup.shared.track(dir: d.dir)
        return d
    }

    /// Spawns the daemon and returns spawn → first `/healthz` 200, in seconds (polled every 2 ms).
    static func startTimed(_ d: DaemonProcess, timeout: Double = 60) async throws -> Double {
        let t0 = benchNowNs()
        try await d.start(waitReady: false)
        BenchCleanup.shared.track(pid: d.pid)
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if let p = d.process, !p.isRunning {
                throw BenchError("daemon exited during start: \(d.log().suffix(1500))")
            }
            if let r = try? await d.get("/healthz"), r.status == 200 { return Double(benchNowNs() - t0) / 1e9 }
            try await Task.sleep(for: .milliseconds(2))
        }
        throw BenchError("daemon /healthz not 200 within \(timeout) s")
    }

    static func start(_ d: DaemonProcess) async throws {
        _ = try await startTimed(d)
    }

    static func stop(_ d: DaemonProcess) async {
        let pid = d.pid
        _ = await d.terminate(timeout: 12)
        BenchCleanup.shared.untrack(pid: pid)
    }

    static func waitRoster(_ d: DaemonProcess, patients: Int, appointments: Int, timeout: Double = 60) async throws {
        try await Harness.waitUntil("roster synced (\(patients) patients, \(appointments) appointments)", timeout: timeout, poll: 0.1) {
            let s = try await d.status()
            return (s["roster"]?["patients"]?.doubleValue ?? 0) >= Double(patients)
                && (s["roster"]?["appointments"]?.doubleValue ?? 0) >= Double(appointments)
        }
    }

    static func pending(_ d: DaemonProcess) async -> Int? {
        guard let s = try? await d.status(), let n = s["outbox"]?["pending"]?.doubleValue else { return nil }
        return Int(n)
    }
}

/// Runs blocking work on its own thread (never on the two-thread cooperative pool).
func onThread<T: Sendable>(_ name: String, _ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { (cont: CheckedContinuation<T, Error>) in
        let t = Thread { cont.resume(with: Result { try body() }) }
        t.name = name
        t.start()
    }
}

// MARK: - MQTT

/// An `EdgeMQTT.MQTTClient` with a pump task that hands each batch of messages to `handler`
/// (in the pump task, right after libmosquitto's thread queued them). Arrival times are the
/// messages' `receivedAtNs`, stamped inside libmosquitto's callback.
final class BenchMQTT: Sendable {
    let client: MQTTClient
    private let connected = Atomic<Bool>(false)
    private let pump = Mutex<Task<Void, Never>?>(nil)
    private let handler: @Sendable (BenchMQTT, [MQTTMessage]) -> Void

    init(port: Int, clientId: String, handler: @escaping @Sendable (BenchMQTT, [MQTTMessage]) -> Void = { _, _ in }) async throws {
        var logger = Logger(label: "bench-mqtt")
        logger.logLevel = .error
        client = try MQTTClient(clientId: clientId + "-" + String(UUID().uuidString.prefix(6)), cleanSession: true, logger: logger)
        self.handler = handler
        try client.connect(host: "127.0.0.1", port: port)
        let task = Task { [self] in
            while !Task.isCancelled {
                let events = await client.nextBatch(max: 8192)
                if events.isEmpty { return }
                var msgs: [MQTTMessage] = []
                msgs.reserveCapacity(events.count)
                for e in events {
                    switch e {
                    case .connected(let code): if code == 0 { connected.store(true, ordering: .releasing) }
                    case .disconnected: connected.store(false, ordering: .releasing)
                    case .message(let m): msgs.append(m)
                    }
                }
                if !msgs.isEmpty { handler(self, msgs) }
            }
        }
        pump.withLock { $0 = task }
        try await Harness.waitUntil("bench MQTT client connected", timeout: 10, poll: 0.005) { self.connected.load(ordering: .acquiring) }
    }

    /// Subscribes (QoS 1) and leaves the broker time to register it.
    func subscribe(_ topics: [String]) async throws {
        try client.subscribe(topics, qos: 1)
        try await Task.sleep(for: .milliseconds(300))
    }

    func publish(_ topic: String, _ text: String) {
        do { try client.publish(topic: topic, text: text, qos: 1) } catch {
            FileHandle.standardError.write(Data("bench: publish failed: \(error)\n".utf8))
        }
    }

    func close() {
        pump.withLock {
            $0?.cancel(); $0 = nil
        }
        client.disconnect()
    }
}

/// Arrivals keyed by an id (scan_id, msg_id, ping number): the waiting thread blocks on a
/// semaphore, the pump puts.
final class Arrivals: Sendable {
    struct Arrival: Sendable { var atNs: UInt64; var note: String }
    private let state = Mutex<[String: Arrival]>([:])
    private let sem = DispatchSemaphore(value: 0)

    func put(_ key: String, atNs: UInt64, note: String = "") {
        state.withLock { $0[key] = Arrival(atNs: atNs, note: note) }
        sem.signal()
    }
    /// Blocking: only on a dedicated thread.
    func wait(_ key: String, timeout: Double) -> Arrival? {
        let deadline = DispatchTime.now() + timeout
        while true {
            if let a = state.withLock({ $0.removeValue(forKey: key) }) { return a }
            if sem.wait(timeout: deadline) == .timedOut { return state.withLock { $0.removeValue(forKey: key) } }
        }
    }
    func reset() { state.withLock { $0 = [:] } }
}

/// A counter a pump increments and a blocking loop waits on.
final class BenchCounter: Sendable {
    private let value = Atomic<Int>(0)
    let sem = DispatchSemaphore(value: 0)
    func add(_ n: Int) { value.add(n, ordering: .relaxed); sem.signal() }
    var count: Int { value.load(ordering: .relaxed) }
}

/// Environment readings as a sensor sends them (CONTRACT §1.4), with a msg_id.
enum SensorPayload {
    static func environment(msgId: String, n: Int, ts: String) -> String {
        let t = 21.0 + Double(n % 40) / 10
        let h = 45.0 + Double(n % 100) / 10
        return
            "{\"ts\":\"\(ts)\",\"temperature_c\":\(JSONText.number(t)),\"humidity_pct\":\(JSONText.number(h)),\"co2_ppm\":\(500 + n % 400),"
            + "\"msg_id\":\"\(msgId)\"}"
    }
    /// `clinic/{site}/room/{room}/environment/{device}` for `devices` sensors spread over ten rooms.
    static func topics(site: String, devices: Int, prefix: String = "env") -> [(topic: String, device: String)] {
        (0..<max(1, devices)).map { i in
            let dev = "\(prefix)-\(String(format: "%02d", i))"
            return ("clinic/\(site)/room/sala-\(i % 10 + 1)/environment/\(dev)", dev)
        }
    }
}

/// A clock string refreshed every 100 ms (formatting a date per message would cost more
/// than the rest of building it).
final class TimestampCache: @unchecked Sendable {
    private var last: UInt64 = 0
    private var text = ""
    func now() -> String {
        let t = benchNowNs()
        if t - last > 100_000_000 || text.isEmpty { text = Time.rfc3339(Date()); last = t }
        return text
    }
}

/// Publishes environment readings with msg_ids at a fixed rate on its own thread (the
/// check-in bench's background load), and counts the acks.
final class RatePublisher: Sendable {
    let mqtt: BenchMQTT
    let acks = BenchCounter()
    let errors = BenchCounter()
    let sent = Atomic<Int>(0)
    private let stopFlag = Atomic<Bool>(false)
    private let done = DispatchSemaphore(value: 0)
    private let running = Atomic<Bool>(false)
    let rate: Double
    let topics: [(topic: String, device: String)]
    let tag = String(UUID().uuidString.prefix(6)).lowercased()

    init(port: Int, site: String, rate: Double, devices: Int = 20) async throws {
        self.rate = rate
        topics = SensorPayload.topics(site: site, devices: devices, prefix: "bg")
        let acks = self.acks, errors = self.errors
        mqtt = try await BenchMQTT(port: port, clientId: "bench-bg") { _, msgs in
            var e = 0
            for m in msgs where m.payload.count > 20 && String(decoding: m.payload, as: UTF8.self).contains("\"error\"") { e += 1 }
            if e > 0 { errors.add(e) }
            acks.add(msgs.count)
        }
        try await mqtt.subscribe(["clinic/\(site)/device/+/ack"])
    }

    /// Starts publishing (ticks of 2 ms, catching up to rate × elapsed).
    func start() {
        stopFlag.store(false, ordering: .relaxed)
        running.store(true, ordering: .relaxed)
        let t = Thread { [self] in
            let clock = TimestampCache()
            let t0 = benchNowNs()
            var n = 0
            let base = sent.load(ordering: .relaxed)
            while !stopFlag.load(ordering: .relaxed) {
                let elapsed = Double(benchNowNs() - t0) / 1e9
                let target = Int(elapsed * rate)
                while n < target {
                    let k = base + n
                    let (topic, _) = topics[k % topics.count]
                    mqtt.publish(topic, SensorPayload.environment(msgId: "\(tag)-\(k)", n: k, ts: clock.now()))
                    n += 1
                }
                sent.store(base + n, ordering: .relaxed)
                usleep(2000)
            }
            done.signal()
        }
        t.name = "bench-background"
        t.start()
    }

    func stop() {
        guard running.exchange(false, ordering: .relaxed) else { return }
        stopFlag.store(true, ordering: .relaxed)
        done.wait()
    }

    /// Waits (bounded) until every message sent has been acked.
    func settle(timeout: Double) async -> Bool {
        (try? await Harness.waitUntil("background acks", timeout: timeout, poll: 0.02) {
            self.acks.count >= self.sent.load(ordering: .relaxed)
        }) != nil
    }

    func close() { stop(); mqtt.close() }
}
