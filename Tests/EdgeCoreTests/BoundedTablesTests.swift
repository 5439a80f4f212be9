import EdgeCore
@testable import EdgeStore
import Foundation
import GRDB
import Testing

/// CONTRACT §5: rejected-message rows and dead letters kept at most 30 days and at most
/// `storage.max_reject_rows` each, oldest first; repeats of one device and reason on one row.
@Suite("Bounded tables: rejects and dead letters")
struct BoundedTablesTests {
    func withStore(_ body: (AppDatabase) throws -> Void) throws {
        let dir = try TempDir()
        defer { dir.cleanup() }
        try body(try AppDatabase.open(dataDir: dir.path))
    }
    let day: Int64 = 86_400_000
    let now: Int64 = 1_800_000_000_000

    func reject(_ db: Database, device: String?, reason: RejectReason = .outOfRange, at ms: Int64) throws {
        try Ledger.recordRejection(
            db, topic: "clinic/s/room/r/environment/\(device ?? "?")", kind: .environment, deviceId: device,
            msgId: "m", rejection: Rejection(reason, "temperature_c out of range"), nowMs: ms)
    }

    @Test(
        "Given one device rejected 500 times for one reason in an hour, then one row with count 500; another reason or another hour is another row"
    )
    func repeatsShareARow() throws {
        try withStore { store in
            try store.writer.write { db in
                for i in 0..<500 { try reject(db, device: "env-1", at: now + Int64(i)) }
                try reject(db, device: "env-1", reason: .missingField, at: now + 600)
                try reject(db, device: "env-2", at: now + 700)
                try reject(db, device: "env-1", at: now + 3_600_000)
                try reject(db, device: nil, at: now)
                try reject(db, device: nil, at: now + 1)
            }
            let rows = try store.writer.read { db in
                try Row.fetchAll(db, sql: "SELECT device_id, reason, count, received_ms, last_ms FROM rejects ORDER BY id")
            }
            #expect(rows.count == 5)
            #expect(rows[0]["count"] as Int == 500 && rows[0]["device_id"] as String? == "env-1")
            #expect(rows[0]["received_ms"] as Int64 == now && rows[0]["last_ms"] as Int64 == now + 499)
            #expect(rows[1]["reason"] as String == "missing_field" && rows[1]["count"] as Int == 1)
            #expect(rows[2]["device_id"] as String? == "env-2")
            #expect(rows[3]["count"] as Int == 1, "an hour later: a new row")
            #expect(rows[4]["device_id"] as String? == nil && rows[4]["count"] as Int == 2)
        }
    }

    @Test(
        "2,500 rejects (some 31 days old), max 1,000 rows, purged in steps of 300: the newest 1,000 stay, none over 30 days old, each step ≤ 300 rows"
    )
    func rejectsPurge() throws {
        try withStore { store in
            try store.writer.write { db in
                for i in 0..<2500 { try reject(db, device: "d\(i)", at: (i < 2000 ? now - 31 * day : now) + Int64(i)) }
            }
            var steps: [Int] = []
            while true {
                let n = try store.writer.write { try Ledger.purgeRejects($0, nowMs: now + 10_000, maxRows: 1000, limit: 300) }
                steps.append(n)
                if n < 300 { break }
            }
            #expect(steps.allSatisfy { $0 <= 300 })
            let (count, oldest) = try store.writer.read { db in
                (try Int.fetchOne(db, sql: "SELECT count(*) FROM rejects")!, try Int64.fetchOne(db, sql: "SELECT min(last_ms) FROM rejects")!)
            }
            #expect(count == 500, "the 2,000 old ones went by age")
            #expect(oldest >= now)
            // Past the row bound (all recent): the newest max_rows stay.
            try store.writer.write { db in for i in 0..<1700 { try reject(db, device: "n\(i)", at: now + 20_000 + Int64(i)) } }
            while try store.writer.write({ try Ledger.purgeRejects($0, nowMs: now + 30_000, maxRows: 1000, limit: 300) }) == 300 {}
            let left = try store.writer.read { db in try String.fetchAll(db, sql: "SELECT device_id FROM rejects ORDER BY id") }
            #expect(left.count == 1000)
            #expect(left.first == "n700" && left.last == "n1699")
        }
    }

    @Test("Given 1,500 dead letters (300 of them 31 days old) and max 1,000, when purged, then 1,000 newest stay and none is older than 30 days")
    func deadLettersPurge() throws {
        try withStore { store in
            try store.writer.write { db in
                for i in 0..<1500 {
                    let failed = (i < 300 ? now - 31 * day : now) + Int64(i)
                    try db.execute(
                        sql: """
                            INSERT INTO outbox_dead (seq, id, name, class, source, data, created_ms, bytes, status, reason, failed_ms)
                            VALUES (?, ?, 'integration/iot.event', 1, 'device:x', '{}', ?, 40, 400, 'refused', ?)
                            """, arguments: [i + 1, "id-\(i)", failed, failed])
                }
            }
            var steps: [Int] = []
            while true {
                let n = try store.writer.write { try Ledger.purgeDeadLetters($0, nowMs: now + 10_000, maxRows: 1000, limit: 200) }
                steps.append(n)
                if n < 200 { break }
            }
            #expect(steps.allSatisfy { $0 <= 200 })
            let (count, minSeq) = try store.writer.read { db in
                (try Int.fetchOne(db, sql: "SELECT count(*) FROM outbox_dead")!, try Int.fetchOne(db, sql: "SELECT min(seq) FROM outbox_dead")!)
            }
            #expect(count == 1000)
            #expect(minSeq == 501)
        }
    }
}
