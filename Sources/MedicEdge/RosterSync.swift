import EdgeCore
import EdgeHTTPClient
import EdgeStore
import Foundation
import GRDB
import Logging

struct DirectusError: Error, CustomStringConvertible {
    let status: Int
    let code: String
    let message: String
    var description: String { "Directus answered HTTP \(status) (\(code)): \(message)" }
}

/// Pulls the roster from Directus (CONTRACT §3): full at start-up, on a new local day and
/// daily (reconciling by ids), incremental on created_at/updated_at in between. A failed
/// pull keeps the last good roster. Logs carry the Directus error code, never the token.
final class RosterSync: Sendable {
    let config: EdgeConfig
    let db: AppDatabase
    let http: any HTTPTransport
    let state: EdgeState
    let logger: Logger
    static let pageSize = 500
    static let overlapMs: Int64 = 120_000
    static let collections: [(String, String)] = [
        ("patients", "id,name,phone,qr_code_hash,created_at,updated_at"),
        ("professionals", "id,name,created_at,updated_at"),
        ("services", "id,name,created_at,updated_at"),
        ("rooms", "id,name,iot_config,created_at,updated_at"),
        ("appointments", "id,patient_id,professional_id,service_id,room_id,scheduled_start,scheduled_end,status,created_at,updated_at"),
    ]

    init(config: EdgeConfig, db: AppDatabase, http: any HTTPTransport, state: EdgeState, logger: Logger) {
        self.config = config; self.db = db; self.http = http; self.state = state; self.logger = logger
    }

    /// The appointment window: whole local days [today − 1, today + days_ahead].
    func window(nowMs: Int64) -> (from: String, to: String, fromMs: Int64, toMs: Int64) {
        let zone = config.timeZone
        let today = LocalDay.dayString(nowMs, zone: zone)
        let first = LocalDay.addDays(today, -1, zone: zone)
        let last = LocalDay.addDays(today, config.syncDaysAhead, zone: zone)
        let (f, _) = LocalDay.bounds(first, zone: zone)!
        let (_, t) = LocalDay.bounds(last, zone: zone)!
        return (first, last, f, t)
    }

    func fetch(_ collection: String, fields: String, filter: String?) async throws -> [[String: JSON]] {
        guard let base = config.cloud?.directusURL, let token = config.cloud?.directusToken else { return [] }
        var rows: [[String: JSON]] = []
        var offset = 0
        while true {
            var q = "fields=\(enc(fields))&sort=id&limit=\(RosterSync.pageSize)&offset=\(offset)"
            if let filter { q += "&filter=\(enc(filter))" }
            let url = base.trimmingCharacters(in: CharacterSet(charactersIn: "/")) + "/items/\(collection)?" + q
            let resp = try await http.send(HTTPRequest(url: url, headers: [("Authorization", "Bearer \(token)"), ("Accept", "application/json")],
                                                       connectTimeout: config.cloud?.connectTimeoutSeconds ?? 5,
                                                       timeout: config.cloud?.requestTimeoutSeconds ?? 15))
            let body = try? JSON.parse(resp.body)
            guard resp.status == 200 else {
                let err = body?["errors"]?.arrayValue?.first
                throw DirectusError(status: resp.status, code: err?["extensions"]?["code"]?.stringValue ?? "UNKNOWN",
                                    message: String((err?["message"]?.stringValue ?? "no error message").prefix(200)))
            }
            guard let data = body?["data"]?.arrayValue else {
                throw DirectusError(status: resp.status, code: "BAD_RESPONSE", message: "the answer has no data array")
            }
            rows += data.compactMap(\.objectValue)
            if data.count < RosterSync.pageSize { return rows }
            offset += data.count
        }
    }

