import EdgeCore
import Foundation
import GRDB

// What happens to an appointment here: `checkins` (one per appointment, kiosk or reception) and
// `noshows` (one per appointment judged absent, CONTRACT §2); and the appointment reads of
// check-in, the no-show check and the reception's agenda.

/// An appointment as the kiosk and the reception show it.
public struct AppointmentDetails: Sendable, Equatable {
    public var id: String
    public var startMs: Int64
    public var professional: String?
    public var service: String?
    public var roomId: String?
}

/// An appointment the reception asks to check in: its patient, status and local check-in.
public struct CheckinState: Sendable, Equatable {
    public var patientId: String?
    public var status: String
    public var checkedInMs: Int64?
    public var method: String?
}

/// An appointment whose no-show moment has come (`dueNoShows`).
public struct NoShowCandidate: Sendable, Equatable {
    public var id: String
    public var patientId: String?
    public var professionalId: String?
    public var startMs: Int64
}

/// One row of the reception's agenda.
public struct AgendaRow: Sendable, Equatable {
    public var id: String
    public var startMs: Int64
    public var endMs: Int64
    public var status: String
    public var patientId: String?
    public var patientName: String?
    public var patientPhone: String?
    public var professionalId: String?
    public var professionalName: String?
    public var roomId: String?
    public var serviceId: String?
    public var serviceName: String?
    public var checkedInMs: Int64?
    public var checkinMethod: String?
}

extension StoreTransaction {
    // MARK: check-in

    /// The patient whose QR code hashes to `qrHash`.
    public func patient(qrHash: String) throws -> (id: String, name: String?)? {
        guard let p = try Row.fetchOne(db, sql: "SELECT id, name FROM patients WHERE qr_code_hash = ?", arguments: [qrHash]) else { return nil }
        return (p["id"], p["name"])
    }
    /// The patient's appointments whose check-in window `[start − openBefore, end)` holds `nowMs`,
    /// each with whether it is checked in here.
    public func appointmentsOpenForCheckin(patientId: String, openBeforeMs: Int64, nowMs: Int64) throws -> [AppointmentInfo] {
        try Row.fetchAll(
            db,
            sql: """
                SELECT a.id, a.start_ms, a.end_ms, a.status, c.appointment_id IS NOT NULL AS checked
                FROM appointments a LEFT JOIN checkins c ON c.appointment_id = a.id
                WHERE a.patient_id = ? AND a.start_ms - ? <= ? AND ? < a.end_ms
                """, arguments: [patientId, openBeforeMs, nowMs, nowMs]
        )
        .map { AppointmentInfo(id: $0["id"], startMs: $0["start_ms"], endMs: $0["end_ms"], status: $0["status"], checkedInLocally: $0["checked"]) }
    }
    /// Keeps a check-in (with the id of its `clinic/checkin.recorded` event).
    public func recordCheckin(
        appointmentId: String, patientId: String, nowMs: Int64, method: String, device: String,
        staff: String?, eventId: String
    ) throws {
        try db.execute(
            sql: "INSERT INTO checkins (appointment_id, patient_id, checked_in_ms, method, device_id, staff, event_id) VALUES (?,?,?,?,?,?,?)",
            arguments: [appointmentId, patientId, nowMs, method, device, staff, eventId])
    }
    /// An appointment with its professional's and service's names.
    public func appointmentDetails(_ id: String) throws -> AppointmentDetails? {
        guard
            let r = try Row.fetchOne(
                db,
                sql: """
                    SELECT a.id, a.start_ms, a.scheduled_start, p.name AS professional, s.name AS service, a.room_id
                    FROM appointments a LEFT JOIN professionals p ON p.id = a.professional_id
                    LEFT JOIN services s ON s.id = a.service_id WHERE a.id = ?
                    """, arguments: [id])
        else { return nil }
        return AppointmentDetails(id: r["id"], startMs: r["start_ms"], professional: r["professional"], service: r["service"], roomId: r["room_id"])
    }
    /// An appointment's patient, status and local check-in (nil: unknown appointment).
    public func checkinState(appointmentId: String) throws -> CheckinState? {
        guard
            let a = try Row.fetchOne(
                db,
                sql: """
                    SELECT a.patient_id, a.status, c.checked_in_ms, c.method FROM appointments a
                    LEFT JOIN checkins c ON c.appointment_id = a.id WHERE a.id = ?
                    """, arguments: [appointmentId])
        else { return nil }
        return CheckinState(patientId: a["patient_id"], status: a["status"], checkedInMs: a["checked_in_ms"], method: a["method"])
    }

