import EdgeCore
import EdgeMQTT
import Foundation
import Logging
import Synchronization

// MARK: - One device's MQTT link

/// One device's MQTT connection: its will and retained status, the replies it waits for
/// (acks by `msg_id`, kiosk results by `scan_id`), and the resend of what is not answered.
final class SimLink: Sendable {
    struct Pending {
        var topic: String
        var payload: String
        var sends = 0
        var nextAt: Double
        var giveUpAt: Double?
        var firstSentAt: Double?
    }

    let id: String
    let kind: SimDeviceType
    let contractType: String
    let room: String?
    let fw: String
    let settings: SimSettings
    let emit: @Sendable (SimEvent) -> Void
    let replyTopics: [String]
    let resendBase: Double
    let resendCap: Double

    typealias Waiter = CheckedContinuation<(JSON, Int, Double)?, Never>
    private struct State {
        var client: MQTTClient?
        var connected = false
        var pending: [String: Pending] = [:]
        var order: [String] = []
        var waiters: [String: Waiter] = [:]
        var abandoned: Set<String> = []
        /// Flow control: callers waiting until at most `atMost` messages are unanswered.
        var roomWaiters: [(id: Int, atMost: Int, cont: CheckedContinuation<Bool, Never>)] = []
        var nextWaiterId = 0
        var pump: Task<Void, Never>?
        var resender: Task<Void, Never>?
        var stats: SimDeviceStats
        var stopped = false
        /// Stopped for good (`stop(final: true)`): no reconnect.
        var closed = false

        mutating func compactOrder() {
            if order.count > 64 && order.count > pending.count * 2 { order = order.filter { pending[$0] != nil } }
        }
    }
    private let state: Mutex<State>

    init(
        id: String, kind: SimDeviceType, contractType: String, room: String?, fw: String, settings: SimSettings,
        extraReplyTopics: [String] = [], resendProtocolSeconds: Double, resendCapProtocolSeconds: Double,
        emit: @escaping @Sendable (SimEvent) -> Void
    ) {
        self.id = id; self.kind = kind; self.contractType = contractType; self.room = room; self.fw = fw
        self.settings = settings; self.emit = emit
        let rate = settings.rate(for: kind)
        resendBase = max(settings.minResendSeconds, resendProtocolSeconds / rate)
        resendCap = max(resendBase, resendCapProtocolSeconds / rate)
        replyTopics = ["clinic/\(settings.site)/device/\(id)/ack"] + extraReplyTopics
        state = Mutex(State(stats: SimDeviceStats(device: id, type: kind)))
    }

    var site: String { settings.site }
    var statusTopic: String { "clinic/\(site)/device/\(id)/status" }
    var ackTopic: String { "clinic/\(site)/device/\(id)/ack" }
    var isConnected: Bool { state.withLock { $0.connected } }
    func snapshot() -> SimDeviceStats {
        state.withLock {
            var s = $0.stats; s.pending = $0.pending.count; return s
        }
    }

    func statusPayload(online: Bool) -> String {
        JSONText.object { j in
            j.add("state", online ? "online" : "offline"); j.add("type", contractType)
            if let room { j.add("room_id", room) }
            if online { j.add("fw", fw) }
        }
    }

    /// Connects (a new client each time, so a device can "reboot"); reconnects by itself.
    func connect() throws {
        let will = MQTTWill(topic: statusTopic, payload: Array(statusPayload(online: false).utf8), qos: 1, retain: true)
        var logger = Logger(label: "sim.\(id)")
        logger.logLevel = .critical
        let c = try MQTTClient(
            clientId: settings.clientIdPrefix + id, cleanSession: settings.cleanSession,
            username: settings.username, password: settings.password, will: will, logger: logger)
        let isClosed = state.withLock { s in
            if s.closed { return true }
            s.client = c; s.stopped = false
            return false
        }
        if isClosed { return }
        try c.connect(host: settings.host, port: settings.port, keepalive: settings.keepalive)
        let pump = Task { [weak self] in
            while !Task.isCancelled {
                let events = await c.nextBatch(max: 256)
                if events.isEmpty { return }
                guard let self else { return }
                for e in events { self.handle(e, client: c) }
            }
        }
        state.withLock { s in
            s.pump = pump
            if s.resender == nil {
                s.resender = Task { [weak self] in
                    while !Task.isCancelled {
                        guard let self else { return }
                        self.flushDue()
                        let tick = max(0.02, min(0.25, self.resendBase / 5))
                        try? await Task.sleep(for: .milliseconds(Int(tick * 1000)))
                    }
                }
            }
        }
    }

