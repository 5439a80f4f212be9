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

/// Owns the MQTT links: subscribes on (re)connect, feeds the ingest pipeline, publishes
/// replies after each commit and the appliance status. Stops intake first on shutdown.
///
/// Two connections to the broker, drained by one consumer:
/// - the main one (`client_id`) for every device topic but kiosk scans; acks go out on it;
/// - the kiosk one (`<client_id>-kiosk`, a persistent session of its own) for kiosk scans
///   only; their results go out on it. A device flood queues at the broker behind the main
///   connection, never in front of a scan.
/// Each has an intake bound (CONTRACT §5: `mqtt.max_pending_bytes` in all, the kiosk link's
/// share `kioskShare`): past it, its network thread stops reading until the writer commits.
final class MQTTService: Service, @unchecked Sendable {
    let config: EdgeConfig
    let client: MQTTClient
    let kiosk: MQTTClient
    let pipeline: IngestPipeline
    let state: EdgeState
    let metrics: EdgeMetrics
    let logger: Logger
    /// Wakes the consumer when either connection has events.
    private let wakeups: AsyncStream<Void>
    private let lock = NSLock()
    private var lastStatus = ""
    private var lastStatusAt = Date.distantPast
    private var mainUp = false, kioskUp = false
    /// Intake-bound pauses already counted in a log line.
    private var stallsSeen = 0
    private let rate = RateLimit()

    /// The kiosk link's part of `mqtt.max_pending_bytes` (scans are small; a looping kiosk
    /// still cannot take more).
    static func kioskShare(_ maxPendingBytes: Int) -> Int { Swift.min(1 << 20, maxPendingBytes / 8) }
    var kioskTopics: [String] { DeviceTopic.subscriptions(site: config.siteId).filter { $0.hasPrefix("clinic/\(config.siteId)/kiosk/") } }
    var mainTopics: [String] { DeviceTopic.subscriptions(site: config.siteId).filter { !$0.hasPrefix("clinic/\(config.siteId)/kiosk/") } }

