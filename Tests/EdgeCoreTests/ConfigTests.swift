import Foundation
import Testing
@testable import EdgeCore

/// Parses YAML that must fail, and returns the ConfigError (recording an issue otherwise).
private func configError(_ yaml: String, base: String = ".", sourceLocation: SourceLocation = #_sourceLocation) -> ConfigError? {
    do {
        _ = try EdgeConfig.parse(yaml: yaml, baseDirectory: base)
        Issue.record("expected a ConfigError for:\n\(yaml)", sourceLocation: sourceLocation)
        return nil
    } catch let e as ConfigError {
        return e
    } catch {
        Issue.record("expected a ConfigError, got \(error)", sourceLocation: sourceLocation)
        return nil
    }
}

@Suite("Config: defaults and the full example (CONTRACT §5)")
struct ConfigParsingTests {
    @Test(
        "Given an empty config file, when parsed, then the built-in defaults apply",
        arguments: ["", "\n", "# nothing configured yet\n# site_id: pleno-cuidado\n"])
    func emptyFileGivesDefaults(_ yaml: String) throws {
        do {
            let c = try EdgeConfig.parse(yaml: yaml)
            #expect(c == EdgeConfig())
            #expect(c.siteId == "demo")
            #expect(c.tenantId == "00000000-0000-4000-8000-000000000000")
            #expect(c.mqtt.host == "127.0.0.1")
            #expect(c.mqtt.port == 1883)
            #expect(c.http.listen == HostPort(host: "127.0.0.1", port: 8080))
            #expect(c.http.listen.description == "127.0.0.1:8080")
            #expect(c.http.tlsListen == nil)
            #expect(c.dataDir == "./.medic-edge")
            #expect(c.cloud == nil, "no cloud by default")
            #expect(c.timezone == "America/Sao_Paulo")
            #expect(c.timeZone.identifier == "America/Sao_Paulo")
            #expect(c.checkinOpenBeforeMinutes == 120)
            #expect(c.noshowGraceMinutes == 15)
            #expect(c.syncDaysAhead == 7)
            #expect(c.storageMaxBytes == 2_147_483_648)
            #expect(c.rooms.isEmpty)
        }
    }

    @Test(
        "Given a config that is only a document marker or a YAML null, when parsed, then the defaults apply like an empty file",
        arguments: ["---\n# site_id: pleno-cuidado (all commented out)\n", "---\n", "~\n", "null\n"])
    func nullDocumentGivesDefaults(_ yaml: String) throws {
        do {
            let c = try EdgeConfig.parse(yaml: yaml)
            #expect(c == EdgeConfig())
        }
    }

    @Test("Given no --config path, when loaded, then the defaults apply")
    func loadNilPathGivesDefaults() throws {
        #expect(try EdgeConfig.load(path: nil) == EdgeConfig())
    }

    @Test("Given MEDIC_EDGE_CONFIG, when looking for the config, then it wins")
    func defaultPathFromEnvironment() {
        #expect(EdgeConfig.defaultPath(environment: ["MEDIC_EDGE_CONFIG": "/srv/clinic.yaml"]) == "/srv/clinic.yaml")
        let fallback = EdgeConfig.defaultPath(environment: ["MEDIC_EDGE_CONFIG": ""])
        let etcExists = FileManager.default.fileExists(atPath: "/etc/medic-edge/config.yaml")
        #expect(fallback == (etcExists ? "/etc/medic-edge/config.yaml" : nil))
    }

