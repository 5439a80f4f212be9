import EdgeCore
import Foundation

/// The cold-chain stories a fridge probe can play (CONTRACT §6), for
/// `medic-edge simulate --fridge-story` (the demo drives the same steps one by one, checking
/// the appliance between them).
public enum FridgeStory: String, CaseIterable, Sendable {
    /// The door open about a minute: the probe reads ~9 °C for a few minutes and comes back, an
    /// excursion shorter than the alarm delay (started and ended, no alarm).
    case doorShort = "door-short"
    /// The door left open: above 8 °C for longer than the alarm delay (started, alarm, ended).
    case doorLong = "door-long"
    /// The probe stops sending for longer than the silence time, then resumes (sensor silence
    /// raised, then cleared).
    case deadSensor = "dead-sensor"
    /// A data logger flushing a month of buffered readings (every 5 min, past `ts`, in time
    /// order, with flow control), then reading live.
    case history

    /// What the appliance should make of it.
    public var expectation: String {
        switch self {
        case .doorShort: return "clinic/coldchain.excursion started and ended, no alarm"
        case .doorLong: return "clinic/coldchain.excursion started, alarm (after the alarm delay) and ended"
        case .deadSensor: return "clinic/coldchain.sensor_silent raised (after the silence time), then cleared"
        case .history: return "a month of readings on the monthly chart, at their own times, with the past excursions"
        }
    }
}

/// The appliance's cold-chain timing the stories are played against (the room's `cold_chain`).
public struct FridgeStoryTiming: Sendable {
    public var alarmDelayMinutes: Double
    public var silenceMinutes: Double
    public var historyDays: Int
    public var historyIntervalSeconds: Double
    public var historyWindow: Int
    public var zone: TimeZone
    public init(
        alarmDelayMinutes: Double = 15, silenceMinutes: Double = 10, historyDays: Int = 30, historyIntervalSeconds: Double = 300,
        historyWindow: Int = 200, zone: TimeZone = TimeZone(identifier: "America/Sao_Paulo") ?? .current
    ) {
        self.alarmDelayMinutes = alarmDelayMinutes; self.silenceMinutes = silenceMinutes; self.historyDays = historyDays
        self.historyIntervalSeconds = historyIntervalSeconds; self.historyWindow = historyWindow; self.zone = zone
    }
}

extension FridgeSim {
    /// Waits (simulated time) until the fridge is back in its compressor cycle.
    func waitRecovered(maxReadings: Int = 60) async throws {
        for _ in 0..<maxReadings {
            let p = currentPhase
            if p == .warming || p == .cooling { return }
            try await simSleep(intervalSeconds, rate: rate)
        }
    }

    /// Plays one story at the device's simulated pace, telling `report` what it does. The
    /// device must be started (`DeviceSimulator.start()`).
    public func play(
        _ story: FridgeStory, timing: FridgeStoryTiming = FridgeStoryTiming(), report: @escaping @Sendable (String) -> Void
    ) async throws {
        let minutes = { (m: Double) in SimFormat.minutes(m) }
        report("story \(story.rawValue): expect \(story.expectation)")
        switch story {
        case .doorShort:
            try await simSleep(2 * intervalSeconds, rate: rate)
            report("the door is opened for about a minute")
            openDoor(peak: 9.0, holdReadings: 1)
            try await waitRecovered()
            report("back in the compressor cycle (\(SimFormat.celsius(currentTemperature)))")
        case .doorLong:
            try await simSleep(2 * intervalSeconds, rate: rate)
            let above = timing.alarmDelayMinutes + 3
            report("the door is left open: above 8 °C for \(minutes(above)) (the alarm delay is \(minutes(timing.alarmDelayMinutes)))")
            leaveDoorOpen(peak: 9.6)
            // The excursion starts with the first reading above 8 °C; the delay counts from there.
            while currentTemperature <= 8 && currentPhase == .doorOpen { try await simSleep(intervalSeconds / 4, rate: rate) }
            try await simSleep(above * 60, rate: rate)
            closeDoor()
            report("someone closes the door (\(SimFormat.celsius(currentTemperature)))")
            try await waitRecovered()
            report("back in the compressor cycle (\(SimFormat.celsius(currentTemperature)))")
        case .deadSensor:
            try await simSleep(2 * intervalSeconds, rate: rate)
            let quiet = timing.silenceMinutes + 3
            report("the probe dies: no reading for \(minutes(quiet)) (the silence time is \(minutes(timing.silenceMinutes)))")
            stopReadings()
            try await simSleep(quiet * 60, rate: rate)
            resumeReadings()
            report("the probe is replaced: readings resume")
            try await simSleep(2 * intervalSeconds, rate: rate)
        case .history:
            let h = FridgeHistory.make(
                endingAt: Date(), days: timing.historyDays, intervalSeconds: timing.historyIntervalSeconds, zone: timing.zone)
            let ex = h.excursions()
            report(
                "the data logger flushes its buffer: \(h.readings.count) readings every \(SimFormat.number(timing.historyIntervalSeconds / 60)) min "
                    + "over \(timing.historyDays) days, oldest first, at most \(timing.historyWindow) unacknowledged; "
                    + "\(ex.count) past excursions in it"
            )
            let b = try await sendHistory(h, window: timing.historyWindow, timeout: 600) { n in report("\(n) of \(h.readings.count) sent") }
            resumeReadings()
            report(
                "buffer flushed: \(b.readings) readings acked in \(String(format: "%.1f", b.seconds)) s "
                    + "(\(b.resent) resends, \(b.rejected) rejected); live readings resume")
        }
    }
}

/// Small number formats for the stories' lines.
enum SimFormat {
    static func number(_ d: Double) -> String { d == d.rounded() ? String(Int(d)) : String(format: "%.1f", d) }
    static func celsius(_ d: Double) -> String { String(format: "%.1f °C", d) }
    static func minutes(_ m: Double) -> String { m < 1 ? "\(number(m * 60)) s" : "\(number(m)) min" }
}
