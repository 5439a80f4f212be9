import EdgeCore
import EdgeHTTPClient
import EdgeStore
import Foundation
import GRDB
import Logging

/// Store-and-forward to the Inngest Event API (CONTRACT §2): reads the outbox (clinical
/// first, then telemetry, each in insertion order), posts batches, deletes what the cloud
/// took, bisects refused batches, backs off on failures and never drops a clinical event.
final class Uplink: Sendable {
    let config: EdgeConfig
    let db: AppDatabase
    let http: any HTTPTransport
    let metrics: EdgeMetrics
    let state: EdgeState
    let logger: Logger
    static let maxEventBytes = 256 * 1024

    init(config: EdgeConfig, db: AppDatabase, http: any HTTPTransport, metrics: EdgeMetrics, state: EdgeState, logger: Logger) {
        self.config = config; self.db = db; self.http = http; self.metrics = metrics; self.state = state; self.logger = logger
    }

    enum Outcome: Equatable { case done, retry(after: Double?), unauthorized }

    /// The next events to send, within the batch and byte limits; `excluding`: a delivered
    /// batch whose delete is still running.
    func nextBatch(excluding: [Int64] = []) throws -> [OutboxEvent] {
        let maxBatch = config.cloud?.maxBatch ?? 500
        let maxBytes = config.cloud?.maxRequestBytes ?? 1_048_576
        return try db.writer.read { db in
            let rows: [Row]
            if excluding.isEmpty {
                rows = try Row.fetchAll(db.cachedStatement(sql: "SELECT seq, id, name, class, source, data, created_ms, bytes FROM outbox ORDER BY class, seq LIMIT ?"),
                                        arguments: [maxBatch])
            } else {
                let marks = Array(repeating: "?", count: excluding.count).joined(separator: ",")
                rows = try Row.fetchAll(db, sql: "SELECT seq, id, name, class, source, data, created_ms, bytes FROM outbox WHERE seq NOT IN (\(marks)) ORDER BY class, seq LIMIT ?",
                                        arguments: StatementArguments(excluding.map { $0 as any DatabaseValueConvertible } + [maxBatch]))
            }
            var out: [OutboxEvent] = []
            var bytes = 2
            for r in rows {
                let e = OutboxEvent(seq: r["seq"], id: r["id"], name: r["name"], eventClass: EventClass(rawValue: r["class"]) ?? .telemetry,
                                    source: r["source"], data: r["data"], createdMs: r["created_ms"])
                let b: Int = r["bytes"]
                if !out.isEmpty && bytes + b + 1 > maxBytes { break }
                out.append(e); bytes += b + 1
            }
            return out
        }
    }

    func deadLetter(_ events: [OutboxEvent], status: Int, reason: String) throws {
        let now = Time.nowMs()
        try db.writer.write { db in
            for e in events {
                try db.execute(sql: """
                    INSERT OR REPLACE INTO outbox_dead (seq, id, name, class, source, data, created_ms, bytes, status, reason, failed_ms)
                    SELECT seq, id, name, class, source, data, created_ms, bytes, ?, ?, ? FROM outbox WHERE seq = ?
                    """, arguments: [status, String(reason.prefix(1000)), now, e.seq])
                try db.execute(sql: "DELETE FROM outbox WHERE seq = ?", arguments: [e.seq])
            }
        }
        metrics.cloudRefused(status: status == 0 ? "over_256k" : String(status), by: events.count)
        logger.error("uplink: \(events.count) event(s) dead-lettered (status \(status)): \(reason.prefix(200)); see `medic-edge outbox dead-letters`")
    }

    /// Deletes what the cloud took, in one statement. On failure they stay: sent again, and
    /// the cloud dedupes by id.
    static func deleteDelivered(_ db: AppDatabase, _ seqs: [Int64], logger: Logger) async -> Bool {
        do {
            try await db.writer.write { db in
                let marks = Array(repeating: "?", count: seqs.count).joined(separator: ",")
                try db.execute(sql: "DELETE FROM outbox WHERE seq IN (\(marks))", arguments: StatementArguments(seqs))
            }
            return true
        } catch {
            logger.error("uplink: delivered events not marked: \(error) (they will be sent again; the cloud dedupes by id)")
            return false
        }
    }

