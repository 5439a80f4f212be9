import EdgeCore
import Foundation

/// A vaccine fridge data logger's record: readings every `intervalSeconds` (5 min) for `days`
/// days ending at a given time, as a logger's buffer holds them (the `history` story: sent to
/// the appliance in time order with past `ts`, CONTRACT §6). Deterministic for a seed, so the
/// demo can check the appliance's monthly chart reading by reading.
///
/// The shape, in the clinic's time zone:
/// - a compressor sawtooth, 3.7 → 6.2 °C over 17 min and back in 5 min (a 22-min cycle);
/// - the clinic's door pattern on working days (Monday to Friday): the fridge is opened at
///   07:30 (the morning check and the day's vaccines, +1.4 °C), 12:15 and 16:40 (+0.9 °C),
///   each bump fading over ~15 min, inside 2–8 °C;
/// - two excursions: 4 days before the end at 14:05 the door is left ajar for 35 min (up to
///   9.6 °C: above 8 °C for ~30 min, an alarm with a 15-min delay), and 19 days before the end
///   at 03:10 a 50-min power cut (+0.1 °C/min, then the compressor pulls it down again).
public struct FridgeHistory: Sendable {
    public struct Reading: Sendable, Equatable {
        public var at: Date
        public var temperatureC: Double
    }
    public struct Excursion: Sendable, Equatable {
        public var startedAt: Date
        /// The first reading back inside [min + hysteresis, max − hysteresis].
        public var endedAt: Date
        public var minC: Double
        public var maxC: Double
    }

    public let readings: [Reading]
    public let intervalSeconds: Double
    public let zone: TimeZone
    /// The sample config's fridge limits (2–8 °C, hysteresis 0.5).
    public static let limits = MetricLimits(min: 2, max: 8, hysteresis: 0.5)

    /// `days` of readings every `intervalSeconds`, the last one on the interval grid at or before `end`.
    public static func make(
        endingAt end: Date, days: Int = 30, intervalSeconds: Double = 300, zone: TimeZone, seed: UInt64 = 1
    ) -> FridgeHistory {
        let interval = max(1, intervalSeconds)
        let count = max(1, Int((Double(days) * 86_400 / interval).rounded()))
        let last = (end.timeIntervalSince1970 / interval).rounded(.down) * interval
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = zone
        // The two excursions, at local times on their days.
        func local(daysBefore: Int, _ h: Int, _ m: Int) -> Double {
            let day = calendar.date(byAdding: .day, value: -daysBefore, to: Date(timeIntervalSince1970: last))!
            var c = calendar.dateComponents([.year, .month, .day], from: day)
            c.hour = h; c.minute = m
            return calendar.date(from: c)!.timeIntervalSince1970
        }
        let doorAjar = local(daysBefore: 4, 14, 5)
        let powerCut = local(daysBefore: 19, 3, 10)
        var rng = SimRandom(seed: seed)
        var out: [Reading] = []
        out.reserveCapacity(count)
        for k in 0..<count {
            let t = last - Double(count - 1 - k) * interval
            var temp = sawtooth(t)
            let parts = calendar.dateComponents([.weekday, .hour, .minute], from: Date(timeIntervalSince1970: t))
            let weekday = parts.weekday ?? 1  // 1 = Sunday
            if (2...6).contains(weekday) {
                let wholeMinutes: Int = (parts.hour ?? 0) * 60 + (parts.minute ?? 0)
                let minuteOfDay: Double = Double(wholeMinutes) + t.truncatingRemainder(dividingBy: 60) / 60
                for opening in doorOpenings {
                    temp += bump(minutes: minuteOfDay - opening.minute, rise: opening.rise)
                }
            }
            temp = ajar(temp, minutes: (t - doorAjar) / 60)
            temp = cut(temp, minutes: (t - powerCut) / 60)
            temp += Double.random(in: -0.08...0.08, using: &rng)
            out.append(Reading(at: Date(timeIntervalSince1970: t), temperatureC: round1(temp)))
        }
        return FridgeHistory(readings: out, intervalSeconds: interval, zone: zone)
    }

    /// The clinic's door pattern on working days: minute of the local day, and the rise.
    static let doorOpenings: [(minute: Double, rise: Double)] = [(450, 1.4), (735, 0.9), (1000, 0.9)]

    /// The compressor cycle: 3.7 → 6.2 °C in 17 min, back in 5 min.
    static func sawtooth(_ t: Double) -> Double {
        let phase = (t / 60).truncatingRemainder(dividingBy: 22)
        return phase < 17 ? 3.7 + 2.5 * phase / 17 : 6.2 - 2.5 * (phase - 17) / 5
    }

