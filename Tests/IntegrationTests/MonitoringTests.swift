import EdgeCore
import EdgeHTTPClient
import EdgeTestSupport
import Foundation
import Testing

/// Monitoring (CONTRACT §7): the alerting rules and the Grafana dashboard in `ops/`, checked
/// with Debian's `promtool` and `prometheus` against a running daemon (docs/monitoring.md).
@Suite("Monitoring: Prometheus rules and the Grafana dashboard", .serialized)
struct MonitoringTests {
    /// The repository checkout (this file is Tests/IntegrationTests/MonitoringTests.swift).
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    static let rulesPath = repo + "/ops/prometheus/medic-edge.rules.yml"
    static let rulesTestPath = repo + "/ops/prometheus/medic-edge.rules.test.yml"
    static let dashboardPath = repo + "/ops/grafana/medic-edge.json"
    static let promtool = "/usr/bin/promtool", prometheus = "/usr/bin/prometheus"
    static let installed = FileManager.default.isExecutableFile(atPath: promtool) && FileManager.default.isExecutableFile(atPath: prometheus)
    static let notInstalled: Comment = "Debian's prometheus and promtool are not installed (scripts/install-deps.sh installs the package prometheus)"

    /// The alerts of CONTRACT §7: daemon down, cloud down 15 min, backlog older than 1 h,
    /// fridge excursion (and its alarm) or silence, storage over budget, disk nearly full.
    static let alerts = [
        "MedicEdgeDown", "MedicEdgeCloudDown", "MedicEdgeBacklogOld", "MedicEdgeColdChainExcursion", "MedicEdgeColdChainAlarm",
        "MedicEdgeColdChainSensorSilent", "MedicEdgeStorageOverBudget", "MedicEdgeDiskNearlyFull",
    ]

    static let coldChainRoom = """
        rooms:
          geladeira-vacinas:
            name: Geladeira de vacinas
            limits: {temperature_c: {min: 2, max: 8, hysteresis: 0.5}}
            cold_chain: {alarm_delay_minutes: 15, silence_minutes: 10, workday: {opens: "07:00", closes: "19:00"}}

        """

