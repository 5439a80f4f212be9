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
    /// A vaccine refrigerator monitored as a data logger (CONTRACT §6); needs `limits.temperature_c`.
    public var coldChain: ColdChainConfig?
    public init(name: String? = nil, limits: [String: MetricLimits] = [:], coldChain: ColdChainConfig? = nil) {
        self.name = name; self.limits = limits; self.coldChain = coldChain
    }
}

public struct HostPort: Sendable, Equatable, CustomStringConvertible {
    public var host: String
    public var port: Int
    public init(host: String, port: Int) { self.host = host; self.port = port }
    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

/// A secret of the config (CONTRACT §5: `password`, `events_url`, `directus_token`, inline or
/// as a `*_file`). `run` reads it: `.value`. The operator commands read no secret: they get
/// `.notRead`, which says where the secret is configured and holds no value, so nothing can
/// use it as one. Printing a secret never shows its value.
public enum Secret: Sendable, Equatable, CustomStringConvertible, CustomDebugStringConvertible {
    case value(String)
    /// Configured under `key` (e.g. `cloud.events_url_file`) but not read by this command.
    case notRead(key: String)

    /// The value, when it was read.
    public var value: String? { if case .value(let v) = self { return v } else { return nil } }
    public var description: String {
        switch self {
        case .value: "(secret)"
        case .notRead(let key): "(\(key): not read)"
        }
    }
    public var debugDescription: String { description }
}

/// The appliance's configuration (CONTRACT §5). Every key is parsed and validated here.
public struct EdgeConfig: Sendable, Equatable {
    public struct MQTT: Sendable, Equatable {
        public var host = "127.0.0.1"
        public var port = 1883
        public var clientId = "medic-edge"
        public var username: String?
        public var passwordSecret: Secret?
        /// The broker password, when it was read (`run`); nil when none is configured or not read.
        public var password: String? {
            get { passwordSecret?.value }
            set { passwordSecret = newValue.map(Secret.value) }
        }
        public var keepaliveSeconds = 30
        /// Intake bound (CONTRACT §5): received but uncommitted messages hold at most this.
        public var maxPendingBytes = 8 << 20
    }
    public struct Cloud: Sendable, Equatable {
        public var eventsURLSecret: Secret?
        public var directusURL: String?
        public var directusTokenSecret: Secret?
        /// The Event API URL (it holds the event key), when it was read (`run`).
        public var eventsURL: String? {
            get { eventsURLSecret?.value }
            set { eventsURLSecret = newValue.map(Secret.value) }
        }
        /// The Directus token, when it was read (`run`).
        public var directusToken: String? {
            get { directusTokenSecret?.value }
            set { directusTokenSecret = newValue.map(Secret.value) }
        }
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
    /// How long local records are kept (CONTRACT §7, LGPD), in days: `retention:`.
    public struct Retention: Sendable, Equatable {
        public var checkinsDays = 90
        public var noshowsDays = 90
        /// Kiosk results are also kept no longer than the dedupe window (8 days).
        public var kioskResultsDays = 90
        public var staffAuditDays = 365
        public var coldchainDays = 1095
    }
    public var retention = Retention()

    public init() {}

    public var timeZone: TimeZone { TimeZone(identifier: timezone) ?? TimeZone(identifier: "America/Sao_Paulo")! }

