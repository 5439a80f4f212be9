import EdgeCore
import EdgeMQTT
import Foundation
import Logging
import Synchronization

/// A device message as received, decoded on libmosquitto's network thread.
typealias IngestMessage = MQTTMessageOf<DeviceMessage>
/// An MQTT link of the daemon's: its messages decoded on the network thread.
typealias IngestLink = MQTTClientOf<DeviceMessage>

extension IngestLink {
    /// A link of the daemon's: each message decoded on the network thread (alongside the
    /// writer), queued as urgent by the policy's rule for that link.
    convenience init(
        link: IngestPolicy.Link, policy: IngestPolicy, site: String, clientId: String,
        username: String?, password: String?, will: MQTTWill?, maxPendingBytes: Int,
        alsoWake: AsyncStream<Void>.Continuation, onLoopEnd: @escaping @Sendable (Int32) -> Void,
        logger: Logger
    ) throws {
        // Fixed client ids with persistent sessions: the broker keeps QoS 1 messages for the
        // daemon while it restarts, and while the intake bound holds it back.
        try self.init(
            clientId: clientId, cleanSession: false, username: username, password: password, will: will,
            prepare: { topic, payload in DeviceMessage.decode(topic: topic, payload: payload, site: site) },
            urgent: { policy.isUrgent($0.prepared, on: link) },
            maxPendingBytes: policy.intakeShare(link, maxPendingBytes: maxPendingBytes),
            alsoWake: alsoWake, onLoopEnd: onLoopEnd, logger: logger)
    }
}

/// The ingest loop: takes batches from the two MQTT links (the kiosk link's first, urgent
/// messages ahead of the rest), lets a small batch linger under a steady stream, drives
/// `IngestPipeline.process` and publishes its replies after each commit, then gives the
/// messages' room back to the intake bound. All its rules are `IngestPolicy`'s.
final class IngestLoop: Sendable {
    let policy: IngestPolicy
    let main: IngestLink
    let kiosk: IngestLink
    let pipeline: IngestPipeline
    let state: EdgeState
    let metrics: EdgeMetrics
    let logger: Logger
    /// Wakes the loop when either link has events.
    private let wakeups: AsyncStream<Void>

    init(
        policy: IngestPolicy, main: IngestLink, kiosk: IngestLink, wakeups: AsyncStream<Void>, pipeline: IngestPipeline,
        state: EdgeState, metrics: EdgeMetrics, logger: Logger
    ) {
        self.policy = policy; self.main = main; self.kiosk = kiosk; self.wakeups = wakeups; self.pipeline = pipeline
        self.state = state; self.metrics = metrics; self.logger = logger
    }

    /// Runs until cancelled (graceful shutdown), then records what was already received (and
    /// acknowledged to the broker), for at most 2 s. Connection events go to `connection`.
    func run(connection: @escaping @Sendable (_ link: IngestPolicy.Link, _ up: Bool, _ code: Int32) -> Void) async {
        // Messages of a batch that stopped early for a scan: they go next, behind the scans.
        var carry: [IngestMessage] = []
        while !Task.isCancelled {
            let room = Swift.max(1, policy.maxBatch - carry.count)
            let events = carry.isEmpty ? await nextEvents(max: room) : drainBoth(max: room)
            let received = handle(events, carry: carry, connection: connection)
            let messages = carry.isEmpty ? await linger(received, connection: connection) : received
            carry = []
            if !messages.isEmpty {
                // The batch in hand is finished even when shutdown starts meanwhile.
                state.busy("ingest")
                let done = await Task { await self.process(messages) }.value
                state.idle("ingest")
                carry = Array(messages[done...])
            }
        }
        // Shutdown: what was already received (and acknowledged to the broker) is still
        // recorded; bounded, so a flood cannot hold the shutdown up.
        let deadline = DispatchTime.now().uptimeNanoseconds + 2_000_000_000
        while DispatchTime.now().uptimeNanoseconds < deadline {
            let messages = handle(drainBoth(max: policy.maxBatch), carry: carry, connection: connection)
            if messages.isEmpty { break }
            let done = await Task { await self.process(messages) }.value
            carry = Array(messages[done...])
        }
    }

