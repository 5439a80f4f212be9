import Foundation
import Yams

/// A configuration error: always names the key and the problem, in one line.
public struct ConfigError: Error, CustomStringConvertible, Equatable {
    public let key: String
    public let problem: String
    public init(key: String, problem: String) { self.key = key; self.problem = problem }
    public var description: String { "config error: \(key): \(problem)" }
}

public struct MetricLimits: Sendable, Equatable {
    public var min: Double
    public var max: Double
    public var hysteresis: Double
    public init(min: Double, max: Double, hysteresis: Double) { self.min = min; self.max = max; self.hysteresis = hysteresis }
}

public struct RoomConfig: Sendable, Equatable {
    public var name: String?
    public var limits: [String: MetricLimits]
    public init(name: String? = nil, limits: [String: MetricLimits] = [:]) { self.name = name; self.limits = limits }
}

public struct HostPort: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: Int
    public init(host: String, port: Int) { self.host = host; self.port = port }
    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

/// The appliance's configuration (CONTRACT §5). Every key is parsed and validated here.
public struct EdgeConfig: Sendable, Equatable {
    public struct MQTT: Sendable, Equatable {
        public var host = "127.0.0.1"
        public var port = 1883
        public var clientId = "medic-edge"
        public var username: String?
        public var password: String?
        public var keepaliveSeconds = 30
        /// Intake bound (CONTRACT §5): received but uncommitted messages hold at most this.
        public var maxPendingBytes = 8 << 20
    }
    public struct Cloud: Sendable, Equatable {
        public var eventsURL: String?
        public var directusURL: String?
        public var directusToken: String?
        public var rosterSyncSeconds: Double = 60
        public var maxBatch = 500
        public var maxRequestBytes = 1_048_576
        public var connectTimeoutSeconds: Double = 5
        public var requestTimeoutSeconds: Double = 15
    }
    public struct HTTP: Sendable, Equatable {
        public var listen = HostPort(host: "127.0.0.1", port: 8080)
        public var tlsListen: HostPort?
        public var certFile: String?
        public var keyFile: String?
    }
    public var siteId = "demo"
    public var tenantId = "00000000-0000-4000-8000-000000000000"
    public var timezone = "America/Sao_Paulo"
    public var dataDir = "./.medic-edge"
    public var mqtt = MQTT()
    /// nil: no cloud configured (cloud state `disabled`).
    public var cloud: Cloud?
    public var http = HTTP()
    public var checkinOpenBeforeMinutes: Double = 120
    public var noshowGraceMinutes: Double = 15
    public var noshowCheckIntervalSeconds: Double = 60
    public var syncDaysAhead = 7
    public var storageMaxBytes: Int64 = 2_147_483_648
    /// Below this many bytes free on the data directory's file system, telemetry is dropped
    /// oldest-first and then refused (CONTRACT §5).
    public var storageMinFreeBytes: Int64 = 256 << 20
    /// Rejected-message rows and dead letters are kept at most this many each (and 30 days).
    public var storageMaxRejectRows = 100_000
    public var rooms: [String: RoomConfig] = [:]
    public var logLevel = "info"

    public init() {}

    public var timeZone: TimeZone { TimeZone(identifier: timezone) ?? TimeZone(identifier: "America/Sao_Paulo")! }
}

extension EdgeConfig {
    /// Where the configuration comes from when `--config` is not given (CONTRACT §5).
    public static func defaultPath(environment: [String: String] = ProcessInfo.processInfo.environment) -> String? {
        if let p = environment["MEDIC_EDGE_CONFIG"], !p.isEmpty { return p }
        if FileManager.default.fileExists(atPath: "/etc/medic-edge/config.yaml") { return "/etc/medic-edge/config.yaml" }
        return nil
    }

