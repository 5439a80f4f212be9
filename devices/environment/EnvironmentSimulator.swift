import EdgeCore
import EdgeMQTT
import Foundation
import Logging
import Synchronization

/// A consulting-room environment monitor (devices/environment): temperature, humidity and
/// CO₂ every 60 s, each reading with a `msg_id`, resent until acked. CO₂ rises ~15 ppm/min
/// per person while the room's presence sensor says occupied.
public final class EnvironmentSim: SimRunnable, Sendable {
    public let id: String
    public let room: String
    let link: SimLink
    let rng: LockedRandom
    let rate: Double
    let model: RoomModel
    let faults: Bool
    let tag = runTag()
    private struct Air {
        var temperature: Double
        var humidity: Double
        var co2 = 450.0
        var counter = 0
    }
    private let air: Mutex<Air>

    init(id: String, room: String, model: RoomModel, settings: SimSettings, emit: @escaping @Sendable (SimEvent) -> Void) {
        self.id = id; self.room = room; self.model = model; faults = settings.faults
        rate = settings.rate(for: .environment)
        rng = LockedRandom(seed: settings.seed, salt: id)
        air = Mutex(Air(temperature: rng.double(22...24), humidity: rng.double(45...58)))
        link = SimLink(
            id: id, kind: .environment, contractType: "environment", room: room, fw: "2.3.1", settings: settings,
            resendProtocolSeconds: 10, resendCapProtocolSeconds: 300, emit: emit)
    }

    func tick() {
        let people = Double(model.people)
        let (temperature, humidity, co2, counter) = air.withLock { a in
            a.temperature = min(25, max(21, a.temperature + rng.double(-0.15...0.15) + people * 0.03))
            a.humidity = min(65, max(40, a.humidity + rng.double(-0.8...0.8) + people * 0.1))
            if people > 0 {
                a.co2 = min(1400, a.co2 + 15 * people + rng.double(-5...5))
            } else {
                a.co2 = max(430, a.co2 - (a.co2 - 450) * 0.15 + rng.double(-5...5))
            }
            a.counter += 1
            return (a.temperature, a.humidity, a.co2, a.counter)
        }
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
