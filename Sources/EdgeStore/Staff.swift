import Foundation
import GRDB

// The reception's accounts: `staff` (name, PBKDF2 salt, hash and iterations), `sessions` (a
// token's hash, its account and its end; the token itself is never stored) and `staff_audit`
// (who did what, when).

/// An account as `medic-edge staff list` shows it.
public struct StaffAccountRow: Sendable, Equatable {
    public var name: String
    public var createdMs: Int64
    public var iterations: Int
    /// Sessions not yet ended.
    public var liveSessions: Int
}

/// An account's stored password: salt, hash and PBKDF2 iterations.
public struct StaffSecret: Sendable, Equatable {
    public var salt: [UInt8]
    public var hash: [UInt8]
    public var iterations: Int
}

extension StoreTransaction {
    public func staffAccountExists(_ name: String) throws -> Bool {
        try Bool.fetchOne(db, sql: "SELECT EXISTS(SELECT 1 FROM staff WHERE name = ?)", arguments: [name]) ?? false
    }
    /// Creates or replaces an account.
    public func saveStaffAccount(name: String, salt: [UInt8], hash: [UInt8], iterations: Int, nowMs: Int64) throws {
        try db.execute(
            sql: "INSERT OR REPLACE INTO staff (name, salt, hash, iterations, created_ms) VALUES (?,?,?,?,?)",
            arguments: [name, Data(salt), Data(hash), iterations, nowMs])
    }
    /// Removes an account; false when there was none.
    public func deleteStaffAccount(_ name: String) throws -> Bool {
        try db.execute(sql: "DELETE FROM staff WHERE name = ?", arguments: [name])
        return db.changesCount > 0
    }
    /// Ends every session of an account.
    public func endSessions(of name: String) throws {
        try db.execute(sql: "DELETE FROM sessions WHERE name = ?", arguments: [name])
    }
    /// Starts a session (the expired ones go first).
    public func startSession(tokenHash: String, name: String, expiresMs: Int64, nowMs: Int64) throws {
        try db.execute(sql: "DELETE FROM sessions WHERE expires_ms <= ?", arguments: [nowMs])
        try db.execute(sql: "INSERT INTO sessions (token_hash, name, expires_ms) VALUES (?,?,?)", arguments: [tokenHash, name, expiresMs])
    }
    public func endSession(tokenHash: String) throws {
        try db.execute(sql: "DELETE FROM sessions WHERE token_hash = ?", arguments: [tokenHash])
    }
    /// One line of the staff audit.
    public func audit(name: String, action: String, target: String?, nowMs: Int64) throws {
        try db.execute(
            sql: "INSERT INTO staff_audit (at_ms, name, action, target) VALUES (?,?,?,?)",
            arguments: [nowMs, name, action, target])
    }
}

extension AppDatabase {
    /// Every account by name, with its sessions live at `nowMs`.
    public func staffAccounts(nowMs: Int64) throws -> [StaffAccountRow] {
        try writer.read { db in
            try Row.fetchAll(
                db,
                sql: """
                    SELECT s.name, s.created_ms, s.iterations,
                      (SELECT count(*) FROM sessions x WHERE x.name = s.name AND x.expires_ms > ?) AS n
                    FROM staff s ORDER BY s.name
                    """, arguments: [nowMs]
            ).map { StaffAccountRow(name: $0["name"], createdMs: $0["created_ms"], iterations: $0["iterations"], liveSessions: $0["n"]) }
        }
    }
    /// An account's stored password (nil: no such account).
    public func staffAccount(named name: String) throws -> StaffSecret? {
        try writer.read { db in
            guard let r = try Row.fetchOne(db, sql: "SELECT salt, hash, iterations FROM staff WHERE name = ?", arguments: [name]) else { return nil }
            let salt: Data = r["salt"], hash: Data = r["hash"]
            return StaffSecret(salt: Array(salt), hash: Array(hash), iterations: r["iterations"])
        }
    }
    /// The live session of a token's hash (of an account that still exists): its name and end.
    public func liveSession(tokenHash: String, nowMs: Int64) throws -> (name: String, expiresMs: Int64)? {
        try writer.read { db in
            guard
                let r = try Row.fetchOne(
                    db,
                    sql: """
                        SELECT x.name, x.expires_ms FROM sessions x JOIN staff s ON s.name = x.name
                        WHERE x.token_hash = ? AND x.expires_ms > ?
                        """, arguments: [tokenHash, nowMs])
            else { return nil }
            return (r["name"], r["expires_ms"])
        }
    }
}