    private func enc(_ s: String) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~,")
        return s.addingPercentEncoding(withAllowedCharacters: allowed) ?? s
    }

    static func stamp(_ r: [String: JSON]) -> String? {
        [r["updated_at"]?.stringValue, r["created_at"]?.stringValue].compactMap { $0 }.max { (Time.parseMs($0) ?? 0) < (Time.parseMs($1) ?? 0) }
    }

    /// Writes rows of one collection. Only what check-in and reception need is kept.
    func upsert(_ db: Database, _ collection: String, _ rows: [[String: JSON]]) throws {
        for r in rows {
            guard let id = r["id"]?.stringValue?.lowercased() else { continue }
            let ca = r["created_at"]?.stringValue, ua = r["updated_at"]?.stringValue
            switch collection {
            case "patients":
                try db.execute(sql: "INSERT OR REPLACE INTO patients (id, name, phone, qr_code_hash, created_at, updated_at) VALUES (?,?,?,?,?,?)",
                               arguments: [id, r["name"]?.stringValue ?? "", r["phone"]?.stringValue, r["qr_code_hash"]?.stringValue?.lowercased(), ca, ua])
            case "professionals", "services":
                try db.execute(sql: "INSERT OR REPLACE INTO \(collection) (id, name, created_at, updated_at) VALUES (?,?,?,?)",
                               arguments: [id, r["name"]?.stringValue, ca, ua])
            case "rooms":
                var key = r["iot_config"]?["mqtt_room_id"]?.stringValue
                if key == nil, let s = r["iot_config"]?.stringValue, let j = try? JSON.parse(s) { key = j["mqtt_room_id"]?.stringValue }
                try db.execute(sql: "INSERT OR REPLACE INTO rooms (id, name, mqtt_room_id, created_at, updated_at) VALUES (?,?,?,?,?)",
                               arguments: [id, r["name"]?.stringValue, key, ca, ua])
            case "appointments":
                guard let ss = r["scheduled_start"]?.stringValue, let se = r["scheduled_end"]?.stringValue,
                      let sm = Time.parseMs(ss), let em = Time.parseMs(se) else {
                    logger.warning("roster: appointment \(id) skipped: scheduled_start/scheduled_end are not RFC 3339 times")
                    continue
                }
                try db.execute(sql: """
                    INSERT OR REPLACE INTO appointments (id, patient_id, professional_id, service_id, room_id, start_ms, end_ms,
                      scheduled_start, scheduled_end, status, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)
                    """, arguments: [id, r["patient_id"]?.stringValue?.lowercased(), r["professional_id"]?.stringValue?.lowercased(),
                                     r["service_id"]?.stringValue?.lowercased(), r["room_id"]?.stringValue?.lowercased(), sm, em, ss, se,
                                     r["status"]?.stringValue ?? "scheduled", ca, ua])
            default: break
            }
        }
    }

    func windowFilter(nowMs: Int64) -> String {
        let w = window(nowMs: nowMs)
        return "{\"scheduled_start\":{\"_gte\":\"\(Time.rfc3339(ms: w.fromMs))\",\"_lt\":\"\(Time.rfc3339(ms: w.toMs))\"}}"
    }

    /// Everything, reconciled by ids: rows deleted upstream go, missing rows come.
    func fullSync(nowMs: Int64) async throws {
        var all: [(String, [[String: JSON]])] = []
        for (c, fields) in RosterSync.collections {
            let filter = c == "appointments" ? windowFilter(nowMs: nowMs) : nil
            all.append((c, try await fetch(c, fields: fields, filter: filter)))
        }
        let w = window(nowMs: nowMs)
        let fetched = all
        try await db.writer.write { db in
            for (c, rows) in fetched {
                let ids = Set(rows.compactMap { $0["id"]?.stringValue?.lowercased() })
                let scope = c == "appointments" ? " WHERE start_ms >= \(w.fromMs) AND start_ms < \(w.toMs)" : ""
                let local = try String.fetchAll(db, sql: "SELECT id FROM \(c)\(scope)")
                for id in local where !ids.contains(id) { try db.execute(sql: "DELETE FROM \(c) WHERE id = ?", arguments: [id]) }
                if c == "appointments" {
                    try db.execute(sql: "DELETE FROM appointments WHERE end_ms < ?", arguments: [w.fromMs])
                }
                try self.upsert(db, c, rows)
                let cursor = rows.compactMap(RosterSync.stamp).max { (Time.parseMs($0) ?? 0) < (Time.parseMs($1) ?? 0) }
                try db.execute(sql: """
                    INSERT INTO sync_state (collection, cursor, last_sync_ms, last_full_ms) VALUES (?,?,?,?)
                    ON CONFLICT(collection) DO UPDATE SET cursor = coalesce(excluded.cursor, cursor), last_sync_ms = excluded.last_sync_ms,
                      last_full_ms = excluded.last_full_ms
                    """, arguments: [c, cursor, nowMs, nowMs])
            }
            try Ledger.setKV(db, "roster.window_day", LocalDay.dayString(nowMs, zone: self.config.timeZone))
        }
        state.rosterSynced(nowMs: nowMs)
    }

    /// Rows created or updated after the cursor (minus an overlap).
    func incrementalSync(nowMs: Int64) async throws {
        for (c, fields) in RosterSync.collections {
            let cursor = try await db.writer.read { db in try String.fetchOne(db, sql: "SELECT cursor FROM sync_state WHERE collection = ?", arguments: [c]) }
            var filter: String? = nil
            if let cursor, let ms = Time.parseMs(cursor) {
                let since = Time.rfc3339(ms: ms - RosterSync.overlapMs)
                let changed = "{\"_or\":[{\"created_at\":{\"_gt\":\"\(since)\"}},{\"updated_at\":{\"_gt\":\"\(since)\"}}]}"
                filter = c == "appointments" ? "{\"_and\":[\(changed),\(windowFilter(nowMs: nowMs))]}" : changed
            } else if c == "appointments" {
                filter = windowFilter(nowMs: nowMs)
            }
            let rows = try await fetch(c, fields: fields, filter: filter)
            let newCursor = rows.compactMap(RosterSync.stamp).max { (Time.parseMs($0) ?? 0) < (Time.parseMs($1) ?? 0) }
            try await db.writer.write { db in
                try self.upsert(db, c, rows)
                try db.execute(sql: """
                    INSERT INTO sync_state (collection, cursor, last_sync_ms) VALUES (?,?,?)
                    ON CONFLICT(collection) DO UPDATE SET cursor = CASE WHEN excluded.cursor IS NOT NULL AND (cursor IS NULL OR excluded.cursor > cursor)
                      THEN excluded.cursor ELSE cursor END, last_sync_ms = excluded.last_sync_ms
                    """, arguments: [c, newCursor, nowMs])
            }
        }
        state.rosterSynced(nowMs: nowMs)
    }

    func run() async {
        guard config.cloud?.directusURL != nil else { return }
        var lastFullMs: Int64 = 0
        var lastDay = ""
        var failures = 0
        while !Task.isCancelled {
            let now = Time.nowMs()
            let day = LocalDay.dayString(now, zone: config.timeZone)
            do {
                if day != lastDay || now - lastFullMs > 86_400_000 {
                    try await fullSync(nowMs: now)
                    lastFullMs = now; lastDay = day
                    logger.info("roster: full sync done (window \(window(nowMs: now).from)...\(window(nowMs: now).to))")
                } else {
                    try await incrementalSync(nowMs: now)
                }
                failures = 0
                try? await Task.sleep(for: .milliseconds(Int(config.cloud!.rosterSyncSeconds * 1000)))
            } catch {
                failures += 1
                logger.warning("roster: sync failed, keeping the last good roster: \(error)")
                let delay = min(config.cloud!.rosterSyncSeconds, 0.5 * pow(2.0, Double(min(failures, 8))))
                try? await Task.sleep(for: .milliseconds(Int(max(0.2, delay) * 1000)))
            }
        }
    }
}
