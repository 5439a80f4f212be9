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
                j.addRaw("appointment", JSONText.object { o in
                    o.add("id", a.id); o.add("scheduled_start", a.scheduledStart)
                    o.add("professional", a.professional); o.add("room", a.room); o.add("service", a.service)
                })
            }
            j.add("message", KioskMessages.message(outcome: outcome, firstName: firstName, professional: appointment?.professional,
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
    func record(_ db: StoreTransaction, appointmentId: String, patientId: String, method: String, device: String, staff: String?, nowMs: Int64) throws {
        let data = JSONText.object { j in
            j.add("tenant_id", config.tenantId); j.add("site_id", config.siteId)
            j.add("appointment_id", appointmentId); j.add("patient_id", patientId)
            j.add("device_id", device); j.add("method", method); j.add("checked_in_at", Time.rfc3339(ms: nowMs))
        }
        let eventId = try db.enqueue(name: "clinic/checkin.recorded", eventClass: .clinical, source: "appointment:\(appointmentId)",
                                     data: data, nowMs: nowMs, ids: ids)
        try db.recordCheckin(appointmentId: appointmentId, patientId: patientId, nowMs: nowMs, method: method, device: device,
                             staff: staff, eventId: eventId)
    }

    func details(_ db: StoreTransaction, _ id: String) throws -> KioskResult.Appt? {
        guard let r = try db.appointmentDetails(id) else { return nil }
        return KioskResult.Appt(id: r.id, startMs: r.startMs, scheduledStart: Time.rfc3339(ms: r.startMs),
                                professional: r.professional, room: try Rooms.displayName(db, cloudRoomId: r.roomId, config: config),
                                service: r.service)
    }
}

/// Rooms, presence, readings, alerts and device status.
enum Rooms {
    /// People see the config's name, else the linked Directus name, else the key.
    static func displayName(_ db: StoreTransaction, cloudRoomId: String?, config: EdgeConfig) throws -> String? {
        guard let cloudRoomId, let r = try db.room(cloudId: cloudRoomId) else { return nil }
        let key = r.key
        if let key, let n = config.rooms[key]?.name { return n }
        return r.name ?? key
    }
    static func displayName(_ db: StoreTransaction, key: String, config: EdgeConfig) throws -> String {
        if let n = config.rooms[key]?.name { return n }
        return try db.roomName(key: key) ?? key
    }
    static func cloudId(_ db: StoreTransaction, key: String) throws -> String? {
        try db.cloudRoomId(key: key)
    }

    static func refreshOccupancy(_ db: StoreTransaction, room: String, config: EdgeConfig, nowMs: Int64, ids: UUIDv7) throws {
        let occupied = try db.sensorsSayOccupied(room: room)
        let prev = try db.signalledOccupancy(room: room)
        guard occupied != prev else { return }
        try db.setSignalledOccupancy(room: room, occupied: occupied, nowMs: nowMs)
        let cloud = try cloudId(db, key: room)
        let data = JSONText.object { j in
            j.add("tenant_id", config.tenantId); j.add("site_id", config.siteId); j.add("room_id", room)
            if let cloud { j.add("cloud_room_id", cloud) }
            j.add("occupied", occupied); j.add("changed_at", Time.rfc3339(ms: nowMs))
        }
        try db.enqueue(name: "clinic/room.occupancy_changed", eventClass: .clinical, source: "room:\(room)", data: data, nowMs: nowMs, ids: ids)
    }

    /// The latest value of each (room, metric) seen in one ingest batch: only the last one
    /// matters, so the batch writes each once, at its end (`writeReadings`).
    struct LatestReadings {
        struct Key: Hashable { let room: String, metric: EnvironmentMetric }
        var rows: [Key: (value: Double, atMs: Int64, device: String)] = [:]
    }

    static func writeReadings(_ db: StoreTransaction, _ latest: LatestReadings) throws {
        guard !latest.rows.isEmpty else { return }
        try db.writeLatestReadings(latest.rows.map { k, v in
            LatestReading(room: k.room, metric: k.metric.rawValue, value: v.value, atMs: v.atMs, device: v.device)
        })
    }

    /// Keeps the reading's values as the room's latest (written at the end of the batch) and
    /// raises or clears the room's environment alerts.
    static func recordReadings(_ db: StoreTransaction, room: String, device: String, reading: EnvironmentReading, config: EdgeConfig,
                               nowMs: Int64, ids: UUIDv7, latest: inout LatestReadings) throws {
        for (metric, value) in reading.values {
            latest.rows[.init(room: room, metric: metric)] = (value, nowMs, device)
        }
        guard config.rooms[room] != nil else { return }
        for metric in EnvironmentMetric.allCases {
            guard let value = reading.values[metric] else { continue }
            guard let limits = config.rooms[room]?.limits[metric.rawValue] else { continue }
            let active = try db.alertActive(room: room, metric: metric.rawValue)
            guard let t = AlertRule.evaluate(active: active, value: value, limits: limits) else { continue }
            if t == .raised {
                try db.raiseAlert(room: room, metric: metric.rawValue, value: value, min: limits.min, max: limits.max, nowMs: nowMs, device: device)
            } else {
                try db.clearAlert(room: room, metric: metric.rawValue)
            }
            let cloud = try cloudId(db, key: room)
            let data = JSONText.object { j in
                j.add("tenant_id", config.tenantId); j.add("site_id", config.siteId); j.add("room_id", room)
                if let cloud { j.add("cloud_room_id", cloud) }
                j.add("device_id", device); j.add("metric", metric.rawValue); j.add("value", value)
                j.add("min", limits.min); j.add("max", limits.max); j.add("state", t.rawValue); j.add("at", Time.rfc3339(ms: nowMs))
            }
            try db.enqueue(name: "clinic/environment.alert", eventClass: .clinical, source: "room:\(room)", data: data, nowMs: nowMs, ids: ids)
        }
    }

    /// Returns whether the device's state changed.
    static func recordStatus(_ db: StoreTransaction, device: String, status: DeviceStatus, config: EdgeConfig, nowMs: Int64, ids: UUIDv7) throws -> Bool {
        let prev = try db.device(device)
        let state = status.online ? "online" : "offline"
        let type: String? = status.type?.rawValue ?? prev?.type
        try db.recordDeviceStatus(device: device, type: type, roomId: status.roomId, fw: status.fw, state: state, nowMs: nowMs)
        let changed = prev?.state != state
        // A presence device that goes offline stops counting toward its room.
        if let room = try db.presenceRoom(device: device) {
            try db.setPresenceOnline(device: device, online: status.online)
            try refreshOccupancy(db, room: room, config: config, nowMs: nowMs, ids: ids)
        }
        guard changed else { return false }
        let data = JSONText.object { j in
            j.add("tenant_id", config.tenantId); j.add("site_id", config.siteId); j.add("device_id", device)
            j.add("device_type", type ?? "unknown"); j.add("state", state); j.add("at", Time.rfc3339(ms: nowMs))
        }
        try db.enqueue(name: "integration/device.status_changed", eventClass: .clinical, source: "device:\(device)", data: data, nowMs: nowMs, ids: ids)
        return true
    }
}
