import EdgeCore
import EdgeStore
import Foundation
import GRDB
import Logging

/// Emits exactly one `clinic/noshow.detected` per eligible appointment (CONTRACT §2),
/// also offline and across restarts (the `noshows` table remembers).
struct NoShowScheduler {
    let config: EdgeConfig
    let db: AppDatabase
    let logger: Logger

    @discardableResult
    func check(nowMs: Int64) async throws -> Int {
        let grace = Int64(config.noshowGraceMinutes * 60_000)
        return try await db.writer.write { db in
            let rows = try Row.fetchAll(db, sql: """
                SELECT a.id, a.patient_id, a.professional_id, a.start_ms, a.status FROM appointments a
                WHERE a.status IN ('scheduled', 'confirmed') AND a.start_ms + ? <= ?
                  AND NOT EXISTS (SELECT 1 FROM checkins c WHERE c.appointment_id = a.id)
                  AND NOT EXISTS (SELECT 1 FROM noshows n WHERE n.appointment_id = a.id)
                """, arguments: [grace, nowMs])
            for r in rows {
                let id: String = r["id"]
                let startMs: Int64 = r["start_ms"]
                let data = JSONText.object { j in
                    j.add("tenant_id", config.tenantId); j.add("site_id", config.siteId); j.add("appointment_id", id)
                    j.add("patient_id", r["patient_id"] as String?); j.add("professional_id", r["professional_id"] as String?)
                    j.add("scheduled_start", Time.rfc3339(ms: startMs)); j.add("detected_at", Time.rfc3339(ms: nowMs))
                }
                let eid = try Ledger.enqueue(db, name: "clinic/noshow.detected", eventClass: .clinical, source: "appointment:\(id)", data: data, nowMs: nowMs)
                try db.execute(sql: "INSERT INTO noshows (appointment_id, detected_ms, event_id) VALUES (?,?,?)", arguments: [id, nowMs, eid])
            }
            return rows.count
        }
    }

    func run() async {
        while !Task.isCancelled {
            do {
                let n = try await check(nowMs: Time.nowMs())
                if n > 0 { logger.info("noshow: \(n) no-show signal(s) recorded") }
            } catch { logger.error("noshow: check failed: \(error)") }
            try? await Task.sleep(for: .milliseconds(Int(config.noshowCheckIntervalSeconds * 1000)))
        }
    }
}
