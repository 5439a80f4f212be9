import Foundation
import Logging
import NIOHTTP1

/// One complete HTTP request, as the router sees it.
struct StubRequest {
    var method: HTTPMethod
    var path: [String]  // percent-decoded segments, empty ones dropped
    var rawPath: String
    var query: [(String, String)]
    var headers: HTTPHeaders
    var body: [UInt8]

    init(method: HTTPMethod, uri: String, headers: HTTPHeaders, body: [UInt8]) {
        self.method = method
        self.headers = headers
        self.body = body
        let (p, q) = StubRequest.split(uri: uri)
        rawPath = p
        path = p.split(separator: "/").map { StubRequest.percentDecode($0, plusIsSpace: false) }
        query = q.map(StubRequest.parseQuery) ?? []
    }

    static func split(uri: String) -> (String, String?) {
        var s = Substring(uri)
        if let hash = s.firstIndex(of: "#") { s = s[..<hash] }
        if let q = s.firstIndex(of: "?") {
            return (String(s[..<q]), String(s[s.index(after: q)...]))
        }
        return (String(s), nil)
    }

    static func parseQuery(_ q: String) -> [(String, String)] {
        q.split(separator: "&").map { item in
            if let eq = item.firstIndex(of: "=") {
                return (
                    percentDecode(item[..<eq], plusIsSpace: true),
                    percentDecode(item[item.index(after: eq)...], plusIsSpace: true)
                )
            }
            return (percentDecode(item, plusIsSpace: true), "")
        }
    }

