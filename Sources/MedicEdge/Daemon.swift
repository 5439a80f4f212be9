import EdgeCore
import EdgeHTTPClient
import EdgeMQTT
import EdgeStore
import Foundation
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
        await cancelWhenGracefulShutdown { await body() }
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

/// Owns the MQTT links: subscribes on (re)connect, runs the ingest loop (`IngestLoop`) on
/// them, publishes the appliance status. Stops intake first on shutdown.
///
/// Two connections to the broker, drained by one consumer (`IngestPolicy.Link`):
/// - the main one (`client_id`) for every device topic but kiosk scans; acks go out on it;
/// - the kiosk one (`<client_id>-kiosk`, a persistent session of its own) for kiosk scans
///   only; their results go out on it. A device flood queues at the broker behind the main
///   connection, never in front of a scan.
/// Each has an intake bound (CONTRACT §5: `mqtt.max_pending_bytes` in all, split by
/// `IngestPolicy.intakeShare`): past it, its network thread stops reading until the writer commits.
final class MQTTService: Service, @unchecked Sendable {
    let config: EdgeConfig
    let policy: IngestPolicy
    let client: IngestLink
    let kiosk: IngestLink
    let ingest: IngestLoop
    let state: EdgeState
    let metrics: EdgeMetrics
    let logger: Logger
    private let lock = NSLock()
    private var lastStatus = ""
    private var lastStatusAt = Date.distantPast
    private var mainUp = false, kioskUp = false
    /// Intake-bound pauses already counted in a log line.
    private var stallsSeen = 0
    private let rate = RateLimit()

    var kioskTopics: [String] { policy.subscriptions(.kiosk, site: config.siteId) }
    var mainTopics: [String] { policy.subscriptions(.main, site: config.siteId) }

