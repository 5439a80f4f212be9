import EdgeCore
import Foundation
import Logging
import ServiceLifecycle

/// A housekeeping job: its name, how often it runs, whether it judges age by the wall clock
/// (then it waits for a steady clock), and what it does, given the tick's wall-clock time.
struct PeriodicJob: Sendable {
    let name: String
    /// How often it runs (at start, then once this long has passed, seen at the next tick).
    let periodNs: UInt64
    /// Skipped, until its next turn, within the hour after a wall-clock jump (a purge by age).
    let needsSteadyClock: Bool
    let body: @Sendable (_ nowMs: Int64) async -> Void

    init(
        _ name: String, every period: Duration, needsSteadyClock: Bool = false,
        _ body: @escaping @Sendable (_ nowMs: Int64) async -> Void
    ) {
        self.name = name
        let (s, atto) = period.components
        periodNs = UInt64(s) * 1_000_000_000 + UInt64(atto / 1_000_000_000)
        self.needsSteadyClock = needsSteadyClock; self.body = body
    }
}

/// When each job's turn comes (pure logic): every job is due at the first tick; after a
/// turn (run, or skipped for an unsteady clock) the next is one period later.
struct JobSchedule: Sendable {
    private(set) var nextDueNs: [UInt64?]
    init(jobs: Int) { nextDueNs = Array(repeating: nil, count: jobs) }
    /// The jobs to run at this tick, in their order; their turns are taken.
    mutating func due(_ jobs: [PeriodicJob], monoNs: UInt64, clockSteady: Bool) -> [Int] {
        var run: [Int] = []
        for (i, job) in jobs.enumerated() where nextDueNs[i].map({ monoNs >= $0 }) ?? true {
            nextDueNs[i] = monoNs + job.periodNs
            if clockSteady || !job.needsSteadyClock { run.append(i) }
        }
        return run
    }
}

/// The daemon's housekeeping jobs, run by one service: each second (after the work) the wall
/// clock is checked for a jump (said once, counted), then the jobs whose turn has come run,
/// one after the other in their order. Busy (for /healthz) while they run.
struct Housekeeping: Service, CustomStringConvertible {
    var description: String { "housekeeping" }
    let jobs: [PeriodicJob]
    let clockWatch: ClockWatch
    let state: EdgeState
    let metrics: EdgeMetrics
    let logger: Logger
    /// Purges judge age by the wall clock: not within the hour after a jump.
    static let steadyAfterNs: UInt64 = 3_600_000_000_000
    static let tick: Duration = .seconds(1)

    func run() async throws {
        await cancelWhenGracefulShutdown {
            var schedule = JobSchedule(jobs: jobs.count)
            while !Task.isCancelled {
                state.busy("housekeeping")
                let now = state.clock.nowMs(), mono = state.clock.monoNs()
                if let jump = clockWatch.observe(wallMs: now, monoNs: mono) { ClockJumpReport.say(jump, metrics: metrics, logger: logger) }
                let clockSteady = clockWatch.sinceLastJumpNs(monoNs: mono).map { $0 > Self.steadyAfterNs } ?? true
                for i in schedule.due(jobs, monoNs: mono, clockSteady: clockSteady) { await jobs[i].body(now) }
                state.idle("housekeeping")
                try? await state.clock.sleep(ns: UInt64(Self.tick.components.seconds) * 1_000_000_000)
            }
        }
    }
}
