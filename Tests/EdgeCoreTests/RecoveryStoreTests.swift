import EdgeCore
@testable import EdgeStore
import Foundation
import GRDB
import Testing

/// The start-up check's carry-over at the store level (the daemon's side: RecoveryTests): a
/// damaged leaf in the middle of a table without rowid (the fridges' readings).
@Suite("Start-up check: carrying past a damaged page (real SQLite file)")
struct RecoveryStoreTests {
    @Test("A leaf of coldchain_readings overwritten: the rows before and after it carried (forward, then backward), the outbox whole")
    func damagedLeafWithoutRowid() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("recovery-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (db, first) = try AppDatabase.openChecked(dataDir: dir, nowMs: Time.nowMs())
        #expect(first == nil)
        let t0: Int64 = 1_767_225_600_000
        try await db.write { tx in
            for i in 0..<20_000 { try tx.recordColdReading(room: "vacinas", atMs: t0 + Int64(i) * 60_000, device: "fridge-1", tempC: 4.5) }
            for i in 0..<300 {
                try tx.enqueue(name: "integration/iot.event", eventClass: .telemetry, source: "s", data: #"{"n":\#(i)}"#, nowMs: t0)
            }
        }
        try await db.checkpointAndClose()
        let path = dir + "/" + AppDatabase.fileName
        let leaves = try await DatabaseQueue(path: path).read { d in
            try Int64.fetchAll(d, sql: "SELECT pageno FROM dbstat WHERE name = 'coldchain_readings' AND pagetype = 'leaf' ORDER BY pageno")
        }
        #expect(leaves.count > 20)
        let h = try #require(FileHandle(forUpdatingAtPath: path))
        try h.seek(toOffset: UInt64((leaves[leaves.count / 2] - 1) * 4096))
        h.write(Data(repeating: 0xFF, count: 4096))
        try h.close()

        let (fresh, recovery) = try AppDatabase.openChecked(dataDir: dir, nowMs: Time.nowMs())
        let r = try #require(recovery)
        let carried = r.carried["coldchain_readings"] ?? 0
        // One leaf holds some 100 readings: forward only would carry about half.
        #expect(carried > 19_500 && carried < 20_000, "\(r)")
        #expect(r.lost["coldchain_readings"] == 1, "\(r)")
        #expect(r.carried["outbox"] == 300, "\(r)")
        #expect(try await fresh.read { try $0.coldReadings(room: "vacinas", fromMs: 0, toMs: .max).count } == carried)
        #expect(FileManager.default.fileExists(atPath: dir + "/" + r.movedTo))
    }
}
