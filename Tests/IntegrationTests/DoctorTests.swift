import CloudStub
import EdgeCore
import EdgeTestSupport
import Foundation
import Logging
import Testing

/// `medic-edge doctor` (CONTRACT §7) against real parts: a mosquitto, the cloud stub over
/// sockets, a real data directory and database, the daemon as a subprocess. Each failure test
/// breaks one thing in an otherwise sound set-up and checks that exactly that check fails,
/// with its action, and the exit code is 2.
@Suite("Doctor", .serialized)
struct DoctorTests {
    /// A fake `timedatectl` answering `answer` (the clock check's source, injected for tests by
    /// MEDIC_EDGE_DOCTOR_TIMEDATECTL).
    static func fakeTimedatectl(_ answer: String) throws -> String {
        let path = Harness.tempDir("fake-timedatectl") + "/timedatectl"
        try "#!/bin/sh\n[ \"$*\" = \"show -p NTPSynchronized --value\" ] || exit 3\necho \(answer)\n".write(
            toFile: path, atomically: true, encoding: .utf8)
        chmod(path, 0o755)
        return path
    }

    struct Report {
        let code: Int32
        let output: String
        let status: String
        let checks: [String: (status: String, detail: String)]
        func status(_ name: String) -> String? { checks[name]?.status }
        func detail(_ name: String) -> String { checks[name]?.detail ?? "" }
        var failing: Set<String> { Set(checks.filter { $0.value.status == "fail" }.keys) }
    }

    static func doctor(config: String, clock: String = "yes") async throws -> Report {
        let (code, out) = try await DaemonProcess.runCLI(
            ["doctor", "--json", "--config", config], environment: ["MEDIC_EDGE_DOCTOR_TIMEDATECTL": try fakeTimedatectl(clock)], timeout: 60)
        let j = try JSON.parse(out)
        var checks: [String: (String, String)] = [:]
        for c in j["checks"]?.arrayValue ?? [] {
            checks[c["name"]?.stringValue ?? "?"] = (c["status"]?.stringValue ?? "?", c["detail"]?.stringValue ?? "")
        }
        return Report(code: code, output: out, status: j["status"]?.stringValue ?? "?", checks: checks)
    }

    /// Who the doctor (run as root here) expects to own the data: the service user `medic-edge`
    /// when this machine has one, else root.
    static var serviceOwner: (uid: uid_t, gid: gid_t, name: String) {
        if let pw = getpwnam("medic-edge") { return (pw.pointee.pw_uid, pw.pointee.pw_gid, "medic-edge") }
        return (0, 0, "root")
    }
    /// Gives the data directory to the service user, as install.sh does on an appliance.
    static func ownData(_ dir: String) async throws {
        let o = serviceOwner
        let (c, out) = try await Harness.runProgram("/bin/chown", ["-R", "\(o.uid):\(o.gid)", dir], timeout: 10)
        try #require(c == 0, "chown: \(out)")
    }

    static let allChecks: Set<String> = [
        "config", "data_dir", "database", "disk", "broker", "cloud.events", "cloud.roster", "clock", "certificate", "daemon",
    ]