    /// The keys of secrets that are configured but were not read (`readSecrets: false`).
    public var secretsNotRead: [String] {
        [mqtt.passwordSecret, cloud?.eventsURLSecret, cloud?.directusTokenSecret].compactMap {
            if case .notRead(let key)? = $0 { return key } else { return nil }
        }
    }
}

/// The lower and upper bound of one number of the config (CONTRACT §5, "Bounds").
public struct ConfigBound: Sendable, Equatable {
    public var range: ClosedRange<Double>
    /// A whole number (a count, bytes, a port) rather than any number (seconds, minutes).
    public var whole: Bool
    public var unit: String
    public init(_ range: ClosedRange<Double>, whole: Bool, unit: String) { self.range = range; self.whole = whole; self.unit = unit }
}

extension EdgeConfig {
    /// Every number of the config with its bounds, by key. The parser reads each number
    /// through this table, so a number cannot be added without bounds. The upper bounds also
    /// keep every later conversion safe: the largest, 1 TiB in bytes or 86,400 s in
    /// milliseconds, is far inside Int64 (`Int(seconds * 1000)` and the like cannot trap).
    /// Room limits (`rooms.*.limits.METRIC.{min,max,hysteresis}`) are bounded by the metric's
    /// own range (CONTRACT §1.4), and hysteresis by half the band.
    public static let bounds: [String: ConfigBound] = [
        "mqtt.port": ConfigBound(1...65535, whole: true, unit: "TCP port"),
        "mqtt.keepalive_seconds": ConfigBound(5...3600, whole: true, unit: "seconds"),
        "mqtt.max_pending_bytes": ConfigBound(Double(256 << 10)...Double(32 << 20), whole: true, unit: "bytes"),
        "cloud.roster_sync_seconds": ConfigBound(0.05...86_400, whole: false, unit: "seconds"),
        "cloud.max_batch": ConfigBound(1...5000, whole: true, unit: "events"),
        "cloud.max_request_bytes": ConfigBound(1024...Double(64 << 20), whole: true, unit: "bytes"),
        "cloud.connect_timeout_seconds": ConfigBound(0.05...300, whole: false, unit: "seconds"),
        "cloud.request_timeout_seconds": ConfigBound(0.05...600, whole: false, unit: "seconds"),
        "checkin.open_before_minutes": ConfigBound(0...1440, whole: false, unit: "minutes"),
        "noshow.grace_minutes": ConfigBound(0...1440, whole: false, unit: "minutes"),
        "noshow.check_interval_seconds": ConfigBound(0.05...3600, whole: false, unit: "seconds"),
        "sync.days_ahead": ConfigBound(0...365, whole: true, unit: "days"),
        "storage.max_bytes": ConfigBound(Double(1 << 20)...Double(1 << 40), whole: true, unit: "bytes"),
        "storage.min_free_bytes": ConfigBound(0...Double(1 << 40), whole: true, unit: "bytes"),
        "storage.max_reject_rows": ConfigBound(100...10_000_000, whole: true, unit: "rows"),
        // At least a week: a check-in or no-show outlives its appointment's days in the
        // window, and a kiosk result the dedupe window (CONTRACT §1).
        "retention.checkins_days": ConfigBound(7...3650, whole: true, unit: "days"),
        "retention.noshows_days": ConfigBound(7...3650, whole: true, unit: "days"),
        "retention.kiosk_results_days": ConfigBound(7...3650, whole: true, unit: "days"),
        "retention.staff_audit_days": ConfigBound(30...3650, whole: true, unit: "days"),
        "retention.coldchain_days": ConfigBound(365...3650, whole: true, unit: "days"),
        "rooms.*.cold_chain.alarm_delay_minutes": ConfigBound(0...1440, whole: false, unit: "minutes"),
        "rooms.*.cold_chain.silence_minutes": ConfigBound(0.01...1440, whole: false, unit: "minutes"),
    ]
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
        let r = Reader(dict: top, prefix: "", readSecrets: readSecrets)
        try r.allowOnly([
            "site_id", "tenant_id", "timezone", "data_dir", "mqtt", "cloud", "http", "checkin",
            "noshow", "sync", "storage", "rooms", "log_level",
            "retention",
        ])
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
        if let m = try r.section("mqtt") {
            try m.allowOnly([
                "host", "port", "client_id", "username", "password", "password_file", "keepalive_seconds",
                "max_pending_bytes",
            ])
            if let v = try m.string("host") { c.mqtt.host = v }
            if let v = try m.int("port") { c.mqtt.port = v }
            if let v = try m.string("client_id") {
                guard !v.isEmpty, v.utf8.count <= 64 else { throw ConfigError(key: "mqtt.client_id", problem: "must be 1-64 characters") }
                c.mqtt.clientId = v
            }
            c.mqtt.username = try m.string("username")
            c.mqtt.passwordSecret = try m.secret("password", base: baseDirectory)
            if let v = try m.int("keepalive_seconds") { c.mqtt.keepaliveSeconds = v }
            if let v = try m.int("max_pending_bytes") { c.mqtt.maxPendingBytes = v }
        }
        if r.dict["cloud"] != nil && !(r.dict["cloud"] is NSNull) {
            let cl = try r.section("cloud")!
            try cl.allowOnly([
                "events_url", "events_url_file", "directus_url", "directus_token", "directus_token_file",
                "roster_sync_seconds", "max_batch", "max_request_bytes", "connect_timeout_seconds",
                "request_timeout_seconds",
            ])
            var cloud = Cloud()
            cloud.eventsURLSecret = try cl.secret("events_url", base: baseDirectory, validate: urlProblem)
            cloud.directusURL = try cl.string("directus_url")
            if let u = cloud.directusURL, let problem = urlProblem(u) { throw ConfigError(key: "cloud.directus_url", problem: problem) }
            cloud.directusTokenSecret = try cl.secret("directus_token", base: baseDirectory)
            if let v = try cl.double("roster_sync_seconds") { cloud.rosterSyncSeconds = v }
            if let v = try cl.int("max_batch") { cloud.maxBatch = v }
            if let v = try cl.int("max_request_bytes") { cloud.maxRequestBytes = v }
            if let v = try cl.double("connect_timeout_seconds") { cloud.connectTimeoutSeconds = v }
            if let v = try cl.double("request_timeout_seconds") { cloud.requestTimeoutSeconds = v }
            if cloud.eventsURLSecret == nil && cloud.directusURL == nil {
                throw ConfigError(
                    key: "cloud", problem: "needs events_url (or events_url_file) and/or directus_url; omit the whole section to run offline-only")
            }
            if cloud.directusURL != nil && cloud.directusTokenSecret == nil {
                throw ConfigError(key: "cloud.directus_token", problem: "required with directus_url (inline or directus_token_file)")
            }
            c.cloud = cloud
        }
        if let h = try r.section("http") {
            try h.allowOnly(["listen", "tls_listen", "cert_file", "key_file"])
            if let v = try h.string("listen") { c.http.listen = try hostPort(v, key: "http.listen") }
            if let v = try h.string("tls_listen") { c.http.tlsListen = try hostPort(v, key: "http.tls_listen") }
            c.http.certFile = try h.string("cert_file")
            c.http.keyFile = try h.string("key_file")
            if c.http.tlsListen != nil {
                for (k, v) in [("cert_file", c.http.certFile), ("key_file", c.http.keyFile)] {
                    guard let v else { throw ConfigError(key: "http.\(k)", problem: "required with http.tls_listen") }
                    // The console's private key is a secret (a systemd credential on the
                    // appliance): only `run` needs to read it.
                    if k == "key_file" && !readSecrets { continue }
                    guard FileManager.default.isReadableFile(atPath: v) else {
                        throw ConfigError(key: "http.\(k)", problem: "cannot read \(v)")
                    }
                }
            }
        }
        if let s = try r.section("checkin") {
            try s.allowOnly(["open_before_minutes"])
            if let v = try s.double("open_before_minutes") { c.checkinOpenBeforeMinutes = v }
        }
        if let s = try r.section("noshow") {
            try s.allowOnly(["grace_minutes", "check_interval_seconds"])
            if let v = try s.double("grace_minutes") { c.noshowGraceMinutes = v }
            if let v = try s.double("check_interval_seconds") { c.noshowCheckIntervalSeconds = v }
        }
        if let s = try r.section("sync") {
            try s.allowOnly(["days_ahead"])
            if let v = try s.int("days_ahead") { c.syncDaysAhead = v }
        }
        if let s = try r.section("storage") {
            try s.allowOnly(["max_bytes", "min_free_bytes", "max_reject_rows"])
            if let v = try s.int("max_bytes") { c.storageMaxBytes = Int64(v) }
            if let v = try s.int("min_free_bytes") { c.storageMinFreeBytes = Int64(v) }
            if let v = try s.int("max_reject_rows") { c.storageMaxRejectRows = v }
        }
        if let s = try r.section("retention") {
            try s.allowOnly(["checkins_days", "noshows_days", "kiosk_results_days", "staff_audit_days", "coldchain_days"])
            if let v = try s.int("checkins_days") { c.retention.checkinsDays = v }
            if let v = try s.int("noshows_days") { c.retention.noshowsDays = v }
            if let v = try s.int("kiosk_results_days") { c.retention.kioskResultsDays = v }
            if let v = try s.int("staff_audit_days") { c.retention.staffAuditDays = v }
            if let v = try s.int("coldchain_days") { c.retention.coldchainDays = v }
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
                let rr = Reader(dict: vd, prefix: "rooms.\(key).", readSecrets: readSecrets)
                try rr.allowOnly(["name", "limits", "cold_chain"])
                var room = RoomConfig()
                room.name = try rr.string("name")
                if let lim = try rr.section("limits") {
                    try lim.allowOnly(Array(EnvironmentMetric.allNames))
                    for metric in EnvironmentMetric.allCases {
                        guard let m = try lim.section(metric.rawValue) else { continue }
                        try m.allowOnly(["min", "max", "hysteresis"])
                        // A limit outside what the device may send (§1.4) could never be crossed.
                        let unit = metric.unit
                        guard let mn = try m.double("min", bound: ConfigBound(metric.range, whole: false, unit: unit)) else {
                            throw ConfigError(key: m.prefix + "min", problem: "required")
                        }
                        guard let mx = try m.double("max", bound: ConfigBound(metric.range, whole: false, unit: unit)) else {
                            throw ConfigError(key: m.prefix + "max", problem: "required")
                        }
                        let h =
                            try m.double(
                                "hysteresis",
                                bound: ConfigBound(
                                    0...(metric.range.upperBound - metric.range.lowerBound) / 2,
                                    whole: false, unit: unit)) ?? 0
                        guard mn < mx else { throw ConfigError(key: m.prefix + "min", problem: "must be below max (\(mx))") }
                        guard mn + h <= mx - h else {
                            throw ConfigError(key: m.prefix + "hysteresis", problem: "too large for the range \(mn)...\(mx)")
                        }
                        room.limits[metric.rawValue] = MetricLimits(min: mn, max: mx, hysteresis: h)
                    }
                }
                if let cc = try rr.section("cold_chain") {
                    room.coldChain = try parseColdChain(cc, room: room)
                }
                c.rooms[key] = room
            }
        }
        return c
    }

