import CloudStub
import EdgeCore
import EdgeTestSupport
import Foundation
import Logging
import Synchronization
import Testing

/// `medic-edge backup` and `restore` (CONTRACT §7) against the real daemon, a real mosquitto,
/// the cloud stub and SQLite's own `sqlite3` tool to read what was written.
@Suite("Backup and restore", .serialized)
struct BackupTests {
    final class Flag: Sendable {
        private let value = Mutex(false)
        func set() { value.withLock { $0 = true } }
        var isSet: Bool { value.withLock { $0 } }
    }

    static func sqlite(_ db: String, _ sql: String) async throws -> [String] {
        let (code, out) = try await Harness.runProgram("/usr/bin/sqlite3", ["-readonly", db, sql], timeout: 30)
        try #require(code == 0, "sqlite3 \(sql): \(out)")
        return out.split(separator: "\n").map(String.init)
    }

    static func mode(_ path: String) -> Int {
        ((try? FileManager.default.attributesOfItem(atPath: path))?[.posixPermissions] as? NSNumber)?.intValue ?? -1
    }

    @Test(
        "A backup under load is one consistent snapshot (integrity ok, every acked reading in it); restored, every outbox row keeps its id"
    )
    func backupUnderLoadThenRestore() async throws {
        let env = try await Env.start()
        let stub = try #require(env.stub)
        // The cloud down: the outbox keeps every event, so the backup holds them.
        stub.setFaults(CloudStubFaults(mode: .down))
        let device = "env-b"
        for i in 0..<2000 { try DiskFullTests.reading(env, device: device, msgId: "p-\(i)", pad: 400) }
        try await Harness.waitUntil("2000 readings acked", timeout: 60, poll: 0.05) { DiskFullTests.acked(env, device: device).count >= 2000 }

        // Load: readings keep coming while the backup runs.
        let stop = Flag()
        let loader = Task.detached { () -> Int in
            var i = 0
            while !stop.isSet {
                try? DiskFullTests.reading(env, device: device, msgId: "l-\(i)", pad: 400)
                i += 1
                if i % 20 == 0 { try? await Task.sleep(for: .milliseconds(10)) }
            }
            return i
        }
        try await Task.sleep(for: .seconds(1))
        let ackedBefore = Set(DiskFullTests.acked(env, device: device).keys)
        let file = Harness.tempDir("backup") + "/during-load.sqlite"
        let (code, out) = try await env.cli(["backup", file])
        let ackedAfter = Set(DiskFullTests.acked(env, device: device).keys)
        try await Task.sleep(for: .milliseconds(500))
        stop.set()
        let sent = await loader.value
        try await Harness.waitUntil("the load acked", timeout: 60, poll: 0.05) { DiskFullTests.acked(env, device: device).count >= 2000 + sent }
        let live = try await Self.sqlite(
            env.daemon.dataDir + "/medic-edge.sqlite", "SELECT count(*) FROM outbox WHERE name = 'integration/iot.event'")
        await env.stop()

        #expect(code == 0 && out.contains("integrity_check ok"), "backup: \(code) \(out)")
        #expect(ackedAfter.count > ackedBefore.count, "the daemon acked nothing while the backup ran (\(ackedBefore.count) → \(ackedAfter.count))")
        #expect(Self.mode(file) == 0o600, "mode \(String(Self.mode(file), radix: 8))")
        #expect(!FileManager.default.fileExists(atPath: file + ".tmp") && !FileManager.default.fileExists(atPath: file + "-wal"))
        #expect(try await Self.sqlite(file, "PRAGMA integrity_check") == ["ok"])
        // One transaction's state: the trigger-kept figures agree with the rows.
        #expect(
            try await Self.sqlite(
                file, "SELECT (SELECT clinical + telemetry FROM outbox_figures) = (SELECT count(*) FROM outbox)") == ["1"])
        var backedUp: [String: String] = [:]  // msg_id → event id
        for line in try await Self.sqlite(
            file,
            "SELECT json_extract(data, '$.payload.msg_id'), id FROM outbox WHERE name = 'integration/iot.event' "
                + "AND json_extract(data, '$.device_id') = '\(device)'"
        ) {
            let parts = line.split(separator: "|").map(String.init)
            if parts.count == 2 { backedUp[parts[0]] = parts[1] }
        }
        let missing = ackedBefore.subtracting(backedUp.keys)
        #expect(missing.isEmpty, "\(missing.count) readings acked before the backup began are not in it, e.g. \(missing.prefix(3))")
        #expect(backedUp.count < Int(live.first ?? "0") ?? 0, "the backup (\(backedUp.count) readings) is not a snapshot taken during the load")