    private func handle(_ e: MQTTEvent, client c: MQTTClient) {
        switch e {
        case .connected(let code):
            guard code == 0 else {
                emit(.refused(device: id, reason: MQTTClient.describe(code: code)))
                return
            }
            state.withLock { s in
                s.connected = true
                s.stats.connects += 1
                // Resend the whole backlog at once after a (re)connect.
                let now = uptime()
                for k in s.pending.keys { s.pending[k]!.nextAt = min(s.pending[k]!.nextAt, now) }
            }
            try? c.subscribe(replyTopics, qos: 1)
            try? c.publish(topic: statusTopic, text: statusPayload(online: true), qos: 1, retain: true)
            emit(.online(device: id))
            flushDue()
        case .disconnected(let code):
            let wasStopping = state.withLock { s in
                let w = s.stopped; s.connected = false; return w
            }
            if code != 0 && !wasStopping { emit(.connectionLost(device: id, code: code)) }
        case .message(let m):
            guard let json = try? JSON.parse(m.payload) else { return }
            if m.topic == "clinic/\(site)/edge/status" { emit(.applianceStatus(json)); return }
            guard let key = json["msg_id"]?.stringValue ?? json["scan_id"]?.stringValue else { return }
            resolve(key, json, isAck: m.topic == ackTopic)
        }
    }

    private func resolve(_ key: String, _ json: JSON, isAck: Bool) {
        let found = state.withLock { s -> (Pending, Waiter?, String?)? in
            guard let p = s.pending.removeValue(forKey: key) else { return nil }
            let waiter = s.waiters.removeValue(forKey: key)
            let error = json["error"]?.stringValue
            if error != nil { s.stats.ackErrors += 1 } else { s.stats.acked += 1 }
            if !isAck, let o = json["outcome"]?.stringValue { s.stats.results[o, default: 0] += 1 }
            s.compactOrder()
            return (p, waiter, error)
        }
        guard let (p, waiter, error) = found else { return }  // a late duplicate ack
        wakeRoomWaiters()
        let ms = p.firstSentAt.map { (uptime() - $0) * 1000 } ?? 0
        if isAck { emit(.acked(device: id, msgId: key, error: error, sends: p.sends)) }
        waiter?.resume(returning: (json, p.sends, ms))
    }

    /// Publishes what is due: new messages, and unanswered ones whose resend timer ran out.
    func flushDue() {
        let now = uptime()
        let (c, due, gaveUp) = state.withLock { s -> (MQTTClient?, [(String, String, String, Int)], [(String, Waiter?)]) in
            var due: [(String, String, String, Int)] = []
            var gaveUp: [(String, Waiter?)] = []
            for k in s.order {
                guard var p = s.pending[k] else { continue }
                if let g = p.giveUpAt, now >= g {
                    s.pending.removeValue(forKey: k)
                    gaveUp.append((k, s.waiters.removeValue(forKey: k)))
                    continue
                }
                guard s.connected, p.nextAt <= now else { continue }
                p.sends += 1
                if p.firstSentAt == nil { p.firstSentAt = now }
                p.nextAt = now + min(resendCap, resendBase * pow(2, Double(p.sends - 1)))
                s.pending[k] = p
                due.append((k, p.topic, p.payload, p.sends))
                s.stats.published += 1
                if p.sends > 1 { s.stats.resent += 1 }
            }
            if !gaveUp.isEmpty { s.compactOrder() }
            return (s.client, due, gaveUp)
        }
        for (k, w) in gaveUp {
            if kind == .kiosk { emit(.kioskGaveUp(device: id, scanId: k)) }
            w?.resume(returning: nil)
        }
        if !gaveUp.isEmpty { wakeRoomWaiters() }
        guard let c else { return }
        for (k, topic, payload, sends) in due {
            try? c.publish(topic: topic, text: payload, qos: 1)
            if sends > 1 { emit(.resent(device: id, key: k, sends: sends)) }
        }
    }

    /// Publishes without waiting for anything (heartbeats); skipped while disconnected.
    func publish(_ topic: String, _ payload: String) {
        let client = state.withLock { s -> MQTTClient? in
            guard s.connected, let c = s.client else { return nil }
            s.stats.published += 1
            return c
        }
        guard let c = client else { return }
        try? c.publish(topic: topic, text: payload, qos: 1)
    }