    init(config: EdgeConfig, pipeline: IngestPipeline, state: EdgeState, metrics: EdgeMetrics, logger: Logger) throws {
        self.config = config; self.state = state; self.metrics = metrics; self.logger = logger
        let policy = pipeline.policy
        self.policy = policy
        let (wakeups, wake) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        let will = MQTTWill(topic: DeviceTopic.edgeStatusTopic(site: config.siteId), payload: Array(#"{"state":"offline"}"#.utf8))
        // libmosquitto's loop ended for good: no reconnect will come. /healthz says so and the
        // watchdog is no longer fed, so systemd restarts the daemon.
        func loopEnded(_ link: String) -> @Sendable (Int32) -> Void {
            { [state, logger] rc in
                let why = "\(link) connection: \(MQTTClient.describe(error: rc)) (libmosquitto code \(rc))"
                logger.critical("mqtt: the client loop ended for good (\(why)); no reconnect will come, the service must be restarted")
                state.mqttLoopEnded(why)
                wake.yield()
            }
        }
        let m = config.mqtt
        client = try IngestLink(link: .main, policy: policy, site: config.siteId, clientId: m.clientId, username: m.username,
                                password: m.password, will: will, maxPendingBytes: m.maxPendingBytes, alsoWake: wake,
                                onLoopEnd: loopEnded("main"), logger: logger)
        kiosk = try IngestLink(link: .kiosk, policy: policy, site: config.siteId, clientId: m.clientId + "-kiosk",
                               username: m.username, password: m.password, will: nil, maxPendingBytes: m.maxPendingBytes,
                               alsoWake: wake, onLoopEnd: loopEnded("kiosk"), logger: logger)
        ingest = IngestLoop(policy: policy, main: client, kiosk: kiosk, wakeups: wakeups, pipeline: pipeline, state: state,
                            metrics: metrics, logger: logger)
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
        lock.lock(); let up = mainUp; lock.unlock()
        guard up else { return }
        let (key, text) = statusPayload()
        lock.lock()
        let due = force || (key != lastStatus && Date().timeIntervalSince(lastStatusAt) >= 10)
        if due { lastStatus = key; lastStatusAt = Date() }
        lock.unlock()
        if due { try? client.publish(topic: DeviceTopic.edgeStatusTopic(site: config.siteId), text: text, qos: 1, retain: true) }
    }

    /// The intake bound holding the broker back is said in the log, at most once a minute
    /// (housekeeping asks every second).
    func noteStalls() {
        let i = client.intake, k = kiosk.intake
        let stalls = i.stalls + k.stalls
        let new = lock.withLock { () -> Int in defer { stallsSeen = stalls }; return stalls - stallsSeen }
        guard new > 0, let t = rate.note("intake_full", every: 60, new) else { return }
        let limit = (i.limitBytes ?? 0) + (k.limitBytes ?? 0)
        logger.warning("mqtt: intake full (mqtt.max_pending_bytes: \(limit >> 10) KiB received and not yet committed); reading from the broker paused until the writer catches up (\(t.sum(0)) pauses since the last line, \((i.stalledNs + k.stalledNs) / 1_000_000) ms in all since start); the broker keeps the rest")
    }

    func run() async throws {
        try client.connect(host: config.mqtt.host, port: config.mqtt.port, keepalive: config.mqtt.keepaliveSeconds)
        try kiosk.connect(host: config.mqtt.host, port: config.mqtt.port, keepalive: config.mqtt.keepaliveSeconds)
        await cancelWhenGracefulShutdown {
            await self.ingest.run { link, up, code in
                if up { self.linkUp(kiosk: link == .kiosk, code: code) } else { self.linkDown(kiosk: link == .kiosk, code: code) }
            }
        }
        // Intake stopped: say so, then disconnect cleanly (which suppresses the will).
        if lock.withLock({ mainUp }) {
            try? client.publish(topic: DeviceTopic.edgeStatusTopic(site: config.siteId), text: #"{"state":"offline"}"#, qos: 1, retain: true)
        }
        client.requestDisconnect(); kiosk.requestDisconnect()
        // While the broker is away a loop may be in its reconnect pause (up to 10 s): the
        // daemon does not wait that long to stop.
        client.waitStopped(timeout: 3); kiosk.waitStopped(timeout: 1)
        state.setMQTTConnected(false)
        logger.info("mqtt: intake stopped, offline status published")
    }

    private func linkUp(kiosk link: Bool, code: Int32) {
        let name = link ? "kiosk connection (\(config.mqtt.clientId)-kiosk)" : "connection"
        guard code == 0 else {
            logger.error("mqtt: the broker refused the \(name): \(MQTTClient.describe(code: code)); check mqtt.username and mqtt.password")
            return
        }
        do {
            if link {
                try kiosk.subscribe(kioskTopics, qos: 1)
            } else {
                try client.subscribe(mainTopics, qos: 1)
                // Kiosk scans have their own connection; a session made by an older version
                // still holds their subscription here.
                try client.unsubscribe(kioskTopics)
            }
        } catch {
            logger.error("mqtt: subscribe failed on the \(name): \(error)")
        }
        lock.lock()
        if link { kioskUp = true } else { mainUp = true }
        let both = mainUp && kioskUp
        lock.unlock()
        state.setMQTTConnected(both)
        logger.info("mqtt: \(name) to \(config.mqtt.host):\(config.mqtt.port) up, subscribed")
        if !link { publishStatus(force: true) }
    }
    private func linkDown(kiosk link: Bool, code: Int32) {
        lock.lock()
        if link { kioskUp = false } else { mainUp = false }
        lock.unlock()
        state.setMQTTConnected(false)
        if code != 0 { logger.warning("mqtt: \(link ? "kiosk connection" : "connection") lost (\(code)); reconnecting") }
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
        let roster = RosterSync(config: config, db: db, http: CurlHTTPClient(label: "roster"), state: state, metrics: metrics, logger: logger)
        let clockWatch = ClockWatch()
        let noshow = NoShowScheduler(config: config, db: db, clock: clockWatch, metrics: metrics, logger: logger)

        /// The status figures, read once a second and kept in memory for the HTTP routes.
        @Sendable func refreshFigures(nowMs: Int64) {
            guard let f = try? StatusFigures.read(db) else { return }
            state.setFigures(f)
            let s = f.outbox
            metrics.outbox(OutboxStatsView(clinical: s.pendingClinical, telemetry: s.pendingTelemetry, oldestMs: s.oldestPendingMs), nowMs: nowMs)
        }
        refreshFigures(nowMs: Time.nowMs())
        let housekeeping = Housekeeping(jobs: [
            PeriodicJob("status figures", every: .seconds(1)) { now in
                refreshFigures(nowMs: now)
                metrics.cloudUp(state.cloudState(nowMs: now) == .online)
            },
            PeriodicJob("disk budget", every: .seconds(1)) { _ in await budget.enforce() },
            PeriodicJob("bounded tables purge", every: .seconds(10), needsSteadyClock: true) { _ in await budget.purgeBounded() },
            PeriodicJob("old messages purge", every: .seconds(3600), needsSteadyClock: true) { now in
                _ = try? await db.write { try $0.purgeOldMessages(nowMs: now) }
            },
            // The console certificate's end, said at start and then once a day.
            PeriodicJob("console certificate", every: .seconds(86_400)) { now in
                if let end = consoleTLS?.notValidAfter,
                   let n = ConsoleTLS.expiryNotice(notValidAfter: end, nowSeconds: now / 1000, certFile: config.http.certFile ?? "-") {
                    if n.isError { logger.error("\(n.text)") } else { logger.warning("\(n.text)") }
                }
            },
            PeriodicJob("mqtt status", every: .seconds(1)) { _ in
                mqtt.publishStatus(force: false)
                mqtt.noteStalls()
            },
        ], clockWatch: clockWatch, state: state, metrics: metrics, logger: logger)
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
            .init(service: LoopService(description: "noshow") { await noshow.run(state: state) }, successTerminationBehavior: .ignore),
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
