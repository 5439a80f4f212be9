import EdgeStore
import Foundation

/// The figures `/api/v1/status`, `/metrics` and the edge status show, read by housekeeping
/// once a second and kept in `EdgeState`: a request never scans a table (CONTRACT §4).
struct StatusFigures: Sendable {
    var outbox: OutboxStats
    var patients: Int
    var appointments: Int
    var alerts: Int

    static func read(_ db: AppDatabase) throws -> StatusFigures {
        try db.read { d in
            StatusFigures(
                outbox: try d.outboxStats(),
                patients: try d.rowCount(.patients),
                appointments: try d.rowCount(.appointments),
                alerts: try d.rowCount(.alerts))
        }
    }
}
