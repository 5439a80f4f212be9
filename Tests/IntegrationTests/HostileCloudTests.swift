import CloudStub
import EdgeCore
import EdgeHTTPClient
import EdgeSimulators
@testable import EdgeStore
import EdgeTestSupport
import Foundation
import GRDB
import Logging
@testable import MedicEdge
import Synchronization
import Testing

/// The uplink against a hostile cloud (CONTRACT §2): bad Retry-After values, answers that
/// are not Inngest's, redirects, bodies cut short, resets, a 400 storm and seeded random
/// answers. The real daemon, a real mosquitto, the cloud stub or a raw TCP server in the test.
@Suite("The uplink against a hostile cloud", .serialized)
struct HostileCloudTests {
    /// The ids of the events waiting in the daemon's outbox (read from its SQLite file).
    static func outboxIds(_ daemon: DaemonProcess) throws -> [String] {
        var c = Configuration()
        c.readonly = true
        let q = try DatabaseQueue(path: daemon.dataDir + "/medic-edge.sqlite", configuration: c)
        return try q.read { try String.fetchAll($0, sql: "SELECT id FROM outbox ORDER BY seq") }
    }

    static func healthz(_ daemon: DaemonProcess) async throws -> Int {
        try await daemon.get("/healthz").status
    }

    @Test(
        "Hostile answers while devices publish and a kiosk scans: the daemon never dies, tries ≤ 30 s apart; once healthy, each event arrives once"
    )
    func hostileModeAgainstTheDaemon() async throws {
        var day = ClinicDay()
        day.book(day.maria, startMinutes: 30)
        let env = try await Env.start(day: day, cloudConfig: ["max_batch: 25"])
        defer { Task { await env.stop() } }
        let stub = try #require(env.stub)
        let pid = try #require(env.daemon.pid)
        stub.setFaults(.init(mode: .hostileEvents))
        let hostileFrom = DispatchTime.now().uptimeNanoseconds
        // A clinic morning: readings in small bursts, a check-in at the kiosk.
        let scan = try await env.scan(day.maria.qr, scanId: "hostile-1")
        #expect(scan["outcome"]?.stringValue == "checked_in")
        for round in 0..<11 {
            try await UplinkTests.burst(env, prefix: "h\(round)", n: 5)
            #expect(env.daemon.process?.isRunning == true, "the daemon died in round \(round): \(env.daemon.log().suffix(600))")
            #expect(try await Self.healthz(env.daemon) == 200)
            try await Task.sleep(for: .seconds(5))
        }
        #expect(env.daemon.process?.isRunning == true && env.daemon.pid == pid)
        let hostile = stub.eventRequests().filter { $0.atNs >= hostileFrom }
        #expect(hostile.count >= 6, "the uplink kept trying: \(hostile.map(\.answer))")
        #expect(hostile.allSatisfy { HostileEventAnswer(rawValue: $0.answer) != nil })
        #expect(try await env.metric(#"medic_edge_uplink_requests_total{status="429"}"#) ?? 0 >= 1)
        #expect(try await env.metric(#"medic_edge_uplink_requests_total{status="200_bad_body"}"#) ?? 0 >= 1)
        // Nothing was taken as delivered: every fact is still in the outbox.
        let waiting = try Self.outboxIds(env.daemon)
        #expect(waiting.count >= 11 * 5 + 2, "55 readings, the check-in and its qr_scan")
        let receivedBefore = Set(stub.receivedEvents().compactMap { $0["id"]?.stringValue })
        #expect(receivedBefore.isDisjoint(with: waiting))
        // The cloud heals: everything arrives, once per id, without a restart.
        stub.setFaults(.init())
        let healedAt = DispatchTime.now().uptimeNanoseconds
        try await Harness.waitUntil("backlog drained", timeout: 45, poll: 0.2) {
            (try await env.daemon.status())["outbox"]?["pending"]?.doubleValue == 0
        }
        var times: [String: Int] = [:]
        for e in stub.receivedEvents() { if let id = e["id"]?.stringValue { times[id, default: 0] += 1 } }
        let missing = waiting.filter { times[$0] == nil }
        #expect(missing.isEmpty, "never arrived: \(missing.prefix(5))")
        #expect(waiting.allSatisfy { (times[$0] ?? 0) <= 1 }, "an id arrived twice")
        #expect(try await env.daemon.status()["outbox"]?["dead_letters"]?.doubleValue == 0)
        // At most 30 s between tries while failing (plus the 2 s request time-out of the test
        // config and a little scheduling slack), up to the first try after healing.
        let all = stub.eventRequests().filter { $0.atNs >= hostileFrom }
        let upToHealed = all.prefix { $0.atNs < healedAt } + all.drop { $0.atNs < healedAt }.prefix(1)
        let gaps = zip(upToHealed.dropFirst(), upToHealed).map { Double($0.atNs - $1.atNs) / 1e9 }
        #expect(gaps.allSatisfy { $0 <= 32.5 }, "gaps between tries (s): \(gaps.map { ($0 * 10).rounded() / 10 })")
        print(
            "hostile mode: \(hostile.count) hostile answers in \(Double((hostile.last?.atNs ?? hostileFrom) - hostileFrom) / 1e9) s; gaps (s): "
                + "\(gaps.map { ($0 * 10).rounded() / 10 })"
        )
        #expect(env.daemon.process?.isRunning == true && env.daemon.pid == pid)
        #expect(!env.daemon.log().contains("Fatal error"))
        await env.stop()
    }

