import EdgeCore
import EdgeMQTT
import EdgeStore
import Foundation
import Logging

/// A reply to publish once the batch is durably committed.
struct Reply: Sendable {
    var topic: String
    var payload: String
    /// For a kiosk result: when the scan arrived (monotonic ns) and its outcome.
    var checkin: (UInt64, KioskOutcome)?
    /// A kiosk result (published on the kiosk link at QoS 1), else a device ack (main link, QoS 0).
    var kioskResult = false
}

/// The ingest pipeline: MQTT → size check → decode → one group-committed transaction per
/// batch → results and acks published after the commit.
final class IngestPipeline: Sendable {
    let config: EdgeConfig
    let db: AppDatabase
    let metrics: EdgeMetrics
    let state: EdgeState
    let budget: StorageBudget
    let logger: Logger
    let ids = UUIDv7.shared
    /// A batch is bounded by count and by time; it also ends early (after the message in hand)
    /// when a kiosk scan is waiting, so a patient never waits behind a telemetry burst.
    let policy: IngestPolicy

    init(
        config: EdgeConfig, db: AppDatabase, metrics: EdgeMetrics, state: EdgeState, budget: StorageBudget,
        policy: IngestPolicy = .standard, logger: Logger
    ) {
        self.config = config; self.db = db; self.metrics = metrics; self.state = state; self.budget = budget; self.logger = logger
        self.policy = policy
        coldChain = ColdChainDesk(config: config, ids: ids, anchors: state.coldAnchors, metrics: metrics)
        iotPrefix = "{\"tenant_id\":" + JSONText.quote(config.tenantId) + ",\"site_id\":" + JSONText.quote(config.siteId)
    }
    /// The fridges' record keeping (CONTRACT §6).
    let coldChain: ColdChainDesk
    /// `{"tenant_id":…,"site_id":…` — the same start of every `integration/iot.event`.
    private let iotPrefix: String

    // MARK: the batch

    /// Processes the messages in one transaction, then publishes the replies. Returns how
    /// many were processed (a prefix): it stops early (`IngestPolicy.step`) after `maxBatchNs`, or when a scan
    /// arrives while it is busy with other messages — then `takeUrgent` hands it the scans,
    /// which join this transaction, and it commits at once. The caller hands the rest back in
    /// the next batch. Before the commit, the disk budget is checked (`StorageBudget.makeRoom`:
    /// the oldest telemetry goes in this same transaction when the files are over it).
    /// When the commit fails (SQLITE_FULL, an I/O error), nothing of the batch is acknowledged
    /// (no ack, no result: devices resend), the failure is counted, logged and reported to
    /// /healthz, and the count returned is all of them.
    @discardableResult
    func process(
        _ messages: [IngestMessage], takeUrgent: @Sendable () -> [IngestMessage] = { [] },
        publish: (Reply) -> Void
    ) async -> Int {
        let policy = self.policy
        let nowMs = Time.nowMs()
        let refuseTelemetry = state.storage.0 == .overBudget
        do {
            let o: Batch = try await db.write { db in
                var o = Batch()
                let t0 = DispatchTime.now().uptimeNanoseconds
                loop: for m in messages {
                    // Scans come first and are committed on their own; other messages until
                    // the time bound, or until a scan arrives: it joins this transaction,
                    // which then commits (one fsync between the scan and its result).
                    var jumpers: [IngestMessage] = []
                    switch policy.step(
                        taken: o.done, nextUrgent: m.urgent, lastUrgent: o.done > 0 && messages[o.done - 1].urgent,
                        elapsedNs: DispatchTime.now().uptimeNanoseconds - t0,
                        scansArrived: {
                            jumpers = takeUrgent(); return !jumpers.isEmpty
                        })
                    {
                    case .take: break
                    case .commit: break loop
                    case .joinScansAndCommit:
                        let now = Time.nowMs()
                        for j in jumpers {
                            try self.apply(j.prepared, message: j, db: db, nowMs: now, refuseTelemetry: refuseTelemetry, &o)
                        }
                        break loop
                    }
                    try self.apply(m.prepared, message: m, db: db, nowMs: nowMs, refuseTelemetry: refuseTelemetry, &o)
                    o.done += 1
                }
                try db.enqueueAll(o.events)
                try Rooms.writeReadings(db, o.latest)
                o.storage = try self.budget.makeRoom(db, nowMs: nowMs)
                return o
            }
            budget.commitSucceeded()
            budget.noteBatch(o.storage)
            for r in o.replies { publish(r) }
            // Counted per batch: a metric handle costs a registry lookup.
            for (t, n) in o.counts { metrics.message(t.kind, t.result, by: n) }
            for (r, n) in o.dead { metrics.deadLetter(r, by: n) }
            if o.wearable != (0, 0) { metrics.wearableSamples(accepted: o.wearable.0, rejected: o.wearable.1) }
            if budget.walNeedsCheckpoint(o.storage) { await budget.checkpointFromWriter() }
            return o.done
        } catch {
            // Nothing was acked: devices that keep a msg_id resend; the kiosk retries the scan.
            budget.commitFailed(error, messages: messages.count)
            return messages.count
        }
    }

