import EdgeCore
import EdgeStore
import Foundation
import GRDB

/// One appointment of the agenda (CONTRACT §4), as read from the local roster.
struct AgendaItem: Sendable, Equatable {
    var id: String
    var startMs: Int64
    var endMs: Int64
    var status: String
    var patientId: String?
    var patientName: String?
    var patientPhone: String?
    var professionalId: String?
    var professionalName: String?
    var roomId: String?
    var roomName: String?
    var serviceId: String?
    var serviceName: String?
    var checkedInMs: Int64?
    var checkinMethod: String?

    /// Arrived here or per the cloud.
    var arrived: Bool { checkedInMs != nil || ["arrived", "in_progress", "completed"].contains(status) }
    /// What the reception may still check in (the kiosk's statuses).
    var checkinAllowed: Bool { !arrived && ["scheduled", "confirmed", "no_show"].contains(status) }

    var json: String {
        JSONText.object { j in
            j.add("id", id)
            j.add("scheduled_start", Time.rfc3339(ms: startMs))
            j.add("scheduled_end", Time.rfc3339(ms: endMs))
            j.add("status", status)
            if let patientId {
                j.addRaw("patient", JSONText.object { p in p.add("id", patientId); p.add("name", patientName); p.add("phone", patientPhone) })
            } else { j.addRaw("patient", "null") }
            AgendaItem.ref(&j, "professional", professionalId, professionalName)
            AgendaItem.ref(&j, "room", roomId, roomName)
            AgendaItem.ref(&j, "service", serviceId, serviceName)
            j.add("checked_in_at", checkedInMs.map { Time.rfc3339(ms: $0) })
            j.add("checkin_method", checkinMethod)
        }
    }
    private static func ref(_ j: inout JSONText, _ key: String, _ id: String?, _ name: String?) {
        if let id { j.addRaw(key, JSONText.object { o in o.add("id", id); o.add("name", name) }) } else { j.addRaw(key, "null") }
    }
}

/// One room of the rooms board.
struct RoomView: Sendable, Equatable {
    struct Alert: Sendable, Equatable { var metric: String; var value, min, max: Double; var sinceMs: Int64 }
    var key: String
    var name: String
    var occupied: Bool
    /// A presence sensor reports on this room (else `occupied` means nothing to people).
    var presenceKnown: Bool
    var readings: [String: Double]
    var readingsAtMs: Int64?
    var alerts: [Alert]
    var limits: [String: MetricLimits]

    var json: String {
        JSONText.object { j in
            j.add("id", key)
            j.add("name", name)
            j.add("occupied", occupied)
            j.add("presence_sensor", presenceKnown)
            j.addRaw("readings", JSONText.object { r in
                for m in EnvironmentMetric.allCases { r.add(m.rawValue, readings[m.rawValue]) }
                r.add("at", readingsAtMs.map { Time.rfc3339(ms: $0) })
            })
            j.addRaw("alerts", "[" + alerts.map { a in
                JSONText.object { o in
                    o.add("metric", a.metric); o.add("value", a.value); o.add("min", a.min); o.add("max", a.max)
                    o.add("since", Time.rfc3339(ms: a.sinceMs))
                }
            }.joined(separator: ",") + "]")
            // Additions to the contract's fields: `presence_sensor` above, and the configured
            // limits, so people see "4,6 °C (2–8 °C)".
            j.addRaw("limits", JSONText.object { l in
                for m in EnvironmentMetric.allCases {
                    guard let x = limits[m.rawValue] else { continue }
                    l.addRaw(m.rawValue, JSONText.object { o in o.add("min", x.min); o.add("max", x.max) })
                }
            })
        }
    }
}

/// Reads and writes of the reception console.
struct ConsoleData: Sendable {
    let config: EdgeConfig
    let db: AppDatabase

    /// The local day's appointments, by scheduled start (then id).
    func agenda(day: String) throws -> [AgendaItem]? {
        guard let (from, to) = LocalDay.bounds(day, zone: config.timeZone) else { return nil }
        let config = self.config
        return try db.writer.read { db in
            let rows = try Row.fetchAll(db, sql: """
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
                """, arguments: [from, to])
            var roomNames: [String: String?] = [:]
            return try rows.map { r in
                let roomId: String? = r["room_id"]
                var roomName: String?
                if let roomId {
                    if let cached = roomNames[roomId] { roomName = cached } else {
                        roomName = try Rooms.displayName(db, cloudRoomId: roomId, config: config)
                        roomNames[roomId] = roomName
                    }
                }
                return AgendaItem(id: r["id"], startMs: r["start_ms"], endMs: r["end_ms"], status: r["status"],
                                  patientId: r["patient_id"], patientName: r["patient_name"], patientPhone: r["phone"],
                                  professionalId: r["professional_id"], professionalName: r["professional_name"],
                                  roomId: roomId, roomName: roomName, serviceId: r["service_id"], serviceName: r["service_name"],
                                  checkedInMs: r["checked_in_ms"], checkinMethod: r["method"])
            }
        }
    }

