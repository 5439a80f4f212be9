import EdgeCore
@testable import EdgeMQTT
import EdgeTestSupport
import Foundation
import Synchronization
import Testing

/// CONTRACT §5 "Intake bound" and §4 `/healthz`: a device flood neither grows the daemon's
/// memory nor holds kiosk scans back; a broker that goes away, or an MQTT loop that ends for
/// good, shows on /healthz; intake resumes by itself when the broker returns.
@Suite("Floods and a dead broker", .serialized)
struct FloodTests {
    static let site = "test-site"

    /// The flood's size: 200,000 messages from `devices` devices.
    static let devices = 4
    static let perDevice = 50_000
    /// The daemon's peak memory under the flood. CONTRACT §5 says 64 MiB for the release
    /// build (checked when MEDIC_EDGE_BIN points at one); the tests run the debug binary
    /// (larger code, no optimisation), so they allow more. Measured (03:00, see the intake
    /// report): debug 68–78 MiB (100 MiB before the bound), release 73–76 MiB — of which
    /// ≈ 44 MiB file-backed and ≈ 30 MiB heap; with the bound at 256 KiB instead of 8 MiB the
    /// release peak is 73 MiB, so the rest is not the intake queue.
    static let peakLimit = ProcessInfo.processInfo.environment["MEDIC_EDGE_BIN"] == nil ? 96 << 20 : 64 << 20

