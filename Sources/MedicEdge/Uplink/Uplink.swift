import EdgeCore
import EdgeHTTPClient
import EdgeStore
import Foundation
import Logging
import Synchronization

/// Store-and-forward to the Inngest Event API (CONTRACT §2): reads the outbox (clinical
/// first, then telemetry, each in insertion order), posts batches, deletes what the cloud
/// took, bisects refused batches, backs off on failures and never drops a clinical event.
///
/// Only Inngest's answer is a delivery: a 2xx whose body is a JSON object with an `ids`
/// array holding one entry per event sent. Anything else (a captive portal's 200 page, a
/// 3xx, 429, 5xx, a body cut short, a reset, a time-out) deletes nothing and is retried with
/// exponential backoff and jitter, at most 30 s apart; a valid `Retry-After` may stretch one
/// wait to 60 s (`RetryAfter`). Five lone events refused with 400 in a row are a cloud fault
/// (a "400 storm"), not poison: dead-lettering stops until a request succeeds.
final class Uplink: Sendable {
    let config: EdgeConfig
    let db: AppDatabase
    let http: any HTTPTransport
    let metrics: EdgeMetrics
    let state: EdgeState
    let logger: Logger
    /// The injected clock (the state's): stamps, backoff waits and the shutdown deadline.
    let clock: any EdgeClock
    static let maxEventBytes = 256 * 1024
    /// The most bytes of an Event API answer read (Inngest's answer is a few bytes per event).
    static let maxResponseBytes = 1 << 20
    /// Lone events refused with 400 in a row that make a 400 storm (CONTRACT §2).
    static let stormThreshold = 5
    /// The most seconds between tries while failing (a valid Retry-After may make it 60).
    static let maxBackoffSeconds = 30.0
    /// Repeated warnings of one kind are logged at most this often.
    static let warningIntervalSeconds = 30.0

    struct Memory {
        /// Lone events refused with 400 since the last delivery.
        var loneRefusals = 0
        /// In a 400 storm: lone 400s are not dead-lettered.
        var storm = false
    }
    private let memory = Mutex(Memory())
    private let rate: RateLimit

    init(config: EdgeConfig, db: AppDatabase, http: any HTTPTransport, metrics: EdgeMetrics, state: EdgeState, logger: Logger) {
        self.config = config; self.db = db; self.http = http; self.metrics = metrics; self.state = state; self.logger = logger
        clock = state.clock
        rate = RateLimit(clock: state.clock)
    }

    /// True while a 400 storm holds dead-lettering back.
    var inStorm: Bool { memory.withLock { $0.storm } }

    /// Logs a warning of one `kind` at most once per `warningIntervalSeconds`, saying how many
    /// like it were held back meanwhile (a failing cloud must not flood the journal).
    func warnRateLimited(_ kind: String, _ message: @autoclosure () -> String) {
        guard let t = rate.note(kind, every: Uplink.warningIntervalSeconds) else { return }
        let held = t.count - 1
        logger.warning("\(message())\(held > 0 ? " (\(held) more like it in the last \(Int(Uplink.warningIntervalSeconds)) s not logged)" : "")")
    }

    /// Whether an answer's body is Inngest's: a JSON object whose `ids` array holds one entry
    /// per event sent. Anything else (an HTML page, `{"ok":true}`, `{"ids":[]}`) is not a delivery.
    static func isDelivery(body: [UInt8], eventCount: Int) -> Bool {
        guard let json = try? JSON.parse(body), let ids = json["ids"]?.arrayValue, json.objectValue != nil else { return false }
        return ids.count == eventCount
    }

    /// The `status` label of `medic_edge_uplink_requests_total` for a request that got no
    /// usable HTTP answer.
    static func label(for error: any Error) -> String {
        guard let e = error as? HTTPTransportError else { return "error" }
        if e.isTimeout { return "timeout" }
        if e.isBodyTooLarge { return "body_too_large" }
        if e.isPartialBody { return "partial_body" }
        if e.isSetoptFailure { return "client_error" }
        switch e.code {
        case 6, 7: return "connect_failed"  // CURLE_COULDNT_RESOLVE_HOST, CURLE_COULDNT_CONNECT
        case 52: return "empty_reply"  // CURLE_GOT_NOTHING
        case 55, 56: return "connection_error"  // CURLE_SEND_ERROR, CURLE_RECV_ERROR (a reset)
        case 35, 51, 53, 54, 58, 59, 60, 64, 66, 77, 80, 82, 83, 90, 91, 98: return "tls_error"
        case 1, 8: return "bad_answer"  // CURLE_UNSUPPORTED_PROTOCOL, CURLE_WEIRD_SERVER_REPLY
        default: return "error"
        }
    }

