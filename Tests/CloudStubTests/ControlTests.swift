@testable import CloudStub
import Foundation
import Testing

@Suite("Control API, lifecycle, seed and connections")
struct ControlTests {
    @Test func upsertAndDeleteOverHTTP() async throws {
        try await withStub(seed: rosterSeed) { (c: StubClient) async throws in
            let added = try await c.post(
                "/_stub/collections/patients",
                #"[{"id":"p2","name":"João"},{"id":"p1","name":"Maria S."}]"#)
            #expect(added.status == 200)
            #expect(try added.json() == ["upserted": 2])
            let rows = try await c.items("/items/patients?fields=id,name")
            #expect(try rows.json() == ["data": [["id": "p1", "name": "Maria S."], ["id": "p2", "name": "João"]]])
            // A single object is one row; a new collection is created (and then served).
            #expect(try await c.post("/_stub/collections/services", #"{"id":"s1","name":"Acupuntura"}"#).status == 200)
            #expect(try await c.ids("/items/services") == ["s1"])
            #expect(try await c.post("/_stub/collections/services", #"[{"name":"no id"}]"#).status == 400)
            #expect(try await c.post("/_stub/collections/services", "nope").status == 400)

            let deleted = try await c.request("DELETE", "/_stub/collections/patients/p1")
            #expect(try deleted.json() == ["deleted": true])
            #expect(try await c.ids("/items/patients") == ["p2"])
            let again = try await c.request("DELETE", "/_stub/collections/patients/p1")
            #expect(try again.json() == ["deleted": false])
            #expect(try await c.get("/_stub/collections/patients").json() == ["data": [["id": "p2", "name": "João"]]])
        }
    }

    @Test func inProcessControl() async throws {
        try await withStub(seed: rosterSeed) { (c: StubClient) async throws in
            c.stub.upsert(collection: "appointments", rows: [["id": "a9", "status": "scheduled"]])
            c.stub.upsert(collection: "appointments", rows: [["id": "a1", "status": "arrived"]])
            #expect(try await c.ids("/items/appointments?filter=\(q(#"{"status":{"_eq":"arrived"}}"#))") == ["a1"])
            c.stub.delete(collection: "appointments", id: "a2")
            #expect(try await c.ids("/items/appointments") == ["a1", "a3", "a4", "a9"])
            c.stub.upsert(collection: "numbers", rows: [["id": 7, "v": 1]])
            c.stub.delete(collection: "numbers", id: "7")
            #expect(c.stub.rows(collection: "numbers") == [])
        }
    }

    @Test func clearEventsResetsEventsAndCounters() async throws {
        try await withStub { (c: StubClient) async throws in
            _ = try await c.post("/e/test-key", json: [event("a"), event("a")])
            _ = try await c.post("/e/wrong", json: [event("b")])
            #expect(c.stub.stats().requestsByStatus == ["200": 1, "401": 1])
            let cleared = try await c.post("/_stub/events/clear", "")
            #expect(cleared.status == 200)
            #expect(c.stub.receivedEvents().isEmpty)
            #expect(c.stub.stats() == CloudStubStats())
            #expect(try await c.get("/_stub/events").text == #"{"events":[]}"#)
            // Ids seen before the clear are not duplicates after it.
            _ = try await c.post("/e/test-key", json: [event("a")])
            #expect(c.stub.stats().duplicateIds == 0)
            c.stub.clearEvents()
            #expect(c.stub.stats().eventsReceived == 0)
        }
    }

    @Test func statsOverHTTP() async throws {
        try await withStub(seed: rosterSeed) { (c: StubClient) async throws in
            _ = try await c.post("/e/test-key", json: [event("a")])
            _ = try await c.items("/items/patients")
            _ = try await c.items("/items/patients", token: "bad")
            _ = try await c.get("/nowhere")
            let stats = try await c.get("/_stub/stats").json()
            #expect(
                stats == [
                    "requests_by_status": ["200": 2, "401": 1, "404": 1],
                    "events_received": 1, "unique_ids": 1, "duplicate_ids": 0,
                    "directus_requests": 2, "event_requests": 1,
                ])
            let decoded = try JSONDecoder().decode(CloudStubStats.self, from: try await c.get("/_stub/stats").body)
            #expect(decoded == c.stub.stats())
            #expect(try await c.get("/_stub/nothing").status == 404)
        }
    }