    /// `rooms.KEY.cold_chain`: `{alarm_delay_minutes, silence_minutes, workday: {opens, closes}}`.
    static func parseColdChain(_ cc: Reader, room: RoomConfig) throws -> ColdChainConfig {
        try cc.allowOnly(["alarm_delay_minutes", "silence_minutes", "workday"])
        guard room.limits[EnvironmentMetric.temperatureC.rawValue] != nil else {
            throw ConfigError(key: String(cc.prefix.dropLast()), problem: "a cold-chain room needs limits.temperature_c ({min, max, hysteresis})")
        }
        var out = ColdChainConfig()
        let bounds = EdgeConfig.bounds
        if let v = try cc.double("alarm_delay_minutes", bound: bounds["rooms.*.cold_chain.alarm_delay_minutes"]!) { out.alarmDelayMinutes = v }
        if let v = try cc.double("silence_minutes", bound: bounds["rooms.*.cold_chain.silence_minutes"]!) { out.silenceMinutes = v }
        if let w = try cc.section("workday") {
            try w.allowOnly(["opens", "closes"])
            for k in ["opens", "closes"] {
                guard let text = try w.string(k) else { continue }
                guard let minute = Workday.minute(of: text) else {
                    throw ConfigError(key: w.prefix + k, problem: "must be a time of day \"HH:MM\" (00:00–23:59), got \"\(text)\"")
                }
                if k == "opens" { out.workday.opensMinute = minute } else { out.workday.closesMinute = minute }
            }
            guard out.workday.opensMinute < out.workday.closesMinute else {
                throw ConfigError(key: w.prefix + "opens", problem: "must be before closes")
            }
        }
        return out
    }

