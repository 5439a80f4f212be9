import EdgeCore
import EdgeStore
import Foundation
import GRDB

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

    func scan(_ db: Database, scan: KioskScan, device: String, nowMs: Int64) throws -> KioskResult {
        let h = QRCode.hash(scan.qr)
        guard let p = try Row.fetchOne(db, sql: "SELECT id, name FROM patients WHERE qr_code_hash = ?", arguments: [h]) else {
            return KioskResult(scanId: scan.scanId, outcome: .unknownCode)
        }
        let patientId: String = p["id"]
        let first = KioskMessages.firstName(p["name"] ?? "")
        let openBefore = Int64(config.checkinOpenBeforeMinutes * 60_000)
        let rows = try Row.fetchAll(db, sql: """
            SELECT a.id, a.start_ms, a.end_ms, a.status, c.appointment_id IS NOT NULL AS checked
            FROM appointments a LEFT JOIN checkins c ON c.appointment_id = a.id
            WHERE a.patient_id = ? AND a.start_ms - ? <= ? AND ? < a.end_ms
            """, arguments: [patientId, openBefore, nowMs, nowMs])
        let appts = rows.map { AppointmentInfo(id: $0["id"], startMs: $0["start_ms"], endMs: $0["end_ms"], status: $0["status"], checkedInLocally: $0["checked"]) }
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
    func record(_ db: Database, appointmentId: String, patientId: String, method: String, device: String, staff: String?, nowMs: Int64) throws {
        let data = JSONText.object { j in
            j.add("tenant_id", config.tenantId); j.add("site_id", config.siteId)
            j.add("appointment_id", appointmentId); j.add("patient_id", patientId)
            j.add("device_id", device); j.add("method", method); j.add("checked_in_at", Time.rfc3339(ms: nowMs))
        }
        let eventId = try Ledger.enqueue(db, name: "clinic/checkin.recorded", eventClass: .clinical, source: "appointment:\(appointmentId)",
                                         data: data, nowMs: nowMs, ids: ids)
        try db.execute(sql: "INSERT INTO checkins (appointment_id, patient_id, checked_in_ms, method, device_id, staff, event_id) VALUES (?,?,?,?,?,?,?)",
                       arguments: [appointmentId, patientId, nowMs, method, device, staff, eventId])
    }

    func details(_ db: Database, _ id: String) throws -> KioskResult.Appt? {
        guard let r = try Row.fetchOne(db, sql: """
            SELECT a.id, a.start_ms, a.scheduled_start, p.name AS professional, s.name AS service, a.room_id
            FROM appointments a LEFT JOIN professionals p ON p.id = a.professional_id
            LEFT JOIN services s ON s.id = a.service_id WHERE a.id = ?
            """, arguments: [id]) else { return nil }
        let startMs: Int64 = r["start_ms"]
        return KioskResult.Appt(id: r["id"], startMs: startMs, scheduledStart: Time.rfc3339(ms: startMs),
                                professional: r["professional"], room: try Rooms.displayName(db, cloudRoomId: r["room_id"], config: config),
                                service: r["service"])
    }
}

/// Rooms, presence, readings, alerts and device status.
enum Rooms {
    /// People see the config's name, else the linked Directus name, else the key.
    static func displayName(_ db: Database, cloudRoomId: String?, config: EdgeConfig) throws -> String? {
        guard let cloudRoomId, let r = try Row.fetchOne(db, sql: "SELECT name, mqtt_room_id FROM rooms WHERE id = ?", arguments: [cloudRoomId]) else { return nil }
        let key: String? = r["mqtt_room_id"]
        if let key, let n = config.rooms[key]?.name { return n }
        return r["name"] ?? key
    }
    static func displayName(_ db: Database, key: String, config: EdgeConfig) throws -> String {
        if let n = config.rooms[key]?.name { return n }
        return try String.fetchOne(db, sql: "SELECT name FROM rooms WHERE mqtt_room_id = ? ORDER BY id LIMIT 1", arguments: [key]) ?? key
    }
    static func cloudId(_ db: Database, key: String) throws -> String? {
        try String.fetchOne(db.cachedStatement(sql: "SELECT id FROM rooms WHERE mqtt_room_id = ? ORDER BY id LIMIT 1"), arguments: [key])
    }

    static func refreshOccupancy(_ db: Database, room: String, config: EdgeConfig, nowMs: Int64, ids: UUIDv7) throws {
        let occupied = try Bool.fetchOne(db.cachedStatement(sql: "SELECT EXISTS(SELECT 1 FROM presence WHERE room_key = ? AND occupied = 1 AND online = 1)"), arguments: [room]) ?? false
        let prev = try Bool.fetchOne(db.cachedStatement(sql: "SELECT occupied FROM room_state WHERE room_key = ?"), arguments: [room]) ?? false
        guard occupied != prev else { return }
        try db.execute(sql: "INSERT OR REPLACE INTO room_state (room_key, occupied, changed_ms) VALUES (?,?,?)", arguments: [room, occupied, nowMs])
        let cloud = try cloudId(db, key: room)
        let data = JSONText.object { j in
            j.add("tenant_id", config.tenantId); j.add("site_id", config.siteId); j.add("room_id", room)
            if let cloud { j.add("cloud_room_id", cloud) }
            j.add("occupied", occupied); j.add("changed_at", Time.rfc3339(ms: nowMs))
        }
        try Ledger.enqueue(db, name: "clinic/room.occupancy_changed", eventClass: .clinical, source: "room:\(room)", data: data, nowMs: nowMs, ids: ids)
    }

