import Foundation

/// The stub's initial state, usually loaded from a JSON seed file:
///
/// ```json
/// {"event_key": "test-key", "directus_token": "test-token",
///  "collections": {"patients": [{"id": "…", "name": "…"}], "appointments": []}}
/// ```
/// Every key is optional. A collection listed here exists (an empty one answers `{"data": []}`);
/// any other collection answers 403, as Directus does for a collection the token cannot read.
public struct CloudStubSeed: Codable, Sendable {
    public var eventKey: String
    public var directusToken: String
    public var collections: [String: [JSONValue]]

    public init(
        eventKey: String = "test-key", directusToken: String = "test-token",
        collections: [String: [JSONValue]] = [:]
    ) {
        self.eventKey = eventKey
        self.directusToken = directusToken
        self.collections = collections
    }

    enum CodingKeys: String, CodingKey {
        case eventKey = "event_key"
        case directusToken = "directus_token"
        case collections
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        eventKey = try c.decodeIfPresent(String.self, forKey: .eventKey) ?? "test-key"
        directusToken = try c.decodeIfPresent(String.self, forKey: .directusToken) ?? "test-token"
        collections = try c.decodeIfPresent([String: [JSONValue]].self, forKey: .collections) ?? [:]
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(eventKey, forKey: .eventKey)
        try c.encode(directusToken, forKey: .directusToken)
        try c.encode(collections, forKey: .collections)
    }

    /// Reads a seed file. Throws `CloudStubError.badSeed` naming the file and the problem.
    public static func load(path: String) throws -> CloudStubSeed {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw CloudStubError.badSeed("\(path): cannot read file: \(error.localizedDescription)")
        }
        do {
            let value = try JSONValue.parse(Array(data))
            return try CloudStubSeed(json: value)
        } catch let e as JSONParseError {
            throw CloudStubError.badSeed("\(path): not valid JSON: \(e)")
        } catch let e as CloudStubError {
            if case .badSeed(let m) = e { throw CloudStubError.badSeed("\(path): \(m)") }
            throw e
        }
    }

    /// Builds a seed from an already parsed JSON document.
    init(json: JSONValue) throws {
        guard let o = json.objectValue else { throw CloudStubError.badSeed("the seed must be a JSON object") }
        self.init()
        if let v = o["event_key"], !v.isNull {
            guard let s = v.stringValue else { throw CloudStubError.badSeed("\"event_key\" must be a string") }
            eventKey = s
        }
        if let v = o["directus_token"], !v.isNull {
            guard let s = v.stringValue else { throw CloudStubError.badSeed("\"directus_token\" must be a string") }
            directusToken = s
        }
        if let v = o["collections"], !v.isNull {
            guard let cols = v.objectValue else {
                throw CloudStubError.badSeed("\"collections\" must be an object of arrays")
            }
            for (name, rows) in cols {
                guard let a = rows.arrayValue else {
                    throw CloudStubError.badSeed("\"collections.\(name)\" must be an array of rows")
                }
                collections[name] = a
            }
        }
    }
}

/// Faults injected into the stub's cloud routes (never into `/_stub/...`).
public struct CloudStubFaults: Codable, Sendable, Equatable {
    /// - `none`: normal service.
    /// - `down`: 503 to every cloud route (events and Directus).
    /// - `error500`: 500 to every cloud route.
    /// - `slow`: requests are processed at once but answered after `slowMs`.
    /// - `unauthorized`: events 401 (`Event key not found`), Directus 401 (`INVALID_CREDENTIALS`).
    /// - `reset`: the TCP connection is closed with SO_LINGER 0 (an RST) and no response.
    /// - `rateLimited` (`"rate_limited"`): 429 to every cloud route.
    /// - `hostileEvents` (`"hostile_events"`): the Event API answers in turn, one per request,
    ///   cycling, with `HostileEventAnswer`'s list (bad `Retry-After`s, 200s that are not
    ///   Inngest's answer, a body cut short, a redirect, 502, a reset); nothing is recorded.
    ///   Directus routes are served normally.
    public enum Mode: String, Codable, Sendable, CaseIterable {
        case none, down, error500, slow, unauthorized, reset
        case rateLimited = "rate_limited"
        case hostileEvents = "hostile_events"
    }

    public var mode: Mode
    public var slowMs: Int
    public var rejectEventIds: [String]
    public var rejectEventNames: [String]
    public var maxRequestBytes: Int?
    public var retryAfterSeconds: Int?
    /// When true, `mode` applies only to Directus routes (`/items/...`, `/server/ping`).
    public var directusOnly: Bool?
    /// When true, `mode` applies only to the Event API (`/e/...`).
    public var eventsOnly: Bool?
    /// A hostile Directus answer (`directus_answer`), for `directusCollections` or all.
    public var directusAnswer: DirectusHostileAnswer?
    /// The collections `directusAnswer` applies to (`directus_collections`; nil = all).
    public var directusCollections: [String]?