    @Test(
        "Every hostile answer of the stub, one by one through the real uplink code and libcurl: a retry, nothing deleted, no bad Retry-After honoured"
    )
    func everyHostileAnswerInProcess() async throws {
        let stub = CloudStub()
        let port = try await stub.start()
        defer { Task { try? await stub.stop() } }
        let yaml = DaemonProcess.standardConfig(mqttPort: 1, cloudPort: port)
            .replacingOccurrences(of: "{HTTP_PORT}", with: "1").replacingOccurrences(of: "{DATA_DIR}", with: Harness.tempDir("uplink-units"))
        let config = try EdgeConfig.parse(yaml: yaml)
        let db = try AppDatabase.inMemory()
        try await db.writer.write { db in
            for i in 0..<3 {
                let data = #"{"site_id":"test-site","n":\#(i)}"#
                try db.execute(
                    sql: "INSERT INTO outbox (id, name, class, source, data, created_ms, bytes) VALUES (?,?,?,?,?,?,?)",
                    arguments: [
                        "0193e000-0000-7000-8000-00000000000\(i)", "integration/iot.event", 1, "dev-\(i)", data, 1_796_644_800_000,
                        data.utf8.count + 80,
                    ])
            }
        }
        let state = EdgeState(cloudConfigured: true)
        var logger = Logger(label: "uplink-test")
        logger.logLevel = .critical
        stub.setFaults(.init(mode: .hostileEvents))
        for answer in HostileEventAnswer.allCases {
            // A new client each time: libcurl resends once by itself on a reused connection
            // that turns out dead, which would take two answers of the list.
            let uplink = Uplink(
                config: config, db: db, http: CurlHTTPClient(label: "uplink-test"), metrics: EdgeMetrics(bootstrap: false),
                state: state, logger: logger)
            let batch = try uplink.nextBatch()
            #expect(batch.count == 3)
            let outcome = await uplink.deliver(batch)
            let expected: Uplink.Outcome = .retry(
                after: answer == .unavailableRetryAfterPastDate || answer == .tooManyRequestsRetryAfterPastDate ? 0 : nil)
            #expect(outcome == expected, "\(answer.rawValue)")
            #expect(try await db.writer.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM outbox") } == 3, "\(answer.rawValue) deleted events")
            #expect(try await db.writer.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM outbox_dead") } == 0)
        }
        #expect(stub.eventRequests().map(\.answer) == HostileEventAnswer.allCases.map(\.rawValue))
        #expect(state.cloudState(nowMs: Time.nowMs()) == .offline)
        stub.setFaults(.init())
        let uplink = Uplink(
            config: config, db: db, http: CurlHTTPClient(label: "uplink-test"), metrics: EdgeMetrics(bootstrap: false),
            state: state, logger: logger)
        #expect(await uplink.deliver(try uplink.nextBatch()) == .done)
        #expect(try await db.writer.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM outbox") } == 0)
        #expect(stub.receivedEvents().count == 3)
        #expect(state.cloudState(nowMs: Time.nowMs()) == .online)
    }

