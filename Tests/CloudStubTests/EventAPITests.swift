import CloudStub
import Foundation
import Testing

@Suite("Inngest Event API")
struct EventAPITests {
    @Test func acceptsAnArrayOfEvents() async throws {
        try await withStub { (c: StubClient) async throws in
            let events: JSONValue = [event("e1"), event("e2", "clinic/room.occupancy_changed")]
            let answer = try await c.post("/e/test-key", json: events)
            #expect(answer.status == 200)
            #expect(try answer.json() == ["ids": ["e1", "e2"], "status": 200])
            #expect(c.stub.receivedEvents() == events.arrayValue)
            let listed = try await c.get("/_stub/events")
            #expect(try listed.json() == ["events": events])
        }
    }

    @Test func acceptsASingleEventObject() async throws {
        try await withStub { (c: StubClient) async throws in
            let answer = try await c.post("/e/test-key", json: event("solo"))
            #expect(answer.status == 200)
            #expect(try answer.json() == ["ids": ["solo"], "status": 200])
            #expect(c.stub.receivedEvents() == [event("solo")])
        }
    }

    @Test func eventWithoutIdGetsOneAndAnEmptyArrayIsFine() async throws {
        try await withStub { (c: StubClient) async throws in
            let answer = try await c.post("/e/test-key", #"{"name":"x/y","data":{}}"#)
            #expect(answer.status == 200)
            let ids = try answer.json()["ids"]?.arrayValue ?? []
            #expect(ids.count == 1)
            #expect(ids.first?.stringValue?.isEmpty == false)
            let empty = try await c.post("/e/test-key", "[]")
            #expect(empty.status == 200)
            #expect(try empty.json() == ["ids": [], "status": 200])
        }
    }

    @Test func integersSurviveTheRoundTrip() async throws {
        try await withStub { (c: StubClient) async throws in
            _ = try await c.post("/e/test-key", #"[{"id":"n1","name":"a/b","ts":1764421331000,"data":{"co2_ppm":640,"t":22.5}}]"#)
            let raw = try await c.get("/_stub/events").text
            #expect(raw.contains("1764421331000"))
            #expect(raw.contains("\"co2_ppm\":640"))
            #expect(raw.contains("22.5"))
            #expect(!raw.contains("640.0"))
        }
    }

    @Test func wrongKeyIs401() async throws {
        try await withStub(seed: CloudStubSeed(eventKey: "right")) { (c: StubClient) async throws in
            for path in ["/e/wrong", "/e/test-key", "/e"] {
                let answer = try await c.post(path, json: [event("e1")])
                #expect(answer.status == 401, "\(path)")
                #expect(answer.text == #"{"error":"Event key not found","status":401}"#)
            }
            #expect(c.stub.receivedEvents().isEmpty)
            #expect(try await c.post("/e/right", json: [event("e1")]).status == 200)
        }
    }

    @Test(arguments: [
        "not json",
        "",
        "42",
        #""a string""#,
        "[1, 2]",
        #"[{"id":"x","data":{}}]"#,
        #"{"id":"x","name":""}"#,
        #"{"id":"x","name":"a/b","data":[1]}"#,
        #"{"id":"x","name":"a/b","ts":"yesterday"}"#,
        #"[{"id":"x","name":"a/b"}"#,
    ])
    func badBodyIs400(body: String) async throws {
        try await withStub { (c: StubClient) async throws in
            let answer = try await c.post("/e/test-key", body)
            #expect(answer.status == 400)
            let json = try answer.json()
            #expect(json["status"] == 400)
            #expect(json["error"]?.stringValue?.isEmpty == false)
            #expect(c.stub.receivedEvents().isEmpty)
        }
    }

    @Test func eventsBeforeARejectedIdAreStillAccepted() async throws {
        try await withStub { (c: StubClient) async throws in
            try await c.setFaults(#"{"reject_event_ids":["b"]}"#)
            let answer = try await c.post("/e/test-key", json: [event("a"), event("b"), event("c")])
            #expect(answer.status == 400)
            #expect(answer.text == #"{"error":"event b rejected by stub","status":400}"#)
            #expect(c.stub.receivedEvents() == [event("a")])
            // Alone, the others go through; the poison one stays refused.
            #expect(try await c.post("/e/test-key", json: [event("c")]).status == 200)
            #expect(try await c.post("/e/test-key", json: [event("b")]).status == 400)
            #expect(c.stub.receivedEvents() == [event("a"), event("c")])
        }
    }

    @Test func eventsBeforeARejectedNameAreStillAccepted() async throws {
        try await withStub { (c: StubClient) async throws in
            c.stub.setFaults(CloudStubFaults(rejectEventNames: ["integration/iot.event"]))
            let answer = try await c.post(
                "/e/test-key",
                json: [
                    event("a"), event("b"), event("c", "integration/iot.event"), event("d"),
                ])
            #expect(answer.status == 400)
            #expect(answer.text == #"{"error":"event c rejected by stub","status":400}"#)
            #expect(c.stub.receivedEvents() == [event("a"), event("b")])
        }
    }

    @Test func bodyOverMaxRequestBytesIs413() async throws {
        try await withStub { (c: StubClient) async throws in
            try await c.setFaults(#"{"max_request_bytes": 300}"#)
            let big: JSONValue = [event("a", data: ["pad": .string(String(repeating: "x", count: 400))])]
            let answer = try await c.post("/e/test-key", json: big)
            #expect(answer.status == 413)
            #expect(answer.text == #"{"error":"request too large","status":413}"#)
            #expect(c.stub.receivedEvents().isEmpty)
            let small = try await c.post("/e/test-key", json: [event("b")])
            #expect(small.status == 200)
            #expect(c.stub.stats().requestsByStatus == ["413": 1, "200": 1])
        }
    }

    @Test func duplicatesAreRecordedAndCounted() async throws {
        try await withStub { (c: StubClient) async throws in
            #expect(try await c.post("/e/test-key", json: [event("a"), event("b")]).status == 200)
            #expect(try await c.post("/e/test-key", json: [event("b"), event("c")]).status == 200)
            #expect(try await c.post("/e/test-key", json: event("a")).status == 200)
            let stats = c.stub.stats()
            #expect(stats.eventsReceived == 5)
            #expect(stats.uniqueIds == 3)
            #expect(stats.duplicateIds == 2)
            #expect(stats.eventRequests == 3)
            #expect(c.stub.receivedEvents().compactMap { $0["id"]?.stringValue } == ["a", "b", "b", "c", "a"])
            let http = try await c.get("/_stub/stats").json()
            #expect(http["events_received"] == 5)
            #expect(http["unique_ids"] == 3)
            #expect(http["duplicate_ids"] == 2)
            #expect(http["requests_by_status"] == ["200": 3])
        }
    }

    @Test func acceptsAMultiMegabyteBatch() async throws {
        try await withStub { (c: StubClient) async throws in
            let pad = JSONValue.string(String(repeating: "p", count: 4000))
            let events = (0..<2500).map { event("big-\($0)", data: ["pad": pad, "n": .number(Double($0))]) }
            let body = JSONValue.array(events).serialized()
            #expect(body.utf8.count > 10_000_000)
            let answer = try await c.post("/e/test-key", body)
            #expect(answer.status == 200)
            #expect(try answer.json()["ids"]?.arrayValue?.count == 2500)
            #expect(c.stub.stats().eventsReceived == 2500)
        }
    }
}