    @Test("Given the full example config of CONTRACT §5 with secret files, when loaded, then every key is read")
    func fullExampleConfig() throws {
        let dir = try TempDir()
        defer { dir.cleanup() }
        let pw = try dir.write("mqtt-password", "s3cret-mqtt\n")
        let ev = try dir.write("events-url", "  https://inn.gs/e/EVENTKEY123\n")
        let tok = try dir.write("directus-token", "directus-token-abc\n")
        let crt = try dir.write("console.crt", "-----BEGIN CERTIFICATE-----\n")
        let key = try dir.write("console.key", "-----BEGIN PRIVATE KEY-----\n")
        let yaml = """
            site_id: pleno-cuidado
            tenant_id: 6f1c2a9e-0000-4000-8000-000000000001
            timezone: America/Sao_Paulo
            data_dir: /var/lib/medic-edge
            mqtt: {host: 127.0.0.1, port: 1883, client_id: medic-edge, username: medic-edge,
                   password_file: \(pw)}
            cloud:                                   # omit to run offline-only
              events_url_file: \(ev)
              directus_url: https://api.example.com
              directus_token_file: \(tok)
              roster_sync_seconds: 60
            http: {listen: 127.0.0.1:8080,                 # plain HTTP: loopback only
                   tls_listen: 0.0.0.0:8443, cert_file: \(crt),
                   key_file: \(key)}   # the console on the LAN
            checkin: {open_before_minutes: 120}
            noshow: {grace_minutes: 15, check_interval_seconds: 60}
            sync: {days_ahead: 7}
            storage: {max_bytes: 2147483648}         # database file + WAL on disk
            rooms:
              geladeira-vacinas: {name: Geladeira de vacinas,
                                  limits: {temperature_c: {min: 2, max: 8, hysteresis: 0.5}}}
            """
        let path = try dir.write("config.yaml", yaml)
        let c = try EdgeConfig.load(path: path)
        #expect(c.siteId == "pleno-cuidado")
        #expect(c.tenantId == "6f1c2a9e-0000-4000-8000-000000000001")
        #expect(c.timezone == "America/Sao_Paulo")
        #expect(c.dataDir == "/var/lib/medic-edge")
        #expect(c.mqtt.host == "127.0.0.1")
        #expect(c.mqtt.port == 1883)
        #expect(c.mqtt.clientId == "medic-edge")
        #expect(c.mqtt.username == "medic-edge")
        #expect(c.mqtt.password == "s3cret-mqtt", "secret files are read and trimmed")
        let cloud = try #require(c.cloud)
        #expect(cloud.eventsURL == "https://inn.gs/e/EVENTKEY123")
        #expect(cloud.directusURL == "https://api.example.com")
        #expect(cloud.directusToken == "directus-token-abc")
        #expect(cloud.rosterSyncSeconds == 60)
        #expect(cloud.maxBatch == 500)
        #expect(cloud.maxRequestBytes == 1_048_576)
        #expect(c.http.listen == HostPort(host: "127.0.0.1", port: 8080))
        #expect(c.http.tlsListen == HostPort(host: "0.0.0.0", port: 8443))
        #expect(c.http.certFile == crt)
        #expect(c.http.keyFile == key)
        #expect(c.checkinOpenBeforeMinutes == 120)
        #expect(c.noshowGraceMinutes == 15)
        #expect(c.noshowCheckIntervalSeconds == 60)
        #expect(c.syncDaysAhead == 7)
        #expect(c.storageMaxBytes == 2_147_483_648)
        #expect(
            c.rooms == [
                "geladeira-vacinas": RoomConfig(
                    name: "Geladeira de vacinas",
                    limits: ["temperature_c": MetricLimits(min: 2, max: 8, hysteresis: 0.5)])
            ])
    }

    @Test("Given inline secrets, when parsed, then they are used as given")
    func inlineSecrets() throws {
        let c = try EdgeConfig.parse(
            yaml: """
                mqtt: {password: pw-inline}
                cloud: {events_url: "http://inngest:8288/e/KEY", directus_url: "http://directus:8055", directus_token: tok}
                """)
        #expect(c.mqtt.password == "pw-inline")
        #expect(c.cloud?.eventsURL == "http://inngest:8288/e/KEY")
        #expect(c.cloud?.directusToken == "tok")
    }

    @Test("Given a relative password_file, when the config is loaded, then it is found next to the config")
    func relativeSecretFileIsBesideTheConfig() throws {
        let dir = try TempDir()
        defer { dir.cleanup() }
        try dir.write("mqtt-password", "beside\n")
        let path = try dir.write("config.yaml", "mqtt: {password_file: mqtt-password}\n")
        #expect(try EdgeConfig.load(path: path).mqtt.password == "beside")
    }

    @Test("Given a cloud: key with no value, when parsed, then the appliance runs offline-only")
    func nullCloudMeansOffline() throws {
        #expect(try EdgeConfig.parse(yaml: "cloud:\n").cloud == nil)
    }

    @Test("Given an events_url only, when parsed, then the cloud is configured without Directus")
    func eventsOnlyCloud() throws {
        let c = try EdgeConfig.parse(yaml: "cloud: {events_url: https://inn.gs/e/K}")
        #expect(c.cloud?.eventsURL == "https://inn.gs/e/K")
        #expect(c.cloud?.directusURL == nil)
    }

    @Test("Given an uppercase tenant UUID, when parsed, then it is stored lowercase")
    func tenantLowercased() throws {
        #expect(
            try EdgeConfig.parse(yaml: "tenant_id: 6F1C2A9E-0000-4000-8000-00000000000A").tenantId
                == "6f1c2a9e-0000-4000-8000-00000000000a")
    }

    @Test("Given an IPv6 listen address, when parsed, then host and port are split")
    func ipv6Listen() throws {
        let c = try EdgeConfig.parse(yaml: "http: {listen: \"[::1]:8081\"}")
        #expect(c.http.listen == HostPort(host: "::1", port: 8081))
        #expect(c.http.listen.description == "[::1]:8081")
    }

    @Test("Given hysteresis exactly half the band, when parsed, then it is accepted")
    func hysteresisAtTheEdge() throws {
        let c = try EdgeConfig.parse(yaml: "rooms: {fridge: {limits: {temperature_c: {min: 2, max: 8, hysteresis: 3}}}}")
        #expect(c.rooms["fridge"]?.limits["temperature_c"] == MetricLimits(min: 2, max: 8, hysteresis: 3))
    }

    @Test("Given limits without hysteresis, when parsed, then hysteresis is 0 and the name is optional")
    func hysteresisDefaultsToZero() throws {
        let c = try EdgeConfig.parse(yaml: "rooms: {sala-2: {limits: {co2_ppm: {min: 0, max: 1200}}}}")
        #expect(c.rooms["sala-2"] == RoomConfig(name: nil, limits: ["co2_ppm": MetricLimits(min: 0, max: 1200, hysteresis: 0)]))
    }
}