    /// What one batch builds up while it runs in its transaction.
    struct Batch: Sendable {
        var replies: [Reply] = []
        var counts: [Tally: Int] = [:]
        var dead: [String: Int] = [:]
        var wearable = (0, 0)
        var done = 0
        /// Room key → the cloud's room id, looked up once per batch.
        var cloudRooms: [String: String?] = [:]
        /// The batch's telemetry events, written together at its end.
        var events: [Ledger.Pending] = []
        /// The rooms' latest readings, written once at the end of the batch.
        var latest = Rooms.LatestReadings()
        /// The disk budget's check before the commit.
        var storage = StorageBudget.Check()
        /// `created_at` of the batch's events (one time per batch, formatted once).
        var stamp: (ms: Int64, text: String) = (-1, "")
        mutating func time(_ ms: Int64) -> String {
            if stamp.ms != ms { stamp = (ms, Time.rfc3339(ms: ms)) }
            return stamp.text
        }
    }

    /// One metric series of `medic_edge_mqtt_messages_total`, tallied per batch.
    struct Tally: Hashable, Sendable {
        let kind: MessageKind, result: String
        init(_ kind: MessageKind, _ result: String) { self.kind = kind; self.result = result }
    }

    private func ack(_ deviceId: String, _ msgId: String, error: String? = nil) -> (Reply, String) {
        let payload = JSONText.object { j in
            j.add("msg_id", msgId)
            if let error { j.add("error", error) }
        }
        return (Reply(topic: DeviceTopic.ackTopic(site: config.siteId, device: deviceId), payload: payload), payload)
    }

    /// The seed's `iot_events` row as an `integration/iot.event` (written by hand: one per
    /// device message, the hottest JSON the appliance builds).
    func iotEvent(
        _ db: StoreTransaction, device: String, deviceType: String, eventType: String, payload: String,
        room: String?, nowMs: Int64, _ o: inout Batch
    ) throws {
        var cloudRoom: String? = nil
        if let room {
            if let known = o.cloudRooms[room] {
                cloudRoom = known
            } else {
                cloudRoom = try Rooms.cloudId(db, key: room)
                o.cloudRooms[room] = .some(cloudRoom)
            }
        }
        func q(_ s: String?) -> String { s.map(JSONText.quote) ?? "null" }
        var data = iotPrefix
        data.reserveCapacity(payload.utf8.count + 320)
        data += ",\"device_id\":"; data += q(device)
        data += ",\"device_type\":"; data += q(deviceType)
        data += ",\"event_type\":"; data += q(eventType)
        data += ",\"payload\":"; data += payload
        data += ",\"room_id\":"; data += q(room)
        data += ",\"cloud_room_id\":"; data += q(cloudRoom)
        data += ",\"created_at\":\""; data += o.time(nowMs); data += "\"}"
        o.events.append(
            Ledger.Pending(
                name: "integration/iot.event", eventClass: .telemetry, source: "device:\(device)",
                data: data, nowMs: nowMs, ids: ids))
    }

