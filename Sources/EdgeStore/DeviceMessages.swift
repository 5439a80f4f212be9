import EdgeCore
import Foundation
import GRDB

// The dedupe tables: `device_msgs` (every device message's `(device, msg_id)` with the ack sent,
// CONTRACT §1, at least 7 days) and `kiosk_results` (each kiosk scan's result, sent again for a
// repeated scan_id).

extension Ledger {
    /// The ack already sent for this `(device, msg_id)`, when seen before.
    static func previousAck(_ db: Database, deviceId: String, msgId: String) throws -> String? {
        try String.fetchOne(db.cachedStatement(sql: "SELECT ack FROM device_msgs WHERE device_id = ? AND msg_id = ?"), arguments: [deviceId, msgId])
    }
    /// Remembers `(device, msg_id)` with its ack unless seen before; true when it is new.
    static func rememberFirstSight(_ db: Database, deviceId: String, msgId: String, ack: String, nowMs: Int64) throws -> Bool {
        try db.cachedStatement(sql: "INSERT OR IGNORE INTO device_msgs (device_id, msg_id, received_ms, ack) VALUES (?,?,?,?) -- raw")
            .runRaw { b in
                b.text(deviceId); b.text(msgId); b.int(nowMs); b.text(ack)
            } > 0
    }
    static func rememberMessage(_ db: Database, deviceId: String, msgId: String, ack: String, nowMs: Int64) throws {
        try db.cachedStatement(sql: "INSERT OR REPLACE INTO device_msgs (device_id, msg_id, received_ms, ack) VALUES (?,?,?,?)")
            .execute(arguments: [deviceId, msgId, nowMs, ack])
    }
    /// Dedupe window: at least 7 days (CONTRACT §1).
    static func purgeOldMessages(_ db: Database, nowMs: Int64, keepMs: Int64 = 8 * 86_400_000) throws {
        try db.execute(sql: "DELETE FROM device_msgs WHERE received_ms < ?", arguments: [nowMs - keepMs])
        try db.execute(sql: "DELETE FROM kiosk_results WHERE created_ms < ?", arguments: [nowMs - keepMs])
    }
}

extension StoreTransaction {
    /// The ack already sent for this `(device, msg_id)`, when seen before.
    public func previousAck(deviceId: String, msgId: String) throws -> String? {
        try Ledger.previousAck(db, deviceId: deviceId, msgId: msgId)
    }
    /// Remembers `(device, msg_id)` with its ack unless seen before (one raw-bound statement
    /// that checks and remembers); true when it is new.
    public func rememberFirstSight(deviceId: String, msgId: String, ack: String, nowMs: Int64) throws -> Bool {
        try Ledger.rememberFirstSight(db, deviceId: deviceId, msgId: msgId, ack: ack, nowMs: nowMs)
    }
    /// Remembers `(device, msg_id)` with this ack, replacing one remembered before.
    public func rememberMessage(deviceId: String, msgId: String, ack: String, nowMs: Int64) throws {
        try Ledger.rememberMessage(db, deviceId: deviceId, msgId: msgId, ack: ack, nowMs: nowMs)
    }
    /// Forgets messages and kiosk results older than the dedupe window (8 days).
    public func purgeOldMessages(nowMs: Int64) throws {
        try Ledger.purgeOldMessages(db, nowMs: nowMs)
    }

    /// The result already sent for this kiosk scan, when seen before.
    public func kioskResult(deviceId: String, scanId: String) throws -> String? {
        try String.fetchOne(db, sql: "SELECT result FROM kiosk_results WHERE device_id = ? AND scan_id = ?", arguments: [deviceId, scanId])
    }
    /// Keeps a kiosk scan's result (its JSON as sent).
    public func saveKioskResult(deviceId: String, scanId: String, outcome: String, result: String, nowMs: Int64) throws {
        try db.execute(
            sql: "INSERT INTO kiosk_results (device_id, scan_id, outcome, result, created_ms) VALUES (?,?,?,?,?)",
            arguments: [deviceId, scanId, outcome, result, nowMs])
    }
}
