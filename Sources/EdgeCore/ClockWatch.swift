import Foundation
import Synchronization

/// Watches the wall clock against the monotonic clock (CONTRACT §5 "Clock"): between two
/// observations, a wall clock that moved more than 10 minutes further than the monotonic
/// clock jumped forward; one that moved more than 2 minutes less (or back) jumped backward.
/// A forward jump's span of wall time (what the clock skipped over) is remembered for a day,
/// so the no-show check emits nothing for an appointment whose no-show moment fell inside it.
/// Observed by housekeeping every second and by the no-show check before it looks: whoever
/// observes first records the jump, once.
public final class ClockWatch: Sendable {
    public struct Jump: Sendable, Equatable {
        public enum Direction: String, Sendable { case forward, backward }
        public var direction: Direction
        /// Where the wall clock should have been (by the monotonic clock) and where it was.
        public var expectedMs: Int64
        public var actualMs: Int64
        public var seconds: Int64 { (actualMs - expectedMs) / 1000 }
    }
    public static let forwardLimitMs: Int64 = 10 * 60_000
    public static let backwardLimitMs: Int64 = 2 * 60_000
    static let keepSkipsMs: Int64 = 24 * 3600_000

    private struct S {
        var last: (wallMs: Int64, monoNs: UInt64)?
        var skipped: [(fromMs: Int64, toMs: Int64)] = []
        var lastJumpMonoNs: UInt64?
    }
    private let s = Mutex(S())

    public init() {}

    /// Compares this observation with the last; returns the jump, if any (reported once).
    public func observe(wallMs: Int64, monoNs: UInt64) -> Jump? {
        s.withLock { st -> Jump? in
            defer { st.last = (wallMs, monoNs) }
            guard let last = st.last, monoNs >= last.monoNs else { return nil }
            let expected = last.wallMs + Int64((monoNs - last.monoNs) / 1_000_000)
            let drift = wallMs - expected
            let jump: Jump
            if drift > ClockWatch.forwardLimitMs {
                jump = Jump(direction: .forward, expectedMs: expected, actualMs: wallMs)
                st.skipped.append((expected, wallMs))
            } else if drift < -ClockWatch.backwardLimitMs {
                jump = Jump(direction: .backward, expectedMs: expected, actualMs: wallMs)
            } else {
                return nil
            }
            st.skipped.removeAll { wallMs - $0.toMs > ClockWatch.keepSkipsMs }
            st.lastJumpMonoNs = monoNs
            return jump
        }
    }

    /// Whether the wall time `ms` lies in a span a forward jump skipped over.
    public func wasSkipped(_ ms: Int64) -> Bool {
        s.withLock { st in st.skipped.contains { ms > $0.fromMs && ms <= $0.toMs } }
    }

    /// Monotonic time since the last jump (nil: none seen). Purges by wall-clock age wait
    /// until the clock has been steady for a while.
    public func sinceLastJumpNs(monoNs: UInt64) -> UInt64? {
        s.withLock { st in st.lastJumpMonoNs.map { monoNs &- $0 } }
    }
}