    public init(
        mode: Mode = .none, slowMs: Int = 5000, rejectEventIds: [String] = [],
        rejectEventNames: [String] = [], maxRequestBytes: Int? = nil, retryAfterSeconds: Int? = nil,
        directusOnly: Bool? = nil, eventsOnly: Bool? = nil,
        directusAnswer: DirectusHostileAnswer? = nil, directusCollections: [String]? = nil
    ) {
        self.mode = mode
        self.slowMs = slowMs
        self.rejectEventIds = rejectEventIds
        self.rejectEventNames = rejectEventNames
        self.maxRequestBytes = maxRequestBytes
        self.retryAfterSeconds = retryAfterSeconds
        self.directusOnly = directusOnly
        self.eventsOnly = eventsOnly
        self.directusAnswer = directusAnswer
        self.directusCollections = directusCollections
    }

    enum CodingKeys: String, CodingKey {
        case mode
        case slowMs = "slow_ms"
        case rejectEventIds = "reject_event_ids"
        case rejectEventNames = "reject_event_names"
        case maxRequestBytes = "max_request_bytes"
        case retryAfterSeconds = "retry_after_seconds"
        case directusOnly = "directus_only"
        case eventsOnly = "events_only"
        case directusAnswer = "directus_answer"
        case directusCollections = "directus_collections"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        mode = try c.decodeIfPresent(Mode.self, forKey: .mode) ?? .none
        slowMs = try c.decodeIfPresent(Int.self, forKey: .slowMs) ?? 5000
        rejectEventIds = try c.decodeIfPresent([String].self, forKey: .rejectEventIds) ?? []
        rejectEventNames = try c.decodeIfPresent([String].self, forKey: .rejectEventNames) ?? []
        maxRequestBytes = try c.decodeIfPresent(Int.self, forKey: .maxRequestBytes)
        retryAfterSeconds = try c.decodeIfPresent(Int.self, forKey: .retryAfterSeconds)
        directusOnly = try c.decodeIfPresent(Bool.self, forKey: .directusOnly)
        eventsOnly = try c.decodeIfPresent(Bool.self, forKey: .eventsOnly)
        directusAnswer = try c.decodeIfPresent(DirectusHostileAnswer.self, forKey: .directusAnswer)
        directusCollections = try c.decodeIfPresent([String].self, forKey: .directusCollections)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(mode, forKey: .mode)
        try c.encode(slowMs, forKey: .slowMs)
        try c.encode(rejectEventIds, forKey: .rejectEventIds)
        try c.encode(rejectEventNames, forKey: .rejectEventNames)
        try c.encodeIfPresent(maxRequestBytes, forKey: .maxRequestBytes)
        try c.encodeIfPresent(retryAfterSeconds, forKey: .retryAfterSeconds)
        try c.encodeIfPresent(directusOnly, forKey: .directusOnly)
        try c.encodeIfPresent(eventsOnly, forKey: .eventsOnly)
        try c.encodeIfPresent(directusAnswer, forKey: .directusAnswer)
        try c.encodeIfPresent(directusCollections, forKey: .directusCollections)
    }

    var json: JSONValue {
        var o: [String: JSONValue] = [
            "mode": .string(mode.rawValue),
            "slow_ms": .number(Double(slowMs)),
            "reject_event_ids": .array(rejectEventIds.map { .string($0) }),
            "reject_event_names": .array(rejectEventNames.map { .string($0) }),
        ]
        if let v = maxRequestBytes { o["max_request_bytes"] = .number(Double(v)) }
        if let v = retryAfterSeconds { o["retry_after_seconds"] = .number(Double(v)) }
        if let v = directusOnly { o["directus_only"] = .bool(v) }
        if let v = eventsOnly { o["events_only"] = .bool(v) }
        if let v = directusAnswer { o["directus_answer"] = .string(v.rawValue) }
        if let v = directusCollections { o["directus_collections"] = .array(v.map { .string($0) }) }
        return .object(o)
    }

