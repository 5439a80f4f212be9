import EdgeCore
import EdgeMQTT
import Foundation
import Logging

// Device simulators (issue 5 item 8): one MQTT connection per simulated device, each with its
// retained status and its will, behaving as the firmware described in `devices/*/README.md`
// does: kiosks that scan and resend a scan until its result, presence sensors that toggle and
// flicker, room monitors, a vaccine fridge that warms above 8 °C and recovers, wearable
// gateways that resend a batch until its ack. Used by `medic-edge simulate`, the demo, the
// benchmarks and the integration tests (this target is the one all of them can import).
//
// Time: every device has "simulated" intervals (a room monitor reads every 60 s, a gateway
// sends every 5 min); a rate multiplier R makes them R times shorter on the wall clock.
// Protocol timers (resend after 3 s / 10 s / 30 s) scale the same way, never below
// `SimSettings.minResendSeconds`.
//
// Privacy: a QR text is a credential. The simulator never prints, logs or emits it; events
// carry the scan id, the outcome and the kiosk's message only.

/// The device types `medic-edge simulate --type` knows.
public enum SimDeviceType: String, CaseIterable, Sendable, Hashable {
    case kiosk, presence, environment, fridge, wearable, status
}

public struct SimSettings: Sendable {
    public var host = "127.0.0.1"
    public var port = 1883
    public var site = "demo"
    public var username: String?
    public var password: String?
    /// Rate multiplier for every device type without its own entry in `rates`.
    public var rate: Double = 1
    public var rates: [SimDeviceType: Double] = [:]
    public var seed: UInt64 = UInt64.random(in: 1...UInt64.max)
    /// Resend timers never go below this (seconds, wall clock).
    public var minResendSeconds: Double = 0.5
    public var keepalive = 30
    /// Devices use persistent sessions (clean session = false), as their READMEs ask.
    public var cleanSession = false
    /// Occasionally send what real firmware gets wrong: a −127 probe reading, a torn QR read,
    /// a wearable sample from an unknown source. Off by default.
    public var faults = false
    /// Prepended to every MQTT client id (the device id stays the device id in topics).
    public var clientIdPrefix = ""

    public init(host: String = "127.0.0.1", port: Int = 1883, site: String = "demo", rate: Double = 1) {
        self.host = host; self.port = port; self.site = site; self.rate = rate
    }

    public func rate(for t: SimDeviceType) -> Double { max(0.001, rates[t] ?? rate) }
}

/// What a kiosk got back for one scan.
public struct KioskAnswer: Sendable {
    public var device: String
    public var scanId: String
    public var outcome: String
    /// The pt-BR text the kiosk shows (first name at most).
    public var message: String
    public var firstName: String?
    /// Publish → result, wall clock.
    public var millis: Double
    /// How many times the scan was published (1 = no resend).
    public var sends: Int
    /// What the scan was, as a label for people (`known`, `repeat`, `unknown`, `torn`, `given`); never the QR text.
    public var label: String
    public var result: JSON
}

/// What simulated devices report while they run.
public enum SimEvent: Sendable {
    case online(device: String)
    case connectionLost(device: String, code: Int32)
    case refused(device: String, reason: String)
    case kioskResult(KioskAnswer)
    case kioskGaveUp(device: String, scanId: String)
    /// An ack for a `msg_id` (error set when the appliance rejected the message).
    case acked(device: String, msgId: String, error: String?, sends: Int)
    case resent(device: String, key: String, sends: Int)
    case presence(device: String, room: String, occupied: Bool, people: Int)
    case environment(device: String, room: String, temperature: Double, humidity: Double, co2: Double)
    case fridge(device: String, room: String, temperature: Double, phase: String)
    case wearableBatch(device: String, msgId: String, samples: Int, invalid: Int)
    case rebooting(device: String)
    /// The appliance's retained `edge/status` as a kiosk sees it.
    case applianceStatus(JSON)
    case stopped(device: String)
}

public struct SimDeviceStats: Sendable, Equatable {
    public var device: String
    public var type: SimDeviceType
    /// Publishes of data messages (first sends and resends; not status messages).
    public var published = 0
    public var resent = 0
    public var acked = 0
    public var ackErrors = 0
    /// Messages still waiting for their ack or result.
    public var pending = 0
    public var results: [String: Int] = [:]
    public var connects = 0
}

public struct SimError: Error, CustomStringConvertible {
    public let description: String
    public init(_ d: String) { description = d }
}

// MARK: - Randomness and time

