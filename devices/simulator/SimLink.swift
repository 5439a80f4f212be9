import EdgeCore
import EdgeMQTT
import Foundation
import Logging

// MARK: - One device's MQTT link

/// One device's MQTT connection: its will and retained status, the replies it waits for
/// (acks by `msg_id`, kiosk results by `scan_id`), and the resend of what is not answered.
final class SimLink: @unchecked Sendable {
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

    private let lock = NSLock()
    private var client: MQTTClient?
    private var connected = false
    private var pending: [String: Pending] = [:]
    private var order: [String] = []
    private var waiters: [String: CheckedContinuation<(JSON, Int, Double)?, Never>] = [:]
    private var abandoned: Set<String> = []
    private var pump: Task<Void, Never>?
    private var resender: Task<Void, Never>?
    private(set) var stats: SimDeviceStats
    private var stopped = false
    /// Stopped for good (`stop(final: true)`): no reconnect.
    private var closed = false

    init(id: String, kind: SimDeviceType, contractType: String, room: String?, fw: String, settings: SimSettings,
         extraReplyTopics: [String] = [], resendProtocolSeconds: Double, resendCapProtocolSeconds: Double,
         emit: @escaping @Sendable (SimEvent) -> Void) {
        self.id = id; self.kind = kind; self.contractType = contractType; self.room = room; self.fw = fw
        self.settings = settings; self.emit = emit
        let rate = settings.rate(for: kind)
        resendBase = max(settings.minResendSeconds, resendProtocolSeconds / rate)
        resendCap = max(resendBase, resendCapProtocolSeconds / rate)
        replyTopics = ["clinic/\(settings.site)/device/\(id)/ack"] + extraReplyTopics
        stats = SimDeviceStats(device: id, type: kind)
    }