@Suite("Config: every bad config names its key (CONTRACT §5)")
struct ConfigErrorTests {
    struct Case: CustomTestStringConvertible, Sendable {
        let yaml: String
        let key: String
        let why: String
        var testDescription: String { "\(why) → \(key)" }
    }

    static let cases: [Case] = [
        Case(yaml: "mqtt: {port: \"abc\"}", key: "mqtt.port", why: "port is not a number"),
        Case(yaml: "mqtt: {port: abc}", key: "mqtt.port", why: "port is a bare word"),
        Case(yaml: "mqtt: {port: 70000}", key: "mqtt.port", why: "port out of range"),
        Case(yaml: "mqtt: {port: 0}", key: "mqtt.port", why: "port zero"),
        Case(yaml: "mqtt: {port: 1883.5}", key: "mqtt.port", why: "port is fractional"),
        Case(yaml: "mqtt: {port: true}", key: "mqtt.port", why: "port is a boolean"),
        Case(yaml: "mqtt: {host: [a, b]}", key: "mqtt.host", why: "host is a list"),
        Case(yaml: "mqtt: {client_id: \"\"}", key: "mqtt.client_id", why: "empty client id"),
        Case(yaml: "mqtt: 5", key: "mqtt", why: "section is not a mapping"),
        Case(yaml: "mqtt: {hots: 127.0.0.1}", key: "mqtt.hots", why: "unknown key in a section"),
        Case(yaml: "timezone: Mars/Olympus_Mons", key: "timezone", why: "unknown time zone"),
        Case(yaml: "site: pleno", key: "site", why: "unknown top-level key"),
        Case(yaml: "site_id: Pleno Cuidado", key: "site_id", why: "site id with capitals and space"),
        Case(yaml: "site_id: \"\"", key: "site_id", why: "empty site id"),
        Case(yaml: "site_id: \(String(repeating: "a", count: 49))", key: "site_id", why: "site id of 49 chars"),
        Case(yaml: "site_id: sala_2", key: "site_id", why: "underscore in site id"),
        Case(yaml: "tenant_id: not-a-uuid", key: "tenant_id", why: "tenant id not a UUID"),
        Case(yaml: "tenant_id: 6f1c2a9e-0000-4000-8000-00000000000", key: "tenant_id", why: "tenant id one digit short"),
        Case(yaml: "log_level: loud", key: "log_level", why: "unknown log level"),
        Case(yaml: "http: {listen: localhost}", key: "http.listen", why: "listen without port"),
        Case(yaml: "http: {listen: \"127.0.0.1:99999\"}", key: "http.listen", why: "listen port too big"),
        Case(yaml: "http: {listen: \":8080\"}", key: "http.listen", why: "listen without host"),
        Case(yaml: "http: {listen: \"127.0.0.1:http\"}", key: "http.listen", why: "listen port not a number"),
        Case(yaml: "http: {listen: \"[::1]\"}", key: "http.listen", why: "IPv6 listen without port"),
        Case(yaml: "http: {tls_listen: \"0.0.0.0:8443\"}", key: "http.cert_file", why: "TLS without a certificate"),
        Case(
            yaml: "http: {tls_listen: \"0.0.0.0:8443\", cert_file: /nonexistent/edge.crt, key_file: /nonexistent/edge.key}",
            key: "http.cert_file", why: "TLS certificate unreadable"),
        Case(yaml: "cloud: {}", key: "cloud", why: "empty cloud section"),
        Case(yaml: "cloud: {events_url: \"ftp://inn.gs/e/K\"}", key: "cloud.events_url", why: "events URL not http(s)"),
        Case(yaml: "cloud: {events_url: \"not a url\"}", key: "cloud.events_url", why: "events URL garbage"),
        Case(yaml: "cloud: {directus_url: \"https://api.example.com\"}", key: "cloud.directus_token", why: "Directus without a token"),
        Case(yaml: "cloud: {events_url: \"https://inn.gs/e/K\", max_batch: 5001}", key: "cloud.max_batch", why: "batch over Inngest's cap"),
        Case(
            yaml: "cloud: {events_url: \"https://inn.gs/e/K\", roster_sync_seconds: 0}", key: "cloud.roster_sync_seconds", why: "sync interval zero"),
        Case(yaml: "cloud: {events_url: \"https://inn.gs/e/K\", events_url_file: /x}", key: "cloud.events_url", why: "events URL inline and file"),
        Case(yaml: "mqtt: {password: pw, password_file: /run/credentials/pw}", key: "mqtt.password", why: "both inline and file"),
        Case(yaml: "mqtt: {password: \"  \"}", key: "mqtt.password", why: "inline password empty"),
        Case(yaml: "cloud: {events_url: \"\"}", key: "cloud.events_url", why: "inline events URL empty"),
        Case(yaml: "mqtt: {password_file: /nonexistent/medic-edge/mqtt-password}", key: "mqtt.password_file", why: "missing secret file"),
        Case(
            yaml: "cloud: {directus_url: \"https://api.example.com\", directus_token_file: /nonexistent/tok}",
            key: "cloud.directus_token_file", why: "missing token file"),
        Case(yaml: "checkin: {open_before_minutes: -5}", key: "checkin.open_before_minutes", why: "negative open-before"),
        Case(yaml: "noshow: {grace_minutes: soon}", key: "noshow.grace_minutes", why: "grace not a number"),
        Case(yaml: "noshow: {check_interval_seconds: 0}", key: "noshow.check_interval_seconds", why: "no-show interval zero"),
        Case(yaml: "sync: {days_ahead: 400}", key: "sync.days_ahead", why: "days ahead over a year"),
        Case(yaml: "sync: {days_behind: 1}", key: "sync.days_behind", why: "unknown sync key"),
        Case(yaml: "storage: {max_bytes: 1000}", key: "storage.max_bytes", why: "budget under 1 MiB"),
        Case(yaml: "rooms: [sala-2]", key: "rooms", why: "rooms is a list"),
        Case(yaml: "rooms: {\"sala.2\": {name: Sala 2}}", key: "rooms.sala.2", why: "room key with a dot"),
        Case(yaml: "rooms: {sala-2: Sala 2}", key: "rooms.sala-2", why: "room is a bare name"),
        Case(yaml: "rooms: {sala-2: {nome: Sala 2}}", key: "rooms.sala-2.nome", why: "unknown room key"),
        Case(
            yaml: "rooms: {sala-2: {limits: {pressure_hpa: {min: 900, max: 1100}}}}", key: "rooms.sala-2.limits.pressure_hpa", why: "unknown metric"),
        Case(
            yaml: "rooms: {fridge: {limits: {temperature_c: {min: 2, max: 8, hysteresis: 3.5}}}}",
            key: "rooms.fridge.limits.temperature_c.hysteresis", why: "hysteresis too large"),
        Case(
            yaml: "rooms: {fridge: {limits: {temperature_c: {min: 2, max: 8, hysteresis: -0.5}}}}",
            key: "rooms.fridge.limits.temperature_c.hysteresis", why: "negative hysteresis"),
        Case(
            yaml: "rooms: {fridge: {limits: {temperature_c: {min: 8, max: 2}}}}",
            key: "rooms.fridge.limits.temperature_c.min", why: "min above max"),
        Case(
            yaml: "rooms: {fridge: {limits: {temperature_c: {min: 8, max: 8}}}}",
            key: "rooms.fridge.limits.temperature_c.min", why: "min equal to max"),
        Case(
            yaml: "rooms: {fridge: {limits: {temperature_c: {max: 8}}}}",
            key: "rooms.fridge.limits.temperature_c.min", why: "min missing"),
        Case(
            yaml: "rooms: {fridge: {limits: {temperature_c: {min: 2}}}}",
            key: "rooms.fridge.limits.temperature_c.max", why: "max missing"),
        Case(
            yaml: "rooms: {fridge: {limits: {temperature_c: {min: cold, max: 8}}}}",
            key: "rooms.fridge.limits.temperature_c.min", why: "min not a number"),
        Case(
            yaml: "rooms: {fridge: {limits: {temperature_c: {min: -41, max: 8}}}}",
            key: "rooms.fridge.limits.temperature_c.min", why: "min below what a sensor may send (-40 °C)"),
        Case(
            yaml: "rooms: {fridge: {limits: {temperature_c: {min: 2, max: 1e300}}}}",
            key: "rooms.fridge.limits.temperature_c.max", why: "max absurd (the console would trap formatting it)"),
        Case(
            yaml: "rooms: {fridge: {limits: {temperature_c: {min: -1e300, max: 8}}}}",
            key: "rooms.fridge.limits.temperature_c.min", why: "min absurd"),
        Case(
            yaml: "rooms: {fridge: {limits: {temperature_c: {min: .nan, max: 8}}}}",
            key: "rooms.fridge.limits.temperature_c.min", why: "min NaN"),
        Case(
            yaml: "rooms: {sala: {limits: {humidity_pct: {min: 10, max: 101}}}}",
            key: "rooms.sala.limits.humidity_pct.max", why: "humidity over 100 %"),
        Case(
            yaml: "rooms: {sala: {limits: {co2_ppm: {min: 0, max: 10001}}}}",
            key: "rooms.sala.limits.co2_ppm.max", why: "CO2 over 10,000 ppm"),
        Case(
            yaml: "rooms: {sala: {limits: {co2_ppm: {min: 0, max: 1200, hysteresis: 1e300}}}}",
            key: "rooms.sala.limits.co2_ppm.hysteresis", why: "hysteresis absurd"),
        Case(
            yaml: "rooms: {sala: {limits: {co2_ppm: {min: 0, max: 1200, hysteresis: .inf}}}}",
            key: "rooms.sala.limits.co2_ppm.hysteresis", why: "hysteresis infinite"),
        Case(yaml: "site_id: [unclosed", key: "(file)", why: "malformed YAML"),
        Case(yaml: "mqtt:\n  host: a\n port: 1\n", key: "(file)", why: "bad indentation"),
        Case(yaml: "- just\n- a list\n", key: "(file)", why: "top level is a list"),
        Case(yaml: "just a sentence", key: "(file)", why: "top level is a scalar"),
    ]

