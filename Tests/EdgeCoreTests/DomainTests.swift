import Foundation
import Testing
@testable import EdgeCore

@Suite("QRCode.hash (CONTRACT §1.2)")
struct QRCodeTests {
    @Test(
        "Given a scanned text, when hashed, then it is the lowercase hex SHA-256 of its UTF-8 bytes",
        arguments: [
            ("abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
            ("", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"),
            ("é", "4a99557e4033c3539de2eb65472017cad5f9557f7a0625a09f1c3f6e2ba69c4c"),
            ("MEDIC:patient:0001", "9e1ed87df1af051a7604d1d0f3fa072957a341ec2e0596ee31a6786408d787f7"),
            ("Olá", "5251c3c68010bca32f4dbedb142270f720fa84a0599816524c85d50c3f589365"),
        ])
    func knownHashes(_ text: String, _ hex: String) {
        #expect(QRCode.hash(text) == hex)
    }

    @Test("Given a scanned text equal to a stored hash, when hashed, then it does not equal that hash")
    func hashOfHashDiffers() {
        let h = QRCode.hash("MEDIC:patient:0001")
        #expect(QRCode.hash(h) != h)
        #expect(h.count == 64)
        #expect(h == h.lowercased())
    }
}

@Suite("CheckinPolicy.choose (CONTRACT §1.2)")
struct CheckinPolicyTests {
    static let edgeOffsets: [(Int64, Bool)] = [
        (-7_200_001, false), (-7_200_000, true), (0, true), (2_999_999, true), (3_000_000, false), (3_000_001, false),
    ]
    let open = 120 * Clinic.minute
    let start = Clinic.mariaStartMs  // 10:30 in São Paulo
    var end: Int64 { start + 50 * Clinic.minute }  // 11:20

    func appt(_ id: String, start: Int64? = nil, minutes: Int64 = 50, status: String = "scheduled", local: Bool = false) -> AppointmentInfo {
        let s = start ?? self.start
        return AppointmentInfo(id: id, startMs: s, endMs: s + minutes * Clinic.minute, status: status, checkedInLocally: local)
    }

    @Test("Given Maria arrives 28 minutes early for a scheduled appointment, when she scans, then she is checked in")
    func simpleCheckIn() {
        #expect(CheckinPolicy.choose([appt("a1")], nowMs: start - 28 * Clinic.minute, openBeforeMs: open) == .checkIn("a1"))
    }

    @Test(
        "Given each status, when the patient scans inside the window, then the choice follows the contract",
        arguments: [
            ("scheduled", "checkIn"), ("confirmed", "checkIn"), ("no_show", "checkIn"),
            ("arrived", "already"), ("in_progress", "already"), ("completed", "already"),
            ("cancelled", "none"), ("rescheduled", "none"), ("mystery", "none"),
        ])
    func statuses(_ status: String, _ expected: String) {
        let c = CheckinPolicy.choose([appt("a1", status: status)], nowMs: start, openBeforeMs: open)
        switch expected {
        case "checkIn": #expect(c == .checkIn("a1"))
        case "already": #expect(c == .already("a1"))
        default: #expect(c == .none)
        }
    }

    @Test("Given a late arrival already marked no_show by the cloud, when she scans before the end, then she is checked in")
    func noShowIsLateArrival() {
        #expect(CheckinPolicy.choose([appt("a1", status: "no_show")], nowMs: start + 40 * Clinic.minute, openBeforeMs: open) == .checkIn("a1"))
    }

    @Test(
        "Given window edges, when the patient scans, then [start − openBefore, end) decides",
        arguments: CheckinPolicyTests.edgeOffsets)
    func windowEdges(_ offset: Int64, _ eligible: Bool) {
        let c = CheckinPolicy.choose([appt("a1")], nowMs: start + offset, openBeforeMs: open)
        #expect(c == (eligible ? .checkIn("a1") : .none))
    }

    @Test("Given a custom open-before of zero, when the patient is one ms early, then nothing matches")
    func zeroOpenBefore() {
        #expect(CheckinPolicy.choose([appt("a1")], nowMs: start - 1, openBeforeMs: 0) == .none)
        #expect(CheckinPolicy.choose([appt("a1")], nowMs: start, openBeforeMs: 0) == .checkIn("a1"))
    }

    @Test("Given two eligible appointments in their windows, when the patient scans, then the earliest wins")
    func earliestWins() {
        let a = appt("b-later", start: start + 60 * Clinic.minute)
        let b = appt("a-earlier", start: start)
        #expect(CheckinPolicy.choose([a, b], nowMs: start - 10 * Clinic.minute, openBeforeMs: open) == .checkIn("a-earlier"))
        #expect(CheckinPolicy.choose([b, a], nowMs: start - 10 * Clinic.minute, openBeforeMs: open) == .checkIn("a-earlier"))
    }

    @Test("Given two appointments at the same time, when the patient scans, then the choice is stable by id")
    func tieBrokenById() {
        let c = CheckinPolicy.choose([appt("zz"), appt("aa")], nowMs: start, openBeforeMs: open)
        #expect(c == .checkIn("aa"))
    }

    @Test("Given a morning appointment and an afternoon one, when the patient scans between them, then the second is picked only inside its window")
    func secondAppointmentOnlyInsideItsWindow() {
        let morning = appt("morning", start: start)  // 10:30–11:20
        let afternoon = appt("afternoon", start: start + 6 * Clinic.hour)  // 16:30–17:20, opens 14:30
        let appts = [morning, afternoon]
        #expect(CheckinPolicy.choose(appts, nowMs: start + 2 * Clinic.hour, openBeforeMs: open) == .none, "12:30: between windows")
        #expect(CheckinPolicy.choose(appts, nowMs: start + 4 * Clinic.hour - 1, openBeforeMs: open) == .none, "just before 14:30")
        #expect(CheckinPolicy.choose(appts, nowMs: start + 4 * Clinic.hour, openBeforeMs: open) == .checkIn("afternoon"), "14:30")
    }

    @Test("Given the morning one already checked in and the afternoon one open, when the patient scans, then the afternoon one is checked in")
    func eligibleBeatsAlready() {
        let morning = appt("morning", start: start, minutes: 6 * 60, status: "arrived")
        let afternoon = appt("afternoon", start: start + 3 * Clinic.hour)
        #expect(CheckinPolicy.choose([morning, afternoon], nowMs: start + 2 * Clinic.hour, openBeforeMs: open) == .checkIn("afternoon"))
    }

    @Test("Given an appointment checked in locally (cloud not yet told), when the patient scans again, then already")
    func alreadyLocally() {
        for status in ["scheduled", "confirmed", "no_show"] {
            #expect(CheckinPolicy.choose([appt("a1", status: status, local: true)], nowMs: start, openBeforeMs: open) == .already("a1"))
        }
    }

    @Test("Given a cancelled or rescheduled appointment with a local check-in, when scanned, then it never matches")
    func cancelledNeverMatches() {
        for status in ["cancelled", "rescheduled"] {
            #expect(CheckinPolicy.choose([appt("a1", status: status, local: true)], nowMs: start, openBeforeMs: open) == .none)
        }
        let rescheduled = appt("old", start: start, status: "rescheduled")
        let replacement = appt("new", start: start + 30 * Clinic.minute)
        #expect(CheckinPolicy.choose([rescheduled, replacement], nowMs: start, openBeforeMs: open) == .checkIn("new"))
    }

    @Test("Given an already-arrived appointment outside its window, when scanned, then nothing")
    func alreadyOutsideWindowIsNone() {
        #expect(CheckinPolicy.choose([appt("a1", status: "completed")], nowMs: end + 1, openBeforeMs: open) == .none)
    }

    @Test("Given no appointments, when the patient scans, then nothing")
    func empty() {
        #expect(CheckinPolicy.choose([], nowMs: start, openBeforeMs: open) == .none)
    }

    @Test("Given the status words, when classified, then eligibility and already-in match the contract")
    func statusClassification() {
        #expect(AppointmentStatus.allCases.filter(\.checkinEligible) == [.scheduled, .confirmed, .noShow])
        #expect(AppointmentStatus.allCases.filter(\.alreadyIn) == [.arrived, .inProgress, .completed])
        #expect(AppointmentStatus(rawValue: "in_progress") == .inProgress)
        #expect(AppointmentStatus(rawValue: "no_show") == .noShow)
    }
}

@Suite("AlertRule.evaluate (CONTRACT §1.4)")
struct AlertRuleTests {
    let fridge = MetricLimits(min: 2, max: 8, hysteresis: 0.5)

    @Test("Given the vaccine fridge's morning, when readings arrive, then exactly four alert events happen")
    func fridgeSequence() {
        var active = false
        var events: [(Double, AlertRule.Transition)] = []
        for t in [5, 9, 9.5, 7.8, 7.4, 1.5, 3] as [Double] {
            if let tr = AlertRule.evaluate(active: active, value: t, limits: fridge) {
                events.append((t, tr))
                active = tr == .raised
            }
        }
        #expect(events.map(\.0) == [9, 7.4, 1.5, 3])
        #expect(events.map(\.1) == [.raised, .cleared, .raised, .cleared])
    }

    @Test("Given an active alert at 7.8 °C, when evaluated, then it does not clear (7.8 > 7.5)")
    func noClearInsideHysteresisBand() {
        #expect(AlertRule.evaluate(active: true, value: 7.8, limits: fridge) == nil)
        #expect(AlertRule.evaluate(active: true, value: 2.4, limits: fridge) == nil)
    }

    @Test(
        "Given readings at the edges, when evaluated, then limits are inclusive",
        arguments: [
            (false, 8.0, AlertRule.Transition?.none), (false, 2.0, nil), (false, 8.01, .raised), (false, 1.99, .raised),
            (true, 7.5, .cleared), (true, 2.5, .cleared), (true, 7.51, nil), (true, 2.49, nil),
            (true, 9.0, nil), (true, 1.0, nil),
        ])
    func edges(_ active: Bool, _ value: Double, _ expected: AlertRule.Transition?) {
        #expect(AlertRule.evaluate(active: active, value: value, limits: fridge) == expected)
    }

    @Test("Given no hysteresis, when the reading is back in range, then it clears at once")
    func zeroHysteresis() {
        let l = MetricLimits(min: 0, max: 1000, hysteresis: 0)
        #expect(AlertRule.evaluate(active: false, value: 1001, limits: l) == .raised)
        #expect(AlertRule.evaluate(active: true, value: 1000, limits: l) == .cleared)
    }
}

@Suite("NoShowRule.isNoShow (CONTRACT §2)")
struct NoShowRuleTests {
    let start = Clinic.mariaStartMs
    let grace = 15 * Clinic.minute
    static let offsets: [(Int64, Bool)] = [(0, false), (899_999, false), (900_000, true), (3_600_000, true)]

    @Test(
        "Given the grace period, when time passes, then the no-show fires from start + grace",
        arguments: NoShowRuleTests.offsets)
    func grace(_ offset: Int64, _ expected: Bool) {
        #expect(NoShowRule.isNoShow(status: "scheduled", checkedIn: false, startMs: start, nowMs: start + offset, graceMs: grace) == expected)
        #expect(NoShowRule.isNoShow(status: "confirmed", checkedIn: false, startMs: start, nowMs: start + offset, graceMs: grace) == expected)
    }

    @Test("Given a fractional grace of half a minute, when 30 s pass, then it fires")
    func fractionalGrace() {
        #expect(!NoShowRule.isNoShow(status: "scheduled", checkedIn: false, startMs: start, nowMs: start + 29_999, graceMs: 30_000))
        #expect(NoShowRule.isNoShow(status: "scheduled", checkedIn: false, startMs: start, nowMs: start + 30_000, graceMs: 30_000))
    }

    @Test("Given a checked-in patient, when grace has passed, then no no-show")
    func checkedIn() {
        #expect(!NoShowRule.isNoShow(status: "scheduled", checkedIn: true, startMs: start, nowMs: start + Clinic.hour, graceMs: grace))
    }

    @Test(
        "Given other statuses, when grace has passed, then no no-show",
        arguments: ["arrived", "in_progress", "completed", "no_show", "cancelled", "rescheduled", ""])
    func otherStatuses(_ status: String) {
        #expect(!NoShowRule.isNoShow(status: status, checkedIn: false, startMs: start, nowMs: start + Clinic.hour, graceMs: grace))
    }
}

@Suite("KioskMessages: pt-BR words at the kiosk")
struct KioskMessagesTests {
    let sp = Clinic.saoPaulo

    @Test("Given Maria checked in for 13:30Z, when the kiosk shows the result, then the contract's message appears")
    func checkedInMessage() {
        let m = KioskMessages.message(
            outcome: .checkedIn, firstName: KioskMessages.firstName("Maria Aparecida da Silva"),
            professional: "Dr. Erick", room: "Sala 2", startMs: Clinic.mariaStartMs, zone: sp)
        #expect(m == "Olá, Maria! Check-in feito. Sua consulta com Dr. Erick é às 10:30, na Sala 2.")
        #expect(m.contains("Olá, Maria! Check-in feito."))
        #expect(m.contains("10:30"))
        #expect(!m.contains("13:30"))
        #expect(!m.contains("Aparecida"))
        #expect(!m.contains("Silva"))
    }

    @Test("Given Maria scans again, when the kiosk answers, then it says the check-in was already done")
    func alreadyMessage() {
        let m = KioskMessages.message(
            outcome: .alreadyCheckedIn, firstName: "Maria", professional: "Dr. Erick", room: "Sala 2",
            startMs: Clinic.mariaStartMs, zone: sp)
        #expect(m.hasPrefix("Olá, Maria! "))
        #expect(m.contains("já"))
        #expect(m.contains("10:30"))
    }

    @Test("Given no professional or room, when the message is made, then the sentence still reads well")
    func partialDetails() {
        let m = KioskMessages.message(
            outcome: .checkedIn, firstName: nil, professional: nil, room: "",
            startMs: Clinic.mariaStartMs, zone: sp)
        #expect(m == "Olá! Check-in feito. Sua consulta é às 10:30.")
        #expect(
            KioskMessages.message(outcome: .checkedIn, firstName: "Ana", professional: nil, room: nil, startMs: nil, zone: sp)
                == "Olá, Ana! Check-in feito.")
    }

    @Test("Given an unknown code, when the kiosk answers, then it asks to go to the reception and greets no one")
    func unknownCode() {
        let m = KioskMessages.message(outcome: .unknownCode, firstName: nil, professional: nil, room: nil, startMs: nil, zone: sp)
        #expect(m.contains("recepção"))
        #expect(!m.contains("Olá,"))
    }

    @Test(
        "Given outcomes without an appointment, when the kiosk answers, then each points to the reception",
        arguments: [KioskOutcome.noAppointment, .unknownCode, .invalidRequest])
    func reception(_ o: KioskOutcome) {
        let m = KioskMessages.message(
            outcome: o, firstName: "Maria", professional: "Dr. Erick", room: "Sala 2",
            startMs: Clinic.mariaStartMs, zone: sp)
        #expect(m.contains("recepção"))
        #expect(!m.contains("Dr. Erick"), "no appointment details without an appointment")
    }

    @Test("Given the outcome words, when listed, then they match the contract")
    func outcomeWords() {
        #expect(KioskOutcome.allCases.map(\.rawValue) == ["checked_in", "already_checked_in", "no_appointment", "unknown_code", "invalid_request"])
    }

    @Test(
        "Given times of day, when shown in São Paulo, then they are local 24-hour HH:mm",
        arguments: [(Int64(1_795_959_000_000), "10:30"), (1_795_921_200_000, "00:00"), (1_795_921_199_000, "23:59"), (1_795_957_331_000, "10:02")])
    func clock(_ ms: Int64, _ text: String) {
        #expect(KioskMessages.clock(ms, zone: sp) == text)
    }

    @Test(
        "Given full names, when the first name is taken, then only it is shown",
        arguments: [("Maria Aparecida da Silva", "Maria"), ("João", "João"), ("  Ana   Paula ", "Ana"), ("", "")])
    func firstName(_ full: String, _ first: String) {
        #expect(KioskMessages.firstName(full) == first)
    }

    @Test(
        "Given a roster name split by a tab, newline or no-break space (pasted from a spreadsheet), then only the first name is shown",
        arguments: ["Maria\tAparecida da Silva", "Maria\nAparecida da Silva", "Maria\u{00A0}Aparecida da Silva"])
    func firstNameOtherWhitespace(_ full: String) {
        do {
            #expect(KioskMessages.firstName(full) == "Maria")
        }
    }
}

@Suite("LocalDay: today in America/Sao_Paulo")
struct LocalDayTests {
    let sp = Clinic.saoPaulo