    @Test(
        "A 400 storm: the 5th lone refusal is a cloud fault: no more dead letters, cloud degraded, an error logged; after a success they resume"
    )
    func fourHundredStorm() async throws {
        let env = try await Env.start(cloudConfig: ["max_batch: 50"])
        defer { Task { await env.stop() } }
        let stub = try #require(env.stub)
        // The cloud refuses every telemetry event with 400 (a broken schema check, say).
        stub.setFaults(.init(rejectEventNames: ["integration/iot.event"]))
        try await UplinkTests.burst(env, prefix: "st", n: 8)
        try await Harness.waitUntil("the storm is seen", timeout: 20, poll: 0.1) {
            env.daemon.log().contains("refused one by one with HTTP 400")
        }
        try await Task.sleep(for: .seconds(3))
        let st = try await env.daemon.status()
        #expect(st["outbox"]?["dead_letters"]?.doubleValue == 4, "4 dead-lettered, then the 5th refusal is a cloud fault")
        #expect(st["outbox"]?["pending"]?.doubleValue == 4)
        #expect(st["cloud"]?["state"]?.stringValue == "degraded")
        #expect(try await Self.healthz(env.daemon) == 200)
        // The cloud mends: the held events arrive, nothing more was dead-lettered.
        stub.setFaults(.init())
        try await Harness.waitUntil("backlog drained", timeout: 40, poll: 0.2) {
            (try await env.daemon.status())["outbox"]?["pending"]?.doubleValue == 0
        }
        #expect(try await env.daemon.status()["outbox"]?["dead_letters"]?.doubleValue == 4)
        #expect(Set(UplinkTests.readingMsgIds(env.cloudEvents(named: "integration/iot.event"))) == Set((4..<8).map { "st-\($0)" }))
        #expect(env.daemon.log().contains("the 400 storm is over"))
        #expect(try await env.daemon.status()["cloud"]?["state"]?.stringValue == "online")
        // Dead-lettering resumed: a lone poison event is dead-lettered again, the rest flows.
        stub.setFaults(.init(rejectEventNames: ["clinic/room.occupancy_changed"]))
        try env.device.publish(env.topic("room/sala-2/presence/p1"), #"{"occupied": true, "msg_id": "after-storm"}"#)
        try await Harness.waitUntil("the poison event dead-lettered", timeout: 20, poll: 0.1) {
            (try await env.daemon.status())["outbox"]?["dead_letters"]?.doubleValue == 5
        }
        _ = try await env.waitForCloudEvents("integration/iot.event", count: 1) { $0["data"]?["event_type"]?.stringValue == "presence" }
        await env.stop()
    }

    @Test(
        "Seeded fuzz of Event API answers (status, Retry-After, bodies, broken framing) over raw TCP: no crash, no loss, nothing wrongly delivered"
    )
    func fuzzedAnswers() async throws {
        let fuzz = FuzzCloud(seed: 0x2026_1207, hostileTarget: 70, goodShare: 0.55)
        let cloud = try RawHTTPServer { fuzz.answer($0) }
        defer { cloud.stop() }
        let broker = try Broker()
        try await broker.start()
        let daemon = try DaemonProcess(
            configYAML: DaemonProcess.standardConfig(
                mqttPort: broker.port, cloudPort: cloud.port, rosterSyncSeconds: 3600, cloudExtra: ["max_batch: 10"]))
        let device = try await TestMQTT(port: broker.port)
        try await device.subscribe("clinic/test-site/#")
        try await daemon.start()
        defer {
            Task {
                _ = await daemon.terminate(); device.close(); await broker.stop()
            }
        }
        let pid = try #require(daemon.pid)
        var published: [String] = []
        let deadline = Date().addingTimeInterval(120)
        var round = 0
        while fuzz.hostileServed < 70 && Date() < deadline {
            for i in 0..<6 {
                let m = "fz\(round)-\(i)"
                try device.publish("clinic/test-site/room/sala-2/environment/env-fz", #"{"msg_id": "\#(m)", "co2_ppm": \#(400 + i)}"#)
                published.append(m)
            }
            round += 1
            #expect(daemon.process?.isRunning == true, "the daemon died: \(daemon.log().suffix(600))")
            try await Task.sleep(for: .milliseconds(700))
        }
        #expect(fuzz.hostileServed >= 70, "the fuzz served \(fuzz.hostileServed) hostile answers in 120 s")
        try await device.waitFor("clinic/test-site/device/env-fz/ack", count: published.count, timeout: 20)
        fuzz.heal()
        try await Harness.waitUntil("backlog drained", timeout: 45, poll: 0.2) {
            (try JSON.parse(try await daemon.get("/api/v1/status").body))["outbox"]?["pending"]?.doubleValue == 0
        }
        #expect(daemon.process?.isRunning == true && daemon.pid == pid)
        let delivered = fuzz.deliveredEvents()
        var idsByMsg: [String: Set<String>] = [:]
        for e in delivered where e["name"]?.stringValue == "integration/iot.event" {
            if let m = e["data"]?["payload"]?["msg_id"]?.stringValue { idsByMsg[m, default: []].insert(e["id"]?.stringValue ?? "") }
        }
        let lost = published.filter { idsByMsg[$0] == nil }
        #expect(lost.isEmpty, "lost: \(lost.prefix(10)) of \(published.count)")
        #expect(idsByMsg.values.allSatisfy { $0.count == 1 }, "one fact, one id")
        let st = try JSON.parse(try await daemon.get("/api/v1/status").body)
        #expect(st["outbox"]?["dead_letters"]?.doubleValue == 0)
        print("fuzz: \(fuzz.hostileServed) hostile and \(fuzz.goodServed) good answers; kinds: \(fuzz.kindsServed().sorted { $0.key < $1.key })")
        #expect(!daemon.log().contains("Fatal error"))
    }
}

@Suite("libcurl client: checked options, capped answers")
struct CurlLimitsTests {
    @Test("A libcurl option that cannot be set fails the request with an error naming the option (nothing sent)")
    func setoptFailureNamesTheOption() async throws {
        let http = CurlHTTPClient(label: "setopt-test")
        // libcurl refuses strings over 8,000,000 bytes (CURL_MAX_INPUT_LENGTH) at setopt time.
        let url = "http://127.0.0.1:9/" + String(repeating: "a", count: 8_000_001)
        let error = await #expect(throws: HTTPTransportError.self) { _ = try await http.send(HTTPRequest(url: url, connectTimeout: 1, timeout: 1)) }
        #expect(error?.message.contains("CURLOPT_URL") == true, "\(String(describing: error))")
        #expect(error?.isSetoptFailure == true)
        // The same handle still works afterwards.
        let stub = CloudStub()
        let port = try await stub.start()
        defer { Task { try? await stub.stop() } }
        #expect(try await http.send(HTTPRequest(url: "http://127.0.0.1:\(port)/_stub/stats")).status == 200)
    }

    @Test(
        "A response body over maxBodyBytes aborts the transfer with an error saying so (announced length, chunked, or a lie)",
        arguments: ["length", "chunked", "close"])
    func bodyCap(_ framing: String) async throws {
        let big = [UInt8](repeating: UInt8(ascii: "x"), count: 2 * 1024 * 1024)
        let server = try RawHTTPServer { _ in
            switch framing {
            case "length": return RawAnswer(bytes: Array("HTTP/1.1 200 OK\r\nContent-Length: \(big.count)\r\nConnection: close\r\n\r\n".utf8) + big)
            case "chunked":
                var b = Array("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n".utf8)
                for _ in 0..<32 { b += Array("10000\r\n".utf8) + big.prefix(0x10000) + Array("\r\n".utf8) }
                return RawAnswer(bytes: b + Array("0\r\n\r\n".utf8))
            default: return RawAnswer(bytes: Array("HTTP/1.0 200 OK\r\n\r\n".utf8) + big)
            }
        }
        defer { server.stop() }
        let http = CurlHTTPClient(label: "cap-test")
        let url = "http://127.0.0.1:\(server.port)/e/k"
        let error = await #expect(throws: HTTPTransportError.self) {
            _ = try await http.send(HTTPRequest(url: url, connectTimeout: 1, timeout: 10, maxBodyBytes: 1 << 20))
        }
        #expect(error?.isBodyTooLarge == true)
        #expect(error?.message.contains("over 1048576 bytes") == true, "\(String(describing: error))")
        // Without a cap (or a larger one) the same answer is read whole.
        let whole = try await http.send(HTTPRequest(url: url, connectTimeout: 1, timeout: 10, maxBodyBytes: 4 << 20))
        #expect(whole.body.count == big.count)
    }
}

@Suite("Uplink rules: what is a delivery, how long to wait, how to count")
struct UplinkRulesTests {
    @Test("Only a JSON object whose ids array has one entry per event sent is a delivery")
    func delivery() {
        func ok(_ s: String, _ n: Int) -> Bool { Uplink.isDelivery(body: Array(s.utf8), eventCount: n) }
        #expect(ok(#"{"ids":["a","b"],"status":200}"#, 2))
        #expect(ok(#"{"ids":["a"]}"#, 1))
        #expect(!ok(#"{"ids":[]}"#, 1))
        #expect(!ok(#"{"ids":["a"]}"#, 2))
        #expect(!ok(#"{"ids":["a","b","c"]}"#, 2))
        #expect(!ok(#"{"ok":true}"#, 1))
        #expect(!ok(#"{"ids":"a"}"#, 1))
        #expect(!ok(#"[{"ids":["a"]}]"#, 1))
        #expect(!ok("<html><body>Portal</body></html>", 1))
        #expect(!ok("", 1))
        #expect(!ok(#"{"ids":["a"]"#, 1), "cut short")
        #expect(!ok(String(repeating: "[", count: 100_000), 1), "deep nesting is refused, not a stack overflow")
    }