    @Test("promtool: the rules check, their unit tests pass and cover every alert; broken copies fail both", .enabled(if: installed, notInstalled))
    func promtoolChecks() async throws {
        let (checkCode, checkOut) = try await Harness.runProgram(Self.promtool, ["check", "rules", Self.rulesPath], timeout: 60)
        #expect(checkCode == 0, "promtool check rules: \(checkOut)")
        #expect(checkOut.contains("SUCCESS: \(Self.alerts.count) rules found"), "\(checkOut)")
        let (testCode, testOut) = try await Harness.runProgram(Self.promtool, ["test", "rules", Self.rulesTestPath], timeout: 60)
        #expect(testCode == 0, "promtool test rules: \(testOut)")
        let (configCode, configOut) = try await Harness.runProgram(
            Self.promtool, ["check", "config", Self.repo + "/ops/prometheus/prometheus.yml"], timeout: 60)
        #expect(configCode == 0, "promtool check config: \(configOut)")

        // Every alert of §7 is in the rules and has a unit test that expects it to fire.
        let rules = try String(contentsOfFile: Self.rulesPath, encoding: .utf8)
        let tests = try String(contentsOfFile: Self.rulesTestPath, encoding: .utf8)
        let defined = rules.split(separator: "\n").compactMap { line -> String? in
            let t = line.trimmingCharacters(in: .whitespaces)
            return t.hasPrefix("- alert: ") ? String(t.dropFirst("- alert: ".count)) : nil
        }
        #expect(Set(defined) == Set(Self.alerts), "alerts in \(Self.rulesPath)")
        for a in Self.alerts { #expect(tests.contains("alertname: \(a)\n        exp_alerts:\n          - exp_labels"), "no firing test for \(a)") }

        // The checks can fail: a `for:` shortened (the unit tests notice the alert fires too
        // early) and an expression that does not parse (check rules refuses it).
        let dir = Harness.tempDir("rules")
        try tests.write(toFile: dir + "/medic-edge.rules.test.yml", atomically: true, encoding: .utf8)
        let early = rules.replacingOccurrences(of: "for: 15m", with: "for: 10m")
        #expect(early != rules)
        try early.write(toFile: dir + "/medic-edge.rules.yml", atomically: true, encoding: .utf8)
        let (earlyCode, earlyOut) = try await Harness.runProgram(Self.promtool, ["test", "rules", dir + "/medic-edge.rules.test.yml"], timeout: 60)
        #expect(earlyCode != 0 && earlyOut.contains("MedicEdgeCloudDown"), "\(earlyOut)")
        let broken = rules.replacingOccurrences(of: "expr: medic_edge_cloud_up == 0", with: "expr: medic_edge_cloud_up == == 0")
        #expect(broken != rules)
        try broken.write(toFile: dir + "/medic-edge.rules.yml", atomically: true, encoding: .utf8)
        let (brokenCode, brokenOut) = try await Harness.runProgram(Self.promtool, ["check", "rules", dir + "/medic-edge.rules.yml"], timeout: 60)
        #expect(brokenCode != 0, "\(brokenOut)")
    }

    @Test(
        """
        A live daemon (cloud unreachable, a cold-chain room) scraped by Prometheus: outbox_pending read back as the daemon says, the rules \
        loaded and healthy, CloudDown pending (and ColdChainExcursion after 9.5 °C); every metric of the dashboard and the rules exposed, \
        every panel query answered
        """,
        .enabled(if: installed, notInstalled))
    func liveDaemon() async throws {
        let broker = try Broker()
        try await broker.start()
        // The cloud's port is free: nothing listens, every upload fails and the outbox fills.
        let daemon = try DaemonProcess(
            configYAML: DaemonProcess.standardConfig(mqttPort: broker.port, cloudPort: Harness.freePort(), extra: Self.coldChainRoom))
        let device = try await TestMQTT(port: broker.port)
        let prom = Process()
        do {
            try await device.subscribe("clinic/test-site/#")
            try await daemon.start()
            try await device.waitFor("clinic/test-site/edge/status", timeout: 15) { $0["state"]?.stringValue == "online" }
            try await Self.runLive(daemon: daemon, device: device, prometheus: prom)
        } catch {
            Issue.record(error)
        }
        if prom.isRunning { await Harness.stop(prom, timeout: 10) }
        _ = await daemon.terminate()
        device.close()
        await broker.stop()
    }

    /// The body of `liveDaemon`; runs `p` (the caller stops it, whatever happens here).
    static func runLive(daemon: DaemonProcess, device: TestMQTT, prometheus p: Process) async throws {
        // Fridge readings (telemetry: pending in the outbox), a kiosk scan (the latency
        // histogram appears with the first one) and a message refused (a dead letter).
        for (i, t) in [5.0, 5.5, 6.0].enumerated() {
            try device.publish("clinic/test-site/room/geladeira-vacinas/environment/fridge-1", #"{"temperature_c": \#(t), "msg_id": "t\#(i)"}"#)
            try await device.waitFor("clinic/test-site/device/fridge-1/ack") { $0["msg_id"]?.stringValue == "t\(i)" }
        }
        let scan = JSONText.object { j in
            j.add("scan_id", "s1"); j.add("qr", "not-a-code"); j.add("ts", Time.rfc3339(Date()))
        }
        try device.publish("clinic/test-site/kiosk/k1/scan", scan)
        try await device.waitFor("clinic/test-site/kiosk/k1/result") { $0["scan_id"]?.stringValue == "s1" }
        try device.publish("clinic/test-site/room/geladeira-vacinas/environment/fridge-1", "not json")

        // Prometheus: scrapes the daemon every second, evaluates the repository's rules.
        let dir = Harness.tempDir("prometheus")
        let port = Harness.freePort()
        let target = "127.0.0.1:\(daemon.httpPort)"
        let config = """
            global: {scrape_interval: 1s, evaluation_interval: 1s}
            rule_files: ["\(rulesPath)"]
            scrape_configs:
              - job_name: medic-edge
                static_configs: [{targets: ["\(target)"]}]

            """
        try config.write(toFile: dir + "/prometheus.yml", atomically: true, encoding: .utf8)
        p.executableURL = URL(fileURLWithPath: prometheus)
        p.arguments = [
            "--config.file=\(dir)/prometheus.yml", "--storage.tsdb.path=\(dir)/tsdb", "--web.listen-address=127.0.0.1:\(port)",
            "--log.level=warn",
        ]
        let logPath = dir + "/prometheus.log"
        _ = FileManager.default.createFile(atPath: logPath, contents: nil)
        let log = FileHandle(forWritingAtPath: logPath)!
        p.standardOutput = log; p.standardError = log
        try p.run()
        let api = PrometheusAPI(base: "http://127.0.0.1:\(port)", process: p, logPath: logPath)

        // outbox_pending as Prometheus has it equals what the daemon's /metrics says.
        var daemonValue: Double?, promValue: Double?
        try await Harness.waitUntil("medic_edge_outbox_pending{class=\"telemetry\"} through Prometheus's query API", timeout: 60, poll: 0.5) {
            daemonValue = Self.sample(try await daemon.get("/metrics").text, #"medic_edge_outbox_pending{class="telemetry"}"#)
            let r = try await api.query("medic_edge_outbox_pending")
            promValue = r.first { $0["metric"]?["class"]?.stringValue == "telemetry" }?["value"]?.arrayValue?.last?.stringValue.flatMap(Double.init)
            return promValue != nil && promValue == daemonValue
        }
        #expect((daemonValue ?? 0) >= 3, "the three fridge readings wait for the cloud")
        let clinical = try await api.query(#"medic_edge_outbox_pending{class="clinical", job="medic-edge"}"#)
        #expect(clinical.count == 1, "one clinical series, labelled with the scrape job")

        // The rules loaded, evaluated without error; the cloud is down, so its alert is pending.
        var names: [String] = [], unhealthy: [String] = []
        try await Harness.waitUntil("the rules evaluated by Prometheus (/api/v1/rules)", timeout: 60, poll: 0.5) {
            let rules = try await api.get("/api/v1/rules")["groups"]?.arrayValue?.flatMap { $0["rules"]?.arrayValue ?? [] } ?? []
            names = rules.compactMap { $0["name"]?.stringValue }
            unhealthy = rules.filter { $0["health"]?.stringValue != "ok" }.map {
                "\($0["name"]?.stringValue ?? "?"): \($0["health"]?.stringValue ?? "?") \($0["lastError"]?.stringValue ?? "")"
            }
            return !names.isEmpty && unhealthy.isEmpty
        }
        #expect(Set(names) == Set(alerts))
        try await Harness.waitUntil("MedicEdgeCloudDown pending (/api/v1/alerts)", timeout: 30, poll: 0.5) {
            let alerts = try await api.get("/api/v1/alerts")["alerts"]?.arrayValue ?? []
            return alerts.contains { $0["labels"]?["alertname"]?.stringValue == "MedicEdgeCloudDown" && $0["state"]?.stringValue == "pending" }
        }

        // Every metric the dashboard and the rules name is one the daemon exposes.
        let exposition = try await daemon.get("/metrics").text
        let exposed = Self.sampleNames(exposition)
        let dashboard = try JSON.parse(String(contentsOfFile: dashboardPath, encoding: .utf8))
        let exprs = Self.dashboardExpressions(dashboard)
        #expect(exprs.count >= 20, "the dashboard's panel queries")
        let rulesText = try String(contentsOfFile: rulesPath, encoding: .utf8)
        let ruleExprs = rulesText.split(separator: "\n").filter { $0.trimmingCharacters(in: .whitespaces).hasPrefix("expr:") }.map(String.init)
        var used = Set<String>()
        for e in exprs + Self.dashboardVariableQueries(dashboard) + ruleExprs { used.formUnion(Self.metricNames(e)) }
        #expect(used.count >= 20)
        let missing = used.filter { !exposed.contains($0) }.sorted()
        #expect(missing.isEmpty, "used by the dashboard or the rules, but the daemon's /metrics has no such series: \(missing)")
        for name in used where name.hasSuffix("_bucket") {
            #expect(exposition.contains("# TYPE \(name.dropLast("_bucket".count)) histogram"), "\(name) is a histogram's")
        }
        // The cold-chain series of the configured room: the last reading, its limits, no excursion.
        let room = ["room": "geladeira-vacinas"]
        #expect(Self.sample(exposition, "medic_edge_coldchain_temperature_celsius", room) == 6)
        #expect(Self.sample(exposition, "medic_edge_coldchain_limit_celsius", room.merging(["bound": "min"]) { a, _ in a }) == 2)
        #expect(Self.sample(exposition, "medic_edge_coldchain_limit_celsius", room.merging(["bound": "max"]) { a, _ in a }) == 8)
        for name in ["medic_edge_coldchain_excursion_open", "medic_edge_coldchain_alarm", "medic_edge_coldchain_sensor_silent"] {
            #expect(Self.sample(exposition, name, room) == 0, "\(name)")
        }

        // Every panel query parses and, but for the filtered ones, answers with data (rates
        // and increases once Prometheus holds a few scrapes).
        try await Harness.waitUntil("three scrapes of the daemon", timeout: 30, poll: 0.5) {
            try await !api.query(#"count_over_time(up{job="medic-edge"}[1m]) >= 3"#).isEmpty
        }
        for e in exprs {
            let q = e.replacingOccurrences(of: "$instance", with: target).replacingOccurrences(of: "$__rate_interval", with: "1m")
                .replacingOccurrences(of: "$__range", with: "5m")
            let r = try await api.query(q)
            #expect(!r.isEmpty || e.contains("> 0"), "no data for the dashboard query \(e)")
        }

        // A reading above the fridge's max opens an excursion: the rule matches the daemon's
        // own series (its labels) and goes pending for that room.
        try device.publish("clinic/test-site/room/geladeira-vacinas/environment/fridge-1", #"{"temperature_c": 9.5, "msg_id": "t-hot"}"#)
        try await device.waitFor("clinic/test-site/device/fridge-1/ack") { $0["msg_id"]?.stringValue == "t-hot" }
        try await Harness.waitUntil("MedicEdgeColdChainExcursion pending for geladeira-vacinas (/api/v1/alerts)", timeout: 30, poll: 0.5) {
            let alerts = try await api.get("/api/v1/alerts")["alerts"]?.arrayValue ?? []
            return alerts.contains {
                $0["labels"]?["alertname"]?.stringValue == "MedicEdgeColdChainExcursion" && $0["labels"]?["room"]?.stringValue == "geladeira-vacinas"
                    && $0["state"]?.stringValue == "pending"
            }
        }
    }

    // MARK: reading the exposition and the dashboard

    /// The value of one series in the exposition text (`name{labels}` exactly as rendered).
    static func sample(_ text: String, _ series: String) -> Double? {
        for l in text.split(separator: "\n") where l.hasPrefix(series + " ") { return Double(l.split(separator: " ").last ?? "") }
        return nil
    }
    /// The value of the series `name` whose labels include `labels` (in any order).
    static func sample(_ text: String, _ name: String, _ labels: [String: String]) -> Double? {
        for l in text.split(separator: "\n") where l.hasPrefix(name + "{") {
            guard let close = l.firstIndex(of: "}") else { continue }
            let set = l[l.index(after: l.firstIndex(of: "{")!)..<close]
            let pairs = set.split(separator: ",").map(String.init)
            if labels.allSatisfy({ pairs.contains("\($0.key)=\"\($0.value)\"") }) { return Double(l.split(separator: " ").last ?? "") }
        }
        return nil
    }
    /// The names of the samples in the exposition text (histograms as `_bucket`, `_sum`, `_count`).
    static func sampleNames(_ text: String) -> Set<String> {
        Set(
            text.split(separator: "\n").filter { !$0.hasPrefix("#") }.compactMap {
                $0.split(whereSeparator: { $0 == "{" || $0 == " " }).first.map(String.init)
            })
    }
    /// The `medic_edge_…` names in a PromQL expression.
    static func metricNames(_ expr: String) -> Set<String> {
        Set(expr.matches(of: /medic_edge_[a-z_]+/).map { String($0.output) })
    }
    /// Every `expr` of every panel's targets (rows' nested panels included).
    static func dashboardExpressions(_ dashboard: JSON) -> [String] {
        func walk(_ panels: [JSON]) -> [String] {
            panels.flatMap { p in
                (p["targets"]?.arrayValue ?? []).compactMap { $0["expr"]?.stringValue } + walk(p["panels"]?.arrayValue ?? [])
            }
        }
        return walk(dashboard["panels"]?.arrayValue ?? [])
    }
    /// The template variables' queries (e.g. `label_values(medic_edge_cloud_up, instance)`).
    static func dashboardVariableQueries(_ dashboard: JSON) -> [String] {
        (dashboard["templating"]?["list"]?.arrayValue ?? []).compactMap { $0["definition"]?.stringValue ?? $0["query"]?["query"]?.stringValue }
    }
}

/// Prometheus's HTTP API, for the test.
struct PrometheusAPI {
    let base: String
    let process: Process
    let logPath: String
    let http = CurlHTTPClient(label: "prometheus-api")

    /// The `data` of a successful answer; an error (with Prometheus's words and log) otherwise.
    func get(_ path: String) async throws -> JSON {
        guard process.isRunning else {
            throw PrometheusError(text: "prometheus exited: \((try? String(contentsOfFile: logPath, encoding: .utf8))?.suffix(800) ?? "")")
        }
        let r = try await http.send(HTTPRequest(url: base + path, connectTimeout: 1, timeout: 5))
        let body = try JSON.parse(r.body)
        guard r.status == 200, body["status"]?.stringValue == "success", let data = body["data"] else {
            throw PrometheusError(text: "GET \(path): HTTP \(r.status): \(r.text.prefix(400))")
        }
        return data
    }
    /// An instant query's result vector.
    func query(_ q: String) async throws -> [JSON] {
        let enc = q.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "-._~"))) ?? q
        return try await get("/api/v1/query?query=" + enc)["result"]?.arrayValue ?? []
    }
}

struct PrometheusError: Error, CustomStringConvertible {
    let text: String
    var description: String { text }
}