    /// A broker and the cloud stub up, a config for them, the data directory and database made
    /// (by `medic-edge status`, as the service user would); no daemon unless started.
    final class Lab: @unchecked Sendable {
        let broker: Broker
        let stub: CloudStub
        let daemon: DaemonProcess
        init(
            brokerExtra: String = "", mqttAuth: String = "", eventKey: String = "test-key", token: String = "test-token", cloudPort: Int? = nil,
            mqttPort: Int? = nil, httpOnStub: Bool = false,
            httpExtra: [String] = [], extra: String = "", beforeData: (DaemonProcess) throws -> Void = { _ in }
        ) async throws {
            broker = try Broker(extraConfig: brokerExtra)
            try await broker.start()
            var logger = Logger(label: "stub")
            logger.logLevel = .error
            stub = CloudStub(seed: ClinicDay().seed, logger: logger)
            let port = try await stub.start()
            var yaml = DaemonProcess.standardConfig(
                mqttPort: mqttPort ?? broker.port, cloudPort: cloudPort ?? port, eventKey: eventKey, token: token, httpExtra: httpExtra,
                extra: extra)
            if !mqttAuth.isEmpty {
                yaml = yaml.replacingOccurrences(of: "client_id: medic-edge-test}", with: "client_id: medic-edge-test, \(mqttAuth)}")
            }
            daemon = httpOnStub ? try DaemonProcess(configYAML: yaml, httpPort: port) : try DaemonProcess(configYAML: yaml)
            try beforeData(daemon)
            let (code, out) = try await DaemonProcess.runCLI(["status", "--config", daemon.configPath])
            try #require(code == 0, "medic-edge status (to make the database): \(out)")
            try await DoctorTests.ownData(daemon.dataDir)
        }
        func doctor(clock: String = "yes") async throws -> Report { try await DoctorTests.doctor(config: daemon.configPath, clock: clock) }
        func stop() async {
            _ = await daemon.terminate()
            try? await stub.stop()
            await broker.stop()
        }
    }

    /// Exit 2, `name` is the one failing check (besides `alsoFailing`), and its detail holds `action`.
    static func expectOnlyFailure(_ r: Report, _ name: String, action: String, alsoFailing: Set<String> = []) {
        #expect(r.code == 2, "exit \(r.code): \(r.output)")
        #expect(r.status == "fail")
        #expect(r.status(name) == "fail", "\(name): \(r.status(name) ?? "missing") \(r.detail(name))")
        #expect(r.detail(name).contains(action), "\(name)'s detail lacks the action \"\(action)\": \(r.detail(name))")
        #expect(r.failing.subtracting(alsoFailing) == [name], "other checks failed too: \(r.output)")
    }

