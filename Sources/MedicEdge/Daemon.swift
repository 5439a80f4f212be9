import EdgeCore
import EdgeHTTPClient
import EdgeMQTT
import EdgeStore
import Foundation
import GRDB
import Hummingbird
import HummingbirdTLS
import NIOCore
import Logging
import ServiceLifecycle

/// A long-running loop as a swift-service-lifecycle `Service`: cancelled on graceful shutdown.
struct LoopService: Service, CustomStringConvertible {
    let description: String
    let body: @Sendable () async -> Void
    func run() async throws {
        try await cancelWhenGracefulShutdown { await body() }
    }
}

/// The daemon is ready (systemd's READY=1) once every HTTP listener is serving.
final class Readiness: @unchecked Sendable {
    private let lock = NSLock()
    private var waiting: Set<String>
    private let ready: @Sendable () -> Void
    init(listeners: [String], ready: @escaping @Sendable () -> Void) { waiting = Set(listeners); self.ready = ready }
    func up(_ key: String) {
        lock.lock(); let was = waiting.count; waiting.remove(key); let now = waiting.count; lock.unlock()
        if was > 0 && now == 0 { ready() }
    }
    func isUp(_ key: String) -> Bool { lock.lock(); defer { lock.unlock() }; return !waiting.contains(key) }
}

/// An HTTP listener as a service: a failure before it serves (the port taken, an address not
/// on this machine) names its config key and address, so the technician knows what to change.
struct Listener: Service {
    struct CannotListen: Error, CustomStringConvertible {
        let key: String, address: String, underlying: any Error
        var description: String {
            let why = (underlying as? IOError).map { "\(String(cString: strerror($0.errnoCode))) (errno \($0.errnoCode))" } ?? "\(underlying)"
            return "\(key) \(address): cannot listen there: \(why). Is another program using that port, or is the address not on this machine?"
        }
    }
    let service: any Service
    let key: String, address: String
    let readiness: Readiness
    func run() async throws {
        do { try await service.run() } catch {
            if readiness.isUp(key) { throw error }
            throw CannotListen(key: key, address: address, underlying: error)
        }
    }
}

/// Owns the MQTT link: subscribes on (re)connect, feeds the ingest pipeline, publishes
/// replies after each commit and the appliance status. Stops intake first on shutdown.
final class MQTTService: Service, @unchecked Sendable {
    let config: EdgeConfig
    let client: MQTTClient
    let pipeline: IngestPipeline
    let state: EdgeState
    let metrics: EdgeMetrics
    let logger: Logger
    private let lock = NSLock()
    private var lastStatus = ""
    private var lastStatusAt = Date.distantPast

