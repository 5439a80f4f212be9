import EdgeCore
import EdgeStore
import Foundation
import Synchronization

/// The cold chain's record keeping (CONTRACT §6), inside the transaction that stores a
/// reading or a timer's transition: the reading logged, the excursion started, extended,
/// alarmed or ended, the sensor's silence cleared, and each transition's event enqueued in
/// the same commit (its id fixed when the fact is recorded).
struct ColdChainDesk {
    let config: EdgeConfig
    let ids: UUIDv7
    let anchors: ColdChainAnchors
    var metrics: EdgeMetrics? = nil

    static let temperature = EnvironmentMetric.temperatureC.rawValue

    /// The fridge's settings and temperature limits (nil: not a cold-chain room).
    static func settings(_ config: EdgeConfig, room: String) -> (ColdChainConfig, MetricLimits)? {
        guard let r = config.rooms[room], let cc = r.coldChain, let limits = r.limits[temperature] else { return nil }
        return (cc, limits)
    }

    /// One temperature reading of a cold-chain room, received at `receivedMs` (its own time:
    /// `ExcursionRule.readingTime`). A reading older than the latest one judged is logged
    /// (the chart shows it) but does not move the excursion: a late reading cannot reopen the past.
    func reading(
        _ db: StoreTransaction, room: String, device: String, tempC: Double, ts: String?, receivedMs: Int64, monoNs: UInt64
    ) throws {
        guard let (cc, limits) = Self.settings(config, room: room) else { return }
        let at = ExcursionRule.readingTime(ts: ts, receivedMs: receivedMs)
        try db.recordColdReading(room: room, atMs: at, device: device, tempC: tempC)
        let sensor = try db.coldSensor(room: room)
        let inOrder = sensor?.lastReadingMs.map { at >= $0 } ?? true
        try db.heardColdSensor(room: room, device: device, readingMs: at, heardMs: receivedMs)
        anchors.heard(room: room, monoNs: monoNs)
        if sensor?.silentSinceMs != nil {
            try db.setColdSensorSilent(room: room, sinceMs: nil)
            try silenceEvent(db, room: room, device: device, state: "cleared", lastReadingMs: at, nowMs: receivedMs)
        }
        guard inOrder else { return }
        let open = try db.openExcursion(room: room)
        switch ExcursionRule.step(open: open != nil, value: tempC, limits: limits) {
        case .none:
            break
        case .start:
            let e = ExcursionRecord(id: ids.next(nowMs: receivedMs), room: room, device: device, startedMs: at, minC: tempC, maxC: tempC)
            try db.startExcursion(e, limits: limits)
            // The alarm timer counts from this reading's receipt (a logger's late buffer is judged
            // by its readings' times below, not by the timer).
            anchors.excursionStarted(room: room, monoNs: monoNs)
            try excursionEvent(db, e, state: "started", nowMs: receivedMs)
            metrics?.coldChainExcursionStarted(room: room)
            if cc.alarmDelayMs == 0 { try alarm(db, e, atMs: at, nowMs: receivedMs) }
        case .extend:
            guard var e = open else { break }
            e.minC = min(e.minC, tempC); e.maxC = max(e.maxC, tempC); e.device = device
            try db.extendExcursion(id: e.id, minC: e.minC, maxC: e.maxC, device: device)
            // A reading's own time can show the delay passed before the timer saw it (a logger's buffer).
            if e.alarmMs == nil, ExcursionRule.due(startedMs: e.startedMs, atMs: at, delayMs: cc.alarmDelayMs) {
                try alarm(db, e, atMs: e.startedMs + cc.alarmDelayMs, nowMs: receivedMs)
            }
        case .end:
            guard var e = open else { break }
            if e.alarmMs == nil, ExcursionRule.due(startedMs: e.startedMs, atMs: at, delayMs: cc.alarmDelayMs) {
                try alarm(db, e, atMs: e.startedMs + cc.alarmDelayMs, nowMs: receivedMs)
                e.alarmMs = e.startedMs + cc.alarmDelayMs
            }
            e.endedMs = at
            try db.endExcursion(id: e.id, endedMs: at)
            anchors.excursionEnded(room: room)
            try excursionEvent(db, e, state: "ended", nowMs: receivedMs)
        }
    }

    /// The alarm transition: recorded once, its event sent.
    func alarm(_ db: StoreTransaction, _ e: ExcursionRecord, atMs: Int64, nowMs: Int64) throws {
        try db.markExcursionAlarm(id: e.id, atMs: atMs)
        var a = e
        a.alarmMs = atMs
        try excursionEvent(db, a, state: "alarm", nowMs: atMs)
    }

