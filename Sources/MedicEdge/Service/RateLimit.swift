import EdgeCore
import Synchronization

/// Things of one kind said at most once per interval, with what happened meanwhile added up:
/// a failing disk, cloud or broker must not flood the journal, and the line that does come
/// says how much it stands for. One per owner (the uplink, the disk budget, the MQTT link).
final class RateLimit: Sendable {
    /// What happened since the last line: how many times, and the sum of each value given.
    struct Tally: Sendable, Equatable {
        var count = 0
        var sums: [Int] = []
        func sum(_ i: Int) -> Int { i < sums.count ? sums[i] : 0 }
    }
    private struct Entry { var lastNs: UInt64?; var tally = Tally() }
    private let entries = Mutex<[String: Entry]>([:])
    /// The monotonic clock the intervals are measured on.
    private let clock: any EdgeClock

    init(clock: any EdgeClock = SystemClock()) { self.clock = clock }

    /// Counts one happening of `kind` with its `values`. Returns the tally since the last line
    /// (this one included) when a line is due, the first time or `every` seconds after the last;
    /// nil while it is held back.
    func note(_ kind: String, every seconds: Double, _ values: Int...) -> Tally? {
        let nowNs = clock.monoNs()
        return entries.withLock { map -> Tally? in
            var e = map[kind] ?? Entry()
            e.tally.count += 1
            if e.tally.sums.count < values.count { e.tally.sums += Array(repeating: 0, count: values.count - e.tally.sums.count) }
            for (i, v) in values.enumerated() { e.tally.sums[i] += v }
            let due = e.lastNs.map { nowNs &- $0 >= UInt64(seconds * 1e9) } ?? true
            var said: Tally?
            if due { said = e.tally; e.tally = Tally(); e.lastNs = nowNs }
            map[kind] = e
            return said
        }
    }

    /// A run of `kind` is over: what was held back since its last line (nil: nothing), and
    /// the next happening is said at once.
    func end(_ kind: String) -> Tally? {
        entries.withLock { map in
            guard let e = map.removeValue(forKey: kind), e.tally.count > 0 else { return nil }
            return e.tally
        }
    }
}