    /// The wait before the next try after `failures` failed ones in a row: exponential from
    /// 0.25 s, at most 30 s, with jitter (`jitter` in 0...1 picks within [base/2, base]); a
    /// valid Retry-After (already capped at 60 s by `RetryAfter`) may stretch it, never shorten it.
    static func retryDelay(failures: Int, retryAfter: Double?, jitter: Double) -> Double {
        let base = min(maxBackoffSeconds, 0.25 * pow(2.0, Double(min(max(failures, 1), 10))))
        let j = jitter.isFinite ? min(max(jitter, 0), 1) : 1
        let wait = base / 2 + j * base / 2
        guard let ra = retryAfter, ra.isFinite, ra > 0 else { return wait }
        return min(max(wait, ra), RetryAfter.defaultCap)
    }

    /// Sleeps `seconds` (clamped to 0...60), marking the uplink idle meanwhile.
    private func wait(_ seconds: Double) async {
        state.idle("uplink")
        let s = seconds.isFinite ? min(max(seconds, 0), RetryAfter.defaultCap) : 1
        try? await clock.sleep(ns: UInt64(s * 1e9))
    }

    enum Outcome: Equatable { case done, retry(after: Double?), unauthorized }

    /// The next events to send, within the batch and byte limits; `excluding`: a delivered
    /// batch whose delete is still running.
    func nextBatch(excluding: [Int64] = []) throws -> [OutboxEvent] {
        let maxBatch = config.cloud?.maxBatch ?? 500
        let maxBytes = config.cloud?.maxRequestBytes ?? 1_048_576
        var out: [OutboxEvent] = []
        var bytes = 2
        for (e, b) in try db.pendingBatch(limit: maxBatch, excluding: excluding) {
            if !out.isEmpty && bytes + b + 1 > maxBytes { break }
            out.append(e); bytes += b + 1
        }
        return out
    }

    func deadLetter(_ events: [OutboxEvent], status: Int, reason: String) throws {
        try db.deadLetter(events.map(\.seq), status: status, reason: reason, nowMs: clock.nowMs())
        metrics.cloudRefused(status: status == 0 ? "over_256k" : String(status), by: events.count)
        logger.error("uplink: \(events.count) event(s) dead-lettered (status \(status)): \(reason.prefix(200)); see `medic-edge outbox dead-letters`")
    }

