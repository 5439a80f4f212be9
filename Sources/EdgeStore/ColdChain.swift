import EdgeCore
import Foundation
import GRDB

// The cold-chain family (CONTRACT §6): `coldchain_readings` (each fridge's temperature log),
// `coldchain_excursions` (with the staff's acknowledgement), `coldchain_sensors` (the last
// reading heard per fridge, and whether its silence is raised) and `coldchain_days` (the days
// whose daily summary was sent).

/// What is known of a fridge's sensor.
public struct ColdSensorRow: Sendable, Equatable {
    public var device: String?
    /// The last reading's own time (its `ts` when plausible).
    public var lastReadingMs: Int64?
    /// When the appliance last heard a reading (its wall clock).
    public var lastHeardMs: Int64?
    /// Set while the silence alert is raised.
    public var silentSinceMs: Int64?
}

extension ExcursionRecord {
    init(row r: Row) {
        self.init(
            id: r["id"], room: r["room_key"], device: r["device_id"], startedMs: r["started_ms"], endedMs: r["ended_ms"],
            minC: r["min_c"], maxC: r["max_c"], alarmMs: r["alarm_ms"], ackBy: r["ack_by"], ackMs: r["ack_ms"], action: r["action"])
    }
}

extension StoreTransaction {
    static let excursionColumns = "id, room_key, device_id, started_ms, ended_ms, min_c, max_c, alarm_ms, ack_by, ack_ms, action"

    // MARK: readings

    /// Logs one reading (a repeat of the same time and device is kept once).
    public func recordColdReading(room: String, atMs: Int64, device: String, tempC: Double) throws {
        try db.cachedStatement(sql: "INSERT OR IGNORE INTO coldchain_readings (room_key, at_ms, device_id, temp_c) VALUES (?,?,?,?)")
            .execute(arguments: [room, atMs, device, tempC])
    }
    /// The room's readings in [fromMs, toMs), by time.
    public func coldReadings(room: String, fromMs: Int64, toMs: Int64) throws -> [ColdReading] {
        try Row.fetchAll(
            db, sql: "SELECT at_ms, temp_c FROM coldchain_readings WHERE room_key = ? AND at_ms >= ? AND at_ms < ? ORDER BY at_ms",
            arguments: [room, fromMs, toMs]
        ).map { ColdReading(atMs: $0["at_ms"], tempC: $0["temp_c"]) }
    }
    /// The time of the room's first logged reading (nil: none).
    public func firstColdReadingMs(room: String) throws -> Int64? {
        try Int64.fetchOne(db, sql: "SELECT min(at_ms) FROM coldchain_readings WHERE room_key = ?", arguments: [room])
    }

    // MARK: excursions