    /// Keeps `payload` and resends it until a reply carries `key` (fire and forget).
    func sendTracked(_ topic: String, _ payload: String, key: String) {
        // The first send goes out at once (no scan of the backlog: a logger flushing thousands
        // of readings calls this for each); resends are the resender's.
        let client = state.withLock { s -> MQTTClient? in
            let now = uptime()
            var p = Pending(topic: topic, payload: payload, nextAt: now)
            var client: MQTTClient?
            if s.connected, let c = s.client {
                p.sends = 1; p.firstSentAt = now; p.nextAt = now + resendBase
                s.stats.published += 1
                client = c
            }
            s.pending[key] = p
            s.order.append(key)
            return client
        }
        try? client?.publish(topic: topic, text: payload, qos: 1)
    }

    /// Sends and waits for the reply carrying `key`: (reply, sends, ms), or nil when given up,
    /// cancelled or stopped.
    func request(_ topic: String, _ payload: String, key: String, giveUpAfter: Double?) async -> (JSON, Int, Double)? {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (cont: Waiter) in
                let refused = state.withLock { s in
                    if s.abandoned.remove(key) != nil || s.stopped { return true }
                    let now = uptime()
                    s.pending[key] = Pending(topic: topic, payload: payload, nextAt: now, giveUpAt: giveUpAfter.map { now + $0 })
                    s.order.append(key)
                    s.waiters[key] = cont
                    return false
                }
                if refused { cont.resume(returning: nil); return }
                flushDue()
            }
        } onCancel: {
            self.abandon(key)
        }
    }

    private func abandon(_ key: String) {
        let w = state.withLock { s in
            let w = s.waiters.removeValue(forKey: key)
            if w == nil { s.abandoned.insert(key) } else { s.pending.removeValue(forKey: key) }
            return w
        }
        w?.resume(returning: nil)
    }

    func sends(of key: String) -> Int? { state.withLock { $0.pending[key]?.sends } }

    /// Flow control for a backlog: returns once at most `atMost` messages wait for their reply
    /// (true), or false when the link is stopped for good or the task is cancelled.
    func waitPending(atMost: Int) async -> Bool {
        let id = state.withLock { s in
            s.nextWaiterId += 1; return s.nextWaiterId
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (cont: CheckedContinuation<Bool, Never>) in
                let answer = state.withLock { s -> Bool? in
                    if s.closed || Task.isCancelled { return false }
                    if s.pending.count <= atMost { return true }
                    s.roomWaiters.append((id, atMost, cont))
                    return nil
                }
                if let answer { cont.resume(returning: answer) }
            }
        } onCancel: {
            let w = self.state.withLock { s -> CheckedContinuation<Bool, Never>? in
                guard let i = s.roomWaiters.firstIndex(where: { $0.id == id }) else { return nil }
                return s.roomWaiters.remove(at: i).cont
            }
            w?.resume(returning: false)
        }
    }

    private func wakeRoomWaiters() {
        let ready = state.withLock { s -> [CheckedContinuation<Bool, Never>] in
            guard !s.roomWaiters.isEmpty else { return [] }
            let n = s.pending.count
            let (go, stay) = (s.roomWaiters.filter { n <= $0.atMost }, s.roomWaiters.filter { n > $0.atMost })
            s.roomWaiters = stay
            return go.map(\.cont)
        }
        for c in ready { c.resume(returning: true) }
    }

    /// A clean stop: the offline status (retained) is published explicitly, then a clean
    /// disconnect (which suppresses the will). Waiters get nil. Unacked messages stay pending
    /// (a later `connect()` resends them) unless `final`.
    func stop(final: Bool) async {
        let (c, wasConnected, ws) = state.withLock { s -> (MQTTClient?, Bool, [Waiter]) in
            s.stopped = true
            let c = s.client
            s.client = nil
            var ws: [Waiter] = []
            if final {
                s.closed = true
                ws = Array(s.waiters.values); s.waiters = [:]
                s.resender?.cancel(); s.resender = nil
            }
            return (c, s.connected, ws)
        }
        for w in ws { w.resume(returning: nil) }
        if final {
            let rs = state.withLock { s in
                defer { s.roomWaiters = [] }; return s.roomWaiters.map(\.cont)
            }
            for r in rs { r.resume(returning: false) }
        }
        if let c {
            if wasConnected {
                try? c.publish(topic: statusTopic, text: statusPayload(online: false), qos: 1, retain: true)
                try? await Task.sleep(for: .milliseconds(50))
            }
            c.disconnect()
        }
        let pump = state.withLock { s in
            defer { s.pump = nil }; return s.pump
        }
        pump?.cancel()
        state.withLock { $0.connected = false }
        emit(.stopped(device: id))
    }
}

// MARK: - Devices

protocol SimRunnable: AnyObject, Sendable {
    var link: SimLink { get }
    /// The device's behaviour; runs until cancelled.
    func behave() async
}