    @Test("Given a bad config, when parsed, then the ConfigError names the key", arguments: cases)
    func badConfigNamesKey(_ c: Case) {
        guard let e = configError(c.yaml) else { return }
        #expect(e.key == c.key, "\(c.why): \(e)")
        #expect(!e.problem.isEmpty)
        #expect(e.description.hasPrefix("config error: \(c.key): "))
        #expect(!e.description.contains("\n"), "a bad config is reported on one line")
    }

    @Test("Given an empty secret file, when parsed, then the file key is named")
    func emptySecretFile() throws {
        let dir = try TempDir()
        defer { dir.cleanup() }
        let p = try dir.write("empty", "  \n")
        #expect(configError("mqtt: {password_file: \(p)}")?.key == "mqtt.password_file")
    }

    @Test("Given a secret in a config, when the config error is shown, then the secret is not in it")
    func secretNotEchoedInError() {
        let e = configError("mqtt: {password: hunter2-secret, password_file: /nonexistent/pw}")
        #expect(e?.key == "mqtt.password")
        #expect(e?.description.contains("hunter2-secret") == false)
    }

    @Test("Given a --config path that does not exist, when loaded, then the error names --config")
    func missingConfigFile() {
        do {
            _ = try EdgeConfig.load(path: "/nonexistent/medic-edge/config.yaml")
            Issue.record("expected an error")
        } catch let e as ConfigError {
            #expect(e.key == "--config")
            #expect(e.problem.contains("/nonexistent/medic-edge/config.yaml"))
        } catch {
            Issue.record("unexpected \(error)")
        }
    }

