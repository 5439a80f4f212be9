import EdgeCore
@testable import EdgeStore
import Foundation
import GRDB
import Testing

@Suite("Raw statements: hot inserts bound through SQLite's C API")
struct RawStatementTests {
    func withStore(_ body: (AppDatabase) throws -> Void) throws {
        let dir = try TempDir()
        defer { dir.cleanup() }
        try body(try AppDatabase.open(dataDir: dir.path))
    }

    @Test("Given text, integers, doubles and nulls, when bound raw, then the row reads back exactly, UTF-8 and empty strings included")
    func roundTrip() throws {
        try withStore { store in
            try store.writer.write { db in
                try db.execute(sql: "CREATE TABLE t (a TEXT, b INTEGER, c REAL, d TEXT, e TEXT)")
                let st = try db.cachedStatement(sql: "INSERT INTO t (a, b, c, d, e) VALUES (?,?,?,?,?)")
                let n = try st.runRaw { b in
                    b.text("Olá, São Paulo \"x\""); b.int(Int64.max); b.double(-2.5); b.text(nil as String?); b.text("")
                }
                #expect(n == 1)
                try st.runRaw { b in
                    b.text("second"); b.int(7); b.double(0); b.null(); b.text("e")
                }
            }
            let rows = try store.writer.read { db in try Row.fetchAll(db, sql: "SELECT * FROM t ORDER BY rowid") }
            #expect(rows.count == 2)
            #expect(rows[0]["a"] as String? == "Olá, São Paulo \"x\"")
            #expect(rows[0]["b"] as Int64? == Int64.max)
            #expect(rows[0]["c"] as Double? == -2.5)
            #expect(rows[0]["d"] as String? == nil)
            #expect(rows[0]["e"] as String? == "")
            #expect(rows[1]["b"] as Int? == 7)
        }
    }

    @Test("Given a constraint violation, when run raw, then GRDB's DatabaseError is thrown with SQLite's message, and the statement still works")
    func failureThenReuse() throws {
        try withStore { store in
            try store.writer.write { db in
                try db.execute(sql: "CREATE TABLE u (k TEXT PRIMARY KEY)")
                let st = try db.cachedStatement(sql: "INSERT INTO u (k) VALUES (?)")
                try st.runRaw { $0.text("a") }
                do {
                    try st.runRaw { $0.text("a") }
                    Issue.record("a duplicate key was accepted")
                } catch let e as DatabaseError {
                    #expect(e.resultCode == .SQLITE_CONSTRAINT)
                    #expect(e.message?.contains("UNIQUE") == true, "\(e)")
                }
                try st.runRaw { $0.text("b") }
                let ignore = try db.cachedStatement(sql: "INSERT OR IGNORE INTO u (k) VALUES (?)")
                #expect(try ignore.runRaw { $0.text("b") } == 0, "an ignored row changes nothing")
                #expect(try ignore.runRaw { $0.text("c") } == 1)
            }
            #expect(try store.writer.read { db in try String.fetchAll(db, sql: "SELECT k FROM u ORDER BY k") } == ["a", "b", "c"])
        }
    }

    @Test("Given the first sight of a (device, msg_id), when remembered twice, then only the first is new and the first ack is kept")
    func firstSight() throws {
        try withStore { store in
            let (first, again) = try store.writer.write { db in
                (
                    try Ledger.rememberFirstSight(db, deviceId: "env-01", msgId: "m1", ack: #"{"msg_id":"m1"}"#, nowMs: 1),
                    try Ledger.rememberFirstSight(db, deviceId: "env-01", msgId: "m1", ack: "other", nowMs: 2)
                )
            }
            #expect(first)
            #expect(!again)
            #expect(try store.writer.read { db in try Ledger.previousAck(db, deviceId: "env-01", msgId: "m1") } == #"{"msg_id":"m1"}"#)
        }
    }

    @Test(
        "70 events of one batch written together (two 32-row inserts, 6 single rows): all in the outbox, in their order, with their ids and sizes"
    )
    func enqueueAllKeepsOrder() throws {
        try withStore { store in
            let events = (0..<70).map { i in
                Ledger.Pending(
                    name: "integration/iot.event", eventClass: i % 7 == 0 ? .clinical : .telemetry,
                    source: "device:env-\(i)", data: #"{"n":\#(i)}"#, nowMs: 1_795_959_000_000 + Int64(i))
            }
            try store.writer.write { db in try Ledger.enqueueAll(db, events) }
            let rows = try store.writer.read { db in
                try Row.fetchAll(db, sql: "SELECT id, class, source, data, created_ms, bytes FROM outbox ORDER BY seq")
            }
            #expect(rows.count == 70)
            for (i, (row, e)) in zip(rows, events).enumerated() {
                #expect(row["id"] as String? == e.id, "row \(i)")
                #expect(row["source"] as String? == "device:env-\(i)")
                #expect(row["data"] as String? == e.data)
                #expect(row["class"] as Int? == e.eventClass.rawValue)
                #expect(row["created_ms"] as Int64? == e.nowMs)
                #expect(row["bytes"] as Int? == e.data.utf8.count + e.name.utf8.count + 80)
            }
            #expect(Set(events.map(\.id)).count == 70)
        }
    }
}