    @Test func keepAliveConnectionServesManyRequests() async throws {
        try await withStub(seed: rosterSeed) { (c: StubClient) async throws in
            let raw = try RawConnection(port: c.port)
            let body = JSONValue.array([event("k1")]).serialized()
            try raw.send(
                "POST /e/test-key HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n\r\n\(body)")
            let first = try raw.readResponse()
            #expect(first.status == 200)
            #expect(first.headers["connection"] != "close")
            // Pipelined: two requests written at once, answered in order on the same socket.
            try raw.send(
                "GET /items/patients HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer test-token\r\n\r\nGET /server/ping HTTP/1.1\r\nHost: x\r\n\r\n")
            let second = try raw.readResponse()
            #expect(second.status == 200)
            #expect(try second.json()["data"]?.arrayValue?.count == 1)
            let third = try raw.readResponse()
            #expect(third.text == "pong")
            // Connection: close is honoured.
            try raw.send("GET /server/ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            let last = try raw.readResponse()
            #expect(last.headers["connection"] == "close")
            #expect(raw.readEnd().0 == .closed)
        }
    }

    @Test func expect100Continue() async throws {
        try await withStub { (c: StubClient) async throws in
            let raw = try RawConnection(port: c.port)
            let body = JSONValue.array([event("c1")]).serialized()
            try raw.send("POST /e/test-key HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: \(body.utf8.count)\r\n\r\n")
            #expect(try raw.readResponse().status == 100)
            try raw.send(body)
            #expect(try raw.readResponse().status == 200)
            #expect(c.stub.receivedEvents() == [event("c1")])
        }
    }

    @Test func stopClosesConnectionsAndRestartKeepsState() async throws {
        let stub = CloudStub(seed: CloudStubSeed())
        let port = try await stub.start()
        #expect(stub.port == port)
        await #expect(throws: CloudStubError.self) { _ = try await stub.start() }
        let raw = try RawConnection(port: port)
        try raw.send("GET /_stub/stats HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(try raw.readResponse().status == 200)
        stub.upsert(collection: "rooms", rows: [["id": "r1"]])
        try await stub.stop()
        #expect(raw.readEnd().0 == .closed)
        #expect(throws: (any Error).self) { _ = try RawConnection(port: port) }
        // The cloud comes back on the same port, with what it had.
        #expect(try await stub.start(port: port) == port)
        let again = try RawConnection(port: port)
        try again.send("GET /items/rooms HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer test-token\r\n\r\n")
        #expect(try again.readResponse().json() == ["data": [["id": "r1"]]])
        try await stub.stop()
        try await stub.stop()  // a second stop is harmless
    }

    @Test func seedFileLoads() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cloud-stub-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let full = dir.appendingPathComponent("seed.json")
        try Data(
            #"""
            {"event_key": "k", "directus_token": "t",
             "collections": {"rooms": [{"id": "r1", "name": "Sala 2", "iot_config": {"mqtt_room_id": "sala-2"}, "capacity": 3}],
                             "patients": []}}
            """#.utf8
        ).write(to: full)
        let seed = try CloudStubSeed.load(path: full.path)
        #expect(seed.eventKey == "k")
        #expect(seed.directusToken == "t")
        #expect(seed.collections["patients"] == [])
        #expect(seed.collections["rooms"]?.first?["iot_config"]?["mqtt_room_id"] == "sala-2")

        let minimal = dir.appendingPathComponent("min.json")
        try Data("{}".utf8).write(to: minimal)
        let defaults = try CloudStubSeed.load(path: minimal.path)
        #expect(defaults.eventKey == "test-key")
        #expect(defaults.directusToken == "test-token")
        #expect(defaults.collections.isEmpty)

        let broken = dir.appendingPathComponent("bad.json")
        try Data(#"{"collections": {"rooms": {"id": 1}}}"#.utf8).write(to: broken)
        #expect(throws: CloudStubError.self) { try CloudStubSeed.load(path: broken.path) }
        #expect(throws: CloudStubError.self) { try CloudStubSeed.load(path: dir.appendingPathComponent("none.json").path) }

        // Codable agrees with load(path:).
        let viaCodable = try JSONDecoder().decode(CloudStubSeed.self, from: Data(contentsOf: full))
        #expect(viaCodable.collections == seed.collections)
    }

    @Test func jsonValueKeepsIntegersExact() throws {
        let v: JSONValue = ["n": 5.0, "ts": 1_764_421_331_000, "f": 0.25, "neg": -3, "s": "a\"b\n", "u": "São", "b": true, "z": .null]
        let encoded = String(decoding: try JSONEncoder().encode(v), as: UTF8.self)
        #expect(encoded.contains("\"n\":5") && !encoded.contains("5.0"))
        #expect(encoded.contains("1764421331000"))
        #expect(v.serialized() == #"{"b":true,"f":0.25,"n":5,"neg":-3,"s":"a\"b\n","ts":1764421331000,"u":"São","z":null}"#)
        #expect(try JSONValue.parse(v.serialized()) == v)
        #expect(try JSONDecoder().decode(JSONValue.self, from: Data(v.serialized().utf8)) == v)
        #expect(try JSONValue.parse(#"["\u00e3\ud83d\ude00", true, null, -1.5e3]"#) == ["ã😀", true, .null, -1500])
        #expect(throws: JSONParseError.self) { try JSONValue.parse("[1,]") }
        #expect(throws: JSONParseError.self) { try JSONValue.parse("01") }
        #expect(throws: JSONParseError.self) { try JSONValue.parse("{} x") }
    }

    @Test func mainRunsUntilCancelled() async throws {
        // Find a free port, then run the process entry point on it.
        let probe = CloudStub(seed: CloudStubSeed())
        let port = try await probe.start()
        try await probe.stop()
        let task = Task {
            try await CloudStubMain.run(port: port, host: "127.0.0.1", seedPath: nil, logger: probe.logger)
        }
        var up = false
        for _ in 0..<100 where !up {
            if let raw = try? RawConnection(port: port) {
                try raw.send("GET /server/ping HTTP/1.1\r\nHost: x\r\n\r\n")
                up = (try? raw.readResponse().text) == "pong"
            } else {
                try await Task.sleep(for: .milliseconds(20))
            }
        }
        #expect(up)
        task.cancel()
        try await task.value
        #expect(throws: (any Error).self) { _ = try RawConnection(port: port) }
    }
}