    /// Both links' events: the kiosk link's first.
    private struct Events {
        var kiosk: [IngestLink.Event] = [], main: [IngestLink.Event] = []
        var isEmpty: Bool { kiosk.isEmpty && main.isEmpty }
    }
    private func drainBoth(max: Int) -> Events {
        let k = kiosk.drain(max: max)
        return Events(kiosk: k, main: main.drain(max: Swift.max(1, max - k.count)))
    }
    /// Waits until either link has events (empty when shutting down).
    private func nextEvents(max: Int) async -> Events {
        while !Task.isCancelled {
            let e = drainBoth(max: max)
            if !e.isEmpty { return e }
            var it = wakeups.makeAsyncIterator()
            if await it.next() == nil { break }
        }
        return drainBoth(max: max)
    }

    /// Under a steady stream a small batch of telemetry waits a little for more
    /// (`IngestPolicy.lingers`); the wait ends as soon as a scan arrives.
    private func linger(
        _ messages: [IngestMessage],
        connection: @escaping @Sendable (IngestPolicy.Link, Bool, Int32) -> Void
    ) async -> [IngestMessage] {
        guard policy.lingers(count: messages.count, holdsUrgent: messages.contains(where: \.urgent)) else { return messages }
        let deadline = DispatchTime.now().uptimeNanoseconds + policy.lingerNs
        while DispatchTime.now().uptimeNanoseconds < deadline {
            do { try await Task.sleep(nanoseconds: policy.lingerPollNs) } catch { break }  // shutting down
            let w = main.waiting(), k = kiosk.waiting()
            if policy.lingerEnds(inHand: messages.count, urgentWaiting: w.urgent + k.urgent + k.others, othersWaiting: w.others) { break }
        }
        // Scans that came meanwhile go first, then the messages in hand, then the newer ones.
        return handle(drainBoth(max: policy.maxBatch - messages.count), carry: messages, connection: connection)
    }

    /// Connection events go to `connection`; messages come back in processing order
    /// (`IngestPolicy.order`).
    private func handle(
        _ events: Events, carry: [IngestMessage],
        connection: (IngestPolicy.Link, Bool, Int32) -> Void
    ) -> [IngestMessage] {
        var urgent: [IngestMessage] = [], others: [IngestMessage] = []
        for (link, list) in [(IngestPolicy.Link.kiosk, events.kiosk), (.main, events.main)] {
            for e in list {
                switch e {
                case .connected(let code): connection(link, true, code)
                case .disconnected(let code): connection(link, false, code)
                case .message(let m):
                    if m.urgent { urgent.append(m) } else { others.append(m) }
                }
            }
        }
        return policy.order(urgent: urgent, carry: carry, others: others)
    }

    /// One batch through the pipeline; replies published after its commit, each on the link
    /// and at the QoS `IngestPolicy.route` says. Returns how many messages it took; those and
    /// the scans it took in while it ran give their room back to the intake bound.
    private func process(_ messages: [IngestMessage]) async -> Int {
        let main = self.main, kiosk = self.kiosk, policy = self.policy, metrics = self.metrics, logger = self.logger
        let jumpers = Jumpers()
        let done = await pipeline.process(
            messages,
            takeUrgent: {
                let taken = kiosk.takeUrgent() + main.takeUrgent()
                jumpers.add(taken)
                return taken
            }
        ) { reply in
            let route = policy.route(kioskResult: reply.kioskResult)
            do {
                try (route.link == .kiosk ? kiosk : main).publish(topic: reply.topic, text: reply.payload, qos: route.qos, retain: false)
            } catch {
                logger.warning("mqtt: reply not published: \(error)")
            }
            if let (t0, outcome) = reply.checkin {
                metrics.checkin(outcome, seconds: Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
            }
        }
        IngestLink.release(messages[..<done])
        IngestLink.release(jumpers.all)
        return done
    }

    /// The scans a batch took in while it ran.
    private final class Jumpers: Sendable {
        private let list = Mutex<[IngestMessage]>([])
        func add(_ m: [IngestMessage]) { guard !m.isEmpty else { return }; list.withLock { $0 += m } }
        var all: [IngestMessage] { list.withLock { $0 } }
    }
}
