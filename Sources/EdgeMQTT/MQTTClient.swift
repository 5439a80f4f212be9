import CMosquitto
import Foundation
import Logging
import Synchronization

/// A message as libmosquitto handed it over, with what the client's `prepare` made of it on
/// the network thread (the daemon's: the decoded device message), so the consumer's own work
/// is only what must be serial. `MQTTMessage` is the plain one (nothing prepared).
public struct MQTTMessageOf<Prepared: Sendable>: Sendable {
    public var topic: String
    public var payload: [UInt8]
    public var qos: Int32
    public var retain: Bool
    /// When the message was handed over by libmosquitto (monotonic ns), for latency metrics.
    public var receivedAtNs: UInt64
    /// Matched the client's `urgent` rule (queued ahead of the rest).
    public var urgent: Bool
    /// What the client's `prepare` made of it.
    public var prepared: Prepared
    /// What the message counts against its client's intake bound until `MQTTClient.release`
    /// gives it back (0 for a client without a bound).
    public internal(set) var intakeCost: Int = 0
    /// The intake bound it counts against.
    var origin: IntakeBound? = nil

    public init(
        topic: String, payload: [UInt8], qos: Int32, retain: Bool, receivedAtNs: UInt64, urgent: Bool = false,
        prepared: Prepared
    ) {
        self.topic = topic; self.payload = payload; self.qos = qos; self.retain = retain
        self.receivedAtNs = receivedAtNs; self.urgent = urgent; self.prepared = prepared
    }
}
public typealias MQTTMessage = MQTTMessageOf<Void>
extension MQTTMessageOf where Prepared == Void {
    public init(topic: String, payload: [UInt8], qos: Int32, retain: Bool, receivedAtNs: UInt64, urgent: Bool = false) {
        self.init(topic: topic, payload: payload, qos: qos, retain: retain, receivedAtNs: receivedAtNs, urgent: urgent, prepared: ())
    }
}

public enum MQTTEventOf<Prepared: Sendable>: Sendable {
    case connected(code: Int32)
    case disconnected(code: Int32)
    case message(MQTTMessageOf<Prepared>)
}
public typealias MQTTEvent = MQTTEventOf<Void>

/// A client's intake bound (`limit`, bytes): messages handed in and not yet given back by the
/// consumer (`release`, once they are committed) never count more than `limit`: past it,
/// `admit` blocks libmosquitto's network thread inside the message callback, so the client
/// reads nothing more from its socket and the broker keeps the rest (QoS 1) until there is room.
class IntakeBound: @unchecked Sendable {  // @unchecked: its fields are guarded by the NSCondition (a wait, not just a lock)
    /// The intake bound in bytes; nil: unbounded (test and simulator clients).
    let limit: Int?
    private let gate = NSCondition()
    /// Bytes of messages admitted and not yet released.
    private var held = 0
    /// Stopping: `admit` never blocks again (the network thread must be able to end).
    private var open = false
    /// How often, and how long in all, the network thread waited for room.
    private var stalls = 0
    private var stalledNs: UInt64 = 0
    private var waitingNow = false

    init(limit: Int?) { self.limit = limit }

    /// What libmosquitto's callbacks hand in, overridden by `Sink` (C function pointers cannot
    /// reach a generic type, so they call through this class).
    func connection(up: Bool, code: Int32) {}
    func received(topic: String, payload: [UInt8], qos: Int32, retain: Bool, receivedAtNs: UInt64, cost: Int) {}

    /// What a message holds in memory until it is committed: its payload, the decoded form
    /// made of it on the network thread (about as large again), its topic and the records
    /// around them.
    static func cost(payloadBytes: Int, topicBytes: Int) -> Int { 2 * payloadBytes + topicBytes + 256 }

