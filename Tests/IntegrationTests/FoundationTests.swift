import EdgeCore
import EdgeTestSupport
import Foundation
import Testing

/// The appliance runs (issue "The appliance runs"): real mosquitto, real SQLite file, the
/// daemon as a subprocess.
@Suite("The appliance runs", .serialized)
struct FoundationTests {
    @Test("Given a running daemon, its retained status reads online; after kill -9 the will says offline")
    func statusAndWill() async throws {
        let env = try await Env.start(cloud: false)
        defer { Task { await env.stop() } }
        let status = try await env.device.waitFor(env.topic("edge/status")) { $0["state"]?.stringValue == "online" }
        #expect(status[0]["cloud"]?.stringValue == "disabled")
        #expect(status[0]["backlog"]?.doubleValue == 0)
        // A late subscriber sees the retained status.
        let late = try await TestMQTT(port: env.broker.port)
        try await late.subscribe(env.topic("edge/status"))
        let retained = try await late.waitFor(env.topic("edge/status"))
        #expect(retained[0]["state"]?.stringValue == "online")
        #expect(late.messages(on: env.topic("edge/status"))[0].retain)
        late.close()

        await env.daemon.kill9()
        try await env.device.waitFor(env.topic("edge/status")) { $0["state"]?.stringValue == "offline" }
        await env.stop()
    }

