import EdgeCore
import EdgeMQTT
import Foundation
import Logging
import Synchronization

/// A vaccine fridge probe (devices/environment, room `geladeira-vacinas`): `temperature_c`
/// every 60 s with a `msg_id`; a 3.5–6.5 °C compressor sawtooth, and door-open excursions
/// that warm it to 8–10 °C for a few minutes before it recovers.
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
    }
    private let state: Mutex<State>

    init(id: String, room: String, autoExcursions: Bool, intervalSeconds: Double, settings: SimSettings, emit: @escaping @Sendable (SimEvent) -> Void)
    {
        self.id = id; self.room = room; self.autoExcursions = autoExcursions; self.intervalSeconds = intervalSeconds
        rate = settings.rate(for: .fridge)
        rng = LockedRandom(seed: settings.seed, salt: id)
        state = Mutex(State(temperature: rng.double(4.0...5.5)))
        link = SimLink(
            id: id, kind: .fridge, contractType: "environment", room: room, fw: "1.1.0", settings: settings,
            resendProtocolSeconds: 10, resendCapProtocolSeconds: 300, emit: emit)
    }

    /// The door is left open: the temperature climbs ~1.2 °C per reading to `peak`, stays
    /// there `holdReadings` readings, then the fridge recovers ~0.9 °C per reading.
    public func openDoor(peak: Double = 9.4, holdReadings: Int = 2) {
        state.withLock {
            $0.phase = .doorOpen; $0.peak = peak; $0.holdTicks = holdReadings; $0.excursions += 1
        }
    }

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
                s.holdTicks -= 1
                if s.holdTicks <= 0 { s.phase = .recovering }
            case .recovering:
                s.temperature -= (0.9 + rng.double(-0.1...0.1)) * minutes
                if s.temperature <= 5.0 { s.phase = .cooling }
            }
            return (round1(s.temperature), s.phase)
        }
    }

    func tick() {
        let (t, p) = step()
        let n = state.withLock {
            $0.counter += 1; return $0.counter
        }
        let msgId = "\(id)-\(tag)-\(String(format: "%06d", n))"
        let payload = JSONText.object { j in
            j.add("ts", Time.rfc3339(Date())); j.add("temperature_c", t); j.add("msg_id", msgId)
        }
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
