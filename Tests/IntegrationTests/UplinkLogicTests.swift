import EdgeCore
import EdgeHTTPClient
import EdgeStore
import EdgeTestSupport
import Foundation
import Logging
@testable import MedicEdge
import Synchronization
import Testing

/// The uplink's rules in-process (CONTRACT §2, docs/failure-modes.md): a fake Event API scripted
/// per request, an in-memory outbox and the injected `ManualClock`, so the backoff's gaps are
/// measured exactly and nothing waits. The same rules against real sockets: `UplinkTests`,
/// `HostileCloudTests`.
@Suite("Uplink logic in-process (fake transport, in-memory outbox, manual clock)")
struct UplinkLogicTests {
    /// One answer of the fake cloud.
    enum Answer: Sendable {
        /// 200 with Inngest's `{"ids":[…],"status":200}`, one id per event sent.
        case accepted
        case status(Int, headers: [String: String] = [:], body: String = "")
        /// A connection reset (CURLE_RECV_ERROR).
        case reset
    }

    /// What the fake cloud saw of one request.
    struct Request: Sendable {
        /// The events' `data.n`, in the order sent.
        let events: [Int]
        /// The manual clock's monotonic time when it came.
        let atNs: UInt64
        /// Events in the outbox when it came.
        let pending: Int
        /// The status answered (0: a reset).
        let answered: Int
        /// Answered with Inngest's ids: a delivery.
        let accepted: Bool
    }

    /// An Event API scripted per request: `script` picks the answer from the events sent and
    /// the request's number (0-based).
    final class FakeCloud: HTTPTransport {
        let clock: ManualClock
        let db: AppDatabase
        let script: @Sendable (_ events: [[String: JSON]], _ index: Int) -> Answer
        let log = Mutex<[Request]>([])
        init(clock: ManualClock, db: AppDatabase, script: @escaping @Sendable ([[String: JSON]], Int) -> Answer) {
            self.clock = clock; self.db = db; self.script = script
        }
        var requests: [Request] { log.withLock { $0 } }

        func send(_ request: HTTPRequest) async throws -> HTTPResponse {
            let sent = (try? JSON.parse(request.body ?? []))?.arrayValue?.compactMap(\.objectValue) ?? []
            let index = log.withLock { $0.count }
            let answer = script(sent, index)
            let status: Int
            switch answer {
            case .accepted: status = 200
            case .status(let s, _, _): status = s
            case .reset: status = 0
            }
            let pending = (try? db.outboxStats().pending) ?? -1
            let ns = sent.map { Int($0["data"]?["n"]?.doubleValue ?? -1) }
            var accepted = false
            if case .accepted = answer { accepted = true }
            log.withLock { $0.append(Request(events: ns, atNs: clock.monoNs(), pending: pending, answered: status, accepted: accepted)) }
            switch answer {
            case .accepted:
                let ids = sent.map { "\"\($0["id"]?.stringValue ?? "")\"" }.joined(separator: ",")
                return HTTPResponse(status: 200, headers: ["content-type": "application/json"], body: Array("{\"ids\":[\(ids)],\"status\":200}".utf8))
            case .status(let s, let headers, let body):
                return HTTPResponse(status: s, headers: headers, body: Array(body.utf8))
            case .reset:
                throw HTTPTransportError(code: 56, message: "Connection reset by peer")
            }
        }
    }

    /// An uplink over an in-memory outbox holding `count` clinical events (`data.n` = 0…),
    /// `poisoned` among them marked `"poison": true`.
    struct World: Sendable {
        let clock = ManualClock()
        let db: AppDatabase
        let state: EdgeState
        let cloud: FakeCloud
        let uplink: Uplink