    /// The room's open excursion (at most one).
    public func openExcursion(room: String) throws -> ExcursionRecord? {
        try Row.fetchOne(
            db.cachedStatement(sql: "SELECT \(Self.excursionColumns) FROM coldchain_excursions WHERE room_key = ? AND ended_ms IS NULL"),
            arguments: [room]
        ).map(ExcursionRecord.init(row:))
    }
    public func excursion(id: String) throws -> ExcursionRecord? {
        try Row.fetchOne(db, sql: "SELECT \(Self.excursionColumns) FROM coldchain_excursions WHERE id = ?", arguments: [id])
            .map(ExcursionRecord.init(row:))
    }
    public func startExcursion(_ e: ExcursionRecord, limits: MetricLimits) throws {
        try db.execute(
            sql: """
                INSERT INTO coldchain_excursions (id, room_key, device_id, started_ms, ended_ms, min_c, max_c, limit_min, limit_max, alarm_ms)
                VALUES (?,?,?,?,?,?,?,?,?,?)
                """, arguments: [e.id, e.room, e.device, e.startedMs, e.endedMs, e.minC, e.maxC, limits.min, limits.max, e.alarmMs])
    }
    /// Keeps an open excursion's extremes and last device.
    public func extendExcursion(id: String, minC: Double, maxC: Double, device: String) throws {
        try db.cachedStatement(sql: "UPDATE coldchain_excursions SET min_c = ?, max_c = ?, device_id = ? WHERE id = ?")
            .execute(arguments: [minC, maxC, device, id])
    }
    public func markExcursionAlarm(id: String, atMs: Int64) throws {
        try db.execute(sql: "UPDATE coldchain_excursions SET alarm_ms = ? WHERE id = ? AND alarm_ms IS NULL", arguments: [atMs, id])
    }
    public func endExcursion(id: String, endedMs: Int64) throws {
        try db.execute(sql: "UPDATE coldchain_excursions SET ended_ms = ? WHERE id = ? AND ended_ms IS NULL", arguments: [endedMs, id])
    }
    /// Records the staff's acknowledgement; false when it was already acknowledged (or is unknown).
    public func acknowledgeExcursion(id: String, by name: String, atMs: Int64, action: String) throws -> Bool {
        try db.execute(
            sql: "UPDATE coldchain_excursions SET ack_by = ?, ack_ms = ?, action = ? WHERE id = ? AND ack_by IS NULL",
            arguments: [name, atMs, action, id])
        return db.changesCount > 0
    }
    /// Open excursions (`openOnly`), or those started since `sinceMs` or still open, newest first.
    public func excursions(sinceMs: Int64, openOnly: Bool) throws -> [ExcursionRecord] {
        let filter = openOnly ? "ended_ms IS NULL" : "(started_ms >= ? OR ended_ms IS NULL OR ended_ms >= ?)"
        return try Row.fetchAll(
            db, sql: "SELECT \(Self.excursionColumns) FROM coldchain_excursions WHERE \(filter) ORDER BY started_ms DESC",
            arguments: openOnly ? [] : [sinceMs, sinceMs]
        ).map(ExcursionRecord.init(row:))
    }
    /// What the console's banner lists: open excursions, and unacknowledged ones that became an alarm.
    public func excursionsNeedingAttention() throws -> [ExcursionRecord] {
        try Row.fetchAll(
            db,
            sql: """
                SELECT \(Self.excursionColumns) FROM coldchain_excursions
                WHERE ended_ms IS NULL OR (alarm_ms IS NOT NULL AND ack_by IS NULL) ORDER BY started_ms
                """
        ).map(ExcursionRecord.init(row:))
    }
    /// The room's excursions overlapping [fromMs, toMs), by start.
    public func excursions(room: String, overlappingFrom fromMs: Int64, to toMs: Int64) throws -> [ExcursionRecord] {
        try Row.fetchAll(
            db,
            sql: """
                SELECT \(Self.excursionColumns) FROM coldchain_excursions
                WHERE room_key = ? AND started_ms < ? AND (ended_ms IS NULL OR ended_ms >= ?) ORDER BY started_ms
                """, arguments: [room, toMs, fromMs]
        ).map(ExcursionRecord.init(row:))
    }

    // MARK: sensors

    public func coldSensor(room: String) throws -> ColdSensorRow? {
        try Row.fetchOne(
            db.cachedStatement(
                sql: "SELECT device_id, last_reading_ms, last_heard_ms, silent_since_ms FROM coldchain_sensors WHERE room_key = ?"),
            arguments: [room]
        ).map {
            ColdSensorRow(
                device: $0["device_id"], lastReadingMs: $0["last_reading_ms"], lastHeardMs: $0["last_heard_ms"], silentSinceMs: $0["silent_since_ms"])
        }
    }
    /// Every fridge's sensor, by room key.
    public func coldSensors() throws -> [String: ColdSensorRow] {
        var out: [String: ColdSensorRow] = [:]
        for r in try Row.fetchAll(db, sql: "SELECT room_key, device_id, last_reading_ms, last_heard_ms, silent_since_ms FROM coldchain_sensors") {
            out[r["room_key"]] = ColdSensorRow(
                device: r["device_id"], lastReadingMs: r["last_reading_ms"], lastHeardMs: r["last_heard_ms"], silentSinceMs: r["silent_since_ms"])
        }
        return out
    }
    /// A reading was heard (the latest reading time is kept; silence is left to `setColdSensorSilent`).
    public func heardColdSensor(room: String, device: String, readingMs: Int64, heardMs: Int64) throws {
        try db.cachedStatement(
            sql: """
                INSERT INTO coldchain_sensors (room_key, device_id, last_reading_ms, last_heard_ms) VALUES (?,?,?,?)
                ON CONFLICT(room_key) DO UPDATE SET device_id = excluded.device_id,
                  last_reading_ms = max(coalesce(last_reading_ms, 0), excluded.last_reading_ms), last_heard_ms = excluded.last_heard_ms
                """
        ).execute(arguments: [room, device, readingMs, heardMs])
    }
    /// Raises (a time) or clears (nil) the room's silence alert.
    public func setColdSensorSilent(room: String, sinceMs: Int64?) throws {
        try db.execute(
            sql: """
                INSERT INTO coldchain_sensors (room_key, silent_since_ms) VALUES (?,?)
                ON CONFLICT(room_key) DO UPDATE SET silent_since_ms = excluded.silent_since_ms
                """, arguments: [room, sinceMs])
    }

