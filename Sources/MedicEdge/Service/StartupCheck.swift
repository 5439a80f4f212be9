import EdgeCore
import EdgeStore
import Foundation
import Logging

/// The start-up check of the daemon's own database (CONTRACT §7): the store checks it
/// (`PRAGMA quick_check`), moves a damaged file aside and carries over what it can read
/// (`AppDatabase.openChecked`); here the recovery is logged as an error and reported to the
/// cloud as `integration/edge.storage_recovered`. The roster comes back by itself: the fresh
/// database has no sync cursor, so the roster sync's first pull is a full one.
enum StartupCheck {
    /// Opens the database, recovering a damaged one. Throws only for what is not the
    /// database's own damage (the data directory cannot be written, the disk is full).
    static func open(config: EdgeConfig, nowMs: Int64, logger: Logger) throws -> AppDatabase {
        let (db, recovery) = try AppDatabase.openChecked(
            dataDir: config.dataDir, budgetBytes: config.storageMaxBytes, backgroundCheckpoints: true, nowMs: nowMs)
        if let recovery {
            logger.error("\(logLine(recovery))")
            _ = try db.write { tx in
                try tx.enqueue(
                    name: "integration/edge.storage_recovered", eventClass: .clinical, source: "edge:storage",
                    data: eventData(recovery, config: config, nowMs: nowMs), nowMs: nowMs)
            }
        }
        return db
    }

    /// The one error line: what was wrong, where the file went, what was carried and lost.
    static func logLine(_ r: StorageRecovery) -> String {
        let carried = r.carried.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
        let lost = r.lost.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
        var s = "storage: the database was damaged (\(r.problem)); moved aside to \(r.movedTo) (kept), a fresh database made"
        if let wal = r.walSetAside { s += "; its WAL was the damage and was not read (kept as \(wal))" }
        s += "; carried: \(carried.isEmpty ? "nothing" : carried)"
        if !lost.isEmpty { s += "; lost (unreadable stretches or refused rows): \(lost)" }
        if !r.unreadable.isEmpty { s += "; unreadable tables: \(r.unreadable.joined(separator: ", "))" }
        return s + "; the roster is pulled again"
    }

    /// `integration/edge.storage_recovered`: tenant_id, site_id, moved_to, wal_set_aside,
    /// problem, carried {table: rows}, lost {table: count}, unreadable [table], at.
    static func eventData(_ r: StorageRecovery, config: EdgeConfig, nowMs: Int64) -> String {
        func counts(_ d: [String: Int]) -> String {
            JSONText.object { j in for (k, v) in d.sorted(by: { $0.key < $1.key }) { j.add(k, v) } }
        }
        return JSONText.object { j in
            j.add("tenant_id", config.tenantId); j.add("site_id", config.siteId)
            j.add("moved_to", r.movedTo); j.add("wal_set_aside", r.walSetAside); j.add("problem", r.problem)
            j.addRaw("carried", counts(r.carried)); j.addRaw("lost", counts(r.lost))
            j.addRaw("unreadable", "[" + r.unreadable.map(JSONText.quote).joined(separator: ",") + "]")
            j.add("at", Time.rfc3339(ms: nowMs))
        }
    }
}
