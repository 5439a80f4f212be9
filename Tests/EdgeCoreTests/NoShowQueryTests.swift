import EdgeCore
import EdgeStore
import Foundation
import Testing

/// Issue 13: the no-show rule is written once. The store's query (`dueNoShows`, the one the
/// daemon's scheduler runs) takes its statuses from `NoShowRule`; here it runs on a real SQLite
/// file over a table of cases and must select exactly what `NoShowRule.isNoShow` decides.
@Suite("No-show: the store's query selects what NoShowRule decides")
struct NoShowQueryTests {
    static let now: Int64 = 1_800_000_000_000
    static let statuses = AppointmentStatus.allCases.map(\.rawValue) + ["", "Scheduled", "unknown"]

    @Test(
        "Given every status × start time around the grace boundary × checked in or not, the query selects exactly the rule's no-shows",
        arguments: [15 * Clinic.minute, 30_000, 0])
    func matchesTheRule(graceMs: Int64) throws {
        let dir = try TempDir()
        defer { dir.cleanup() }
        let store = try AppDatabase.open(dataDir: dir.path)
        let now = Self.now
        // Start + grace before, at, just after and well after now; a start in the future.
        let starts = [now - graceMs - Clinic.hour, now - graceMs - 1, now - graceMs, now - graceMs + 1, now, now + Clinic.hour]
        var expected = Set<String>()
        var cases = 0
        try store.write { tx in
            for status in Self.statuses {
                for (i, start) in starts.enumerated() {
                    for checkedIn in [false, true] {
                        let id = "a-\(status.isEmpty ? "empty" : status)-\(i)-\(checkedIn ? "in" : "out")"
                        try tx.upsertAppointment(
                            AppointmentRow(
                                id: id, patientId: "p-\(id)", professionalId: "pr1", serviceId: nil, roomId: nil, startMs: start,
                                endMs: start + 30 * Clinic.minute, scheduledStart: Time.rfc3339(ms: start),
                                scheduledEnd: Time.rfc3339(ms: start + 30 * Clinic.minute), status: status, createdAt: nil, updatedAt: nil))
                        if checkedIn {
                            try tx.recordCheckin(
                                appointmentId: id, patientId: "p-\(id)", nowMs: start, method: "qr", device: "kiosk-1",
                                staff: nil, eventId: "e-\(id)")
                        }
                        if NoShowRule.isNoShow(status: status, checkedIn: checkedIn, startMs: start, nowMs: now, graceMs: graceMs) {
                            expected.insert(id)
                        }
                        cases += 1
                    }
                }
            }
        }
        let selected = try store.read { tx in try tx.dueNoShows(nowMs: now, graceMs: graceMs) }
        #expect(cases == Self.statuses.count * starts.count * 2)
        #expect(
            expected.count == NoShowRule.statuses.count * starts.filter { $0 + graceMs <= now }.count,
            "the rule's statuses × the starts whose grace has passed, not checked in")
        #expect(Set(selected.map(\.id)) == expected)
        #expect(selected.count == expected.count, "each once")
        for s in selected { #expect(s.patientId == "p-\(s.id)" && s.professionalId == "pr1") }

        // Judged once: a recorded no-show (signalled or skipped) is never selected again.
        let first = try #require(selected.first)
        try store.write { tx in try tx.recordNoShow(appointmentId: first.id, nowMs: now, eventId: "") }
        let again = try store.read { tx in try tx.dueNoShows(nowMs: now, graceMs: graceMs) }
        #expect(Set(again.map(\.id)) == expected.subtracting([first.id]))
    }
}