    static func agendaJSON(day: String, items: [AgendaItem]) -> String {
        JSONText.object { j in
            j.add("date", day)
            j.addRaw("appointments", "[" + items.map(\.json).joined(separator: ",") + "]")
        }
    }

    /// Every room people may care about: the config's rooms, rooms devices have reported on,
    /// and the cloud rooms linked to an installer's key. By display name.
    func rooms() throws -> [RoomView] {
        let config = self.config
        return try db.writer.read { db in
            var keys = Set(config.rooms.keys)
            keys.formUnion(try String.fetchAll(db, sql: "SELECT DISTINCT room_key FROM readings"))
            keys.formUnion(try String.fetchAll(db, sql: "SELECT room_key FROM room_state"))
            keys.formUnion(try String.fetchAll(db, sql: "SELECT DISTINCT mqtt_room_id FROM rooms WHERE mqtt_room_id IS NOT NULL AND mqtt_room_id != ''"))
            var views: [RoomView] = []
            for key in keys {
                let occ = try Bool.fetchOne(db, sql: "SELECT occupied FROM room_state WHERE room_key = ?", arguments: [key])
                let sensors = try Bool.fetchOne(db, sql: "SELECT EXISTS(SELECT 1 FROM presence WHERE room_key = ?)", arguments: [key]) ?? false
                var readings: [String: Double] = [:]
                var at: Int64?
                for r in try Row.fetchAll(db, sql: "SELECT metric, value, at_ms FROM readings WHERE room_key = ?", arguments: [key]) {
                    readings[r["metric"]] = r["value"]
                    let t: Int64 = r["at_ms"]
                    at = max(at ?? t, t)
                }
                let alerts = try Row.fetchAll(db, sql: "SELECT metric, value, min, max, since_ms FROM alerts WHERE room_key = ? ORDER BY since_ms, metric",
                                              arguments: [key]).map {
                    RoomView.Alert(metric: $0["metric"], value: $0["value"], min: $0["min"], max: $0["max"], sinceMs: $0["since_ms"])
                }
                views.append(RoomView(key: key, name: try Rooms.displayName(db, key: key, config: config), occupied: occ ?? false,
                                      presenceKnown: occ != nil || sensors, readings: readings, readingsAtMs: at, alerts: alerts, limits: config.rooms[key]?.limits ?? [:]))
            }
            return views.sorted {
                let c = $0.name.localizedStandardCompare($1.name)
                return c == .orderedSame ? $0.key < $1.key : c == .orderedAscending
            }
        }
    }

    static func roomsJSON(_ rooms: [RoomView]) -> String {
        "{\"rooms\":[" + rooms.map(\.json).joined(separator: ",") + "]}"
    }

    enum CheckinOutcome: Sendable, Equatable {
        case recorded(checkedInMs: Int64)
        case unknown
        case alreadyCheckedIn(atMs: Int64?, method: String?)
        case notCheckable(status: String)
    }

    /// A check-in by the reception, with the kiosk's rules, in one transaction: the check-in,
    /// its `clinic/checkin.recorded` event (method `reception`) and the audit row.
    func checkIn(appointmentId: String, staff: String, nowMs: Int64) throws -> CheckinOutcome {
        let desk = CheckinDesk(config: config, ids: .shared)
        return try db.writer.write { db in
            guard let a = try Row.fetchOne(db, sql: """
                SELECT a.patient_id, a.status, c.checked_in_ms, c.method FROM appointments a
                LEFT JOIN checkins c ON c.appointment_id = a.id WHERE a.id = ?
                """, arguments: [appointmentId]) else { return .unknown }
            let status: String = a["status"]
            if let at: Int64 = a["checked_in_ms"] { return .alreadyCheckedIn(atMs: at, method: a["method"]) }
            if ["arrived", "in_progress", "completed"].contains(status) { return .alreadyCheckedIn(atMs: nil, method: nil) }
            guard ["scheduled", "confirmed", "no_show"].contains(status), let patientId: String = a["patient_id"] else {
                return .notCheckable(status: status)
            }
            try desk.record(db, appointmentId: appointmentId, patientId: patientId, method: "reception", device: "reception",
                            staff: staff, nowMs: nowMs)
            try StaffAccounts.audit(db, name: staff, action: "checkin", target: appointmentId, nowMs: nowMs)
            return .recorded(checkedInMs: nowMs)
        }
    }
}