    @Test(
        "A flood of 200,000 QoS-1 messages from 4 devices: a scan in the middle answered in 2 s, peak memory bounded, every message stored and acked"
    )
    func flood() async throws {
        // The broker keeps whatever the daemon does not take yet (unbounded queue): nothing of
        // the flood may be lost on the way, so every message can be counted at the end.
        let broker = try Broker(extraConfig: "max_queued_messages 0")
        try await broker.start()
        defer { Task { await broker.stop() } }
        let daemon = try DaemonProcess(configYAML: DaemonProcess.standardConfig(mqttPort: broker.port))
        let kiosk = try await TestMQTT(port: broker.port)
        try await kiosk.subscribe("clinic/\(Self.site)/kiosk/+/result")
        try await kiosk.subscribe("clinic/\(Self.site)/edge/status")
        let acks = try await TopicCounter(port: broker.port, filter: "clinic/\(Self.site)/device/+/ack")
        defer { acks.close(); kiosk.close() }
        try await daemon.start()
        defer { Task { _ = await daemon.terminate() } }
        try await kiosk.waitFor("clinic/\(Self.site)/edge/status", timeout: 15) { $0["state"]?.stringValue == "online" }
        let pid = try #require(daemon.pid)

        // One file of lines per device: each line one environment reading with its msg_id.
        let dir = Harness.tempDir("flood")
        for d in 0..<Self.devices {
            var text = ""
            text.reserveCapacity(Self.perDevice * 80)
            for n in 0..<Self.perDevice {
                text += #"{"ts":"2026-12-07T01:00:00Z","temperature_c":22.5,"msg_id":"f\#(d)-\#(n)"}"# + "\n"
            }
            try text.write(toFile: dir + "/d\(d).txt", atomically: false, encoding: .utf8)
        }
        let total = Self.devices * Self.perDevice
        let t0 = Date()
        var publishers: [Process] = []
        for d in 0..<Self.devices {
            publishers.append(
                try Harness.publishLines(
                    port: broker.port, topic: "clinic/\(Self.site)/room/sala-\(d)/environment/flood-\(d)",
                    file: dir + "/d\(d).txt", clientId: "flood-\(d)"))
        }
        defer { for p in publishers where p.isRunning { kill(p.processIdentifier, SIGKILL) } }

        // In the middle of the flood: the daemon has acked some of it, most is still to come.
        try await Harness.waitUntil("the first 10,000 acks", timeout: 60, poll: 0.05) { acks.counts.distinct >= 10_000 }
        let scan = #"{"scan_id":"mid-flood-1","qr":"not-a-known-code","ts":"2026-12-07T01:00:00Z"}"#
        let sent = Date()
        try kiosk.publish("clinic/\(Self.site)/kiosk/k1/scan", scan)
        // Waited for longer than the 2 s allowed, to say how long it took when it fails.
        let result = try await kiosk.waitFor("clinic/\(Self.site)/kiosk/k1/result", timeout: 60) { $0["scan_id"]?.stringValue == "mid-flood-1" }
        let waited = Date().timeIntervalSince(sent)
        let acksAtResult = acks.counts.distinct
        #expect(waited < 2, "the scan's result came \(Int(waited * 1000)) ms after the scan")
        #expect(result.first?["outcome"]?.stringValue == "unknown_code")
        #expect(acksAtResult < total, "the scan was answered in the middle of the flood")
        print("flood: scan answered in \(Int(waited * 1000)) ms with \(acksAtResult) of \(total) messages acked")

        // Every message is stored once and acked.
        try await Harness.waitUntil("every publisher done", timeout: 150, poll: 0.1) { publishers.allSatisfy { !$0.isRunning } }
        #expect(publishers.allSatisfy { $0.terminationStatus == 0 })
        try await Harness.waitUntil("\(total) acks", timeout: 150, poll: 0.2) { acks.counts.distinct >= total }
        let elapsed = Date().timeIntervalSince(t0)
        // Every message of the flood is in the outbox, once, with the scan's own iot.event
        // (the figure is refreshed each second).
        var pending = -1
        try? await Harness.waitUntil("\(total + 1) events pending", timeout: 10, poll: 0.5) {
            pending = Int(try await daemon.status()["outbox"]?["pending"]?.doubleValue ?? -1)
            return pending >= total + 1
        }
        #expect(pending == total + 1)
        #expect(acks.counts.distinct == total)
        let peak = try #require(Harness.peakMemoryBytes(pid: pid))
        // What the memory is now: anonymous (heap) and file-backed (the binary and libraries).
        print(
            "flood: the daemon now: "
                + ((try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? "").split(separator: "\n").filter {
                    $0.hasPrefix("Rss") || $0.hasPrefix("VmRSS") || $0.hasPrefix("Threads")
                }.joined(separator: " "))
        print(
            "flood: \(total) messages stored and acked in \(Int(elapsed)) s (\(Int(Double(total) / elapsed)) msgs/s); daemon peak memory (VmHWM) "
                + "\(peak >> 20) MiB"
        )
        #expect(peak < Self.peakLimit, "daemon peak memory \(peak >> 20) MiB")
        #expect(try await daemon.get("/healthz").status == 200)
    }

    @Test(
        "The intake bound at its smallest (256 KiB): a 40,000-message flood holds the broker back (logged), passes whole, each stored once and acked"
    )
    func smallBound() async throws {
        let broker = try Broker(extraConfig: "max_queued_messages 0")
        try await broker.start()
        defer { Task { await broker.stop() } }
        let yaml = DaemonProcess.standardConfig(mqttPort: broker.port).replacingOccurrences(
            of: "client_id: medic-edge-test}", with: "client_id: medic-edge-test, max_pending_bytes: 262144}")
        let daemon = try DaemonProcess(configYAML: yaml)
        let acks = try await TopicCounter(port: broker.port, filter: "clinic/\(Self.site)/device/+/ack")
        defer { acks.close() }
        try await daemon.start()
        defer { Task { _ = await daemon.terminate() } }
        let dir = Harness.tempDir("flood")
        let n = 10_000, devices = 4
        var publishers: [Process] = []
        for d in 0..<devices {
            var text = ""
            // Larger readings (an unknown field is forwarded as received): the bound is in bytes.
            let pad = String(repeating: "x", count: 1000)
            for i in 0..<n { text += #"{"ts":"2026-12-07T01:00:00Z","co2_ppm":640,"fw_note":"\#(pad)","msg_id":"s\#(d)-\#(i)"}"# + "\n" }
            try text.write(toFile: dir + "/s\(d).txt", atomically: false, encoding: .utf8)
        }
        for d in 0..<devices {
            publishers.append(
                try Harness.publishLines(
                    port: broker.port, topic: "clinic/\(Self.site)/room/sala-\(d)/environment/small-\(d)",
                    file: dir + "/s\(d).txt", clientId: "small-\(d)"))
        }
        defer { for p in publishers where p.isRunning { kill(p.processIdentifier, SIGKILL) } }
        try await Harness.waitUntil("\(n * devices) acks", timeout: 90, poll: 0.2) { acks.counts.distinct >= n * devices }
        #expect(acks.counts.distinct == n * devices)
        var pending = -1
        try? await Harness.waitUntil("\(n * devices) events pending", timeout: 10, poll: 0.5) {
            pending = Int(try await daemon.status()["outbox"]?["pending"]?.doubleValue ?? -1)
            return pending >= n * devices
        }
        #expect(pending == n * devices)
        #expect(
            daemon.log().contains("mqtt: intake full (mqtt.max_pending_bytes: 256 KiB received and not yet committed)"),
            "the bound held the broker back")
    }

    @Test(
        "Broker stopped for 70 s: /healthz 503 with the mqtt reason after 60 s, not before; 200 and intake resumed once it is back, with no restart"
    )
    func deadBroker() async throws {
        let broker = try Broker()
        try await broker.start()
        defer { Task { await broker.stop() } }
        let daemon = try DaemonProcess(configYAML: DaemonProcess.standardConfig(mqttPort: broker.port))
        // systemd's watchdog, fed every second while healthy (CONTRACT §4): it must stop while
        // the broker is gone past 60 s, and start again when it is back.
        let notify = try NotifySocket()
        defer { notify.close() }
        try await daemon.start(environment: ["NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "2000000"])
        defer { Task { _ = await daemon.terminate() } }
        let pid = daemon.pid
        var device = try await TestMQTT(port: broker.port)
        try await device.subscribe("clinic/\(Self.site)/#")
        try await device.waitFor("clinic/\(Self.site)/edge/status", timeout: 15) { $0["state"]?.stringValue == "online" }
        device.close()

        await broker.stop()
        let down = Date()
        // Still healthy well inside the 60 s.
        try await Task.sleep(for: .seconds(50))
        let early = try await daemon.get("/healthz")
        #expect(early.status == 200, "healthy 50 s into the outage: \(early.text)")
        var reasons: [String] = []
        try await Harness.waitUntil("/healthz 503", timeout: 15, poll: 0.25) {
            let r = try await daemon.get("/healthz")
            guard r.status == 503 else { return false }
            reasons = (try JSON.parse(r.body))["reasons"]?.arrayValue?.compactMap(\.stringValue) ?? []
            return true
        }
        let unhealthyAfter = Date().timeIntervalSince(down)
        #expect(unhealthyAfter > 60)
        #expect(reasons.contains { $0.hasPrefix("mqtt: disconnected") }, "reasons: \(reasons)")
        #expect(notify.received(waiting: 0.2).contains("WATCHDOG=1"), "fed while healthy")
        #expect(!notify.received(waiting: 3).contains("WATCHDOG=1"), "the watchdog is not fed while unhealthy")
        #expect(daemon.log().contains("health: unhealthy, the watchdog is no longer fed"))
        let remaining = 70 - Date().timeIntervalSince(down)
        if remaining > 0 { try await Task.sleep(for: .seconds(remaining)) }

        // The broker returns on the same port (with nothing kept: its sessions are gone too).
        try await broker.start()
        try await Harness.waitUntil("/healthz 200 after the broker returned", timeout: 20, poll: 0.25) {
            try await daemon.get("/healthz").status == 200
        }
        _ = notify.received()
        #expect(notify.received(waiting: 3).contains("WATCHDOG=1"), "fed again once healthy")
        device = try await TestMQTT(port: broker.port)
        defer { device.close() }
        try await device.subscribe("clinic/\(Self.site)/#")
        try device.publish("clinic/\(Self.site)/room/sala-1/presence/p1", #"{"occupied": true, "msg_id": "after-outage"}"#)
        try await device.waitFor("clinic/\(Self.site)/device/p1/ack", timeout: 5) { $0["msg_id"]?.stringValue == "after-outage" }
        try device.publish("clinic/\(Self.site)/kiosk/k1/scan", #"{"scan_id":"after-outage","qr":"x","ts":"2026-12-07T01:00:00Z"}"#)
        try await device.waitFor("clinic/\(Self.site)/kiosk/k1/result", timeout: 5) { $0["scan_id"]?.stringValue == "after-outage" }
        #expect(daemon.process?.isRunning == true && daemon.pid == pid, "the same daemon process throughout")
    }

    @Test("libmosquitto's loop ends for good (the broker breaks the protocol): /healthz 503 says so at once")
    func loopEnded() async throws {
        let broker = BrokenBroker()
        defer { broker.close() }
        let daemon = try DaemonProcess(configYAML: DaemonProcess.standardConfig(mqttPort: broker.port))
        try await daemon.start(waitReady: false)
        defer { Task { _ = await daemon.terminate() } }
        var reasons: [String] = []
        try await Harness.waitUntil("/healthz 503 with the loop's end", timeout: 15, poll: 0.1) {
            let r = try await daemon.get("/healthz")
            guard r.status == 503 else { return false }
            reasons = (try JSON.parse(r.body))["reasons"]?.arrayValue?.compactMap(\.stringValue) ?? []
            return reasons.contains { $0.hasPrefix("mqtt: the client loop ended") }
        }
        #expect(broker.connections >= 1)
        #expect(daemon.log().contains("mqtt: the client loop ended for good"))
        #expect(daemon.process?.isRunning == true, "the daemon reports it and keeps serving /healthz (systemd restarts it)")
    }
}

/// The intake bound itself (pure logic): the network thread waits once the bound is reached,
/// goes on when the consumer gives room back, and never waits once the client is stopping.
@Suite("MQTT intake bound")
struct IntakeBoundTests {
    static func put(_ sink: Sink<Void>, _ n: Int, bytes: Int) {
        let cost = IntakeBound.cost(payloadBytes: bytes, topicBytes: 10)
        sink.admit(cost)
        var m = MQTTMessage(topic: "t", payload: Array(repeating: 0, count: bytes), qos: 1, retain: false, receivedAtNs: UInt64(n))
        m.intakeCost = cost; m.origin = sink
        sink.put(.message(m))
    }

    @Test("Past the bound the putting thread waits; released room lets it go on; a stopping client never waits; a lone large message is taken")
    func bound() async throws {
        let (_, cont) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        let cost = IntakeBound.cost(payloadBytes: 1000, topicBytes: 10)
        let sink = Sink(cont, limit: 10 * cost)
        for n in 0..<10 { Self.put(sink, n, bytes: 1000) }
        #expect(sink.intake().heldBytes == 10 * cost)
        // The 11th waits (on its own thread, as libmosquitto's would).
        let done = DispatchSemaphore(value: 0)
        Thread {
            Self.put(sink, 10, bytes: 1000); done.signal()
        }.start()
        #expect(done.wait(timeout: .now() + 0.3) == .timedOut)
        #expect(sink.intake().stalledNow)
        // The consumer commits three: the waiting one goes in.
        let batch = sink.drain(max: 3).compactMap { if case .message(let m) = $0 { m } else { nil } }
        #expect(done.wait(timeout: .now() + 0.3) == .timedOut, "taken is not committed: still no room")
        MQTTClient.release(batch)
        #expect(done.wait(timeout: .now() + 2) == .success)
        #expect(sink.intake().heldBytes == 8 * cost)
        #expect(sink.intake().stalls == 1)
        // All given back: a message larger than the whole bound is still taken alone.
        MQTTClient.release(sink.drain(max: 100).compactMap { if case .message(let m) = $0 { m } else { nil } })
        #expect(sink.intake().heldBytes == 0)
        Self.put(sink, 11, bytes: 100 * 1000)
        #expect(sink.intake().heldBytes > 10 * cost)
        // Stopping: the network thread must be able to end, so nothing waits any more.
        sink.openGate()
        Self.put(sink, 12, bytes: 1000)
        #expect(sink.waiting().others == 2)
    }

    @Test("A client without a bound never waits, and its messages cost nothing")
    func unbounded() {
        let (_, cont) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        let sink = Sink(cont)
        for n in 0..<1000 { sink.admit(0); sink.put(.message(MQTTMessage(topic: "t", payload: [], qos: 1, retain: false, receivedAtNs: UInt64(n)))) }
        #expect(sink.intake().heldBytes == 0 && sink.intake().limitBytes == nil)
        #expect(sink.waiting().others == 1000)
    }
}

/// A "broker" that accepts the CONNECT, answers CONNACK, then sends a packet of a reserved
/// type: a protocol error, after which libmosquitto's loop returns for good.
final class BrokenBroker: Sendable {
    let port: Int
    private let fd: Int32
    private let count = Mutex(0)
    var connections: Int { count.withLock { $0 } }

    init() {
        (fd, port) = Harness.holdPort()
        let listener = fd
        Thread { [self] in
            while true {
                let c = accept(listener, nil, nil)
                if c < 0 { return }
                count.withLock { $0 += 1 }
                var buf = [UInt8](repeating: 0, count: 1024)
                _ = read(c, &buf, buf.count)  // CONNECT
                let reply: [UInt8] = [0x20, 0x02, 0x00, 0x00, 0x00, 0x00]  // CONNACK ok, then type 0
                _ = reply.withUnsafeBytes { write(c, $0.baseAddress, $0.count) }
                // Kept open: the client ends the connection itself.
            }
        }.start()
    }
    func close() { shutdown(fd, Int32(SHUT_RDWR)); Glibc.close(fd) }
}
