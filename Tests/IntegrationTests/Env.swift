import CloudStub
import EdgeCore
import EdgeHTTPClient
import EdgeTestSupport
import Foundation
import Logging

/// One test's real parts: mosquitto, (optionally) the cloud stub, the daemon subprocess and a
/// device-side MQTT client subscribed to everything the appliance publishes.
final class Env: @unchecked Sendable {
    let broker: Broker
    let stub: CloudStub?
    let daemon: DaemonProcess
    let device: TestMQTT
    let site = "test-site"

    static func start(
        cloud: Bool = true, day: ClinicDay? = nil, extraConfig: String = "", cloudConfig: [String] = [],
        eventKey: String = "test-key", waitForRoster: Bool = true,
        daemonEnvironment: [String: String] = [:],
        beforeDaemon: (DaemonProcess) async throws -> Void = { _ in }
    ) async throws -> Env {
        let broker = try Broker()
        try await broker.start()
        var stub: CloudStub?
        var cloudPort: Int?
        if cloud {
            var logger = Logger(label: "stub"); logger.logLevel = .error
            let s = CloudStub(seed: (day ?? ClinicDay()).seed, logger: logger)
            cloudPort = try await s.start()
            stub = s
        }
        let daemon = try DaemonProcess(
            configYAML: DaemonProcess.standardConfig(
                mqttPort: broker.port, cloudPort: cloudPort, eventKey: eventKey, cloudExtra: cloudConfig, extra: extraConfig))
        dbg("broker up")
        let device = try await TestMQTT(port: broker.port)
        dbg("device connected")
        try await device.subscribe("clinic/test-site/#")
        dbg("subscribed")
        try await beforeDaemon(daemon)
        try await daemon.start(environment: daemonEnvironment, viaShell: !daemonEnvironment.isEmpty)
        // Ready for devices only once subscribed: the daemon publishes its online status right
        // after subscribing, and the broker keeps one client's packets in order.
        try await device.waitFor("clinic/test-site/edge/status", timeout: 15) { $0["state"]?.stringValue == "online" }
        dbg("daemon up")
        let env = Env(broker: broker, stub: stub, daemon: daemon, device: device)
        if cloud && waitForRoster && day != nil {
            try await Harness.waitUntil("first roster sync", timeout: 15) {
                (try await env.daemon.status())["roster"]?["last_sync_at"]?.stringValue != nil
            }
        }
        return env
    }

    private init(broker: Broker, stub: CloudStub?, daemon: DaemonProcess, device: TestMQTT) {
        self.broker = broker; self.stub = stub; self.daemon = daemon; self.device = device
    }

    func stop() async {
        dbg("stop: daemon")
        _ = await daemon.terminate(timeout: 12)
        dbg("stop: device")
        device.close()
        dbg("stop: stub")
        try? await stub?.stop()
        dbg("stop: broker")
        await broker.stop()
        dbg("stop: done")
    }

    func topic(_ rest: String) -> String { "clinic/\(site)/\(rest)" }

    /// Publishes a kiosk scan and waits for its result.
    func scan(_ qr: String, scanId: String, kiosk: String = "k1", timeout: Double = 10) async throws -> JSON {
        let payload = JSONText.object { j in
            j.add("scan_id", scanId); j.add("qr", qr); j.add("ts", Time.rfc3339(Date()))
        }
        // Counted before publishing: the result can arrive before the next line runs.
        let before = device.json(on: topic("kiosk/\(kiosk)/result")).filter { $0["scan_id"]?.stringValue == scanId }.count
        try device.publish(topic("kiosk/\(kiosk)/scan"), payload)
        let found = try await device.waitFor(topic("kiosk/\(kiosk)/result"), count: before + 1, timeout: timeout) {
            $0["scan_id"]?.stringValue == scanId
        }
        return found.last!
    }

    /// Events the stub received, as the appliance's JSON.
    func cloudEvents(named name: String? = nil) -> [JSON] {
        (stub?.receivedEvents() ?? []).map(\.asJSON).filter { name == nil || $0["name"]?.stringValue == name }
    }

    func waitForCloudEvents(_ name: String, count: Int, timeout: Double = 15, where match: @escaping (JSON) -> Bool = { _ in true }) async throws
        -> [JSON]
    {
        var found: [JSON] = []
        try await Harness.waitUntil("\(count) \(name) event(s) at the cloud", timeout: timeout, poll: 0.05) {
            found = self.cloudEvents(named: name).filter(match)
            return found.count >= count
        }
        return found
    }

    func metric(_ line: String) async throws -> Double? {
        let text = try await daemon.get("/metrics").text
        for l in text.split(separator: "\n") where l.hasPrefix(line + " ") {
            return Double(l.split(separator: " ").last ?? "")
        }
        return nil
    }

    func cli(_ args: [String]) async throws -> (Int32, String) {
        try await DaemonProcess.runCLI(args + ["--config", daemon.configPath])
    }
}

func dbg(_ s: String) {
    if ProcessInfo.processInfo.environment["ENV_DEBUG"] != nil {
        FileHandle.standardError.write(Data("[env \(Date().timeIntervalSince1970)] \(s)\n".utf8))
    }
}
