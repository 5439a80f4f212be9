import CloudStub
import Foundation
#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif
import Testing

let directusSeed = CloudStubSeed(collections: ["patients": [["id": "p1", "name": "Maria"]]])

@Suite("Fault injection")
struct FaultTests {
    @Test func downAnswers503EverywhereWithRetryAfter() async throws {
        try await withStub(seed: directusSeed) { (c: StubClient) async throws in
            try await c.setFaults(#"{"mode":"down","retry_after_seconds":7}"#)
            let ev = try await c.post("/e/test-key", json: [event("a")])
            #expect(ev.status == 503)
            #expect(ev.headers["retry-after"] == "7")
            #expect(try ev.json()["status"] == 503)
            let items = try await c.items("/items/patients")
            #expect(items.status == 503)
            #expect(items.headers["retry-after"] == "7")
            #expect(try items.json()["errors"]?.arrayValue?.first?["extensions"]?["code"] == "SERVICE_UNAVAILABLE")
            #expect(try await c.get("/server/ping").status == 503)
            // Control routes are never affected.
            #expect(try await c.get("/_stub/stats").status == 200)
            #expect(c.stub.receivedEvents().isEmpty)
            try await c.setFaults(#"{"mode":"none"}"#)
            #expect(try await c.post("/e/test-key", json: [event("a")]).status == 200)
        }
    }

    @Test func downWithoutRetryAfterSendsNoHeader() async throws {
        try await withStub { (c: StubClient) async throws in
            c.stub.setFaults(CloudStubFaults(mode: .down))
            let ev = try await c.post("/e/test-key", json: [event("a")])
            #expect(ev.status == 503)
            #expect(ev.headers["retry-after"] == nil)
        }
    }

    @Test func error500() async throws {
        try await withStub(seed: directusSeed) { (c: StubClient) async throws in
            try await c.setFaults(#"{"mode":"error500"}"#)
            let ev = try await c.post("/e/test-key", json: [event("a")])
            #expect(ev.status == 500)
            #expect(try ev.json()["status"] == 500)
            #expect(try await c.items("/items/patients").status == 500)
            #expect(c.stub.receivedEvents().isEmpty)
        }
    }

    @Test func rateLimited429WithRetryAfter() async throws {
        try await withStub(seed: directusSeed) { (c: StubClient) async throws in
            try await c.setFaults(#"{"mode":"rate_limited","retry_after_seconds":3}"#)
            let ev = try await c.post("/e/test-key", json: [event("a")])
            #expect(ev.status == 429)
            #expect(ev.headers["retry-after"] == "3")
            #expect(try await c.items("/items/patients").status == 429)
        }
    }

    @Test func unauthorizedEvenWithTheRightCredentials() async throws {
        try await withStub(seed: directusSeed) { (c: StubClient) async throws in
            try await c.setFaults(#"{"mode":"unauthorized"}"#)
            let ev = try await c.post("/e/test-key", json: [event("a")])
            #expect(ev.status == 401)
            #expect(ev.text == #"{"error":"Event key not found","status":401}"#)
            let items = try await c.items("/items/patients")
            #expect(items.status == 401)
            #expect(try items.json()["errors"]?.arrayValue?.first?["extensions"]?["code"] == "INVALID_CREDENTIALS")
            #expect(c.stub.receivedEvents().isEmpty)
        }
    }

    @Test func resetClosesTheConnectionWithoutAnAnswer() async throws {
        try await withStub(seed: directusSeed) { (c: StubClient) async throws in
            try await c.setFaults(#"{"mode":"reset"}"#)
            await #expect(throws: (any Error).self) {
                _ = try await c.post("/e/test-key", json: [event("a")])
            }
            await #expect(throws: (any Error).self) {
                _ = try await c.items("/items/patients")
            }
            // Seen from a raw socket: an RST (or at least an end) and not one byte of answer.
            let raw = try RawConnection(port: c.port)
            try raw.send("POST /e/test-key HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n[]")
            let (end, bytes) = raw.readEnd()
            #expect(end == .reset || end == .closed)
            #expect(bytes == 0)
            #expect(try await c.get("/_stub/events").status == 200)
            let stats = c.stub.stats()
            #expect((stats.requestsByStatus["reset"] ?? 0) >= 3)
            #expect(c.stub.receivedEvents().isEmpty)
            try await c.setFaults("{}")
            #expect(try await c.post("/e/test-key", json: [event("a")]).status == 200)
        }
    }

    @Test func resetIsAnRSTOnAKeptAliveConnection() async throws {
        try await withStub { (c: StubClient) async throws in
            let raw = try RawConnection(port: c.port)
            try raw.send("GET /_stub/stats HTTP/1.1\r\nHost: x\r\n\r\n")
            #expect(try raw.readResponse().status == 200)
            c.stub.setFaults(CloudStubFaults(mode: .reset))
            try raw.send("POST /e/test-key HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n[]")
            let (end, bytes) = raw.readEnd()
            #expect(end == .reset)
            #expect(bytes == 0)
        }
    }

    @Test func slowAnswersLateButProcessesAtOnce() async throws {
        try await withStub(seed: directusSeed) { (c: StubClient) async throws in
            try await c.setFaults(#"{"mode":"slow","slow_ms":300}"#)
            let clock = ContinuousClock()
            var start = clock.now
            let answer = try await c.post("/e/test-key", json: [event("a")])
            let elapsed = clock.now - start
            #expect(answer.status == 200)
            #expect(elapsed >= .milliseconds(290))
            start = clock.now
            let items = try await c.items("/items/patients")
            #expect(items.status == 200)
            #expect(clock.now - start >= .milliseconds(290))
            // Control routes are not slowed down: they answer without the slow delay (the
            // bound is loose on purpose: CI machines are busy; the delay itself is 300 ms).
            #expect(try await c.get("/_stub/faults").status == 200)
            let answered = try await c.get("/_stub/events")
            #expect(answered.status == 200)
        }
    }

    @Test func slowBeyondTheClientTimeoutStillRecordsTheEvent() async throws {
        try await withStub { (c: StubClient) async throws in
            c.stub.setFaults(CloudStubFaults(mode: .slow, slowMs: 4000))
            let config = URLSessionConfiguration.ephemeral
            config.timeoutIntervalForRequest = 1
            let impatient = StubClient(stub: c.stub, port: c.port, session: URLSession(configuration: config))
            defer { impatient.session.invalidateAndCancel() }
            let clock = ContinuousClock()
            let start = clock.now
            await #expect(throws: (any Error).self) {
                _ = try await impatient.request(
                    "POST", "/e/test-key",
                    body: Data(JSONValue.array([event("a")]).serialized().utf8), timeout: 1)
            }
            #expect(clock.now - start < .milliseconds(3500))
            #expect(c.stub.receivedEvents() == [event("a")])
        }
    }

    @Test func directusOnlyLeavesEventsAlone() async throws {
        try await withStub(seed: directusSeed) { (c: StubClient) async throws in
            try await c.setFaults(#"{"mode":"down","directus_only":true}"#)
            #expect(try await c.post("/e/test-key", json: [event("a")]).status == 200)
            #expect(try await c.items("/items/patients").status == 503)
            #expect(try await c.get("/server/ping").status == 503)
        }
    }

    @Test func eventsOnlyLeavesDirectusAlone() async throws {
        try await withStub(seed: directusSeed) { (c: StubClient) async throws in
            try await c.setFaults(#"{"mode":"error500","events_only":true}"#)
            #expect(try await c.post("/e/test-key", json: [event("a")]).status == 500)
            #expect(try await c.items("/items/patients").status == 200)
            #expect(try await c.get("/server/ping").text == "pong")
        }
    }

    @Test func faultsOverHTTPTakeDefaultsAndRefuseNonsense() async throws {
        try await withStub { (c: StubClient) async throws in
            let set = try await c.post("/_stub/faults", #"{"mode":"slow"}"#)
            #expect(set.status == 200)
            #expect(try set.json() == ["mode": "slow", "slow_ms": 5000, "reject_event_ids": [], "reject_event_names": []])
            #expect(c.stub.faults() == CloudStubFaults(mode: .slow))
            let got = try await c.get("/_stub/faults")
            #expect(try got.json()["mode"] == "slow")
            #expect(try await c.post("/_stub/faults", #"{"mode":"sideways"}"#).status == 400)
            #expect(try await c.post("/_stub/faults", #"{"slow_ms":"soon"}"#).status == 400)
            #expect(try await c.post("/_stub/faults", #"{"typo_key":1}"#).status == 400)
            #expect(try await c.post("/_stub/faults", "{").status == 400)
            #expect(c.stub.faults() == CloudStubFaults(mode: .slow))
        }
    }

    @Test func faultsDecodeWithCodableToo() throws {
        let json = #"{"mode":"reset","reject_event_ids":["x"],"max_request_bytes":10,"events_only":true}"#
        let f = try JSONDecoder().decode(CloudStubFaults.self, from: Data(json.utf8))
        #expect(f == CloudStubFaults(mode: .reset, rejectEventIds: ["x"], maxRequestBytes: 10, eventsOnly: true))
        let back = try JSONDecoder().decode(CloudStubFaults.self, from: JSONEncoder().encode(f))
        #expect(back == f)
        let empty = try JSONDecoder().decode(CloudStubFaults.self, from: Data("{}".utf8))
        #expect(empty == CloudStubFaults())
        #expect(empty.slowMs == 5000)
    }
}
