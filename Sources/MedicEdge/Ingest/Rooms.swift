import EdgeCore
import EdgeStore
import Foundation

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
        try db.writeLatestReadings(
            latest.rows.map { k, v in
                LatestReading(room: k.room, metric: k.metric.rawValue, value: v.value, atMs: v.atMs, device: v.device)
            })
    }

    /// Keeps the reading's values as the room's latest (written at the end of the batch) and
    /// raises or clears the room's environment alerts.
    static func recordReadings(
        _ db: StoreTransaction, room: String, device: String, reading: EnvironmentReading, config: EdgeConfig,
        nowMs: Int64, ids: UUIDv7, latest: inout LatestReadings, coldChain: ColdChainDesk? = nil, monoNs: UInt64 = 0
    ) throws {
        for (metric, value) in reading.values {
            latest.rows[.init(room: room, metric: metric)] = (value, nowMs, device)
        }
        guard config.rooms[room] != nil else { return }
        if let coldChain, let t = reading.values[.temperatureC] {
            try coldChain.reading(db, room: room, device: device, tempC: t, ts: reading.ts, receivedMs: nowMs, monoNs: monoNs)
        }
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
    static func recordStatus(_ db: StoreTransaction, device: String, status: DeviceStatus, config: EdgeConfig, nowMs: Int64, ids: UUIDv7) throws
        -> Bool
    {
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
        try db.enqueue(
            name: "integration/device.status_changed", eventClass: .clinical, source: "device:\(device)", data: data, nowMs: nowMs, ids: ids)
        return true
    }
}