    /// The latest value of each (room, metric) seen in one ingest batch: only the last one
    /// matters, so the batch writes each once, at its end (`writeReadings`).
    struct LatestReadings {
        struct Key: Hashable { let room: String, metric: EnvironmentMetric }
        var rows: [Key: (value: Double, atMs: Int64, device: String)] = [:]
    }

    static func writeReadings(_ db: Database, _ latest: LatestReadings) throws {
        guard !latest.rows.isEmpty else { return }
        let st = try db.cachedStatement(sql: "INSERT OR REPLACE INTO readings (room_key, metric, value, at_ms, device_id) VALUES (?,?,?,?,?) -- raw")
        for (k, v) in latest.rows {
            try st.runRaw { b in b.text(k.room); b.text(k.metric.rawValue); b.double(v.value); b.int(v.atMs); b.text(v.device) }
        }
    }

    /// Keeps the reading's values as the room's latest (written at the end of the batch) and
    /// raises or clears the room's environment alerts.
    static func recordReadings(_ db: Database, room: String, device: String, reading: EnvironmentReading, config: EdgeConfig,
                               nowMs: Int64, ids: UUIDv7, latest: inout LatestReadings) throws {
        for (metric, value) in reading.values {
            latest.rows[.init(room: room, metric: metric)] = (value, nowMs, device)
        }
        guard config.rooms[room] != nil else { return }
        for metric in EnvironmentMetric.allCases {
            guard let value = reading.values[metric] else { continue }
            guard let limits = config.rooms[room]?.limits[metric.rawValue] else { continue }
            let active = try Bool.fetchOne(db.cachedStatement(sql: "SELECT EXISTS(SELECT 1 FROM alerts WHERE room_key = ? AND metric = ?)"), arguments: [room, metric.rawValue]) ?? false
            guard let t = AlertRule.evaluate(active: active, value: value, limits: limits) else { continue }
            if t == .raised {
                try db.execute(sql: "INSERT INTO alerts (room_key, metric, value, min, max, since_ms, device_id) VALUES (?,?,?,?,?,?,?)",
                               arguments: [room, metric.rawValue, value, limits.min, limits.max, nowMs, device])
            } else {
                try db.execute(sql: "DELETE FROM alerts WHERE room_key = ? AND metric = ?", arguments: [room, metric.rawValue])
            }
            let cloud = try cloudId(db, key: room)
            let data = JSONText.object { j in
                j.add("tenant_id", config.tenantId); j.add("site_id", config.siteId); j.add("room_id", room)
                if let cloud { j.add("cloud_room_id", cloud) }
                j.add("device_id", device); j.add("metric", metric.rawValue); j.add("value", value)
                j.add("min", limits.min); j.add("max", limits.max); j.add("state", t.rawValue); j.add("at", Time.rfc3339(ms: nowMs))
            }
            try Ledger.enqueue(db, name: "clinic/environment.alert", eventClass: .clinical, source: "room:\(room)", data: data, nowMs: nowMs, ids: ids)
        }
    }

    /// Returns whether the device's state changed.
    static func recordStatus(_ db: Database, device: String, status: DeviceStatus, config: EdgeConfig, nowMs: Int64, ids: UUIDv7) throws -> Bool {
        let prev = try Row.fetchOne(db, sql: "SELECT type, room_id, state FROM devices WHERE device_id = ?", arguments: [device])
        let state = status.online ? "online" : "offline"
        let type: String? = status.type?.rawValue ?? (prev?["type"] as String?)
        try db.execute(sql: """
            INSERT INTO devices (device_id, type, room_id, fw, state, last_seen_ms) VALUES (?,?,?,?,?,?)
            ON CONFLICT(device_id) DO UPDATE SET type = coalesce(excluded.type, type), room_id = coalesce(excluded.room_id, room_id),
              fw = coalesce(excluded.fw, fw), state = excluded.state, last_seen_ms = excluded.last_seen_ms
            """, arguments: [device, type, status.roomId, status.fw, state, nowMs])
        let changed = (prev?["state"] as String?) != state
        // A presence device that goes offline stops counting toward its room.
        if let room = try String.fetchOne(db, sql: "SELECT room_key FROM presence WHERE device_id = ?", arguments: [device]) {
            try db.execute(sql: "UPDATE presence SET online = ? WHERE device_id = ?", arguments: [status.online, device])
            try refreshOccupancy(db, room: room, config: config, nowMs: nowMs, ids: ids)
        }
        guard changed else { return false }
        let data = JSONText.object { j in
            j.add("tenant_id", config.tenantId); j.add("site_id", config.siteId); j.add("device_id", device)
            j.add("device_type", type ?? "unknown"); j.add("state", state); j.add("at", Time.rfc3339(ms: nowMs))
        }
        try Ledger.enqueue(db, name: "integration/device.status_changed", eventClass: .clinical, source: "device:\(device)", data: data, nowMs: nowMs, ids: ids)
        return true
    }
}