    // MARK: no-shows

    /// The appointments `NoShowRule` judges absent at `nowMs` with `graceMs` (a no-show status,
    /// start + grace passed, not checked in here) and not judged before. The statuses come from
    /// `NoShowRule.statuses`, the comparison is the rule's (`start + grace <= now`).
    public func dueNoShows(nowMs: Int64, graceMs: Int64) throws -> [NoShowCandidate] {
        let statuses = NoShowRule.statuses.map(\.rawValue)
        let marks = Array(repeating: "?", count: statuses.count).joined(separator: ", ")
        return try Row.fetchAll(
            db,
            sql: """
                SELECT a.id, a.patient_id, a.professional_id, a.start_ms, a.status FROM appointments a
                WHERE a.status IN (\(marks)) AND a.start_ms + ? <= ?
                  AND NOT EXISTS (SELECT 1 FROM checkins c WHERE c.appointment_id = a.id)
                  AND NOT EXISTS (SELECT 1 FROM noshows n WHERE n.appointment_id = a.id)
                """, arguments: StatementArguments(statuses.map { $0 as any DatabaseValueConvertible } + [graceMs, nowMs])
        )
        .map { NoShowCandidate(id: $0["id"], patientId: $0["patient_id"], professionalId: $0["professional_id"], startMs: $0["start_ms"]) }
    }
    /// Remembers the appointment as judged: with its event's id, or "" when no signal was sent
    /// (a clock jump skipped its moment). Never looked at again.
    public func recordNoShow(appointmentId: String, nowMs: Int64, eventId: String) throws {
        try db.execute(sql: "INSERT INTO noshows (appointment_id, detected_ms, event_id) VALUES (?,?,?)", arguments: [appointmentId, nowMs, eventId])
    }

    // MARK: the agenda

    /// The appointments starting in `[fromMs, toMs)` with their patient, professional, service
    /// and local check-in, by start then id.
    public func agenda(fromMs: Int64, toMs: Int64) throws -> [AgendaRow] {
        try Row.fetchAll(
            db,
            sql: """
                SELECT a.id, a.start_ms, a.end_ms, a.status, a.patient_id, p.name AS patient_name, p.phone,
                       a.professional_id, pr.name AS professional_name, a.room_id, a.service_id, s.name AS service_name,
                       c.checked_in_ms, c.method
                FROM appointments a
                LEFT JOIN patients p ON p.id = a.patient_id
                LEFT JOIN professionals pr ON pr.id = a.professional_id
                LEFT JOIN services s ON s.id = a.service_id
                LEFT JOIN checkins c ON c.appointment_id = a.id
                WHERE a.start_ms >= ? AND a.start_ms < ?
                ORDER BY a.start_ms, a.id
                """, arguments: [fromMs, toMs]
        ).map { r in
            AgendaRow(
                id: r["id"], startMs: r["start_ms"], endMs: r["end_ms"], status: r["status"],
                patientId: r["patient_id"], patientName: r["patient_name"], patientPhone: r["phone"],
                professionalId: r["professional_id"], professionalName: r["professional_name"],
                roomId: r["room_id"], serviceId: r["service_id"], serviceName: r["service_name"],
                checkedInMs: r["checked_in_ms"], checkinMethod: r["method"])
        }
    }
}