    @Test("Backoff: exponential with jitter, never over 30 s without a valid Retry-After, never over 60 s with one")
    func backoff() {
        for failures in [-5, 0, 1, 2, 3, 7, 8, 10, 11, 64, 1_000, Int.max] {
            for jitter in [0.0, 0.5, 1.0, -1, 2, .nan, .infinity] {
                let d = Uplink.retryDelay(failures: failures, retryAfter: nil, jitter: jitter)
                #expect(d > 0 && d <= 30, "failures \(failures), jitter \(jitter): \(d)")
                for ra in [0.0, 5, 45, 60, 1e308, .infinity, -.infinity, .nan, -1] {
                    let r = Uplink.retryDelay(failures: failures, retryAfter: ra, jitter: jitter)
                    #expect(r >= d && r <= 60, "Retry-After \(ra) stretches, never shortens, at most 60 s: \(r)")
                }
            }
        }
        #expect(Uplink.retryDelay(failures: 1, retryAfter: nil, jitter: 0) == 0.25)
        #expect(Uplink.retryDelay(failures: 3, retryAfter: nil, jitter: 1) == 2)
        #expect(Uplink.retryDelay(failures: 20, retryAfter: nil, jitter: 0) == 15)
        #expect(Uplink.retryDelay(failures: 1, retryAfter: 45, jitter: 0) == 45)
        #expect(Uplink.retryDelay(failures: 1, retryAfter: .infinity, jitter: 0) == 0.25, "a non-finite value is no Retry-After")
    }

