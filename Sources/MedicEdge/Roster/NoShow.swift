import EdgeCore
import EdgeStore
import Foundation
import Logging

/// Emits exactly one `clinic/noshow.detected` per eligible appointment (CONTRACT §2),
/// also offline and across restarts (the `noshows` table remembers). An appointment whose
/// no-show moment (scheduled start + grace) a forward clock jump skipped over gets none (the
/// cloud's own no-show workflow still judges it): its row is kept with an empty `event_id`,
/// so it is never looked at again.
struct NoShowScheduler {
    let config: EdgeConfig
    let db: AppDatabase
    /// Wall-clock jumps, seen on `clock` (shared with housekeeping).
    let watch: ClockWatch
    /// The injected clock: the check's time and the wait between checks.
    let clock: any EdgeClock
    let metrics: EdgeMetrics?
    let logger: Logger

    init(
        config: EdgeConfig, db: AppDatabase, watch: ClockWatch = ClockWatch(), clock: any EdgeClock = SystemClock(),
        metrics: EdgeMetrics? = nil, logger: Logger
    ) {
        self.config = config; self.db = db; self.watch = watch; self.clock = clock; self.metrics = metrics; self.logger = logger
    }

    /// The no-show check at the clock's time; returns how many signals were recorded.
    @discardableResult
    func check() async throws -> Int { try await check(nowMs: clock.nowMs(), monoNs: clock.monoNs()) }

    /// The no-show check at a given time; returns how many signals were recorded.
    @discardableResult
    func check(nowMs: Int64, monoNs: UInt64) async throws -> Int {
        // A jump is seen here too, before the query: the check may come before housekeeping's tick.
        if let jump = watch.observe(wallMs: nowMs, monoNs: monoNs) { ClockJumpReport.say(jump, metrics: metrics, logger: logger) }
        let grace = Int64(config.noshowGraceMinutes * 60_000)
        let (emitted, skipped) = try await db.write { db -> (Int, Int) in
            // The rule's statuses and comparison: `NoShowRule` (EdgeCore), checked against it by a test.
            let rows = try db.dueNoShows(nowMs: nowMs, graceMs: grace)
            var emitted = 0, skipped = 0
            for r in rows {
                let id = r.id
                let startMs = r.startMs
                if watch.wasSkipped(startMs + grace) {
                    try db.recordNoShow(appointmentId: id, nowMs: nowMs, eventId: "")
                    skipped += 1
                    continue
                }
                let data = JSONText.object { j in
                    j.add("tenant_id", config.tenantId); j.add("site_id", config.siteId); j.add("appointment_id", id)
                    j.add("patient_id", r.patientId); j.add("professional_id", r.professionalId)
                    j.add("scheduled_start", Time.rfc3339(ms: startMs)); j.add("detected_at", Time.rfc3339(ms: nowMs))
                }
                let eid = try db.enqueue(name: "clinic/noshow.detected", eventClass: .clinical, source: "appointment:\(id)", data: data, nowMs: nowMs)
                try db.recordNoShow(appointmentId: id, nowMs: nowMs, eventId: eid)
                emitted += 1
            }
            return (emitted, skipped)
        }
        if skipped > 0 {
            logger.warning("noshow: \(skipped) appointment(s) whose no-show moment a clock jump skipped over get no signal (the cloud judges them)")
        }
        return emitted
    }

    func run(state: EdgeState? = nil) async {
        while !Task.isCancelled {
            state?.busy("noshow")
            do {
                let n = try await check()
                if n > 0 { logger.info("noshow: \(n) no-show signal(s) recorded") }
            } catch { logger.error("noshow: check failed: \(error)") }
            state?.idle("noshow")
            try? await clock.sleep(seconds: config.noshowCheckIntervalSeconds)
        }
    }
}

/// How a clock jump is told: an error line and `medic_edge_clock_jumps_total{direction}`.
enum ClockJumpReport {
    static func say(_ jump: ClockWatch.Jump, metrics: EdgeMetrics?, logger: Logger) {
        metrics?.clockJump(jump.direction.rawValue)
        let text = jump.direction == .forward ? "forward by about \(jump.seconds) s" : "backward by about \(-jump.seconds) s"
        logger.error(
            """
            clock: the wall clock jumped \(text) (now \(Time.rfc3339(ms: jump.actualMs))); no-shows due inside the jump are not signalled; is time \
            sync (systemd-timesyncd, chrony) working?
            """
        )
    }
}
