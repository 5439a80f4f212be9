import CMosquitto
import Foundation
import Logging

public struct MQTTMessage: Sendable {
    public var topic: String
    public var payload: [UInt8]
    public var qos: Int32
    public var retain: Bool
    /// When the message was handed over by libmosquitto (monotonic ns), for latency metrics.
    public var receivedAtNs: UInt64
    /// Matched the client's `urgent` rule (queued ahead of the rest).
    public var urgent: Bool = false
    /// What the client's `prepare` made of it on the network thread (e.g. the decoded
    /// message), so the consumer's own work is only what must be serial.
    public var prepared: (any Sendable)? = nil
}

public enum MQTTEvent: Sendable {
    case connected(code: Int32)
    case disconnected(code: Int32)
    case message(MQTTMessage)
}

/// Where callbacks put what they copy out: a locked queue the consumer drains in batches
/// (natural group commit: what arrived while the last batch was committing is the next
/// batch), plus a wake-up stream. Urgent messages (kiosk scans: a patient is waiting) have
/// their own queue and are handed out first.
final class Sink: @unchecked Sendable {
    let lock = NSLock()
    var urgent: [MQTTEvent] = []
    var pending: [MQTTEvent] = []
    /// `pending[..<head]` is taken (removing from the front of an array is O(n)).
    var head = 0
    let wake: AsyncStream<Void>.Continuation
    let isUrgent: (@Sendable (MQTTMessage) -> Bool)?
    let prepare: (@Sendable (MQTTMessage) -> (any Sendable)?)?
    init(_ c: AsyncStream<Void>.Continuation, isUrgent: (@Sendable (MQTTMessage) -> Bool)?, prepare: (@Sendable (MQTTMessage) -> (any Sendable)?)?) {
        wake = c; self.isUrgent = isUrgent; self.prepare = prepare
    }
    func put(_ e: MQTTEvent, urgent u: Bool = false) {
        lock.lock()
        let wasEmpty = urgent.isEmpty && pending.count == head
        if u { urgent.append(e) } else { pending.append(e) }
        lock.unlock()
        if wasEmpty { wake.yield() }
    }
    func drainUrgent() -> [MQTTMessage] {
        lock.lock()
        let taken = urgent; urgent = []
        lock.unlock()
        return taken.compactMap { if case .message(let m) = $0 { m } else { nil } }
    }
    func waiting() -> (urgent: Int, others: Int) {
        lock.lock(); defer { lock.unlock() }
        return (urgent.count, pending.count - head)
    }
    func drain(max: Int) -> [MQTTEvent] {
        lock.lock(); defer { lock.unlock() }
        var out: [MQTTEvent] = []
        if !urgent.isEmpty {
            if urgent.count <= max { out = urgent; urgent = [] } else { out = Array(urgent.prefix(max)); urgent.removeFirst(max) }
        }
        let n = min(max - out.count, pending.count - head)
        if n > 0 { out.append(contentsOf: pending[head..<(head + n)]); head += n }
        if head == pending.count {
            pending.removeAll(keepingCapacity: pending.capacity <= 4096); head = 0
        } else if head >= 4096 && head * 2 >= pending.count {
            pending.removeFirst(head); head = 0
        }
        return out
    }
}

public struct MQTTError: Error, CustomStringConvertible {
    public let code: Int32
    public let operation: String
    public var description: String { "mqtt \(operation) failed: \(String(cString: mosquitto_strerror(code))) (\(code))" }
}

public struct MQTTWill: Sendable {
    public var topic: String, payload: [UInt8], qos: Int32, retain: Bool
    public init(topic: String, payload: [UInt8], qos: Int32 = 1, retain: Bool = true) {
        self.topic = topic; self.payload = payload; self.qos = qos; self.retain = retain
    }
}

/// The one Swift owner of a libmosquitto client. libmosquitto runs its own network thread
/// (`mosquitto_loop_start`); its callbacks only copy Sendable values into `events`.
/// Nothing calls libmosquitto from inside a callback.
public final class MQTTClient: @unchecked Sendable {
    private let mosq: OpaquePointer
    private let box: Unmanaged<Sink>
    /// Yields when events are waiting; take them with `drain(max:)`.
    public let wakeups: AsyncStream<Void>
    private let logger: Logger
    private let lock = NSLock()
    private var started = false

    private static let libInit: Void = { mosquitto_lib_init(); return () }()

    /// Takes up to `max` waiting events: urgent messages first, then the rest, each oldest first.
    public func drain(max: Int) -> [MQTTEvent] { box.takeUnretainedValue().drain(max: max) }
    /// How many events wait: urgent ones and the rest.
    public func waiting() -> (urgent: Int, others: Int) { box.takeUnretainedValue().waiting() }
    /// Takes the urgent messages waiting (a batch in progress takes them in before it commits).
    public func takeUrgent() -> [MQTTMessage] { box.takeUnretainedValue().drainUrgent() }

    /// Waits for and returns the next batch of events (empty when the client is gone).
    public func nextBatch(max: Int) async -> [MQTTEvent] {
        while true {
            let b = drain(max: max)
            if !b.isEmpty { return b }
            var it = wakeups.makeAsyncIterator()
            if await it.next() == nil { return drain(max: max) }
        }
    }