    @Test("Broker restart: the daemon reconnects by itself, resubscribes, republishes its online status and takes device messages again")
    func brokerRestart() async throws {
        let env = try await Env.start(cloud: false)
        defer { Task { await env.stop() } }
        try env.device.publish(env.topic("room/sala-2/presence/p1"), #"{"occupied": true, "msg_id": "before"}"#)
        try await env.device.waitFor(env.topic("device/p1/ack")) { $0["msg_id"]?.stringValue == "before" }
        // The broker keeps nothing on disk here: after the restart there is no session, no
        // subscription and no retained status left; the daemon has to rebuild all three.
        await env.broker.stop()
        try await Harness.waitUntil("the daemon notices the broker is gone", timeout: 15) {
            (try await env.daemon.status())["mqtt"]?["connected"]?.boolValue == false
        }
        try await env.broker.start()
        let device = try await TestMQTT(port: env.broker.port)
        defer { device.close() }
        try await device.subscribe(env.topic("#"))
        let status = try await device.waitFor(env.topic("edge/status"), timeout: 20) { $0["state"]?.stringValue == "online" }
        #expect(status[0]["backlog"] != nil)
        let late = try await TestMQTT(port: env.broker.port)
        defer { late.close() }
        try await late.subscribe(env.topic("edge/status"))
        try await late.waitFor(env.topic("edge/status")) { $0["state"]?.stringValue == "online" }
        #expect(late.messages(on: env.topic("edge/status")).first?.retain == true, "republished as retained")
        try device.publish(env.topic("room/sala-2/presence/p1"), #"{"occupied": false, "msg_id": "after"}"#)
        try await device.waitFor(env.topic("device/p1/ack"), timeout: 10) { $0["msg_id"]?.stringValue == "after" }
        #expect((try await env.daemon.status())["mqtt"]?["connected"]?.boolValue == true)
        #expect(env.daemon.log().contains("connection lost"))
        await env.stop()
    }

    @Test("SIGTERM drains, publishes offline and exits 0")
    func sigterm() async throws {
        let env = try await Env.start(cloud: false)
        try await env.device.waitFor(env.topic("edge/status")) { $0["state"]?.stringValue == "online" }
        let t0 = Date()
        let code = await env.daemon.terminate(timeout: 12)
        #expect(code == 0)
        #expect(Date().timeIntervalSince(t0) < 10)
        try await env.device.waitFor(env.topic("edge/status")) { $0["state"]?.stringValue == "offline" }
        #expect(env.daemon.log().contains("stopped cleanly"))
        await env.stop()
    }

    @Test("/healthz, /api/v1/status and /metrics answer with the contract's shapes")
    func httpEndpoints() async throws {
        let env = try await Env.start(cloud: false)
        defer { Task { await env.stop() } }
        let h = try await env.daemon.get("/healthz")
        #expect(h.status == 200)
        #expect(try JSON.parse(h.body)["status"]?.stringValue == "ok")
        try await Harness.waitUntil("mqtt connected in status") { (try await env.daemon.status())["mqtt"]?["connected"]?.boolValue == true }
        let s = try await env.daemon.status()
        #expect(s["site_id"]?.stringValue == "test-site")
        #expect(s["cloud"]?["state"]?.stringValue == "disabled")
        #expect(s["outbox"]?["pending"]?.doubleValue == 0)
        #expect(s["outbox"]?["dead_letters"]?.doubleValue == 0)
        #expect(s["roster"]?["patients"]?.doubleValue == 0)
        #expect(s["alerts"]?["active"]?.doubleValue == 0)
        #expect(s["storage"]?["state"]?.stringValue == "ok")
        #expect((s["storage"]?["used_bytes"]?.doubleValue ?? 0) > 0)
        #expect(s["storage"]?["budget_bytes"]?.doubleValue == 2_147_483_648)
        let m = try await env.daemon.get("/metrics")
        #expect(m.status == 200)
        for name in [
            "medic_edge_mqtt_messages_total", "medic_edge_dead_letters_total", "medic_edge_checkins_total",
            "medic_edge_wearable_samples_total", "medic_edge_events_delivered_total", "medic_edge_outbox_pending",
            "medic_edge_cloud_up",
        ] {
            #expect(m.text.contains(name), "metrics lack \(name)")
        }
        // Routes that need staff credentials never answer without them.
        let rooms = try await env.daemon.get("/api/v1/rooms")
        #expect(rooms.status != 200)
        await env.stop()
    }

    @Test("A message with a bad id in its topic is rejected, counted and error-acked after its commit")
    func badTopicRejected() async throws {
        let env = try await Env.start(cloud: false)
        defer { Task { await env.stop() } }
        try env.device.publish(env.topic("room/sala.2/presence/pres-1"), #"{"occupied": true, "msg_id": "m-1"}"#)
        let ack = try await env.device.waitFor(env.topic("device/pres-1/ack"))
        #expect(ack[0]["msg_id"]?.stringValue == "m-1")
        #expect(ack[0]["error"]?.stringValue == "bad_topic")
        #expect(try await env.metric(#"medic_edge_mqtt_messages_total{kind="presence",result="rejected"}"#) == 1)
        #expect(try await env.metric(#"medic_edge_dead_letters_total{reason="bad_topic"}"#) == 1)
        let (code, out) = try await env.cli(["rejects"])
        #expect(code == 0)
        #expect(out.contains("bad_topic") && out.contains("sala.2"))
        // The same message again is acked again, not stored twice.
        try env.device.publish(env.topic("room/sala.2/presence/pres-1"), #"{"occupied": true, "msg_id": "m-1"}"#)
        try await env.device.waitFor(env.topic("device/pres-1/ack"), count: 2)
        let (_, out2) = try await env.cli(["rejects"])
        #expect(out2.components(separatedBy: "bad_topic").count - 1 == 1)
        await env.stop()
    }

    @Test("A message over 64 KiB is rejected without being parsed: no ack, a too_large row")
    func oversized() async throws {
        let env = try await Env.start(cloud: false)
        defer { Task { await env.stop() } }
        let big = #"{"msg_id": "big-1", "temperature_c": 5, "pad": ""# + String(repeating: "x", count: 70 * 1024) + #""}"#
        try env.device.publish(env.topic("room/sala-2/environment/env-1"), big)
        // A normal message after it proves the big one was processed first (same publisher, in order).
        try env.device.publish(env.topic("room/sala-2/environment/env-1"), #"{"msg_id": "small-1", "temperature_c": 21}"#)
        let acks = try await env.device.waitFor(env.topic("device/env-1/ack")) { $0["msg_id"]?.stringValue == "small-1" }
        #expect(acks.count == 1)
        #expect(env.device.json(on: env.topic("device/env-1/ack")).allSatisfy { $0["msg_id"]?.stringValue != "big-1" })
        #expect(try await env.metric(#"medic_edge_dead_letters_total{reason="too_large"}"#) == 1)
        let (_, out) = try await env.cli(["rejects"])
        #expect(out.contains("too_large"))
        await env.stop()
    }

    @Test("The database is one SQLite file, 0700 folder, 0600 files, WAL, auto_vacuum incremental")
    func databaseFiles() async throws {
        let env = try await Env.start(cloud: false)
        defer { Task { await env.stop() } }
        let dir = env.daemon.dataDir
        let fm = FileManager.default
        let dirMode = (try fm.attributesOfItem(atPath: dir)[.posixPermissions] as? NSNumber)?.intValue
        #expect(dirMode == 0o700)
        for f in ["medic-edge.sqlite", "medic-edge.sqlite-wal"] {
            let mode = (try fm.attributesOfItem(atPath: dir + "/" + f)[.posixPermissions] as? NSNumber)?.intValue
            #expect(mode == 0o600, "\(f) mode \(String(mode ?? 0, radix: 8))")
        }
        let header = try Data(contentsOf: URL(fileURLWithPath: dir + "/medic-edge.sqlite")).prefix(100)
        #expect(String(decoding: header.prefix(15), as: UTF8.self) == "SQLite format 3")
        // Header bytes 18/19 = 2 mean WAL; bytes 52..55 (largest root page) non-zero and 64..67 = 1 mean incremental vacuum.
        #expect(header[18] == 2 && header[19] == 2)
        #expect(header[64 + 3] == 1)
        await env.stop()
    }
}

/// A bad config stops start-up with one clear line naming the key.
@Suite("Bad configuration")
struct BadConfigTests {
    static let cases: [(String, String)] = [
        ("mqtt: {port: \"abc\"}\n", "mqtt.port"),
        ("timezone: Mars/Olympus\n", "timezone"),
        ("site_id: [unclosed\n", "(file)"),
        ("mqtt: {password_file: /nonexistent/secret}\n", "mqtt.password_file"),
        ("cloud: {events_url_file: /nonexistent/url}\n", "cloud.events_url_file"),
        ("site_id: \"Bad Site\"\n", "site_id"),
        ("tenant_id: not-a-uuid\n", "tenant_id"),
        ("mqtt: {prot: 1883}\n", "mqtt.prot"),
        ("rooms: {geladeira: {limits: {temperature_c: {min: 8, max: 2}}}}\n", "rooms.geladeira.limits.temperature_c.min"),
    ]

    @Test("each bad config exits non-zero naming its key", arguments: cases)
    func badConfig(_ c: (String, String)) async throws {
        let dir = Harness.tempDir("badconf")
        try c.0.write(toFile: dir + "/config.yaml", atomically: true, encoding: .utf8)
        let (code, out) = try await DaemonProcess.runCLI(["run", "--config", dir + "/config.yaml"])
        #expect(code != 0)
        let lines = out.split(separator: "\n")
        #expect(lines.count == 1, "expected one line, got: \(out)")
        #expect(out.contains("config error: \(c.1):"), "got: \(out)")
    }

    @Test("a missing config file is named")
    func missingFile() async throws {
        let (code, out) = try await DaemonProcess.runCLI(["run", "--config", "/nonexistent/medic-edge.yaml"])
        #expect(code != 0)
        #expect(out.contains("--config") && out.contains("/nonexistent/medic-edge.yaml"))
    }

    @Test("$MEDIC_EDGE_CONFIG is used when --config is absent")
    func envVariable() async throws {
        let dir = Harness.tempDir("envconf")
        try "timezone: Nowhere/Land\n".write(toFile: dir + "/c.yaml", atomically: true, encoding: .utf8)
        let (code, out) = try await DaemonProcess.runCLI(["run"], environment: ["MEDIC_EDGE_CONFIG": dir + "/c.yaml"])
        #expect(code != 0)
        #expect(out.contains("config error: timezone:"))
    }
}

/// systemd's notify protocol, with a real datagram socket standing in for systemd.
@Suite("systemd readiness and watchdog")
struct SystemdNotifyTests {
    @Test("With NOTIFY_SOCKET set, the daemon sends READY=1 when serving, feeds the watchdog, and STOPPING=1 on SIGTERM")
    func notify() async throws {
        let notify = try NotifySocket()
        defer { notify.close() }
        let broker = try Broker()
        try await broker.start()
        let daemon = try DaemonProcess(configYAML: DaemonProcess.standardConfig(mqttPort: broker.port))
        try await daemon.start(waitReady: false, environment: ["NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "400000"])
        var got: [String] = []
        let deadline = Date().addingTimeInterval(15)
        while Date() < deadline && !(got.contains("READY=1") && got.filter { $0 == "WATCHDOG=1" }.count >= 2) {
            got += notify.received()
            try await Task.sleep(for: .milliseconds(10))
        }
        #expect(got.contains("READY=1"))
        #expect(got.filter { $0 == "WATCHDOG=1" }.count >= 2)
        #expect(await daemon.terminate() == 0)
        #expect(notify.received(waiting: 2).contains("STOPPING=1"))
        await broker.stop()
    }
}

/// A datagram socket standing in for systemd's `NOTIFY_SOCKET`.
final class NotifySocket: @unchecked Sendable {
    let path: String
    private let fd: Int32
    struct Failed: Error, CustomStringConvertible { let description: String }
    init() throws {
        path = Harness.tempDir("notify") + "/notify.sock"
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        guard fd >= 0 else { throw Failed(description: "socket: errno \(errno)") }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { p in for (i, b) in path.utf8.enumerated() { p[i] = b } }
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard rc == 0 else { Foundation.close(fd); throw Failed(description: "bind \(path): errno \(errno)") }
        var tv = timeval(tv_sec: 0, tv_usec: 100_000)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }
    /// The messages waiting, reading for at most `waiting` seconds (0.1 s per empty read).
    func received(waiting: Double = 0) -> [String] {
        var out: [String] = []
        let deadline = Date().addingTimeInterval(waiting)
        repeat {
            var buf = [UInt8](repeating: 0, count: 512)
            let n = recv(fd, &buf, buf.count, 0)
            if n > 0 { out.append(String(decoding: buf[0..<n], as: UTF8.self)) } else if waiting == 0 { break }
        } while Date() < deadline
        return out
    }
    func close() { Foundation.close(fd) }
}