    /// Posts `events`; on 400/413 splits until the bad event stands alone (left half first).
    /// What the cloud took is deleted here, or handed to `deleter` to delete while the next
    /// batch is read and posted.
    func deliver(_ events: [OutboxEvent], deleter: DeliveredDeleter? = nil) async -> Outcome {
        guard !events.isEmpty, let url = config.cloud?.eventsURL else { return .done }
        var tooBig: [OutboxEvent] = []
        var sendable: [OutboxEvent] = []
        for e in events {
            if e.json.utf8.count > Uplink.maxEventBytes { tooBig.append(e) } else { sendable.append(e) }
        }
        if !tooBig.isEmpty { try? deadLetter(tooBig, status: 0, reason: "event over 256 KiB: never sent") }
        if sendable.isEmpty { return .done }
        let body = Array(("[" + sendable.map(\.json).joined(separator: ",") + "]").utf8)
        let req = HTTPRequest(method: "POST", url: url, headers: [("Content-Type", "application/json")], body: body,
                              connectTimeout: config.cloud?.connectTimeoutSeconds ?? 5, timeout: config.cloud?.requestTimeoutSeconds ?? 15)
        let resp: HTTPResponse
        do { resp = try await http.send(req) } catch {
            metrics.uplinkRequest(status: (error as? HTTPTransportError)?.isTimeout == true ? "timeout" : "error")
            state.uplinkFailed(nowMs: Time.nowMs())
            logger.warning("uplink: cloud unreachable: \(error)")
            return .retry(after: nil)
        }
        metrics.uplinkRequest(status: String(resp.status))
        switch resp.status {
        case 200..<300:
            let seqs = sendable.map(\.seq)
            if let deleter { await deleter.hand(seqs) } else {
                guard await Uplink.deleteDelivered(db, seqs, logger: logger) else { return .retry(after: 1) }
            }
            metrics.delivered(sendable.count)
            state.uplinkSucceeded(nowMs: Time.nowMs())
            return .done
        case 400, 413:
            if sendable.count == 1 {
                try? deadLetter(sendable, status: resp.status, reason: resp.text.isEmpty ? "HTTP \(resp.status)" : resp.text)
                state.uplinkSucceeded(nowMs: Time.nowMs())
                return .done
            }
            let mid = sendable.count / 2
            let left = await deliver(Array(sendable[..<mid]), deleter: deleter)
            guard left == .done else { return left }
            return await deliver(Array(sendable[mid...]), deleter: deleter)
        case 401, 403:
            if state.cloudState(nowMs: Time.nowMs()) != .unauthorized {
                logger.error("uplink: the cloud refused the event key (HTTP \(resp.status)); nothing is dropped; check cloud.events_url")
            }
            state.uplinkFailed(nowMs: Time.nowMs(), unauthorized: true)
            return .unauthorized
        default:
            state.uplinkFailed(nowMs: Time.nowMs())
            logger.warning("uplink: cloud answered HTTP \(resp.status); retrying later")
            return .retry(after: resp.headers["retry-after"].flatMap { Double($0.trimmingCharacters(in: .whitespaces)) })
        }
    }

    /// Runs until cancelled.
    func run() async {
        guard config.cloud?.eventsURL != nil else { return }
        var failures = 0
        let deleter = DeliveredDeleter(db: db, logger: logger)
        // Read while the last batch is being posted (and the one before deleted): the read
        // leaves both out, and is used only if that post went through.
        var prefetched: [OutboxEvent]? = nil
        while !Task.isCancelled {
            let batch: [OutboxEvent]
            if let p = prefetched, !p.isEmpty { batch = p } else {
                do { batch = try nextBatch(excluding: deleter.inFlight) } catch {
                    logger.error("uplink: cannot read the outbox: \(error)")
                    try? await Task.sleep(for: .seconds(1)); continue
                }
            }
            prefetched = nil
            if batch.isEmpty {
                if !deleter.inFlight.isEmpty { await deleter.finish(); continue }
                try? await Task.sleep(for: .milliseconds(100)); continue
            }
            let exclude = deleter.inFlight + batch.map(\.seq)
            async let next: [OutboxEvent]? = try? self.nextBatch(excluding: exclude)
            let outcome = await deliver(batch, deleter: deleter)
            let following = await next
            switch outcome {
            case .done:
                failures = 0
                prefetched = following
            case .retry(let after):
                failures += 1
                let base = min(30.0, 0.25 * pow(2.0, Double(min(failures, 10))))
                let delay = max(after ?? 0, Double.random(in: base / 2...base))
                try? await Task.sleep(for: .milliseconds(Int(min(delay, 60) * 1000)))
            case .unauthorized:
                failures += 1
                try? await Task.sleep(for: .milliseconds(Int(min(30.0, 1.0 * pow(2.0, Double(min(failures, 5)))) * 1000)))
            }
        }
        await deleter.finish()
    }

    /// One bounded attempt at shutdown (deletes inline).
    func finalAttempt(deadline: Double) async {
        guard config.cloud?.eventsURL != nil else { return }
        let start = Date()
        while Date().timeIntervalSince(start) < deadline, let batch = try? nextBatch(), !batch.isEmpty {
            if await deliver(batch) != .done { break }
        }
    }
}

/// Deletes delivered batches one at a time in the background, so the uplink reads and posts
/// the next batch meanwhile (the read leaves out the batch being deleted). A failed delete
/// leaves those events in the outbox: they are sent again and the cloud dedupes by id.
final class DeliveredDeleter: @unchecked Sendable {
    private let db: AppDatabase
    private let logger: Logger
    private let lock = NSLock()
    private var pending: (seqs: [Int64], task: Task<Void, Never>)?

    init(db: AppDatabase, logger: Logger) { self.db = db; self.logger = logger }

    /// The batch being deleted.
    var inFlight: [Int64] { lock.withLock { pending?.seqs ?? [] } }

    /// Waits for the previous delete, then starts this one.
    func hand(_ seqs: [Int64]) async {
        await finish()
        let db = self.db, logger = self.logger
        let task = Task { _ = await Uplink.deleteDelivered(db, seqs, logger: logger) }
        lock.withLock { pending = (seqs, task) }
    }

    /// Waits until no delete is running.
    func finish() async {
        guard let p = lock.withLock({ pending }) else { return }
        await p.task.value
        lock.withLock { if pending?.seqs == p.seqs { pending = nil } }
    }
}
