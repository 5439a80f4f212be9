import EdgeCore
import EdgeMQTT
import Foundation
import Logging
import Synchronization

/// A vaccine fridge probe (devices/environment, room `geladeira-vacinas`): `temperature_c`
/// every 60 s with a `msg_id`; a 3.5–6.5 °C compressor sawtooth, and door-open excursions
/// that warm it to 8–10 °C for a few minutes before it recovers.
///
/// Scripted stories (CONTRACT §6; `medic-edge simulate --fridge-story`, the demo's cold-chain
/// chapter): `openDoor` (a short opening: an excursion shorter than the alarm delay),
/// `leaveDoorOpen` … `closeDoor` (an alarm), `stopReadings` … `resumeReadings` (a dead probe:
/// sensor silence), `sendHistory` (a data logger flushing a month of buffered readings, in
/// time order, with flow control), and `play(_:)` for the whole story at simulated pace.
public final class FridgeSim: SimRunnable, Sendable {
    public enum Phase: String, Sendable { case warming, cooling, doorOpen = "door open", holding = "door open (holding)", recovering }
    public let id: String
    public let room: String
    let link: SimLink
    let rng: LockedRandom
    let rate: Double
    let autoExcursions: Bool
    let intervalSeconds: Double
    let tag = runTag()
    private struct State {
        var temperature: Double
        var phase = Phase.warming
        var peak = 9.4
        var holdTicks = 0
        var counter = 0
        var excursions = 0
        /// The door stays open (held at the peak) until `closeDoor()`.
        var heldOpen = false
        /// Live readings are sent (false: a dead probe, or a logger flushing its buffer first).
        var sending = true
        var flushing = false
    }
    private let state: Mutex<State>

    init(
        id: String, room: String, autoExcursions: Bool, intervalSeconds: Double, sending: Bool = true, settings: SimSettings,
        emit: @escaping @Sendable (SimEvent) -> Void
    ) {
        self.id = id; self.room = room; self.autoExcursions = autoExcursions; self.intervalSeconds = intervalSeconds
        rate = settings.rate(for: .fridge)
        rng = LockedRandom(seed: settings.seed, salt: id)
        var initial = State(temperature: rng.double(4.0...5.5))
        initial.sending = sending
        state = Mutex(initial)
        link = SimLink(
            id: id, kind: .fridge, contractType: "environment", room: room, fw: "1.1.0", settings: settings,
            resendProtocolSeconds: 10, resendCapProtocolSeconds: 300, emit: emit)
    }

    /// The door is left open: the temperature climbs ~1.2 °C per reading to `peak`, stays
    /// there `holdReadings` readings, then the fridge recovers ~0.9 °C per reading.
    public func openDoor(peak: Double = 9.4, holdReadings: Int = 2) {
        state.withLock {
            $0.phase = .doorOpen; $0.peak = peak; $0.holdTicks = holdReadings; $0.heldOpen = false; $0.excursions += 1
        }
    }

    /// The door is left open: the temperature climbs to `peak` and stays there until `closeDoor()`.
    public func leaveDoorOpen(peak: Double = 9.6) {
        state.withLock {
            $0.phase = .doorOpen; $0.peak = peak; $0.heldOpen = true; $0.excursions += 1
        }
    }

    /// Someone closes the door: the fridge recovers ~0.9 °C per reading.
    public func closeDoor() {
        state.withLock { s in
            s.heldOpen = false; s.holdTicks = 0
            if s.phase == .doorOpen || s.phase == .holding { s.phase = .recovering }
        }
    }

    /// The probe dies (a cut cable reads −127, which the firmware drops): no reading is sent
    /// until `resumeReadings()`. The device stays connected.
    public func stopReadings() { state.withLock { $0.sending = false } }
    public func resumeReadings() { state.withLock { $0.sending = true } }
    public var isSending: Bool { state.withLock { $0.sending && !$0.flushing } }

    public var currentPhase: Phase { state.withLock { $0.phase } }
    public var currentTemperature: Double { state.withLock { $0.temperature } }

