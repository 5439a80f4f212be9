import EdgeCore
import Foundation
import GRDB

// The outbox family: `outbox` (events waiting for the cloud), `outbox_dead` (events the cloud
// refused), `outbox_figures` (their counts, kept by triggers) and `dropped` (telemetry the disk
// budget evicted, until reported). The only writers and readers of these tables.

public enum EventClass: Int, Sendable, CaseIterable {
    case clinical = 0, telemetry = 1
    public var name: String { self == .clinical ? "clinical" : "telemetry" }
}

/// A fact to report to the cloud, with its final id (fixed here, never changed).
public struct OutboxEvent: Sendable, Equatable {
    public var seq: Int64
    public var id: String
    public var name: String
    public var eventClass: EventClass
    public var source: String
    public var data: String
    public var createdMs: Int64
    public init(seq: Int64, id: String, name: String, eventClass: EventClass, source: String, data: String, createdMs: Int64) {
        self.seq = seq; self.id = id; self.name = name; self.eventClass = eventClass; self.source = source; self.data = data;
        self.createdMs = createdMs
    }
    /// The Inngest event JSON: {"id","name","ts","data"}.
    public var json: String {
        "{\"id\":\"\(id)\",\"name\":\(JSONText.quote(name)),\"ts\":\(createdMs),\"data\":\(data)}"
    }
}

/// The store's write paths on an open `Database` (inside the store; other modules reach them
/// through `StoreTransaction`).
public enum Ledger {
    /// Adds an event to the outbox; returns its id.
    @discardableResult
    static func enqueue(
        _ db: Database, name: String, eventClass: EventClass, source: String, data: String,
        nowMs: Int64, ids: UUIDv7 = .shared
    ) throws -> String {
        let e = Pending(name: name, eventClass: eventClass, source: source, data: data, nowMs: nowMs, ids: ids)
        try enqueueAll(db, [e])
        return e.id
    }

    /// An event made during an ingest batch, written with the batch's others by `enqueueAll`.
    public struct Pending: Sendable {
        public var id: String, name: String, eventClass: EventClass, source: String, data: String, nowMs: Int64
        public init(name: String, eventClass: EventClass, source: String, data: String, nowMs: Int64, ids: UUIDv7 = .shared) {
            self.id = ids.next(nowMs: nowMs); self.name = name; self.eventClass = eventClass; self.source = source
            self.data = data; self.nowMs = nowMs
        }
    }
    /// Rows per multi-row insert: one statement (and one AUTOINCREMENT bookkeeping write)
    /// for this many events.
    static let rowsPerInsert = 32
    /// Adds the events to the outbox in their order (seq follows the order given).
    static func enqueueAll(_ db: Database, _ events: [Pending]) throws {
        func bind(_ b: inout RawBinder, _ e: Pending) {
            b.text(e.id); b.text(e.name); b.int(e.eventClass.rawValue); b.text(e.source); b.text(e.data); b.int(e.nowMs)
            b.int(e.data.utf8.count + e.name.utf8.count + 80)
        }
        var i = 0
        if events.count >= rowsPerInsert {
            let many = try db.cachedStatement(
                sql: "INSERT INTO outbox (id, name, class, source, data, created_ms, bytes) VALUES "
                    + Array(repeating: "(?,?,?,?,?,?,?)", count: rowsPerInsert).joined(separator: ",") + " -- raw")
            while events.count - i >= rowsPerInsert {
                try many.runRaw { b in for e in events[i..<(i + rowsPerInsert)] { bind(&b, e) } }
                i += rowsPerInsert
            }
        }
        guard i < events.count else { return }
        let one = try db.cachedStatement(sql: "INSERT INTO outbox (id, name, class, source, data, created_ms, bytes) VALUES (?,?,?,?,?,?,?) -- raw")
        for e in events[i...] { try one.runRaw { b in bind(&b, e) } }
    }

    /// How long rejected messages and dead letters are kept at most (CONTRACT §5).
    public static let deadLetterKeepMs: Int64 = 30 * 86_400_000

    /// One bounded step of the dead letters' purge (`outbox_dead`, events the cloud refused):
    /// as `purgeRejects`, oldest (by seq) first.
    static func purgeDeadLetters(_ db: Database, nowMs: Int64, maxRows: Int, keepMs: Int64 = deadLetterKeepMs, limit: Int = 1000) throws -> Int {
        // The count kept by triggers (migration v3-outbox-figures): no count(*) per step.
        let count = try Int.fetchOne(db.cachedStatement(sql: "SELECT dead FROM outbox_figures WHERE id = 1")) ?? 0
        var n = 0
        if count > maxRows {
            try db.execute(
                sql: "DELETE FROM outbox_dead WHERE seq IN (SELECT seq FROM outbox_dead ORDER BY seq LIMIT ?)",
                arguments: [min(limit, count - maxRows)])
            n += db.changesCount
        }
        if n < limit {
            try db.execute(
                sql: "DELETE FROM outbox_dead WHERE seq IN (SELECT seq FROM outbox_dead ORDER BY seq LIMIT ?) AND failed_ms < ?",
                arguments: [limit - n, nowMs - keepMs])
            n += db.changesCount
        }
        return n
    }

