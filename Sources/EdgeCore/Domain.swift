import Foundation
import Crypto

/// Lowercase hex, by table (hot paths: every event id, every scan; no String(format:)).
public enum Hex {
    private static let digits: [UInt8] = Array("0123456789abcdef".utf8)
    public static func lower<S: Sequence>(_ bytes: S) -> String where S.Element == UInt8 {
        var out = [UInt8](); out.reserveCapacity(64)
        for b in bytes { out.append(digits[Int(b >> 4)]); out.append(digits[Int(b & 0x0f)]) }
        return String(decoding: out, as: UTF8.self)
    }
    /// Lowercase hex SHA-256 of a string's UTF-8 bytes.
    public static func sha256(_ text: String) -> String { lower(SHA256.hash(data: Array(text.utf8))) }
}

public enum QRCode {
    /// Lowercase hex SHA-256 of the scanned text's UTF-8 bytes (CONTRACT §1.2).
    public static func hash(_ text: String) -> String { Hex.sha256(text) }
}

public enum AppointmentStatus: String, Sendable, CaseIterable {
    case scheduled, confirmed, arrived, inProgress = "in_progress", completed, noShow = "no_show", cancelled, rescheduled
    public var checkinEligible: Bool { self == .scheduled || self == .confirmed || self == .noShow }
    public var alreadyIn: Bool { self == .arrived || self == .inProgress || self == .completed }
    /// Still expected: a no-show once its grace has passed without a check-in (CONTRACT §2).
    public var noShowCandidate: Bool { self == .scheduled || self == .confirmed }
}

public struct AppointmentInfo: Sendable, Equatable {
    public var id: String
    public var startMs: Int64
    public var endMs: Int64
    public var status: String
    public var checkedInLocally: Bool
    public init(id: String, startMs: Int64, endMs: Int64, status: String, checkedInLocally: Bool) {
        self.id = id; self.startMs = startMs; self.endMs = endMs; self.status = status; self.checkedInLocally = checkedInLocally
    }
}

public enum KioskOutcome: String, Sendable, CaseIterable {
    case checkedIn = "checked_in", alreadyCheckedIn = "already_checked_in", noAppointment = "no_appointment"
    case unknownCode = "unknown_code", invalidRequest = "invalid_request"
}

public enum CheckinPolicy {
    public enum Choice: Sendable, Equatable { case checkIn(String), already(String), none }

    /// CONTRACT §1.2: the earliest eligible appointment whose window
    /// [start − openBefore, end) contains now; else one already checked in within its window.
    public static func choose(_ appts: [AppointmentInfo], nowMs: Int64, openBeforeMs: Int64) -> Choice {
        let inWindow = appts.filter { $0.startMs - openBeforeMs <= nowMs && nowMs < $0.endMs }
            .sorted { ($0.startMs, $0.id) < ($1.startMs, $1.id) }
        if let a = inWindow.first(where: { !$0.checkedInLocally && (AppointmentStatus(rawValue: $0.status)?.checkinEligible ?? false) }) {
            return .checkIn(a.id)
        }
        if let a = inWindow.first(where: {
            let s = AppointmentStatus(rawValue: $0.status)
            guard s != .cancelled, s != .rescheduled else { return false }
            return $0.checkedInLocally || (s?.alreadyIn ?? false)
        }) {
            return .already(a.id)
        }
        return .none
    }
}

/// Environment alert hysteresis (CONTRACT §1.4).
public enum AlertRule {
    public enum Transition: String, Sendable { case raised, cleared }
    public static func evaluate(active: Bool, value: Double, limits: MetricLimits) -> Transition? {
        if !active {
            return (value < limits.min || value > limits.max) ? .raised : nil
        }
        return (value >= limits.min + limits.hysteresis && value <= limits.max - limits.hysteresis) ? .cleared : nil
    }
}

/// The no-show rule (CONTRACT §2).
/// The store's no-show query (`StoreTransaction.dueNoShows`) takes its statuses from here, and a
/// test runs it against `isNoShow` over a table of cases.
public enum NoShowRule {
    /// The statuses an appointment may be judged a no-show in.
    public static let statuses: [AppointmentStatus] = AppointmentStatus.allCases.filter(\.noShowCandidate)
    public static func isNoShow(status: String, checkedIn: Bool, startMs: Int64, nowMs: Int64, graceMs: Int64) -> Bool {
        guard AppointmentStatus(rawValue: status)?.noShowCandidate ?? false, !checkedIn else { return false }
        return startMs + graceMs <= nowMs
    }
}

