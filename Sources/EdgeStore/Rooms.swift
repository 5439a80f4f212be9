import EdgeCore
import Foundation
import GRDB

// The rooms family: `presence` (each presence sensor's last report), `room_state` (each room's
// occupancy as last signalled), `readings` (each room's latest value per metric), `alerts`
// (environment alerts raised and not cleared) and `devices` (each device's last status); and the
// lookups of the roster's `rooms` (the cloud's rooms, linked to an installer's key).

/// A device's last status as kept.
public struct DeviceRow: Sendable, Equatable {
    public var type: String?
    public var roomId: String?
    public var state: String?
}

/// A room's latest value of one metric.
public struct LatestReading: Sendable, Equatable {
    public var room: String
    public var metric: String
    public var value: Double
    public var atMs: Int64
    public var device: String
    public init(room: String, metric: String, value: Double, atMs: Int64, device: String) {
        self.room = room; self.metric = metric; self.value = value; self.atMs = atMs; self.device = device
    }
}

/// An active environment alert.
public struct AlertRow: Sendable, Equatable {
    public var metric: String
    public var value: Double
    public var min: Double
    public var max: Double
    public var sinceMs: Int64
}

/// What the rooms board shows of one room key.
public struct RoomBoardRow: Sendable {
    /// Occupancy as last signalled (nil: never).
    public var occupied: Bool?
    /// A presence sensor has reported on the room.
    public var hasSensors: Bool
    public var readings: [(metric: String, value: Double, atMs: Int64)]
    public var alerts: [AlertRow]
}

extension StoreTransaction {
    // MARK: the roster's rooms

    /// The cloud's room id linked to an installer's room key (the first by id).
    public func cloudRoomId(key: String) throws -> String? {
        try String.fetchOne(db.cachedStatement(sql: "SELECT id FROM rooms WHERE mqtt_room_id = ? ORDER BY id LIMIT 1"), arguments: [key])
    }
    /// A cloud room's name and installer's key (nil: unknown room).
    public func room(cloudId: String) throws -> (name: String?, key: String?)? {
        guard let r = try Row.fetchOne(db, sql: "SELECT name, mqtt_room_id FROM rooms WHERE id = ?", arguments: [cloudId]) else { return nil }
        return (r["name"], r["mqtt_room_id"])
    }
    /// The cloud's name of the room linked to an installer's key.
    public func roomName(key: String) throws -> String? {
        try String.fetchOne(db, sql: "SELECT name FROM rooms WHERE mqtt_room_id = ? ORDER BY id LIMIT 1", arguments: [key])
    }

    // MARK: presence and occupancy

    /// Keeps a presence sensor's report (online again).
    public func recordPresence(device: String, room: String, occupied: Bool, nowMs: Int64) throws {
        try db.cachedStatement(
            sql: """
                INSERT INTO presence (device_id, room_key, occupied, online, updated_ms) VALUES (?,?,?,1,?)
                ON CONFLICT(device_id) DO UPDATE SET room_key = excluded.room_key, occupied = excluded.occupied,
                  online = 1, updated_ms = excluded.updated_ms
                """
        ).execute(arguments: [device, room, occupied, nowMs])
    }
    /// Whether an online presence sensor of the room reports it occupied.
    public func sensorsSayOccupied(room: String) throws -> Bool {
        try Bool.fetchOne(
            db.cachedStatement(sql: "SELECT EXISTS(SELECT 1 FROM presence WHERE room_key = ? AND occupied = 1 AND online = 1)"), arguments: [room])
            ?? false
    }
    /// The room's occupancy as last signalled (false: never).
    public func signalledOccupancy(room: String) throws -> Bool {
        try Bool.fetchOne(db.cachedStatement(sql: "SELECT occupied FROM room_state WHERE room_key = ?"), arguments: [room]) ?? false
    }
    /// Keeps the room's occupancy as signalled now.
    public func setSignalledOccupancy(room: String, occupied: Bool, nowMs: Int64) throws {
        try db.execute(sql: "INSERT OR REPLACE INTO room_state (room_key, occupied, changed_ms) VALUES (?,?,?)", arguments: [room, occupied, nowMs])
    }
    /// The room a presence device reports on (nil: not a presence device).
    public func presenceRoom(device: String) throws -> String? {
        try String.fetchOne(db, sql: "SELECT room_key FROM presence WHERE device_id = ?", arguments: [device])
    }
    /// Marks a presence device online or offline.
    public func setPresenceOnline(device: String, online: Bool) throws {
        try db.execute(sql: "UPDATE presence SET online = ? WHERE device_id = ?", arguments: [online, device])
    }

    // MARK: readings and alerts

