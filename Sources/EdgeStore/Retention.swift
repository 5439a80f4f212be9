import Foundation
import GRDB

// Retention (CONTRACT §7, LGPD: keep no longer than needed): the purges by age of the local
// records, each a short transaction of at most `limit` rows (the caller loops, yielding
// between), so the writer — the kiosk's path — is never held by one long DELETE. Oldest first
// where the table's key follows time (rowid, autoincrement id).

/// What the retention purges may remove.
public enum RetainedRecords: String, Sendable, CaseIterable {
    /// Check-ins older than the cut-off whose appointment is no longer kept here.
    case checkins
    /// No-shows older than the cut-off whose appointment is no longer kept here.
    case noshows
    /// Kiosk scan results older than the cut-off.
    case kioskResults = "kiosk_results"
    /// Staff audit lines older than the cut-off.
    case staffAudit = "staff_audit"
}

extension StoreTransaction {
    /// Removes at most `limit` rows of `records` older than `beforeMs`; returns how many went.
    /// A check-in or no-show goes only once its appointment is gone (out of the sync window):
    /// while the appointment is kept, its check-in is what stops a false no-show.
    public func purge(_ records: RetainedRecords, olderThan beforeMs: Int64, limit: Int) throws -> Int {
        let sql: String
        switch records {
        case .checkins:
            sql = """
                DELETE FROM checkins WHERE rowid IN (SELECT c.rowid FROM checkins c WHERE c.checked_in_ms < ?
                  AND NOT EXISTS (SELECT 1 FROM appointments a WHERE a.id = c.appointment_id) ORDER BY c.rowid LIMIT ?)
                """
        case .noshows:
            sql = """
                DELETE FROM noshows WHERE rowid IN (SELECT n.rowid FROM noshows n WHERE n.detected_ms < ?
                  AND NOT EXISTS (SELECT 1 FROM appointments a WHERE a.id = n.appointment_id) ORDER BY n.rowid LIMIT ?)
                """
        case .kioskResults:
            sql = """
                DELETE FROM kiosk_results WHERE (device_id, scan_id) IN
                  (SELECT device_id, scan_id FROM kiosk_results WHERE created_ms < ? LIMIT ?)
                """
        case .staffAudit:
            sql = "DELETE FROM staff_audit WHERE id IN (SELECT id FROM staff_audit WHERE at_ms < ? ORDER BY id LIMIT ?)"
        }
        try db.execute(sql: sql, arguments: [beforeMs, limit])
        return db.changesCount
    }

    /// Removes at most `limit` appointments outside the sync window `[fromMs, toMs)`: ended
    /// before it, or starting after it (the window shrank). Returns how many went.
    public func purgeAppointments(outsideFrom fromMs: Int64, to toMs: Int64, limit: Int) throws -> Int {
        try db.execute(
            sql: """
                DELETE FROM appointments WHERE rowid IN (SELECT rowid FROM appointments
                  WHERE (start_ms < ? AND end_ms < ?) OR start_ms >= ? LIMIT ?)
                """, arguments: [fromMs, fromMs, toMs, limit])
        return db.changesCount
    }

    /// Removes at most `limit` patients with no appointment starting in `[fromMs, toMs)` and no
    /// check-in since `checkinSinceMs`. Returns how many went.
    public func purgePatients(withoutAppointmentFrom fromMs: Int64, to toMs: Int64, checkinSinceMs: Int64, limit: Int) throws -> Int {
        try db.execute(
            sql: """
                DELETE FROM patients WHERE rowid IN (SELECT p.rowid FROM patients p
                  WHERE NOT EXISTS (SELECT 1 FROM appointments a WHERE a.patient_id = p.id AND a.start_ms >= ? AND a.start_ms < ?)
                    AND p.id NOT IN (SELECT patient_id FROM checkins WHERE checked_in_ms >= ?) LIMIT ?)
                """, arguments: [fromMs, toMs, checkinSinceMs, limit])
        return db.changesCount
    }

    /// The patients of appointments starting in `[fromMs, toMs)` that are not kept here (a
    /// patient removed while they had no appointment, booked again): at most `limit`, by id.
    public func patientsMissing(forAppointmentsFrom fromMs: Int64, to toMs: Int64, limit: Int) throws -> [String] {
        try String.fetchAll(
            db,
            sql: """
                SELECT DISTINCT a.patient_id FROM appointments a WHERE a.start_ms >= ? AND a.start_ms < ? AND a.patient_id IS NOT NULL
                  AND NOT EXISTS (SELECT 1 FROM patients p WHERE p.id = a.patient_id) ORDER BY a.patient_id LIMIT ?
                """, arguments: [fromMs, toMs, limit])
    }
}
