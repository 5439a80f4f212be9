import EdgeStore
import Foundation
import GRDB

/// The figures `/api/v1/status`, `/metrics` and the edge status show, read by housekeeping
/// once a second and kept in `EdgeState`: a request never scans a table (CONTRACT §4).
struct StatusFigures: Sendable {
    var outbox: OutboxStats
    var patients: Int
    var appointments: Int
    var alerts: Int

    static func read(_ db: AppDatabase) throws -> StatusFigures {
        try db.writer.read { d in
            StatusFigures(outbox: try AppDatabase.outboxStats(d),
                          patients: try Int.fetchOne(d, sql: "SELECT count(*) FROM patients") ?? 0,
                          appointments: try Int.fetchOne(d, sql: "SELECT count(*) FROM appointments") ?? 0,
                          alerts: try Int.fetchOne(d, sql: "SELECT count(*) FROM alerts") ?? 0)
        }
    }
}
