import EdgeCore
import EdgeMQTT
import Foundation
import Logging
import Synchronization

/// A presence sensor (devices/presence_sensor): a change message (with `msg_id`, acked) on
/// every change of `occupied`, a heartbeat every 30 s; consultations of 30–60 min with a
/// brief PIR flicker, gaps of 5–15 min.
public final class PresenceSim: SimRunnable, Sendable {
    public let id: String
    public let room: String
    let link: SimLink
    let rng: LockedRandom
    let rate: Double
    let auto: Bool
    let model: RoomModel
    let tag = runTag()
    private struct State {
        var occupied = false
        var people = 0
        var counter = 0
    }
    private let state = Mutex(State())

    init(id: String, room: String, auto: Bool, model: RoomModel, settings: SimSettings, emit: @escaping @Sendable (SimEvent) -> Void) {
        self.id = id; self.room = room; self.auto = auto; self.model = model
        rate = settings.rate(for: .presence)
        rng = LockedRandom(seed: settings.seed, salt: id)
        link = SimLink(
            id: id, kind: .presence, contractType: "presence_sensor", room: room, fw: "0.9.3", settings: settings,
            resendProtocolSeconds: 10, resendCapProtocolSeconds: 300, emit: emit)
    }

    var topic: String { "clinic/\(link.site)/room/\(room)/presence/\(id)" }

    private func payload(msgId: String?) -> String {
        let (o, p) = state.withLock { ($0.occupied, $0.people) }
        return JSONText.object { j in
            j.add("occupied", o); j.add("people", p); j.add("ts", Time.rfc3339(Date()))
            if let msgId { j.add("msg_id", msgId) }
        }
    }

    private func change(_ occ: Bool, _ n: Int) -> String {
        let (msgId, p) = state.withLock { s in
            s.occupied = occ; s.people = occ ? max(1, n) : 0; s.counter += 1
            return ("\(id)-\(tag)-\(String(format: "%06d", s.counter))", s.people)
        }
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

    public var isOccupied: Bool { state.withLock { $0.occupied } }

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