        init(
            events count: Int, poisoned: Set<Int> = [], maxBatch: Int = 500,
            script: @escaping @Sendable ([[String: JSON]], Int) -> Answer
        ) throws {
            let yaml = DaemonProcess.standardConfig(mqttPort: 1, cloudPort: 1, cloudExtra: ["max_batch: \(maxBatch)"])
                .replacingOccurrences(of: "{HTTP_PORT}", with: "1").replacingOccurrences(of: "{DATA_DIR}", with: Harness.tempDir("uplink-logic"))
            let config = try EdgeConfig.parse(yaml: yaml)
            db = try AppDatabase.inMemory()
            let clock = self.clock
            try db.write { db in
                for n in 0..<count {
                    let data = #"{"site_id":"test-site","n":\#(n)\#(poisoned.contains(n) ? #","poison":true"# : "")}"#
                    try db.enqueue(
                        name: "clinic/checkin.completed", eventClass: .clinical, source: "appointment:\(n)", data: data,
                        nowMs: clock.nowMs())
                }
            }
            state = EdgeState(cloudConfigured: true, clock: clock)
            cloud = FakeCloud(clock: clock, db: db, script: script)
            var logger = Logger(label: "uplink-logic")
            logger.logLevel = .critical
            uplink = Uplink(config: config, db: db, http: cloud, metrics: EdgeMetrics(bootstrap: false), state: state, logger: logger)
        }

        var pending: Int { (try? db.outboxStats().pending) ?? -1 }
        var deadLetters: [DeadLetter] { (try? db.deadLetters()) ?? [] }
        /// The `n` of every event the cloud took, in the order taken.
        var delivered: [Int] { cloud.requests.filter(\.accepted).flatMap(\.events) }
    }

    static func isPoisoned(_ events: [[String: JSON]]) -> Bool { events.contains { $0["data"]?["poison"]?.boolValue == true } }