    /// A door opened for a moment: up by `rise` over 5 min, then fading (time constant 6 min).
    static func bump(minutes m: Double, rise: Double) -> Double {
        if m < 0 || m > 60 { return 0 }
        return m < 5 ? rise * m / 5 : rise * exp(-(m - 5) / 6)
    }

    /// The door left ajar: towards 9.6 °C over 12 min, there until 35 min, then back (6 min).
    static func ajar(_ base: Double, minutes m: Double) -> Double {
        if m < 0 || m > 90 { return base }
        let peak = 9.6
        if m < 12 { return base + (peak - base) * m / 12 }
        if m < 35 { return peak }
        return base + (peak - base) * exp(-(m - 35) / 6)
    }

    /// A power cut: +0.1 °C/min for 50 min, then the compressor pulls it down at 0.35 °C/min.
    static func cut(_ base: Double, minutes m: Double) -> Double {
        if m < 0 || m > 120 { return base }
        let top = 5.0 + 0.1 * min(m, 50)
        let warm = m <= 50 ? top : top - 0.35 * (m - 50)
        return max(base, warm)
    }

    /// The excursions in `readings` as the appliance's rule finds them (EdgeCore `ExcursionRule`).
    public func excursions(limits: MetricLimits = FridgeHistory.limits) -> [Excursion] {
        var out: [Excursion] = []
        var open: Excursion?
        for r in readings {
            switch ExcursionRule.step(open: open != nil, value: r.temperatureC, limits: limits) {
            case .none: break
            case .start: open = Excursion(startedAt: r.at, endedAt: r.at, minC: r.temperatureC, maxC: r.temperatureC)
            case .extend:
                if var e = open {
                    e.minC = min(e.minC, r.temperatureC); e.maxC = max(e.maxC, r.temperatureC)
                    open = e
                }
            case .end:
                if var e = open { e.endedAt = r.at; out.append(e) }
                open = nil
            }
        }
        return out
    }

    /// The local day ("YYYY-MM-DD", in `zone`) of a time.
    public func day(_ d: Date) -> String {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = zone
        let c = calendar.dateComponents([.year, .month, .day], from: d)
        return String(format: "%04d-%02d-%02d", c.year ?? 0, c.month ?? 0, c.day ?? 0)
    }

    /// Readings per local day.
    public func readingsPerDay() -> [String: Int] {
        var out: [String: Int] = [:]
        for r in readings { out[day(r.at), default: 0] += 1 }
        return out
    }

    /// Checks the appliance's monthly chart rows (CONTRACT §6: the `days` of
    /// `GET /api/v1/coldchain/{room}/chart`) against this record: every day it covers — but
    /// the first (partial, and at the edge of the appliance's 30-day thinning) and
    /// `excludingDay` (e.g. today, with live readings too) — must have as many readings as were
    /// sent and as many excursions as `excursions()` finds overlapping it. Returns the days
    /// checked and one line per mismatch.
    public func check(chartDays: [JSON], excludingDay: String? = nil) -> (checked: Int, mismatches: [String]) {
        let perDay = readingsPerDay()
        var perDayExcursions: [String: Int] = [:]
        for e in excursions() {
            for d in Set([day(e.startedAt), day(e.endedAt.addingTimeInterval(-0.001))]) { perDayExcursions[d, default: 0] += 1 }
        }
        let first = readings.first.map { day($0.at) }
        var checked = 0
        var mismatches: [String] = []
        for row in chartDays {
            guard let date = row["date"]?.stringValue, let sent = perDay[date], date != first, date != excludingDay else { continue }
            let got = row["readings"]?.doubleValue.map { Int($0) }
            let gotExcursions = row["excursions"]?.arrayValue?.count
            let want = perDayExcursions[date, default: 0]
            if got != sent || gotExcursions != want {
                mismatches.append(
                    "\(date): the chart has \(got.map(String.init) ?? "no") readings and \(gotExcursions.map(String.init) ?? "no") excursions, "
                        + "the logger sent \(sent) readings with \(want) excursions")
            }
            checked += 1
        }
        return (checked, mismatches)
    }

    /// The months ("YYYY-MM") the record covers, oldest first.
    public var months: [String] {
        var seen: [String] = []
        for r in readings {
            let m = String(day(r.at).prefix(7))
            if seen.last != m { seen.append(m) }
        }
        return seen
    }
}
