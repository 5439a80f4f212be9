import EdgeCore
import EdgeHTTPClient
import EdgeStore
import Foundation
import Logging
import Synchronization

struct DirectusError: Error, CustomStringConvertible {
    let status: Int
    let code: String
    let message: String
    var description: String { "Directus answered HTTP \(status) (\(code)): \(message)" }
}

/// A roster answer that is not `{"data": [...]}` with rows of the expected shape (CONTRACT §3):
/// an error for that pull; the local roster stays as it is. The description names the
/// collection, the row and the field, never a value (values are personal data).
struct RosterAnswerError: Error, CustomStringConvertible, Equatable {
    let collection: String
    let reason: String
    var description: String { "Directus answer for \(collection) refused: \(reason)" }
}

/// The strict reader of a Directus items answer. Pure: tested without a network.
enum RosterAnswer {
    enum Kind: Equatable { case string, nullableString, time, objectOrString }
    /// The fields read per collection, and the JSON type each must have. A required field must
    /// be present and not null; an optional one may be missing or null.
    static let shapes: [String: [(field: String, kind: Kind, required: Bool)]] = [
        "patients": [
            ("id", .string, true), ("name", .string, true), ("phone", .nullableString, false),
            ("qr_code_hash", .nullableString, false), ("created_at", .nullableString, false),
            ("updated_at", .nullableString, false),
        ],
        "professionals": [
            ("id", .string, true), ("name", .nullableString, false),
            ("created_at", .nullableString, false), ("updated_at", .nullableString, false),
        ],
        "services": [
            ("id", .string, true), ("name", .nullableString, false),
            ("created_at", .nullableString, false), ("updated_at", .nullableString, false),
        ],
        "rooms": [
            ("id", .string, true), ("name", .nullableString, false), ("iot_config", .objectOrString, false),
            ("created_at", .nullableString, false), ("updated_at", .nullableString, false),
        ],
        "appointments": [
            ("id", .string, true), ("patient_id", .string, true), ("professional_id", .nullableString, false),
            ("service_id", .nullableString, false), ("room_id", .nullableString, false),
            ("scheduled_start", .time, true), ("scheduled_end", .time, true), ("status", .string, true),
            ("created_at", .nullableString, false), ("updated_at", .nullableString, false),
        ],
    ]
    static let maxIdBytes = 255

    static func typeName(_ v: JSON) -> String {
        switch v {
        case .null: return "null"
        case .bool: return "a boolean"
        case .number: return "a number"
        case .string: return "a string"
        case .array: return "an array"
        case .object: return "an object"
        }
    }

    /// The rows of one page of `GET /items/{collection}`, checked; throws `DirectusError` for a
    /// non-200 answer and `RosterAnswerError` for a 200 that is not a roster page.
    static func rows(
        collection: String, status: Int, contentType: String?, body: [UInt8],
        limit: Int
    ) throws -> [[String: JSON]] {
        let parsed = try? JSON.parse(body)
        guard status == 200 else {
            let err = parsed?["errors"]?.arrayValue?.first
            let code = err?["extensions"]?["code"]?.stringValue.map(printable) ?? "UNKNOWN"
            let message =
                err?["message"]?.stringValue.map { printable(String($0.prefix(200))) }
                ?? (parsed == nil ? "the body is not JSON (\(describe(contentType, body.count)))" : "no error message")
            throw DirectusError(status: status, code: code, message: message)
        }
        guard let json = parsed else {
            throw RosterAnswerError(
                collection: collection, reason: "HTTP 200 but the body is not JSON (\(describe(contentType, body.count))); a proxy or login page?")
        }
        guard let top = json.objectValue else {
            throw RosterAnswerError(collection: collection, reason: "the answer is \(typeName(json)), not an object with \"data\"")
        }
        if let errors = top["errors"], !errors.isNull {
            let code = errors.arrayValue?.first?["extensions"]?["code"]?.stringValue.map(printable) ?? "UNKNOWN"
            throw RosterAnswerError(collection: collection, reason: "HTTP 200 carrying errors (\(code))")
        }
        guard let dataValue = top["data"] else {
            throw RosterAnswerError(collection: collection, reason: "the answer has no \"data\"")
        }
        guard let data = dataValue.arrayValue else {
            throw RosterAnswerError(collection: collection, reason: "\"data\" is \(typeName(dataValue)), not an array")
        }
        guard data.count <= limit else {
            throw RosterAnswerError(collection: collection, reason: "\(data.count) rows in a page asked for at most \(limit)")
        }
        var out: [[String: JSON]] = []
        out.reserveCapacity(data.count)
        for (i, v) in data.enumerated() { out.append(try row(collection: collection, v, index: i)) }
        return out
    }

