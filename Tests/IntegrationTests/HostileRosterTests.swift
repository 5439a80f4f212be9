import CloudStub
import EdgeCore
import EdgeHTTPClient
import EdgeSimulators
@testable import EdgeStore
import EdgeTestSupport
import Foundation
import GRDB
import Logging
@testable import MedicEdge
import Synchronization
import Testing

// CONTRACT §3, "a bad answer never empties the day": hostile Directus answers at start-up,
// the suspect-pull guard and its confirmation, paging by id, a seeded fuzz of answers.

/// A clinic day big enough for the suspect-pull guard (more than 10 rows): 12 patients, each
/// booked today within the check-in window.
func rosterClinicDay() -> ClinicDay {
    var day = ClinicDay()
    for i in 5...12 {
        day.patients.append(
            ClinicDay.Patient(
                id: String(format: "9a000000-0000-4000-8000-%012d", i), name: "Paciente Número \(i)",
                phone: String(format: "+55119900000%02d", i), qr: "medic-qr:v1:p\(i):\(i * 7919)"))
    }
    for (k, p) in day.patients.enumerated() { day.book(p, startMinutes: 20 + Double(k)) }
    return day
}

extension Env {
    /// Stops the daemon (SIGTERM) and starts it again on the same data, broker and stub; returns
    /// once it is back on MQTT.
    func restartDaemon() async throws {
        let status = topic("edge/status")
        _ = await daemon.terminate(timeout: 12)
        let online = device.json(on: status).filter { $0["state"]?.stringValue == "online" }.count
        try await daemon.start()
        _ = try await device.waitFor(status, count: online + 1, timeout: 15) { $0["state"]?.stringValue == "online" }
    }

    func rosterCounts() async throws -> (patients: Double, appointments: Double) {
        let r = try await daemon.status()["roster"]
        return (r?["patients"]?.doubleValue ?? -1, r?["appointments"]?.doubleValue ?? -1)
    }
}

/// An HTTP transport that records the roster's requests and can act after each answer.
final class RecordingTransport: HTTPTransport {
    let inner = CurlHTTPClient(label: "roster-test")
    let requests = Mutex<[HTTPRequest]>([])
    let afterAnswer: @Sendable (Int, HTTPRequest) -> Void
    init(afterAnswer: @escaping @Sendable (Int, HTTPRequest) -> Void = { _, _ in }) { self.afterAnswer = afterAnswer }
    func send(_ request: HTTPRequest) async throws -> HTTPResponse {
        let n = requests.withLock {
            $0.append(request); return $0.count
        }
        let r = try await inner.send(request)
        afterAnswer(n, request)
        return r
    }
    var urls: [String] { requests.withLock { $0.map(\.url) } }
}

/// An HTTP transport that answers one roster request, the `n`-th of a collection since the last
/// `reset()`, with a login page (HTTP 200, HTML) instead of the stub's answer.
final class PageFaultTransport: HTTPTransport {
    let inner = CurlHTTPClient(label: "roster-test")
    let bad = Mutex<(collection: String, n: Int)?>(nil)
    let counts = Mutex<[String: Int]>([:])
    func reset() { counts.withLock { $0 = [:] } }
    func count(_ collection: String) -> Int { counts.withLock { $0[collection] ?? 0 } }
    func send(_ request: HTTPRequest) async throws -> HTTPResponse {
        let collection = request.url.components(separatedBy: "/items/").last?.components(separatedBy: "?").first ?? ""
        let n = counts.withLock {
            $0[collection, default: 0] += 1; return $0[collection]!
        }
        if let b = bad.withLock({ $0 }), b.collection == collection, b.n == n {
            return HTTPResponse(status: 200, headers: ["content-type": "text/html"], body: Array("<html>login</html>".utf8))
        }
        return try await inner.send(request)
    }
}