    /// Called on the network thread before a message is copied out: waits while taking it
    /// would exceed the bound. A lone message larger than the bound is still taken (when
    /// nothing else is held), so the queue can never wedge.
    func admit(_ cost: Int) {
        guard let limit else { return }
        gate.lock()
        if held > 0 && held + cost > limit && !open {
            stalls += 1
            waitingNow = true
            let t0 = DispatchTime.now().uptimeNanoseconds
            while held > 0 && held + cost > limit && !open { gate.wait() }
            stalledNs += DispatchTime.now().uptimeNanoseconds - t0
            waitingNow = false
        }
        held += cost
        gate.unlock()
    }
    /// The consumer is done with messages worth `cost` bytes (committed, or given up).
    func release(_ cost: Int) {
        guard limit != nil, cost > 0 else { return }
        gate.lock()
        held -= cost
        if held < 0 { held = 0 }
        gate.broadcast()
        gate.unlock()
    }
    /// Never block again (shutdown).
    func openGate() {
        gate.lock(); open = true; gate.broadcast(); gate.unlock()
    }
    func intake() -> MQTTIntakeStats {
        gate.lock(); defer { gate.unlock() }
        return MQTTIntakeStats(heldBytes: held, limitBytes: limit, stalls: stalls, stalledNs: stalledNs, stalledNow: waitingNow)
    }
}

/// Where callbacks put what they copy out: a locked queue the consumer drains in batches
/// (natural group commit: what arrived while the last batch was committing is the next
/// batch), plus a wake-up stream. Urgent messages (kiosk scans: a patient is waiting) have
/// their own queue and are handed out first. Bounded by its `IntakeBound`.
final class Sink<Prepared: Sendable>: IntakeBound, @unchecked Sendable {  // @unchecked: inherited from IntakeBound
    typealias Event = MQTTEventOf<Prepared>
    private struct Queues {
        var urgent: [Event] = []
        var pending: [Event] = []
        /// `pending[..<head]` is taken (removing from the front of an array is O(n)).
        var head = 0
    }
    private let queues = Mutex(Queues())
    let wake: AsyncStream<Void>.Continuation
    /// Another consumer's wake-up (one consumer draining several clients).
    let alsoWake: AsyncStream<Void>.Continuation?
    let prepare: @Sendable (_ topic: String, _ payload: [UInt8]) -> Prepared
    let isUrgent: (@Sendable (MQTTMessageOf<Prepared>) -> Bool)?

    init(
        _ c: AsyncStream<Void>.Continuation, alsoWake: AsyncStream<Void>.Continuation? = nil, limit: Int? = nil,
        prepare: @escaping @Sendable (_ topic: String, _ payload: [UInt8]) -> Prepared,
        urgent: (@Sendable (MQTTMessageOf<Prepared>) -> Bool)?
    ) {
        wake = c; self.alsoWake = alsoWake; self.prepare = prepare; self.isUrgent = urgent
        super.init(limit: limit)
    }
    override func connection(up: Bool, code: Int32) {
        put(up ? .connected(code: code) : .disconnected(code: code))
    }
    override func received(topic: String, payload: [UInt8], qos: Int32, retain: Bool, receivedAtNs: UInt64, cost: Int) {
        var message = MQTTMessageOf(
            topic: topic, payload: payload, qos: qos, retain: retain, receivedAtNs: receivedAtNs,
            prepared: prepare(topic, payload))
        if cost > 0 { message.intakeCost = cost; message.origin = self }
        message.urgent = isUrgent?(message) ?? false
        put(.message(message), urgent: message.urgent)
    }
    func put(_ e: Event, urgent u: Bool = false) {
        let wasEmpty = queues.withLock { q in
            let wasEmpty = q.urgent.isEmpty && q.pending.count == q.head
            if u { q.urgent.append(e) } else { q.pending.append(e) }
            return wasEmpty
        }
        if wasEmpty { wake.yield(); alsoWake?.yield() }
    }

    func drainUrgent() -> [MQTTMessageOf<Prepared>] {
        let taken = queues.withLock { q in
            let taken = q.urgent; q.urgent = []
            return taken
        }
        return taken.compactMap { if case .message(let m) = $0 { m } else { nil } }
    }
    func waiting() -> (urgent: Int, others: Int) {
        queues.withLock { q in (q.urgent.count, q.pending.count - q.head) }
    }
    func drain(max: Int) -> [Event] {
        queues.withLock { q in
            var out: [Event] = []
            if !q.urgent.isEmpty {
                if q.urgent.count <= max { out = q.urgent; q.urgent = [] } else { out = Array(q.urgent.prefix(max)); q.urgent.removeFirst(max) }
            }
            let n = min(max - out.count, q.pending.count - q.head)
            if n > 0 { out.append(contentsOf: q.pending[q.head..<(q.head + n)]); q.head += n }
            if q.head == q.pending.count {
                q.pending.removeAll(keepingCapacity: q.pending.capacity <= 4096); q.head = 0
            } else if q.head >= 4096 && q.head * 2 >= q.pending.count {
                q.pending.removeFirst(q.head); q.head = 0
            }
            return out
        }
    }
}