    /// Deletes the oldest telemetry events from the outbox, about `bytes` of them (by their
    /// `bytes` column), and records what went in `dropped`. Returns how many events and bytes
    /// went (0: no telemetry left).
    static func evictOldestTelemetry(_ db: Database, bytes: Int64, nowMs: Int64) throws -> (Int, Int64) {
        let page = try db.cachedStatement(sql: "SELECT seq, bytes, created_ms FROM outbox WHERE class = 1 AND seq > ? ORDER BY seq LIMIT 256")
        var freed: Int64 = 0, count = 0, after = Int64.min
        var oldest = Int64.max, newest = Int64.min
        scan: while freed < bytes {
            let rows = try Row.fetchAll(page, arguments: [after])
            if rows.isEmpty { break }
            for r in rows {
                let b: Int64 = r["bytes"], created: Int64 = r["created_ms"]
                freed += b; count += 1; after = r["seq"]
                oldest = min(oldest, created); newest = max(newest, created)
                if freed >= bytes { break scan }
            }
        }
        guard count > 0 else { return (0, 0) }
        try db.execute(sql: "DELETE FROM outbox WHERE class = 1 AND seq <= ?", arguments: [after])
        try db.execute(
            sql: "INSERT INTO dropped (class, count, oldest_ms, newest_ms, at_ms) VALUES ('telemetry', ?, ?, ?, ?)",
            arguments: [count, oldest, newest, nowMs])
        return (count, freed)
    }
}

/// Read-side figures for status, metrics and the CLI.
public struct OutboxStats: Sendable, Equatable {
    public var pendingClinical: Int
    public var pendingTelemetry: Int
    public var oldestPendingMs: Int64?
    public var deadLetters: Int
    public var pending: Int { pendingClinical + pendingTelemetry }
}

/// Pending events of one class and name (`medic-edge outbox list`).
public struct OutboxGroup: Sendable, Equatable {
    public var eventClass: EventClass
    public var name: String
    public var count: Int
    public var oldestMs: Int64
}

/// An event the cloud refused (`medic-edge outbox dead-letters`).
public struct DeadLetter: Sendable, Equatable {
    public var id: String
    public var name: String
    public var status: Int
    public var reason: String
    public var failedMs: Int64
}

/// Telemetry evictions not yet reported: how many events, from when to when, and the last
/// `dropped` row they cover (the mark to keep once reported).
public struct DropSummary: Sendable, Equatable {
    public var lastId: Int64
    public var count: Int
    public var oldestMs: Int64
    public var newestMs: Int64
}

extension StoreTransaction {
    /// Adds an event to the outbox; returns its id.
    @discardableResult
    public func enqueue(
        name: String, eventClass: EventClass, source: String, data: String, nowMs: Int64,
        ids: UUIDv7 = .shared
    ) throws -> String {
        try Ledger.enqueue(db, name: name, eventClass: eventClass, source: source, data: data, nowMs: nowMs, ids: ids)
    }
    /// Adds the events to the outbox in their order (multi-row inserts, bound through the C API).
    public func enqueueAll(_ events: [Ledger.Pending]) throws {
        try Ledger.enqueueAll(db, events)
    }

    /// The disk budget's eviction: the oldest telemetry events, about `bytes` of them, go and
    /// are recorded in `dropped`. Returns how many events and bytes went (0: none left).
    public func evictOldestTelemetry(bytes: Int64, nowMs: Int64) throws -> (count: Int, bytes: Int64) {
        try Ledger.evictOldestTelemetry(db, bytes: bytes, nowMs: nowMs)
    }

    /// The evictions recorded after `dropped` row `afterId`, summed (nil: none).
    public func drops(afterId: Int64) throws -> DropSummary? {
        guard
            let r = try Row.fetchOne(
                db, sql: "SELECT max(id) AS id, sum(count) AS c, min(oldest_ms) AS o, max(newest_ms) AS n FROM dropped WHERE id > ?",
                arguments: [afterId]),
            let maxId: Int64 = r["id"]
        else { return nil }
        return DropSummary(lastId: maxId, count: r["c"], oldestMs: r["o"], newestMs: r["n"])
    }

    /// One bounded step of the dead letters' purge (oldest first, beyond `maxRows` or older
    /// than 30 days); returns how many went.
    public func purgeDeadLetters(nowMs: Int64, maxRows: Int, limit: Int = 1000) throws -> Int {
        try Ledger.purgeDeadLetters(db, nowMs: nowMs, maxRows: maxRows, limit: limit)
    }

    /// The outbox's figures: one row kept by triggers and one index lookup.
    public func outboxStats() throws -> OutboxStats {
        try AppDatabase.outboxStats(db)
    }
}

