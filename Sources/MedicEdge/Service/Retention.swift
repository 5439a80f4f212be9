import EdgeCore
import EdgeStore
import Foundation
import Logging

/// Retention (CONTRACT §7, LGPD: keep no longer than needed), a housekeeping job by age:
/// check-ins and no-shows after `retention.checkins_days`/`noshows_days` (once their
/// appointment has left the window), kiosk results after `retention.kiosk_results_days` (and
/// never longer than the 8-day dedupe window, `purgeOldMessages`), the staff audit after
/// `retention.staff_audit_days`; appointments outside the sync window, and patients without an
/// appointment in it or a check-in of the last 24 h. Cold-chain records are the cold chain's
/// (`retention.coldchain_days`). Delivered events are deleted on delivery (the uplink).
///
/// Every purge runs in transactions of at most `batch` rows, yielding between, so kiosk scans
/// are committed between two batches instead of waiting for one long DELETE.
struct RetentionPurge: Sendable {
    let config: EdgeConfig
    let db: AppDatabase
    let logger: Logger
    var batch = 500
    static let dayMs: Int64 = 86_400_000
    /// Kiosk results serve repeated scans within the dedupe window (`purgeOldMessages`).
    static let kioskDedupeDays = 8

    /// One run at `nowMs`: what went, by table (only tables where something went).
    @discardableResult
    func run(nowMs: Int64) async -> [String: Int] {
        let r = config.retention, day = Self.dayMs, batch = self.batch
        let w = RosterSync.window(nowMs: nowMs, config: config)
        var removed: [String: Int] = [:]
        func loop(_ name: String, _ step: @escaping @Sendable (StoreTransaction) throws -> Int) async {
            var total = 0
            for _ in 0..<1_000_000 {
                let n: Int
                do { n = try await db.write { try step($0) } } catch {
                    logger.warning("retention: purging \(name) failed: \(AppDatabase.describe(error)); retried at the next run")
                    break
                }
                total += n
                if n < batch || Task.isCancelled { break }
                await Task.yield()
            }
            if total > 0 { removed[name] = total }
        }
        await loop("appointments") { try $0.purgeAppointments(outsideFrom: w.fromMs, to: w.toMs, limit: batch) }
        await loop("checkins") { try $0.purge(.checkins, olderThan: nowMs - Int64(r.checkinsDays) * day, limit: batch) }
        await loop("noshows") { try $0.purge(.noshows, olderThan: nowMs - Int64(r.noshowsDays) * day, limit: batch) }
        let kioskDays = Int64(min(r.kioskResultsDays, Self.kioskDedupeDays))
        await loop("kiosk_results") { try $0.purge(.kioskResults, olderThan: nowMs - kioskDays * day, limit: batch) }
        await loop("staff_audit") { try $0.purge(.staffAudit, olderThan: nowMs - Int64(r.staffAuditDays) * day, limit: batch) }
        await loop("patients") {
            try $0.purgePatients(withoutAppointmentFrom: w.fromMs, to: w.toMs, checkinSinceMs: nowMs - day, limit: batch)
        }
        if !removed.isEmpty {
            let list = removed.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
            logger.info("retention: removed \(list) (past retention or outside the sync window)")
        }
        return removed
    }
}