    @Test("Transport failures get a status label from a short list")
    func labels() {
        func l(_ code: Int, _ m: String = "x") -> String { Uplink.label(for: HTTPTransportError(code: code, message: m)) }
        #expect(l(28) == "timeout")
        #expect(l(63) == "body_too_large")
        #expect(l(18) == "partial_body")
        #expect(Uplink.label(for: HTTPTransportError(code: 43, message: "x", option: "CURLOPT_URL")) == "client_error")
        #expect(l(43, "curl_easy_setopt(CURLOPT_URL) failed: x") == "error", "the option, not the words, says a setopt failed")
        #expect(l(7) == "connect_failed")
        #expect(l(56) == "connection_error")
        #expect(l(52) == "empty_reply")
        #expect(l(60) == "tls_error")
        #expect(l(8) == "bad_answer")
        #expect(l(999) == "error")
    }
}

// MARK: - A raw HTTP/1.1 server for answers no well-behaved server library would send

struct RawRequest: Sendable {
    var head: String
    var path: String
    var body: [UInt8]
}

struct RawAnswer: Sendable {
    enum End: Sendable { case close, reset, hang(seconds: Double) }
    var bytes: [UInt8]
    var end: End = .close
}

/// Listens on a free loopback port; each connection carries one request, answered with the
/// handler's bytes exactly as given, then ended as told (close, an RST, or a hang).
final class RawHTTPServer: Sendable {
    let fd: Int32
    let port: Int
    let handler: @Sendable (RawRequest) -> RawAnswer
    private let stopped = Mutex(false)

