import EdgeCore
import Foundation
import GRDB

// The roster pulled from Directus: `patients`, `professionals`, `services`, `rooms`,
// `appointments`, and `sync_state` (each collection's cursor and last pulls). Only what check-in
// and reception need is kept.

/// A roster collection, named as in Directus and as its table.
public enum RosterCollection: String, Sendable, CaseIterable {
    case patients, professionals, services, rooms, appointments
}

/// An appointment as the roster keeps it.
public struct AppointmentRow: Sendable, Equatable {
    public var id: String
    public var patientId: String?
    public var professionalId: String?
    public var serviceId: String?
    public var roomId: String?
    public var startMs: Int64
    public var endMs: Int64
    public var scheduledStart: String
    public var scheduledEnd: String
    public var status: String
    public var createdAt: String?
    public var updatedAt: String?
    public init(
        id: String, patientId: String?, professionalId: String?, serviceId: String?, roomId: String?, startMs: Int64, endMs: Int64,
        scheduledStart: String, scheduledEnd: String, status: String, createdAt: String?, updatedAt: String?
    ) {
        self.id = id; self.patientId = patientId; self.professionalId = professionalId; self.serviceId = serviceId; self.roomId = roomId
        self.startMs = startMs; self.endMs = endMs; self.scheduledStart = scheduledStart; self.scheduledEnd = scheduledEnd
        self.status = status; self.createdAt = createdAt; self.updatedAt = updatedAt
    }
}

extension StoreTransaction {
    // MARK: one roster page

    public func upsertPatient(id: String, name: String, phone: String?, qrCodeHash: String?, createdAt: String?, updatedAt: String?) throws {
        try db.execute(
            sql: "INSERT OR REPLACE INTO patients (id, name, phone, qr_code_hash, created_at, updated_at) VALUES (?,?,?,?,?,?)",
            arguments: [id, name, phone, qrCodeHash, createdAt, updatedAt])
    }
    /// A professional or a service (both: id and name).
    public func upsertNamed(_ collection: RosterCollection, id: String, name: String?, createdAt: String?, updatedAt: String?) throws {
        precondition(collection == .professionals || collection == .services, "upsertNamed: professionals or services only")
        try db.execute(
            sql: "INSERT OR REPLACE INTO \(collection.rawValue) (id, name, created_at, updated_at) VALUES (?,?,?,?)",
            arguments: [id, name, createdAt, updatedAt])
    }
    public func upsertRoom(id: String, name: String?, mqttRoomId: String?, createdAt: String?, updatedAt: String?) throws {
        try db.execute(
            sql: "INSERT OR REPLACE INTO rooms (id, name, mqtt_room_id, created_at, updated_at) VALUES (?,?,?,?,?)",
            arguments: [id, name, mqttRoomId, createdAt, updatedAt])
    }
    public func upsertAppointment(_ a: AppointmentRow) throws {
        try db.execute(
            sql: """
                INSERT OR REPLACE INTO appointments (id, patient_id, professional_id, service_id, room_id, start_ms, end_ms,
                  scheduled_start, scheduled_end, status, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)
                """,
            arguments: [
                a.id, a.patientId, a.professionalId, a.serviceId, a.roomId, a.startMs, a.endMs, a.scheduledStart,
                a.scheduledEnd, a.status, a.createdAt, a.updatedAt,
            ])
    }

    // MARK: reconciling a full pull

    /// The ids kept of a collection, one at a time (a large roster's ids are not held in
    /// memory); for appointments, those starting in `[fromMs, toMs)`. `body` must not write.
    public func forEachRosterId(
        _ collection: RosterCollection, startingFrom fromMs: Int64, to toMs: Int64, _ body: (String) throws -> Void
    ) throws {
        let scope = collection == .appointments ? " WHERE start_ms >= \(fromMs) AND start_ms < \(toMs)" : ""
        let ids = try String.fetchCursor(db, sql: "SELECT id FROM \(collection.rawValue)\(scope)")
        while let id = try ids.next() { try body(id) }
    }
    /// Removes a row deleted upstream.
    public func deleteRosterRow(_ collection: RosterCollection, id: String) throws {
        try db.execute(sql: "DELETE FROM \(collection.rawValue) WHERE id = ?", arguments: [id])
    }
    /// Removes the appointments that ended before `ms` (days that left the window).
    public func deleteAppointments(endedBefore ms: Int64) throws {
        try db.execute(sql: "DELETE FROM appointments WHERE end_ms < ?", arguments: [ms])
    }

    // MARK: sync_state

    /// After a full pull: the cursor (kept when nil), the pull's time, and the full pull's time
    /// unless it was held back (`full` false).
    public func recordFullPull(_ collection: RosterCollection, cursor: String?, nowMs: Int64, full: Bool) throws {
        try db.execute(
            sql: """
                INSERT INTO sync_state (collection, cursor, last_sync_ms, last_full_ms) VALUES (?,?,?,?)
                ON CONFLICT(collection) DO UPDATE SET cursor = coalesce(excluded.cursor, cursor), last_sync_ms = excluded.last_sync_ms,
                  last_full_ms = coalesce(excluded.last_full_ms, last_full_ms)
                """, arguments: [collection.rawValue, cursor, nowMs, full ? nowMs : nil])
    }
    /// After an incremental pull: the cursor moves forward only, the pull's time is kept.
    public func recordIncrementalPull(_ collection: RosterCollection, cursor: String?, nowMs: Int64) throws {
        try db.execute(
            sql: """
                INSERT INTO sync_state (collection, cursor, last_sync_ms) VALUES (?,?,?)
                ON CONFLICT(collection) DO UPDATE SET cursor = CASE WHEN excluded.cursor IS NOT NULL AND (cursor IS NULL OR excluded.cursor > cursor)
                  THEN excluded.cursor ELSE cursor END, last_sync_ms = excluded.last_sync_ms
                """, arguments: [collection.rawValue, cursor, nowMs])
    }
}

extension AppDatabase {
    /// A collection's cursor: the newest `updated_at`/`created_at` pulled (nil: never pulled).
    public func syncCursor(_ collection: RosterCollection) async throws -> String? {
        try await writer.read { db in
            try String.fetchOne(db, sql: "SELECT cursor FROM sync_state WHERE collection = ?", arguments: [collection.rawValue])
        }
    }
}
