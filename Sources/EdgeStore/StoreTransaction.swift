import GRDB

/// One open transaction (or read) of `AppDatabase`: the handle `write { tx in … }` and
/// `read { tx in … }` give their closure. Its methods (in the files beside this one, one per
/// table family) are the store's operations named for what they do; every one called on the
/// same `tx` inside one `write` commits together or not at all (the ingest batch: check-ins,
/// readings, outbox rows and the disk budget's eviction in one commit).
///
/// Valid only inside the closure that received it: do not keep it. It wraps GRDB's `Database`,
/// which no module other than EdgeStore sees.
public struct StoreTransaction {
    let db: Database
    init(_ db: Database) { self.db = db }
}

extension AppDatabase {
    /// Runs `body` in one write transaction: committed when it returns, rolled back when it throws.
    public func write<T>(_ body: (StoreTransaction) throws -> T) throws -> T {
        try writer.write { try body(StoreTransaction($0)) }
    }
    /// Runs `body` in one write transaction, off the caller's task.
    public func write<T: Sendable>(_ body: @Sendable (StoreTransaction) throws -> T) async throws -> T {
        try await writer.write { try body(StoreTransaction($0)) }
    }
    /// Runs `body` on a read-only snapshot (WAL: it never waits for the writer).
    public func read<T>(_ body: (StoreTransaction) throws -> T) throws -> T {
        try writer.read { try body(StoreTransaction($0)) }
    }
    /// Runs `body` on a read-only snapshot, off the caller's task.
    public func read<T: Sendable>(_ body: @Sendable (StoreTransaction) throws -> T) async throws -> T {
        try await writer.read { try body(StoreTransaction($0)) }
    }

    /// A store in memory (tests and tools): the same schema, nothing on disk.
    public static func inMemory() throws -> AppDatabase {
        try AppDatabase(DatabaseQueue())
    }
}