/// SplitMix64: a small seeded generator, so a run can be repeated with `--seed`.
public struct SimRandom: RandomNumberGenerator, Sendable {
    private var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

final class LockedRandom: @unchecked Sendable {
    private let lock = NSLock()
    private var g: SimRandom
    init(seed: UInt64, salt: String) {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in salt.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
        g = SimRandom(seed: seed ^ h)
    }
    func double(_ r: ClosedRange<Double>) -> Double { lock.lock(); defer { lock.unlock() }; return Double.random(in: r, using: &g) }
    func int(_ r: ClosedRange<Int>) -> Int { lock.lock(); defer { lock.unlock() }; return Int.random(in: r, using: &g) }
    func chance(_ p: Double) -> Bool { double(0...1) < p }
    func pick<T>(_ a: [T]) -> T { a[int(0...(a.count - 1))] }
    func hex(_ n: Int) -> String { (0..<n).map { _ in String(int(0...15), radix: 16) }.joined() }
    func uuid() -> String {
        let h = hex(32)
        let c = Array(h)
        return "\(String(c[0..<8]))-\(String(c[8..<12]))-4\(String(c[13..<16]))-8\(String(c[17..<20]))-\(String(c[20..<32]))"
    }
}

func uptime() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }

/// Sleeps `simSeconds` of simulated time (wall = sim / rate). Throws on cancellation.
func simSleep(_ simSeconds: Double, rate: Double) async throws {
    try await Task.sleep(for: .milliseconds(max(1, Int(simSeconds / rate * 1000))))
}

func round1(_ x: Double) -> Double { (x * 10).rounded() / 10 }

/// A short tag unique to this run, so message ids never repeat across runs (the appliance
/// dedupes `(device, msg_id)` for at least 7 days).
func runTag() -> String {
    let s = String(UInt64(Date().timeIntervalSince1970 * 10), radix: 36)
    return String(s.suffix(7)) + String(Int.random(in: 0..<1296), radix: 36)
}

/// Shared state of a room: presence sensors write it, environment monitors read it (CO₂).
final class RoomModel: @unchecked Sendable {
    private let lock = NSLock()
    private var occupants: [String: Int] = [:]
    func set(_ device: String, people: Int) { lock.lock(); occupants[device] = people; lock.unlock() }
    var people: Int { lock.lock(); defer { lock.unlock() }; return occupants.values.max() ?? 0 }
}

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

/// A check-in kiosk (devices/checkin_kiosk): scans QR codes and shows the appliance's answer;
/// resends the same `scan_id` when no result comes within 3 s (backing off to 30 s, giving up
/// after 60 s).
public final class KioskSim: SimRunnable, @unchecked Sendable {
    public let id: String
    let link: SimLink
    let rng: LockedRandom
    let rate: Double
    let knownCodes: [String]
    let auto: Bool
    let faults: Bool
    let tag = runTag()
    private let lock = NSLock()
    private var counter = 0
    private var lastKnown: String?
    /// Morning rush: one scan every 15–30 s instead of every 2–5 minutes.
    public var rush: Bool { get { lock.lock(); defer { lock.unlock() }; return _rush } set { lock.lock(); _rush = newValue; lock.unlock() } }
    private var _rush = false

    init(id: String, room: String?, codes: [String], auto: Bool, settings: SimSettings, emit: @escaping @Sendable (SimEvent) -> Void) {
        self.id = id; knownCodes = codes; self.auto = auto; faults = settings.faults
        rate = settings.rate(for: .kiosk)
        rng = LockedRandom(seed: settings.seed, salt: id)
        link = SimLink(id: id, kind: .kiosk, contractType: "checkin_kiosk", room: room, fw: "1.4.0", settings: settings,
                       extraReplyTopics: ["clinic/\(settings.site)/kiosk/\(id)/result", "clinic/\(settings.site)/edge/status"],
                       resendProtocolSeconds: 3, resendCapProtocolSeconds: 30, emit: emit)
    }

    func nextScanId() -> String {
        lock.lock(); defer { lock.unlock() }
        counter += 1
        return "\(id)-\(tag)-\(String(format: "%06d", counter))"
    }