/// The intake bound's figures: what is held now, and how often the network thread waited.
public struct MQTTIntakeStats: Sendable, Equatable {
    public var heldBytes: Int
    public var limitBytes: Int?
    public var stalls: Int
    public var stalledNs: UInt64
    public var stalledNow: Bool
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

/// libmosquitto's network loop on a thread of the client's own (instead of
/// `mosquitto_loop_start`'s), so that the loop ending is seen: `mosquitto_loop_forever`
/// returns for good on a fatal code (protocol error, out of memory, a name that no longer
/// resolves…), and nothing else would notice that no reconnect will ever come.
final class LoopThread: @unchecked Sendable {  // @unchecked: the libmosquitto pointer
    let mosq: OpaquePointer
    private let flags = Mutex((stopping: false, finished: false))
    private let done = DispatchSemaphore(value: 0)
    let onEnd: (@Sendable (Int32) -> Void)?
    init(_ mosq: OpaquePointer, onEnd: (@Sendable (Int32) -> Void)?) { self.mosq = mosq; self.onEnd = onEnd }

    func start() {
        let t = Thread { [self] in
            // The timeout is select()'s; publishes wake the loop through libmosquitto's socket pair.
            let rc = mosquitto_loop_forever(mosq, 86_400_000, 1)
            let expected = flags.withLock { f in
                f.finished = true
                return f.stopping
            }
            done.signal()
            if !expected { onEnd?(rc) }
        }
        t.name = "mqtt-loop"
        t.start()
    }
    func stop() { flags.withLock { $0.stopping = true } }
    /// Waits up to `timeout` seconds for the loop to end; true when it has.
    func wait(timeout: Double) -> Bool {
        if flags.withLock({ $0.finished }) { return true }
        guard done.wait(timeout: .now() + timeout) == .success else { return false }
        done.signal()  // later waits see it at once
        return true
    }
}

/// The one Swift owner of a libmosquitto client. libmosquitto's network loop runs on a thread
/// of its own (`LoopThread`); its callbacks only copy Sendable values into `events`.
/// Nothing calls libmosquitto from inside a callback.
///
/// Generic over what `prepare` makes of each message on the network thread (`Prepared`);
/// `MQTTClient` is the plain client (nothing prepared).
public final class MQTTClientOf<Prepared: Sendable>: @unchecked Sendable {  // @unchecked: the libmosquitto pointer
    public typealias Message = MQTTMessageOf<Prepared>
    public typealias Event = MQTTEventOf<Prepared>
    private let mosq: OpaquePointer
    private let box: Unmanaged<Sink<Prepared>>
    /// Yields when events are waiting; take them with `drain(max:)`.
    public let wakeups: AsyncStream<Void>
    private let logger: Logger
    private let loop: LoopThread
    /// Whether the network thread was started; the lock also orders connect and disconnect.
    private let started = Mutex(false)

    /// Takes up to `max` waiting events: urgent messages first, then the rest, each oldest first.
    public func drain(max: Int) -> [Event] { box.takeUnretainedValue().drain(max: max) }
    /// How many events wait: urgent ones and the rest.
    public func waiting() -> (urgent: Int, others: Int) { box.takeUnretainedValue().waiting() }
    /// Takes the urgent messages waiting (a batch in progress takes them in before it commits).
    public func takeUrgent() -> [Message] { box.takeUnretainedValue().drainUrgent() }
    /// The intake bound's figures (`maxPendingBytes`).
    public var intake: MQTTIntakeStats { box.takeUnretainedValue().intake() }

    /// Gives the messages' room back to their clients' intake bounds: call it once they are
    /// committed (or given up). Messages of a client without a bound cost nothing.
    public static func release<S: Sequence, P>(_ messages: S) where S.Element == MQTTMessageOf<P> {
        var sink: IntakeBound?
        var sum = 0
        for m in messages where m.intakeCost > 0 {
            if let o = m.origin, o !== sink {
                sink?.release(sum)
                sink = o; sum = 0
            }
            sum += m.intakeCost
        }
        sink?.release(sum)
    }