/// Words shown to patients at the kiosk (Brazilian Portuguese, gender-neutral).
public enum KioskMessages {
    public static func clock(_ ms: Int64, zone: TimeZone) -> String {
        var cal = Calendar(identifier: .gregorian)
        cal.timeZone = zone
        let c = cal.dateComponents([.hour, .minute], from: Date(timeIntervalSince1970: Double(ms) / 1000))
        return String(format: "%02d:%02d", c.hour ?? 0, c.minute ?? 0)
    }

    public static func message(
        outcome: KioskOutcome, firstName: String?, professional: String?, room: String?,
        startMs: Int64?, zone: TimeZone
    ) -> String {
        let hello = firstName.map { "Olá, \($0)! " } ?? "Olá! "
        var detail = ""
        if let startMs {
            detail = " Sua consulta"
            if let p = professional, !p.isEmpty { detail += " com \(p)" }
            detail += " é às \(clock(startMs, zone: zone))"
            if let r = room, !r.isEmpty { detail += ", na \(r)" }
            detail += "."
        }
        switch outcome {
        case .checkedIn: return hello + "Check-in feito." + detail
        case .alreadyCheckedIn: return hello + "Seu check-in já estava feito." + detail
        case .noAppointment: return hello + "Não encontramos uma consulta sua para agora. Por favor, fale com a recepção."
        case .unknownCode: return "Código não reconhecido. Por favor, fale com a recepção."
        case .invalidRequest: return "Não conseguimos ler o código. Tente de novo ou fale com a recepção."
        }
    }

    public static func firstName(_ full: String) -> String {
        String(full.split(whereSeparator: { $0.isWhitespace }).first ?? "")
    }
}

/// What "today" is in the clinic's zone: local day boundaries in Unix ms.
public enum LocalDay {
    public static func dayString(_ ms: Int64, zone: TimeZone) -> String {
        var cal = Calendar(identifier: .gregorian); cal.timeZone = zone
        let c = cal.dateComponents([.year, .month, .day], from: Date(timeIntervalSince1970: Double(ms) / 1000))
        return String(format: "%04d-%02d-%02d", c.year!, c.month!, c.day!)
    }
    /// [start, end) of the local day `yyyy-mm-dd`, nil when malformed.
    public static func bounds(_ day: String, zone: TimeZone) -> (Int64, Int64)? {
        let p = day.split(separator: "-", omittingEmptySubsequences: false)
        guard day.utf8.count == 10, p.count == 3, p[0].count == 4, p[1].count == 2, p[2].count == 2,
            let y = Int(p[0]), let m = Int(p[1]), let d = Int(p[2]), (1...12).contains(m), d >= 1
        else { return nil }
        var cal = Calendar(identifier: .gregorian); cal.timeZone = zone
        guard let start = cal.date(from: DateComponents(year: y, month: m, day: d)),
            cal.component(.day, from: start) == d, cal.component(.month, from: start) == m,
            let next = cal.date(byAdding: .day, value: 1, to: start)
        else { return nil }
        // The next day's own start: on a day whose midnight is skipped by daylight saving,
        // "start + 1 day" would overlap the next day.
        let nc = cal.dateComponents([.year, .month, .day], from: next)
        guard let end = cal.date(from: DateComponents(year: nc.year, month: nc.month, day: nc.day)) else { return nil }
        return (Int64(start.timeIntervalSince1970 * 1000), Int64(end.timeIntervalSince1970 * 1000))
    }
    public static func addDays(_ day: String, _ n: Int, zone: TimeZone) -> String {
        guard let (s, _) = bounds(day, zone: zone) else { return day }
        var cal = Calendar(identifier: .gregorian); cal.timeZone = zone
        let d = cal.date(byAdding: .day, value: n, to: Date(timeIntervalSince1970: Double(s) / 1000))!
        return dayString(Int64(d.timeIntervalSince1970 * 1000), zone: zone)
    }
}