    @Test("Given a config file that is not UTF-8, when loaded, then the error names --config")
    func nonUTF8ConfigFile() throws {
        let dir = try TempDir()
        defer { dir.cleanup() }
        let p = (dir.path as NSString).appendingPathComponent("config.yaml")
        try Data([0x73, 0x69, 0x74, 0x65, 0x3a, 0x20, 0xff, 0xfe, 0x0a]).write(to: URL(fileURLWithPath: p))
        #expect(throws: ConfigError(key: "--config", problem: "\(p) is not UTF-8 text")) {
            try EdgeConfig.load(path: p)
        }
    }

    @Test("Given a key written twice, when parsed, then the config is refused rather than silently taking one")
    func duplicateKeyRefused() {
        #expect(configError("site_id: pleno-cuidado\nsite_id: outra-clinica\n")?.key == "(file)")
    }
}

/// CONTRACT §5 "Bounds": every number has a lower and an upper bound; a value outside names
/// its key. The table is `EdgeConfig.bounds`, through which the parser reads every number.
@Suite("Config: every number is bounded (CONTRACT §5)")
struct ConfigBoundsTests {
    /// The YAML that sets `key` (section.name) to `value`, with what its section needs besides.
    static func yaml(_ key: String, _ value: String) -> String {
        if key.hasPrefix("rooms.*.cold_chain.") {
            // A cold-chain setting, in a room named `f` (a fridge with its temperature limits).
            let setting = key.dropFirst("rooms.*.cold_chain.".count)
            return "rooms: {f: {limits: {temperature_c: {min: 2, max: 8}}, cold_chain: {\(setting): \(value)}}}"
        }
        let parts = key.split(separator: ".", maxSplits: 1).map(String.init)
        let extra = parts[0] == "cloud" ? "events_url: \"https://inn.gs/e/K\", " : ""
        return "\(parts[0]): {\(extra)\(parts[1]): \(value)}"
    }
    static func text(_ d: Double, whole: Bool) -> String { whole ? String(Int64(d)) : "\(d)" }

