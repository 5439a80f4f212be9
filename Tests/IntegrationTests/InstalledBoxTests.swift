import CloudStub
import EdgeCore
import EdgeTestSupport
import Foundation
import Logging
import Testing

/// The box as installed (issue 12, CONTRACT §5 "Operator commands read no secret", "Bounds"):
/// the real installer writes the config, the real binary runs against it.
@Suite("The box as installed", .serialized)
struct InstalledBoxTests {
    /// The repository checkout (this file is Tests/IntegrationTests/InstalledBoxTests.swift).
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

    /// Runs provisioning/install.sh into a temporary root (its test mode: no apt-get, useradd,
    /// systemctl) with a cloud and the LAN console, and returns that root.
    static func install() async throws -> String {
        let root = Harness.tempDir("installed-root")
        let (code, out) = try await Harness.runProgram(
            "/bin/bash",
            [
                repo + "/provisioning/install.sh", "--destdir", root, "--site-id", "test-site",
                "--tenant-id", "6f1c2a9e-0000-4000-8000-000000000001",
                "--events-url", "https://inn.gs/e/never-sent-key", "--directus-url", "https://api.example.com",
                "--directus-token", "never-sent-token", "--lan-console",
            ], timeout: 120)
        try #require(code == 0, "install.sh failed: \(out.suffix(1500))")
        return root
    }

