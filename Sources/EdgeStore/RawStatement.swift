import GRDB
import GRDBSQLite

/// Binds the values of one run of a hot write statement straight through SQLite's C API.
///
/// GRDB's `execute(arguments:)` wraps every value in an existential, checks it against the
/// statement and binds it through a generic path: on the ingest path (three inserts per
/// device message) that was about a fifth of the daemon's CPU. Only for statements whose SQL
/// is used nowhere else (GRDB never sees them half-bound), inside a transaction.
public struct RawBinder {
    @usableFromInline let stmt: SQLiteStatement
    @usableFromInline var index: Int32 = 1
    @usableFromInline init(_ stmt: SQLiteStatement) { self.stmt = stmt }

    /// SQLite copies the text (SQLITE_TRANSIENT), so the Swift string may go away.
    @inlinable public mutating func text(_ s: String) {
        // A native Swift string passes its own NUL-terminated UTF-8 (no copy on this side).
        sqlite3_bind_text(stmt, index, s, Int32(s.utf8.count), rawSQLiteTransient)
        index += 1
    }
    @inlinable public mutating func text(_ s: String?) {
        if let s { text(s) } else { null() }
    }
    @inlinable public mutating func int(_ v: Int64) { sqlite3_bind_int64(stmt, index, v); index += 1 }
    @inlinable public mutating func int(_ v: Int) { int(Int64(v)) }
    @inlinable public mutating func double(_ v: Double) { sqlite3_bind_double(stmt, index, v); index += 1 }
    @inlinable public mutating func null() { sqlite3_bind_null(stmt, index); index += 1 }
}

@usableFromInline let rawSQLiteTransient = unsafeBitCast(OpaquePointer(bitPattern: -1), to: sqlite3_destructor_type.self)

extension Statement {
    /// Runs this write statement once with the values `bind` sets (in `?` order) and returns
    /// the number of rows it changed. A failure throws GRDB's `DatabaseError` with SQLite's
    /// message, and the statement is left reset either way.
    @inlinable @discardableResult
    public func runRaw(_ bind: (inout RawBinder) -> Void) throws -> Int {
        let s = sqliteStatement
        var binder = RawBinder(s)
        bind(&binder)
        let rc = sqlite3_step(s)
        defer { sqlite3_reset(s) }
        guard rc == SQLITE_DONE || rc == SQLITE_ROW else {
            throw DatabaseError(resultCode: ResultCode(rawValue: rc), message: String(cString: sqlite3_errmsg(sqlite3_db_handle(s))), sql: sql)
        }
        return Int(sqlite3_changes(sqlite3_db_handle(s)))
    }
}