        // A fresh appliance, restored from the backup, against a cloud that is up.
        let broker = try Broker()
        try await broker.start()
        var logger = Logger(label: "stub")
        logger.logLevel = .error
        let cloud = CloudStub(seed: ClinicDay().seed, logger: logger)
        let port = try await cloud.start()
        let fresh = try DaemonProcess(configYAML: DaemonProcess.standardConfig(mqttPort: broker.port, cloudPort: port))
        let (rc, rout) = try await DaemonProcess.runCLI(["restore", file, "--config", fresh.configPath])
        #expect(rc == 0 && rout.contains("there was no database before"), "restore: \(rc) \(rout)")
        try await fresh.start()
        let wanted = Set(backedUp.values)
        do {
            try await Harness.waitUntil("every restored event at the cloud", timeout: 90, poll: 0.2) {
                wanted.isSubset(of: Set(cloud.receivedEvents().compactMap { $0.asJSON["id"]?.stringValue }))
            }
        } catch {
            Issue.record("not every restored event reached the cloud: \(error)")
        }
        let readings = cloud.receivedEvents().map(\.asJSON).filter {
            $0["name"]?.stringValue == "integration/iot.event" && $0["data"]?["device_id"]?.stringValue == device
        }
        var newIds = 0
        for e in readings {
            let msgId = e["data"]?["payload"]?["msg_id"]?.stringValue ?? "?"
            if backedUp[msgId] != e["id"]?.stringValue { newIds += 1 }
        }
        #expect(newIds == 0, "\(newIds) restored reading(s) were sent under a new id")
        #expect(Set(readings.compactMap { $0["id"]?.stringValue }) == wanted)
        _ = await fresh.terminate()
        try? await cloud.stop()
        await broker.stop()
    }

    @Test(
        "restore refuses while the daemon runs (its lock) and a file that is not a backup; then restores, the old database kept aside"
    )
    func restoreRefusedWhileRunning() async throws {
        let env = try await Env.start(cloud: false)
        let data = env.daemon.dataDir
        let db = data + "/medic-edge.sqlite"
        let file = Harness.tempDir("backup") + "/b.sqlite"
        var (code, out) = try await env.cli(["backup", file])
        try #require(code == 0, "backup: \(out)")
        // Never over the live database, nor into a folder that is not there.
        (code, out) = try await env.cli(["backup", data + "/../data/medic-edge.sqlite"])
        #expect(code == 1 && out.contains("is the database itself"), "\(code) \(out)")
        (code, out) = try await env.cli(["backup", data + "/no-such-folder/b.sqlite"])
        #expect(code == 1 && out.contains("does not exist"), "\(code) \(out)")
        func inode() -> Int { ((try? FileManager.default.attributesOfItem(atPath: db))?[.systemFileNumber] as? NSNumber)?.intValue ?? -1 }
        func aside() -> [String] { ((try? FileManager.default.contentsOfDirectory(atPath: data)) ?? []).filter { $0.hasPrefix("pre-restore-") } }
        let before = inode()

        (code, out) = try await env.cli(["restore", file])
        #expect(code == 1, "restore while running: \(code) \(out)")
        #expect(out.contains("the daemon is running (pid \(env.daemon.pid ?? -1))") && out.contains("systemctl stop medic-edge"), "\(out)")
        #expect(inode() == before && aside().isEmpty, "the database was touched: \(aside())")
        // A second daemon on the same data stops at once, naming the lock.
        let (second, secondOut) = try await DaemonProcess.runCLI(["run", "--config", env.daemon.configPath], timeout: 20)
        #expect(second == 1 && secondOut.contains("is in use"), "second daemon: \(second) \(secondOut)")

        _ = await env.daemon.terminate()
        let junk = Harness.tempDir("backup") + "/junk.sqlite"
        try Data(repeating: 0x41, count: 8192).write(to: URL(fileURLWithPath: junk))
        (code, out) = try await env.cli(["restore", junk])
        #expect(code == 1 && out.contains("not a usable backup"), "junk: \(code) \(out)")
        #expect(inode() == before && aside().isEmpty)

        (code, out) = try await env.cli(["restore", file])
        #expect(code == 0 && out.contains("kept as"), "restore: \(code) \(out)")
        #expect(aside().contains { $0.hasSuffix(".sqlite") }, "\(aside())")
        #expect(inode() != before && Self.mode(db) == 0o600)
        try await env.daemon.start()
        #expect(try await env.daemon.get("/healthz").status == 200)
        await env.stop()
    }

    @Test("backup --dir --keep N: named by UTC time, 0600 in a 0700 folder, only the newest N of its own files kept")
    func rotation() async throws {
        let daemon = try DaemonProcess(configYAML: DaemonProcess.standardConfig(mqttPort: 1))
        var (code, out) = try await DaemonProcess.runCLI(["status", "--config", daemon.configPath])
        try #require(code == 0, "\(out)")
        let dir = Harness.tempDir("backups") + "/nightly"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        chmod(dir, 0o700)
        try "keep me".write(toFile: dir + "/notes.txt", atomically: true, encoding: .utf8)
        var written: [String] = []
        for _ in 0..<3 {
            (code, out) = try await DaemonProcess.runCLI(["backup", "--dir", dir, "--keep", "2", "--config", daemon.configPath])
            #expect(code == 0, "\(out)")
            if let line = out.split(separator: "\n").first(where: { $0.hasPrefix("backup written: ") }) {
                written.append((String(line.dropFirst("backup written: ".count).split(separator: " ").first ?? "") as NSString).lastPathComponent)
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        #expect(written.count == 3 && written == written.sorted(), "\(written)")
        let left = try FileManager.default.contentsOfDirectory(atPath: dir).sorted()
        #expect(left == (Array(written.suffix(2)) + ["notes.txt"]).sorted(), "\(left)")
        for f in written.suffix(2) { #expect(Self.mode(dir + "/" + f) == 0o600) }
        #expect(out.contains("removed 1 older backup(s): \(written[0])"), "\(out)")
    }

    @Test("install.sh installs the nightly backup timer (Persistent, randomized) and its service, whose command works on the installed config")
    func installedTimer() async throws {
        let root = try await InstalledBoxTests.install()
        let timer = try String(contentsOfFile: root + "/etc/systemd/system/medic-edge-backup.timer", encoding: .utf8)
        for line in ["OnCalendar=*-*-* 02:30:00", "Persistent=true", "RandomizedDelaySec=", "WantedBy=timers.target"] {
            #expect(timer.contains(line), "the timer lacks \(line)")
        }
        let unit = try String(contentsOfFile: root + "/etc/systemd/system/medic-edge-backup.service", encoding: .utf8)
        #expect(unit.contains("Type=oneshot") && unit.contains("User=medic-edge"), "\(unit)")
        #expect(Self.mode(root + "/var/lib/medic-edge/backups") == 0o700)
        let exec = try #require(unit.split(separator: "\n").first { $0.hasPrefix("ExecStart=") }).dropFirst("ExecStart=".count)
        var args = exec.split(separator: " ").map(String.init)
        #expect(args.first == "/usr/local/bin/medic-edge" && args.contains("--keep"), "\(exec)")

        // The unit's own command line, on the installed config (its paths under the test root).
        let data = Harness.tempDir("installed-data") + "/data"
        let config = try InstalledBoxTests.installedConfig(root: root, dataDir: data)
        var (code, out) = try await DaemonProcess.runCLI(["status", "--config", config])
        try #require(code == 0, "\(out)")
        let backups = Harness.tempDir("installed-backups") + "/backups"
        args = args.dropFirst().map { a in
            a == "/etc/medic-edge/config.yaml" ? config : a == "/var/lib/medic-edge/backups" ? backups : a
        }
        (code, out) = try await DaemonProcess.runCLI(args)
        #expect(code == 0 && out.contains("integrity_check ok"), "\(args): \(out)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: backups).count == 1)
    }
}
