import CloudStub
import EdgeCore
@testable import EdgeStore
import EdgeTestSupport
import Foundation
import GRDB
import Hummingbird
import HummingbirdTesting
import Logging
@testable import MedicEdge
import Testing

// CONTRACT §7, retention (LGPD): a real SQLite file aged by 400 days on the injected clock,
// then the housekeeping job's purge; and the roster bringing back a removed patient who is
// booked again.

@Suite("Retention: what is left after a year", .serialized)
struct RetentionTests {
    static let day: Int64 = 86_400_000

    static func config(_ extra: String = "") throws -> EdgeConfig {
        try EdgeConfig.parse(yaml: "site_id: test-site\ntimezone: America/Sao_Paulo\n" + extra)
    }

    static func rows(_ db: AppDatabase, _ sql: String, _ args: StatementArguments = []) async throws -> Int {
        try await db.writer.read { try Int.fetchOne($0, sql: sql, arguments: args) ?? -1 }
    }

    @Test(
        "400 days aged (ManualClock): 90/90/8/365 d of check-ins/no-shows/kiosk results/audit left, the window's patients; a shorter config cuts more"
    )
    func agedByAYear() async throws {
        let clock = ManualClock(ms: 1_767_225_600_000)  // 2026-01-01T00:00:00Z
        let db = try AppDatabase.open(dataDir: Harness.tempDir("retention") + "/data")
        let patients = (0..<3000).map { String(format: "9a000000-0000-4000-8000-%012d", $0) }
        var checkins: [(ms: Int64, patient: String)] = [], noshows: [Int64] = [], kiosk: [Int64] = [], audit: [Int64] = []
        var n = 0
        for _ in 0..<400 {
            clock.advance(ms: Self.day)
            let base = clock.nowMs()
            var dayCheckins: [(String, Int64, String)] = []
            for k in 0..<40 {
                n += 1
                let at = base + Int64(k) * 600_000
                dayCheckins.append((String(format: "a1000000-0000-4000-8000-%012d", n), at, patients[n % patients.count]))
                checkins.append((at, patients[n % patients.count])); kiosk.append(at)
            }
            let dayNoshows = (0..<5).map { base + Int64($0) * 3_600_000 }
            let dayAudit = (0..<20).map { base + Int64($0) * 1_800_000 }
            noshows += dayNoshows; audit += dayAudit
            let first = n, todays = dayCheckins
            try await db.write { tx in
                for (aid, at, pid) in todays {
                    try tx.recordCheckin(appointmentId: aid, patientId: pid, nowMs: at, method: "qr", device: "k1", staff: nil, eventId: "e-\(aid)")
                    try tx.saveKioskResult(deviceId: "k1", scanId: "s-\(aid)", outcome: "checked_in", result: "{}", nowMs: at)
                }
                for (i, at) in dayNoshows.enumerated() {
                    try tx.recordNoShow(appointmentId: "n-\(first)-\(i)", nowMs: at, eventId: "e-n-\(first)-\(i)")
                }
                for at in dayAudit { try tx.audit(name: "recepcao", action: "login", target: nil, nowMs: at) }
            }
        }
        let now = clock.nowMs() + 12 * 3_600_000
        clock.advance(ms: 12 * 3_600_000)
        let config = try Self.config()
        let w = RosterSync.window(nowMs: now, config: config)
        // The roster: every patient; appointments of 25 patients in the window, two that ended
        // 100 days ago (the roster offline since) and one beyond the window; a check-in 100 days
        // old whose appointment is still here.
        let booked = Array(patients[100..<125])
        try await db.write { tx in
            for p in patients { try tx.upsertPatient(id: p, name: "Paciente", phone: "+5511", qrCodeHash: "h-\(p)", createdAt: nil, updatedAt: nil) }
            func appt(_ id: String, _ p: String, _ start: Int64) -> AppointmentRow {
                AppointmentRow(
                    id: id, patientId: p, professionalId: nil, serviceId: nil, roomId: nil, startMs: start, endMs: start + 3_000_000,
                    scheduledStart: Time.rfc3339(ms: start), scheduledEnd: Time.rfc3339(ms: start + 3_000_000), status: "confirmed",
                    createdAt: nil, updatedAt: nil)
            }
            for (i, p) in booked.enumerated() { try tx.upsertAppointment(appt("b-\(i)", p, now + Int64(i) * 600_000)) }
            try tx.upsertAppointment(appt("old-1", patients[200], now - 100 * Self.day))
            try tx.upsertAppointment(appt("old-2", patients[201], now - 100 * Self.day))
            try tx.upsertAppointment(appt("beyond", patients[202], w.toMs + Self.day))
            try tx.upsertAppointment(appt("kept-checkin", patients[203], now))
            try tx.recordCheckin(
                appointmentId: "kept-checkin", patientId: patients[203], nowMs: now - 100 * Self.day, method: "qr", device: "k1", staff: nil,
                eventId: "e-kept")
        }
        #expect(try await Self.rows(db, "SELECT count(*) FROM checkins") == 16_001)

        let removed = await RetentionPurge(config: config, db: db, logger: Logger(label: "retention-test")).run(nowMs: now)

        func left(_ times: [Int64], days: Int64) -> Int { times.filter { $0 >= now - days * Self.day }.count }
        // Check-ins: 90 days, and the old one whose appointment is still kept.
        #expect(try await Self.rows(db, "SELECT count(*) FROM checkins") == left(checkins.map(\.ms), days: 90) + 1)
        #expect(try await Self.rows(db, "SELECT count(*) FROM checkins WHERE appointment_id = 'kept-checkin'") == 1)
        #expect(try await Self.rows(db, "SELECT count(*) FROM noshows") == left(noshows, days: 90))
        #expect(try await Self.rows(db, "SELECT count(*) FROM kiosk_results") == left(kiosk, days: 8))
        #expect(try await Self.rows(db, "SELECT count(*) FROM staff_audit") == left(audit, days: 365))
        #expect(left(audit, days: 365) < audit.count, "the year's first days of audit are older than a year")
        // Appointments: the window's only.
        let appts = try await db.writer.read { try String.fetchAll($0, sql: "SELECT id FROM appointments ORDER BY id") }
        #expect(appts == (["kept-checkin"] + booked.indices.map { "b-\($0)" }).sorted())
        // Patients: booked in the window, or checked in within 24 h.
        let recent = Set(checkins.filter { $0.ms >= now - Self.day }.map(\.patient))
        let expected = Set(booked).union(recent).union([patients[203]])
        let kept = Set(try await db.writer.read { try String.fetchAll($0, sql: "SELECT id FROM patients") })
        #expect(kept == expected)
        #expect(removed["patients"] == patients.count - expected.count)
        #expect(removed["checkins"] == checkins.count - left(checkins.map(\.ms), days: 90))

        // A second run removes nothing more; a shorter retention cuts further.
        #expect(await RetentionPurge(config: config, db: db, logger: Logger(label: "retention-test")).run(nowMs: now).isEmpty)
        let short = try Self.config("retention: {checkins_days: 30, noshows_days: 7, kiosk_results_days: 7, staff_audit_days: 30}")
        await RetentionPurge(config: short, db: db, logger: Logger(label: "retention-test")).run(nowMs: now)
        #expect(try await Self.rows(db, "SELECT count(*) FROM checkins") == left(checkins.map(\.ms), days: 30) + 1)
        #expect(try await Self.rows(db, "SELECT count(*) FROM noshows") == left(noshows, days: 7))
        #expect(try await Self.rows(db, "SELECT count(*) FROM kiosk_results") == left(kiosk, days: 7))
        #expect(try await Self.rows(db, "SELECT count(*) FROM staff_audit") == left(audit, days: 30))
    }