    static func percentDecode(_ s: Substring, plusIsSpace: Bool) -> String {
        var out: [UInt8] = []
        out.reserveCapacity(s.utf8.count)
        let b = Array(s.utf8)
        var i = 0
        func hex(_ c: UInt8) -> UInt8? {
            switch c {
            case 48...57: return c - 48
            case 65...70: return c - 55
            case 97...102: return c - 87
            default: return nil
            }
        }
        while i < b.count {
            let c = b[i]
            if c == UInt8(ascii: "%"), i + 2 < b.count, let h = hex(b[i + 1]), let l = hex(b[i + 2]) {
                out.append(h << 4 | l)
                i += 3
            } else {
                out.append(plusIsSpace && c == UInt8(ascii: "+") ? UInt8(ascii: " ") : c)
                i += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// What to do with a request.
enum StubAction {
    case respond(StubResponse)
    /// Close the connection with an RST and no response.
    case reset
}

struct StubResponse {
    var status: HTTPResponseStatus
    var contentType = "application/json; charset=utf-8"
    var headers: [(String, String)] = []
    var body: [UInt8] = []
    /// Hold the answer back this long (the `slow` fault); the request is already processed.
    var delayMs = 0
    /// Write only this many bytes of `body` (Content-Length still announces all of it), then
    /// close the connection: a body cut short (the `hostile_events` fault).
    var truncateBodyAt: Int? = nil

    static func json(_ status: HTTPResponseStatus, _ value: JSONValue) -> StubResponse {
        StubResponse(status: status, body: value.serializedBytes())
    }
}

enum RouteKind {
    case events, directus, control, other

    init(path: String) {
        if path == "/e" || path.hasPrefix("/e/") {
            self = .events
        } else if path == "/items" || path.hasPrefix("/items/") || path == "/server/ping" {
            self = .directus
        } else if path == "/_stub" || path.hasPrefix("/_stub/") {
            self = .control
        } else {
            self = .other
        }
    }
}

extension StubState {
    /// The fault mode in force for a route.
    func mode(for kind: RouteKind) -> CloudStubFaults.Mode {
        switch kind {
        case .control, .other: return .none
        case .events: return faults.directusOnly == true ? .none : faults.mode
        case .directus: return faults.eventsOnly == true ? .none : faults.mode
        }
    }

    mutating func countRequest(_ kind: RouteKind) {
        switch kind {
        case .events: stats.eventRequests += 1
        case .directus: stats.directusRequests += 1
        default: break
        }
    }
}

// MARK: - Router

extension CloudStub {
    /// Called when a request head arrives: true when the `reset` fault applies to it, in which
    /// case the request is counted and the connection is to be reset without reading the body.
    func resetsAtHead(path: String) -> Bool {
        let kind = RouteKind(path: StubRequest.split(uri: path).0)
        let reset = state.withLock { s -> Bool in
            guard s.mode(for: kind) == .reset else { return false }
            s.countRequest(kind)
            s.count(status: "reset")
            if kind == .events { s.logEventRequest("reset") }
            return true
        }
        if reset { logger.debug("cloud stub: reset fault, connection reset", metadata: ["path": "\(path)"]) }
        return reset
    }

    func handle(_ req: StubRequest) -> StubAction {
        let kind = RouteKind(path: req.rawPath)
        let action: StubAction
        switch kind {
        case .control:
            action = .respond(handleControl(req))
        case .events:
            // Parse outside the lock: a batch can be megabytes.
            let parsed: Result<JSONValue, JSONParseError>? =
                req.method == .POST
                ? Result { () throws(JSONParseError) in try JSONValue.parse(req.body) }
                : nil
            action = state.withLock { s in
                s.countRequest(.events)
                let a = CloudStub.handleEvents(req, parsed: parsed, state: &s)
                s.record(a)
                return a
            }
        case .directus:
            // Take what the answer needs under the lock; run the query outside it.
            let (mode, faults, snapshot, scripted) = state.withLock { s in
                s.countRequest(.directus)
                return (
                    s.mode(for: .directus), s.faults, DirectusSnapshot(token: s.directusToken, collections: s.collections),
                    s.takeScriptedDirectusAnswer(path: req.path)
                )
            }
            action = scripted.map { .respond($0) } ?? CloudStub.handleDirectus(req, mode: mode, faults: faults, snapshot: snapshot)
            state.withLock { $0.record(action) }
        case .other:
            action = state.withLock { s in
                let a = StubAction.respond(.json(.notFound, ["error": "not found", "status": 404]))
                s.record(a)
                return a
            }
        }
        if logger.logLevel <= .debug {
            let status: String
            switch action {
            case .reset: status = "reset"
            case .respond(let r): status = "\(r.status.code)"
            }
            logger.debug(
                "cloud stub request",
                metadata: [
                    "method": "\(req.method.rawValue)", "path": "\(req.rawPath)", "status": "\(status)",
                    "bytes": "\(req.body.count)",
                ])
        }
        return action
    }

    // MARK: Faults common to cloud routes

    /// The answer forced by the fault mode, if any (nil = serve normally, maybe slowly).
    static func faultAnswer(_ mode: CloudStubFaults.Mode, kind: RouteKind, faults: CloudStubFaults) -> StubAction? {
        let events = kind == .events
        func withRetryAfter(_ r: StubResponse) -> StubResponse {
            var r = r
            if let s = faults.retryAfterSeconds { r.headers.append(("Retry-After", String(s))) }
            return r
        }
        switch mode {
        case .none, .slow, .hostileEvents:
            return nil
        case .reset:
            return .reset
        case .down:
            return .respond(
                withRetryAfter(
                    events
                        ? .json(.serviceUnavailable, ["error": "service unavailable", "status": 503])
                        : directusError(.serviceUnavailable, "Service is unavailable.", code: "SERVICE_UNAVAILABLE")))
        case .rateLimited:
            return .respond(
                withRetryAfter(
                    events
                        ? .json(.tooManyRequests, ["error": "rate limit exceeded", "status": 429])
                        : directusError(.tooManyRequests, "Too many requests, retry after a while.", code: "REQUESTS_EXCEEDED")))
        case .error500:
            return .respond(
                events
                    ? .json(.internalServerError, ["error": "internal server error", "status": 500])
                    : directusError(.internalServerError, "An unexpected error occurred.", code: "INTERNAL_SERVER_ERROR"))
        case .unauthorized:
            return .respond(events ? eventKeyNotFound : directusInvalidCredentials)
        }
    }

    static func slowDelay(_ mode: CloudStubFaults.Mode, faults: CloudStubFaults) -> Int {
        mode == .slow ? max(0, faults.slowMs) : 0
    }

    // MARK: Inngest Event API

    static let eventKeyNotFound = StubResponse.json(.unauthorized, ["error": "Event key not found", "status": 401])

    static func eventError(_ status: HTTPResponseStatus, _ message: String) -> StubResponse {
        .json(status, ["error": .string(message), "status": .number(Double(status.code))])
    }

    static func handleEvents(
        _ req: StubRequest, parsed: Result<JSONValue, JSONParseError>?,
        state s: inout StubState
    ) -> StubAction {
        let mode = s.mode(for: .events)
        if mode == .hostileEvents {
            let answer = s.nextHostileAnswer()
            s.logEventRequest(answer.rawValue)
            return answer.action
        }
        if let forced = faultAnswer(mode, kind: .events, faults: s.faults) {
            switch forced {
            case .reset: s.logEventRequest("reset")
            case .respond(let r): s.logEventRequest(String(r.status.code))
            }
            return forced
        }
        var response = eventsResponse(req, parsed: parsed, state: &s)
        response.delayMs = slowDelay(mode, faults: s.faults)
        s.logEventRequest(String(response.status.code))
        return .respond(response)
    }

    static func eventsResponse(
        _ req: StubRequest, parsed: Result<JSONValue, JSONParseError>?,
        state s: inout StubState
    ) -> StubResponse {
        // /e/{key}
        guard req.path.count == 2, req.path[0] == "e" else {
            if req.path.count == 1 { return eventKeyNotFound }
            return eventError(.notFound, "not found")
        }
        guard req.method == .POST else {
            return eventError(.methodNotAllowed, "method not allowed")
        }
        guard req.path[1] == s.eventKey else { return eventKeyNotFound }
        if let max = s.faults.maxRequestBytes, req.body.count > max {
            return eventError(.payloadTooLarge, "request too large")
        }
        let body: JSONValue
        switch parsed {
        case .success(let v): body = v
        case .failure(let error): return eventError(.badRequest, "invalid JSON: \(error)")
        case nil: return eventError(.badRequest, "invalid JSON")
        }
        let list: [JSONValue]
        switch body {
        case .array(let a): list = a
        case .object: list = [body]
        default: return eventError(.badRequest, "the body must be an event object or an array of events")
        }
        let rejectIds = Set(s.faults.rejectEventIds)
        let rejectNames = Set(s.faults.rejectEventNames)
        var ids: [JSONValue] = []
        for (i, event) in list.enumerated() {
            // Like Inngest, the events before the first refused one stay accepted.
            guard let o = event.objectValue else {
                return eventError(.badRequest, "event \(i) is not a JSON object")
            }
            guard let name = o["name"]?.stringValue, !name.isEmpty else {
                return eventError(.badRequest, "event \(i) has no name")
            }
            var id: String? = nil
            if let v = o["id"], !v.isNull {
                guard let sv = v.stringValue else { return eventError(.badRequest, "event \(i): id must be a string") }
                id = sv.isEmpty ? nil : sv
            }
            if let d = o["data"], !d.isNull, d.objectValue == nil {
                return eventError(.badRequest, "event \(i): data must be an object")
            }
            if let t = o["ts"], !t.isNull, t.numberValue == nil {
                return eventError(.badRequest, "event \(i): ts must be a number (Unix milliseconds)")
            }
            if let id, rejectIds.contains(id) {
                return eventError(.badRequest, "event \(id) rejected by stub")
            }
            if rejectNames.contains(name) {
                return eventError(.badRequest, "event \(id ?? name) rejected by stub")
            }
            let effectiveId = id ?? UUID().uuidString.lowercased()
            s.accept(event, id: effectiveId)
            ids.append(.string(effectiveId))
        }
        return .json(.ok, ["ids": .array(ids), "status": 200])
    }

    // MARK: Directus REST

    static func directusError(_ status: HTTPResponseStatus, _ message: String, code: String) -> StubResponse {
        .json(status, ["errors": [["message": .string(message), "extensions": ["code": .string(code)]]]])
    }

    static let directusInvalidCredentials = directusError(
        .unauthorized, "Invalid user credentials.",
        code: "INVALID_CREDENTIALS")
    static let directusForbidden = directusError(
        .forbidden, "You don't have permission to access this.",
        code: "FORBIDDEN")

    struct DirectusSnapshot {
        var token: String
        var collections: [String: StubCollection]
    }

    static func handleDirectus(
        _ req: StubRequest, mode: CloudStubFaults.Mode, faults: CloudStubFaults,
        snapshot: DirectusSnapshot
    ) -> StubAction {
        if let forced = faultAnswer(mode, kind: .directus, faults: faults) { return forced }
        var response = hostileDirectusAnswer(req, faults: faults, snapshot: snapshot) ?? directusResponse(req, state: snapshot)
        response.delayMs = slowDelay(mode, faults: faults)
        return .respond(response)
    }

    static func directusResponse(_ req: StubRequest, state s: DirectusSnapshot) -> StubResponse {
        if req.path == ["server", "ping"] {
            guard req.method == .GET || req.method == .HEAD else {
                return directusError(.notFound, "Route \(req.rawPath) doesn't exist.", code: "ROUTE_NOT_FOUND")
            }
            return StubResponse(status: .ok, contentType: "text/html; charset=utf-8", body: Array("pong".utf8))
        }
        guard req.method == .GET, (2...3).contains(req.path.count) else {
            return directusError(.notFound, "Route \(req.rawPath) doesn't exist.", code: "ROUTE_NOT_FOUND")
        }
        // Authentication: a static token, as a bearer header or ?access_token=.
        var token: String? = nil
        if let auth = req.headers.first(name: "authorization") {
            let parts = auth.split(separator: " ", maxSplits: 1)
            if parts.count == 2, parts[0].lowercased() == "bearer" { token = parts[1].trimmingSpaces() }
        }
        if token == nil { token = req.query.first(where: { $0.0 == "access_token" })?.1 }
        guard token == s.token else { return directusInvalidCredentials }

        let name = req.path[1]
        guard let collection = s.collections[name] else { return directusForbidden }
        let query: DirectusQuery
        do {
            query = try DirectusQuery(pairs: req.query)
        } catch {
            return directusError(.badRequest, error.message, code: "INVALID_QUERY")
        }
        if req.path.count == 3 {
            // /items/{collection}/{id}: a missing item is a 403, as in Directus.
            guard let row = collection.row(id: req.path[2]) else { return directusForbidden }
            let projected: JSONValue
            if let f = query.fields, !f.contains("*") {
                projected = FieldTree(paths: f).project(row)
            } else {
                projected = row
            }
            return .json(.ok, ["data": projected])
        }
        let result = query.run(on: collection.rows)
        var out: [String: JSONValue] = ["data": .array(result.data)]
        if !query.meta.isEmpty {
            var meta: [String: JSONValue] = [:]
            if query.meta.contains("*") || query.meta.contains("total_count") {
                meta["total_count"] = .number(Double(collection.rows.count))
            }
            if query.meta.contains("*") || query.meta.contains("filter_count") {
                meta["filter_count"] = .number(Double(result.filterCount))
            }
            out["meta"] = .object(meta)
        }
        return .json(.ok, .object(out))
    }

    // MARK: Control API

    func handleControl(_ req: StubRequest) -> StubResponse {
        let p = req.path
        func bad(_ message: String) -> StubResponse {
            .json(.badRequest, ["error": .string(message), "status": 400])
        }
        func parseBody() -> Result<JSONValue, JSONParseError> {
            Result { () throws(JSONParseError) in try JSONValue.parse(req.body) }
        }
        switch (req.method, p.dropFirst().map { $0 }) {
        case (.GET, ["events"]):
            return .json(.ok, ["events": .array(receivedEvents())])
        case (.POST, ["events", "clear"]):
            clearEvents()
            return .json(.ok, ["status": "ok"])
        case (.GET, ["event_requests"]):
            let log = eventRequests().map { r -> JSONValue in
                ["at_ns": .number(Double(r.atNs)), "answer": .string(r.answer)]
            }
            return .json(.ok, ["requests": .array(log)])
        case (.GET, ["stats"]):
            return .json(.ok, stats().json)
        case (_, ["directus", "answers"]):
            return handleDirectusScriptControl(req)
        case (.GET, ["faults"]):
            return .json(.ok, faults().json)
        case (.POST, ["faults"]), (.PUT, ["faults"]):
            let json: JSONValue
            switch parseBody() {
            case .success(let v): json = req.body.isEmpty ? .object([:]) : v
            case .failure(let e):
                if req.body.isEmpty { json = .object([:]) } else { return bad("invalid JSON: \(e)") }
            }
            do {
                let f = try CloudStubFaults.from(json: json)
                setFaults(f)
                return .json(.ok, f.json)
            } catch {
                return bad(error.description)
            }
        case (.GET, let rest) where rest.count == 2 && rest[0] == "collections":
            guard let rows = rows(collection: rest[1]) else {
                return .json(.notFound, ["error": "unknown collection", "status": 404])
            }
            return .json(.ok, ["data": .array(rows)])
        case (.POST, let rest) where rest.count == 2 && rest[0] == "collections":
            let json: JSONValue
            switch parseBody() {
            case .success(let v): json = v
            case .failure(let e): return bad("invalid JSON: \(e)")
            }
            let rows: [JSONValue]
            switch json {
            case .array(let a): rows = a
            case .object: rows = [json]
            default: return bad("the body must be an array of rows (or one row)")
            }
            for (i, r) in rows.enumerated() {
                guard r.objectValue != nil, r["id"]?.idString != nil else {
                    return bad("row \(i) must be an object with an \"id\"")
                }
            }
            upsert(collection: rest[1], rows: rows)
            return .json(.ok, ["upserted": .number(Double(rows.count))])
        case (.DELETE, let rest) where rest.count == 3 && rest[0] == "collections":
            let deleted = state.withLock { $0.collections[rest[1]]?.delete(id: rest[2]) ?? false }
            return .json(.ok, ["deleted": .bool(deleted)])
        default:
            return .json(.notFound, ["error": "unknown control route", "status": 404])
        }
    }
}

extension StubState {
    mutating func record(_ action: StubAction) {
        switch action {
        case .reset: count(status: "reset")
        case .respond(let r): count(status: String(r.status.code))
        }
    }
}