    /// One row checked against its collection's shape.
    static func row(collection: String, _ v: JSON, index: Int) throws(RosterAnswerError) -> [String: JSON] {
        guard let o = v.objectValue else {
            throw RosterAnswerError(collection: collection, reason: "row \(index) is \(typeName(v)), not an object")
        }
        let shape = shapes[collection] ?? [("id", .string, true)]
        // The id first, so the other messages can name the row (ids are not personal data).
        var name = "row \(index)"
        if let id = o["id"]?.stringValue, !id.isEmpty, id.utf8.count <= maxIdBytes,
            id.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value < 0x7f })
        {
            name += " (id \(id))"
        }
        for (field, kind, required) in shape {
            let value = o[field]
            guard let value, !value.isNull else {
                if required { throw RosterAnswerError(collection: collection, reason: "\(name): \"\(field)\" is missing or null") }
                continue
            }
            switch kind {
            case .string, .nullableString:
                guard let s = value.stringValue else {
                    throw RosterAnswerError(collection: collection, reason: "\(name): \"\(field)\" is \(typeName(value)), not a string")
                }
                if field.hasSuffix("id") {
                    guard !s.isEmpty, s.utf8.count <= maxIdBytes, s.unicodeScalars.allSatisfy({ $0.value > 0x20 && $0.value < 0x7f }) else {
                        throw RosterAnswerError(
                            collection: collection, reason: "\(name): \"\(field)\" is not an id (empty, too long or not printable ASCII)")
                    }
                }
            case .time:
                guard let s = value.stringValue else {
                    throw RosterAnswerError(collection: collection, reason: "\(name): \"\(field)\" is \(typeName(value)), not a string")
                }
                guard Time.parseMs(s) != nil else {
                    throw RosterAnswerError(collection: collection, reason: "\(name): \"\(field)\" is not an RFC 3339 time with an offset")
                }
            case .objectOrString:
                guard value.objectValue != nil || value.stringValue != nil else {
                    throw RosterAnswerError(collection: collection, reason: "\(name): \"\(field)\" is \(typeName(value)), not an object")
                }
            }
        }
        return o
    }

    /// "text/html, 1234 bytes": what came, without the body itself.
    static func describe(_ contentType: String?, _ bytes: Int) -> String {
        "\(contentType.map { printable(String($0.prefix(80))) } ?? "no content type"), \(bytes) bytes"
    }

    /// Text from the network made safe for one log line.
    static func printable(_ s: String) -> String {
        String(String.UnicodeScalarView(s.unicodeScalars.map { $0.value < 0x20 || $0.value == 0x7f ? " " : $0 }))
    }
}

/// A roster id as a pull keeps it for the reconciliation: a canonical lower-case UUID as its
/// 128 bits, inline (a 36-character `String` is a heap allocation of ≈ 80 bytes; a full pull
/// keeps every id of its answer until its write transaction), anything else as text. Two ids
/// are equal exactly when their lower-cased strings are.
enum RosterId: Hashable, Sendable {
    case uuid(UInt64, UInt64)
    case text(String)

    /// `id` already lower-cased.
    init(_ id: String) {
        guard id.utf8.count == 36 else { self = .text(id); return }
        var hi: UInt64 = 0, lo: UInt64 = 0, i = 0, digits = 0
        for b in id.utf8 {
            if i == 8 || i == 13 || i == 18 || i == 23 {
                guard b == UInt8(ascii: "-") else { self = .text(id); return }
            } else {
                let v: UInt8
                switch b {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): v = b - UInt8(ascii: "0")
                case UInt8(ascii: "a")...UInt8(ascii: "f"): v = b - UInt8(ascii: "a") + 10
                default: self = .text(id); return
                }
                if digits < 16 { hi = hi << 4 | UInt64(v) } else { lo = lo << 4 | UInt64(v) }
                digits += 1
            }
            i += 1
        }
        self = .uuid(hi, lo)
    }
}