    init(config: EdgeConfig, pipeline: IngestPipeline, state: EdgeState, metrics: EdgeMetrics, logger: Logger) throws {
        self.config = config; self.pipeline = pipeline; self.state = state; self.metrics = metrics; self.logger = logger
        let will = MQTTWill(topic: DeviceTopic.edgeStatusTopic(site: config.siteId), payload: Array(#"{"state":"offline"}"#.utf8))
        // A fixed client id with a persistent session: the broker keeps QoS 1 messages for
        // the daemon while it restarts.
        client = try MQTTClient(clientId: config.mqtt.clientId, cleanSession: false, username: config.mqtt.username,
                                password: config.mqtt.password, will: will,
                                // Decoded on libmosquitto's network thread, alongside the writer;
                                // a decoded kiosk scan goes in the urgent lane (a patient waits).
                                prepare: { [site = config.siteId] m in DeviceMessage.decode(topic: m.topic, payload: m.payload, site: site) },
                                urgent: { m in if case .kiosk? = m.prepared as? DeviceMessage { true } else { false } },
                                logger: logger)
    }

    func statusPayload() -> (String, String) {
        let now = Time.nowMs()
        let backlog = state.backlog
        let key = "\(state.cloudState(nowMs: now).rawValue)|\(backlog)"
        let text = JSONText.object { j in
            j.add("state", "online"); j.add("cloud", state.cloudState(nowMs: now).rawValue)
            j.add("backlog", backlog); j.add("ts", Time.rfc3339(ms: now))
        }
        return (key, text)
    }

    /// Republished on change, at most every 10 s (CONTRACT §1.7); `force` on (re)connect.
    func publishStatus(force: Bool) {
        guard state.mqttConnected else { return }
        let (key, text) = statusPayload()
        lock.lock()
        let due = force || (key != lastStatus && Date().timeIntervalSince(lastStatusAt) >= 10)
        if due { lastStatus = key; lastStatusAt = Date() }
        lock.unlock()
        if due { try? client.publish(topic: DeviceTopic.edgeStatusTopic(site: config.siteId), text: text, qos: 1, retain: true) }
    }

    func run() async throws {
        try client.connect(host: config.mqtt.host, port: config.mqtt.port, keepalive: config.mqtt.keepaliveSeconds)
        await cancelWhenGracefulShutdown {
            // Messages of a batch that stopped early for a scan: they go next, behind the scans.
            var carry: [MQTTMessage] = []
            while !Task.isCancelled {
                let room = Swift.max(1, IngestPipeline.maxBatch - carry.count)
                let events = carry.isEmpty ? await self.client.nextBatch(max: room) : self.client.drain(max: room)
                let received = self.handle(events, carry: carry)
                let messages = carry.isEmpty ? await self.linger(received) : received
                carry = []
                if !messages.isEmpty {
                    // The batch in hand is finished even when shutdown starts meanwhile.
                    self.state.busy("ingest")
                    let done = await Task { await self.process(messages) }.value
                    self.state.idle("ingest")
                    carry = Array(messages[done...])
                }
            }
            // Shutdown: what was already received (and acknowledged to the broker) is still
            // recorded; bounded, so a flood cannot hold the shutdown up.
            let deadline = DispatchTime.now().uptimeNanoseconds + 2_000_000_000
            while DispatchTime.now().uptimeNanoseconds < deadline {
                let messages = self.handle(self.client.drain(max: IngestPipeline.maxBatch), carry: carry)
                if messages.isEmpty { break }
                let done = await Task { await self.process(messages) }.value
                carry = Array(messages[done...])
            }
        }
        // Intake stopped: say so, then disconnect cleanly (which suppresses the will).
        if state.mqttConnected {
            try? client.publish(topic: DeviceTopic.edgeStatusTopic(site: config.siteId), text: #"{"state":"offline"}"#, qos: 1, retain: true)
        }
        client.disconnect()
        state.setMQTTConnected(false)
        logger.info("mqtt: intake stopped, offline status published")
    }

    /// Under a steady stream (at least `lingerFrom` messages came during the last batch), a
    /// small batch of telemetry waits up to `lingerNs` for more: every commit (and its WAL
    /// write and fsync) then carries several times more messages, which is what lets a busy
    /// box keep up. A lone message never waits; nor does a batch with a scan in hand, and the
    /// wait ends as soon as one arrives (a patient is waiting).
    static let lingerFrom = 8
    static let lingerBelow = 64
    static let lingerNs: UInt64 = 2_000_000
    private func linger(_ messages: [MQTTMessage]) async -> [MQTTMessage] {
        guard messages.count >= Self.lingerFrom, messages.count < Self.lingerBelow, !messages.contains(where: \.urgent) else { return messages }
        let deadline = DispatchTime.now().uptimeNanoseconds + Self.lingerNs
        while DispatchTime.now().uptimeNanoseconds < deadline {
            do { try await Task.sleep(nanoseconds: 250_000) } catch { break }   // shutting down
            let w = client.waiting()
            if w.urgent > 0 || messages.count + w.others >= Self.lingerBelow { break }
        }
        // Scans that came meanwhile go first, then the messages in hand, then the newer ones.
        return handle(client.drain(max: IngestPipeline.maxBatch - messages.count), carry: messages)
    }

    /// Connection events are handled here; messages come back in processing order: urgent
    /// ones (drained first), then the carried-over rest of the last batch, then the others.
    private func handle(_ events: [MQTTEvent], carry: [MQTTMessage]) -> [MQTTMessage] {
        var urgent: [MQTTMessage] = [], others: [MQTTMessage] = []
        for e in events {
            switch e {
            case .connected(let code):
                if code == 0 {
                    state.setMQTTConnected(true)
                    do { try client.subscribe(DeviceTopic.subscriptions(site: config.siteId), qos: 1) } catch {
                        logger.error("mqtt: subscribe failed: \(error)")
                    }
                    logger.info("mqtt: connected to \(config.mqtt.host):\(config.mqtt.port), subscribed")
                    publishStatus(force: true)
                } else {
                    logger.error("mqtt: the broker refused the connection: \(MQTTClient.describe(code: code)); check mqtt.username and mqtt.password")
                }
            case .disconnected(let code):
                state.setMQTTConnected(false)
                if code != 0 { logger.warning("mqtt: connection lost (\(code)); reconnecting") }
            case .message(let m):
                if m.urgent { urgent.append(m) } else { others.append(m) }
            }
        }
        if carry.isEmpty && urgent.isEmpty { return others }
        return urgent + carry + others
    }

    /// One batch through the pipeline; replies published after its commit. Returns how many
    /// messages it took.
    private func process(_ messages: [MQTTMessage]) async -> Int {
        let client = self.client, metrics = self.metrics, logger = self.logger
        return await pipeline.process(messages, takeUrgent: { client.takeUrgent() }) { reply in
            do { try client.publish(topic: reply.topic, text: reply.payload, qos: 1, retain: false) } catch {
                logger.warning("mqtt: reply not published: \(error)")
            }
            if let (t0, outcome) = reply.checkin {
                metrics.checkin(outcome, seconds: Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
            }
        }
    }
}

/// The uplink as a service: on shutdown, one last bounded upload attempt.
struct UplinkService: Service {
    let uplink: Uplink
    func run() async throws {
        await cancelWhenGracefulShutdown { await uplink.run() }
        await Task { await uplink.finalAttempt(deadline: 3) }.value
    }
}

/// systemd's notify protocol, plain datagrams (no libsystemd).
enum SystemdNotify {
    static func send(_ text: String) {
        guard let path = ProcessInfo.processInfo.environment["NOTIFY_SOCKET"], !path.isEmpty else { return }
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue), 0)
        guard fd >= 0 else { return }
        defer { close(fd) }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        var bytes = Array(path.utf8)
        if bytes.first == UInt8(ascii: "@") { bytes[0] = 0 }
        guard bytes.count < MemoryLayout.size(ofValue: addr.sun_path) else { return }
        withUnsafeMutableBytes(of: &addr.sun_path) { p in for (i, b) in bytes.enumerated() { p[i] = b } }
        let len = socklen_t(MemoryLayout<sa_family_t>.size + bytes.count)
        _ = text.withCString { msg in
            withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { sendto(fd, msg, strlen(msg), 0, $0, len) }
            }
        }
    }
    static var watchdogInterval: Double? {
        guard let u = ProcessInfo.processInfo.environment["WATCHDOG_USEC"], let us = Double(u), us > 0 else { return nil }
        return us / 2_000_000
    }
}

/// Builds and runs the appliance.
public enum Daemon {
    public static func makeLogger(level: String, label: String = "medic-edge") -> Logger {
        var l = Logger(label: label)
        l.logLevel = Logger.Level(rawValue: level) ?? .info
        return l
    }