    /// Waits for and returns the next batch of events (empty when the client is gone).
    public func nextBatch(max: Int) async -> [Event] {
        while true {
            let b = drain(max: max)
            if !b.isEmpty { return b }
            var it = wakeups.makeAsyncIterator()
            if await it.next() == nil { return drain(max: max) }
        }
    }

    /// - `prepare`: what to make of each message, on the network thread (`prepared`).
    /// - `urgent`: which messages go in the urgent queue (handed out first, and by `takeUrgent`).
    /// - `maxPendingBytes`: the intake bound (see `IntakeBound`); the consumer must `release` every
    ///   message it takes. nil: unbounded.
    /// - `alsoWake`: yielded with this client's own `wakeups`, for a consumer draining
    ///   several clients.
    /// - `onLoopEnd`: libmosquitto's loop ended for good (a fatal code), not on a `disconnect()`.
    public init(
        clientId: String, cleanSession: Bool = true, username: String? = nil, password: String? = nil,
        will: MQTTWill? = nil, prepare: @escaping @Sendable (_ topic: String, _ payload: [UInt8]) -> Prepared,
        urgent: (@Sendable (Message) -> Bool)? = nil, maxPendingBytes: Int? = nil,
        alsoWake: AsyncStream<Void>.Continuation? = nil, onLoopEnd: (@Sendable (Int32) -> Void)? = nil,
        logger: Logger
    ) throws {
        _ = MQTTLibrary.initialized
        self.logger = logger
        var cont: AsyncStream<Void>.Continuation!
        wakeups = AsyncStream(bufferingPolicy: .bufferingNewest(1)) { cont = $0 }
        let sink = Sink(cont, alsoWake: alsoWake, limit: maxPendingBytes, prepare: prepare, urgent: urgent)
        box = Unmanaged.passRetained(sink)
        // The callbacks see the sink as its non-generic base (`IntakeBound`).
        guard let m = mosquitto_new(clientId, cleanSession, box.toOpaque()) else {
            box.release()
            throw MQTTError(code: Int32(MOSQ_ERR_NOMEM.rawValue), operation: "new")
        }
        mosq = m
        loop = LoopThread(m, onEnd: onLoopEnd)
        // Our own network thread (not loop_start's): publishes from other threads are queued
        // for it, as with loop_start.
        mosquitto_threaded_set(m, true)
        mosquitto_int_option(m, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V311)
        mosquitto_int_option(m, MOSQ_OPT_TCP_NODELAY, 1)
        mosquitto_max_inflight_messages_set(m, 100)
        mosquitto_reconnect_delay_set(m, 1, 10, true)
        if let username { try check(mosquitto_username_pw_set(m, username, password), "username_pw_set") }
        if let will {
            try check(
                will.payload.withUnsafeBytes {
                    mosquitto_will_set(m, will.topic, Int32($0.count), $0.baseAddress, will.qos, will.retain)
                }, "will_set")
        }
        mosquitto_connect_callback_set(m) { _, ud, rc in
            Unmanaged<IntakeBound>.fromOpaque(ud!).takeUnretainedValue().connection(up: true, code: rc)
        }
        mosquitto_disconnect_callback_set(m) { _, ud, rc in
            Unmanaged<IntakeBound>.fromOpaque(ud!).takeUnretainedValue().connection(up: false, code: rc)
        }
        mosquitto_message_callback_set(m) { _, ud, msgp in
            guard let ud, let msg = msgp?.pointee, let t = msg.topic else { return }
            let sink = Unmanaged<IntakeBound>.fromOpaque(ud).takeUnretainedValue()
            let n = Int(msg.payloadlen)
            // The intake bound: may wait here (nothing is read from the broker meanwhile)
            // until the consumer has committed enough.
            let cost = sink.limit == nil ? 0 : IntakeBound.cost(payloadBytes: n, topicBytes: strlen(t))
            sink.admit(cost)
            let topic = String(cString: t)
            let payload: [UInt8] =
                n > 0 && msg.payload != nil
                ? Array(UnsafeRawBufferPointer(start: msg.payload, count: n)) : []
            sink.received(
                topic: topic, payload: payload, qos: msg.qos, retain: msg.retain,
                receivedAtNs: DispatchTime.now().uptimeNanoseconds, cost: cost)
        }
    }