    init(handler: @escaping @Sendable (RawRequest) -> RawAnswer) throws {
        self.handler = handler
        let (fd, port) = Harness.holdPort()
        guard fd >= 0 else { throw POSIXError(.EMFILE) }
        _ = listen(fd, 64)
        self.fd = fd; self.port = port
        let t = Thread { [self] in acceptLoop() }
        t.start()
    }

    func stop() {
        stopped.withLock { $0 = true }
        shutdown(fd, Int32(SHUT_RDWR))
        close(fd)
    }

    private func acceptLoop() {
        while true {
            let c = accept(fd, nil, nil)
            if c < 0 {
                if stopped.withLock({ $0 }) { return }
                if errno == EINTR { continue }
                return
            }
            let t = Thread { [self] in serve(c) }
            t.start()
        }
    }

    private func serve(_ c: Int32) {
        var tv = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var buf: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        func fill() -> Bool {
            let n = chunk.withUnsafeMutableBytes { recv(c, $0.baseAddress, $0.count, 0) }
            if n <= 0 { return false }
            buf += chunk[0..<n]
            return true
        }
        let sep: [UInt8] = [13, 10, 13, 10]
        var headEnd: Int?
        while headEnd == nil {
            if buf.count >= 4 { headEnd = (0...(buf.count - 4)).first { Array(buf[$0..<$0 + 4]) == sep } }
            if headEnd == nil && !fill() { close(c); return }
        }
        let head = String(decoding: buf[0..<headEnd!], as: UTF8.self)
        var length = 0
        for line in head.components(separatedBy: "\r\n") where line.lowercased().hasPrefix("content-length:") {
            length = Int(line.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces)) ?? 0
        }
        while buf.count < headEnd! + 4 + length { if !fill() { close(c); return } }
        let body = Array(buf[(headEnd! + 4)..<(headEnd! + 4 + length)])
        let path = head.split(separator: " ").dropFirst().first.map(String.init) ?? "/"
        let answer = handler(RawRequest(head: head, path: path, body: body))
        var sent = 0
        while sent < answer.bytes.count {
            let n = answer.bytes[sent...].withUnsafeBytes { send(c, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { break }
            sent += n
        }
        switch answer.end {
        case .close:
            shutdown(c, Int32(SHUT_WR))
            // Drain briefly so the client reads everything before the socket goes.
            var tv2 = timeval(tv_sec: 1, tv_usec: 0)
            setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv2, socklen_t(MemoryLayout<timeval>.size))
            while fill() { if buf.count > 1 << 22 { buf = [] } }
        case .reset:
            var l = linger(l_onoff: 1, l_linger: 0)
            setsockopt(c, SOL_SOCKET, SO_LINGER, &l, socklen_t(MemoryLayout<linger>.size))
        case .hang(let s):
            Thread.sleep(forTimeInterval: s)
        }
        close(c)
    }
}

/// A seeded cloud that answers the Event API either as Inngest does (the events are then
/// recorded as delivered) or with one of many hostile answers (nothing recorded), until
/// `hostileTarget` hostile answers were served; then, once healed, always as Inngest.
final class FuzzCloud: Sendable {
    private struct State {
        var rng: SimRandom
        var healed = false
        var delivered: [JSON] = []
        var kinds: [String: Int] = [:]
        var hostileCount = 0
        var goodCount = 0
    }
    private let state: Mutex<State>
    private let hostileTarget: Int
    private let goodShare: Double