    private func apply(
        _ w: DeviceMessage, message m: IngestMessage, db: StoreTransaction, nowMs: Int64, refuseTelemetry: Bool,
        _ o: inout Batch
    ) throws {
        func reject(_ topic: String, _ kind: MessageKind, _ device: String?, _ msgId: String?, _ r: Rejection) throws {
            try db.recordRejection(topic: topic, kind: kind, deviceId: device, msgId: msgId, rejection: r, nowMs: nowMs)
            o.counts[Tally(kind, "rejected"), default: 0] += 1; o.dead[r.reason.rawValue, default: 0] += 1
            if let device, let msgId {
                let (reply, payload) = ack(device, msgId, error: r.reason.rawValue)
                try db.rememberMessage(deviceId: device, msgId: msgId, ack: payload, nowMs: nowMs)
                o.replies.append(reply)
            }
            logger.notice("ingest: rejected \(kind.rawValue) message from \(device ?? "?"): \(r.reason.rawValue): \(r.detail)")
        }
        /// A device message with a msg_id seen before: the same ack again, nothing stored twice.
        /// First sight: its success ack is remembered now, in the same statement that checks
        /// (a rejection further on replaces it; the transaction keeps it all-or-nothing).
        var successAck: Reply?
        func replayed(_ kind: MessageKind, _ device: String, _ msgId: String?) throws -> Bool {
            guard let msgId else { return false }
            let (reply, payload) = ack(device, msgId)
            if try db.rememberFirstSight(deviceId: device, msgId: msgId, ack: payload, nowMs: nowMs) {
                successAck = reply
                return false
            }
            guard let prev = try db.previousAck(deviceId: device, msgId: msgId) else { return false }
            o.replies.append(Reply(topic: DeviceTopic.ackTopic(site: config.siteId, device: device), payload: prev))
            o.counts[Tally(kind, "duplicate"), default: 0] += 1
            return true
        }
        /// Accepted: the ack remembered by `replayed` is the one sent.
        func accepted(_ kind: MessageKind, _ device: String, _ msgId: String?) throws {
            o.counts[Tally(kind, "accepted"), default: 0] += 1
            if let msgId { o.replies.append(successAck ?? ack(device, msgId).0) }
        }

        switch w {
        case .reject(let topic, let kind, let device, let msgId, let r):
            if let device, let msgId, try replayed(kind, device, msgId) { return }
            try reject(topic, kind, device, msgId, r)

        case .kiosk(let topic, let device, let scanId, let scan):
            if let prev = try db.kioskResult(deviceId: device, scanId: scanId) {
                o.replies.append(Reply(topic: DeviceTopic.resultTopic(site: config.siteId, device: device), payload: prev, kioskResult: true))
                o.counts[Tally(.kioskScan, "duplicate"), default: 0] += 1
                return
            }
            let result: KioskResult
            switch scan {
            case .failure(let r):
                try db.recordRejection(topic: topic, kind: .kioskScan, deviceId: device, msgId: scanId, rejection: r, nowMs: nowMs)
                o.counts[Tally(.kioskScan, "rejected"), default: 0] += 1; o.dead[r.reason.rawValue, default: 0] += 1
                result = KioskResult(scanId: scanId, outcome: .invalidRequest)
            case .success(let s):
                result = try CheckinDesk(config: config, ids: ids).scan(db, scan: s, device: device, nowMs: nowMs)
                o.counts[Tally(.kioskScan, "accepted"), default: 0] += 1
                let payload = JSONText.object { j in
                    j.add("scan_id", scanId); j.add("outcome", result.outcome.rawValue)
                }
                try iotEvent(db, device: device, deviceType: "checkin_kiosk", eventType: "qr_scan", payload: payload, room: nil, nowMs: nowMs, &o)
            }
            let text = result.json(zone: config.timeZone)
            try db.saveKioskResult(deviceId: device, scanId: scanId, outcome: result.outcome.rawValue, result: text, nowMs: nowMs)
            o.replies.append(
                Reply(
                    topic: DeviceTopic.resultTopic(site: config.siteId, device: device), payload: text,
                    checkin: (m.receivedAtNs, result.outcome), kioskResult: true))

        case .presence(let room, let device, let msgId, let p, let raw):
            if try replayed(.presence, device, msgId) { return }
            if refuseTelemetry { return try reject(m.topic, .presence, device, msgId, Rejection(.storageFull, StorageBudget.refusal)) }
            try db.recordPresence(device: device, room: room, occupied: p.occupied, nowMs: nowMs)
            try Rooms.refreshOccupancy(db, room: room, config: config, nowMs: nowMs, ids: ids)
            try iotEvent(db, device: device, deviceType: "presence_sensor", eventType: "presence", payload: raw, room: room, nowMs: nowMs, &o)
            try accepted(.presence, device, msgId)

        case .environment(let room, let device, let msgId, let e, let raw):
            if try replayed(.environment, device, msgId) { return }
            // A fridge's reading is a cold-chain record, kept whatever the budget does to telemetry
            // (CONTRACT §6): taken when telemetry is refused, without its telemetry event.
            let fridge = ColdChainDesk.settings(config, room: room) != nil
            if refuseTelemetry && !fridge {
                return try reject(m.topic, .environment, device, msgId, Rejection(.storageFull, StorageBudget.refusal))
            }
            try Rooms.recordReadings(
                db, room: room, device: device, reading: e, config: config, nowMs: nowMs, ids: ids, latest: &o.latest,
                coldChain: coldChain, monoNs: state.clock.monoNs())
            if !refuseTelemetry {
                try iotEvent(db, device: device, deviceType: "environment", eventType: "environment", payload: raw, room: room, nowMs: nowMs, &o)
            }
            try accepted(.environment, device, msgId)

        case .status(let device, let msgId, let s, let raw):
            if try replayed(.deviceStatus, device, msgId) { return }
            let changed = try Rooms.recordStatus(db, device: device, status: s, config: config, nowMs: nowMs, ids: ids)
            if changed {
                let known = try db.deviceType(device)
                let type = s.type?.rawValue ?? known ?? "unknown"
                try iotEvent(
                    db, device: device, deviceType: type, eventType: "device_status", payload: raw,
                    room: s.roomId, nowMs: nowMs, &o)
            }
            try accepted(.deviceStatus, device, msgId)

        case .wearable(let gateway, let b):
            if try replayed(.wearable, gateway, b.msgId) { return }
            if refuseTelemetry { return try reject(m.topic, .wearable, gateway, b.msgId, Rejection(.storageFull, StorageBudget.refusal)) }
            let data = JSONText.object { j in
                j.add("tenant_id", config.tenantId); j.add("site_id", config.siteId)
                j.add("gateway_id", gateway); j.add("msg_id", b.msgId)
                j.addRaw("samples", "[" + b.valid.map { $0.raw.text }.joined(separator: ",") + "]")
            }
            o.events.append(
                Ledger.Pending(
                    name: "integration/wearable.received", eventClass: .telemetry, source: "device:\(gateway)",
                    data: data, nowMs: nowMs, ids: ids))
            o.wearable.0 += b.valid.count; o.wearable.1 += b.invalid.count
            if !b.invalid.isEmpty {
                logger.notice(
                    """
                    ingest: wearable batch \(b.msgId) from \(gateway): \(b.invalid.count) invalid samples dropped (first: \
                    \(b.invalid[0].reason.rawValue): \(b.invalid[0].detail))
                    """
                )
            }
            try accepted(.wearable, gateway, b.msgId)
        }
    }
}