    /// Every numeric key of the config, written out so that the table cannot silently lose one.
    static let numericKeys: Set<String> = [
        "mqtt.port", "mqtt.keepalive_seconds", "mqtt.max_pending_bytes",
        "cloud.roster_sync_seconds", "cloud.max_batch", "cloud.max_request_bytes",
        "cloud.connect_timeout_seconds", "cloud.request_timeout_seconds",
        "checkin.open_before_minutes", "noshow.grace_minutes", "noshow.check_interval_seconds",
        "sync.days_ahead", "storage.max_bytes", "storage.min_free_bytes", "storage.max_reject_rows",
        "retention.checkins_days", "retention.noshows_days", "retention.kiosk_results_days",
        "retention.staff_audit_days", "retention.coldchain_days",
        "rooms.*.cold_chain.alarm_delay_minutes", "rooms.*.cold_chain.silence_minutes",
    ]
    /// The key an error names: a room's setting is named with its room (`f` in these tests).
    static func named(_ key: String) -> String { key.replacingOccurrences(of: "rooms.*.", with: "rooms.f.") }

    @Test("The bounds table covers every numeric key of the config, each with a finite upper bound")
    func tableCoversEveryKey() {
        #expect(Set(EdgeConfig.bounds.keys) == Self.numericKeys)
        for (key, b) in EdgeConfig.bounds {
            #expect(b.range.upperBound.isFinite && b.range.lowerBound.isFinite, "\(key)")
            // Seconds and minutes become milliseconds or nanoseconds (Int(x * 1000),
            // Int64(x * 60_000), Duration) and counts or bytes an Int or Int64: the upper bound
            // keeps every such conversion far from a trap, even in nanoseconds of minutes.
            let finest = b.whole ? 1000.0 : 60.0 * 1e9
            #expect(b.range.upperBound * finest < Double(Int64.max), "\(key)")
        }
        #expect(EdgeConfig.bounds["cloud.roster_sync_seconds"]?.range.upperBound == 86_400)
        #expect(EdgeConfig.bounds["storage.max_bytes"]?.range.upperBound == Double(1 << 40))
    }

    struct Case: CustomTestStringConvertible, Sendable {
        let key: String
        let value: String
        var testDescription: String { "\(key): \(value)" }
    }
    /// For every key: just below and just above its bounds, absurd values of both signs,
    /// non-numbers, infinities and NaN (and a fraction where a whole number is due).
    static let outOfRange: [Case] = EdgeConfig.bounds.keys.sorted().flatMap { key -> [Case] in
        let b = EdgeConfig.bounds[key]!
        let step = b.whole ? 1 : Swift.max(abs(b.range.lowerBound) * 0.01, 0.001)
        var values = [
            text(b.range.lowerBound - step, whole: b.whole), text(b.range.upperBound + (b.whole ? 1 : 0.5), whole: b.whole),
            "1e300", "-1e300", "1e+300", ".inf", "-.inf", ".nan", "\"lots\"", "true", "[1]",
            "99999999999999999999999999",
        ]
        if b.whole { values.append(text(b.range.lowerBound, whole: true) + ".5") }
        return values.map { Case(key: key, value: $0) }
    }

    @Test("A number outside its bounds stops the config with an error naming its key", arguments: outOfRange)
    func outOfRangeNamesKey(_ c: Case) {
        let yaml = Self.yaml(c.key, c.value)
        do {
            let config = try EdgeConfig.parse(yaml: yaml)
            Issue.record("accepted \(yaml): \(config)")
        } catch let e as ConfigError {
            #expect(e.key == Self.named(c.key), "\(yaml) → \(e)")
            #expect(e.problem.contains(" from ") && e.problem.contains(" to "), "the problem states the bounds: \(e)")
            #expect(!e.description.contains("\n"))
        } catch {
            Issue.record("\(yaml): unexpected \(error)")
        }
    }

    @Test("Both ends of every bound are accepted", arguments: EdgeConfig.bounds.keys.sorted())
    func edgesAccepted(_ key: String) throws {
        let b = try #require(EdgeConfig.bounds[key])
        for v in [b.range.lowerBound, b.range.upperBound] {
            #expect(throws: Never.self, "\(key): \(v)") { try EdgeConfig.parse(yaml: Self.yaml(key, Self.text(v, whole: b.whole))) }
        }
    }