    /// nil for an http(s) URL with a host, else the problem (which never repeats the text: it
    /// may be a secret, as the events URL holds the event key).
    static func urlProblem(_ s: String) -> String? {
        guard let u = URL(string: s), let scheme = u.scheme?.lowercased(), scheme == "http" || scheme == "https",
            let host = u.host, !host.isEmpty
        else {
            return "must be an http(s) URL"
        }
        return nil
    }

    static func hostPort(_ s: String, key: String) throws -> HostPort {
        var host = s, portText = ""
        if s.hasPrefix("["), let close = s.firstIndex(of: "]") {
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
    /// The bound of a number of this mapping, from `EdgeConfig.bounds`.
    private func bound(_ k: String) throws -> ConfigBound {
        guard let b = EdgeConfig.bounds[prefix + k] else {
            throw ConfigError(key: prefix + k, problem: "has no bounds (a bug: add it to EdgeConfig.bounds)")
        }
        return b
    }
    func int(_ k: String) throws -> Int? { try int(k, bound: bound(k)) }
    func double(_ k: String) throws -> Double? { try double(k, bound: bound(k)) }

    func int(_ k: String, bound b: ConfigBound) throws -> Int? {
        guard let v = present(k) else { return nil }
        let i: Int
        if v is Bool { throw outOfBounds(k, b, got: "\(v)") }
        if let n = v as? Int {
            i = n
        } else if let s = v as? String, let n = Int(s) {
            i = n
        } else {
            throw outOfBounds(k, b, got: "\(v)")
        }
        guard b.range.contains(Double(i)) else { throw outOfBounds(k, b, got: String(i)) }
        return i
    }
    func double(_ k: String, bound b: ConfigBound) throws -> Double? {
        guard let v = present(k) else { return nil }
        let d: Double
        if v is Bool { throw outOfBounds(k, b, got: "\(v)") }
        if let n = v as? Double {
            d = n
        } else if let n = v as? Int {
            d = Double(n)
        } else if let s = v as? String, let n = Double(s) {
            d = n
        } else {
            throw outOfBounds(k, b, got: "\(v)")
        }
        guard d.isFinite, b.range.contains(d) else { throw outOfBounds(k, b, got: Reader.format(d)) }
        return d
    }
    private func outOfBounds(_ k: String, _ b: ConfigBound, got: String) -> ConfigError {
        let what = b.whole ? "a whole number" : "a number"
        let shown = got.count > 40 ? String(got.prefix(40)) + "…" : got
        return ConfigError(
            key: prefix + k,
            problem: "must be \(what) from \(Reader.format(b.range.lowerBound)) to \(Reader.format(b.range.upperBound)) (\(b.unit)), got \(shown)")
    }
    /// 86400 rather than 86400.0; 0.05 as written; huge or tiny values in exponent form.
    static func format(_ d: Double) -> String {
        if d.isFinite, d == d.rounded(), abs(d) < 1e15 { return String(Int64(d)) }
        return "\(d)"
    }
    func section(_ k: String) throws -> Reader? {
        guard let v = present(k) else { return nil }
        guard let d = v as? [String: Any] else { throw ConfigError(key: prefix + k, problem: "must be a mapping") }
        return Reader(dict: d, prefix: prefix + k + ".", readSecrets: readSecrets)
    }
    /// A secret given inline (`k`) or as a file (`k_file`); the file's content, trimmed.
    /// Without `readSecrets` (the operator commands) neither the file nor the value is looked
    /// at: the result only says where the secret is. `validate` returns the problem of a bad
    /// value; the error names the key the value came from and never shows the value.
    func secret(_ k: String, base: String, validate: (String) -> String? = { _ in nil }) throws -> Secret? {
        let inline = try string(k)
        let file = try string(k + "_file")
        if inline != nil && file != nil { throw ConfigError(key: prefix + k, problem: "give either \(k) or \(k)_file, not both") }
        if let inline {
            guard readSecrets else { return .notRead(key: prefix + k) }
            guard !inline.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
                throw ConfigError(key: prefix + k, problem: "is empty")
            }
            if let problem = validate(inline) { throw ConfigError(key: prefix + k, problem: problem) }
            return .value(inline)
        }
        guard let file else { return nil }
        guard readSecrets else { return .notRead(key: prefix + k + "_file") }
        let path = file.hasPrefix("/") ? file : (base as NSString).appendingPathComponent(file)
        guard let data = FileManager.default.contents(atPath: path), let s = String(data: data, encoding: .utf8) else {
            throw ConfigError(key: prefix + k + "_file", problem: "cannot read secret file \(path) (missing or not readable)")
        }
        let t = s.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !t.isEmpty else { throw ConfigError(key: prefix + k + "_file", problem: "secret file \(path) is empty") }
        if let problem = validate(t) { throw ConfigError(key: prefix + k + "_file", problem: "the content of \(path) \(problem)") }
        return .value(t)
    }
}