    @Test(
        "Given instants around local midnight, when the day is named, then São Paulo's date is used",
        arguments: [
            (Int64(1_795_921_200_000), "2026-11-29"),  // 00:00 local = 03:00Z
            (1_795_921_199_999, "2026-11-28"),  // 23:59:59.999 local the day before
            (1_795_959_000_000, "2026-11-29"),
            (1_796_007_599_999, "2026-11-29"),  // 02:59:59.999Z next UTC day
            (1_796_007_600_000, "2026-11-30"),
        ])
    func dayString(_ ms: Int64, _ day: String) {
        #expect(LocalDay.dayString(ms, zone: sp) == day)
    }

    @Test("Given a day, when bounded, then it runs from local midnight to the next")
    func bounds() throws {
        let (s, e) = try #require(LocalDay.bounds("2026-11-29", zone: sp))
        #expect(s == 1_795_921_200_000)
        #expect(e == 1_796_007_600_000)
        #expect(LocalDay.dayString(s, zone: sp) == "2026-11-29")
        #expect(LocalDay.dayString(e - 1, zone: sp) == "2026-11-29")
        #expect(LocalDay.dayString(e, zone: sp) == "2026-11-30")
    }

    @Test("Given the 2018 daylight-saving start in São Paulo, when bounded, then the day lasts 23 hours")
    func historicDST() throws {
        let (s, e) = try #require(LocalDay.bounds("2018-11-04", zone: sp))
        #expect(s == 1_541_300_400_000, "the day starts at 01:00 -02:00 (midnight does not exist)")
        let (nextStart, _) = try #require(LocalDay.bounds("2018-11-05", zone: sp))
        #expect(nextStart == 1_541_383_200_000, "the next day starts at its midnight, 00:00 -02:00")
        do {
            #expect(e == nextStart)
            #expect(e - s == 23 * Clinic.hour)
        }
    }

