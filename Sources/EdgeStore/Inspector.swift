import Foundation
import GRDB

// Read-only looks at a database another process owns (the demo and the benchmarks watch the
// daemon's file; WAL: they never block it), and the bare commit probe of `bench checkin`.

/// A read-only connection to the daemon's database file.
public final class StoreInspector: Sendable {
    private let queue: DatabaseQueue

    /// Opens `dataDir/medic-edge.sqlite` read-only (`busyTimeout`: seconds to wait for a lock).
    public init(dataDir: String, busyTimeout: Double = 5) throws {
        var c = Configuration()
        c.readonly = true
        c.busyMode = .timeout(busyTimeout)
        queue = try DatabaseQueue(path: dataDir + "/medic-edge.sqlite", configuration: c)
    }

    /// The ids of the events in the outbox.
    public func outboxIds() async throws -> [String] {
        try await queue.read { try String.fetchAll($0, sql: "SELECT id FROM outbox") }
    }

    /// Events in the outbox (a scan).
    public func outboxCount() throws -> Int {
        try queue.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM outbox") ?? 0 }
    }

    /// What the appliance recorded: the outbox's sequence (every event gets the next number
    /// when committed), the events pending, the dead letters and the telemetry dropped.
    public func totals() async throws -> (recorded: Int, pending: Int, dead: Int, dropped: Int) {
        try await queue.read { db in
            (
                try Int.fetchOne(db, sql: "SELECT seq FROM sqlite_sequence WHERE name = 'outbox'") ?? 0,
                try Int.fetchOne(db, sql: "SELECT count(*) FROM outbox") ?? 0,
                try Int.fetchOne(db, sql: "SELECT count(*) FROM outbox_dead") ?? 0,
                try Int.fetchOne(db, sql: "SELECT coalesce(sum(count), 0) FROM dropped") ?? 0
            )
        }
    }

    public func close() throws { try queue.close() }
}

/// A bare SQLite file of one small table, WAL, `synchronous = FULL`: each `commitOne` is one
/// small insert in its own transaction, the fsync'd commit each check-in needs (`bench checkin`'s
/// floor).
public final class CommitProbe {
    private let queue: DatabaseQueue

    public init(path: String) throws {
        var config = Configuration()
        config.prepareDatabase { db in try db.execute(sql: "PRAGMA synchronous = FULL") }
        queue = try DatabaseQueue(path: path, configuration: config)
        try queue.writeWithoutTransaction { db in
            try db.execute(sql: "PRAGMA journal_mode = WAL")
            try db.execute(sql: "CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, scan_id TEXT NOT NULL, result TEXT NOT NULL)")
        }
    }

    /// One insert, one commit.
    public func commitOne(scanId: String, result: String) throws {
        try queue.write { db in try db.execute(sql: "INSERT INTO t (scan_id, result) VALUES (?, ?)", arguments: [scanId, result]) }
    }

    public func close() throws { try queue.close() }
}