    @Test(
        "400 on a batch with one bad event: bisected (left half first) to it, dead-lettered with status and reason; the rest delivered once, in order"
    )
    func bisectToThePoison() async throws {
        let w = try World(events: 8, poisoned: [5]) { events, _ in
            Self.isPoisoned(events) ? .status(400, body: #"{"error":"event 5: data.appointment_id is required"}"#) : .accepted
        }
        let batch = try w.uplink.nextBatch()
        #expect(batch.count == 8)
        #expect(await w.uplink.deliver(batch) == .done)
        #expect(w.cloud.requests.map(\.events) == [[0, 1, 2, 3, 4, 5, 6, 7], [0, 1, 2, 3], [4, 5, 6, 7], [4, 5], [4], [5], [6, 7]])
        #expect(w.cloud.requests.map(\.answered) == [400, 200, 400, 400, 200, 400, 200])
        #expect(w.delivered == [0, 1, 2, 3, 4, 6, 7], "every good event once, in order")
        let dead = w.deadLetters
        #expect(dead.count == 1)
        #expect(dead.first?.id == batch[5].id)
        #expect(dead.first?.status == 400)
        #expect(dead.first?.reason == #"{"error":"event 5: data.appointment_id is required"}"#)
        #expect(w.pending == 0)
        #expect(w.state.cloudState(nowMs: w.clock.nowMs()) == .online, "a poison event is not a cloud fault")
        #expect(!w.uplink.inStorm)
    }

    @Test("413: the request is halved until it fits; nothing is dead-lettered and every event goes once, in order")
    func tooLargeHalves() async throws {
        let w = try World(events: 8) { events, _ in events.count > 2 ? .status(413, body: "Payload Too Large") : .accepted }
        #expect(await w.uplink.deliver(try w.uplink.nextBatch()) == .done)
        #expect(w.cloud.requests.map(\.events.count) == [8, 4, 2, 2, 4, 2, 2])
        #expect(w.delivered == Array(0..<8))
        #expect(w.deadLetters.isEmpty)
        #expect(w.pending == 0)
    }

    @Test(
        "5xx, portal 200, 429, reset: backoff 0.25 s doubling, jitter, ≤ 30 s; Retry-After stretches a wait (≤ 60 s); none deleted until a 2xx's ids"
    )
    func backoffGaps() async throws {
        let script: [Answer] = [
            .status(500),  // failure 1: [0.25, 0.5] s
            .status(200, headers: ["content-type": "text/html"], body: "<html>Wi-Fi terms</html>"),  // 2: [0.5, 1]
            .status(429, headers: ["retry-after": "7"]),  // 3: [1, 2], stretched to 7
            .reset,  // 4: [2, 4]
            .status(503, headers: ["retry-after": "600"]),  // 5: capped at 60
            .status(502), .status(500),  // 6: [8, 16]; 7: [15, 30] (30 s cap)
            .status(429, headers: ["retry-after": "nan"]),  // 8: [15, 30], the header ignored
            .accepted,
        ]
        let w = try World(events: 3) { _, i in i < script.count ? script[i] : .accepted }
        let loop = Task { await w.uplink.run() }
        var waits: [Double] = []
        for i in 1...script.count {
            try await Harness.waitUntil("request \(i) at the fake cloud", poll: 0.001) { w.cloud.requests.count == i }
            // After a failure the uplink backs off; after the 2xx (the delete done) it idles.
            try #require(await w.clock.untilSleeping(), "the uplink sleeps after request \(i)")
            guard i < script.count else { break }
            let left = try #require(w.clock.sleepers.first)
            waits.append(Double(left) / 1e9)
            w.clock.advance(ns: left)
        }
        loop.cancel()
        await loop.value

        let r = w.cloud.requests
        #expect(r.map(\.answered) == [500, 200, 429, 0, 503, 502, 500, 429, 200])
        #expect(r.allSatisfy { $0.events == [0, 1, 2] }, "the same batch each time")
        #expect(r.allSatisfy { $0.pending == 3 }, "nothing deleted before the 2xx with ids")
        #expect(w.pending == 0)
        #expect(w.delivered == [0, 1, 2])
        #expect(w.deadLetters.isEmpty)
        // The gaps between requests, on the manual clock: exactly the waits slept.
        let gaps = zip(r.dropFirst(), r).map { Double($0.atNs - $1.atNs) / 1e9 }
        #expect(gaps == waits)
        let bounds: [ClosedRange<Double>] = [0.25...0.5, 0.5...1, 7...7, 2...4, 60...60, 8...16, 15...30, 15...30]
        #expect(gaps.count == bounds.count)
        for (i, (g, b)) in zip(gaps, bounds).enumerated() {
            #expect(b.contains(g), "wait after failure \(i + 1): \(g) s, expected within \(b)")
        }
    }

    @Test(
        "5 lone 400s in a row are a cloud fault: the first 4 dead-lettered, then none until a request succeeds; after it a lone 400 is dead-lettered"
    )
    func fourHundredStorm() async throws {
        let healed = Atomic<Bool>(false)
        let w = try World(events: 8, poisoned: [7], maxBatch: 1) { events, _ in
            if healed.load(ordering: .relaxed) { return Self.isPoisoned(events) ? .status(400, body: "bad event") : .accepted }
            return .status(400, body: "schema check failed")
        }
        for n in 0..<4 {
            #expect(await w.uplink.deliver(try w.uplink.nextBatch()) == .done, "lone refusal \(n + 1) is poison")
            #expect(w.deadLetters.count == n + 1)
        }
        #expect(!w.uplink.inStorm)
        // The 5th and 6th lone refusals in a row: a cloud fault.
        for _ in 0..<2 {
            #expect(await w.uplink.deliver(try w.uplink.nextBatch()) == .retry(after: nil))
            #expect(w.uplink.inStorm)
            #expect(w.deadLetters.count == 4, "nothing more dead-lettered in the storm")
        }
        #expect(w.state.cloudState(nowMs: w.clock.nowMs()) == .degraded)
        #expect(w.pending == 4)
        #expect(w.deadLetters.map(\.status) == [400, 400, 400, 400])
        #expect(w.deadLetters.map(\.reason) == Array(repeating: "schema check failed", count: 4))

        // The cloud heals: a success ends the storm, and a lone 400 is poison again.
        healed.store(true, ordering: .relaxed)
        for _ in 0..<3 { #expect(await w.uplink.deliver(try w.uplink.nextBatch()) == .done) }
        #expect(!w.uplink.inStorm)
        #expect(w.delivered == [4, 5, 6])
        #expect(await w.uplink.deliver(try w.uplink.nextBatch()) == .done)
        #expect(w.deadLetters.count == 5)
        #expect(w.deadLetters.last?.reason == "bad event")
        #expect(w.pending == 0)
        #expect(w.state.cloudState(nowMs: w.clock.nowMs()) == .online)
    }
}
