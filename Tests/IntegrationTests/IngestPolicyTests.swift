import EdgeCore
@testable import MedicEdge
import Testing

/// The ingest rules (pure logic, `IngestPolicy`) and the housekeeping schedule (`JobSchedule`).
@Suite("Ingest policy")
struct IngestPolicyTests {
    static let site = "s"
    static let policy = IngestPolicy.standard
    static func decode(_ topic: String, _ payload: String) -> DeviceMessage {
        DeviceMessage.decode(topic: "clinic/\(site)/" + topic, payload: Array(payload.utf8), site: site)
    }
    static let scan = decode(
        "kiosk/k1/scan",
        #"{"scan_id": "k1-000001", "qr": "medic:6f1c2a9e-0000-4000-8000-000000000001:Zx9", "ts": "2026-11-29T10:01:00Z"}"#)
    static let presence = decode("room/r1/presence/p1", #"{"msg_id": "m1", "occupied": true, "ts": "2026-11-29T10:01:00Z"}"#)
    static let badScan = decode("kiosk/k1/scan", "not json")

    @Test("The bounds: 256 messages, 20 ms; linger 8 to 63 messages for 2 ms")
    func bounds() {
        let p = Self.policy
        #expect(p.maxBatch == 256 && p.maxBatchNs == 20_000_000)
        #expect(p.lingerFrom == 8 && p.lingerBelow == 64 && p.lingerNs == 2_000_000)
    }

    @Test("Urgent: a kiosk scan on either link, anything on the kiosk link, nothing else")
    func urgent() {
        let p = Self.policy
        if case .kiosk = Self.scan {} else { Issue.record("the sample scan decodes as a scan: \(Self.scan)") }
        if case .presence = Self.presence {} else { Issue.record("the sample presence decodes: \(Self.presence)") }
        if case .reject = Self.badScan {} else { Issue.record("a broken scan is a reject: \(Self.badScan)") }
        #expect(p.isUrgent(Self.scan, on: .main))
        #expect(p.isUrgent(Self.scan, on: .kiosk))
        #expect(p.isUrgent(Self.badScan, on: .kiosk), "a broken scan on the kiosk link still gets its quick answer")
        #expect(!p.isUrgent(Self.badScan, on: .main))
        #expect(!p.isUrgent(Self.presence, on: .main))
    }

    @Test("The kiosk link subscribes to scans only, the main link to the rest; results QoS 1 on the kiosk link, acks QoS 0 on the main one")
    func links() {
        let p = Self.policy
        let kiosk = p.subscriptions(.kiosk, site: Self.site), main = p.subscriptions(.main, site: Self.site)
        #expect(kiosk == ["clinic/s/kiosk/+/scan"])
        #expect(Set(kiosk + main) == Set(DeviceTopic.subscriptions(site: Self.site)) && !main.contains { kiosk.contains($0) })
        #expect(p.route(kioskResult: true) == (.kiosk, 1))
        #expect(p.route(kioskResult: false) == (.main, 0))
    }

    @Test("mqtt.max_pending_bytes is split: the kiosk link an eighth, at most 1 MiB, the main link the rest")
    func intakeShare() {
        let p = Self.policy
        for total in [64 << 10, 4 << 20, 64 << 20] {
            let k = p.intakeShare(.kiosk, maxPendingBytes: total), m = p.intakeShare(.main, maxPendingBytes: total)
            #expect(k + m == total)
            #expect(k == min(1 << 20, total / 8))
        }
    }

    @Test("Order: scans, then the carried-over rest of the last batch, then the others")
    func order() {
        let p = Self.policy
        #expect(p.order(urgent: [Int](), carry: [], others: [1, 2]) == [1, 2])
        #expect(p.order(urgent: [9], carry: [5, 6], others: [1, 2]) == [9, 5, 6, 1, 2])
        #expect(p.order(urgent: [], carry: [5], others: [1]) == [5, 1])
    }

    @Test("Linger: only a small batch under a steady stream and without a scan; the wait ends on a scan or once the batch is large enough")
    func linger() {
        let p = Self.policy
        #expect(!p.lingers(count: 1, holdsUrgent: false), "a lone message never waits")
        #expect(!p.lingers(count: 7, holdsUrgent: false))
        #expect(p.lingers(count: 8, holdsUrgent: false))
        #expect(p.lingers(count: 63, holdsUrgent: false))
        #expect(!p.lingers(count: 64, holdsUrgent: false))
        #expect(!p.lingers(count: 20, holdsUrgent: true), "a scan in hand never waits")
        #expect(p.lingerEnds(inHand: 10, urgentWaiting: 1, othersWaiting: 0))
        #expect(p.lingerEnds(inHand: 10, urgentWaiting: 0, othersWaiting: 54))
        #expect(!p.lingerEnds(inHand: 10, urgentWaiting: 0, othersWaiting: 53))
    }

    @Test("In a transaction: scans commit on their own; a scan arriving joins the batch, which then commits; otherwise the time bound")
    func step() {
        let p = Self.policy
        var asked = 0
        func step(taken: Int, next: Bool, last: Bool, elapsed: UInt64 = 0, scans: Bool = false) -> IngestPolicy.Step {
            p.step(
                taken: taken, nextUrgent: next, lastUrgent: last, elapsedNs: elapsed,
                scansArrived: {
                    asked += 1; return scans
                })
        }
        #expect(step(taken: 0, next: false, last: false, elapsed: 1_000_000_000, scans: true) == .take, "the first message is always taken")
        #expect(step(taken: 3, next: true, last: true, elapsed: 1_000_000_000) == .take, "scans go on together")
        #expect(asked == 0)
        #expect(step(taken: 3, next: false, last: true, scans: true) == .commit, "scans commit on their own, before any telemetry")
        #expect(asked == 0, "the urgent queue is not taken from then")
        #expect(step(taken: 3, next: false, last: false, scans: true) == .joinScansAndCommit)
        #expect(step(taken: 3, next: false, last: false, elapsed: 20_000_000) == .take)
        #expect(step(taken: 3, next: false, last: false, elapsed: 20_000_001) == .commit)
        #expect(asked == 3)
    }
}

@Suite("Housekeeping schedule")
struct JobScheduleTests {
    @Test("Every job runs at the first tick, then once its period has passed; a job needing a steady clock skips its turn while the clock is not")
    func schedule() {
        let s: UInt64 = 1_000_000_000
        let jobs = [
            PeriodicJob("second", every: .seconds(1)) { _ in },
            PeriodicJob("ten", every: .seconds(10), needsSteadyClock: true) { _ in },
            PeriodicJob("hour", every: .seconds(3600), needsSteadyClock: true) { _ in },
        ]
        #expect(jobs.map(\.periodNs) == [s, 10 * s, 3600 * s])
        var schedule = JobSchedule(jobs: jobs.count)
        let t0: UInt64 = 5 * s
        #expect(schedule.due(jobs, monoNs: t0, clockSteady: true) == [0, 1, 2])
        #expect(schedule.due(jobs, monoNs: t0 + s, clockSteady: true) == [0])
        #expect(schedule.due(jobs, monoNs: t0 + 9 * s, clockSteady: true) == [0])
        #expect(schedule.due(jobs, monoNs: t0 + 10 * s + 1_000, clockSteady: true) == [0, 1])
        // After a jump: the 10-s job's turn comes and is skipped; the next one is 10 s later.
        #expect(schedule.due(jobs, monoNs: t0 + 20 * s + 2_000, clockSteady: false) == [0])
        #expect(schedule.due(jobs, monoNs: t0 + 21 * s + 3_000, clockSteady: true) == [0])
        #expect(schedule.due(jobs, monoNs: t0 + 30 * s + 2_000, clockSteady: true) == [0, 1])
        #expect(schedule.due(jobs, monoNs: t0 + 3600 * s, clockSteady: true) == [0, 1, 2])
    }
}
