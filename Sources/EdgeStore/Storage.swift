import Foundation
import GRDB

// The database as files (pages, free pages, the WAL's checkpoints, size on disk), the `kv`
// table of small settings (`dropped_reported`, `roster.window_day`, `storage_probe_ms`) and
// the row counts the status shows.

/// The database file's figures in pages (the disk budget's measure).
public struct PageFigures: Sendable, Equatable {
    public var pageSize: Int64
    public var pages: Int64
    public var freePages: Int64
}

/// Tables whose rows the status and `medic-edge status` count.
public enum CountedTable: String, Sendable {
    case patients, appointments, alerts, rejects
}

extension Ledger {
    static func kv(_ db: Database, _ key: String) throws -> String? {
        try String.fetchOne(db, sql: "SELECT value FROM kv WHERE key = ?", arguments: [key])
    }
    static func setKV(_ db: Database, _ key: String, _ value: String) throws {
        try db.execute(sql: "INSERT OR REPLACE INTO kv (key, value) VALUES (?, ?)", arguments: [key, value])
    }
}

extension StoreTransaction {
    /// A small setting kept in `kv`.
    public func setting(_ key: String) throws -> String? { try Ledger.kv(db, key) }
    /// Keeps a small setting in `kv` (replacing the old value).
    public func setSetting(_ key: String, _ value: String) throws { try Ledger.setKV(db, key, value) }

    /// Page size, page count and free pages (cached statements: read before every batch's commit).
    public func pageFigures() throws -> PageFigures {
        let pageSize = try Int64.fetchOne(db.cachedStatement(sql: "PRAGMA page_size")) ?? 4096
        let pages = try Int64.fetchOne(db.cachedStatement(sql: "PRAGMA page_count")) ?? 0
        let free = try Int64.fetchOne(db.cachedStatement(sql: "PRAGMA freelist_count")) ?? 0
        return PageFigures(pageSize: pageSize, pages: pages, freePages: free)
    }

    /// The rows of a table (a scan: for the once-a-second figures and the CLI, never a request).
    public func rowCount(_ table: CountedTable) throws -> Int {
        try Int.fetchOne(db, sql: "SELECT count(*) FROM \(table.rawValue)") ?? 0
    }
}

extension AppDatabase {
    /// A store error told by SQLite's code and words, without the statement (other errors as they are).
    public static func describe(_ error: any Error) -> String {
        if let e = error as? DatabaseError {
            return "SQLite error \(e.extendedResultCode.rawValue): \(e.message ?? "\(e.resultCode)")"
        }
        return "\(error)"
    }

    /// Database file + WAL (+ shm) on disk.
    public func usedBytes() -> Int64 {
        guard let path else { return 0 }
        var total: Int64 = 0
        for suffix in ["", "-wal", "-shm"] {
            if let a = try? FileManager.default.attributesOfItem(atPath: path + suffix), let s = a[.size] as? NSNumber {
                total += s.int64Value
            }
        }
        return total
    }

    /// A PASSIVE checkpoint from the writer's connection (it never waits for readers).
    public func checkpointPassive() async throws {
        try await writer.writeWithoutTransaction { db in try db.execute(sql: "PRAGMA wal_checkpoint(PASSIVE)") }
    }

    /// Empties the writer connection's SQLite page cache (`sqlite3_db_release_memory`): after a
    /// roster pull it holds ≈ 2 MiB of pages the daemon will not read again soon.
    public func releaseWriterCache() async throws {
        try await writer.writeWithoutTransaction { $0.releaseMemory() }
    }

    /// Checkpoints the WAL to its start (TRUNCATE) and gives the database's free pages back
    /// to the file system (`incremental_vacuum`).
    public func checkpointAndVacuum() async throws {
        try await writer.writeWithoutTransaction { db in
            try db.execute(sql: "PRAGMA wal_checkpoint(TRUNCATE)")
            try db.execute(sql: "PRAGMA incremental_vacuum")
        }
    }

    /// Checkpoints the WAL to its start (TRUNCATE), then closes the connections (tools that
    /// fill a database for the daemon to open next).
    public func checkpointAndClose() async throws {
        try await writer.writeWithoutTransaction { d in _ = try d.checkpoint(.truncate) }
        try (writer as? DatabasePool)?.close()
    }
}