    init(seed: UInt64, hostileTarget: Int, goodShare: Double) {
        state = Mutex(State(rng: SimRandom(seed: seed)))
        self.hostileTarget = hostileTarget
        self.goodShare = goodShare
    }

    var hostileServed: Int { state.withLock { $0.hostileCount } }
    var goodServed: Int { state.withLock { $0.goodCount } }
    func heal() { state.withLock { $0.healed = true } }
    func deliveredEvents() -> [JSON] { state.withLock { $0.delivered } }
    func kindsServed() -> [String: Int] { state.withLock { $0.kinds } }

    static func response(_ status: String, headers: [String] = [], body: [UInt8], length: Int? = nil) -> [UInt8] {
        var h = "HTTP/1.1 \(status)\r\n"
        for line in headers { h += line + "\r\n" }
        h += "Content-Length: \(length ?? body.count)\r\nConnection: close\r\n\r\n"
        return Array(h.utf8) + body
    }

    static func idsBody(_ ids: [String]) -> [UInt8] {
        Array(("{\"ids\":[" + ids.map { "\"\($0)\"" }.joined(separator: ",") + "],\"status\":200}").utf8)
    }

    static let junkRetryAfter = [
        "nan", "inf", "-inf", "-1", "1e308", "abc", "", "0x10", "5.5.5", "Sun, 06 Nov 1994 08:49:37 GMT",
        "0", "1", "2", "+3", "1.5", " 2 ", "Sunday, 06-Nov-94 08:49:37 GMT", "\u{7f}", "99999999999999999999x",
    ]
    static let statuses = [
        "200 OK", "201 Created", "202 Accepted", "204 No Content", "206 Partial Content", "299 Whatever",
        "300 Multiple Choices", "301 Moved Permanently", "302 Found", "303 See Other", "304 Not Modified",
        "307 Temporary Redirect", "308 Permanent Redirect", "404 Not Found", "405 Method Not Allowed",
        "408 Request Timeout", "409 Conflict", "410 Gone", "418 I'm a teapot", "422 Unprocessable", "425 Too Early",
        "429 Too Many Requests", "431 Request Header Fields Too Large", "451 Unavailable", "499 Client Closed",
        "500 Internal Server Error", "501 Not Implemented", "502 Bad Gateway", "503 Service Unavailable",
        "504 Gateway Timeout", "507 Insufficient Storage", "520 Unknown", "599 Network Timeout", "999 Nonsense",
    ]