    func excursionEvent(_ db: StoreTransaction, _ e: ExcursionRecord, state: String, nowMs: Int64) throws {
        let cloud = try Rooms.cloudId(db, key: e.room)
        let data = JSONText.object { j in
            j.add("tenant_id", config.tenantId); j.add("site_id", config.siteId); j.add("room_id", e.room)
            if let cloud { j.add("cloud_room_id", cloud) }
            j.add("device_id", e.device); j.add("excursion_id", e.id); j.add("state", state)
            j.add("started_at", Time.rfc3339(ms: e.startedMs)); j.add("ended_at", e.endedMs.map { Time.rfc3339(ms: $0) })
            j.add("duration_seconds", e.durationSeconds(nowMs: nowMs)); j.add("min_c", e.minC); j.add("max_c", e.maxC)
            j.add("at", Time.rfc3339(ms: nowMs))
        }
        _ = try db.enqueue(name: "clinic/coldchain.excursion", eventClass: .clinical, source: "room:\(e.room)", data: data, nowMs: nowMs, ids: ids)
    }

    func silenceEvent(_ db: StoreTransaction, room: String, device: String?, state: String, lastReadingMs: Int64?, nowMs: Int64) throws {
        let cloud = try Rooms.cloudId(db, key: room)
        let data = JSONText.object { j in
            j.add("tenant_id", config.tenantId); j.add("site_id", config.siteId); j.add("room_id", room)
            if let cloud { j.add("cloud_room_id", cloud) }
            j.add("device_id", device); j.add("state", state)
            j.add("last_reading_at", lastReadingMs.map { Time.rfc3339(ms: $0) }); j.add("at", Time.rfc3339(ms: nowMs))
        }
        _ = try db.enqueue(name: "clinic/coldchain.sensor_silent", eventClass: .clinical, source: "room:\(room)", data: data, nowMs: nowMs, ids: ids)
    }

    func acknowledgedEvent(_ db: StoreTransaction, _ e: ExcursionRecord, by name: String, action: String, nowMs: Int64) throws {
        let cloud = try Rooms.cloudId(db, key: e.room)
        let data = JSONText.object { j in
            j.add("tenant_id", config.tenantId); j.add("site_id", config.siteId); j.add("room_id", e.room)
            if let cloud { j.add("cloud_room_id", cloud) }
            j.add("excursion_id", e.id); j.add("acknowledged_by", name); j.add("acknowledged_at", Time.rfc3339(ms: nowMs))
            j.add("action", action)
        }
        _ = try db.enqueue(
            name: "clinic/coldchain.excursion_acknowledged", eventClass: .clinical, source: "room:\(e.room)", data: data, nowMs: nowMs, ids: ids)
    }
}

/// When, on the monotonic clock, each fridge was last heard and its open excursion began:
/// alarm delays and silence are durations (CONTRACT §5), so a wall-clock jump moves neither.
/// After a restart they are set once from the wall clock's record (`anchor`), then kept here.
final class ColdChainAnchors: Sendable {
    private struct S {
        var heard: [String: UInt64] = [:]
        var excursion: [String: UInt64] = [:]
    }
    private let s = Mutex(S())

    func heard(room: String, monoNs: UInt64) { s.withLock { $0.heard[room] = monoNs } }
    func excursionStarted(room: String, monoNs: UInt64) { s.withLock { $0.excursion[room] = monoNs } }
    func excursionEnded(room: String) { _ = s.withLock { $0.excursion.removeValue(forKey: room) } }

    /// The room's last-heard moment; the first time asked, set from `fallback` (the wall
    /// clock's record, or the daemon's start when the fridge was never heard).
    func heardAnchor(room: String, fallback: () -> UInt64) -> UInt64 {
        if let a = s.withLock({ $0.heard[room] }) { return a }
        let f = fallback()
        return s.withLock { st in
            if let a = st.heard[room] { return a }
            st.heard[room] = f
            return f
        }
    }
    func excursionAnchor(room: String, fallback: () -> UInt64) -> UInt64 {
        if let a = s.withLock({ $0.excursion[room] }) { return a }
        let f = fallback()
        return s.withLock { st in
            if let a = st.excursion[room] { return a }
            st.excursion[room] = f
            return f
        }
    }

    /// The monotonic moment `agoMs` before now (never before the clock's zero).
    static func moment(monoNs: UInt64, agoMs: Int64) -> UInt64 {
        let ago = UInt64(max(0, min(agoMs, Int64(monoNs / 1_000_000))))
        return monoNs - ago * 1_000_000
    }
}