/// Pulls the roster from Directus (CONTRACT §3): full at start-up, on a new local day and
/// daily (reconciling by ids), incremental on created_at/updated_at in between; every pull
/// pages by id (`sort=id`, `id _gt last`), never by offset. A bad answer never empties the day:
/// an answer that is not a roster page fails the pull and keeps the last good roster, and a
/// full pull that would remove most of a collection is held back until another full pull at
/// least `suspectConfirmNs` later (monotonic) returns the same. Logs carry the Directus error
/// code, never the token.
final class RosterSync: Sendable {
    let config: EdgeConfig
    let db: AppDatabase
    let http: any HTTPTransport
    let state: EdgeState
    let metrics: EdgeMetrics
    let logger: Logger
    /// How long a held-back removal waits for a second full pull returning the same.
    let suspectConfirmNs: UInt64
    /// The injected clock (the state's unless given): pull times, held-back removals, waits.
    let clock: any EdgeClock
    /// Held-back removals by collection: the answer's ids and when it was first seen.
    let pending = Mutex<[String: PendingRemoval]>([:])

    struct PendingRemoval: Sendable {
        let answerIds: Set<RosterId>
        let firstSeenNs: UInt64
        let removing: Int
    }

    static let pageSize = 500
    /// A bound on pages per pull (5 million rows), so a server that keeps answering cannot
    /// keep a pull going for ever.
    static let maxPages = 10_000
    static let maxBodyBytes = 16 << 20
    static let defaultSuspectConfirmNs: UInt64 = 600_000_000_000
    /// A full pull is suspect when it would remove more than half of a collection's local rows
    /// and at least this many.
    static let suspectMinRows = 10
    static let overlapMs: Int64 = 120_000
    static let collections: [(String, String)] = [
        ("patients", "id,name,phone,qr_code_hash,created_at,updated_at"),
        ("professionals", "id,name,created_at,updated_at"),
        ("services", "id,name,created_at,updated_at"),
        ("rooms", "id,name,iot_config,created_at,updated_at"),
        ("appointments", "id,patient_id,professional_id,service_id,room_id,scheduled_start,scheduled_end,status,created_at,updated_at"),
    ]

    init(
        config: EdgeConfig, db: AppDatabase, http: any HTTPTransport, state: EdgeState, metrics: EdgeMetrics, logger: Logger,
        suspectConfirmNs: UInt64 = RosterSync.defaultSuspectConfirmNs, clock: (any EdgeClock)? = nil
    ) {
        self.config = config; self.db = db; self.http = http; self.state = state; self.metrics = metrics; self.logger = logger
        self.suspectConfirmNs = suspectConfirmNs; self.clock = clock ?? state.clock
    }

    /// The appointment window: whole local days [today − 1, today + days_ahead].
    func window(nowMs: Int64) -> (from: String, to: String, fromMs: Int64, toMs: Int64) {
        RosterSync.window(nowMs: nowMs, config: config)
    }
    /// The appointment window of `config` at `nowMs` (also the patients' retention, CONTRACT §7).
    static func window(nowMs: Int64, config: EdgeConfig) -> (from: String, to: String, fromMs: Int64, toMs: Int64) {
        let zone = config.timeZone
        let today = LocalDay.dayString(nowMs, zone: zone)
        let first = LocalDay.addDays(today, -1, zone: zone)
        let last = LocalDay.addDays(today, config.syncDaysAhead, zone: zone)
        let (f, _) = LocalDay.bounds(first, zone: zone)!
        let (_, t) = LocalDay.bounds(last, zone: zone)!
        return (first, last, f, t)
    }