    @Test("Each purge transaction removes at most its limit, oldest first")
    func boundedBatches() async throws {
        let db = try AppDatabase.open(dataDir: Harness.tempDir("retention") + "/data")
        try await db.write { tx in
            for i in 0..<1200 { try tx.audit(name: "recepcao", action: "login", target: nil, nowMs: Int64(i)) }
        }
        let first = try await db.write { try $0.purge(.staffAudit, olderThan: 1000, limit: 500) }
        #expect(first == 500)
        #expect(try await Self.rows(db, "SELECT min(at_ms) FROM staff_audit") == 500)
        let second = try await db.write { try $0.purge(.staffAudit, olderThan: 1000, limit: 500) }
        let third = try await db.write { try $0.purge(.staffAudit, olderThan: 1000, limit: 500) }
        #expect(second == 500)
        #expect(third == 0)
    }

    @Test("A patient removed for having no appointment comes back with the incremental pull that brings their new appointment")
    func removedPatientBookedAgain() async throws {
        var day = ClinicDay()
        day.book(day.maria, startMinutes: 30)
        var logger = Logger(label: "stub")
        logger.logLevel = .error
        let stub = CloudStub(seed: day.seed, logger: logger)
        let port = try await stub.start()
        defer { Task { try? await stub.stop() } }
        // João's row is older than every other: an incremental pull (cursor and overlap) never
        // reads it again.
        var joao = day.patientRow(day.joao)
        if case .object(var o) = joao {
            o["created_at"] = .string(ClinicDay.iso(day.now.addingTimeInterval(-86400 * 400)))
            joao = .object(o)
        }
        stub.upsert(collection: "patients", rows: [joao])
        let (sync, db) = try makeRosterSync(port: port, clock: ManualClock())
        try await sync.fullSync(nowMs: Time.nowMs())
        #expect(try await count(db, "patients") == 4)

        await RetentionPurge(config: sync.config, db: db, logger: logger).run(nowMs: Time.nowMs())
        let left = try await db.writer.read { try String.fetchAll($0, sql: "SELECT id FROM patients") }
        #expect(left == [day.maria.id])

        var later = day
        later.appointments = []
        later.book(day.joao, startMinutes: 90, id: "a0000000-0000-4000-8000-0000000000b2", createdDaysAgo: 0)
        stub.upsert(collection: "appointments", rows: later.appointments)
        try await sync.incrementalSync(nowMs: Time.nowMs())
        // (Patients whose row changed within the pull's overlap are read again too, and go at
        // the next retention run.)
        let back = Set(try await db.writer.read { try String.fetchAll($0, sql: "SELECT id FROM patients") })
        #expect(back.isSuperset(of: [day.maria.id, day.joao.id]))
        let joaoHash = QRCode.hash(day.joao.qr)
        let found = try await db.read { try $0.patient(qrHash: joaoHash)?.id }
        #expect(found == day.joao.id)
    }