    @Test("A healthy appliance (daemon, broker, cloud stub, synchronised clock): every check ok, exit 0; text output one line per check")
    func allOk() async throws {
        var day = ClinicDay()
        day.book(day.maria, startMinutes: 30)
        let env = try await Env.start(day: day)
        defer { Task { await env.stop() } }
        try await Self.ownData(env.daemon.dataDir)
        let r = try await Self.doctor(config: env.daemon.configPath)
        #expect(r.code == 0, "\(r.output)")
        #expect(r.status == "ok")
        #expect(Set(r.checks.keys).isSuperset(of: Self.allChecks.union(["backlog", "dead_letters"])), "\(r.output)")
        for (name, c) in r.checks { #expect(c.status == "ok", "\(name): \(c.status) \(c.detail)") }
        #expect(r.detail("broker").contains("logged in"), "\(r.detail("broker"))")
        #expect(r.detail("cloud.events").contains("accepted the event key"), "\(r.detail("cloud.events"))")

        let (code, text) = try await DaemonProcess.runCLI(
            ["doctor", "--config", env.daemon.configPath], environment: ["MEDIC_EDGE_DOCTOR_TIMEDATECTL": try Self.fakeTimedatectl("yes")])
        #expect(code == 0, "\(text)")
        let lines = text.split(separator: "\n")
        #expect(lines.count == r.checks.count, "\(text)")
        #expect(lines.allSatisfy { $0.hasPrefix("ok    ") }, "\(text)")
    }

    @Test("Wrong broker password: broker fails with the broker's refusal and what to check; the right one is ok")
    func wrongBrokerPassword() async throws {
        let dir = Harness.tempDir("mqtt-passwd")
        let (c, o) = try await Harness.runProgram(
            "/usr/bin/mosquitto_passwd", ["-b", "-c", dir + "/passwd", "medic-edge", "right-password"], timeout: 10)
        try #require(c == 0, "mosquitto_passwd: \(o)")
        chmod(dir + "/passwd", 0o644)
        let lab = try await Lab(brokerExtra: "password_file \(dir)/passwd\n", mqttAuth: "username: medic-edge, password: wrong-password")
        defer { Task { await lab.stop() } }
        let r = try await lab.doctor()
        Self.expectOnlyFailure(r, "broker", action: "check mqtt.username and the password")
        #expect(r.detail("broker").contains("refused the login"), "\(r.detail("broker"))")
        #expect(!r.output.contains("wrong-password"), "a secret was printed: \(r.output)")

        // The same broker with the right password: the check passes (it can tell the two apart).
        let text = try String(contentsOfFile: lab.daemon.configPath, encoding: .utf8)
        try text.replacingOccurrences(of: "password: wrong-password", with: "password: right-password").write(
            toFile: lab.daemon.configPath, atomically: true, encoding: .utf8)
        let good = try await lab.doctor()
        #expect(good.status("broker") == "ok", "\(good.detail("broker"))")
    }

    @Test("Unreachable cloud: the cloud checks fail as unreachable, with what to check")
    func unreachableCloud() async throws {
        let lab = try await Lab(cloudPort: Harness.freePort())
        defer { Task { await lab.stop() } }
        let r = try await lab.doctor()
        Self.expectOnlyFailure(r, "cloud.events", action: "check the network, DNS and the firewall", alsoFailing: ["cloud.roster"])
        #expect(r.detail("cloud.events").contains("unreachable"), "\(r.detail("cloud.events"))")
        #expect(r.status("cloud.roster") == "fail" && r.detail("cloud.roster").contains("unreachable"), "\(r.detail("cloud.roster"))")
    }

    @Test("A bad Inngest event key: cloud.events fails (key refused), the roster check stays ok, and the key is never printed")
    func badEventKey() async throws {
        let lab = try await Lab(eventKey: "not-the-key")
        defer { Task { await lab.stop() } }
        let r = try await lab.doctor()
        Self.expectOnlyFailure(r, "cloud.events", action: "put the right key in cloud.events_url")
        #expect(r.detail("cloud.events").contains("refused the event key (HTTP 401)"), "\(r.detail("cloud.events"))")
        #expect(r.status("cloud.roster") == "ok", "\(r.detail("cloud.roster"))")
        #expect(!r.output.contains("not-the-key"), "the event key was printed: \(r.output)")
        #expect(lab.stub.receivedEvents().isEmpty)
    }

    @Test("A refused Directus token: cloud.roster fails (token refused), the events check stays ok, and the token is never printed")
    func badDirectusToken() async throws {
        let lab = try await Lab(token: "not-the-token")
        defer { Task { await lab.stop() } }
        let r = try await lab.doctor()
        Self.expectOnlyFailure(r, "cloud.roster", action: "put a valid token in cloud.directus_token")
        #expect(r.detail("cloud.roster").contains("refused the Directus token (HTTP 401)"), "\(r.detail("cloud.roster"))")
        #expect(r.status("cloud.events") == "ok", "\(r.detail("cloud.events"))")
        #expect(!r.output.contains("not-the-token"), "the token was printed: \(r.output)")
    }

    @Test("A database over storage.max_bytes: disk fails (over budget) with what to look at")
    func overBudget() async throws {
        let lab = try await Lab(extra: "storage: {max_bytes: 1048576, min_free_bytes: 0}\n")
        defer { Task { await lab.stop() } }
        let sound = try await lab.doctor()
        #expect(sound.status("disk") == "ok", "\(sound.detail("disk"))")
        let db = lab.daemon.dataDir + "/medic-edge.sqlite"
        let (c, o) = try await Harness.runProgram(
            "/usr/bin/sqlite3", [db, "INSERT INTO kv (key, value) VALUES ('ballast', hex(randomblob(1000000))); PRAGMA wal_checkpoint(TRUNCATE);"],
            timeout: 30)
        try #require(c == 0, "\(o)")
        let r = try await lab.doctor()
        Self.expectOnlyFailure(r, "disk", action: "check the cloud checks")
        #expect(r.detail("disk").contains("over storage.max_bytes"), "\(r.detail("disk"))")
    }

    @Test("A port that accepts TCP but speaks no MQTT: broker fails after 5 s, saying so")
    func brokerNoAnswer() async throws {
        let held = Harness.holdPort()
        defer { close(held.fd) }
        let lab = try await Lab(mqttPort: held.port)
        defer { Task { await lab.stop() } }
        let r = try await lab.doctor()
        Self.expectOnlyFailure(r, "broker", action: "check mqtt.port")
        #expect(r.detail("broker").contains("gave no MQTT answer"), "\(r.detail("broker"))")
    }

    @Test("A proxy in the way of the Event API: a 429 is a warning (retried), a 200 HTML page a failure (not Inngest's answer)")
    func eventsNotInngest() async throws {
        let lab = try await Lab()
        defer { Task { await lab.stop() } }
        // The stub's hostile answers, in order: first 429 (Retry-After: nan), then a 200 HTML page.
        lab.stub.setFaults(CloudStubFaults(mode: .hostileEvents))
        let busy = try await lab.doctor()
        #expect(busy.code == 1 && busy.status("cloud.events") == "warn", "\(busy.output)")
        #expect(busy.detail("cloud.events").contains("HTTP 429"), "\(busy.detail("cloud.events"))")
        let portal = try await lab.doctor()
        Self.expectOnlyFailure(portal, "cloud.events", action: "check cloud.events_url and the network's proxy")
        #expect(portal.detail("cloud.events").contains("not as Inngest's Event API"), "\(portal.detail("cloud.events"))")
    }

    @Test("Another program on http.listen (it answers /healthz with a 404): daemon fails, naming the key")
    func otherProgramOnListen() async throws {
        let lab = try await Lab(httpOnStub: true)
        defer { Task { await lab.stop() } }
        let r = try await lab.doctor()
        Self.expectOnlyFailure(r, "daemon", action: "is another program on http.listen")
    }

    @Test("A running daemon with an old backlog and dead letters: backlog and dead_letters warn with their commands, exit 1")
    func backlogAndDeadLetters() async throws {
        let lab = try await Lab()
        defer { Task { await lab.stop() } }
        // As the daemon would have left them: an event pending for 2 h, one the cloud refused.
        let twoHoursAgo = Time.nowMs() - 2 * 3_600_000
        let (c, o) = try await Harness.runProgram(
            "/usr/bin/sqlite3",
            [
                lab.daemon.dataDir + "/medic-edge.sqlite",
                """
                INSERT INTO outbox (id, name, class, source, data, created_ms, bytes)
                VALUES ('0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a01', 'clinic/checkin.recorded', 0, 'appointment:a1', '{}', \(twoHoursAgo), 2);
                INSERT INTO outbox_dead (seq, id, name, class, source, data, created_ms, bytes, status, reason, failed_ms)
                VALUES (99, '0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a02', 'clinic/checkin.recorded', 0, 'appointment:a2', '{}', \(twoHoursAgo), 2, 400,
                    'refused by the cloud', \(twoHoursAgo));
                """,
            ], timeout: 10)
        try #require(c == 0, "sqlite3: \(o)")
        lab.stub.setFaults(CloudStubFaults(mode: .down, eventsOnly: true))
        try await lab.daemon.start()
        let r = try await lab.doctor()
        #expect(r.code == 1 && r.failing.isEmpty, "\(r.output)")
        #expect(r.status("daemon") == "ok", "\(r.detail("daemon"))")
        #expect(r.status("backlog") == "warn" && r.detail("backlog").contains("medic-edge outbox list"), "\(r.detail("backlog"))")
        #expect(r.status("dead_letters") == "warn" && r.detail("dead_letters").contains("medic-edge outbox retry"), "\(r.detail("dead_letters"))")
    }

    @Test("A daemon whose commits fail (its disk full): daemon fails as unhealthy, with the daemon's reason")
    func daemonUnhealthy() async throws {
        nonisolated(unsafe) var fs: Tmpfs?
        let env = try await Env.start(
            extraConfig: "storage: {min_free_bytes: 0}\n", beforeDaemon: { d in fs = try Tmpfs(at: d.dataDir, bytes: 24 << 20) })
        defer {
            Task {
                await env.stop()
                fs?.unmount()
            }
        }
        try await Self.ownData(env.daemon.dataDir)
        let tmpfs = try #require(fs)
        env.stub?.setFaults(.init(mode: .down, eventsOnly: true))
        tmpfs.fill(tmpfs.path + "/filler", leaving: 0)
        for round in 0..<60 {
            for i in 0..<50 { try DiskFullTests.reading(env, device: "env-f", msgId: "f\(round)-\(i)", pad: 2000) }
            try await Task.sleep(for: .milliseconds(300))
            if (try await env.metric("medic_edge_storage_write_failures_total") ?? 0) > 0 { break }
        }
        try await Harness.waitUntil("/healthz 503", timeout: 30, poll: 0.5) { try await env.daemon.get("/healthz").status == 503 }
        let r = try await Self.doctor(config: env.daemon.configPath)
        Self.expectOnlyFailure(r, "daemon", action: "journalctl -u medic-edge", alsoFailing: ["disk", "database"])
        #expect(r.detail("daemon").contains("unhealthy") && r.detail("daemon").contains("storage"), "\(r.detail("daemon"))")
    }

    @Test("As a user who cannot read the daemon's secrets: broker and cloud checks warn and say why; nothing fails, no secret shown")
    func secretsUnreadable() async throws {
        try #require(geteuid() == 0, "this test runs as root (it runs the doctor as nobody)")
        let lab = try await Lab()
        defer { Task { await lab.stop() } }
        // The secrets as files only root can read (as /run/credentials/… are from a shell).
        let dir = lab.daemon.dir
        for (name, value) in [("mqtt-password", "the-password"), ("events-url", "http://127.0.0.1:1/e/the-key"), ("directus-token", "the-token")] {
            try value.write(toFile: "\(dir)/\(name)", atomically: false, encoding: .utf8)
            chmod("\(dir)/\(name)", 0o600)
        }
        var text = try String(contentsOfFile: lab.daemon.configPath, encoding: .utf8)
        text = text.replacingOccurrences(
            of: "client_id: medic-edge-test}", with: "client_id: medic-edge-test, username: medic-edge, password_file: \(dir)/mqtt-password}")
        text = text.replacingOccurrences(
            of: #"events_url: http://127\.0\.0\.1:[0-9]+/e/test-key"#, with: "events_url_file: \(dir)/events-url", options: .regularExpression)
        text = text.replacingOccurrences(of: "directus_token: test-token", with: "directus_token_file: \(dir)/directus-token")
        try text.write(toFile: lab.daemon.configPath, atomically: true, encoding: .utf8)
        chmod(lab.daemon.configPath, 0o644)
        // nobody plays the service user: the data is theirs.
        let (c, o) = try await Harness.runProgram("/bin/chown", ["-R", "65534:65534", lab.daemon.dataDir], timeout: 10)
        try #require(c == 0, "\(o)")
        let (code, out) = try await Harness.runProgram(
            "/usr/bin/setpriv",
            ["--reuid=65534", "--regid=65534", "--clear-groups", Harness.binaryPath(), "doctor", "--json", "--config", lab.daemon.configPath],
            environment: ["MEDIC_EDGE_DOCTOR_TIMEDATECTL": try Self.fakeTimedatectl("yes")], timeout: 60)
        let j = try JSON.parse(out)
        var checks: [String: (String, String)] = [:]
        for c in j["checks"]?.arrayValue ?? [] {
            checks[c["name"]?.stringValue ?? "?"] = (c["status"]?.stringValue ?? "?", c["detail"]?.stringValue ?? "")
        }
        let r = Report(code: code, output: out, status: j["status"]?.stringValue ?? "?", checks: checks)
        #expect(r.code == 1 && r.failing.isEmpty, "\(r.output)")
        #expect(r.status("data_dir") == "ok" && r.status("database") == "ok", "\(r.output)")
        #expect(r.status("broker") == "warn" && r.detail("broker").contains("login was not checked"), "\(r.detail("broker"))")
        #expect(r.detail("broker").contains("mqtt.password_file") && r.detail("broker").contains("sudo medic-edge doctor"), "\(r.detail("broker"))")
        for name in ["cloud.events", "cloud.roster"] {
            #expect(r.status(name) == "warn" && r.detail(name).contains("cannot read the daemon's secrets"), "\(name): \(r.detail(name))")
        }
        #expect(!out.contains("the-password") && !out.contains("the-key") && !out.contains("the-token"), "a secret was printed: \(out)")
    }

    @Test("Clock unsynchronised (timedatectl says NTPSynchronized=no): clock fails with the NTP action")
    func clockUnsynchronised() async throws {
        let lab = try await Lab()
        defer { Task { await lab.stop() } }
        let r = try await lab.doctor(clock: "no")
        Self.expectOnlyFailure(r, "clock", action: "timedatectl set-ntp true")
        #expect(r.detail("clock").contains("NTPSynchronized=no"), "\(r.detail("clock"))")
    }

    struct DataDirCase: CustomTestStringConvertible, Sendable {
        let label: String
        let breakIt: @Sendable (String) -> Void
        let action: String
        var testDescription: String { label }
    }
    static let dataDirCases: [DataDirCase] = [
        DataDirCase(label: "data dir owned by another user", breakIt: { d in _ = chown(d, 65534, 65534) }, action: "chown -R \(serviceOwner.name): "),
        DataDirCase(label: "data dir mode 0755", breakIt: { d in _ = chmod(d, 0o755) }, action: "chmod 700 "),
        DataDirCase(label: "database file mode 0644", breakIt: { d in _ = chmod(d + "/medic-edge.sqlite", 0o644) }, action: "chmod 600 "),
    ]

    @Test("Data directory with the wrong owner or mode: data_dir fails with the chown/chmod to run", arguments: dataDirCases)
    func dataDirOwnerMode(_ c: DataDirCase) async throws {
        try #require(geteuid() == 0, "this test runs as root (it chowns a folder)")
        let lab = try await Lab()
        defer { Task { await lab.stop() } }
        let sound = try await lab.doctor()
        #expect(sound.status("data_dir") == "ok", "before: \(sound.detail("data_dir"))")
        c.breakIt(lab.daemon.dataDir)
        let r = try await lab.doctor()
        Self.expectOnlyFailure(r, "data_dir", action: c.action)
    }

    @Test("A damaged database: database fails (quick_check) with the restore drill")
    func databaseDamaged() async throws {
        let lab = try await Lab()
        defer { Task { await lab.stop() } }
        let db = lab.daemon.dataDir + "/medic-edge.sqlite"
        let (c, o) = try await Harness.runProgram("/usr/bin/sqlite3", [db, "PRAGMA wal_checkpoint(TRUNCATE)"], timeout: 10)
        try #require(c == 0, "\(o)")
        let size = (try FileManager.default.attributesOfItem(atPath: db)[.size] as? NSNumber)?.intValue ?? 0
        try #require(size >= 4096 * 8, "the database has \(size) bytes")
        // Every page but the first (the header and schema) overwritten.
        let h = try #require(FileHandle(forWritingAtPath: db))
        try h.seek(toOffset: 4096)
        h.write(Data(repeating: 0x5A, count: size - 4096))
        try h.close()
        let r = try await lab.doctor()
        Self.expectOnlyFailure(r, "database", action: "medic-edge restore")
        #expect(r.detail("database").contains("damaged"), "\(r.detail("database"))")
    }

    @Test("Disk nearly full (free space under storage.min_free_bytes): disk fails with what to free")
    func diskNearlyFull() async throws {
        nonisolated(unsafe) var fs: Tmpfs?
        let lab = try await Lab(beforeData: { d in fs = try Tmpfs(at: d.dataDir, bytes: 8 << 20) })
        defer {
            fs?.unmount()
            Task { await lab.stop() }
        }
        let sound = try await lab.doctor()
        // 8 MiB is far below the default min_free_bytes (256 MiB): lower it to see "ok" first.
        #expect(sound.status("disk") == "fail", "\(sound.detail("disk"))")
        let text = try String(contentsOfFile: lab.daemon.configPath, encoding: .utf8)
        try (text + "storage: {min_free_bytes: 2097152, max_bytes: 4194304}\n").write(
            toFile: lab.daemon.configPath, atomically: true, encoding: .utf8)
        let roomy = try await lab.doctor()
        #expect(roomy.status("disk") == "ok", "\(roomy.detail("disk"))")
        fs?.fill(lab.daemon.dataDir + "/filler", leaving: 1 << 20)
        let r = try await lab.doctor()
        Self.expectOnlyFailure(r, "disk", action: "make room on that file system")
        #expect(r.detail("disk").contains("disk nearly full"), "\(r.detail("disk"))")
    }

    @Test("The console certificate: fails in its last 7 days, warns in its last 30, ok beyond")
    func certificateExpiring() async throws {
        let dir = Harness.tempDir("doctor-cert")
        func cert(days: Int) async throws -> String {
            let (c, o) = try await Harness.runProgram(
                "/usr/bin/openssl",
                [
                    "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", dir + "/key-\(days).pem",
                    "-out", dir + "/cert-\(days).pem", "-days", String(days), "-subj", "/CN=localhost",
                ], timeout: 30)
            try #require(c == 0, "openssl: \(o)")
            return dir + "/cert-\(days).pem"
        }
        // Not a certificate at all.
        try "not a certificate\n".write(toFile: dir + "/garbage.pem", atomically: true, encoding: .utf8)
        let garbage = try await Lab(httpExtra: [
            "tls_listen: \"127.0.0.1:\(Harness.freePort())\"", "cert_file: \(dir)/garbage.pem", "key_file: \(dir)/garbage.pem",
        ])
        let g = try await garbage.doctor()
        await garbage.stop()
        Self.expectOnlyFailure(g, "certificate", action: "re-run install.sh to reissue it")
        for (days, expected) in [(3, "fail"), (20, "warn"), (400, "ok")] {
            let certFile = try await cert(days: days)
            let lab = try await Lab(httpExtra: [
                "tls_listen: \"127.0.0.1:\(Harness.freePort())\"", "cert_file: \(certFile)", "key_file: \(dir)/key-\(days).pem",
            ])
            let r = try await lab.doctor()
            await lab.stop()
            #expect(r.status("certificate") == expected, "\(days) days: \(r.detail("certificate"))")
            if expected == "fail" {
                Self.expectOnlyFailure(r, "certificate", action: "re-run install.sh to reissue it")
                #expect(r.detail("certificate").contains("in \(days) days"), "\(r.detail("certificate"))")
            }
        }
    }

    @Test("Without a daemon: daemon warns (not fails) with systemctl start; a broken config fails alone with its key")
    func noDaemonAndBadConfig() async throws {
        let lab = try await Lab()
        defer { Task { await lab.stop() } }
        let r = try await lab.doctor()
        #expect(r.code == 1, "\(r.output)")
        #expect(r.status("daemon") == "warn" && r.detail("daemon").contains("systemctl start medic-edge"), "\(r.detail("daemon"))")
        #expect(r.failing.isEmpty, "\(r.output)")
        // The key was checked with an empty batch: the cloud received no event.
        #expect(r.status("cloud.events") == "ok", "\(r.detail("cloud.events"))")
        #expect(lab.stub.receivedEvents().isEmpty, "\(lab.stub.receivedEvents().count) event(s) sent")

        let bad = Harness.tempDir("doctor-bad") + "/config.yaml"
        try "site_id: Not A Site\n".write(toFile: bad, atomically: true, encoding: .utf8)
        let b = try await Self.doctor(config: bad)
        #expect(b.code == 2 && b.status("config") == "fail" && b.detail("config").contains("site_id"), "\(b.output)")
    }
}