    @Test("retention: the contract's defaults (90 days, staff audit 1 year, cold chain 3 years), each key read, an unknown one named")
    func retention() throws {
        let d = EdgeConfig().retention
        let defaults: [Int] = [d.checkinsDays, d.noshowsDays, d.kioskResultsDays, d.staffAuditDays, d.coldchainDays]
        #expect(defaults == [90, 90, 90, 365, 1095])
        let r = try EdgeConfig.parse(
            yaml: "retention: {checkins_days: 30, noshows_days: 31, kiosk_results_days: 7, staff_audit_days: 400, coldchain_days: 1825}"
        ).retention
        let read: [Int] = [r.checkinsDays, r.noshowsDays, r.kioskResultsDays, r.staffAuditDays, r.coldchainDays]
        #expect(read == [30, 31, 7, 400, 1825])
        #expect(configError("retention: {checkin_days: 30}")?.key == "retention.checkin_days")
        #expect(
            configError("retention: {staff_audit_days: 7}")?.description
                == "config error: retention.staff_audit_days: must be a whole number from 30 to 3650 (days), got 7")
    }

    @Test("The error for an absurd roster interval reads as one line a person can act on")
    func rosterSyncMessage() {
        #expect(
            configError("cloud: {events_url: \"https://inn.gs/e/K\", roster_sync_seconds: 1e300}")?.description
                == "config error: cloud.roster_sync_seconds: must be a number from 0.05 to 86400 (seconds), got 1e+300")
        #expect(
            configError("storage: {max_bytes: 1099511627777}")?.description
                == "config error: storage.max_bytes: must be a whole number from 1048576 to 1099511627776 (bytes), got 1099511627777")
    }
}

/// CONTRACT §5 "Operator commands read no secret": they load the config with
/// `readSecrets: false`; only `run` reads secrets, and a bad one names its key.
@Suite("Config: secrets are read only by run (CONTRACT §5)")
struct ConfigSecretTests {
    /// The installer's config (provisioning/install.sh): secrets as files under
    /// /run/credentials, which a shell cannot read (here: they do not exist).
    static let installed = """
        site_id: pleno-cuidado
        tenant_id: 6f1c2a9e-0000-4000-8000-000000000001
        data_dir: /var/lib/medic-edge
        mqtt: {host: 127.0.0.1, port: 1883, client_id: medic-edge, username: medic-edge,
               password_file: /nonexistent/run/credentials/medic-edge.service/mqtt-password}
        cloud:
          events_url_file: /nonexistent/run/credentials/medic-edge.service/events-url
          directus_url: https://api.example.com
          directus_token_file: /nonexistent/run/credentials/medic-edge.service/directus-token
          roster_sync_seconds: 60
        http:
          listen: 127.0.0.1:8080
          tls_listen: 0.0.0.0:8443
          cert_file: /etc/hostname
          key_file: /nonexistent/run/credentials/medic-edge.service/console-key
        """

    @Test("Given the installer's config with unreadable secret files, when loaded without secrets, then it loads and holds no secret value")
    func operatorLoadOfInstalledConfig() throws {
        let c = try EdgeConfig.parse(yaml: Self.installed, readSecrets: false)
        let cloud = try #require(c.cloud, "the cloud is still configured")
        #expect(cloud.eventsURLSecret == .notRead(key: "cloud.events_url_file"))
        #expect(cloud.directusTokenSecret == .notRead(key: "cloud.directus_token_file"))
        #expect(c.mqtt.passwordSecret == .notRead(key: "mqtt.password_file"))
        #expect(
            cloud.eventsURL == nil && cloud.directusToken == nil && c.mqtt.password == nil,
            "an unread secret has no value that could be used as one (no placeholder text)")
        #expect(c.secretsNotRead == ["mqtt.password_file", "cloud.events_url_file", "cloud.directus_token_file"])
        #expect(cloud.directusURL == "https://api.example.com")
        #expect(c.siteId == "pleno-cuidado")
    }

    @Test("Given the same config, when loaded by run, then the first unreadable secret stops it naming its key")
    func runLoadOfInstalledConfig() {
        let e = configError(Self.installed)
        #expect(e?.key == "mqtt.password_file")
        #expect(e?.problem.contains("cannot read secret file") == true)
    }

    @Test("Given inline secrets with bad values, when loaded without secrets, then nothing about them is checked or kept")
    func operatorLoadIgnoresInlineValues() throws {
        let yaml = """
            mqtt: {password: hunter2-inline}
            cloud: {events_url: "not a url at all", directus_url: "https://api.example.com", directus_token: tok-inline}
            """
        let c = try EdgeConfig.parse(yaml: yaml, readSecrets: false)
        #expect(c.cloud?.eventsURLSecret == .notRead(key: "cloud.events_url"))
        #expect(c.mqtt.password == nil && c.cloud?.directusToken == nil)
        let printed = String(describing: c) + String(reflecting: c)
        #expect(!printed.contains("hunter2-inline") && !printed.contains("tok-inline") && !printed.contains("not a url"))
        // run checks it.
        #expect(configError(yaml)?.key == "cloud.events_url")
    }

    @Test("Given a config error outside the secrets, when loaded without secrets, then it is still reported")
    func operatorLoadStillChecksTheRest() {
        for (yaml, key) in [
            ("cloud: {events_url_file: /nonexistent/x, max_batch: 0}", "cloud.max_batch"),
            ("mqtt: {password: a, password_file: /nonexistent/b}", "mqtt.password"),
            ("cloud: {directus_url: \"https://api.example.com\"}", "cloud.directus_token"),
            ("cloud: {directus_url: \"ftp://x\", directus_token_file: /nonexistent/t}", "cloud.directus_url"),
            ("cloud: {}", "cloud"),
            ("noshow: {grace_minutes: 1e300}", "noshow.grace_minutes"),
        ] {
            do {
                _ = try EdgeConfig.parse(yaml: yaml, readSecrets: false)
                Issue.record("accepted \(yaml)")
            } catch let e as ConfigError {
                #expect(e.key == key, "\(yaml) → \(e)")
            } catch { Issue.record("\(error)") }
        }
    }

    @Test("Given an events_url_file whose content is not a URL, when run loads it, then the file key is named and the content is not shown")
    func badSecretFileValue() throws {
        let dir = try TempDir()
        defer { dir.cleanup() }
        let p = try dir.write("events-url", "ftp-secret-key-123\n")
        let e = configError("cloud: {events_url_file: \(p)}")
        #expect(e?.key == "cloud.events_url_file")
        #expect(e?.problem.contains("http(s) URL") == true)
        #expect(e?.description.contains("ftp-secret-key-123") == false)
    }

    @Test("Given read secrets, when the config is printed, then no secret value shows")
    func printedConfigHidesSecrets() throws {
        let c = try EdgeConfig.parse(
            yaml: """
                mqtt: {password: hunter2-inline}
                cloud: {events_url: "https://inn.gs/e/EVENTKEY-SECRET", directus_url: "https://api.example.com", directus_token: tok-inline}
                """)
        #expect(c.cloud?.eventsURL == "https://inn.gs/e/EVENTKEY-SECRET")
        let printed = String(describing: c) + String(reflecting: c)
        #expect(!printed.contains("hunter2-inline") && !printed.contains("EVENTKEY-SECRET") && !printed.contains("tok-inline"))
    }
}