    /// Advances one reading interval; returns the reading and the phase it was taken in.
    func step() -> (Double, Phase) {
        state.withLock { s in
            let minutes = intervalSeconds / 60
            switch s.phase {
            case .warming:
                s.temperature += 0.2 * minutes + rng.double(-0.05...0.05)
                if s.temperature >= 6.5 { s.phase = .cooling }
            case .cooling:
                s.temperature -= 0.6 * minutes + rng.double(-0.05...0.05)
                if s.temperature <= 3.5 { s.phase = .warming }
            case .doorOpen:
                s.temperature = min(s.peak, s.temperature + (1.2 + rng.double(-0.15...0.15)) * minutes)
                if s.temperature >= s.peak - 0.01 { s.phase = .holding }
            case .holding:
                s.temperature = s.peak + rng.double(-0.1...0.1)
                if !s.heldOpen {
                    s.holdTicks -= 1
                    if s.holdTicks <= 0 { s.phase = .recovering }
                }
            case .recovering:
                s.temperature -= (0.9 + rng.double(-0.1...0.1)) * minutes
                if s.temperature <= 5.0 { s.phase = .cooling }
            }
            return (round1(s.temperature), s.phase)
        }
    }

    var topic: String { "clinic/\(link.site)/room/\(room)/environment/\(id)" }

    /// The next `msg_id` (one counter per device, as a logger keeps in flash).
    func nextMsgId() -> String {
        let n = state.withLock {
            $0.counter += 1; return $0.counter
        }
        return "\(id)-\(tag)-\(String(format: "%06d", n))"
    }

    static func payload(ts: Date, temperature: Double, msgId: String) -> String {
        JSONText.object { j in
            j.add("ts", Time.rfc3339(ts)); j.add("temperature_c", temperature); j.add("msg_id", msgId)
        }
    }

    func tick() {
        let (t, p) = step()
        // A dead probe (or one flushing its buffer first) measures but sends nothing live.
        guard isSending else { return }
        let msgId = nextMsgId()
        link.sendTracked(topic, FridgeSim.payload(ts: Date(), temperature: t, msgId: msgId), key: msgId)
        link.emit(.fridge(device: id, room: room, temperature: t, phase: p.rawValue))
    }

    /// What sending a buffered history took.
    public struct Backfill: Sendable {
        public var readings: Int
        /// Publishes, resends included.
        public var published: Int
        public var resent: Int
        public var rejected: Int
        public var seconds: Double
        public var window: Int
    }

    /// Sends a logger's buffered readings (their own `ts`, a `msg_id` each) oldest first, as
    /// firmware flushing its buffer after an outage does: at most `window` unacknowledged at a
    /// time (the broker's queue for the appliance is never flooded: when the window is full it
    /// waits until half of it is acked), each resent until acked.
    /// Live readings wait until the history is through. Throws after `timeout` seconds
    /// without the last ack, or when cancelled.
    @discardableResult
    public func sendHistory(
        _ history: FridgeHistory, window: Int = 200, timeout: Double = 120, progress: (@Sendable (Int) -> Void)? = nil
    ) async throws -> Backfill {
        let window = max(1, window)
        state.withLock { $0.flushing = true }
        defer { state.withLock { $0.flushing = false } }
        let before = link.snapshot()
        let started = uptime()
        let deadline = started + timeout
        var sent = 0
        for r in history.readings {
            // A full window: wait until half of it is acked, then fill it again.
            if link.snapshot().pending >= window, !(await waitWithin(deadline: deadline, atMost: window / 2)) {
                try Task.checkCancellation()
                throw SimError(
                    "\(id): the appliance acked \(sent - link.snapshot().pending) of \(history.readings.count) buffered readings in \(Int(timeout)) s"
                )
            }
            let msgId = nextMsgId()
            link.sendTracked(topic, FridgeSim.payload(ts: r.at, temperature: r.temperatureC, msgId: msgId), key: msgId)
            sent += 1
            if sent % max(1, history.readings.count / 4) == 0 && sent < history.readings.count { progress?(sent) }
        }
        if !(await waitWithin(deadline: deadline, atMost: 0)) {
            try Task.checkCancellation()
            throw SimError("\(id): \(link.snapshot().pending) buffered readings still unacknowledged after \(Int(timeout)) s")
        }
        let after = link.snapshot()
        return Backfill(
            readings: sent, published: after.published - before.published, resent: after.resent - before.resent,
            rejected: after.ackErrors - before.ackErrors, seconds: uptime() - started, window: window)
    }

    /// `link.waitPending(atMost:)`, giving up at `deadline` (false).
    private func waitWithin(deadline: Double, atMost n: Int) async -> Bool {
        if link.snapshot().pending <= n { return true }
        return await withTaskGroup(of: Bool.self) { g in
            g.addTask { [link] in await link.waitPending(atMost: n) }
            g.addTask {
                try? await Task.sleep(for: .milliseconds(Int(max(0, deadline - uptime()) * 1000)))
                return false
            }
            let first = await g.next() ?? false
            g.cancelAll()
            return first
        }
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