    /// Scans `qr` and waits for the result (nil: no result within `timeout` seconds).
    /// `label` names the scan in events (never the QR text).
    @discardableResult
    public func scan(_ qr: String, label: String = "given", timeout: Double = 60) async -> KioskAnswer? {
        let scanId = nextScanId()
        let payload = JSONText.object { j in j.add("scan_id", scanId); j.add("qr", qr); j.add("ts", Time.rfc3339(Date())) }
        guard let (json, sends, ms) = await link.request("clinic/\(link.site)/kiosk/\(id)/scan", payload, key: scanId, giveUpAfter: timeout) else {
            return nil
        }
        let a = KioskAnswer(device: id, scanId: scanId, outcome: json["outcome"]?.stringValue ?? "?",
                            message: json["message"]?.stringValue ?? "", firstName: json["patient"]?["first_name"]?.stringValue,
                            millis: ms, sends: sends, label: label, result: json)
        link.emit(.kioskResult(a))
        return a
    }

    /// The mix of the README: mostly known codes, some patients scanning twice, some old or
    /// foreign codes, and (with faults) a torn read.
    func pickCode() -> (String, String) {
        let r = rng.double(0...1)
        lock.lock(); let last = lastKnown; lock.unlock()
        if faults && r < 0.005 { return ("", "torn") }
        if r < 0.05, let last { return (last, "repeat") }
        if r < 0.10 || knownCodes.isEmpty { return ("medic-qr:v1:unknown:" + rng.hex(10), "unknown") }
        let code = rng.pick(knownCodes)
        lock.lock(); lastKnown = code; lock.unlock()
        return (code, "known")
    }

    func behave() async {
        guard auto else { return }
        while !Task.isCancelled {
            let gap = rush ? rng.double(15...30) : rng.double(120...300)
            do { try await simSleep(gap, rate: rate) } catch { return }
            let (code, label) = pickCode()
            await scan(code, label: label)
        }
    }

    public var stats: SimDeviceStats { link.snapshot() }
}

/// A presence sensor (devices/presence_sensor): a change message (with `msg_id`, acked) on
/// every change of `occupied`, a heartbeat every 30 s; consultations of 30–60 min with a
/// brief PIR flicker, gaps of 5–15 min.
public final class PresenceSim: SimRunnable, @unchecked Sendable {
    public let id: String
    public let room: String
    let link: SimLink
    let rng: LockedRandom
    let rate: Double
    let auto: Bool
    let model: RoomModel
    let tag = runTag()
    private let lock = NSLock()
    private var occupied = false
    private var people = 0
    private var counter = 0

    init(id: String, room: String, auto: Bool, model: RoomModel, settings: SimSettings, emit: @escaping @Sendable (SimEvent) -> Void) {
        self.id = id; self.room = room; self.auto = auto; self.model = model
        rate = settings.rate(for: .presence)
        rng = LockedRandom(seed: settings.seed, salt: id)
        link = SimLink(id: id, kind: .presence, contractType: "presence_sensor", room: room, fw: "0.9.3", settings: settings,
                       resendProtocolSeconds: 10, resendCapProtocolSeconds: 300, emit: emit)
    }

    var topic: String { "clinic/\(link.site)/room/\(room)/presence/\(id)" }

    private func payload(msgId: String?) -> String {
        lock.lock(); let o = occupied, p = people; lock.unlock()
        return JSONText.object { j in
            j.add("occupied", o); j.add("people", p); j.add("ts", Time.rfc3339(Date()))
            if let msgId { j.add("msg_id", msgId) }
        }
    }

    private func change(_ occ: Bool, _ n: Int) -> String {
        lock.lock()
        occupied = occ; people = occ ? max(1, n) : 0; counter += 1
        let msgId = "\(id)-\(tag)-\(String(format: "%06d", counter))"
        let p = people
        lock.unlock()
        model.set(id, people: p)
        link.emit(.presence(device: id, room: room, occupied: occ, people: p))
        return msgId
    }

    /// Scripted change: publishes it and waits for its ack (true when acked in `timeout`).
    @discardableResult
    public func set(occupied occ: Bool, people n: Int = 1, timeout: Double = 10) async -> Bool {
        let msgId = change(occ, n)
        return await link.request(topic, payload(msgId: msgId), key: msgId, giveUpAfter: timeout) != nil
    }

    public var isOccupied: Bool { lock.lock(); defer { lock.unlock() }; return occupied }

    private func toggle(_ occ: Bool, _ n: Int) {
        let msgId = change(occ, n)
        link.sendTracked(topic, payload(msgId: msgId), key: msgId)
    }

