import EdgeCore
import EdgeStore
import Foundation

/// What the kiosk is told (CONTRACT §1.2). First name only.
struct KioskResult {
    struct Appt { var id: String; var startMs: Int64; var scheduledStart: String; var professional: String?; var room: String?; var service: String? }
    var scanId: String
    var outcome: KioskOutcome
    var firstName: String?
    var appointment: Appt?

    func json(zone: TimeZone) -> String {
        JSONText.object { j in
            j.add("scan_id", scanId)
            j.add("outcome", outcome.rawValue)
            if let firstName, outcome == .checkedIn || outcome == .alreadyCheckedIn {
                j.addRaw("patient", JSONText.object { $0.add("first_name", firstName) })
            }
            if let a = appointment, outcome == .checkedIn || outcome == .alreadyCheckedIn {
                j.addRaw(
                    "appointment",
                    JSONText.object { o in
                        o.add("id", a.id); o.add("scheduled_start", a.scheduledStart)
                        o.add("professional", a.professional); o.add("room", a.room); o.add("service", a.service)
                    })
            }
            j.add(
                "message",
                KioskMessages.message(
                    outcome: outcome, firstName: firstName, professional: appointment?.professional,
                    room: appointment?.room, startMs: appointment?.startMs, zone: zone))
        }
    }
}

/// The check-in desk: QR → patient → appointment → one recorded check-in (kiosk and reception).
struct CheckinDesk {
    let config: EdgeConfig
    let ids: UUIDv7

    func scan(_ db: StoreTransaction, scan: KioskScan, device: String, nowMs: Int64) throws -> KioskResult {
        let h = QRCode.hash(scan.qr)
        guard let p = try db.patient(qrHash: h) else {
            return KioskResult(scanId: scan.scanId, outcome: .unknownCode)
        }
        let patientId = p.id
        let first = KioskMessages.firstName(p.name ?? "")
        let openBefore = Int64(config.checkinOpenBeforeMinutes * 60_000)
        let appts = try db.appointmentsOpenForCheckin(patientId: patientId, openBeforeMs: openBefore, nowMs: nowMs)
        switch CheckinPolicy.choose(appts, nowMs: nowMs, openBeforeMs: openBefore) {
        case .none:
            return KioskResult(scanId: scan.scanId, outcome: .noAppointment, firstName: first)
        case .already(let id):
            return KioskResult(scanId: scan.scanId, outcome: .alreadyCheckedIn, firstName: first, appointment: try details(db, id))
        case .checkIn(let id):
            try record(db, appointmentId: id, patientId: patientId, method: "qr", device: device, staff: nil, nowMs: nowMs)
            return KioskResult(scanId: scan.scanId, outcome: .checkedIn, firstName: first, appointment: try details(db, id))
        }
    }

    /// Records a check-in and its `clinic/checkin.recorded` event, in the caller's transaction.
    func record(_ db: StoreTransaction, appointmentId: String, patientId: String, method: String, device: String, staff: String?, nowMs: Int64) throws
    {
        let data = JSONText.object { j in
            j.add("tenant_id", config.tenantId); j.add("site_id", config.siteId)
            j.add("appointment_id", appointmentId); j.add("patient_id", patientId)
            j.add("device_id", device); j.add("method", method); j.add("checked_in_at", Time.rfc3339(ms: nowMs))
        }
        let eventId = try db.enqueue(
            name: "clinic/checkin.recorded", eventClass: .clinical, source: "appointment:\(appointmentId)",
            data: data, nowMs: nowMs, ids: ids)
        try db.recordCheckin(
            appointmentId: appointmentId, patientId: patientId, nowMs: nowMs, method: method, device: device,
            staff: staff, eventId: eventId)
    }

    func details(_ db: StoreTransaction, _ id: String) throws -> KioskResult.Appt? {
        guard let r = try db.appointmentDetails(id) else { return nil }
        return KioskResult.Appt(
            id: r.id, startMs: r.startMs, scheduledStart: Time.rfc3339(ms: r.startMs),
            professional: r.professional, room: try Rooms.displayName(db, cloudRoomId: r.roomId, config: config),
            service: r.service)
    }
}
