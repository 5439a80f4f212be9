import EdgeCore
import EdgeStore
import Foundation

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
    var arrived: Bool { checkedInMs != nil || (AppointmentStatus(rawValue: status)?.alreadyIn ?? false) }
    /// What the reception may still check in (the kiosk's statuses).
    var checkinAllowed: Bool { !arrived && (AppointmentStatus(rawValue: status)?.checkinEligible ?? false) }

    var json: String {
        JSONText.object { j in
            j.add("id", id)
            j.add("scheduled_start", Time.rfc3339(ms: startMs))
            j.add("scheduled_end", Time.rfc3339(ms: endMs))
            j.add("status", status)
            if let patientId {
                j.addRaw(
                    "patient",
                    JSONText.object { p in
                        p.add("id", patientId); p.add("name", patientName); p.add("phone", patientPhone)
                    })
            } else {
                j.addRaw("patient", "null")
            }
            AgendaItem.ref(&j, "professional", professionalId, professionalName)
            AgendaItem.ref(&j, "room", roomId, roomName)
            AgendaItem.ref(&j, "service", serviceId, serviceName)
            j.add("checked_in_at", checkedInMs.map { Time.rfc3339(ms: $0) })
            j.add("checkin_method", checkinMethod)
        }
    }
    private static func ref(_ j: inout JSONText, _ key: String, _ id: String?, _ name: String?) {
        if let id {
            j.addRaw(
                key,
                JSONText.object { o in
                    o.add("id", id); o.add("name", name)
                })
        } else {
            j.addRaw(key, "null")
        }
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
    /// A fridge's cold-chain state (nil: not a cold-chain room).
    var coldChain: ColdChainView? = nil

    struct ColdChainView: Sendable, Equatable {
        var excursion: ExcursionRecord?
        var silentSinceMs: Int64?
        var lastReadingMs: Int64?
    }

    var json: String {
        JSONText.object { j in
            j.add("id", key)
            j.add("name", name)
            j.add("occupied", occupied)
            j.add("presence_sensor", presenceKnown)
            j.addRaw(
                "readings",
                JSONText.object { r in
                    for m in EnvironmentMetric.allCases { r.add(m.rawValue, readings[m.rawValue]) }
                    r.add("at", readingsAtMs.map { Time.rfc3339(ms: $0) })
                })
            j.addRaw(
                "alerts",
                "["
                    + alerts.map { a in
                        JSONText.object { o in
                            o.add("metric", a.metric); o.add("value", a.value); o.add("min", a.min); o.add("max", a.max)
                            o.add("since", Time.rfc3339(ms: a.sinceMs))
                        }
                    }.joined(separator: ",")
                    + (coldChain?.silentSinceMs.map { since in
                        (alerts.isEmpty ? "" : ",")
                            + JSONText.object { o in
                                o.add("metric", "sensor_silent"); o.add("since", Time.rfc3339(ms: since))
                            }
                    } ?? "") + "]")
            if let cc = coldChain {
                // CONTRACT §6: the fridge's open excursion and its sensor's silence.
                j.addRaw(
                    "cold_chain",
                    JSONText.object { o in
                        o.addRaw("excursion", cc.excursion.map { ColdChainJSON.excursion($0, roomName: name) } ?? "null")
                        o.add("sensor_silent", cc.silentSinceMs != nil)
                        o.add("silent_since", cc.silentSinceMs.map { Time.rfc3339(ms: $0) })
                        o.add("last_reading_at", cc.lastReadingMs.map { Time.rfc3339(ms: $0) })
                    })
            }
            // Additions to the contract's fields: `presence_sensor` above, and the configured
            // limits, so people see "4,6 °C (2–8 °C)".
            j.addRaw(
                "limits",
                JSONText.object { l in
                    for m in EnvironmentMetric.allCases {
                        guard let x = limits[m.rawValue] else { continue }
                        l.addRaw(
                            m.rawValue,
                            JSONText.object { o in
                                o.add("min", x.min); o.add("max", x.max)
                            })
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
        return try db.read { db in
            let rows = try db.agenda(fromMs: from, toMs: to)
            var roomNames: [String: String?] = [:]
            return try rows.map { r in
                let roomId = r.roomId
                var roomName: String?
                if let roomId {
                    if let cached = roomNames[roomId] {
                        roomName = cached
                    } else {
                        roomName = try Rooms.displayName(db, cloudRoomId: roomId, config: config)
                        roomNames[roomId] = roomName
                    }
                }
                return AgendaItem(
                    id: r.id, startMs: r.startMs, endMs: r.endMs, status: r.status,
                    patientId: r.patientId, patientName: r.patientName, patientPhone: r.patientPhone,
                    professionalId: r.professionalId, professionalName: r.professionalName,
                    roomId: roomId, roomName: roomName, serviceId: r.serviceId, serviceName: r.serviceName,
                    checkedInMs: r.checkedInMs, checkinMethod: r.checkinMethod)
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
        return try db.read { db in
            var keys = Set(config.rooms.keys)
            keys.formUnion(try db.reportedRoomKeys())
            var views: [RoomView] = []
            for key in keys {
                let board = try db.roomBoard(key: key)
                let occ = board.occupied
                let sensors = board.hasSensors
                var readings: [String: Double] = [:]
                var at: Int64?
                for r in board.readings {
                    readings[r.metric] = r.value
                    let t = r.atMs
                    at = max(at ?? t, t)
                }
                var coldChain: RoomView.ColdChainView?
                if ColdChainDesk.settings(config, room: key) != nil {
                    let sensor = try db.coldSensor(room: key)
                    coldChain = .init(
                        excursion: try db.openExcursion(room: key), silentSinceMs: sensor?.silentSinceMs, lastReadingMs: sensor?.lastReadingMs)
                }
                let alerts = board.alerts.map {
                    RoomView.Alert(metric: $0.metric, value: $0.value, min: $0.min, max: $0.max, sinceMs: $0.sinceMs)
                }
                views.append(
                    RoomView(
                        key: key, name: try Rooms.displayName(db, key: key, config: config), occupied: occ ?? false,
                        presenceKnown: occ != nil || sensors, readings: readings, readingsAtMs: at, alerts: alerts,
                        limits: config.rooms[key]?.limits ?? [:], coldChain: coldChain))
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
        return try db.write { db in
            guard let a = try db.checkinState(appointmentId: appointmentId) else { return .unknown }
            let status = a.status
            if let at = a.checkedInMs { return .alreadyCheckedIn(atMs: at, method: a.method) }
            let known = AppointmentStatus(rawValue: status)
            if known?.alreadyIn ?? false { return .alreadyCheckedIn(atMs: nil, method: nil) }
            guard known?.checkinEligible ?? false, let patientId = a.patientId else {
                return .notCheckable(status: status)
            }
            try desk.record(
                db, appointmentId: appointmentId, patientId: patientId, method: "reception", device: "reception",
                staff: staff, nowMs: nowMs)
            try StaffAccounts.audit(db, name: staff, action: "checkin", target: appointmentId, nowMs: nowMs)
            return .recorded(checkedInMs: nowMs)
        }
    }
}