    @Test("Given consecutive days this year, when bounded, then each ends where the next begins")
    func daysTile() throws {
        var day = "2026-01-01"
        for _ in 0..<400 {
            let (s, e) = try #require(LocalDay.bounds(day, zone: sp))
            let next = LocalDay.addDays(day, 1, zone: sp)
            let (ns, _) = try #require(LocalDay.bounds(next, zone: sp))
            #expect(e == ns)
            #expect(e - s == 24 * Clinic.hour, "no daylight saving in São Paulo since 2019")
            day = next
        }
        #expect(day == "2027-02-05")
    }

    @Test(
        "Given malformed or impossible dates, when bounded, then nil",
        arguments: ["", "2026-11-2", "2026/11/29", "29-11-2026", "2026-02-30", "2025-02-29", "2026-11-31", "hoje", "2026-11-29T00:00"])
    func malformed(_ day: String) {
        #expect(LocalDay.bounds(day, zone: sp) == nil)
    }

    @Test(
        "Given out-of-range months or misplaced digits, when bounded, then nil",
        arguments: ["2026-13-01", "2026-00-10", "2026-1-011"])
    func malformedButNormalised(_ day: String) {
        do {
            #expect(LocalDay.bounds(day, zone: sp) == nil)
        }
    }

    @Test(
        "Given a day, when days are added, then months, years and leap days roll over",
        arguments: [
            ("2026-11-29", 1, "2026-11-30"), ("2026-11-29", -1, "2026-11-28"), ("2026-11-29", 7, "2026-12-06"),
            ("2026-12-31", 1, "2027-01-01"), ("2026-03-01", -1, "2026-02-28"), ("2028-03-01", -1, "2028-02-29"),
            ("2026-11-29", 0, "2026-11-29"), ("2018-11-03", 1, "2018-11-04"), ("2018-11-04", 1, "2018-11-05"),
            ("2019-02-16", 1, "2019-02-17"), ("not-a-day", 1, "not-a-day"),
        ])
    func addDays(_ day: String, _ n: Int, _ expected: String) {
        #expect(LocalDay.addDays(day, n, zone: sp) == expected)
    }
}
