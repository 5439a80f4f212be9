import EdgeCore
import Foundation
import Testing

/// The injected clock's sleep: `ManualClock` wakes a sleeper when it is advanced to its
/// deadline (never before, never by a wall-clock jump), and a cancelled sleeper throws.
@Suite("EdgeClock: sleeping on the manual and the system clock")
struct ManualClockTests {
    @Test("A 5 s sleep on the manual clock ends when the clock has moved 5 s of monotonic time, not before, and not by a wall jump")
    func wakesAtTheDeadline() async throws {
        let clock = ManualClock()
        let sleeper = Task { try await clock.sleep(seconds: 5) }
        #expect(await clock.untilSleeping())
        #expect(clock.sleepers == [5_000_000_000])
        clock.jumpWall(ms: 3_600_000)
        clock.advance(ms: 4_999)
        #expect(clock.sleepers == [1_000_000], "a wall jump and 4.999 s leave 1 ms to sleep")
        clock.advance(ms: 1)
        try await sleeper.value
        #expect(clock.sleepers.isEmpty)
    }

    @Test("Cancelling a task asleep on the manual clock ends its sleep with CancellationError")
    func cancelled() async throws {
        let clock = ManualClock()
        let sleeper = Task { () -> Bool in
            do { try await clock.sleep(seconds: 60); return false } catch { return error is CancellationError }
        }
        #expect(await clock.untilSleeping())
        sleeper.cancel()
        #expect(await sleeper.value, "CancellationError thrown")
        #expect(clock.sleepers.isEmpty)
        // Cancelled before (or while) it goes to sleep: the same.
        let early = Task { try await clock.sleep(seconds: 1) }
        early.cancel()
        await #expect(throws: CancellationError.self) { try await early.value }
        #expect(clock.sleepers.isEmpty)
    }

    @Test("The system clock sleeps for real, on the monotonic clock")
    func systemSleeps() async throws {
        let clock = SystemClock()
        let t0 = clock.monoNs()
        try await clock.sleep(ns: 20_000_000)
        #expect(clock.monoNs() - t0 >= 20_000_000)
    }
}
