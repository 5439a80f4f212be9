import EdgeCore
import EdgeStore
import EdgeTestSupport
import Foundation
import Logging
@testable import MedicEdge
import Testing

/// The no-show scheduler in-process on the injected clock: an in-memory store, a `ManualClock`
/// that the test moves (checks every 60 s, 15 min of grace), and the clock-jump rule seen on the
/// same clock. The same against the real daemon and libfaketime: `ClockJumpTests`.
@Suite("No-show scheduler on the injected clock")
struct NoShowSchedulerTests {
    @Test(
        "Appointments due in 1 and 75 min: the first signalled at the check after its grace; a 3 h forward jump skips the second (no signal, judged)"
    )
    func signalsOnTheInjectedClock() async throws {
        let minute: Int64 = 60_000
        let clock = ManualClock()
        let db = try AppDatabase.inMemory()
        let t0 = clock.nowMs()
        try await db.write { tx in
            for (id, start) in [("a-due", t0 - 14 * minute), ("b-later", t0 + 60 * minute)] {
                try tx.upsertAppointment(
                    AppointmentRow(
                        id: id, patientId: "p-\(id)", professionalId: "pr1", serviceId: nil, roomId: nil, startMs: start,
                        endMs: start + 30 * minute, scheduledStart: Time.rfc3339(ms: start),
                        scheduledEnd: Time.rfc3339(ms: start + 30 * minute), status: "scheduled", createdAt: nil, updatedAt: nil))
            }
        }
        var logger = Logger(label: "noshow-test")
        logger.logLevel = .critical
        let config = EdgeConfig()
        #expect(config.noshowGraceMinutes == 15 && config.noshowCheckIntervalSeconds == 60)
        let scheduler = NoShowScheduler(config: config, db: db, clock: clock, logger: logger)
        let signalled = { try db.pendingBatch(limit: 100).map(\.event).filter { $0.name == "clinic/noshow.detected" }.map(\.source) }

        let loop = Task { await scheduler.run() }
        #expect(await clock.untilSleeping(), "the first check (at t0) done, asleep for 60 s")
        #expect(try signalled().isEmpty, "due at t0 + 1 min")
        #expect(clock.sleepers == [60_000_000_000])
        clock.advance(seconds: 60)
        #expect(await clock.untilSleeping(), "the check at t0 + 60 s done")
        #expect(try signalled() == ["appointment:a-due"])

        // An NTP step of 3 h forward between two checks: b's moment (t0 + 75 min) is skipped over.
        clock.jumpWall(ms: 3 * 3_600_000)
        clock.advance(seconds: 60)
        #expect(await clock.untilSleeping(), "the check after the jump done")
        #expect(try signalled() == ["appointment:a-due"], "no signal for the appointment whose moment the jump skipped")
        #expect(try await db.read { try $0.dueNoShows(nowMs: clock.nowMs(), graceMs: 15 * minute) }.isEmpty, "both judged, once")
        loop.cancel()
        await loop.value
    }
}