    private func check(_ rc: Int32, _ op: String) throws {
        guard rc == MOSQ_ERR_SUCCESS.rawValue else { throw MQTTError(code: rc, operation: op) }
    }

    /// Starts the network thread and connects; reconnects by itself (1–10 s, exponential).
    public func connect(host: String, port: Int, keepalive: Int = 30) throws {
        started.withLock { started in
            let rc = mosquitto_connect_async(mosq, host, Int32(port), Int32(keepalive))
            if rc != MOSQ_ERR_SUCCESS.rawValue {
                // The broker may not be up yet: the loop thread keeps retrying.
                logger.warning("mqtt: first connect to \(host):\(port) failed: \(String(cString: mosquitto_strerror(rc))); retrying")
            }
            if !started {
                loop.start()
                started = true
            }
        }
    }

    public func subscribe(_ topics: [String], qos: Int32 = 1) throws {
        for t in topics { try check(mosquitto_subscribe(mosq, nil, t, qos), "subscribe \(t)") }
    }
    public func unsubscribe(_ topics: [String]) throws {
        for t in topics { try check(mosquitto_unsubscribe(mosq, nil, t), "unsubscribe \(t)") }
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
        requestDisconnect()
        _ = waitStopped(timeout: 12)
    }
    /// Starts a clean disconnect (the will is not sent): the intake bound no longer holds the
    /// network thread, and the loop ends after the DISCONNECT (or after its reconnect pause,
    /// at most 10 s, while the broker is away).
    public func requestDisconnect() {
        started.withLock { _ in
            loop.stop()
            box.takeUnretainedValue().openGate()
            mosquitto_disconnect(mosq)
        }
    }
    /// Waits up to `timeout` s for the network thread to end; true when it has (or never ran).
    @discardableResult
    public func waitStopped(timeout: Double) -> Bool {
        guard started.withLock({ $0 }) else { return true }
        guard loop.wait(timeout: timeout) else { return false }
        started.withLock { $0 = false }
        return true
    }

    deinit {
        var stopped = true
        if started.withLock({ $0 }) {
            loop.stop()
            box.takeUnretainedValue().openGate()
            mosquitto_disconnect(mosq)
            stopped = loop.wait(timeout: 1)
        }
        box.takeUnretainedValue().wake.finish()
        // A loop still running (in its reconnect pause) keeps the client and its queue: they
        // are left to it rather than freed under it.
        guard stopped else { return }
        mosquitto_destroy(mosq)
        box.release()
    }

    /// libmosquitto's words for one of its error codes (`MOSQ_ERR_…`).
    public static func describe(error rc: Int32) -> String { String(cString: mosquitto_strerror(rc)) }

    public static func describe(code: Int32) -> String {
        if code == 0 { return "ok" }
        return String(cString: mosquitto_connack_string(code))
    }
}

extension MQTTClientOf where Prepared == Void {
    /// A plain client: nothing prepared on the network thread, nothing urgent.
    public convenience init(
        clientId: String, cleanSession: Bool = true, username: String? = nil, password: String? = nil,
        will: MQTTWill? = nil, maxPendingBytes: Int? = nil, alsoWake: AsyncStream<Void>.Continuation? = nil,
        onLoopEnd: (@Sendable (Int32) -> Void)? = nil, logger: Logger
    ) throws {
        try self.init(
            clientId: clientId, cleanSession: cleanSession, username: username, password: password, will: will,
            prepare: { _, _ in () }, maxPendingBytes: maxPendingBytes, alsoWake: alsoWake, onLoopEnd: onLoopEnd,
            logger: logger)
    }
}
/// The plain client (nothing prepared).
public typealias MQTTClient = MQTTClientOf<Void>

/// libmosquitto's one-time initialisation (shared by every client type).
enum MQTTLibrary {
    static let initialized: Void = {
        mosquitto_lib_init(); return ()
    }()
}

extension Sink where Prepared == Void {
    /// A plain queue (tests).
    convenience init(_ c: AsyncStream<Void>.Continuation, alsoWake: AsyncStream<Void>.Continuation? = nil, limit: Int? = nil) {
        self.init(c, alsoWake: alsoWake, limit: limit, prepare: { _, _ in () }, urgent: nil)
    }
}