    /// `readSecrets: false` is for the operator commands (status, outbox, staff…): they need
    /// no secret, and the secrets may be systemd credentials only the service can read.
    public static func load(path: String?, readSecrets: Bool = true) throws -> EdgeConfig {
        guard let path else { return EdgeConfig() }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ConfigError(key: "--config", problem: "cannot read file \(path) (missing or not readable)")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw ConfigError(key: "--config", problem: "\(path) is not UTF-8 text")
        }
        return try parse(yaml: text, baseDirectory: (path as NSString).deletingLastPathComponent, readSecrets: readSecrets)
    }

    public static func parse(yaml: String, baseDirectory: String = ".", readSecrets: Bool = true) throws -> EdgeConfig {
        let root: Any?
        do { root = try Yams.load(yaml: yaml) } catch {
            let msg = "\(error)".split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }.joined(separator: " ")
            throw ConfigError(key: "(file)", problem: "malformed YAML: \(msg)")
        }
        var c = EdgeConfig()
        if root == nil || root is NSNull { return c }
        guard let top = root as? [String: Any] else {
            throw ConfigError(key: "(file)", problem: "the top level must be a mapping of keys")
        }
        var r = Reader(dict: top, prefix: "", readSecrets: readSecrets)
        try r.allowOnly(["site_id", "tenant_id", "timezone", "data_dir", "mqtt", "cloud", "http", "checkin",
                         "noshow", "sync", "storage", "rooms", "log_level"])
        if let v = try r.string("site_id") {
            guard v.range(of: #"^[a-z0-9-]{1,48}$"#, options: .regularExpression) != nil else {
                throw ConfigError(key: "site_id", problem: "must match [a-z0-9-]{1,48}, got \"\(v)\"")
            }
            c.siteId = v
        }
        if let v = try r.string("tenant_id") {
            guard UUID(uuidString: v) != nil else { throw ConfigError(key: "tenant_id", problem: "must be a UUID, got \"\(v)\"") }
            c.tenantId = v.lowercased()
        }
        if let v = try r.string("timezone") {
            guard TimeZone(identifier: v) != nil else { throw ConfigError(key: "timezone", problem: "unknown IANA time zone \"\(v)\"") }
            c.timezone = v
        }
        if let v = try r.string("data_dir") { c.dataDir = v }
        if let v = try r.string("log_level") {
            guard ["trace", "debug", "info", "notice", "warning", "error", "critical"].contains(v) else {
                throw ConfigError(key: "log_level", problem: "must be one of trace, debug, info, notice, warning, error, critical")
            }
            c.logLevel = v
        }
        if var m = try r.section("mqtt") {
            try m.allowOnly(["host", "port", "client_id", "username", "password", "password_file", "keepalive_seconds",
                             "max_pending_bytes"])
            if let v = try m.string("host") { c.mqtt.host = v }
            if let v = try m.int("port", range: 1...65535) { c.mqtt.port = v }
            if let v = try m.string("client_id") {
                guard !v.isEmpty, v.utf8.count <= 64 else { throw ConfigError(key: "mqtt.client_id", problem: "must be 1-64 characters") }
                c.mqtt.clientId = v
            }
            c.mqtt.username = try m.string("username")
            c.mqtt.password = try m.secret("password", base: baseDirectory)
            if let v = try m.int("keepalive_seconds", range: 5...3600) { c.mqtt.keepaliveSeconds = v }
            if let v = try m.int("max_pending_bytes", range: (256 << 10)...(1 << 30)) { c.mqtt.maxPendingBytes = v }
        }
        if r.dict["cloud"] != nil && !(r.dict["cloud"] is NSNull) {
            var cl = try r.section("cloud")!
            try cl.allowOnly(["events_url", "events_url_file", "directus_url", "directus_token", "directus_token_file",
                              "roster_sync_seconds", "max_batch", "max_request_bytes", "connect_timeout_seconds",
                              "request_timeout_seconds"])
            var cloud = Cloud()
            cloud.eventsURL = try cl.secret("events_url", base: baseDirectory)
            if let u = cloud.eventsURL { try checkURL(u, key: "cloud.events_url") }
            cloud.directusURL = try cl.string("directus_url")
            if let u = cloud.directusURL { try checkURL(u, key: "cloud.directus_url") }
            cloud.directusToken = try cl.secret("directus_token", base: baseDirectory)
            if let v = try cl.double("roster_sync_seconds", min: 0.05) { cloud.rosterSyncSeconds = v }
            if let v = try cl.int("max_batch", range: 1...5000) { cloud.maxBatch = v }
            if let v = try cl.int("max_request_bytes", range: 1024...(64 << 20)) { cloud.maxRequestBytes = v }
            if let v = try cl.double("connect_timeout_seconds", min: 0.05) { cloud.connectTimeoutSeconds = v }
            if let v = try cl.double("request_timeout_seconds", min: 0.05) { cloud.requestTimeoutSeconds = v }
            if cloud.eventsURL == nil && cloud.directusURL == nil {
                throw ConfigError(key: "cloud", problem: "needs events_url (or events_url_file) and/or directus_url; omit the whole section to run offline-only")
            }
            if cloud.directusURL != nil && cloud.directusToken == nil {
                throw ConfigError(key: "cloud.directus_token", problem: "required with directus_url (inline or directus_token_file)")
            }
            c.cloud = cloud
        }
        if var h = try r.section("http") {
            try h.allowOnly(["listen", "tls_listen", "cert_file", "key_file"])
            if let v = try h.string("listen") { c.http.listen = try hostPort(v, key: "http.listen") }
            if let v = try h.string("tls_listen") { c.http.tlsListen = try hostPort(v, key: "http.tls_listen") }
            c.http.certFile = try h.string("cert_file")
            c.http.keyFile = try h.string("key_file")
            if c.http.tlsListen != nil {
                for (k, v) in [("cert_file", c.http.certFile), ("key_file", c.http.keyFile)] {
                    guard let v else { throw ConfigError(key: "http.\(k)", problem: "required with http.tls_listen") }
                    guard FileManager.default.isReadableFile(atPath: v) else {
                        throw ConfigError(key: "http.\(k)", problem: "cannot read \(v)")
                    }
                }
            }
        }
        if var s = try r.section("checkin") {
            try s.allowOnly(["open_before_minutes"])
            if let v = try s.double("open_before_minutes", min: 0) { c.checkinOpenBeforeMinutes = v }
        }
        if var s = try r.section("noshow") {
            try s.allowOnly(["grace_minutes", "check_interval_seconds"])
            if let v = try s.double("grace_minutes", min: 0) { c.noshowGraceMinutes = v }
            if let v = try s.double("check_interval_seconds", min: 0.05) { c.noshowCheckIntervalSeconds = v }
        }
        if var s = try r.section("sync") {
            try s.allowOnly(["days_ahead"])
            if let v = try s.int("days_ahead", range: 0...365) { c.syncDaysAhead = v }
        }
        if var s = try r.section("storage") {
            try s.allowOnly(["max_bytes", "min_free_bytes", "max_reject_rows"])
            if let v = try s.int("max_bytes", range: (1 << 20)...(1 << 40)) { c.storageMaxBytes = Int64(v) }
            if let v = try s.int("min_free_bytes", range: 0...(1 << 40)) { c.storageMinFreeBytes = Int64(v) }
            if let v = try s.int("max_reject_rows", range: 100...10_000_000) { c.storageMaxRejectRows = v }
        }
        if let rooms = r.dict["rooms"], !(rooms is NSNull) {
            guard let rd = rooms as? [String: Any] else { throw ConfigError(key: "rooms", problem: "must be a mapping of room keys") }
            for (key, value) in rd {
                guard DeviceTopic.isValidId(key) else {
                    throw ConfigError(key: "rooms.\(key)", problem: "room key must match [A-Za-z0-9_-]{1,64}")
                }
                guard let vd = value as? [String: Any] else {
                    throw ConfigError(key: "rooms.\(key)", problem: "must be a mapping with name and/or limits")
                }
                var rr = Reader(dict: vd, prefix: "rooms.\(key).", readSecrets: readSecrets)
                try rr.allowOnly(["name", "limits"])
                var room = RoomConfig()
                room.name = try rr.string("name")
                if var lim = try rr.section("limits") {
                    try lim.allowOnly(Array(EnvironmentMetric.allNames))
                    for metric in EnvironmentMetric.allCases {
                        guard var m = try lim.section(metric.rawValue) else { continue }
                        try m.allowOnly(["min", "max", "hysteresis"])
                        guard let mn = try m.double("min", min: -.infinity) else { throw ConfigError(key: m.prefix + "min", problem: "required") }
                        guard let mx = try m.double("max", min: -.infinity) else { throw ConfigError(key: m.prefix + "max", problem: "required") }
                        let h = try m.double("hysteresis", min: 0) ?? 0
                        guard mn < mx else { throw ConfigError(key: m.prefix + "min", problem: "must be below max (\(mx))") }
                        guard mn + h <= mx - h else { throw ConfigError(key: m.prefix + "hysteresis", problem: "too large for the range \(mn)...\(mx)") }
                        room.limits[metric.rawValue] = MetricLimits(min: mn, max: mx, hysteresis: h)
                    }
                }
                c.rooms[key] = room
            }
        }
        return c
    }

    static func checkURL(_ s: String, key: String) throws {
        guard let u = URL(string: s), let scheme = u.scheme?.lowercased(), scheme == "http" || scheme == "https", u.host != nil else {
            throw ConfigError(key: key, problem: "must be an http(s) URL")
        }
    }

    static func hostPort(_ s: String, key: String) throws -> HostPort {
        var host = s, portText = ""
        if s.hasPrefix("[") , let close = s.firstIndex(of: "]") {
            host = String(s[s.index(after: s.startIndex)..<close])
            portText = String(s[s.index(after: close)...]).trimmingCharacters(in: CharacterSet(charactersIn: ":"))
        } else if let colon = s.lastIndex(of: ":") {
            host = String(s[..<colon]); portText = String(s[s.index(after: colon)...])
        }
        guard !host.isEmpty, let port = Int(portText), (0...65535).contains(port) else {
            throw ConfigError(key: key, problem: "must be HOST:PORT, got \"\(s)\"")
        }
        return HostPort(host: host, port: port)
    }
}