    init(config: EdgeConfig, pipeline: IngestPipeline, state: EdgeState, metrics: EdgeMetrics, logger: Logger) throws {
        self.config = config; self.pipeline = pipeline; self.state = state; self.metrics = metrics; self.logger = logger
        let (wakeups, wake) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        self.wakeups = wakeups
        let will = MQTTWill(topic: DeviceTopic.edgeStatusTopic(site: config.siteId), payload: Array(#"{"state":"offline"}"#.utf8))
        // Decoded on libmosquitto's network threads, alongside the writer.
        let decode: @Sendable (MQTTMessage) -> (any Sendable)? = { [site = config.siteId] m in
            DeviceMessage.decode(topic: m.topic, payload: m.payload, site: site)
        }
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
        let share = Self.kioskShare(config.mqtt.maxPendingBytes)
        // Fixed client ids with persistent sessions: the broker keeps QoS 1 messages for the
        // daemon while it restarts, and while the intake bound holds it back.
        client = try MQTTClient(clientId: config.mqtt.clientId, cleanSession: false, username: config.mqtt.username,
                                password: config.mqtt.password, will: will, prepare: decode,
                                // A kiosk scan still subscribed here by an older session: urgent too.
                                urgent: { m in if case .kiosk? = m.prepared as? DeviceMessage { true } else { false } },
                                maxPendingBytes: config.mqtt.maxPendingBytes - share, alsoWake: wake,
                                onLoopEnd: loopEnded("main"), logger: logger)
        kiosk = try MQTTClient(clientId: config.mqtt.clientId + "-kiosk", cleanSession: false, username: config.mqtt.username,
                               password: config.mqtt.password, prepare: decode, urgent: { _ in true },
                               maxPendingBytes: share, alsoWake: wake, onLoopEnd: loopEnded("kiosk"), logger: logger)
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
            // Messages of a batch that stopped early for a scan: they go next, behind the scans.
            var carry: [MQTTMessage] = []
            while !Task.isCancelled {
                let room = Swift.max(1, IngestPipeline.maxBatch - carry.count)
                let events = carry.isEmpty ? await self.nextEvents(max: room) : self.drainBoth(max: room)
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
                let messages = self.handle(self.drainBoth(max: IngestPipeline.maxBatch), carry: carry)
                if messages.isEmpty { break }
                let done = await Task { await self.process(messages) }.value
                carry = Array(messages[done...])
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

    /// Both connections' events: the kiosk link's first.
    private struct Events { var kiosk: [MQTTEvent] = [], main: [MQTTEvent] = []; var isEmpty: Bool { kiosk.isEmpty && main.isEmpty } }
    private func drainBoth(max: Int) -> Events {
        let k = kiosk.drain(max: max)
        return Events(kiosk: k, main: client.drain(max: Swift.max(1, max - k.count)))
    }
    /// Waits until either connection has events (empty when shutting down).
    private func nextEvents(max: Int) async -> Events {
        while !Task.isCancelled {
            let e = drainBoth(max: max)
            if !e.isEmpty { return e }
            var it = wakeups.makeAsyncIterator()
            if await it.next() == nil { break }
        }
        return drainBoth(max: max)
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
            let w = client.waiting(), k = kiosk.waiting()
            if w.urgent + k.urgent + k.others > 0 || messages.count + w.others >= Self.lingerBelow { break }
        }
        // Scans that came meanwhile go first, then the messages in hand, then the newer ones.
        return handle(drainBoth(max: IngestPipeline.maxBatch - messages.count), carry: messages)
    }

    /// Connection events are handled here; messages come back in processing order: urgent
    /// ones (kiosk scans, drained first), then the carried-over rest of the last batch, then
    /// the others.
    private func handle(_ events: Events, carry: [MQTTMessage]) -> [MQTTMessage] {
        var urgent: [MQTTMessage] = [], others: [MQTTMessage] = []
        for (link, list) in [(true, events.kiosk), (false, events.main)] {
            for e in list {
                switch e {
                case .connected(let code): linkUp(kiosk: link, code: code)
                case .disconnected(let code): linkDown(kiosk: link, code: code)
                case .message(let m):
                    if m.urgent { urgent.append(m) } else { others.append(m) }
                }
            }
        }
        if carry.isEmpty && urgent.isEmpty { return others }
        return urgent + carry + others
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

    /// One batch through the pipeline; replies published after its commit: kiosk results on
    /// the kiosk link (QoS 1), acks on the main one (QoS 0: a lost ack only means a resend,
    /// CONTRACT §1). Returns how many messages it took; those and the scans it took in while
    /// it ran give their room back to the intake bound.
    private func process(_ messages: [MQTTMessage]) async -> Int {
        let client = self.client, kiosk = self.kiosk, metrics = self.metrics, logger = self.logger
        let jumpers = Jumpers()
        let done = await pipeline.process(messages, takeUrgent: {
            let taken = kiosk.takeUrgent() + client.takeUrgent()
            jumpers.add(taken)
            return taken
        }) { reply in
            do {
                if reply.kioskResult {
                    try kiosk.publish(topic: reply.topic, text: reply.payload, qos: 1, retain: false)
                } else {
                    try client.publish(topic: reply.topic, text: reply.payload, qos: 0, retain: false)
                }
            } catch {
                logger.warning("mqtt: reply not published: \(error)")
            }
            if let (t0, outcome) = reply.checkin {
                metrics.checkin(outcome, seconds: Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
            }
        }
        MQTTClient.release(messages[..<done])
        MQTTClient.release(jumpers.all)
        return done
    }

    /// The scans a batch took in while it ran.
    private final class Jumpers: @unchecked Sendable {
        private let lock = NSLock()
        private var list: [MQTTMessage] = []
        func add(_ m: [MQTTMessage]) { guard !m.isEmpty else { return }; lock.lock(); list += m; lock.unlock() }
        var all: [MQTTMessage] { lock.lock(); defer { lock.unlock() }; return list }
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
        let noshow = NoShowScheduler(config: config, db: db, watch: clockWatch, clock: state.clock, metrics: metrics, logger: logger)

        /// The status figures, read once a second and kept in memory for the HTTP routes.
        @Sendable func refreshFigures(nowMs: Int64) {
            guard let f = try? StatusFigures.read(db) else { return }
            state.setFigures(f)
            let s = f.outbox
            metrics.outbox(OutboxStatsView(clinical: s.pendingClinical, telemetry: s.pendingTelemetry, oldestMs: s.oldestPendingMs), nowMs: nowMs)
        }
        refreshFigures(nowMs: Time.nowMs())
        let housekeeping = LoopService(description: "housekeeping") {
            var tick = 0
            while !Task.isCancelled {
                state.busy("housekeeping")
                let now = Time.nowMs(), mono = DispatchTime.now().uptimeNanoseconds
                if let jump = clockWatch.observe(wallMs: now, monoNs: mono) { ClockJumpReport.say(jump, metrics: metrics, logger: logger) }
                // Purges judge age by the wall clock: not within the hour after a jump.
                let clockSteady = clockWatch.sinceLastJumpNs(monoNs: mono).map { $0 > 3_600_000_000_000 } ?? true
                refreshFigures(nowMs: now)
                metrics.cloudUp(state.cloudState(nowMs: now) == .online)
                await budget.enforce()
                if tick % 10 == 0 && clockSteady { await budget.purgeBounded() }
                if tick % 3600 == 0 && clockSteady { _ = try? await db.write { try $0.purgeOldMessages(nowMs: now) } }
                // The console certificate's end, said at start and then once a day.
                if tick % 86_400 == 0, let end = consoleTLS?.notValidAfter,
                   let n = ConsoleTLS.expiryNotice(notValidAfter: end, nowSeconds: now / 1000, certFile: config.http.certFile ?? "-") {
                    if n.isError { logger.error("\(n.text)") } else { logger.warning("\(n.text)") }
                }
                mqtt.publishStatus(force: false)
                mqtt.noteStalls()
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
