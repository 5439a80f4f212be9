import Foundation
import Synchronization

/// The appliance's one clock, injected: the wall clock (what records and events say) and the
/// monotonic clock (what durations, deadlines and health are measured with; it never jumps).
/// The daemon uses `SystemClock`; tests use `ManualClock`, which moves only when told (a
/// session's expiry, a throttle's window, a broker down for 61 s, an uplink's backoff — without
/// sleeping).
public protocol EdgeClock: Sendable {
    /// Wall time, milliseconds since 1970 (UTC).
    func nowMs() -> Int64
    /// Monotonic nanoseconds since an arbitrary start.
    func monoNs() -> UInt64
    /// Waits `ns` nanoseconds of monotonic time; throws `CancellationError` when the task is
    /// cancelled meanwhile.
    func sleep(ns: UInt64) async throws
}

extension EdgeClock {
    /// Waits `seconds` (a NaN or a negative wait is none; at most a day).
    public func sleep(seconds: Double) async throws {
        let s = seconds.isFinite ? min(max(seconds, 0), 86_400) : 0
        try await sleep(ns: UInt64(s * 1e9))
    }
}

/// The system's clocks: `Time.nowMs()` and `DispatchTime` (CLOCK_MONOTONIC).
public struct SystemClock: EdgeClock {
    public init() {}
    public func nowMs() -> Int64 { Time.nowMs() }
    public func monoNs() -> UInt64 { DispatchTime.now().uptimeNanoseconds }
    public func sleep(ns: UInt64) async throws { try await Task.sleep(nanoseconds: ns) }
}

/// A clock that moves only when told: `advance` moves both clocks together (time passing),
/// `jumpWall` moves the wall clock alone (an NTP step, a technician's `date -s`). A `sleep`
/// returns when the clock is advanced to its deadline; `sleepers` says who is waiting, and
/// `untilSleeping` waits (for real, briefly) until a task under test has gone to sleep.
public final class ManualClock: EdgeClock {
    private struct Sleeper {
        let id: UInt64
        let deadlineNs: UInt64
        let wake: CheckedContinuation<Void, any Error>
    }
    private struct State {
        var wallMs: Int64
        var monoNs: UInt64
        var sleepers: [Sleeper] = []
        var nextId: UInt64 = 0
    }
    private let now: Mutex<State>
    public init(ms: Int64 = 1_800_000_000_000, monoNs: UInt64 = 1_000_000_000) { now = Mutex(State(wallMs: ms, monoNs: monoNs)) }
    public func nowMs() -> Int64 { now.withLock { $0.wallMs } }
    public func monoNs() -> UInt64 { now.withLock { $0.monoNs } }
    public func advance(ms delta: Int64) { advance(ns: UInt64(max(delta, 0)) * 1_000_000, wallMs: delta) }
    public func advance(seconds: Double) { advance(ms: Int64(seconds * 1000)) }
    /// Moves both clocks by `ns` nanoseconds (the wall clock by `ns` rounded down to ms).
    public func advance(ns: UInt64) { advance(ns: ns, wallMs: Int64(ns / 1_000_000)) }
    public func jumpWall(ms delta: Int64) { now.withLock { $0.wallMs += delta } }

    private func advance(ns: UInt64, wallMs: Int64) {
        precondition(wallMs >= 0, "time passing never goes back; use jumpWall")
        let due = now.withLock { st -> [Sleeper] in
            st.wallMs += wallMs; st.monoNs += ns
            let mono = st.monoNs
            let due = st.sleepers.filter { $0.deadlineNs <= mono }
            st.sleepers.removeAll { $0.deadlineNs <= mono }
            return due
        }
        for s in due { s.wake.resume() }
    }

    public func sleep(ns: UInt64) async throws {
        try Task.checkCancellation()
        if ns == 0 { await Task.yield(); return }
        let id = now.withLock { st -> UInt64 in
            st.nextId += 1; return st.nextId
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (wake: CheckedContinuation<Void, any Error>) in
                let cancelled = now.withLock { st -> Bool in
                    if Task.isCancelled { return true }
                    st.sleepers.append(Sleeper(id: id, deadlineNs: st.monoNs &+ ns, wake: wake))
                    return false
                }
                if cancelled { wake.resume(throwing: CancellationError()) }
            }
        } onCancel: {
            let s = now.withLock { st -> Sleeper? in
                guard let i = st.sleepers.firstIndex(where: { $0.id == id }) else { return nil }
                return st.sleepers.remove(at: i)
            }
            s?.wake.resume(throwing: CancellationError())
        }
    }

    /// The time left (ns) to each pending sleep, soonest first.
    public var sleepers: [UInt64] {
        now.withLock { st in st.sleepers.map { $0.deadlineNs &- st.monoNs }.sorted() }
    }

    /// Waits (polling, for real) until at least `count` tasks sleep on this clock; false after
    /// `timeout` seconds of real time.
    public func untilSleeping(_ count: Int = 1, timeout: Double = 10) async -> Bool {
        let deadline = DispatchTime.now().uptimeNanoseconds + UInt64(timeout * 1e9)
        while now.withLock({ $0.sleepers.count }) < count {
            if DispatchTime.now().uptimeNanoseconds > deadline { return false }
            try? await Task.sleep(nanoseconds: 200_000)
        }
        return true
    }
}