    func answer(_ req: RawRequest) -> RawAnswer {
        guard req.path.hasPrefix("/e/") else {
            return RawAnswer(bytes: Self.response("503 Service Unavailable", body: Array("{}".utf8)))
        }
        let events = (try? JSON.parse(req.body))?.arrayValue ?? []
        let ids = events.compactMap { $0["id"]?.stringValue }
        return state.withLock { s -> RawAnswer in
            let good = s.healed || s.hostileCount >= hostileTarget || Double(s.rng.next() % 1000) / 1000 < goodShare
            if good {
                s.goodCount += 1
                s.delivered += events
                // Inngest's answer, in a few framings that are all valid HTTP.
                switch s.rng.next() % 4 {
                case 0: return RawAnswer(bytes: Self.response("200 OK", headers: ["Content-Type: application/json"], body: Self.idsBody(ids)))
                case 1: return RawAnswer(bytes: Self.response("201 Created", body: Self.idsBody(ids)))
                case 2:
                    let b = Self.idsBody(ids)
                    let mid = b.count / 2
                    let crlf: [UInt8] = [13, 10]
                    var chunked = Array("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n".utf8)
                    chunked += Array(String(mid, radix: 16).utf8)
                    chunked += crlf
                    chunked += b[..<mid]
                    chunked += crlf
                    chunked += Array(String(b.count - mid, radix: 16).utf8)
                    chunked += crlf
                    chunked += b[mid...]
                    chunked += Array("\r\n0\r\n\r\n".utf8)
                    return RawAnswer(bytes: chunked)
                default: return RawAnswer(bytes: Array("HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n".utf8) + Self.idsBody(ids))
                }
            }
            s.hostileCount += 1
            let kind = Int(s.rng.next() % 12)
            func pick<T>(_ a: [T]) -> T { a[Int(s.rng.next() % UInt64(a.count))] }
            var headers: [String] = []
            if s.rng.next() % 2 == 0 { headers.append("Retry-After: " + pick(Self.junkRetryAfter)) }
            if s.rng.next() % 4 == 0 { headers.append("X-Junk-\(s.rng.next() % 100): " + String(repeating: "j", count: Int(s.rng.next() % 4000))) }
            let badBodies: [[UInt8]] = [
                [], Array("<html><body>Portal cativo</body></html>".utf8), Array(#"{"ok":true}"#.utf8), Array(#"{"ids":[]}"#.utf8),
                Self.idsBody(ids + ["extra"]), Array(#"{"ids":"all"}"#.utf8), Array("[]".utf8), Array("null".utf8),
                Array(String(repeating: "[", count: 5000).utf8), (0..<64).map { _ in UInt8(truncatingIfNeeded: s.rng.next()) },
                Array(Self.idsBody(ids).dropLast(3)), Array(#"{"ids":["#.utf8),
            ]
            let label: String
            let answer: RawAnswer
            switch kind {
            case 0...3:
                // Any status but 400/401/403/413 (they have tests of their own), with any body
                // (even Inngest's, which a non-2xx does not make a delivery).
                let status = pick(Self.statuses)
                var body = pick(badBodies)
                if !status.hasPrefix("2") && s.rng.next() % 3 == 0 { body = Self.idsBody(ids) }
                if status.hasPrefix("204") || status.hasPrefix("304") { body = [] }
                label = "status_" + String(status.prefix(3))
                answer = RawAnswer(bytes: Self.response(status, headers: headers, body: body))
            case 4:
                label = "cut_short"
                let b = Self.idsBody(ids)
                answer = RawAnswer(bytes: Self.response("200 OK", headers: headers, body: Array(b.prefix(b.count / 2)), length: b.count))
            case 5:
                label = "reset"
                answer = RawAnswer(bytes: [], end: .reset)
            case 6:
                label = "closed_silently"
                answer = RawAnswer(bytes: [])
            case 7:
                label = "garbage_status_line"
                answer = RawAnswer(
                    bytes: Array(
                        pick([
                            "HTTP/1.1 2OO OK\r\n\r\n", "FOO BAR\r\n\r\n", "HTTP/1.1 200\r\n", "\u{0}\u{1}\u{2}\r\n\r\n",
                            "HTTP/9.9 200 OK\r\nContent-Length: 2\r\n\r\n{}", "HTTP/1.1 -200 OK\r\n\r\n",
                        ]).utf8))
            case 8:
                label = "broken_chunked"
                answer = RawAnswer(
                    bytes: Array("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\nzz\r\n".utf8) + Self.idsBody(ids))
            case 9:
                label = "over_1_MiB"
                var b = Array(Self.idsBody(ids).dropLast())
                b += Array(#","pad":""#.utf8) + [UInt8](repeating: 0x61, count: (1 << 20) + 10) + Array(#""}"#.utf8)
                answer = RawAnswer(bytes: Self.response("200 OK", body: b))
            case 10:
                label = "bad_content_length"
                answer = RawAnswer(
                    bytes: Array(
                        ("HTTP/1.1 200 OK\r\nContent-Length: \(pick(["-1", "abc", "1e3", "99999999999999999999", "5, 7"]))\r\n"
                            + "Connection: close\r\n\r\n").utf8) + Self.idsBody(ids))
            default:
                if s.rng.next() % 3 == 0 {
                    label = "hang_past_timeout"
                    answer = RawAnswer(bytes: Array("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{\"ids\":".utf8), end: .hang(seconds: 2.5))
                } else {
                    label = "continue_then_503"
                    answer = RawAnswer(
                        bytes: Array("HTTP/1.1 100 Continue\r\n\r\n".utf8) + Self.response("503 Service Unavailable", headers: headers, body: []))
                }
            }
            s.kinds[label, default: 0] += 1
            return answer
        }
    }
}
