import EdgeCore
import EdgeStore
import Foundation
import Logging

/// The cold chain's timers (CONTRACT §6), a housekeeping job run every second: an open
/// excursion becomes an alarm once it has lasted `alarm_delay_minutes` (without waiting for
/// the next reading), a fridge unheard for `silence_minutes` raises its silence alert, both
/// judged on the monotonic clock; and the fridges' gauges are kept for /metrics.
struct ColdChainWatch: Sendable {
    let config: EdgeConfig
    let db: AppDatabase
    let anchors: ColdChainAnchors
    let clock: any EdgeClock
    let metrics: EdgeMetrics
    let logger: Logger
    let ids: UUIDv7
    /// The daemon's start on the monotonic clock: a fridge never heard is silent this long after it.
    let startMonoNs: UInt64
    let rooms: [(key: String, settings: ColdChainConfig, limits: MetricLimits)]

    init(config: EdgeConfig, db: AppDatabase, anchors: ColdChainAnchors, clock: any EdgeClock, metrics: EdgeMetrics, logger: Logger) {
        self.config = config; self.db = db; self.anchors = anchors; self.clock = clock; self.metrics = metrics; self.logger = logger
        ids = .shared
        startMonoNs = clock.monoNs()
        rooms = config.rooms.keys.sorted().compactMap { key in
            ColdChainDesk.settings(config, room: key).map { (key, $0.0, $0.1) }
        }
        for room in rooms { metrics.coldChainExcursionStarted(room: room.key, by: 0) }
    }

    var desk: ColdChainDesk { ColdChainDesk(config: config, ids: ids, anchors: anchors) }

    func name(_ room: String) -> String { config.rooms[room]?.name ?? room }

    func tick(nowMs: Int64) async {
        for room in rooms {
            do { try await tick(room: room, nowMs: nowMs) } catch {
                logger.error("cold chain: \(room.key): the timer's check failed: \(error); retrying in a second")
            }
        }
    }

    private func tick(room: (key: String, settings: ColdChainConfig, limits: MetricLimits), nowMs: Int64) async throws {
        let key = room.key, cc = room.settings
        let (open, sensor, temp) = try await db.read { tx in
            (
                try tx.openExcursion(room: key), try tx.coldSensor(room: key),
                try tx.roomBoard(key: key).readings.first { $0.metric == ColdChainDesk.temperature }?.value
            )
        }
        let mono = clock.monoNs()
        var alarmOn = open?.alarmMs != nil
        if let e = open, e.alarmMs == nil {
            let anchor = anchors.excursionAnchor(room: key) { ColdChainAnchors.moment(monoNs: mono, agoMs: nowMs - e.startedMs) }
            if mono >= anchor, mono - anchor >= UInt64(cc.alarmDelayMs) * 1_000_000 {
                let desk = self.desk
                let raised = try await db.write { tx -> Bool in
                    guard let cur = try tx.openExcursion(room: key), cur.id == e.id, cur.alarmMs == nil else { return false }
                    try desk.alarm(tx, cur, atMs: nowMs, nowMs: nowMs)
                    return true
                }
                if raised {
                    alarmOn = true
                    let since = Time.rfc3339(ms: e.startedMs)
                    logger.error("cold chain: \(name(key)): temperature out of range since \(since) — ALARM (\(cc.alarmDelayMinutes) min)")
                }
            }
        }
        var silent = sensor?.silentSinceMs != nil
        if !silent {
            let fallback = sensor?.lastHeardMs.map { ColdChainAnchors.moment(monoNs: mono, agoMs: nowMs - $0) } ?? startMonoNs
            let heard = anchors.heardAnchor(room: key) { fallback }
            if mono >= heard, mono - heard >= UInt64(cc.silenceMs) * 1_000_000 {
                let desk = self.desk, anchors = self.anchors, silenceNs = UInt64(cc.silenceMs) * 1_000_000
                silent = try await db.write { tx -> Bool in
                    // A reading heard meanwhile (ingest holds the writer while it records one) wins.
                    let h = anchors.heardAnchor(room: key) { fallback }
                    guard mono >= h, mono - h >= silenceNs else { return false }
                    let cur = try tx.coldSensor(room: key)
                    guard cur?.silentSinceMs == nil else { return true }
                    try tx.setColdSensorSilent(room: key, sinceMs: nowMs)
                    try desk.silenceEvent(tx, room: key, device: cur?.device, state: "raised", lastReadingMs: cur?.lastReadingMs, nowMs: nowMs)
                    return true
                }
                if silent {
                    let last = sensor?.lastReadingMs.map { Time.rfc3339(ms: $0) } ?? "never"
                    logger.error("cold chain: \(name(key)): no reading for \(cc.silenceMinutes) min (last: \(last)) — sensor silent")
                }
            }
        }
        metrics.coldChain(room: key, tempC: temp, limits: room.limits, open: open != nil, alarm: open != nil && alarmOn, silent: silent)
    }
}

