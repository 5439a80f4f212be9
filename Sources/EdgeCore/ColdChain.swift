import Foundation

// The cold chain (CONTRACT §6): a room with a `cold_chain` section is a vaccine refrigerator
// whose temperature readings are a data logger's record. The pure parts live here: the
// room's settings, the excursion rule, and the records the chart is drawn from.

/// The working day, in minutes after local midnight (`workday: {opens: "07:00", closes: "19:00"}`).
public struct Workday: Sendable, Equatable {
    public var opensMinute: Int
    public var closesMinute: Int
    public init(opensMinute: Int, closesMinute: Int) { self.opensMinute = opensMinute; self.closesMinute = closesMinute }
    public static let standard = Workday(opensMinute: 7 * 60, closesMinute: 19 * 60)

    /// "07:00" → 420; nil unless HH:MM with 00 ≤ HH ≤ 23, 00 ≤ MM ≤ 59.
    public static func minute(of text: String) -> Int? {
        let parts = text.split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 2, parts[0].count == 2, parts[1].count == 2,
            let h = Int(parts[0]), let m = Int(parts[1]), (0...23).contains(h), (0...59).contains(m)
        else { return nil }
        return h * 60 + m
    }
    public static func text(ofMinute m: Int) -> String { String(format: "%02d:%02d", m / 60, m % 60) }
}

/// A cold-chain room's settings (`rooms.KEY.cold_chain`).
public struct ColdChainConfig: Sendable, Equatable {
    /// How long an excursion lasts before it is an alarm (a door opened for a minute is not).
    public var alarmDelayMinutes: Double
    /// No reading for this long is the sensor-silence alert.
    public var silenceMinutes: Double
    public var workday: Workday
    public init(alarmDelayMinutes: Double = 15, silenceMinutes: Double = 10, workday: Workday = .standard) {
        self.alarmDelayMinutes = alarmDelayMinutes; self.silenceMinutes = silenceMinutes; self.workday = workday
    }
    public var alarmDelayMs: Int64 { Int64((alarmDelayMinutes * 60_000).rounded()) }
    public var silenceMs: Int64 { Int64((silenceMinutes * 60_000).rounded()) }
}

/// One temperature reading of a cold-chain room, at the reading's time.
public struct ColdReading: Sendable, Equatable {
    public var atMs: Int64
    public var tempC: Double
    public init(atMs: Int64, tempC: Double) { self.atMs = atMs; self.tempC = tempC }
}

/// An excursion as recorded (`coldchain_excursions`).
public struct ExcursionRecord: Sendable, Equatable {
    public var id: String
    public var room: String
    public var device: String
    public var startedMs: Int64
    /// nil while open.
    public var endedMs: Int64?
    /// The lowest and highest readings from its first reading up to, not including, the one that ended it.
    public var minC: Double
    public var maxC: Double
    /// When the alarm transition was recorded (nil: not, or not yet, an alarm).
    public var alarmMs: Int64?
    public var ackBy: String?
    public var ackMs: Int64?
    public var action: String?
    public init(
        id: String, room: String, device: String, startedMs: Int64, endedMs: Int64? = nil, minC: Double, maxC: Double,
        alarmMs: Int64? = nil, ackBy: String? = nil, ackMs: Int64? = nil, action: String? = nil
    ) {
        self.id = id; self.room = room; self.device = device; self.startedMs = startedMs; self.endedMs = endedMs
        self.minC = minC; self.maxC = maxC; self.alarmMs = alarmMs; self.ackBy = ackBy; self.ackMs = ackMs; self.action = action
    }
    /// `started`, `alarm` or `ended`: the last transition.
    public var state: String { endedMs != nil ? "ended" : alarmMs != nil ? "alarm" : "started" }
    /// Seconds from start to end (or to `nowMs` while open).
    public func durationSeconds(nowMs: Int64) -> Int64 { max(0, ((endedMs ?? nowMs) - startedMs) / 1000) }
}

/// What one reading does to a cold-chain room's excursion (pure logic, CONTRACT §6).
public enum ExcursionRule {
    public enum Step: Equatable, Sendable {
        /// Nothing to record (inside the range, no excursion open).
        case none
        /// The first reading outside [min, max]: an excursion starts.
        case start
        /// An open excursion goes on (its min/max take this reading).
        case extend
        /// The first reading back inside [min + hysteresis, max − hysteresis] ends it (and is not part of it).
        case end
    }
    public static func step(open: Bool, value: Double, limits: MetricLimits) -> Step {
        if open {
            return value >= limits.min + limits.hysteresis && value <= limits.max - limits.hysteresis ? .end : .extend
        }
        return value < limits.min || value > limits.max ? .start : .none
    }

    /// Whether an excursion open since `startedMs` has lasted the alarm delay at `atMs`.
    public static func due(startedMs: Int64, atMs: Int64, delayMs: Int64) -> Bool { atMs - startedMs >= delayMs }

    /// The time a reading is recorded at: the device's `ts` when it is plausible (not more than
    /// 2 minutes ahead of the appliance's clock, not more than 40 days old: a data logger's
    /// buffer sent late), else the time it was received.
    public static func readingTime(ts: String?, receivedMs: Int64) -> Int64 {
        guard let ts, let t = Time.parseMs(ts) else { return receivedMs }
        guard t <= receivedMs + 120_000, t >= receivedMs - 40 * 86_400_000 else { return receivedMs }
        return t
    }
}