    // MARK: daily summaries

    public func dailySummarySent(room: String, date: String) throws -> Bool {
        try Bool.fetchOne(db, sql: "SELECT EXISTS(SELECT 1 FROM coldchain_days WHERE room_key = ? AND date = ?)", arguments: [room, date]) ?? false
    }
    public func markDailySummarySent(room: String, date: String, eventId: String, nowMs: Int64) throws {
        try db.execute(
            sql: "INSERT OR IGNORE INTO coldchain_days (room_key, date, event_id, sent_ms) VALUES (?,?,?,?)",
            arguments: [room, date, eventId, nowMs])
    }

    // MARK: retention

    /// Thins readings older than `beforeMs` to the first, last, lowest and highest of each
    /// `bucketMs` bucket of each room (so a day's extremes and its opening and closing survive),
    /// at most `limit` rows deleted. Returns how many went.
    public func thinColdReadings(beforeMs: Int64, bucketMs: Int64, limit: Int) throws -> Int {
        try db.execute(
            sql: """
                DELETE FROM coldchain_readings WHERE (room_key, at_ms, device_id) IN (
                  SELECT room_key, at_ms, device_id FROM (
                    SELECT room_key, at_ms, device_id,
                      row_number() OVER w_first AS r_first, row_number() OVER w_last AS r_last,
                      row_number() OVER w_min AS r_min, row_number() OVER w_max AS r_max
                    FROM coldchain_readings WHERE at_ms < ?
                    WINDOW w_first AS (PARTITION BY room_key, at_ms / ? ORDER BY at_ms, device_id),
                           w_last AS (PARTITION BY room_key, at_ms / ? ORDER BY at_ms DESC, device_id DESC),
                           w_min AS (PARTITION BY room_key, at_ms / ? ORDER BY temp_c, at_ms),
                           w_max AS (PARTITION BY room_key, at_ms / ? ORDER BY temp_c DESC, at_ms))
                  WHERE r_first > 1 AND r_last > 1 AND r_min > 1 AND r_max > 1 LIMIT ?)
                """, arguments: [beforeMs, bucketMs, bucketMs, bucketMs, bucketMs, limit])
        return db.changesCount
    }
    /// Deletes cold-chain records (readings, ended excursions, sent days) older than `beforeMs`,
    /// at most `limit` rows of each table. Returns how many went.
    public func purgeColdChain(beforeMs: Int64, beforeDate: String, limit: Int) throws -> Int {
        var n = 0
        try db.execute(
            sql: """
                DELETE FROM coldchain_readings WHERE (room_key, at_ms, device_id) IN (
                  SELECT room_key, at_ms, device_id FROM coldchain_readings WHERE at_ms < ? LIMIT ?)
                """, arguments: [beforeMs, limit])
        n += db.changesCount
        try db.execute(
            sql: "DELETE FROM coldchain_excursions WHERE id IN (SELECT id FROM coldchain_excursions WHERE ended_ms < ? LIMIT ?)",
            arguments: [beforeMs, limit])
        n += db.changesCount
        try db.execute(
            sql: "DELETE FROM coldchain_days WHERE (room_key, date) IN (SELECT room_key, date FROM coldchain_days WHERE date < ? LIMIT ?)",
            arguments: [beforeDate, limit])
        n += db.changesCount
        return n
    }
}