    func behave() async {
        await withTaskGroup(of: Void.self) { g in
            // Heartbeat with the current state (no msg_id), and a fresh reading at start.
            g.addTask {
                while !Task.isCancelled {
                    if self.link.isConnected { self.link.publish(self.topic, self.payload(msgId: nil)) }
                    do { try await simSleep(30 * self.rng.double(0.9...1.1), rate: self.rate) } catch { return }
                }
            }
            guard auto else { return }
            g.addTask {
                do {
                    try await simSleep(self.rng.double(60...600), rate: self.rate)
                    while !Task.isCancelled {
                        // A consultation: occupied 30–60 min, with 1–2 brief false readings.
                        let n = self.rng.int(1...3)
                        self.toggle(true, n)
                        let length = self.rng.double(30...60) * 60
                        let flickers = self.rng.int(1...2)
                        var spent = 0.0
                        for _ in 0..<flickers {
                            let wait = self.rng.double(0.2...0.4) * length
                            try await simSleep(wait, rate: self.rate); spent += wait
                            self.toggle(false, 0)
                            let still = self.rng.double(5...20)
                            try await simSleep(still, rate: self.rate); spent += still
                            self.toggle(true, n)
                        }
                        try await simSleep(max(60, length - spent), rate: self.rate)
                        self.toggle(false, 0)
                        try await simSleep(self.rng.double(5...15) * 60, rate: self.rate)
                    }
                } catch { return }
            }
        }
    }

    public var stats: SimDeviceStats { link.snapshot() }
}

/// A consulting-room environment monitor (devices/environment): temperature, humidity and
/// CO₂ every 60 s, each reading with a `msg_id`, resent until acked. CO₂ rises ~15 ppm/min
/// per person while the room's presence sensor says occupied.
public final class EnvironmentSim: SimRunnable, @unchecked Sendable {
    public let id: String
    public let room: String
    let link: SimLink
    let rng: LockedRandom
    let rate: Double
    let model: RoomModel
    let faults: Bool
    let tag = runTag()
    private var temperature: Double
    private var humidity: Double
    private var co2 = 450.0
    private var counter = 0

    init(id: String, room: String, model: RoomModel, settings: SimSettings, emit: @escaping @Sendable (SimEvent) -> Void) {
        self.id = id; self.room = room; self.model = model; faults = settings.faults
        rate = settings.rate(for: .environment)
        rng = LockedRandom(seed: settings.seed, salt: id)
        temperature = rng.double(22...24); humidity = rng.double(45...58)
        link = SimLink(id: id, kind: .environment, contractType: "environment", room: room, fw: "2.3.1", settings: settings,
                       resendProtocolSeconds: 10, resendCapProtocolSeconds: 300, emit: emit)
    }

    func tick() {
        let people = Double(model.people)
        temperature = min(25, max(21, temperature + rng.double(-0.15...0.15) + people * 0.03))
        humidity = min(65, max(40, humidity + rng.double(-0.8...0.8) + people * 0.1))
        if people > 0 { co2 = min(1400, co2 + 15 * people + rng.double(-5...5)) } else { co2 = max(430, co2 - (co2 - 450) * 0.15 + rng.double(-5...5)) }
        counter += 1
        let msgId = "\(id)-\(tag)-\(String(format: "%06d", counter))"
        let sensorFault = faults && rng.chance(0.005)
        let t = round1(temperature), h = round1(humidity), c = co2.rounded()
        let payload = JSONText.object { j in
            j.add("ts", Time.rfc3339(Date()))
            j.add("temperature_c", sensorFault ? -127 : t); j.add("humidity_pct", h); j.add("co2_ppm", c)
            j.add("msg_id", msgId)
        }
        link.sendTracked("clinic/\(link.site)/room/\(room)/environment/\(id)", payload, key: msgId)
        link.emit(.environment(device: id, room: room, temperature: t, humidity: h, co2: c))
    }

    func behave() async {
        do {
            try await simSleep(rng.double(0...60), rate: rate)
            while !Task.isCancelled {
                tick()
                try await simSleep(60 * rng.double(0.97...1.03), rate: rate)
            }
        } catch { return }
    }

    public var stats: SimDeviceStats { link.snapshot() }
}

/// A vaccine fridge probe (devices/environment, room `geladeira-vacinas`): `temperature_c`
/// every 60 s with a `msg_id`; a 3.5–6.5 °C compressor sawtooth, and door-open excursions
/// that warm it to 8–10 °C for a few minutes before it recovers.
public final class FridgeSim: SimRunnable, @unchecked Sendable {
    public enum Phase: String, Sendable { case warming, cooling, doorOpen = "door open", holding = "door open (holding)", recovering }
    public let id: String
    public let room: String
    let link: SimLink
    let rng: LockedRandom
    let rate: Double
    let autoExcursions: Bool
    let intervalSeconds: Double
    let tag = runTag()
    private let lock = NSLock()
    private var temperature: Double
    private var phase = Phase.warming
    private var peak = 9.4
    private var holdTicks = 0
    private var counter = 0
    private var excursions = 0

