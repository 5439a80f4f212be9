import EdgeCore
import EdgeStore
import Foundation
import GRDB
import Logging

/// The disk budget (CONTRACT §5): past `storage.max_bytes`, telemetry goes oldest-first and
/// `integration/edge.data_dropped` says what went; clinical data is never dropped.
struct StorageBudget {
    let config: EdgeConfig
    let db: AppDatabase
    let state: EdgeState
    let metrics: EdgeMetrics
    let logger: Logger

    func enforce() async {
        let budget = config.storageMaxBytes
        var used = db.usedBytes()
        if used > budget {
            _ = try? await db.writer.writeWithoutTransaction { db in
                try db.execute(sql: "PRAGMA wal_checkpoint(TRUNCATE)")
                try db.execute(sql: "PRAGMA incremental_vacuum")
            }
            used = db.usedBytes()
        }
        var evicting = false
        var rounds = 0
        while used > budget, rounds < 50 {
            rounds += 1
            evicting = true
            let dropped: Bool = (try? await db.writer.write { db -> Bool in
                let total = try Int.fetchOne(db, sql: "SELECT count(*) FROM outbox WHERE class = 1") ?? 0
                guard total > 0 else { return false }
                let n = max(1, total / 4)
                let r = try Row.fetchOne(db, sql: "SELECT count(*) AS c, min(created_ms) AS o, max(created_ms) AS n, max(seq) AS s FROM (SELECT seq, created_ms FROM outbox WHERE class = 1 ORDER BY seq LIMIT ?)", arguments: [n])!
                let maxSeq: Int64 = r["s"]
                try db.execute(sql: "DELETE FROM outbox WHERE class = 1 AND seq <= ?", arguments: [maxSeq])
                let now = Time.nowMs()
                let count: Int = r["c"]; let oldest: Int64 = r["o"]; let newest: Int64 = r["n"]
                try db.execute(sql: "INSERT INTO dropped (class, count, oldest_ms, newest_ms, at_ms) VALUES ('telemetry', ?, ?, ?, ?)", arguments: [count, oldest, newest, now])
                let data = JSONText.object { j in
                    j.add("tenant_id", config.tenantId); j.add("site_id", config.siteId); j.add("class", "telemetry")
                    j.add("count", count); j.add("oldest_at", Time.rfc3339(ms: oldest)); j.add("newest_at", Time.rfc3339(ms: newest))
                    j.add("reason", "disk_budget")
                }
                try Ledger.enqueue(db, name: "integration/edge.data_dropped", eventClass: .clinical, source: "edge:storage", data: data, nowMs: now)
                return true
            }) ?? false
            if !dropped { break }
            _ = try? await db.writer.writeWithoutTransaction { db in
                try db.execute(sql: "PRAGMA wal_checkpoint(TRUNCATE)")
                try db.execute(sql: "PRAGMA incremental_vacuum")
            }
            used = db.usedBytes()
            logger.warning("storage: over the disk budget (\(budget) bytes): oldest telemetry dropped and reported; now \(used) bytes")
        }
        let st: StorageState = used > budget ? .overBudget : (evicting ? .evicting : .ok)
        if st == .overBudget && state.storage.0 != .overBudget {
            logger.error("storage: clinical data alone fills the disk budget (\(used) of \(budget) bytes): clinical data is kept, new telemetry is refused")
        }
        state.setStorage(st, used: used)
        metrics.storage(used: used, budget: budget)
    }
}
