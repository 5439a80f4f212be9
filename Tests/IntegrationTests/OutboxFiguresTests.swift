import EdgeCore
import EdgeHTTPClient
@testable import EdgeStore
import EdgeTestSupport
import Foundation
import GRDB
import Logging
@testable import MedicEdge
import Testing

/// The outbox figures the status API and metrics read (CONTRACT §4: no table scanned per
/// request) are one row kept by triggers (migration v3-outbox-figures). Every path that writes
/// the outbox or its dead letters must keep them equal to what counting the tables says.
@Suite("Outbox figures kept by triggers")
struct OutboxFiguresTests {
    /// (clinical, telemetry, oldest, dead) by counting the tables.
    static func counted(_ store: AppDatabase) throws -> [Int64?] {
        try store.writer.read { db in
            [
                try Int64.fetchOne(db, sql: "SELECT count(*) FROM outbox WHERE class = 0"),
                try Int64.fetchOne(db, sql: "SELECT count(*) FROM outbox WHERE class = 1"),
                try Int64.fetchOne(db, sql: "SELECT created_ms FROM outbox ORDER BY seq LIMIT 1"),
                try Int64.fetchOne(db, sql: "SELECT count(*) FROM outbox_dead"),
            ]
        }
    }
    static func kept(_ store: AppDatabase) throws -> [Int64?] {
        let s = try store.outboxStats()
        return [Int64(s.pendingClinical), Int64(s.pendingTelemetry), s.oldestPendingMs, Int64(s.deadLetters)]
    }

    @Test(
        "Given every outbox write path (batched and single inserts, delivery, dead letters, eviction, purge, retry twice), figures equal the counts"
    )
    func figuresFollowEveryPath() async throws {
        let dir = Harness.tempDir("figures")
        let store = try AppDatabase.open(dataDir: dir + "/data")
        var config = EdgeConfig()
        config.dataDir = dir + "/data"
        let uplink = Uplink(
            config: config, db: store, http: CurlHTTPClient(label: "unused"), metrics: EdgeMetrics(bootstrap: false),
            state: EdgeState(cloudConfigured: true), logger: Logger(label: "test"))
        var steps: [String] = []
        func check(_ step: String) throws {
            steps.append(step)
            let kept = try Self.kept(store), counted = try Self.counted(store)
            #expect(kept == counted, "after \(steps.joined(separator: ", ")): figures \(kept), counted \(counted)")
        }
        let t0: Int64 = 1_800_000_000_000
        try await store.write { tx in
            try tx.enqueueAll(
                (0..<70).map { i in
                    Ledger.Pending(
                        name: "integration/iot.event", eventClass: i % 3 == 0 ? .clinical : .telemetry, source: "device:d\(i % 4)",
                        data: #"{"n":\#(i)}"#, nowMs: t0 + Int64(i))
                })
            _ = try tx.enqueue(name: "clinic/checkin.recorded", eventClass: .clinical, source: "appointment:a1", data: "{}", nowMs: t0 + 70)
        }
        try check("71 inserted")
        let first = try uplink.nextBatch()
        #expect(await Uplink.deleteDelivered(store, first.prefix(10).map { $0.seq }, logger: uplink.logger))
        try check("10 delivered")
        try uplink.deadLetter(Array(first.dropFirst(10).prefix(5)), status: 400, reason: "bad")
        try check("5 dead-lettered")
        _ = try await store.write { try $0.evictOldestTelemetry(bytes: 100, nowMs: t0 + 100) }
        try check("telemetry evicted")
        _ = try await store.write { try $0.purgeDeadLetters(nowMs: t0, maxRows: 3, limit: 1000) }
        try check("dead letters purged to 3")
        try "data_dir: \(dir)/data\n".write(toFile: dir + "/config.yaml", atomically: true, encoding: .utf8)
        for round in 1...2 {
            let (code, out) = try await DaemonProcess.runCLI(["outbox", "retry", "--config", dir + "/config.yaml"])
            #expect(code == 0, "\(out)")
            try check("retry \(round)")
        }
        #expect(try store.outboxStats().deadLetters == 0)
    }
}