    @Test("Agenda reads go into the staff audit: agenda_read with the day, once per account and day every 15 minutes; a refused read not")
    func agendaReadsAudited() async throws {
        let w = try RoutesTests.World()
        try StaffAccounts(db: w.db, clock: w.clock).add(name: "ana", password: "senha-forte-1", iterations: 1000)
        try await w.test { client in
            let token: String = try await client.execute(
                uri: "/api/v1/session", method: .post, headers: [.contentType: "application/json"],
                body: ByteBuffer(string: #"{"name":"ana","password":"senha-forte-1"}"#)
            ) { r in try #require(try RoutesTests.json(r)["token"] as? String) }
            let bearer: HTTPFields = [.authorization: "Bearer \(token)"]
            for date in ["2027-01-15", "2027-01-15", "2027-01-16", "15/01/2027"] {
                try await client.execute(uri: "/api/v1/agenda?date=\(date)", method: .get, headers: bearer) { _ in }
            }
            w.clock.advance(seconds: 14 * 60)
            try await client.execute(uri: "/api/v1/agenda?date=2027-01-15", method: .get, headers: bearer) { _ in }
            w.clock.advance(seconds: 61)
            try await client.execute(uri: "/api/v1/agenda?date=2027-01-15", method: .get, headers: bearer) { _ in }
        }
        let rows = try await w.db.writer.read { db in
            try Row.fetchAll(db, sql: "SELECT name, target FROM staff_audit WHERE action = 'agenda_read' ORDER BY id").map {
                "\($0["name"] as String) \($0["target"] as String)"
            }
        }
        #expect(rows == ["ana 2027-01-15", "ana 2027-01-16", "ana 2027-01-15"])
    }
}