    /// Keeps the rooms' latest readings (one raw-bound replace each).
    public func writeLatestReadings(_ rows: [LatestReading]) throws {
        guard !rows.isEmpty else { return }
        let st = try db.cachedStatement(sql: "INSERT OR REPLACE INTO readings (room_key, metric, value, at_ms, device_id) VALUES (?,?,?,?,?) -- raw")
        for r in rows {
            try st.runRaw { b in
                b.text(r.room); b.text(r.metric); b.double(r.value); b.int(r.atMs); b.text(r.device)
            }
        }
    }
    /// Whether an alert on the room's metric is active.
    public func alertActive(room: String, metric: String) throws -> Bool {
        try Bool.fetchOne(
            db.cachedStatement(sql: "SELECT EXISTS(SELECT 1 FROM alerts WHERE room_key = ? AND metric = ?)"), arguments: [room, metric]) ?? false
    }
    public func raiseAlert(room: String, metric: String, value: Double, min: Double, max: Double, nowMs: Int64, device: String) throws {
        try db.execute(
            sql: "INSERT INTO alerts (room_key, metric, value, min, max, since_ms, device_id) VALUES (?,?,?,?,?,?,?)",
            arguments: [room, metric, value, min, max, nowMs, device])
    }
    public func clearAlert(room: String, metric: String) throws {
        try db.execute(sql: "DELETE FROM alerts WHERE room_key = ? AND metric = ?", arguments: [room, metric])
    }

    // MARK: devices

    /// A device's last status (nil: never seen).
    public func device(_ id: String) throws -> DeviceRow? {
        guard let r = try Row.fetchOne(db, sql: "SELECT type, room_id, state FROM devices WHERE device_id = ?", arguments: [id]) else { return nil }
        return DeviceRow(type: r["type"], roomId: r["room_id"], state: r["state"])
    }
    /// The type a device last said it is.
    public func deviceType(_ id: String) throws -> String? {
        try String.fetchOne(db, sql: "SELECT type FROM devices WHERE device_id = ?", arguments: [id])
    }
    /// Keeps a device's status (type, room and firmware kept when not said).
    public func recordDeviceStatus(device: String, type: String?, roomId: String?, fw: String?, state: String, nowMs: Int64) throws {
        try db.execute(
            sql: """
                INSERT INTO devices (device_id, type, room_id, fw, state, last_seen_ms) VALUES (?,?,?,?,?,?)
                ON CONFLICT(device_id) DO UPDATE SET type = coalesce(excluded.type, type), room_id = coalesce(excluded.room_id, room_id),
                  fw = coalesce(excluded.fw, fw), state = excluded.state, last_seen_ms = excluded.last_seen_ms
                """, arguments: [device, type, roomId, fw, state, nowMs])
    }

    // MARK: the rooms board

    /// Room keys with readings, a signalled occupancy, or a cloud room linked to them.
    public func reportedRoomKeys() throws -> Set<String> {
        var keys = Set<String>()
        keys.formUnion(try String.fetchAll(db, sql: "SELECT DISTINCT room_key FROM readings"))
        keys.formUnion(try String.fetchAll(db, sql: "SELECT room_key FROM room_state"))
        keys.formUnion(try String.fetchAll(db, sql: "SELECT DISTINCT mqtt_room_id FROM rooms WHERE mqtt_room_id IS NOT NULL AND mqtt_room_id != ''"))
        return keys
    }
    /// What is known of one room key: occupancy, sensors, latest readings, active alerts (by since, metric).
    public func roomBoard(key: String) throws -> RoomBoardRow {
        let occ = try Bool.fetchOne(db, sql: "SELECT occupied FROM room_state WHERE room_key = ?", arguments: [key])
        let sensors = try Bool.fetchOne(db, sql: "SELECT EXISTS(SELECT 1 FROM presence WHERE room_key = ?)", arguments: [key]) ?? false
        let readings = try Row.fetchAll(db, sql: "SELECT metric, value, at_ms FROM readings WHERE room_key = ?", arguments: [key])
            .map { (metric: $0["metric"] as String, value: $0["value"] as Double, atMs: $0["at_ms"] as Int64) }
        let alerts = try Row.fetchAll(
            db, sql: "SELECT metric, value, min, max, since_ms FROM alerts WHERE room_key = ? ORDER BY since_ms, metric",
            arguments: [key]
        ).map {
            AlertRow(metric: $0["metric"], value: $0["value"], min: $0["min"], max: $0["max"], sinceMs: $0["since_ms"])
        }
        return RoomBoardRow(occupied: occ, hasSensors: sensors, readings: readings, alerts: alerts)
    }
}
