import EdgeCore
import Foundation
import GRDB

// The `rejects` table: device messages refused at ingest (never their payload), repeats of one
// device, kind and reason counted on one row; bounded by housekeeping (CONTRACT §5).

/// A rejected device message as `medic-edge rejects` lists it.
public struct RejectRow: Sendable, Equatable {
    public var receivedMs: Int64
    public var lastMs: Int64
    public var count: Int
    public var kind: String
    public var deviceId: String?
    public var reason: String
    public var detail: String
    public var topic: String
}

extension Ledger {
    /// Repeated rejections of one device for one kind and reason are counted on one row for
    /// this long after its first (a looping device makes at most 24 rows a day per reason).
    public static let rejectRepeatWindowMs: Int64 = 3_600_000

    /// Keeps a rejected device message (never its payload): a new row, or one more on the row
    /// of the same device, kind and reason made within `rejectRepeatWindowMs` (its topic,
    /// msg_id and detail become the latest).
    static func recordRejection(
        _ db: Database, topic: String, kind: MessageKind, deviceId: String?, msgId: String?,
        rejection: Rejection, nowMs: Int64
    ) throws {
        let topic = String(topic.prefix(512))
        if let row = try Row.fetchOne(
            db.cachedStatement(sql: "SELECT id, received_ms FROM rejects WHERE device_id IS ? AND kind = ? AND reason = ? ORDER BY id DESC LIMIT 1"),
            arguments: [deviceId, kind.rawValue, rejection.reason.rawValue]),
            let first: Int64 = row["received_ms"], nowMs >= first, nowMs - first < rejectRepeatWindowMs
        {
            let id: Int64 = row["id"]
            try db.cachedStatement(sql: "UPDATE rejects SET count = count + 1, last_ms = ?, topic = ?, msg_id = ?, detail = ? WHERE id = ?")
                .execute(arguments: [nowMs, topic, msgId, rejection.detail, id])
            return
        }
        try db.cachedStatement(
            sql: "INSERT INTO rejects (received_ms, last_ms, topic, kind, device_id, msg_id, reason, detail) VALUES (?,?,?,?,?,?,?,?)"
        )
        .execute(arguments: [nowMs, nowMs, topic, kind.rawValue, deviceId, msgId, rejection.reason.rawValue, rejection.detail])
    }

    /// One bounded step of the rejects purge: deletes at most `limit` of the oldest rows that
    /// are beyond the newest `maxRows` or older than `keepMs`. Returns how many went; the
    /// caller repeats (each step its own short transaction) while it returns `limit`.
    /// Ids only grow (AUTOINCREMENT) and rows are only deleted oldest-first, so the newest
    /// `maxRows` rows are those with an id above `max(id) - maxRows`: no count(*) needed.
    static func purgeRejects(_ db: Database, nowMs: Int64, maxRows: Int, keepMs: Int64 = deadLetterKeepMs, limit: Int = 1000) throws -> Int {
        guard let maxId = try Int64.fetchOne(db, sql: "SELECT max(id) FROM rejects") else { return 0 }
        try db.execute(
            sql: "DELETE FROM rejects WHERE id IN (SELECT id FROM rejects ORDER BY id LIMIT ?) AND (id <= ? OR last_ms < ?)",
            arguments: [limit, maxId - Int64(maxRows), nowMs - keepMs])
        return db.changesCount
    }
}

extension StoreTransaction {
    /// Keeps a rejected device message (a new row, or one more on a recent row of the same
    /// device, kind and reason).
    public func recordRejection(
        topic: String, kind: MessageKind, deviceId: String?, msgId: String?,
        rejection: Rejection, nowMs: Int64
    ) throws {
        try Ledger.recordRejection(db, topic: topic, kind: kind, deviceId: deviceId, msgId: msgId, rejection: rejection, nowMs: nowMs)
    }
    /// One bounded step of the rejects purge (oldest first, beyond `maxRows` or older than 30
    /// days); returns how many went.
    public func purgeRejects(nowMs: Int64, maxRows: Int, limit: Int = 1000) throws -> Int {
        try Ledger.purgeRejects(db, nowMs: nowMs, maxRows: maxRows, limit: limit)
    }
}

extension AppDatabase {
    /// The newest `limit` rejected messages, newest first.
    public func recentRejects(limit: Int) throws -> [RejectRow] {
        try writer.read { d in
            try Row.fetchAll(
                d, sql: "SELECT received_ms, last_ms, count, kind, device_id, reason, detail, topic FROM rejects ORDER BY id DESC LIMIT ?",
                arguments: [limit]
            )
            .map {
                RejectRow(
                    receivedMs: $0["received_ms"], lastMs: $0["last_ms"], count: $0["count"], kind: $0["kind"],
                    deviceId: $0["device_id"], reason: $0["reason"], detail: $0["detail"], topic: $0["topic"])
            }
        }
    }
}