    init(id: String, room: String, autoExcursions: Bool, intervalSeconds: Double, settings: SimSettings, emit: @escaping @Sendable (SimEvent) -> Void) {
        self.id = id; self.room = room; self.autoExcursions = autoExcursions; self.intervalSeconds = intervalSeconds
        rate = settings.rate(for: .fridge)
        rng = LockedRandom(seed: settings.seed, salt: id)
        temperature = rng.double(4.0...5.5)
        link = SimLink(id: id, kind: .fridge, contractType: "environment", room: room, fw: "1.1.0", settings: settings,
                       resendProtocolSeconds: 10, resendCapProtocolSeconds: 300, emit: emit)
    }

    /// The door is left open: the temperature climbs ~1.2 °C per reading to `peak`, stays
    /// there `holdReadings` readings, then the fridge recovers ~0.9 °C per reading.
    public func openDoor(peak: Double = 9.4, holdReadings: Int = 2) {
        lock.lock(); phase = .doorOpen; self.peak = peak; holdTicks = holdReadings; excursions += 1; lock.unlock()
    }

    public var currentPhase: Phase { lock.lock(); defer { lock.unlock() }; return phase }
    public var currentTemperature: Double { lock.lock(); defer { lock.unlock() }; return temperature }

    /// Advances one reading interval; returns the reading and the phase it was taken in.
    func step() -> (Double, Phase) {
        lock.lock(); defer { lock.unlock() }
        let minutes = intervalSeconds / 60
        switch phase {
        case .warming:
            temperature += 0.2 * minutes + rng.double(-0.05...0.05)
            if temperature >= 6.5 { phase = .cooling }
        case .cooling:
            temperature -= 0.6 * minutes + rng.double(-0.05...0.05)
            if temperature <= 3.5 { phase = .warming }
        case .doorOpen:
            temperature = min(peak, temperature + (1.2 + rng.double(-0.15...0.15)) * minutes)
            if temperature >= peak - 0.01 { phase = .holding }
        case .holding:
            temperature = peak + rng.double(-0.1...0.1)
            holdTicks -= 1
            if holdTicks <= 0 { phase = .recovering }
        case .recovering:
            temperature -= (0.9 + rng.double(-0.1...0.1)) * minutes
            if temperature <= 5.0 { phase = .cooling }
        }
        return (round1(temperature), phase)
    }

    func tick() {
        let (t, p) = step()
        lock.lock(); counter += 1; let msgId = "\(id)-\(tag)-\(String(format: "%06d", counter))"; lock.unlock()
        let payload = JSONText.object { j in j.add("ts", Time.rfc3339(Date())); j.add("temperature_c", t); j.add("msg_id", msgId) }
        link.sendTracked("clinic/\(link.site)/room/\(room)/environment/\(id)", payload, key: msgId)
        link.emit(.fridge(device: id, room: room, temperature: t, phase: p.rawValue))
    }

    func behave() async {
        do {
            var nextExcursion = rng.double(8...12) * 60  // simulated seconds from now
            while !Task.isCancelled {
                tick()
                try await simSleep(intervalSeconds, rate: rate)
                if autoExcursions {
                    nextExcursion -= intervalSeconds
                    let p = currentPhase
                    if nextExcursion <= 0 && (p == .warming || p == .cooling) {
                        openDoor(peak: round1(rng.double(8.6...10)), holdReadings: rng.int(1...3))
                        nextExcursion = rng.double(180...300) * 60
                    }
                }
            }
        } catch { return }
    }

    public var stats: SimDeviceStats { link.snapshot() }
}

/// A wearable gateway (devices/wearable_gateway): a batch every 5 minutes, 20–200 samples,
/// one batch in flight; the same batch with the same `msg_id` is resent after 30 s (backing
/// off to 5 min) until `{"msg_id"}` arrives on its ack topic.
public final class WearableGatewaySim: SimRunnable, @unchecked Sendable {
    public let id: String
    let link: SimLink
    let rng: LockedRandom
    let rate: Double
    let patients: [String]
    let batchSize: ClosedRange<Int>
    let auto: Bool
    let faults: Bool
    let tag = runTag()
    private let lock = NSLock()
    private var queue: [(String, String)] = []
    private var counter = 0
    private var ackedIds: [String] = []
    private var sendsById: [String: Int] = [:]
    private let wake: AsyncStream<Void>.Continuation
    private let wakeups: AsyncStream<Void>