    /// Deletes what the cloud took, in one statement. On failure they stay: sent again, and
    /// the cloud dedupes by id.
    static func deleteDelivered(_ db: AppDatabase, _ seqs: [Int64], logger: Logger) async -> Bool {
        do {
            try await db.deleteDelivered(seqs)
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
        let req = HTTPRequest(
            method: "POST", url: url, headers: [("Content-Type", "application/json")], body: body,
            connectTimeout: config.cloud?.connectTimeoutSeconds ?? 5, timeout: config.cloud?.requestTimeoutSeconds ?? 15,
            maxBodyBytes: Uplink.maxResponseBytes)
        let resp: HTTPResponse
        // A request is progress: the health check sees the loop stuck only if one request
        // (bounded by the request time-out) never ends.
        state.busy("uplink")
        do { resp = try await http.send(req) } catch {
            let label = Uplink.label(for: error)
            metrics.uplinkRequest(status: label)
            state.uplinkFailed(nowMs: clock.nowMs())
            warnRateLimited(
                "transport",
                "uplink: no usable answer from the cloud (\(label): \(error)); nothing deleted, \(sendable.count) event(s) kept and retried later")
            return .retry(after: nil)
        }
        let retryAfter = RetryAfter.seconds(resp.headers["retry-after"], now: Date(timeIntervalSince1970: Double(clock.nowMs()) / 1000))
        switch resp.status {
        case 200..<300:
            guard Uplink.isDelivery(body: resp.body, eventCount: sendable.count) else {
                metrics.uplinkRequest(status: "\(resp.status)_bad_body")
                state.uplinkFailed(nowMs: clock.nowMs())
                let type = resp.headers["content-type"].map { ", content-type \($0.prefix(60))" } ?? ""
                warnRateLimited(
                    "bad_body",
                    "uplink: HTTP \(resp.status) without Inngest's {\"ids\": [...]} for the \(sendable.count) event(s) sent (\(resp.body.count) "
                        + "bytes\(type); a captive portal or a proxy page?); not a delivery: nothing deleted, retrying later"
                )
                return .retry(after: retryAfter)
            }
            metrics.uplinkRequest(status: String(resp.status))
            let seqs = sendable.map(\.seq)
            if let deleter {
                await deleter.hand(seqs)
            } else {
                guard await Uplink.deleteDelivered(db, seqs, logger: logger) else { return .retry(after: 1) }
            }
            metrics.delivered(sendable.count)
            state.uplinkSucceeded(nowMs: clock.nowMs())
            let endedStorm = memory.withLock { m in
                defer { m.loneRefusals = 0; m.storm = false }
                return m.storm
            }
            if endedStorm {
                logger.notice("uplink: the cloud accepts events again; the 400 storm is over and refused events are dead-lettered again")
            }
            return .done
        case 400, 413:
            metrics.uplinkRequest(status: String(resp.status))
            if sendable.count == 1 {
                if resp.status == 400 {
                    let (inRow, storm, started) = memory.withLock { m in
                        m.loneRefusals += 1
                        let started = !m.storm && m.loneRefusals >= Uplink.stormThreshold
                        if started { m.storm = true }
                        return (m.loneRefusals, m.storm, started)
                    }
                    if storm {
                        state.uplinkFailed(nowMs: clock.nowMs())
                        if started {
                            logger.error(
                                """
                                uplink: \(inRow) events in a row refused one by one with HTTP 400: taken as a cloud fault, not bad events; nothing \
                                more is dead-lettered until the cloud accepts a request; retrying with backoff. Check the Event API (Inngest) and \
                                cloud.events_url
                                """
                            )
                        } else {
                            warnRateLimited(
                                "storm", "uplink: still in a 400 storm (\(inRow) lone refusals in a row); nothing dead-lettered, retrying later")
                        }
                        return .retry(after: retryAfter)
                    }
                }
                try? deadLetter(sendable, status: resp.status, reason: resp.text.isEmpty ? "HTTP \(resp.status)" : resp.text)
                state.uplinkSucceeded(nowMs: clock.nowMs())
                return .done
            }
            let mid = sendable.count / 2
            let left = await deliver(Array(sendable[..<mid]), deleter: deleter)
            guard left == .done else { return left }
            return await deliver(Array(sendable[mid...]), deleter: deleter)
        case 401, 403:
            metrics.uplinkRequest(status: String(resp.status))
            if state.cloudState(nowMs: clock.nowMs()) != .unauthorized {
                logger.error("uplink: the cloud refused the event key (HTTP \(resp.status)); nothing is dropped; check cloud.events_url")
            }
            state.uplinkFailed(nowMs: clock.nowMs(), unauthorized: true)
            return .unauthorized
        default:
            metrics.uplinkRequest(status: String(resp.status))
            state.uplinkFailed(nowMs: clock.nowMs())
            let what = (300..<400).contains(resp.status) ? "a redirect (not followed)" : "HTTP \(resp.status)"
            warnRateLimited(
                "status",
                "uplink: the cloud answered \(what)\(retryAfter.map { ", Retry-After \(Int($0)) s" } ?? ""); nothing deleted, retrying later")
            return .retry(after: retryAfter)
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
            state.busy("uplink")
            let batch: [OutboxEvent]
            if let p = prefetched, !p.isEmpty {
                batch = p
            } else {
                do { batch = try nextBatch(excluding: deleter.inFlight) } catch {
                    logger.error("uplink: cannot read the outbox: \(error)")
                    await wait(1); continue
                }
            }
            prefetched = nil
            if batch.isEmpty {
                if !deleter.inFlight.isEmpty { await deleter.finish(); continue }
                await wait(0.1); continue
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
                await wait(Uplink.retryDelay(failures: failures, retryAfter: after, jitter: Double.random(in: 0...1)))
            case .unauthorized:
                failures += 1
                await wait(min(Uplink.maxBackoffSeconds, 1.0 * pow(2.0, Double(min(failures, 5)))))
            }
        }
        state.idle("uplink")
        await deleter.finish()
    }

    /// One bounded attempt at shutdown (deletes inline).
    func finalAttempt(deadline: Double) async {
        guard config.cloud?.eventsURL != nil else { return }
        let end = clock.monoNs() &+ UInt64((deadline.isFinite ? min(max(deadline, 0), 3600) : 0) * 1e9)
        while clock.monoNs() < end, let batch = try? nextBatch(), !batch.isEmpty {
            if await deliver(batch) != .done { break }
        }
        state.idle("uplink")
    }
}

/// Deletes delivered batches one at a time in the background, so the uplink reads and posts
/// the next batch meanwhile (the read leaves out the batch being deleted). A failed delete
/// leaves those events in the outbox: they are sent again and the cloud dedupes by id.
final class DeliveredDeleter: Sendable {
    private let db: AppDatabase
    private let logger: Logger
    private let pending = Mutex<(seqs: [Int64], task: Task<Void, Never>)?>(nil)

    init(db: AppDatabase, logger: Logger) { self.db = db; self.logger = logger }

    /// The batch being deleted.
    var inFlight: [Int64] { pending.withLock { $0?.seqs ?? [] } }

    /// Waits for the previous delete, then starts this one.
    func hand(_ seqs: [Int64]) async {
        await finish()
        let db = self.db, logger = self.logger
        let task = Task { _ = await Uplink.deleteDelivered(db, seqs, logger: logger) }
        pending.withLock { $0 = (seqs, task) }
    }

    /// Waits until no delete is running.
    func finish() async {
        guard let p = pending.withLock({ $0 }) else { return }
        await p.task.value
        pending.withLock { if $0?.seqs == p.seqs { $0 = nil } }
    }
}