    /// The generated config.yaml as it is on the appliance, with only the test install's
    /// DESTDIR put in front of its /etc paths and the data directory moved into a temporary
    /// folder. Secrets stay where the installer put them: /run/credentials/medic-edge.service,
    /// which a shell cannot read (and which does not exist outside the running service).
    static func installedConfig(root: String, dataDir: String) throws -> String {
        let generated = try String(contentsOfFile: root + "/etc/medic-edge/config.yaml", encoding: .utf8)
        #expect(generated.contains("events_url_file: /run/credentials/medic-edge.service/events-url"))
        #expect(generated.contains("directus_token_file: /run/credentials/medic-edge.service/directus-token"))
        #expect(generated.contains("password_file: /run/credentials/medic-edge.service/mqtt-password"))
        #expect(generated.contains("key_file: /run/credentials/medic-edge.service/console-key"))
        let text =
            generated
            .replacingOccurrences(of: "data_dir: /var/lib/medic-edge", with: "data_dir: \(dataDir)")
            .replacingOccurrences(of: " /etc/medic-edge/", with: " \(root)/etc/medic-edge/")
        let path = Harness.tempDir("installed-config") + "/config.yaml"
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    static func cli(_ args: [String], config: String, stdin: String? = nil) async throws -> (Int32, String) {
        try await DaemonProcess.runCLI(args + ["--config", config], stdin: stdin, timeout: 30)
    }

    static func sqlite(_ db: String, _ sql: String) async throws {
        let (code, out) = try await Harness.runProgram("/usr/bin/sqlite3", [db, sql], timeout: 10)
        try #require(code == 0, "sqlite3: \(out)")
    }

    @Test("Every operator command works on the installer's config with its secrets unreadable; run stops naming the secret")
    func operatorCommandsOnInstalledConfig() async throws {
        let secret = "/run/credentials/medic-edge.service/mqtt-password"
        try #require(!FileManager.default.isReadableFile(atPath: secret), "this test needs \(secret) unreadable, as from a shell")
        let root = try await Self.install()
        let data = Harness.tempDir("installed-data") + "/data"
        let config = try Self.installedConfig(root: root, dataDir: data)

        // staff add (password on standard input), list.
        var (code, out) = try await Self.cli(["staff", "add", "recepcao"], config: config, stdin: "senha-da-recepcao\n")
        #expect(code == 0 && out.contains("staff account \"recepcao\" created"), "staff add: \(code) \(out)")
        (code, out) = try await Self.cli(["staff", "list"], config: config)
        #expect(code == 0 && out.contains("recepcao"), "staff list: \(code) \(out)")

        // A dead letter and a device reject, as the daemon would have written them.
        let db = data + "/medic-edge.sqlite"
        try await Self.sqlite(
            db,
            """
            INSERT INTO outbox_dead (seq, id, name, class, source, data, created_ms, bytes, status, reason, failed_ms)
            VALUES (1, '0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b', 'clinic/checkin.recorded', 0, 'appointment:a1', '{}', 1764421331000, 2, 400,
                'refused by the cloud', 1764421332000);
            INSERT INTO rejects (received_ms, topic, kind, device_id, msg_id, reason, detail)
            VALUES (1764421333000, 'clinic/test-site/room/sala-2/environment/env-1', 'environment', 'env-1', NULL, 'out_of_range',
                'temperature_c 999');
            """)

        (code, out) = try await Self.cli(["status"], config: config)
        #expect(code == 0, "status: \(out)")
        #expect(out.contains("site:            test-site") && out.contains("dead letters:    1") && out.contains("device rejects:  1"), "\(out)")
        #expect(out.contains("cloud:           configured"), "\(out)")
        (code, out) = try await Self.cli(["outbox", "dead-letters"], config: config)
        #expect(code == 0 && out.contains("0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b") && out.contains("HTTP 400"), "outbox dead-letters: \(out)")
        (code, out) = try await Self.cli(["rejects"], config: config)
        #expect(code == 0 && out.contains("env-1") && out.contains("out_of_range"), "rejects: \(out)")
        (code, out) = try await Self.cli(["outbox", "retry"], config: config)
        #expect(code == 0 && out.contains("1 event(s) re-queued"), "outbox retry: \(out)")
        (code, out) = try await Self.cli(["outbox", "list"], config: config)
        #expect(code == 0 && out.contains("clinic/checkin.recorded") && out.contains("clinical"), "outbox list: \(out)")
        (code, out) = try await Self.cli(["outbox", "dead-letters"], config: config)
        #expect(code == 0 && out.contains("(no dead letters)"), "outbox dead-letters after retry: \(out)")
        (code, out) = try await Self.cli(["staff", "remove", "recepcao"], config: config)
        #expect(code == 0 && out.contains("removed"), "staff remove: \(out)")
        (code, out) = try await Self.cli(["staff", "list"], config: config)
        #expect(code == 0 && out.contains("no staff accounts"), "staff list after remove: \(out)")

        // run reads the secrets: the first missing one stops it, in one line naming its key.
        (code, out) = try await Self.cli(["run"], config: config)
        #expect(code == 2, "run: \(code) \(out)")
        #expect(out == "medic-edge: config error: mqtt.password_file: cannot read secret file \(secret) (missing or not readable)\n", "\(out)")
    }

    struct Absurd: CustomTestStringConvertible, Sendable {
        let key: String
        var rosterSyncSeconds: Double = 0.3
        var extra = ""
        var testDescription: String { key }
    }
    /// Values the old parser accepted (a lower bound only) that trapped the running daemon in
    /// an integer conversion: the roster loop's sleep after a pull (`Int(s * 1000)`), the
    /// no-show check (`Int64(minutes * 60_000)`) and its sleep.
    static let absurd: [Absurd] = [
        Absurd(key: "cloud.roster_sync_seconds", rosterSyncSeconds: 1e300),
        Absurd(key: "noshow.grace_minutes", extra: "noshow: {grace_minutes: 1e300}\n"),
        Absurd(key: "noshow.check_interval_seconds", extra: "noshow: {check_interval_seconds: 1e300}\n"),
    ]

    @Test("An absurd number once accepted stops start-up with one line naming its key, instead of a trap later", arguments: absurd)
    func absurdNumberStopsStartup(_ c: Absurd) async throws {
        let broker = try Broker()
        try await broker.start()
        var logger = Logger(label: "stub"); logger.logLevel = .error
        let stub = CloudStub(seed: ClinicDay().seed, logger: logger)
        let cloudPort = try await stub.start()
        let yaml = DaemonProcess.standardConfig(mqttPort: broker.port, cloudPort: cloudPort, rosterSyncSeconds: c.rosterSyncSeconds, extra: c.extra)
        let daemon = try DaemonProcess(configYAML: yaml)
        try await daemon.start(waitReady: false)
        // A config error ends the process at once; the old code ran on until it trapped
        // (or, for a sleep it survived, kept running): 15 s bounds both.
        let exited: Bool
        do {
            try await Harness.waitUntil("the daemon to exit", timeout: 15, poll: 0.05) { !(daemon.process?.isRunning ?? false) }
            exited = true
        } catch { exited = false }
        let status = await daemon.terminate(timeout: 12)
        try? await stub.stop()
        await broker.stop()
        #expect(exited, "the daemon accepted \(c.key) and kept running; log: \(daemon.log().suffix(600))")
        #expect(status == 2, "exit status \(String(describing: status)) (2 is a config error); log: \(daemon.log().suffix(600))")
        let lines = daemon.log().split(separator: "\n")
        #expect(
            lines.count == 1 && lines.first?.hasPrefix("medic-edge: config error: \(c.key): must be a number from ") == true,
            "log: \(daemon.log().suffix(600))")
    }
}
