import EdgeCore
import EdgeMQTT
import Foundation
import Logging
import Synchronization

/// A wearable gateway (devices/wearable_gateway): a batch every 5 minutes, 20–200 samples,
/// one batch in flight; the same batch with the same `msg_id` is resent after 30 s (backing
/// off to 5 min) until `{"msg_id"}` arrives on its ack topic.
public final class WearableGatewaySim: SimRunnable, Sendable {
    public let id: String
    let link: SimLink
    let rng: LockedRandom
    let rate: Double
    let patients: [String]
    let batchSize: ClosedRange<Int>
    let auto: Bool
    let faults: Bool
    let tag = runTag()
    private struct State {
        var queue: [(String, String)] = []
        var counter = 0
        var ackedIds: [String] = []
        var sendsById: [String: Int] = [:]
    }
    private let state = Mutex(State())
    private let wake: AsyncStream<Void>.Continuation
    private let wakeups: AsyncStream<Void>

    init(id: String, patients: [String], batchSize: ClosedRange<Int>, auto: Bool, settings: SimSettings, emit: @escaping @Sendable (SimEvent) -> Void)
    {
        self.id = id; self.batchSize = batchSize; self.auto = auto; faults = settings.faults
        rate = settings.rate(for: .wearable)
        let r = LockedRandom(seed: settings.seed, salt: id)
        rng = r
        self.patients = patients.isEmpty ? (0..<12).map { _ in r.uuid() } : patients
        var c: AsyncStream<Void>.Continuation!
        wakeups = AsyncStream(bufferingPolicy: .bufferingNewest(1)) { c = $0 }
        wake = c
        link = SimLink(
            id: id, kind: .wearable, contractType: "wearable_gateway", room: nil, fw: "2.1.0", settings: settings,
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
        let k = state.withLock {
            $0.counter += 1; return $0.counter
        }
        let msgId = "\(id)-\(tag)-\(String(format: "%05d", k))"
        let payload = JSONText.object { j in
            j.add("msg_id", msgId); j.addRaw("samples", "[" + parts.joined(separator: ",") + "]")
        }
        state.withLock { $0.queue.append((msgId, payload)) }
        link.emit(.wearableBatch(device: id, msgId: msgId, samples: n, invalid: invalid))
        wake.yield()
        return msgId
    }

    /// Times the batch was published (so far, or in all once acked); nil if unknown.
    public func sends(of msgId: String) -> Int? {
        if let s = link.sends(of: msgId) { return s }
        return state.withLock { $0.sendsById[msgId] }
    }
    public var ackedBatches: [String] { state.withLock { $0.ackedIds } }
    /// Batches not yet acked (queued or in flight).
    public var unacked: Int { state.withLock { $0.queue.count } }

    func behave() async {
        await withTaskGroup(of: Void.self) { g in
            g.addTask {
                // One batch in flight, each waiting for its ack.
                var it = self.wakeups.makeAsyncIterator()
                while !Task.isCancelled {
                    let head = self.state.withLock { $0.queue.first }
                    guard let (msgId, payload) = head else {
                        if await it.next() == nil { return }
                        continue
                    }
                    guard
                        let (json, sends, _) = await self.link.request(
                            "clinic/\(self.link.site)/wearable/\(self.id)", payload, key: msgId, giveUpAfter: nil)
                    else { return }
                    self.state.withLock {
                        $0.queue.removeFirst()
                        $0.sendsById[msgId] = sends
                        if json["error"] == nil { $0.ackedIds.append(msgId) }
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