    init(id: String, patients: [String], batchSize: ClosedRange<Int>, auto: Bool, settings: SimSettings, emit: @escaping @Sendable (SimEvent) -> Void) {
        self.id = id; self.batchSize = batchSize; self.auto = auto; faults = settings.faults
        rate = settings.rate(for: .wearable)
        let r = LockedRandom(seed: settings.seed, salt: id)
        rng = r
        self.patients = patients.isEmpty ? (0..<12).map { _ in r.uuid() } : patients
        var c: AsyncStream<Void>.Continuation!
        wakeups = AsyncStream(bufferingPolicy: .bufferingNewest(1)) { c = $0 }
        wake = c
        link = SimLink(id: id, kind: .wearable, contractType: "wearable_gateway", room: nil, fw: "2.1.0", settings: settings,
                       resendProtocolSeconds: 30, resendCapProtocolSeconds: 300, emit: emit)
    }

    static let metrics: [(String, String, ClosedRange<Double>, Double)] = [
        ("heart_rate", "bpm", 55...110, 0.40), ("steps", "count", 0...2000, 0.25), ("spo2", "pct", 93...99, 0.10),
        ("hrv", "ms", 20...90, 0.10), ("stress", "score", 10...80, 0.10), ("sleep", "min", 300...540, 0.05),
    ]
    static let sources = ["garmin", "apple_health", "fitbit", "google_fit", "whoop"]

    func sample(invalid: Bool) -> String {
        var r = rng.double(0...1)
        var metric = WearableGatewaySim.metrics[0]
        for m in WearableGatewaySim.metrics { if r < m.3 { metric = m; break }; r -= m.3 }
        let v = metric.0 == "heart_rate" || metric.0 == "steps" || metric.0 == "sleep" ? rng.double(metric.2).rounded() : round1(rng.double(metric.2))
        let at = Date().addingTimeInterval(-rng.double(0...300))
        return JSONText.object { j in
            j.add("patient_id", rng.pick(patients))
            j.add("source", invalid ? "polar" : rng.pick(WearableGatewaySim.sources))
            j.add("metric_type", metric.0); j.add("value", v); j.add("unit", metric.1)
            j.add("recorded_at", Time.rfc3339(at))
        }
    }

    /// Builds a batch (kept under the 64 KiB message limit) and queues it; returns its msg_id.
    @discardableResult
    public func enqueueBatch(samples: Int? = nil) -> String {
        let n = min(300, max(1, samples ?? rng.int(batchSize)))
        var invalid = 0
        var parts: [String] = []
        for _ in 0..<n {
            let bad = faults ? rng.chance(0.01) : false
            if bad { invalid += 1 }
            parts.append(sample(invalid: bad))
        }
        lock.lock(); counter += 1; let msgId = "\(id)-\(tag)-\(String(format: "%05d", counter))"; lock.unlock()
        let payload = JSONText.object { j in j.add("msg_id", msgId); j.addRaw("samples", "[" + parts.joined(separator: ",") + "]") }
        lock.lock(); queue.append((msgId, payload)); lock.unlock()
        link.emit(.wearableBatch(device: id, msgId: msgId, samples: n, invalid: invalid))
        wake.yield()
        return msgId
    }

    /// Times the batch was published (so far, or in all once acked); nil if unknown.
    public func sends(of msgId: String) -> Int? {
        if let s = link.sends(of: msgId) { return s }
        lock.lock(); defer { lock.unlock() }; return sendsById[msgId]
    }
    public var ackedBatches: [String] { lock.lock(); defer { lock.unlock() }; return ackedIds }
    /// Batches not yet acked (queued or in flight).
    public var unacked: Int { lock.lock(); defer { lock.unlock() }; return queue.count }