    /// The query of one page: `sort=id`, and after the first page `id _gt last`, ANDed with the
    /// pull's own filter.
    static func pageQuery(fields: String, filter: String?, after last: String?) -> String {
        var f = filter
        if let last {
            let byId = "{\"id\":{\"_gt\":\(JSONText.quote(last))}}"
            f = filter.map { "{\"_and\":[\(byId),\($0)]}" } ?? byId
        }
        var q = "fields=\(enc(fields))&sort=id&limit=\(RosterSync.pageSize)"
        if let f { q += "&filter=\(enc(f))" }
        return q
    }

    /// One collection's answer, checked page by page as it came: its ids (for the
    /// reconciliation), its cursor, and where its pages' raw bodies are in the pull's spool.
    /// The rows themselves are decoded again, one page at a time, by `forEachPage` inside the
    /// write transaction.
    struct Pulled: Sendable {
        let collection: String
        let ids: Set<RosterId>
        let cursor: String?
        let pages: [RosterSpool.Page]
    }

    /// A new spool for one pull, in the database's directory (a temporary one for a database in
    /// memory).
    func makeSpool() throws -> RosterSpool {
        try RosterSpool(directory: db.path.map { ($0 as NSString).deletingLastPathComponent } ?? NSTemporaryDirectory())
    }

    /// Every row of a collection matching `filter`, page by page by id, each page checked and
    /// its body kept in `spool`. Throws on any answer that is not a roster page, on an id seen
    /// twice (a server ignoring the paging filter) and after `maxPages` pages.
    func fetch(_ collection: String, fields: String, filter: String?, into spool: RosterSpool) async throws -> Pulled {
        guard let base = config.cloud?.directusURL, let token = config.cloud?.directusToken else {
            // Never an empty answer: a full pull must not read "no rows" from a missing setting.
            throw RosterAnswerError(collection: collection, reason: "no Directus URL or token configured")
        }
        var pages: [RosterSpool.Page] = []
        var seen = Set<RosterId>()
        var cursor: String? = nil
        var last: String? = nil
        for _ in 0..<RosterSync.maxPages {
            state.busy("roster")  // progress: each page
            let url =
                base.trimmingCharacters(in: CharacterSet(charactersIn: "/")) + "/items/\(collection)?"
                + RosterSync.pageQuery(fields: fields, filter: filter, after: last)
            let resp = try await http.send(
                HTTPRequest(
                    url: url, headers: [("Authorization", "Bearer \(token)"), ("Accept", "application/json")],
                    connectTimeout: config.cloud?.connectTimeoutSeconds ?? 5,
                    timeout: config.cloud?.requestTimeoutSeconds ?? 15,
                    maxBodyBytes: RosterSync.maxBodyBytes))
            let page = try RosterAnswer.rows(
                collection: collection, status: resp.status, contentType: resp.headers["content-type"],
                body: resp.body, limit: RosterSync.pageSize)
            for r in page {
                let id = r["id"]!.stringValue!.lowercased()
                guard seen.insert(RosterId(id)).inserted else {
                    throw RosterAnswerError(collection: collection, reason: "id \(id) came twice; the server does not page by id")
                }
                // The newest stamp, as `max(by:)` over every row would pick it (the first of equals).
                if let s = RosterSync.stamp(r), cursor.map({ (Time.parseMs($0) ?? 0) < (Time.parseMs(s) ?? 0) }) ?? true { cursor = s }
            }
            pages.append(try spool.append(resp.body))
            if page.count < RosterSync.pageSize { return Pulled(collection: collection, ids: seen, cursor: cursor, pages: pages) }
            last = page.last!["id"]!.stringValue!
        }
        throw RosterAnswerError(collection: collection, reason: "more than \(RosterSync.maxPages) pages")
    }

    /// The rows of a pulled collection, one page at a time, read back from the spool and decoded
    /// again (the same bytes, checked again: a page that no longer reads throws, and the write
    /// transaction it runs in is rolled back).
    func forEachPage(_ pulled: Pulled, in spool: RosterSpool, _ body: ([[String: JSON]]) throws -> Void) throws {
        for page in pulled.pages {
            try body(
                RosterAnswer.rows(
                    collection: pulled.collection, status: 200, contentType: nil, body: try spool.read(page), limit: RosterSync.pageSize))
        }
    }