    public static func run(config: EdgeConfig) async throws {
        umask(0o077)
        // The console's certificate and key are read first: a bad one stops start-up before
        // anything else is opened.
        let consoleTLS = try ConsoleTLS.configuration(config.http)
        LoggingSystem.bootstrap { StreamLogHandler.standardError(label: $0) }
        let logger = makeLogger(level: config.logLevel)
        let metrics = EdgeMetrics(bootstrap: true)
        let db = try AppDatabase.open(dataDir: config.dataDir, budgetBytes: config.storageMaxBytes, backgroundCheckpoints: true)
        let checkpointer = try Checkpointer(path: db.path ?? "")
        let state = EdgeState(cloudConfigured: config.cloud?.eventsURL != nil)
        let budget = StorageBudget(config: config, db: db, state: state, metrics: metrics, logger: logger)
        let pipeline = IngestPipeline(config: config, db: db, metrics: metrics, state: state, budget: budget, logger: logger)
        let mqtt = try MQTTService(config: config, pipeline: pipeline, state: state, metrics: metrics, logger: logger)
        let uplink = Uplink(config: config, db: db, http: CurlHTTPClient(label: "uplink"), metrics: metrics, state: state, logger: logger)
        let roster = RosterSync(config: config, db: db, http: CurlHTTPClient(label: "roster"), state: state, logger: logger)
        let noshow = NoShowScheduler(config: config, db: db, logger: logger)

        let housekeeping = LoopService(description: "housekeeping") {
            var tick = 0
            while !Task.isCancelled {
                state.busy("housekeeping")
                let now = Time.nowMs()
                if let s = try? db.outboxStats() {
                    state.setBacklog(s.pending)
                    metrics.outbox(OutboxStatsView(clinical: s.pendingClinical, telemetry: s.pendingTelemetry, oldestMs: s.oldestPendingMs), nowMs: now)
                }
                metrics.cloudUp(state.cloudState(nowMs: now) == .online)
                await budget.enforce()
                if tick % 10 == 0 { await budget.purgeBounded() }
                if tick % 3600 == 0 { _ = try? await db.writer.write { try Ledger.purgeOldMessages($0, nowMs: now) } }
                // The console certificate's end, said at start and then once a day.
                if tick % 86_400 == 0, let end = consoleTLS?.notValidAfter,
                   let n = ConsoleTLS.expiryNotice(notValidAfter: end, nowSeconds: now / 1000, certFile: config.http.certFile ?? "-") {
                    if n.isError { logger.error("\(n.text)") } else { logger.warning("\(n.text)") }
                }
                mqtt.publishStatus(force: false)
                tick += 1
                state.idle("housekeeping")
                try? await Task.sleep(for: .seconds(1))
            }
        }
        let checkpoints = LoopService(description: "checkpoints") {
            var failures = 0
            while !Task.isCancelled {
                // Under a burst the writer checkpoints after its commits (StorageBudget).
                if budget.writerCheckpointsWAL {
                    try? await Task.sleep(for: .milliseconds(250))
                    continue
                }
                do { try await checkpointer.run(); failures = 0 } catch {
                    // Busy now and then (the disk budget's own checkpoint); said once a minute.
                    if failures % 240 == 0 { logger.warning("storage: WAL checkpoint failed: \(error); retrying") }
                    failures += 1
                }
                try? await Task.sleep(for: .milliseconds(250))
            }
        }
        let watchdog = LoopService(description: "watchdog") {
            guard let interval = SystemdNotify.watchdogInterval else { return }
            var said = false
            while !Task.isCancelled {
                // Fed only while healthy, so systemd restarts a daemon that is stuck.
                let reasons = state.healthReasons()
                if reasons.isEmpty { SystemdNotify.send("WATCHDOG=1"); said = false } else if !said {
                    logger.error("health: unhealthy, the watchdog is no longer fed: \(reasons.joined(separator: "; "))")
                    said = true
                }
                try? await Task.sleep(for: .milliseconds(Int(interval * 1000)))
            }
        }
        let routes = HTTPRoutes(config: config, db: db, state: state, metrics: metrics, logger: logger)
        // Ready (READY=1) once the plain listener and, when configured, the HTTPS one serve.
        let tlsListen = config.http.tlsListen   // set exactly when consoleTLS is
        let readiness = Readiness(listeners: ["http.listen"] + (tlsListen == nil ? [] : ["http.tls_listen"])) {
            logger.info("medic-edge ready: site \(config.siteId), http://\(config.http.listen)")
            SystemdNotify.send("READY=1")
        }
        let app = Listener(service: Application(router: routes.router(),
                                                configuration: .init(address: .hostname(config.http.listen.host, port: config.http.listen.port), serverName: "medic-edge"),
                                                onServerRunning: { _ in readiness.up("http.listen") },
                                                logger: logger),
                           key: "http.listen", address: "\(config.http.listen)", readiness: readiness)
        // The console on the LAN: the same routes over HTTPS on http.tls_listen (plain HTTP
        // stays on the loopback listener above).
        var tlsApp: (any Service)?
        if let consoleTLS, let tlsListen {
            tlsApp = Listener(service: Application(router: routes.router(context: ConsoleTLSRequestContext.self),
                                                   server: try .tls(.http1(), tlsConfiguration: consoleTLS.tls),
                                                   configuration: .init(address: .hostname(tlsListen.host, port: tlsListen.port), serverName: "medic-edge"),
                                                   onServerRunning: { _ in
                                                       logger.info("console: https://\(tlsListen) (TLS 1.2+, certificate \(config.http.certFile ?? "-"))")
                                                       readiness.up("http.tls_listen")
                                                   },
                                                   logger: logger),
                              key: "http.tls_listen", address: "\(tlsListen)", readiness: readiness)
        }
        await budget.enforce()
        // Start order; shutdown runs in reverse: intake (MQTT) stops first, the uplink makes
        // its last attempt after, the database closes when all are done.
        var services: [ServiceGroupConfiguration.ServiceConfiguration] = [
            .init(service: UplinkService(uplink: uplink), successTerminationBehavior: .ignore),
            .init(service: LoopService(description: "roster") { await roster.run() }, successTerminationBehavior: .ignore),
            .init(service: LoopService(description: "noshow") { await noshow.run() }, successTerminationBehavior: .ignore),
            .init(service: housekeeping, successTerminationBehavior: .ignore),
            .init(service: checkpoints, successTerminationBehavior: .ignore),
            .init(service: watchdog, successTerminationBehavior: .ignore),
            .init(service: app),
        ]
        if let tlsApp { services.append(.init(service: tlsApp)) }
        services.append(.init(service: mqtt))
        let group = ServiceGroup(configuration: .init(
            services: services,
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger))
        try await group.run()
        SystemdNotify.send("STOPPING=1")
        logger.info("medic-edge stopped cleanly")
    }
}