    func behave() async {
        await withTaskGroup(of: Void.self) { g in
            g.addTask {
                // One batch in flight, each waiting for its ack.
                var it = self.wakeups.makeAsyncIterator()
                while !Task.isCancelled {
                    let head = self.lock.withLock { self.queue.first }
                    guard let (msgId, payload) = head else {
                        if await it.next() == nil { return }
                        continue
                    }
                    guard let (json, sends, _) = await self.link.request("clinic/\(self.link.site)/wearable/\(self.id)", payload, key: msgId, giveUpAfter: nil) else { return }
                    self.lock.withLock {
                        self.queue.removeFirst()
                        self.sendsById[msgId] = sends
                        if json["error"] == nil { self.ackedIds.append(msgId) }
                    }
                }
            }
            guard auto else { return }
            g.addTask {
                do {
                    try await simSleep(self.rng.double(5...60), rate: self.rate)
                    while !Task.isCancelled {
                        self.enqueueBatch()
                        try await simSleep(300 * self.rng.double(0.95...1.05), rate: self.rate)
                    }
                } catch { return }
            }
        }
    }

    public var stats: SimDeviceStats { link.snapshot() }
}

/// A device that only keeps its status (retained, with the will) and reboots now and then:
/// an explicit offline status, a clean disconnect, 10–60 s away, reconnect, online again
/// (kiosks reboot nightly; every 20–40 simulated minutes here). `kill -9` of the simulator
/// process instead makes the broker publish every device's will.
public final class StatusSim: SimRunnable, @unchecked Sendable {
    public let id: String
    let link: SimLink
    let rng: LockedRandom
    let rate: Double
    let reboots: Bool

    init(id: String, type: String, room: String?, reboots: Bool, settings: SimSettings, emit: @escaping @Sendable (SimEvent) -> Void) {
        self.id = id; self.reboots = reboots
        rate = settings.rate(for: .status)
        rng = LockedRandom(seed: settings.seed, salt: id)
        link = SimLink(id: id, kind: .status, contractType: type, room: room, fw: "1.4.0", settings: settings,
                       resendProtocolSeconds: 10, resendCapProtocolSeconds: 300, emit: emit)
    }

    /// Reboots now: offline, away for `downSeconds` (wall), online again.
    public func reboot(downSeconds: Double = 1) async {
        link.emit(.rebooting(device: id))
        await link.stop(final: false)
        try? await Task.sleep(for: .milliseconds(Int(downSeconds * 1000)))
        if Task.isCancelled { return }
        try? link.connect()
    }

    func behave() async {
        guard reboots else { return }
        while !Task.isCancelled {
            do { try await simSleep(rng.double(20...40) * 60, rate: rate) } catch { return }
            await reboot(downSeconds: max(1, rng.double(10...60) / rate))
        }
    }

    public var stats: SimDeviceStats { link.snapshot() }
}

// MARK: - The fleet

/// Runs a set of simulated devices against one broker.
///
/// ```swift
/// var s = SimSettings(port: broker.port, site: "test-site", rate: 60)
/// let sim = DeviceSimulator(settings: s)
/// let kiosk = sim.addKiosk(codes: [day.maria.qr], auto: false)
/// sim.addFleet([.presence, .environment, .fridge, .wearable])
/// try await sim.start()
/// let answer = await kiosk.scan(day.maria.qr)
/// await sim.stop()
/// ```
public final class DeviceSimulator: @unchecked Sendable {
    public let settings: SimSettings
    /// Everything the devices report (the newest 10,000 are kept if nobody reads).
    public let events: AsyncStream<SimEvent>
    private let continuation: AsyncStream<SimEvent>.Continuation
    private let lock = NSLock()
    private var devices: [any SimRunnable] = []
    private var tasks: [Task<Void, Never>] = []
    private var rooms: [String: RoomModel] = [:]
    private var started = false
    private var listeners: [@Sendable (SimEvent) -> Void] = []

    public init(settings: SimSettings) {
        self.settings = settings
        var c: AsyncStream<SimEvent>.Continuation!
        events = AsyncStream(bufferingPolicy: .bufferingNewest(10_000)) { c = $0 }
        continuation = c
    }

    /// Calls `f` for every event too (from the devices' threads; keep it short).
    public func onEvent(_ f: @escaping @Sendable (SimEvent) -> Void) { lock.lock(); listeners.append(f); lock.unlock() }

    private var emitter: @Sendable (SimEvent) -> Void {
        { [weak self] e in
            guard let self else { return }
            self.continuation.yield(e)
            self.lock.lock(); let ls = self.listeners; self.lock.unlock()
            for l in ls { l(e) }
        }
    }

    private func room(_ key: String) -> RoomModel {
        lock.lock(); defer { lock.unlock() }
        if let r = rooms[key] { return r }
        let r = RoomModel(); rooms[key] = r; return r
    }