    private static func enc(_ s: String) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~,")
        return s.addingPercentEncoding(withAllowedCharacters: allowed) ?? s
    }

    static func stamp(_ r: [String: JSON]) -> String? {
        [r["updated_at"]?.stringValue, r["created_at"]?.stringValue].compactMap { $0 }.max { (Time.parseMs($0) ?? 0) < (Time.parseMs($1) ?? 0) }
    }

    /// Writes rows of one collection. Only what check-in and reception need is kept.
    func upsert(_ db: StoreTransaction, _ collection: String, _ rows: [[String: JSON]]) throws {
        for r in rows {
            guard let id = r["id"]?.stringValue?.lowercased() else { continue }
            let ca = r["created_at"]?.stringValue, ua = r["updated_at"]?.stringValue
            switch collection {
            case "patients":
                try db.upsertPatient(
                    id: id, name: r["name"]?.stringValue ?? "", phone: r["phone"]?.stringValue,
                    qrCodeHash: r["qr_code_hash"]?.stringValue?.lowercased(), createdAt: ca, updatedAt: ua)
            case "professionals", "services":
                try db.upsertNamed(
                    collection == "services" ? .services : .professionals, id: id, name: r["name"]?.stringValue,
                    createdAt: ca, updatedAt: ua)
            case "rooms":
                var key = r["iot_config"]?["mqtt_room_id"]?.stringValue
                if key == nil, let s = r["iot_config"]?.stringValue, let j = try? JSON.parse(s) { key = j["mqtt_room_id"]?.stringValue }
                try db.upsertRoom(id: id, name: r["name"]?.stringValue, mqttRoomId: key, createdAt: ca, updatedAt: ua)
            case "appointments":
                guard let ss = r["scheduled_start"]?.stringValue, let se = r["scheduled_end"]?.stringValue,
                    let sm = Time.parseMs(ss), let em = Time.parseMs(se)
                else {
                    logger.warning("roster: appointment \(id) skipped: scheduled_start/scheduled_end are not RFC 3339 times")
                    continue
                }
                try db.upsertAppointment(
                    AppointmentRow(
                        id: id, patientId: r["patient_id"]?.stringValue?.lowercased(),
                        professionalId: r["professional_id"]?.stringValue?.lowercased(),
                        serviceId: r["service_id"]?.stringValue?.lowercased(), roomId: r["room_id"]?.stringValue?.lowercased(), startMs: sm,
                        endMs: em,
                        scheduledStart: ss, scheduledEnd: se, status: r["status"]?.stringValue ?? "scheduled", createdAt: ca, updatedAt: ua))
            default: break
            }
        }
    }

    func windowFilter(nowMs: Int64) -> String {
        let w = window(nowMs: nowMs)
        return "{\"scheduled_start\":{\"_gte\":\"\(Time.rfc3339(ms: w.fromMs))\",\"_lt\":\"\(Time.rfc3339(ms: w.toMs))\"}}"
    }

    /// Would removing `removing` of `local` rows empty the day (CONTRACT §3: more than half,
    /// and at least 10 rows)?
    static func isSuspect(removing: Int, of local: Int) -> Bool {
        removing >= suspectMinRows && removing * 2 > local
    }

    /// What a full pull did to one collection.
    enum FullPullDecision: Sendable {
        /// Reconciled: `removed` rows deleted upstream went.
        case applied(removed: Int)
        /// Suspect: nothing removed (rows in the answer were still written).
        case held(removing: Int, local: Int, answerIds: Set<RosterId>, firstSeenNs: UInt64)
        /// Suspect, but the same answer came at least `suspectConfirmNs` after the first: applied.
        case confirmed(removed: Int, waitedNs: UInt64)
    }

    /// Everything, reconciled by ids: rows deleted upstream go, missing rows come, except that
    /// a suspect removal is held back. Nothing is written unless every page of every
    /// collection's answer is a good roster page: the pages are checked as they come and kept
    /// on disk (`RosterSpool`), then decoded again one at a time inside the one write
    /// transaction, so the pull holds a page in memory, not the roster. Returns the collections
    /// held back.
    @discardableResult
    func fullSync(nowMs: Int64) async throws -> [String] {
        // Every page is checked as it comes and kept on disk, not in memory; nothing is written
        // unless every page of every collection was good.
        let spool = try makeSpool()
        var all: [Pulled] = []
        for (c, fields) in RosterSync.collections {
            let filter = c == "appointments" ? windowFilter(nowMs: nowMs) : nil
            all.append(try await fetch(c, fields: fields, filter: filter, into: spool))
        }
        let w = window(nowMs: nowMs)
        let fetched = all
        let mono = clock.monoNs()
        let confirmNs = suspectConfirmNs
        let pendingNow = pending.withLock { $0 }
        let decisions: [(String, FullPullDecision)] = try await db.write { db in
            var out: [(String, FullPullDecision)] = []
            for pulled in fetched {
                let c = pulled.collection, ids = pulled.ids
                guard let table = RosterCollection(rawValue: c) else { continue }
                var localCount = 0
                var gone: [String] = []
                try db.forEachRosterId(table, startingFrom: w.fromMs, to: w.toMs) { id in
                    localCount += 1
                    if !ids.contains(RosterId(id)) { gone.append(id) }
                }
                var decision = FullPullDecision.applied(removed: gone.count)
                if RosterSync.isSuspect(removing: gone.count, of: localCount) {
                    if let p = pendingNow[c], p.answerIds == ids, mono &- p.firstSeenNs >= confirmNs {
                        decision = .confirmed(removed: gone.count, waitedNs: mono &- p.firstSeenNs)
                    } else {
                        let since = pendingNow[c].flatMap { $0.answerIds == ids ? $0.firstSeenNs : nil } ?? mono
                        decision = .held(removing: gone.count, local: localCount, answerIds: ids, firstSeenNs: since)
                    }
                }
                var held = false
                if case .held = decision { held = true }
                if !held {
                    for id in gone { try db.deleteRosterRow(table, id: id) }
                }
                if c == "appointments" {
                    // Days that left the window: not a removal by the answer.
                    try db.deleteAppointments(endedBefore: w.fromMs)
                }
                try self.forEachPage(pulled, in: spool) { rows in try self.upsert(db, c, rows) }
                try db.recordFullPull(table, cursor: pulled.cursor, nowMs: nowMs, full: !held)
                out.append((c, decision))
            }
            try db.setSetting("roster.window_day", LocalDay.dayString(nowMs, zone: self.config.timeZone))
            return out
        }
        var heldBack: [String] = []
        pending.withLock { p in
            for (c, d) in decisions {
                if case .held(let removing, _, let answerIds, let since) = d {
                    p[c] = PendingRemoval(answerIds: answerIds, firstSeenNs: since, removing: removing)
                } else {
                    p[c] = nil
                }
            }
        }
        let minutes = Double(suspectConfirmNs) / 60e9
        for (c, d) in decisions {
            switch d {
            case .applied:
                break
            case .held(let removing, let local, _, let since):
                heldBack.append(c)
                metrics.rosterSuspectPull(c)
                logger.error(
                    """
                    roster: full pull of \(c) held back: it would remove \(removing) of \(local) local rows (an empty answer, \
                    a wrong permission filter, an emptied database?); nothing removed. Check the Directus token's permissions \
                    and data; the removal is applied only if a full pull at least \(JSONText.number(minutes)) min after the \
                    first returns the same (same answer for \((mono &- since) / 1_000_000_000) s so far)
                    """)
            case .confirmed(let removed, let waited):
                logger.warning("roster: full pull of \(c): \(removed) rows removed; the same answer came again after \(waited / 1_000_000_000) s")
            }
        }
        if heldBack.isEmpty { synced(nowMs: nowMs) }
        return heldBack
    }

    /// Rows created or updated after the cursor (minus an overlap).
    func incrementalSync(nowMs: Int64) async throws {
        let spool = try makeSpool()
        for (c, fields) in RosterSync.collections {
            guard let table = RosterCollection(rawValue: c) else { continue }
            let cursor = try await db.syncCursor(table)
            var filter: String? = nil
            if let cursor, let ms = Time.parseMs(cursor) {
                let since = Time.rfc3339(ms: ms - RosterSync.overlapMs)
                let changed = "{\"_or\":[{\"created_at\":{\"_gt\":\"\(since)\"}},{\"updated_at\":{\"_gt\":\"\(since)\"}}]}"
                filter = c == "appointments" ? "{\"_and\":[\(changed),\(windowFilter(nowMs: nowMs))]}" : changed
            } else if c == "appointments" {
                filter = windowFilter(nowMs: nowMs)
            }
            let pulled = try await fetch(c, fields: fields, filter: filter, into: spool)
            try await db.write { db in
                try self.forEachPage(pulled, in: spool) { rows in try self.upsert(db, c, rows) }
                try db.recordIncrementalPull(table, cursor: pulled.cursor, nowMs: nowMs)
            }
        }
        try await fetchMissingPatients(nowMs: nowMs, spool: spool)
        synced(nowMs: nowMs)
    }

    /// The patients of appointments in the window that are not kept here, fetched by id: the
    /// retention removes a patient without an appointment (CONTRACT §7), and an appointment
    /// booked for them later comes in an incremental pull without them (their own row did not
    /// change). At most 100 a pull.
    func fetchMissingPatients(nowMs: Int64, spool: RosterSpool) async throws {
        let w = window(nowMs: nowMs)
        let missing = try await db.read { try $0.patientsMissing(forAppointmentsFrom: w.fromMs, to: w.toMs, limit: 100) }
        guard !missing.isEmpty else { return }
        let filter = "{\"id\":{\"_in\":[" + missing.map(JSONText.quote).joined(separator: ",") + "]}}"
        let pulled = try await fetch("patients", fields: RosterSync.collections[0].1, filter: filter, into: spool)
        try await db.write { db in try self.forEachPage(pulled, in: spool) { rows in try self.upsert(db, "patients", rows) } }
    }

    /// A pull went through: the status figures (roster counts) are read again before the
    /// status says when the roster was last synced.
    private func synced(nowMs: Int64) {
        if let f = try? StatusFigures.read(db) { state.setFigures(f) }
        state.rosterSynced(nowMs: nowMs)
    }

    /// After a pull: a full one decodes the whole roster, a page at a time, and writes it
    /// through the writer's page cache. Both are freed or cold afterwards, but glibc keeps freed
    /// heap pages resident and SQLite keeps its cache full: the writer's cache is emptied (it
    /// refills from the OS's page cache as ingest needs it) and the heap trimmed
    /// (`bench idle --patients 10000`: RssAnon 31.9 → 7.7 MiB, when the pull still held every
    /// decoded row).
    func releaseMemory() async {
        try? await db.releaseWriterCache()
        HeapTrim.run()
    }

    /// When the next full pull is due because of a held-back removal (nil: none held).
    func heldRetryNs() -> UInt64? {
        pending.withLock { $0.values.map(\.firstSeenNs).min() }.map { $0 &+ suspectConfirmNs }
    }

    func run() async {
        guard let cloud = config.cloud, cloud.directusURL != nil else { return }
        var lastFullMs: Int64 = 0
        var lastDay = ""
        var failures = 0
        while !Task.isCancelled {
            state.busy("roster")
            let now = clock.nowMs()
            let day = LocalDay.dayString(now, zone: config.timeZone)
            var delay = cloud.rosterSyncSeconds
            do {
                let heldDue = heldRetryNs().map { clock.monoNs() >= $0 } ?? false
                if day != lastDay || now - lastFullMs > 86_400_000 || heldDue {
                    let held = try await fullSync(nowMs: now)
                    lastFullMs = now; lastDay = day
                    if held.isEmpty {
                        logger.info("roster: full sync done (window \(window(nowMs: now).from)...\(window(nowMs: now).to))")
                    }
                } else {
                    try await incrementalSync(nowMs: now)
                }
                failures = 0
            } catch {
                failures += 1
                delay = max(0.2, min(cloud.rosterSyncSeconds, 0.5 * pow(2.0, Double(min(failures, 8)))))
                let message =
                    "roster: pull failed, keeping the last good roster; retry in \(JSONText.number((delay * 10).rounded() / 10)) s: \(error)"
                if error is RosterAnswerError { logger.error("\(message)") } else { logger.warning("\(message)") }
            }
            await releaseMemory()
            state.idle("roster")
            try? await clock.sleep(seconds: delay)
        }
    }
}