extension AppDatabase {
    public func outboxStats() throws -> OutboxStats {
        try writer.read { db in try AppDatabase.outboxStats(db) }
    }
    static func outboxStats(_ db: Database) throws -> OutboxStats {
        // The counts are one row kept by triggers (migration v3-outbox-figures); the oldest
        // pending event is the first by seq (insertion order): an index lookup, where
        // min(created_ms) would read the whole table.
        let f = try Row.fetchOne(db.cachedStatement(sql: "SELECT clinical, telemetry, dead FROM outbox_figures WHERE id = 1"))
        let oldest = try Int64.fetchOne(db.cachedStatement(sql: "SELECT created_ms FROM outbox ORDER BY seq LIMIT 1"))
        return OutboxStats(
            pendingClinical: f?["clinical"] ?? 0, pendingTelemetry: f?["telemetry"] ?? 0, oldestPendingMs: oldest,
            deadLetters: f?["dead"] ?? 0)
    }

    /// The next events for the uplink, clinical first, then by seq: at most `limit`, each with
    /// its size estimate (`bytes`). `excluding`: a delivered batch whose delete is still running.
    public func pendingBatch(limit: Int, excluding: [Int64] = []) throws -> [(event: OutboxEvent, bytes: Int)] {
        try writer.read { db in
            let rows: [Row]
            if excluding.isEmpty {
                rows = try Row.fetchAll(
                    db.cachedStatement(sql: "SELECT seq, id, name, class, source, data, created_ms, bytes FROM outbox ORDER BY class, seq LIMIT ?"),
                    arguments: [limit])
            } else {
                let marks = Array(repeating: "?", count: excluding.count).joined(separator: ",")
                rows = try Row.fetchAll(
                    db,
                    sql:
                        "SELECT seq, id, name, class, source, data, created_ms, bytes FROM outbox WHERE seq NOT IN (\(marks)) ORDER BY class, seq "
                        + "LIMIT ?",
                    arguments: StatementArguments(excluding.map { $0 as any DatabaseValueConvertible } + [limit]))
            }
            return rows.map { r in
                (
                    OutboxEvent(
                        seq: r["seq"], id: r["id"], name: r["name"], eventClass: EventClass(rawValue: r["class"]) ?? .telemetry,
                        source: r["source"], data: r["data"], createdMs: r["created_ms"]), r["bytes"]
                )
            }
        }
    }

    /// Deletes what the cloud took, in one statement.
    public func deleteDelivered(_ seqs: [Int64]) async throws {
        try await writer.write { db in
            let marks = Array(repeating: "?", count: seqs.count).joined(separator: ",")
            try db.execute(sql: "DELETE FROM outbox WHERE seq IN (\(marks))", arguments: StatementArguments(seqs))
        }
    }

    /// Moves events the cloud refused to `outbox_dead` with the answer's status and reason
    /// (at most 1,000 characters), in one transaction.
    public func deadLetter(_ seqs: [Int64], status: Int, reason: String, nowMs: Int64) throws {
        try writer.write { db in
            for seq in seqs {
                try db.execute(
                    sql: """
                        INSERT OR REPLACE INTO outbox_dead (seq, id, name, class, source, data, created_ms, bytes, status, reason, failed_ms)
                        SELECT seq, id, name, class, source, data, created_ms, bytes, ?, ?, ? FROM outbox WHERE seq = ?
                        """, arguments: [status, String(reason.prefix(1000)), nowMs, seq])
                try db.execute(sql: "DELETE FROM outbox WHERE seq = ?", arguments: [seq])
            }
        }
    }

    /// Puts every dead letter back in the outbox (same seq and id); returns how many.
    public func requeueDeadLetters() async throws -> Int {
        try await writer.write { d -> Int in
            try d.execute(
                sql: """
                    INSERT OR IGNORE INTO outbox (seq, id, name, class, source, data, created_ms, bytes)
                    SELECT seq, id, name, class, source, data, created_ms, bytes FROM outbox_dead
                    """)
            let n = d.changesCount
            try d.execute(sql: "DELETE FROM outbox_dead")
            return n
        }
    }

    /// Pending events by class and name, with the oldest of each.
    public func pendingGroups() throws -> [OutboxGroup] {
        try writer.read { d in
            try Row.fetchAll(
                d, sql: "SELECT class, name, count(*) AS n, min(created_ms) AS oldest FROM outbox GROUP BY class, name ORDER BY class, name"
            )
            .map {
                OutboxGroup(eventClass: ($0["class"] as Int) == 0 ? .clinical : .telemetry, name: $0["name"], count: $0["n"], oldestMs: $0["oldest"])
            }
        }
    }

    /// Every dead letter, by seq.
    public func deadLetters() throws -> [DeadLetter] {
        try writer.read { d in
            try Row.fetchAll(d, sql: "SELECT id, name, status, reason, failed_ms FROM outbox_dead ORDER BY seq")
                .map { DeadLetter(id: $0["id"], name: $0["name"], status: $0["status"], reason: $0["reason"], failedMs: $0["failed_ms"]) }
        }
    }
}