/// A RosterSync run in-process against the stub, on a real SQLite file.
func makeRosterSync(
    port: Int, clock: ManualClock, http: any HTTPTransport = CurlHTTPClient(label: "roster-test"),
    confirmNs: UInt64 = RosterSync.defaultSuspectConfirmNs,
    state: EdgeState = EdgeState(cloudConfigured: true)
) throws -> (RosterSync, AppDatabase) {
    let dir = Harness.tempDir("roster")
    let yaml = DaemonProcess.standardConfig(mqttPort: 1883, cloudPort: port)
        .replacingOccurrences(of: "{DATA_DIR}", with: dir + "/data").replacingOccurrences(of: "{HTTP_PORT}", with: "8080")
    let config = try EdgeConfig.parse(yaml: yaml)
    let db = try AppDatabase.open(dataDir: dir + "/data")
    var logger = Logger(label: "roster-test")
    logger.logLevel = ProcessInfo.processInfo.environment["ROSTER_TEST_LOG"] != nil ? .debug : .critical
    let sync = RosterSync(
        config: config, db: db, http: http, state: state, metrics: EdgeMetrics(bootstrap: false),
        logger: logger, suspectConfirmNs: confirmNs, clock: clock)
    return (sync, db)
}

func count(_ db: AppDatabase, _ table: String) async throws -> Int {
    try await db.writer.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM \(table)") ?? -1 }
}

