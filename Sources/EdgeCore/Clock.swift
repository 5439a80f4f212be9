import Foundation
import Synchronization

/// The appliance's one clock, injected: the wall clock (what records and events say) and the
/// monotonic clock (what durations, deadlines and health are measured with; it never jumps).
/// The daemon uses `SystemClock`; tests use `ManualClock`, which moves only when told (a
/// session's expiry, a throttle's window, a broker down for 61 s — without sleeping).
public protocol EdgeClock: Sendable {
    /// Wall time, milliseconds since 1970 (UTC).
    func nowMs() -> Int64
    /// Monotonic nanoseconds since an arbitrary start.
    func monoNs() -> UInt64
}

/// The system's clocks: `Time.nowMs()` and `DispatchTime` (CLOCK_MONOTONIC).
public struct SystemClock: EdgeClock {
    public init() {}
    public func nowMs() -> Int64 { Time.nowMs() }
    public func monoNs() -> UInt64 { DispatchTime.now().uptimeNanoseconds }
}

/// A clock that moves only when told: `advance` moves both clocks together (time passing),
/// `jumpWall` moves the wall clock alone (an NTP step, a technician's `date -s`).
public final class ManualClock: EdgeClock {
    private let now: Mutex<(wallMs: Int64, monoNs: UInt64)>
    public init(ms: Int64 = 1_800_000_000_000, monoNs: UInt64 = 1_000_000_000) { now = Mutex((ms, monoNs)) }
    public func nowMs() -> Int64 { now.withLock { $0.wallMs } }
    public func monoNs() -> UInt64 { now.withLock { $0.monoNs } }
    public func advance(ms delta: Int64) {
        precondition(delta >= 0, "time passing never goes back; use jumpWall")
        now.withLock { $0.wallMs += delta; $0.monoNs += UInt64(delta) * 1_000_000 }
    }
    public func advance(seconds: Double) { advance(ms: Int64(seconds * 1000)) }
    public func jumpWall(ms delta: Int64) { now.withLock { $0.wallMs += delta } }
}
