import EdgeCore
import EdgeStore
import Foundation
import Testing

/// CONTRACT §6: a fridge's readings are kept at least one per 15 minutes for 3 years; older
/// than 30 days they may be thinned. The store keeps, of each 15-minute bucket, its first,
/// last, lowest and highest reading, so a day's extremes, opening and closing survive.
@Suite("Cold chain: thinning after 30 days, purge after 3 years (real SQLite file)")
struct ColdChainRetentionTests {
    static let minute: Int64 = 60_000
    static let day: Int64 = 86_400_000
    static let now: Int64 = 1_800_000_000_000 / (15 * 60_000) * (15 * 60_000)

    /// A reading every minute for 40 days, with a known shape (a sawtooth and a spike each day).
    static func temp(_ t: Int64) -> Double {
        let m = Double((t / minute) % 90)
        return 3.0 + m / 30.0 + ((t / minute) % 1440 == 600 ? 6 : 0)
    }

    @Test("Thinning keeps ≥ 1 reading per 15 min and each bucket's extremes, first and last; recent readings untouched; batches bounded")
    func thinning() throws {
        let dir = try TempDir()
        defer { dir.cleanup() }
        let store = try AppDatabase.open(dataDir: dir.path)
        let from = Self.now - 40 * Self.day
        try store.write { tx in
            var t = from
            while t < Self.now {
                try tx.recordColdReading(room: "g", atMs: t, device: "p1", tempC: Self.temp(t))
                t += Self.minute
            }
        }
        let cut = Self.now - 30 * Self.day
        let before = try store.read { try $0.coldReadings(room: "g", fromMs: from, toMs: Self.now) }
        // Bounded batches: each call deletes at most `limit` rows.
        var rounds = 0, deleted = 0
        while true {
            let n = try store.write { try $0.thinColdReadings(beforeMs: cut, bucketMs: 15 * Self.minute, limit: 1000) }
            #expect(n <= 1000)
            deleted += n; rounds += 1
            if n == 0 { break }
        }
        #expect(rounds > 5, "the purge went in many small batches (\(rounds))")
        let after = try store.read { try $0.coldReadings(room: "g", fromMs: from, toMs: Self.now) }
        #expect(deleted == before.count - after.count && deleted > 0)
        // Every 15-minute bucket before the cut keeps its first, last, lowest and highest reading.
        let bucket = 15 * Self.minute
        let old = Dictionary(grouping: before.filter { $0.atMs < cut }, by: { $0.atMs / bucket })
        let kept = Dictionary(grouping: after.filter { $0.atMs < cut }, by: { $0.atMs / bucket })
        #expect(old.count == kept.count, "no 15-minute bucket emptied")
        for (b, rows) in old {
            let k = try #require(kept[b])
            #expect(k.count <= 4)
            #expect(k.first == rows.first && k.last == rows.last)
            #expect(k.map(\.tempC).min() == rows.map(\.tempC).min() && k.map(\.tempC).max() == rows.map(\.tempC).max())
        }
        // Each old day's extremes are unchanged (the chart of an old month still reads the same).
        let oldDays = Dictionary(grouping: before.filter { $0.atMs < cut }, by: { $0.atMs / Self.day })
        let keptDays = Dictionary(grouping: after.filter { $0.atMs < cut }, by: { $0.atMs / Self.day })
        for (d, rows) in oldDays {
            #expect(keptDays[d]?.map(\.tempC).max() == rows.map(\.tempC).max())
            #expect(keptDays[d]?.map(\.tempC).min() == rows.map(\.tempC).min())
        }
        // The last 30 days are whole.
        #expect(after.filter { $0.atMs >= cut } == before.filter { $0.atMs >= cut })
    }

    @Test("Records older than 3 years go (readings, ended excursions, summaries); younger ones and an open excursion stay")
    func purge() throws {
        let dir = try TempDir()
        defer { dir.cleanup() }
        let store = try AppDatabase.open(dataDir: dir.path)
        let threeYears = 1095 * Self.day
        let limits = MetricLimits(min: 2, max: 8, hysteresis: 0.5)
        try store.write { tx in
            for (i, age) in [threeYears + Self.day, threeYears - Self.day].enumerated() {
                let t = Self.now - age
                try tx.recordColdReading(room: "g", atMs: t, device: "p1", tempC: 9)
                try tx.startExcursion(
                    ExcursionRecord(id: "e\(i)", room: "g", device: "p1", startedMs: t, endedMs: t + Self.minute, minC: 9, maxC: 9),
                    limits: limits)
                try tx.markDailySummarySent(room: "g", date: LocalDay.dayString(t, zone: TimeZone(identifier: "UTC")!), eventId: "d\(i)", nowMs: t)
            }
            try tx.startExcursion(
                ExcursionRecord(id: "open", room: "h", device: "p2", startedMs: Self.now - threeYears - 5 * Self.day, minC: 1, maxC: 1),
                limits: limits)
        }
        let keepDate = LocalDay.dayString(Self.now - threeYears, zone: TimeZone(identifier: "UTC")!)
        let n = try store.write { try $0.purgeColdChain(beforeMs: Self.now - threeYears, beforeDate: keepDate, limit: 100) }
        #expect(n == 3)
        let utc = TimeZone(identifier: "UTC")!
        let (readings, e0, e1, open, oldDay) = try store.read { tx in
            (
                try tx.coldReadings(room: "g", fromMs: 0, toMs: Self.now).count, try tx.excursion(id: "e0"), try tx.excursion(id: "e1"),
                try tx.openExcursion(room: "h"),
                try tx.dailySummarySent(room: "g", date: LocalDay.dayString(Self.now - threeYears - Self.day, zone: utc))
            )
        }
        #expect(readings == 1)
        #expect(e0 == nil && e1 != nil)
        #expect(open?.id == "open", "an open excursion is never purged")
        #expect(!oldDay)
    }
}