@Suite("A bad roster answer never empties the day", .serialized)
struct HostileRosterTests {
    @Test(
        "After a synced day, a restart with Directus answering {\"data\": []}, HTML or a wrong shape: patients still check in, roster unchanged"
    )
    func hostileAnswersAtStartup() async throws {
        let day = rosterClinicDay()
        let env = try await Env.start(day: day)
        defer { Task { await env.stop() } }
        let stub = try #require(env.stub)
        let before = try await env.rosterCounts()
        #expect(before.patients == 12)
        #expect(before.appointments == 12)
        let cases: [(DirectusHostileAnswer, String)] = [
            (.empty, "full pull of patients held back: it would remove 12 of 12 local rows"),
            (.html, "HTTP 200 but the body is not JSON (text/html"),
            (.dataObject, "\"data\" is an object, not an array"),
            (.wrongTypes, "row 0: \"id\" is a number, not a string"),
        ]
        for (i, (answer, logLine)) in cases.enumerated() {
            stub.setFaults(CloudStubFaults(directusAnswer: answer))
            try await env.restartDaemon()
            let requests = stub.stats().directusRequests
            // Several pulls answered this way (a full one at start-up, then retries or increments).
            try await Harness.waitUntil("10 roster pulls answered \(answer)", timeout: 20) { stub.stats().directusRequests >= requests + 10 }
            let now = try await env.rosterCounts()
            #expect(now.patients == before.patients, "\(answer)")
            #expect(now.appointments == before.appointments, "\(answer)")
            let r = try await env.scan(day.patients[i].qr, scanId: "hostile-\(i)")
            #expect(r["outcome"]?.stringValue == "checked_in", "\(answer): \(r)")
            if answer == .empty {
                for c in ["patients", "appointments"] {
                    try await Harness.waitUntil("a suspect pull of \(c) counted", timeout: 10) {
                        (try await env.metric(#"medic_edge_roster_suspect_pulls_total{collection="\#(c)"}"#) ?? 0) >= 1
                    }
                }
            }
            #expect(try await env.daemon.get("/healthz").status == 200)
            let log = env.daemon.log()
            #expect(log.contains(logLine), "\(answer): \(log.suffix(1500))")
        }
        let log = env.daemon.log()
        #expect(!log.contains("test-token"), "the Directus token never reaches the log")
        for p in day.patients {
            #expect(!log.contains(p.name) && !log.contains(p.phone) && !log.contains(p.qr))
        }
        await env.stop()
    }

    @Test("A held-back removal is applied only when a full pull at least 10 minutes later (monotonic) returns the same")
    func heldBackThenConfirmed() async throws {
        let day = rosterClinicDay()
        let stub = CloudStub(seed: day.seed)
        let port = try await stub.start()
        let clock = ManualClock()
        let (sync, db) = try makeRosterSync(port: port, clock: clock)
        let nowMs = Time.nowMs()
        #expect(try await sync.fullSync(nowMs: nowMs) == [])
        #expect(try await count(db, "patients") == 12)
        #expect(sync.heldRetryNs() == nil)

        // An empty answer: held back, nothing removed, a retry due 10 minutes later.
        stub.setFaults(CloudStubFaults(directusAnswer: .empty, directusCollections: ["patients"]))
        let first = clock.monoNs()
        #expect(try await sync.fullSync(nowMs: nowMs) == ["patients"])
        #expect(try await count(db, "patients") == 12)
        #expect(sync.heldRetryNs() == first + 600_000_000_000)
        clock.advance(seconds: 599)
        #expect(try await sync.fullSync(nowMs: nowMs) == ["patients"], "the same answer 9 min 59 s later is still held back")
        #expect(try await count(db, "patients") == 12)

        // A different answer (2 of 12 left upstream) starts the wait again.
        stub.setFaults(CloudStubFaults())
        for p in day.patients.prefix(10) { stub.delete(collection: "patients", id: p.id) }
        clock.advance(seconds: 2)
        #expect(try await sync.fullSync(nowMs: nowMs) == ["patients"])
        #expect(try await count(db, "patients") == 12)
        clock.advance(seconds: 540)
        #expect(try await sync.fullSync(nowMs: nowMs) == ["patients"], "9 min after the new answer")
        #expect(try await count(db, "patients") == 12)
        clock.advance(seconds: 60)
        #expect(try await sync.fullSync(nowMs: nowMs) == [], "10 min after the new answer, the same again: applied")
        #expect(try await count(db, "patients") == 2)
        #expect(sync.heldRetryNs() == nil)
        // Appointments were never suspect: all 12 still there.
        #expect(try await count(db, "appointments") == 12)
        try await stub.stop()
    }

    @Test("With a shorter confirmation interval injected, the second full pull after it applies the removal")
    func shorterInterval() async throws {
        let day = rosterClinicDay()
        let stub = CloudStub(seed: day.seed)
        let port = try await stub.start()
        let clock = ManualClock()
        let (sync, db) = try makeRosterSync(port: port, clock: clock, confirmNs: 2_000_000_000)
        #expect(try await sync.fullSync(nowMs: Time.nowMs()) == [])
        stub.setFaults(CloudStubFaults(directusAnswer: .empty, directusCollections: ["appointments"]))
        #expect(try await sync.fullSync(nowMs: Time.nowMs()) == ["appointments"])
        #expect(try await count(db, "appointments") == 12)
        clock.advance(seconds: 2)
        #expect(try await sync.fullSync(nowMs: Time.nowMs()) == [])
        #expect(try await count(db, "appointments") == 0)
        try await stub.stop()
    }

    @Test("Full pulls page by id (sort=id, id _gt last, never offset), so a row deleted upstream between pages makes no other row go missing")
    func pagesById() async throws {
        var day = ClinicDay()
        day.patients = (1...1001).map {
            ClinicDay.Patient(id: String(format: "9b000000-0000-4000-8000-%012d", $0), name: "P \($0)", phone: "+55", qr: "q\($0)")
        }
        let stub = CloudStub(seed: day.seed)
        let port = try await stub.start()
        let firstId = day.patients[0].id
        // After the first page of patients, the first patient (already read) is deleted upstream:
        // with offset paging, the row that moves into the first page would be skipped.
        let http = RecordingTransport { n, _ in if n == 1 { stub.delete(collection: "patients", id: firstId) } }
        let (sync, db) = try makeRosterSync(port: port, clock: ManualClock(), http: http)
        #expect(try await sync.fullSync(nowMs: Time.nowMs()) == [])
        #expect(try await count(db, "patients") == 1001)
        let patientURLs = http.urls.filter { $0.contains("/items/patients?") }
        #expect(patientURLs.count == 3)
        #expect(http.urls.allSatisfy { !$0.contains("offset=") && $0.contains("sort=id") })
        #expect(patientURLs[0].contains("_gt") == false)
        let page500 = try #require(day.patients.map(\.id).sorted().dropFirst(499).first)
        #expect(patientURLs[1].removingPercentEncoding?.contains(#"{"id":{"_gt":"\#(page500)"}}"#) == true)
        #expect(http.requests.withLock { $0.allSatisfy { $0.maxBodyBytes == 16 << 20 } }, "bodies capped at 16 MiB per page")
        // The appointments' window filter and the id filter are ANDed.
        let appts = try #require(http.urls.first { $0.contains("/items/appointments?") }?.removingPercentEncoding)
        #expect(appts.contains("scheduled_start"))
        try await stub.stop()
    }

    @Test(
        "A full pull writes nothing unless every page was good: a bad last patient page, or bad appointments after good pages, leave it as it was"
    )
    func badLastPageWritesNothing() async throws {
        var day = ClinicDay()
        day.patients = (1...1001).map {
            ClinicDay.Patient(id: String(format: "9c000000-0000-4000-8000-%012d", $0), name: "P \($0)", phone: "+55", qr: "q\($0)")
        }
        let stub = CloudStub(seed: day.seed)
        let port = try await stub.start()
        // Answers the pull's `n`-th request with a login page instead of the stub's answer.
        let http = PageFaultTransport()
        let (sync, db) = try makeRosterSync(port: port, clock: ManualClock(), http: http)
        #expect(try await sync.fullSync(nowMs: Time.nowMs()) == [])
        #expect(try await count(db, "patients") == 1001)
        let appointments = try await count(db, "appointments")
        let syncState = {
            try await db.writer.read {
                try String.fetchAll(
                    $0, sql: "SELECT collection || ':' || coalesce(cursor, '') || ':' || last_sync_ms FROM sync_state ORDER BY collection")
            }
        }
        let stateBefore = try await syncState()

        // Upstream: 3 patients deleted (not suspect) and 2 added, in the first and last pages.
        for p in day.patients.prefix(3) { stub.delete(collection: "patients", id: p.id) }
        let added = [
            ClinicDay.Patient(id: "9c000000-0000-4000-8000-000000000000", name: "Novo 0", phone: "+55", qr: "n0"),
            ClinicDay.Patient(id: "9c000000-0000-4000-8000-999999999999", name: "Novo 9", phone: "+55", qr: "n9"),
        ]
        stub.upsert(collection: "patients", rows: added.map(day.patientRow))
        for (collection, n) in [("patients", 3), ("appointments", 1)] {
            http.bad.withLock { $0 = (collection, n) }
            http.reset()
            await #expect(throws: RosterAnswerError.self, "\(collection) request \(n) bad") { try await sync.fullSync(nowMs: Time.nowMs() + 1) }
            #expect(http.count("patients") == 3, "every page of patients was fetched and good")
            #expect(try await count(db, "patients") == 1001, "\(collection) \(n): nothing removed, nothing added")
            for p in day.patients.prefix(3) {
                #expect(try await db.writer.read { try Int.fetchOne($0, sql: "SELECT count(*) FROM patients WHERE id = ?", arguments: [p.id]) } == 1)
            }
            #expect(try await count(db, "appointments") == appointments)
            #expect(try await syncState() == stateBefore, "\(collection) \(n): no cursor or pull time moved")
        }

        http.bad.withLock { $0 = nil }
        #expect(try await sync.fullSync(nowMs: Time.nowMs() + 2) == [])
        #expect(try await count(db, "patients") == 1000)
        #expect(try await syncState() != stateBefore)
        // The pulls' spools had no name in the data directory, and left nothing there.
        let dataDir = try #require(db.path.map { ($0 as NSString).deletingLastPathComponent })
        #expect(try FileManager.default.contentsOfDirectory(atPath: dataDir).filter { $0.hasPrefix(".roster-pull") } == [])
        try await stub.stop()
    }

    @Test("Health: the roster loop is busy while a pull waits for its answer and idle while it sleeps")
    func busyAndIdle() async throws {
        let stub = CloudStub(seed: ClinicDay().seed)
        let port = try await stub.start()
        let state = EdgeState(cloudConfigured: true)
        let (sync, _) = try makeRosterSync(port: port, clock: ManualClock(), state: state)
        // What /healthz would say 61 s from now, if nothing changed meanwhile.
        let stuck = { state.healthReasons(nowNs: state.monoNs() + 61_000_000_000).contains { $0.hasPrefix("roster: no progress") } }
        stub.setFaults(CloudStubFaults(mode: .slow, slowMs: 1500, directusOnly: true))
        let loop = Task { await sync.run() }
        try await Harness.waitUntil("the first roster request at the stub", timeout: 5) { stub.stats().directusRequests >= 1 }
        #expect(stuck(), "busy while the answer (held 1.5 s) is awaited")
        stub.setFaults(CloudStubFaults())
        try await Harness.waitUntil("the roster loop idle between pulls", timeout: 10) { !stuck() }
        loop.cancel()
        await loop.value
        #expect(!stuck())
        try await stub.stop()
    }

    @Test(
        "Seeded fuzz of Directus answers (status, headers, bodies, JSON-ish junk) at start-up: no crash, local roster never emptied, check-in works"
    )
    func fuzzedAnswers() async throws {
        let seed = UInt64(ProcessInfo.processInfo.environment["ROSTER_FUZZ_SEED"] ?? "") ?? 20_261_207
        var rng = SimRandom(seed: seed)
        let answers = (0..<60).map { _ in RosterFuzz.answer(&rng) }
        let day = rosterClinicDay()
        let env = try await Env.start(day: day)
        defer { Task { await env.stop() } }
        let stub = try #require(env.stub)
        let before = try await env.rosterCounts()
        _ = await env.daemon.terminate(timeout: 12)
        stub.queueDirectusAnswers(answers)
        try await env.restartDaemon()
        let deadline = Date().addingTimeInterval(90)
        var samples = 0
        while stub.directusAnswersQueued() > 0 {
            #expect(Date() < deadline, "seed \(seed): the daemon stopped pulling")
            if Date() >= deadline { break }
            let p = try #require(env.daemon.process)
            #expect(p.isRunning, "seed \(seed): the daemon died: \(env.daemon.log().suffix(1500))")
            if !p.isRunning { break }
            let now = try await env.rosterCounts()
            #expect(now.patients >= before.patients && now.appointments >= before.appointments, "seed \(seed)")
            samples += 1
            try await Task.sleep(for: .milliseconds(150))
        }
        #expect(samples > 3)
        #expect(env.daemon.process?.isRunning == true)
        let after = try await env.rosterCounts()
        #expect(after.patients >= before.patients && after.appointments >= before.appointments, "seed \(seed)")
        #expect(try await env.daemon.get("/healthz").status == 200)
        let r = try await env.scan(day.maria.qr, scanId: "fuzz-1")
        #expect(r["outcome"]?.stringValue == "checked_in", "seed \(seed)")
        #expect(!env.daemon.log().contains("Fatal error"))
        await env.stop()
    }
}

/// Hostile roster answers, from plausible to garbage.
enum RosterFuzz {
    static let fields = [
        "id", "name", "phone", "qr_code_hash", "patient_id", "scheduled_start", "scheduled_end", "status",
        "iot_config", "created_at", "updated_at", "data", "errors",
    ]

    /// A JSON scalar; `odd` ones (1E400, a lone surrogate) a strict parser may refuse.
    static func scalar(_ rng: inout SimRandom, odd: Bool = true) -> String {
        switch Int.random(in: 0..<10, using: &rng) {
        case 0: return "null"
        case 1: return Bool.random(using: &rng) ? "true" : "false"
        case 2: return String(Int.random(in: -1_000_000...1_000_000, using: &rng))
        case 3: return odd ? ["1e308", "-0", "0.5", "1E400", "-1e-400"].randomElement(using: &rng)! : "0.5"
        case 4: return "\"2026-12-07T13:00:00Z\""
        case 5:
            return String(
                format: "\"%08x-0000-4000-8000-%012x\"", UInt32.random(in: 0...UInt32.max, using: &rng), Int.random(in: 0..<1_000_000, using: &rng))
        case 6: return "\"\""
        case 7: return odd ? "\"\\u0000\\ud800 é ü\"" : "\"Sala \\u00e9\""
        default: return "\"x\(Int.random(in: 0..<100, using: &rng))\""
        }
    }

    /// JSON of random shape, biased towards roster-like objects.
    static func value(_ rng: inout SimRandom, depth: Int = 0) -> String {
        let k = depth > 3 ? 0 : Int.random(in: 0..<4, using: &rng)
        switch k {
        case 1:
            return "[" + (0..<Int.random(in: 0..<4, using: &rng)).map { _ in value(&rng, depth: depth + 1) }.joined(separator: ",") + "]"
        case 2, 3:
            let keys = (0..<Int.random(in: 0..<5, using: &rng)).map { _ in fields.randomElement(using: &rng)! }
            return "{" + keys.map { "\"\($0)\":\(value(&rng, depth: depth + 1))" }.joined(separator: ",") + "}"
        default:
            return scalar(&rng)
        }
    }

    static func body(_ rng: inout SimRandom) -> [UInt8] {
        switch Int.random(in: 0..<12, using: &rng) {
        case 0: return []
        case 1: return (0..<Int.random(in: 1..<300, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }
        case 2: return Array("{\"data\":[]}".utf8)
        case 3: return Array("{\"data\":\(value(&rng))}".utf8)
        case 4:
            let rows = (0..<Int.random(in: 1..<4, using: &rng)).map { _ in value(&rng, depth: 2) }
            return Array("{\"data\":[\(rows.joined(separator: ","))]}".utf8)
        case 5: return Array(value(&rng).utf8)
        case 6:
            let good = Array(#"{"data":[{"id":"9a000000-0000-4000-8000-000000000001","name":"Maria","phone":null}]}"#.utf8)
            return Array(good.prefix(Int.random(in: 0..<good.count, using: &rng)))
        case 7: return Array((String(repeating: "[", count: 5000) + String(repeating: "]", count: 5000)).utf8)
        case 8: return Array("<html><body>Fa\u{00E7}a login</body></html>".utf8)
        case 9: return [0xEF, 0xBB, 0xBF] + Array("{\"data\":[]}".utf8)
        case 10: return Array(#"{"errors":[{"message":"boom","extensions":{"code":"INTERNAL"}}],"data":[]}"#.utf8)
        default:
            // JSON-ish token soup.
            let tokens = ["{", "}", "[", "]", "\"data\"", ":", ",", "null", "1", "\"id\"", "\"", "\\", "tru", "-", "e9"]
            return Array((0..<Int.random(in: 1..<40, using: &rng)).map { _ in tokens.randomElement(using: &rng)! }.joined().utf8)
        }
    }

    /// 200 and `{"data": [...]}` with roster-like rows whose values have random types (or none).
    static func plausiblePage(_ rng: inout SimRandom) -> [UInt8] {
        let rows = (0..<Int.random(in: 0..<4, using: &rng)).map { _ -> String in
            let keys = fields.filter { $0 == "id" || Int.random(in: 0..<3, using: &rng) == 0 }
            return "{" + keys.map { "\"\($0)\":\(scalar(&rng, odd: false))" }.joined(separator: ",") + "}"
        }
        return Array("{\"data\":[\(rows.joined(separator: ","))]}".utf8)
    }

    static func answer(_ rng: inout SimRandom) -> DirectusScriptedAnswer {
        if Int.random(in: 0..<3, using: &rng) < 2 {
            return DirectusScriptedAnswer(status: 200, headers: [("Content-Type", "application/json")], body: plausiblePage(&rng))
        }
        let status = [200, 200, 200, 200, 200, 201, 206, 301, 302, 400, 401, 403, 404, 418, 429, 500, 502, 503].randomElement(using: &rng)!
        var headers: [(String, String)] = []
        if Bool.random(using: &rng) {
            headers.append(
                ("Content-Type", ["application/json", "text/html", "text/plain", "application/json; charset=latin1", ""].randomElement(using: &rng)!))
        }
        if Int.random(in: 0..<4, using: &rng) == 0 { headers.append(("Retry-After", ["nan", "-1", "1e308", "abc"].randomElement(using: &rng)!)) }
        if status == 301 || status == 302 { headers.append(("Location", "/login?next=%2Fitems")) }
        if Int.random(in: 0..<4, using: &rng) == 0 {
            headers.append(("X-Junk-\(Int.random(in: 0..<9, using: &rng))", String(repeating: "z", count: Int.random(in: 0..<2000, using: &rng))))
        }
        return DirectusScriptedAnswer(status: status, headers: headers, body: body(&rng))
    }
}

@Suite("The roster answer validator (pure)")
struct RosterAnswerTests {
    static let patient =
        #"{"id":"9a000000-0000-4000-8000-000000000001","name":"Maria "#
        + #"Souza","phone":"+5511","qr_code_hash":"ab","created_at":"2026-11-01T12:00:00Z","updated_at":null}"#
    static let appointment =
        #"{"id":"a1","patient_id":"p1","professional_id":null,"service_id":"s1","room_id":"r1","scheduled_start":"2026-11-29T13:30:00Z","#
        + #""scheduled_end":"2026-11-29T14:30:00-03:00","status":"scheduled","created_at":null,"updated_at":null}"#

    func rows(_ c: String, _ body: String, status: Int = 200, type: String? = "application/json", limit: Int = 500) throws -> [[String: JSON]] {
        try RosterAnswer.rows(collection: c, status: status, contentType: type, body: Array(body.utf8), limit: limit)
    }

    func refusal(_ c: String, _ body: String, status: Int = 200, type: String? = "application/json", limit: Int = 500) -> String? {
        do {
            _ = try rows(c, body, status: status, type: type, limit: limit)
            return nil
        } catch {
            return "\(error)"
        }
    }

    @Test func goodPages() throws {
        #expect(try rows("patients", #"{"data":[\#(Self.patient)]}"#).count == 1)
        #expect(try rows("appointments", #"{"data":[\#(Self.appointment)]}"#).first?["status"]?.stringValue == "scheduled")
        #expect(try rows("patients", #"{"data":[]}"#).isEmpty, "an empty page is a good answer; the suspect guard judges it")
        #expect(
            try rows("rooms", #"{"data":[{"id":"r1","name":null,"iot_config":{"mqtt_room_id":"sala-2"}},{"id":"r2","iot_config":"{}"}]}"#).count == 2)
        #expect(try rows("services", #"{"data":[{"id":"s1"}],"meta":{"total_count":1}}"#).count == 1)
    }

    @Test func refusedAnswers() {
        #expect(
            refusal("patients", "<html>login</html>", type: "text/html")?.contains("HTTP 200 but the body is not JSON (text/html, 18 bytes)") == true)
        #expect(refusal("patients", "")?.contains("not JSON") == true)
        #expect(refusal("patients", "[]")?.contains("the answer is an array, not an object with \"data\"") == true)
        #expect(refusal("patients", #"{"ok":true}"#)?.contains("no \"data\"") == true)
        #expect(refusal("patients", #"{"data":{"id":1}}"#)?.contains("\"data\" is an object, not an array") == true)
        #expect(refusal("patients", #"{"data":null}"#)?.contains("\"data\" is null, not an array") == true)
        #expect(
            refusal("patients", #"{"errors":[{"extensions":{"code":"FORBIDDEN"}}],"data":[]}"#)?.contains("HTTP 200 carrying errors (FORBIDDEN)")
                == true)
        #expect(refusal("patients", #"{"data":[1]}"#)?.contains("row 0 is a number, not an object") == true)
        #expect(refusal("patients", #"{"data":[{"id":1,"name":"Maria"}]}"#)?.contains("row 0: \"id\" is a number, not a string") == true)
        #expect(refusal("patients", #"{"data":[{"id":"p1"}]}"#)?.contains("row 0 (id p1): \"name\" is missing or null") == true)
        #expect(refusal("patients", #"{"data":[{"id":"p1","name":"Maria","phone":5511}]}"#)?.contains("\"phone\" is a number, not a string") == true)
        #expect(refusal("patients", #"{"data":[{"id":"","name":"Maria"}]}"#)?.contains("\"id\" is not an id") == true)
        #expect(refusal("rooms", #"{"data":[{"id":"r1","iot_config":7}]}"#)?.contains("\"iot_config\" is a number, not an object") == true)
        let noStart = Self.appointment.replacingOccurrences(of: "2026-11-29T13:30:00Z", with: "2026-11-29 13:30")
        #expect(refusal("appointments", #"{"data":[\#(noStart)]}"#)?.contains("\"scheduled_start\" is not an RFC 3339 time") == true)
        let noStatus = Self.appointment.replacingOccurrences(of: #""scheduled""#, with: "null")
        #expect(refusal("appointments", #"{"data":[\#(noStatus)]}"#)?.contains("(id a1): \"status\" is missing or null") == true)
        #expect(refusal("services", #"{"data":[{"id":"a"},{"id":"b"}]}"#, limit: 1)?.contains("2 rows in a page asked for at most 1") == true)
    }

    @Test("A refusal names the row and field, never a value (values are personal data)")
    func noValuesInErrors() {
        let r = refusal("patients", #"{"data":[{"id":"p1","name":"Maria Souza","phone":["+5511999"]}]}"#) ?? ""
        #expect(r.contains("\"phone\" is an array"))
        #expect(!r.contains("Maria") && !r.contains("5511999"))
    }

    @Test func errorAnswers() {
        let e = refusal("patients", #"{"errors":[{"message":"Invalid user credentials.","extensions":{"code":"INVALID_CREDENTIALS"}}]}"#, status: 401)
        #expect(e == "Directus answered HTTP 401 (INVALID_CREDENTIALS): Invalid user credentials.")
        #expect(
            refusal("patients", "<h1>Bad gateway</h1>", status: 502, type: "text/html")
                == "Directus answered HTTP 502 (UNKNOWN): the body is not JSON (text/html, 20 bytes)")
        #expect(refusal("patients", "\u{1B}[31m", status: 500, type: "x\ny")?.contains("\n") == false)
    }

    @Test func suspectThreshold() {
        #expect(RosterSync.isSuspect(removing: 10, of: 19))
        #expect(RosterSync.isSuspect(removing: 11, of: 20))
        #expect(!RosterSync.isSuspect(removing: 10, of: 20), "exactly half is not more than half")
        #expect(!RosterSync.isSuspect(removing: 9, of: 9), "fewer than 10 rows")
        #expect(RosterSync.isSuspect(removing: 1000, of: 1000))
        #expect(!RosterSync.isSuspect(removing: 0, of: 0))
    }

    @Test("A roster id kept for the reconciliation: a lower-case UUID as its 128 bits, equal exactly when the strings are")
    func rosterIds() {
        let a = "9a000000-0000-4000-8000-000000000005"
        #expect(RosterId(a) == .uuid(0x9a00_0000_0000_4000, 0x8000_0000_0000_0005))
        #expect(RosterId("ffffffff-ffff-ffff-ffff-ffffffffffff") == .uuid(.max, .max))
        #expect(RosterId(a) == RosterId(String(a)))
        #expect(RosterId(a) != RosterId("9a000000-0000-4000-8000-000000000006"))
        #expect(RosterId(a) != RosterId("1a000000-0000-4000-8000-000000000005"))
        for other in [
            "9A000000-0000-4000-8000-000000000005", "9a000000-0000-4000-8000-00000000000", "9a000000-0000-4000-8000-0000000000055",
            "9a0000000000-4000-8000-0000-00000005", "9a000000-0000-4000-8000-00000000000g", "a1", "", "9a000000-0000-4000-8000-00000000000é",
        ] {
            #expect(RosterId(other) == .text(other), "\(other)")
        }
        // Lower-cased ids, as the pull and the local table hold them, compare as their strings.
        let ids = ["a1", a, "9a000000-0000-4000-8000-000000000006", "x-y"]
        let set = Set(ids.map(RosterId.init))
        #expect(set.count == 4)
        #expect(ids.allSatisfy { set.contains(RosterId($0)) })
        #expect(!set.contains(RosterId("a2")) && !set.contains(RosterId("9a000000-0000-4000-8000-000000000007")))
    }

    @Test func pageQueries() {
        #expect(RosterSync.pageQuery(fields: "id,name", filter: nil, after: nil) == "fields=id,name&sort=id&limit=500")
        let q = RosterSync.pageQuery(fields: "id", filter: #"{"a":{"_eq":1}}"#, after: "p\"9").removingPercentEncoding
        #expect(q == #"fields=id&sort=id&limit=500&filter={"_and":[{"id":{"_gt":"p\"9"}},{"a":{"_eq":1}}]}"#)
    }

    @Test("Seeded fuzz of the validator: 5,000 hostile bodies, no crash; what it accepts has the roster's shape")
    func fuzzValidator() {
        var rng = SimRandom(seed: 77)
        var accepted = 0
        for i in 0..<5000 {
            let c = RosterSync.collections.randomElement(using: &rng)!.0
            let a = RosterFuzz.answer(&rng)
            let status = i % 3 == 0 ? 200 : a.status
            guard let rows = try? RosterAnswer.rows(collection: c, status: status, contentType: nil, body: a.body, limit: 500) else { continue }
            accepted += 1
            #expect(rows.allSatisfy { ($0["id"]?.stringValue?.isEmpty) == false }, "seed 77 case \(i)")
        }
        #expect(accepted > 0)
    }
}