    var site: String { settings.site }
    var statusTopic: String { "clinic/\(site)/device/\(id)/status" }
    var ackTopic: String { "clinic/\(site)/device/\(id)/ack" }
    var isConnected: Bool { lock.lock(); defer { lock.unlock() }; return connected }
    func snapshot() -> SimDeviceStats { lock.lock(); defer { lock.unlock() }; var s = stats; s.pending = pending.count; return s }

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
        let c = try MQTTClient(clientId: settings.clientIdPrefix + id, cleanSession: settings.cleanSession,
                               username: settings.username, password: settings.password, will: will, logger: logger)
        lock.lock()
        if closed { lock.unlock(); return }
        client = c; stopped = false
        lock.unlock()
        try c.connect(host: settings.host, port: settings.port, keepalive: settings.keepalive)
        pump = Task { [weak self] in
            while !Task.isCancelled {
                let events = await c.nextBatch(max: 256)
                if events.isEmpty { return }
                guard let self else { return }
                for e in events { self.handle(e, client: c) }
            }
        }
        if resender == nil {
            resender = Task { [weak self] in
                while !Task.isCancelled {
                    guard let self else { return }
                    self.flushDue()
                    let tick = max(0.02, min(0.25, self.resendBase / 5))
                    try? await Task.sleep(for: .milliseconds(Int(tick * 1000)))
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
            lock.lock()
            connected = true
            stats.connects += 1
            // Resend the whole backlog at once after a (re)connect.
            let now = uptime()
            for k in pending.keys { pending[k]!.nextAt = min(pending[k]!.nextAt, now) }
            lock.unlock()
            try? c.subscribe(replyTopics, qos: 1)
            try? c.publish(topic: statusTopic, text: statusPayload(online: true), qos: 1, retain: true)
            emit(.online(device: id))
            flushDue()
        case .disconnected(let code):
            lock.lock(); let wasStopping = stopped; connected = false; lock.unlock()
            if code != 0 && !wasStopping { emit(.connectionLost(device: id, code: code)) }
        case .message(let m):
            guard let json = try? JSON.parse(m.payload) else { return }
            if m.topic == "clinic/\(site)/edge/status" { emit(.applianceStatus(json)); return }
            guard let key = json["msg_id"]?.stringValue ?? json["scan_id"]?.stringValue else { return }
            resolve(key, json, isAck: m.topic == ackTopic)
        }
    }

    private func resolve(_ key: String, _ json: JSON, isAck: Bool) {
        lock.lock()
        guard let p = pending.removeValue(forKey: key) else { lock.unlock(); return } // a late duplicate ack
        let waiter = waiters.removeValue(forKey: key)
        let error = json["error"]?.stringValue
        if error != nil { stats.ackErrors += 1 } else { stats.acked += 1 }
        if !isAck, let o = json["outcome"]?.stringValue { stats.results[o, default: 0] += 1 }
        compactOrder()
        lock.unlock()
        let ms = p.firstSentAt.map { (uptime() - $0) * 1000 } ?? 0
        if isAck { emit(.acked(device: id, msgId: key, error: error, sends: p.sends)) }
        waiter?.resume(returning: (json, p.sends, ms))
    }

    private func compactOrder() {
        if order.count > 64 && order.count > pending.count * 2 { order = order.filter { pending[$0] != nil } }
    }

    /// Publishes what is due: new messages, and unanswered ones whose resend timer ran out.
    func flushDue() {
        let now = uptime()
        var due: [(String, String, String, Int)] = []
        var gaveUp: [(String, CheckedContinuation<(JSON, Int, Double)?, Never>?)] = []
        lock.lock()
        let c = client
        for k in order {
            guard var p = pending[k] else { continue }
            if let g = p.giveUpAt, now >= g {
                pending.removeValue(forKey: k)
                gaveUp.append((k, waiters.removeValue(forKey: k)))
                continue
            }
            guard connected, p.nextAt <= now else { continue }
            p.sends += 1
            if p.firstSentAt == nil { p.firstSentAt = now }
            p.nextAt = now + min(resendCap, resendBase * pow(2, Double(p.sends - 1)))
            pending[k] = p
            due.append((k, p.topic, p.payload, p.sends))
            stats.published += 1
            if p.sends > 1 { stats.resent += 1 }
        }
        if !gaveUp.isEmpty { compactOrder() }
        lock.unlock()
        for (k, w) in gaveUp {
            if kind == .kiosk { emit(.kioskGaveUp(device: id, scanId: k)) }
            w?.resume(returning: nil)
        }
        guard let c else { return }
        for (k, topic, payload, sends) in due {
            try? c.publish(topic: topic, text: payload, qos: 1)
            if sends > 1 { emit(.resent(device: id, key: k, sends: sends)) }
        }
    }

    /// Publishes without waiting for anything (heartbeats); skipped while disconnected.
    func publish(_ topic: String, _ payload: String) {
        lock.lock()
        guard connected, let c = client else { lock.unlock(); return }
        stats.published += 1
        lock.unlock()
        try? c.publish(topic: topic, text: payload, qos: 1)
    }

    /// Keeps `payload` and resends it until a reply carries `key` (fire and forget).
    func sendTracked(_ topic: String, _ payload: String, key: String) {
        lock.lock()
        pending[key] = Pending(topic: topic, payload: payload, nextAt: uptime())
        order.append(key)
        lock.unlock()
        flushDue()
    }

    /// Sends and waits for the reply carrying `key`: (reply, sends, ms), or nil when given up,
    /// cancelled or stopped.
    func request(_ topic: String, _ payload: String, key: String, giveUpAfter: Double?) async -> (JSON, Int, Double)? {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (cont: CheckedContinuation<(JSON, Int, Double)?, Never>) in
                lock.lock()
                if abandoned.remove(key) != nil || stopped { lock.unlock(); cont.resume(returning: nil); return }
                let now = uptime()
                pending[key] = Pending(topic: topic, payload: payload, nextAt: now, giveUpAt: giveUpAfter.map { now + $0 })
                order.append(key)
                waiters[key] = cont
                lock.unlock()
                flushDue()
            }
        } onCancel: {
            self.abandon(key)
        }
    }

    private func abandon(_ key: String) {
        lock.lock()
        let w = waiters.removeValue(forKey: key)
        if w == nil { abandoned.insert(key) } else { pending.removeValue(forKey: key) }
        lock.unlock()
        w?.resume(returning: nil)
    }

    func sends(of key: String) -> Int? { lock.lock(); defer { lock.unlock() }; return pending[key]?.sends }

    /// A clean stop: the offline status (retained) is published explicitly, then a clean
    /// disconnect (which suppresses the will). Waiters get nil. Unacked messages stay pending
    /// (a later `connect()` resends them) unless `final`.
    func stop(final: Bool) async {
        let (c, wasConnected, ws) = lock.withLock { () -> (MQTTClient?, Bool, [CheckedContinuation<(JSON, Int, Double)?, Never>]) in
            stopped = true
            let c = client
            client = nil
            var ws: [CheckedContinuation<(JSON, Int, Double)?, Never>] = []
            if final {
                closed = true
                ws = Array(waiters.values); waiters = [:]
                resender?.cancel(); resender = nil
            }
            return (c, connected, ws)
        }
        for w in ws { w.resume(returning: nil) }
        if let c {
            if wasConnected {
                try? c.publish(topic: statusTopic, text: statusPayload(online: false), qos: 1, retain: true)
                try? await Task.sleep(for: .milliseconds(50))
            }
            c.disconnect()
        }
        pump?.cancel(); pump = nil
        lock.withLock { connected = false }
        emit(.stopped(device: id))
    }
}

// MARK: - Devices

protocol SimRunnable: AnyObject, Sendable {
    var link: SimLink { get }
    /// The device's behaviour; runs until cancelled.
    func behave() async
}