    public init(clientId: String, cleanSession: Bool = true, username: String? = nil, password: String? = nil,
                will: MQTTWill? = nil, prepare: (@Sendable (MQTTMessage) -> (any Sendable)?)? = nil,
                urgent: (@Sendable (MQTTMessage) -> Bool)? = nil, logger: Logger) throws {
        _ = MQTTClient.libInit
        self.logger = logger
        var cont: AsyncStream<Void>.Continuation!
        wakeups = AsyncStream(bufferingPolicy: .bufferingNewest(1)) { cont = $0 }
        let sink = Sink(cont, isUrgent: urgent, prepare: prepare)
        box = Unmanaged.passRetained(sink)
        guard let m = mosquitto_new(clientId, cleanSession, box.toOpaque()) else {
            box.release()
            throw MQTTError(code: Int32(MOSQ_ERR_NOMEM.rawValue), operation: "new")
        }
        mosq = m
        mosquitto_int_option(m, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V311)
        mosquitto_int_option(m, MOSQ_OPT_TCP_NODELAY, 1)
        mosquitto_max_inflight_messages_set(m, 100)
        mosquitto_reconnect_delay_set(m, 1, 10, true)
        if let username { try check(mosquitto_username_pw_set(m, username, password), "username_pw_set") }
        if let will {
            try check(will.payload.withUnsafeBytes {
                mosquitto_will_set(m, will.topic, Int32($0.count), $0.baseAddress, will.qos, will.retain)
            }, "will_set")
        }
        mosquitto_connect_callback_set(m) { _, ud, rc in
            Unmanaged<Sink>.fromOpaque(ud!).takeUnretainedValue().put(.connected(code: rc))
        }
        mosquitto_disconnect_callback_set(m) { _, ud, rc in
            Unmanaged<Sink>.fromOpaque(ud!).takeUnretainedValue().put(.disconnected(code: rc))
        }
        mosquitto_message_callback_set(m) { _, ud, msgp in
            guard let ud, let msg = msgp?.pointee, let t = msg.topic else { return }
            let topic = String(cString: t)
            let n = Int(msg.payloadlen)
            let payload: [UInt8] = n > 0 && msg.payload != nil
                ? Array(UnsafeRawBufferPointer(start: msg.payload, count: n)) : []
            let now = DispatchTime.now().uptimeNanoseconds
            let sink = Unmanaged<Sink>.fromOpaque(ud).takeUnretainedValue()
            var message = MQTTMessage(topic: topic, payload: payload, qos: msg.qos, retain: msg.retain, receivedAtNs: now)
            if let prepare = sink.prepare { message.prepared = prepare(message) }
            message.urgent = sink.isUrgent?(message) ?? false
            sink.put(.message(message), urgent: message.urgent)
        }
    }

    private func check(_ rc: Int32, _ op: String) throws {
        guard rc == MOSQ_ERR_SUCCESS.rawValue else { throw MQTTError(code: rc, operation: op) }
    }

    /// Starts the network thread and connects; reconnects by itself (1–10 s, exponential).
    public func connect(host: String, port: Int, keepalive: Int = 30) throws {
        lock.lock(); defer { lock.unlock() }
        let rc = mosquitto_connect_async(mosq, host, Int32(port), Int32(keepalive))
        if rc != MOSQ_ERR_SUCCESS.rawValue {
            // The broker may not be up yet: the loop thread keeps retrying.
            logger.warning("mqtt: first connect to \(host):\(port) failed: \(String(cString: mosquitto_strerror(rc))); retrying")
        }
        if !started {
            try check(mosquitto_loop_start(mosq), "loop_start")
            started = true
        }
    }

    public func subscribe(_ topics: [String], qos: Int32 = 1) throws {
        for t in topics { try check(mosquitto_subscribe(mosq, nil, t, qos), "subscribe \(t)") }
    }

    public func publish(topic: String, payload: [UInt8], qos: Int32 = 1, retain: Bool = false) throws {
        let rc = payload.withUnsafeBytes { mosquitto_publish(mosq, nil, topic, Int32($0.count), $0.baseAddress, qos, retain) }
        try check(rc, "publish")
    }
    public func publish(topic: String, text: String, qos: Int32 = 1, retain: Bool = false) throws {
        var text = text
        // libmosquitto copies the payload: a native string's own bytes will do (no array).
        let rc = text.withUTF8 { mosquitto_publish(mosq, nil, topic, Int32($0.count), $0.baseAddress, qos, retain) }
        try check(rc, "publish")
    }

    /// A clean disconnect (the will is not sent), then the network thread stops.
    public func disconnect() {
        lock.lock(); defer { lock.unlock() }
        mosquitto_disconnect(mosq)
        if started { mosquitto_loop_stop(mosq, false); started = false }
    }

    deinit {
        if started { mosquitto_disconnect(mosq); mosquitto_loop_stop(mosq, true) }
        mosquitto_destroy(mosq)
        box.takeUnretainedValue().wake.finish()
        box.release()
    }

    public static func describe(code: Int32) -> String {
        if code == 0 { return "ok" }
        return String(cString: mosquitto_connack_string(code))
    }
}
