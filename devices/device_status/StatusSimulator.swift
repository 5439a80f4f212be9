import EdgeCore
import EdgeMQTT
import Foundation
import Logging

/// A device that only keeps its status (retained, with the will) and reboots now and then:
/// an explicit offline status, a clean disconnect, 10–60 s away, reconnect, online again
/// (kiosks reboot nightly; every 20–40 simulated minutes here). `kill -9` of the simulator
/// process instead makes the broker publish every device's will.
public final class StatusSim: SimRunnable, Sendable {
    public let id: String
    let link: SimLink
    let rng: LockedRandom
    let rate: Double
    let reboots: Bool

    init(id: String, type: String, room: String?, reboots: Bool, settings: SimSettings, emit: @escaping @Sendable (SimEvent) -> Void) {
        self.id = id; self.reboots = reboots
        rate = settings.rate(for: .status)
        rng = LockedRandom(seed: settings.seed, salt: id)
        link = SimLink(
            id: id, kind: .status, contractType: type, room: room, fw: "1.4.0", settings: settings,
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