/// Reads one mapping of the YAML document, naming every key it complains about.
struct Reader {
    var dict: [String: Any]
    var prefix: String
    var readSecrets = true

    func allowOnly(_ keys: [String]) throws {
        for k in dict.keys.sorted() where !keys.contains(k) {
            throw ConfigError(key: prefix + k, problem: "unknown key (expected one of: \(keys.joined(separator: ", ")))")
        }
    }
    func present(_ k: String) -> Any? {
        guard let v = dict[k], !(v is NSNull) else { return nil }
        return v
    }
    func string(_ k: String) throws -> String? {
        guard let v = present(k) else { return nil }
        if let s = v as? String { return s }
        if v is [Any] || v is [String: Any] { throw ConfigError(key: prefix + k, problem: "must be a string") }
        return "\(v)"
    }
    func int(_ k: String, range: ClosedRange<Int>) throws -> Int? {
        guard let v = present(k) else { return nil }
        let i: Int
        if let n = v as? Int { i = n } else if let s = v as? String, let n = Int(s) { i = n } else {
            throw ConfigError(key: prefix + k, problem: "must be a whole number, got \"\(v)\"")
        }
        guard range.contains(i) else {
            throw ConfigError(key: prefix + k, problem: "must be in \(range.lowerBound)...\(range.upperBound == Int.max ? "" : String(range.upperBound)), got \(i)")
        }
        return i
    }
    func double(_ k: String, min: Double) throws -> Double? {
        guard let v = present(k) else { return nil }
        let d: Double
        if let n = v as? Double { d = n } else if let n = v as? Int { d = Double(n) } else if let s = v as? String, let n = Double(s) { d = n } else {
            throw ConfigError(key: prefix + k, problem: "must be a number, got \"\(v)\"")
        }
        guard d.isFinite, d >= min else { throw ConfigError(key: prefix + k, problem: "must be a number >= \(min), got \(d)") }
        return d
    }
    func section(_ k: String) throws -> Reader? {
        guard let v = present(k) else { return nil }
        guard let d = v as? [String: Any] else { throw ConfigError(key: prefix + k, problem: "must be a mapping") }
        return Reader(dict: d, prefix: prefix + k + ".", readSecrets: readSecrets)
    }
    /// A secret given inline (`k`) or as a file (`k_file`); the file's content, trimmed.
    func secret(_ k: String, base: String) throws -> String? {
        let inline = try string(k)
        guard let file = try string(k + "_file") else { return inline }
        if inline != nil { throw ConfigError(key: prefix + k, problem: "give either \(k) or \(k)_file, not both") }
        if !readSecrets { return "(not read)" }
        let path = file.hasPrefix("/") ? file : (base as NSString).appendingPathComponent(file)
        guard let data = FileManager.default.contents(atPath: path), let s = String(data: data, encoding: .utf8) else {
            throw ConfigError(key: prefix + k + "_file", problem: "cannot read secret file \(path) (missing or not readable)")
        }
        let t = s.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !t.isEmpty else { throw ConfigError(key: prefix + k + "_file", problem: "secret file \(path) is empty") }
        return t
    }
}