    private func add<D: SimRunnable>(_ d: D) -> D {
        lock.lock(); devices.append(d); let running = started; lock.unlock()
        if running {
            try? d.link.connect()
            let t = Task { await d.behave() }
            lock.lock(); tasks.append(t); lock.unlock()
        }
        return d
    }

    @discardableResult
    public func addKiosk(id: String = "kiosk-recepcao-1", room: String? = "recepcao", codes: [String] = [], auto: Bool = true) -> KioskSim {
        add(KioskSim(id: id, room: room, codes: codes, auto: auto, settings: settings, emit: emitter))
    }
    @discardableResult
    public func addPresence(id: String, room: String, auto: Bool = true) -> PresenceSim {
        add(PresenceSim(id: id, room: room, auto: auto, model: self.room(room), settings: settings, emit: emitter))
    }
    @discardableResult
    public func addEnvironment(id: String, room: String) -> EnvironmentSim {
        add(EnvironmentSim(id: id, room: room, model: self.room(room), settings: settings, emit: emitter))
    }
    /// `intervalSeconds`: simulated seconds between readings (60 in the field).
    @discardableResult
    public func addFridge(id: String = "env-geladeira", room: String = "geladeira-vacinas", autoExcursions: Bool = true,
                          intervalSeconds: Double = 60) -> FridgeSim {
        add(FridgeSim(id: id, room: room, autoExcursions: autoExcursions, intervalSeconds: intervalSeconds, settings: settings, emit: emitter))
    }
    @discardableResult
    public func addWearableGateway(id: String = "gw-1", patients: [String] = [], batchSize: ClosedRange<Int> = 20...200,
                                   auto: Bool = true) -> WearableGatewaySim {
        add(WearableGatewaySim(id: id, patients: patients, batchSize: batchSize, auto: auto, settings: settings, emit: emitter))
    }
    @discardableResult
    public func addStatusDevice(id: String = "kiosk-recepcao-2", type: String = "checkin_kiosk", room: String? = "recepcao",
                                reboots: Bool = true) -> StatusSim {
        add(StatusSim(id: id, type: type, room: room, reboots: reboots, settings: settings, emit: emitter))
    }

    /// The standard fleet of the device READMEs for the given types: one kiosk, one presence
    /// sensor and one monitor per room, the fridge probe, the wearable gateway, and a second
    /// kiosk that only keeps its status.
    public func addFleet(_ types: Set<SimDeviceType>, rooms: [String] = ["sala-2", "sala-3"], codes: [String] = [],
                         patients: [String] = []) {
        if types.contains(.kiosk) { addKiosk(codes: codes) }
        if types.contains(.presence) { for r in rooms { addPresence(id: "pres-\(r)", room: r) } }
        if types.contains(.environment) { for r in rooms { addEnvironment(id: "env-\(r)", room: r) } }
        if types.contains(.fridge) { addFridge() }
        if types.contains(.wearable) { addWearableGateway(patients: patients) }
        if types.contains(.status) { addStatusDevice() }
    }

    public var deviceIds: [String] { lock.lock(); defer { lock.unlock() }; return devices.map { $0.link.id } }

    /// Connects every device (status online, will offline), waits until all are connected,
    /// then starts their behaviour.
    public func start(timeout: Double = 10) async throws {
        let ds = lock.withLock { started = true; return devices }
        for d in ds { try d.link.connect() }
        let deadline = uptime() + timeout
        while ds.contains(where: { !$0.link.isConnected }) {
            if uptime() > deadline {
                let missing = ds.filter { !$0.link.isConnected }.map { $0.link.id }
                throw SimError("cannot connect to the MQTT broker at \(settings.host):\(settings.port) within \(Int(timeout)) s (devices not connected: \(missing.joined(separator: ", ")))")
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        var ts: [Task<Void, Never>] = []
        for d in ds { ts.append(Task { await d.behave() }) }
        lock.withLock { tasks += ts }
    }

    /// Stops every device cleanly: behaviours cancelled, offline status published, disconnect.
    public func stop() async {
        let (ts, ds) = lock.withLock { () -> ([Task<Void, Never>], [any SimRunnable]) in
            defer { tasks = []; started = false }
            return (tasks, devices)
        }
        for t in ts { t.cancel() }
        for d in ds { await d.link.stop(final: true) }
        for t in ts { await t.value }
    }

    public func stats() -> [SimDeviceStats] {
        lock.lock(); let ds = devices; lock.unlock()
        return ds.map { $0.link.snapshot() }
    }

    deinit { continuation.finish() }
}
