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
final class MQTTService: Service, Sendable {
    let config: EdgeConfig
    let policy: IngestPolicy
    let client: IngestLink
    let kiosk: IngestLink
    let ingest: IngestLoop
    let state: EdgeState
    let metrics: EdgeMetrics
    let logger: Logger
    private struct Links {
        var lastStatus = ""
        var lastStatusAt = Date.distantPast
        var mainUp = false, kioskUp = false
        /// Intake-bound pauses already counted in a log line.
        var stallsSeen = 0
    }
    private let links = Mutex(Links())
    private let rate: RateLimit

    var kioskTopics: [String] { policy.subscriptions(.kiosk, site: config.siteId) }
    var mainTopics: [String] { policy.subscriptions(.main, site: config.siteId) }

    init(config: EdgeConfig, pipeline: IngestPipeline, state: EdgeState, metrics: EdgeMetrics, logger: Logger) throws {
        self.config = config; self.state = state; self.metrics = metrics; self.logger = logger
        rate = RateLimit(clock: state.clock)
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
        client = try IngestLink(
            link: .main, policy: policy, site: config.siteId, clientId: m.clientId, username: m.username,
            password: m.password, will: will, maxPendingBytes: m.maxPendingBytes, alsoWake: wake,
            onLoopEnd: loopEnded("main"), logger: logger)
        kiosk = try IngestLink(
            link: .kiosk, policy: policy, site: config.siteId, clientId: m.clientId + "-kiosk",
            username: m.username, password: m.password, will: nil, maxPendingBytes: m.maxPendingBytes,
            alsoWake: wake, onLoopEnd: loopEnded("kiosk"), logger: logger)
        ingest = IngestLoop(
            policy: policy, main: client, kiosk: kiosk, wakeups: wakeups, pipeline: pipeline, state: state,
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
        guard links.withLock({ $0.mainUp }) else { return }
        let (key, text) = statusPayload()
        let due = links.withLock { l in
            let due = force || (key != l.lastStatus && Date().timeIntervalSince(l.lastStatusAt) >= 10)
            if due { l.lastStatus = key; l.lastStatusAt = Date() }
            return due
        }
        if due { try? client.publish(topic: DeviceTopic.edgeStatusTopic(site: config.siteId), text: text, qos: 1, retain: true) }
    }

    /// The intake bound holding the broker back is said in the log, at most once a minute
    /// (housekeeping asks every second).
    func noteStalls() {
        let i = client.intake, k = kiosk.intake
        let stalls = i.stalls + k.stalls
        let new = links.withLock { l -> Int in
            defer { l.stallsSeen = stalls }; return stalls - l.stallsSeen
        }
        guard new > 0, let t = rate.note("intake_full", every: 60, new) else { return }
        let limit = (i.limitBytes ?? 0) + (k.limitBytes ?? 0)
        logger.warning(
            """
            mqtt: intake full (mqtt.max_pending_bytes: \(limit >> 10) KiB received and not yet committed); reading from the broker paused until the \
            writer catches up (\(t.sum(0)) pauses since the last line, \((i.stalledNs + k.stalledNs) / 1_000_000) ms in all since start); the broker \
            keeps the rest
            """
        )
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
        if links.withLock({ $0.mainUp }) {
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
        let both = links.withLock { l in
            if link { l.kioskUp = true } else { l.mainUp = true }
            return l.mainUp && l.kioskUp
        }
        state.setMQTTConnected(both)
        logger.info("mqtt: \(name) to \(config.mqtt.host):\(config.mqtt.port) up, subscribed")
        if !link { publishStatus(force: true) }
    }
    private func linkDown(kiosk link: Bool, code: Int32) {
        links.withLock { l in if link { l.kioskUp = false } else { l.mainUp = false } }
        state.setMQTTConnected(false)
        if code != 0 { logger.warning("mqtt: \(link ? "kiosk connection" : "connection") lost (\(code)); reconnecting") }
    }
}
