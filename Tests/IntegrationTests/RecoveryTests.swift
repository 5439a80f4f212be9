import CloudStub
import EdgeCore
@testable import EdgeStore
import EdgeTestSupport
import Foundation
import GRDB
import Testing

// CONTRACT §7, the start-up check: a database damaged while the daemon was stopped never stops
// it. Each test: a synced clinic day, a check-in whose event the cloud has not taken yet, a
// staff account and 4,000 telemetry events waiting in the outbox (most of the file); the
// daemon stopped; the file damaged one way; the daemon started again with the cloud back.

/// What a damage test left for the daemon to recover.
struct DamagedClinic {
    let env: Env
    /// Every outbox event id before the damage.
    let outboxIds: Set<String>
    let checkinEventId: String
}

extension RecoveryTests {
    static let password = "senha-da-recepcao-1"

    /// A synced day, a check-in, a staff account, 4,000 telemetry events in the outbox; the
    /// daemon stopped cleanly (no WAL left).
    static func prepare() async throws -> DamagedClinic {
        let day = rosterClinicDay()
        let env = try await Env.start(day: day)
        let stub = try #require(env.stub)
        #expect(try await env.rosterCounts().patients == 12)
        stub.setFaults(CloudStubFaults(mode: .down, eventsOnly: true))
        let result = try await env.scan(day.patients[0].qr, scanId: "s-recovery-1")
        #expect(result["outcome"]?.stringValue == "checked_in", "scan: \(result)")
        let (code, out) = try await DaemonProcess.runCLI(["staff", "add", "recepcao", "--config", env.daemon.configPath], stdin: password + "\n")
        #expect(code == 0, "staff add: \(out)")
        _ = await env.daemon.terminate(timeout: 12)

        let db = try AppDatabase.open(dataDir: env.daemon.dataDir)
        // A fridge's log: 500 readings 5 minutes apart, before the events (early in the file).
        let t0 = Time.nowMs() - 500 * 300_000
        try await db.write { tx in
            for i in 0..<500 { try tx.recordColdReading(room: "vacinas", atMs: t0 + Int64(i) * 300_000, device: "fridge-1", tempC: 4.5) }
            try tx.heardColdSensor(room: "vacinas", device: "fridge-1", readingMs: t0 + 499 * 300_000, heardMs: t0 + 499 * 300_000)
        }
        let filler = String(repeating: "x", count: 300)
        let events = (0..<4000).map { i in
            Ledger.Pending(
                name: "integration/iot.event", eventClass: .telemetry, source: "device:env-\(i % 7)",
                data: #"{"tenant_id":"6f1c2a9e-0000-4000-8000-000000000001","n":\#(i),"pad":"\#(filler)"}"#,
                nowMs: Time.nowMs())
        }
        try await db.write { tx in try tx.enqueueAll(events) }
        let (ids, checkinId) = try await db.writer.read { d in
            (
                Set(try String.fetchAll(d, sql: "SELECT id FROM outbox")),
                try String.fetchOne(d, sql: "SELECT id FROM outbox WHERE name = 'clinic/checkin.recorded'")
            )
        }
        try await db.checkpointAndClose()
        return DamagedClinic(env: env, outboxIds: ids, checkinEventId: try #require(checkinId))
    }

    /// Starts the daemon on the damaged file with the cloud back; checks what every damage must
    /// give: healthy, the file kept aside, the report at the cloud, carried events delivered with
    /// their ids, the staff account signing in, the roster pulled again. Returns the report.
    static func recover(_ c: DamagedClinic) async throws -> JSON {
        let env = c.env, stub = try #require(env.stub)
        stub.clearEvents()
        stub.setFaults(CloudStubFaults())
        try await env.daemon.start()  // returns once /healthz is 200
        #expect(try await env.daemon.get("/healthz").status == 200)
        let files = try FileManager.default.contentsOfDirectory(atPath: env.daemon.dataDir)
        let aside = files.filter { $0.hasPrefix("corrupt-") && $0.hasSuffix(".sqlite") }
        #expect(aside.count == 1, "files: \(files)")

        let report = try #require(try await env.waitForCloudEvents("integration/edge.storage_recovered", count: 1).first?["data"])
        #expect(report["moved_to"]?.stringValue == aside.first)
        #expect(report["site_id"]?.stringValue == "test-site")
        #expect(report["tenant_id"]?.stringValue == "6f1c2a9e-0000-4000-8000-000000000001")
        let carriedOutbox = Int(report["carried"]?["outbox"]?.doubleValue ?? -1)
        #expect(carriedOutbox > 0 && carriedOutbox <= c.outboxIds.count, "report: \(report)")
        #expect(report["carried"]?["staff"]?.doubleValue == 1, "report: \(report)")
        #expect(report["carried"]?["checkins"]?.doubleValue == 1, "report: \(report)")
        #expect(report["carried"]?["coldchain_readings"]?.doubleValue ?? 0 > 0, "report: \(report)")
        #expect(report["carried"]?["coldchain_sensors"]?.doubleValue == 1, "report: \(report)")
        #expect(env.daemon.log().contains("storage: the database was damaged"))

        // Every carried event reaches the cloud with its first id; no other old id appears.
        try await Harness.waitUntil("the carried events at the cloud", timeout: 30) {
            env.cloudEvents().filter { c.outboxIds.contains($0["id"]?.stringValue ?? "") }.count >= carriedOutbox
        }
        let delivered = env.cloudEvents().compactMap { $0["id"]?.stringValue }.filter { c.outboxIds.contains($0) }
        #expect(Set(delivered).count == carriedOutbox)
        #expect(delivered.contains(c.checkinEventId))

        // The staff account still signs in; the roster is back.
        let login = try await ConsoleTests.login(env, "recepcao", password)
        #expect(login.status == 200, "login: \(login.status) \(login.text)")
        try await Harness.waitUntil("the roster pulled again", timeout: 15) { try await env.rosterCounts().patients == 12 }
        #expect(try await env.rosterCounts().appointments == 12)
        return report
    }

    static func file(_ c: DamagedClinic) -> String { c.env.daemon.dataDir + "/" + AppDatabase.fileName }
}

@Suite("Start-up check: a damaged database never stops the daemon", .serialized)
struct RecoveryTests {
    @Test("4 KiB of 0xFF over the middle page: moved aside, what reads is carried, the report says so")
    func bytesOverwritten() async throws {
        let c = try await Self.prepare()
        defer { Task { await c.env.stop() } }
        let path = Self.file(c)
        let size = try #require(try FileManager.default.attributesOfItem(atPath: path)[.size] as? NSNumber).int64Value
        let h = try #require(FileHandle(forUpdatingAtPath: path))
        try h.seek(toOffset: UInt64(size / 2 / 4096 * 4096))
        h.write(Data(repeating: 0xFF, count: 4096))
        try h.close()
        let report = try await Self.recover(c)
        #expect(report["wal_set_aside"] == .null)
    }