    /// Parses the control API's JSON body; missing keys take their defaults.
    static func from(json: JSONValue) throws(CloudStubError) -> CloudStubFaults {
        guard let o = json.objectValue else { throw .badRequest("faults must be a JSON object") }
        var f = CloudStubFaults()
        func int(_ key: String) throws(CloudStubError) -> Int? {
            guard let v = o[key], !v.isNull else { return nil }
            guard let d = v.numberValue, let i = JSONValue.exactInteger(d) else {
                throw .badRequest("\"\(key)\" must be an integer")
            }
            return Int(i)
        }
        func bool(_ key: String) throws(CloudStubError) -> Bool? {
            guard let v = o[key], !v.isNull else { return nil }
            guard let b = v.boolValue else { throw .badRequest("\"\(key)\" must be true or false") }
            return b
        }
        func strings(_ key: String) throws(CloudStubError) -> [String] {
            guard let v = o[key], !v.isNull else { return [] }
            guard let a = v.arrayValue else { throw .badRequest("\"\(key)\" must be an array of strings") }
            var out: [String] = []
            for e in a {
                guard let s = e.idString else { throw .badRequest("\"\(key)\" must be an array of strings") }
                out.append(s)
            }
            return out
        }
        let known: Set<String> = [
            "mode", "slow_ms", "reject_event_ids", "reject_event_names", "max_request_bytes",
            "retry_after_seconds", "directus_only", "events_only",
            "directus_answer", "directus_collections",
        ]
        if let unknown = o.keys.sorted().first(where: { !known.contains($0) }) {
            throw .badRequest("unknown fault key \"\(unknown)\"")
        }
        if let v = o["mode"], !v.isNull {
            guard let s = v.stringValue, let m = Mode(rawValue: s) else {
                let modes = Mode.allCases.map(\.rawValue).joined(separator: ", ")
                throw .badRequest("\"mode\" must be one of: \(modes)")
            }
            f.mode = m
        }
        if let v = try int("slow_ms") { f.slowMs = max(0, v) }
        f.rejectEventIds = try strings("reject_event_ids")
        f.rejectEventNames = try strings("reject_event_names")
        f.maxRequestBytes = try int("max_request_bytes")
        f.retryAfterSeconds = try int("retry_after_seconds")
        f.directusOnly = try bool("directus_only")
        f.eventsOnly = try bool("events_only")
        if let v = o["directus_answer"], !v.isNull {
            guard let s = v.stringValue, let a = DirectusHostileAnswer(rawValue: s) else {
                let answers = DirectusHostileAnswer.allCases.map(\.rawValue).joined(separator: ", ")
                throw .badRequest("\"directus_answer\" must be one of: \(answers)")
            }
            f.directusAnswer = a
        }
        if let v = o["directus_collections"], !v.isNull {
            f.directusCollections = try strings("directus_collections")
        }
        return f
    }
}

/// Counters since start (or since the last `clearEvents()`).
public struct CloudStubStats: Codable, Sendable, Equatable {
    /// Answers to cloud routes (events and Directus; not `/_stub/...`), by HTTP status code
    /// (`"200"`, `"503"`, …); connections reset by the `reset` fault count as `"reset"`.
    public var requestsByStatus: [String: Int]
    /// Accepted events, duplicates included.
    public var eventsReceived: Int
    /// Distinct event ids among accepted events.
    public var uniqueIds: Int
    /// Accepted events whose id had already been accepted.
    public var duplicateIds: Int
    /// Requests to Directus routes (any outcome).
    public var directusRequests: Int
    /// Requests to the Event API (any outcome).
    public var eventRequests: Int

    public init(
        requestsByStatus: [String: Int] = [:], eventsReceived: Int = 0, uniqueIds: Int = 0,
        duplicateIds: Int = 0, directusRequests: Int = 0, eventRequests: Int = 0
    ) {
        self.requestsByStatus = requestsByStatus
        self.eventsReceived = eventsReceived
        self.uniqueIds = uniqueIds
        self.duplicateIds = duplicateIds
        self.directusRequests = directusRequests
        self.eventRequests = eventRequests
    }

    enum CodingKeys: String, CodingKey {
        case requestsByStatus = "requests_by_status"
        case eventsReceived = "events_received"
        case uniqueIds = "unique_ids"
        case duplicateIds = "duplicate_ids"
        case directusRequests = "directus_requests"
        case eventRequests = "event_requests"
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        requestsByStatus = try c.decodeIfPresent([String: Int].self, forKey: .requestsByStatus) ?? [:]
        eventsReceived = try c.decodeIfPresent(Int.self, forKey: .eventsReceived) ?? 0
        uniqueIds = try c.decodeIfPresent(Int.self, forKey: .uniqueIds) ?? 0
        duplicateIds = try c.decodeIfPresent(Int.self, forKey: .duplicateIds) ?? 0
        directusRequests = try c.decodeIfPresent(Int.self, forKey: .directusRequests) ?? 0
        eventRequests = try c.decodeIfPresent(Int.self, forKey: .eventRequests) ?? 0
    }

    var json: JSONValue {
        var byStatus: [String: JSONValue] = [:]
        for (k, v) in requestsByStatus { byStatus[k] = .number(Double(v)) }
        return .object([
            "requests_by_status": .object(byStatus),
            "events_received": .number(Double(eventsReceived)),
            "unique_ids": .number(Double(uniqueIds)),
            "duplicate_ids": .number(Double(duplicateIds)),
            "directus_requests": .number(Double(directusRequests)),
            "event_requests": .number(Double(eventRequests)),
        ])
    }
}

public enum CloudStubError: Error, CustomStringConvertible, Sendable {
    case badSeed(String)
    case alreadyStarted
    case badRequest(String)

    public var description: String {
        switch self {
        case .badSeed(let m): return "bad cloud-stub seed: \(m)"
        case .alreadyStarted: return "the cloud stub is already running"
        case .badRequest(let m): return m
        }
    }
}