extension ColdChainWatch {
    /// Readings older than this are thinned to the first, last, lowest and highest of each
    /// 15 minutes (CONTRACT §6: at least one per 15 minutes for 3 years).
    static let thinAfterMs: Int64 = 30 * 86_400_000
    static let bucketMs: Int64 = 15 * 60_000
    /// Cold-chain records are kept this long (3 years).
    static let keepMs: Int64 = 1095 * 86_400_000
    /// Rows per transaction: the writer (kiosk scans) never waits long behind a purge.
    static let batchRows = 2000

    /// Thins and purges in bounded batches, yielding between them.
    func retention(nowMs: Int64) async {
        let keepFrom = nowMs - Self.keepMs
        let keepDate = LocalDay.dayString(keepFrom, zone: config.timeZone)
        var thinned = 0, purged = 0
        do {
            for _ in 0..<500 {
                let n = try await db.write {
                    try $0.thinColdReadings(beforeMs: nowMs - Self.thinAfterMs, bucketMs: Self.bucketMs, limit: Self.batchRows)
                }
                thinned += n
                if n < Self.batchRows { break }
                await Task.yield()
            }
            for _ in 0..<500 {
                let n = try await db.write { try $0.purgeColdChain(beforeMs: keepFrom, beforeDate: keepDate, limit: Self.batchRows) }
                purged += n
                if n == 0 { break }
                await Task.yield()
            }
        } catch {
            logger.error("cold chain: retention failed: \(error); retrying in an hour")
        }
        if thinned + purged > 0 {
            logger.info("cold chain: retention thinned \(thinned) readings older than 30 days, removed \(purged) records older than 3 years")
        }
    }
}

extension ColdChainWatch {
    /// How far back a day whose summary was not sent (the appliance was off at its closing) is still sent.
    static let summaryCatchUpDays = 7

    /// `clinic/coldchain.daily_summary`, once per fridge and local day, after the workday's
    /// `closes` (CONTRACT §6): the day's row of the chart. Days before the fridge's first
    /// reading are not summarised; a day missed while the appliance was off is sent when it runs
    /// again (up to `summaryCatchUpDays` back).
    func dailySummaries(nowMs: Int64) async {
        let zone = config.timeZone
        let today = LocalDay.dayString(nowMs, zone: zone)
        for room in rooms {
            let key = room.key, workday = room.settings.workday
            do {
                guard let first = try await db.read({ try $0.firstColdReadingMs(room: key) }) else { continue }
                let firstDay = LocalDay.dayString(first, zone: zone)
                for back in (0...Self.summaryCatchUpDays).reversed() {
                    let date = LocalDay.addDays(today, -back, zone: zone)
                    guard date >= firstDay, let (start, end) = LocalDay.bounds(date, zone: zone) else { continue }
                    guard nowMs >= start + Int64(workday.closesMinute) * 60_000 else { continue }
                    if try await db.read({ try $0.dailySummarySent(room: key, date: date) }) { continue }
                    try await summarise(key: key, date: date, start: start, end: end, workday: workday, nowMs: nowMs)
                }
            } catch {
                logger.error("cold chain: \(key): the daily summary failed: \(error); retrying in a minute")
            }
        }
    }

    private func summarise(key: String, date: String, start: Int64, end: Int64, workday: Workday, nowMs: Int64) async throws {
        let config = self.config, ids = self.ids
        // From the day before's start: its closing moment (the overnight window's start) is in it.
        let (readings, excursions) = try await db.read { tx in
            (
                try tx.coldReadings(room: key, fromMs: start - 86_400_000 - 3_600_000, toMs: end),
                try tx.excursions(room: key, overlappingFrom: start, to: end)
            )
        }
        let day = try ColdChainChart.day(
            date: date, timeZone: config.timeZone, workday: workday, readings: readings, excursions: excursions, nowMs: nowMs)
        try await db.write { tx in
            guard try !tx.dailySummarySent(room: key, date: date) else { return }
            let cloud = try Rooms.cloudId(tx, key: key)
            let data = JSONText.object { j in
                j.add("tenant_id", config.tenantId); j.add("site_id", config.siteId); j.add("room_id", key)
                if let cloud { j.add("cloud_room_id", cloud) }
                ColdChainChart.addSummary(day, to: &j)
            }
            let id = try tx.enqueue(
                name: "clinic/coldchain.daily_summary", eventClass: .clinical, source: "room:\(key)", data: data, nowMs: nowMs, ids: ids)
            try tx.markDailySummarySent(room: key, date: date, eventId: id, nowMs: nowMs)
        }
    }
}