    @Test("The file cut at 60 %: the first pages' rows carried, the rest reported lost")
    func truncated() async throws {
        let c = try await Self.prepare()
        defer { Task { await c.env.stop() } }
        let path = Self.file(c)
        let size = try #require(try FileManager.default.attributesOfItem(atPath: path)[.size] as? NSNumber).int64Value
        #expect(truncate(path, off_t(size * 6 / 10)) == 0)
        let report = try await Self.recover(c)
        let carried = Int(report["carried"]?["outbox"]?.doubleValue ?? -1)
        #expect(carried < c.outboxIds.count, "report: \(report)")
        let lost = report["lost"]?["outbox"]?.doubleValue ?? 0
        let unreadable = report["unreadable"]?.arrayValue?.compactMap(\.stringValue) ?? []
        #expect(lost > 0 || unreadable.contains("outbox"), "report: \(report)")
    }

    @Test("Another database's WAL beside the file: the WAL set aside unread, every row of the file carried, none of the other's")
    func foreignWAL() async throws {
        let c = try await Self.prepare()
        defer { Task { await c.env.stop() } }
        // Another appliance's database, its WAL copied while it is open (not checkpointed).
        let otherDir = Harness.tempDir("other") + "/data"
        let (other, _) = try AppDatabase.openChecked(dataDir: otherDir, nowMs: Time.nowMs())
        let events = (0..<3000).map { i in
            Ledger.Pending(
                name: "integration/iot.event", eventClass: .telemetry, source: "device:other-\(i % 5)",
                data: #"{"tenant_id":"00000000-0000-4000-8000-00000000beef","other":\#(i)}"#, nowMs: Time.nowMs())
        }
        try await other.write { tx in try tx.enqueueAll(events) }
        let otherIds = try await other.writer.read { Set(try String.fetchAll($0, sql: "SELECT id FROM outbox")) }
        let wal = otherDir + "/" + AppDatabase.fileName + "-wal"
        #expect((try FileManager.default.attributesOfItem(atPath: wal)[.size] as? NSNumber)?.intValue ?? 0 > 0)
        let path = Self.file(c)
        try? FileManager.default.removeItem(atPath: path + "-wal")
        try? FileManager.default.removeItem(atPath: path + "-shm")
        try FileManager.default.copyItem(atPath: wal, toPath: path + "-wal")
        try await other.checkpointAndClose()

        let report = try await Self.recover(c)
        #expect(report["wal_set_aside"]?.stringValue?.hasSuffix(".wal") == true, "report: \(report)")
        #expect(Int(report["carried"]?["outbox"]?.doubleValue ?? -1) == c.outboxIds.count, "report: \(report)")
        #expect(report["lost"] == .object([:]), "report: \(report)")
        #expect(report["carried"]?["coldchain_readings"]?.doubleValue == 500, "report: \(report)")
        #expect(!c.env.cloudEvents().contains { otherIds.contains($0["id"]?.stringValue ?? "") })
    }
}