/// CONTRACT §6: a room's `cold_chain` section.
@Suite("Config: cold-chain rooms (CONTRACT §6)")
struct ColdChainConfigTests {
    @Test("The contract's example is read, with fractions allowed")
    func contractExample() throws {
        let c = try EdgeConfig.parse(
            yaml: """
                rooms:
                  geladeira-vacinas:
                    name: Geladeira de vacinas
                    limits: {temperature_c: {min: 2, max: 8, hysteresis: 0.5}}
                    cold_chain: {alarm_delay_minutes: 15, silence_minutes: 0.5,
                                 workday: {opens: "07:30", closes: "18:45"}}
                """)
        let cc = try #require(c.rooms["geladeira-vacinas"]?.coldChain)
        #expect(cc.alarmDelayMinutes == 15 && cc.silenceMinutes == 0.5)
        #expect(cc.workday == Workday(opensMinute: 450, closesMinute: 1125))
        #expect(cc.alarmDelayMs == 900_000 && cc.silenceMs == 30_000)
    }

    @Test("An empty section takes the defaults (15 min, 10 min, 07:00–19:00); a room without one is no fridge")
    func defaults() throws {
        let c = try EdgeConfig.parse(
            yaml: "rooms: {g: {limits: {temperature_c: {min: 2, max: 8}}, cold_chain: {}}, s: {limits: {temperature_c: {min: 18, max: 26}}}}")
        #expect(c.rooms["g"]?.coldChain == ColdChainConfig(alarmDelayMinutes: 15, silenceMinutes: 10, workday: .standard))
        #expect(c.rooms["s"]?.coldChain == nil)
    }

    @Test(
        "Bad cold-chain settings name the key",
        arguments: [
            ("rooms: {g: {cold_chain: {}}}", "rooms.g.cold_chain"),
            ("rooms: {g: {limits: {humidity_pct: {min: 2, max: 8}}, cold_chain: {}}}", "rooms.g.cold_chain"),
            ("rooms: {g: {limits: {temperature_c: {min: 2, max: 8}}, cold_chain: {workday: {opens: \"7h\"}}}}", "rooms.g.cold_chain.workday.opens"),
            (
                "rooms: {g: {limits: {temperature_c: {min: 2, max: 8}}, cold_chain: {workday: {closes: \"24:00\"}}}}",
                "rooms.g.cold_chain.workday.closes"
            ),
            (
                "rooms: {g: {limits: {temperature_c: {min: 2, max: 8}}, cold_chain: {workday: {opens: \"19:00\", closes: \"07:00\"}}}}",
                "rooms.g.cold_chain.workday.opens"
            ),
            ("rooms: {g: {limits: {temperature_c: {min: 2, max: 8}}, cold_chain: {alarm: 3}}}", "rooms.g.cold_chain.alarm"),
        ])
    func badSettings(_ yaml: String, _ key: String) {
        do {
            _ = try EdgeConfig.parse(yaml: yaml)
            Issue.record("accepted \(yaml)")
        } catch let e as ConfigError {
            #expect(e.key == key, "\(yaml) → \(e)")
        } catch {
            Issue.record("\(error)")
        }
    }
}
