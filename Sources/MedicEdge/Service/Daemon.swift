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
import Synchronization

/// A long-running loop as a swift-service-lifecycle `Service`: cancelled on graceful shutdown.
struct LoopService: Service, CustomStringConvertible {
    let description: String
    let body: @Sendable () async -> Void
    func run() async throws {
        await cancelWhenGracefulShutdown { await body() }
    }
}

/// The daemon is ready (systemd's READY=1) once every HTTP listener is serving.
final class Readiness: Sendable {
    private let waiting: Mutex<Set<String>>
    private let ready: @Sendable () -> Void
    init(listeners: [String], ready: @escaping @Sendable () -> Void) { waiting = Mutex(Set(listeners)); self.ready = ready }
    func up(_ key: String) {
        let (was, now) = waiting.withLock { w in
            let was = w.count
            w.remove(key)
            return (was, w.count)
        }
        if was > 0 && now == 0 { ready() }
    }
    func isUp(_ key: String) -> Bool { waiting.withLock { !$0.contains(key) } }
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

/// The uplink as a service: on shutdown, one last bounded upload attempt.
struct UplinkService: Service {
    let uplink: Uplink
    func run() async throws {
        await cancelWhenGracefulShutdown { await uplink.run() }
        await Task { await uplink.finalAttempt(deadline: 3) }.value
    }
}

struct DataDirInUse: Error, CustomStringConvertible { let description: String }

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
        // The data directory's lock, held until the process ends: `medic-edge restore`
        // refuses while it is held, and a second daemon on the same data cannot start.
        let dataLock: DataDirLock
        do { dataLock = try DataDirLock.acquire(dataDir: config.dataDir) } catch let e as DataDirLock.Failure {
            if case .held = e {
                throw DataDirInUse(
                    description: "data_dir \(config.dataDir) is in use: \(e) (another medic-edge on the same data, or a restore in progress)")
            }
            throw DataDirInUse(description: "data_dir \(config.dataDir): \(e)")
        }
        defer { withExtendedLifetime(dataLock) {} }
        let db = try AppDatabase.open(dataDir: config.dataDir, budgetBytes: config.storageMaxBytes, backgroundCheckpoints: true)
        let checkpointer = try Checkpointer(path: db.path ?? "")
        let state = EdgeState(cloudConfigured: config.cloud?.eventsURL != nil)
        let budget = StorageBudget(config: config, db: db, state: state, metrics: metrics, logger: logger)
        let pipeline = IngestPipeline(config: config, db: db, metrics: metrics, state: state, budget: budget, logger: logger)
        let mqtt = try MQTTService(config: config, pipeline: pipeline, state: state, metrics: metrics, logger: logger)
        let uplink = Uplink(config: config, db: db, http: CurlHTTPClient(label: "uplink"), metrics: metrics, state: state, logger: logger)
        let roster = RosterSync(config: config, db: db, http: CurlHTTPClient(label: "roster"), state: state, metrics: metrics, logger: logger)
        let clockWatch = ClockWatch()
        let coldChain = ColdChainWatch(config: config, db: db, anchors: state.coldAnchors, clock: state.clock, metrics: metrics, logger: logger)
        let noshow = NoShowScheduler(config: config, db: db, watch: clockWatch, clock: state.clock, metrics: metrics, logger: logger)

        /// The status figures, read once a second and kept in memory for the HTTP routes.
        @Sendable func refreshFigures(nowMs: Int64) {
            guard let f = try? StatusFigures.read(db) else { return }
            state.setFigures(f)
            let s = f.outbox
            metrics.outbox(OutboxStatsView(clinical: s.pendingClinical, telemetry: s.pendingTelemetry, oldestMs: s.oldestPendingMs), nowMs: nowMs)
        }
        refreshFigures(nowMs: state.clock.nowMs())
        let housekeeping = Housekeeping(
            jobs: [
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
                        let n = ConsoleTLS.expiryNotice(notValidAfter: end, nowSeconds: now / 1000, certFile: config.http.certFile ?? "-")
                    {
                        if n.isError { logger.error("\(n.text)") } else { logger.warning("\(n.text)") }
                    }
                },
                PeriodicJob("cold chain", every: .seconds(1)) { now in await coldChain.tick(nowMs: now) },
                PeriodicJob("cold chain daily summary", every: .seconds(10)) { now in await coldChain.dailySummaries(nowMs: now) },
                PeriodicJob("cold chain retention", every: .seconds(3600), needsSteadyClock: true) { now in
                    await coldChain.retention(nowMs: now)
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
                if reasons.isEmpty {
                    SystemdNotify.send("WATCHDOG=1"); said = false
                } else if !said {
                    logger.error("health: unhealthy, the watchdog is no longer fed: \(reasons.joined(separator: "; "))")
                    said = true
                }
                try? await Task.sleep(for: .milliseconds(Int(interval * 1000)))
            }
        }
        let routes = HTTPRoutes(config: config, db: db, state: state, metrics: metrics, logger: logger)
        // Ready (READY=1) once the plain listener and, when configured, the HTTPS one serve.
        let tlsListen = config.http.tlsListen  // set exactly when consoleTLS is
        let readiness = Readiness(listeners: ["http.listen"] + (tlsListen == nil ? [] : ["http.tls_listen"])) {
            logger.info("medic-edge ready: site \(config.siteId), http://\(config.http.listen)")
            SystemdNotify.send("READY=1")
        }
        let app = Listener(
            service: Application(
                router: routes.router(),
                configuration: .init(address: .hostname(config.http.listen.host, port: config.http.listen.port), serverName: "medic-edge"),
                onServerRunning: { _ in readiness.up("http.listen") },
                logger: logger),
            key: "http.listen", address: "\(config.http.listen)", readiness: readiness)
        // The console on the LAN: the same routes over HTTPS on http.tls_listen (plain HTTP
        // stays on the loopback listener above).
        var tlsApp: (any Service)?
        if let consoleTLS, let tlsListen {
            tlsApp = Listener(
                service: Application(
                    router: routes.router(context: ConsoleTLSRequestContext.self),
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
        let group = ServiceGroup(
            configuration: .init(
                services: services,
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger))
        try await group.run()
        SystemdNotify.send("STOPPING=1")
        logger.info("medic-edge stopped cleanly")
    }
}
