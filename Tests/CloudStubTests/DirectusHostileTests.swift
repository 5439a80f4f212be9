import CloudStub
import Foundation
import Testing

/// 1,200 rows with UUID ids, stored out of id order.
private let uuidRows: [JSONValue] = (0..<1200).map { i -> JSONValue in
    let n = (i * 7919) % 1200
    return .object([
        "id": .string(String(format: "9a000000-0000-4000-8000-%012x", n)), "name": .string("p\(n)"),
        "created_at": .string("2026-11-01T10:00:00Z"), "kind": .string(n % 2 == 0 ? "even" : "odd"),
    ])
}

@Suite("Directus hostile answers and paging by id")
struct DirectusHostileTests {
    @Test("Paging by id: sort=id with id _gt the last id, ANDed with another filter, reads every row once")
    func pagingById() async throws {
        try await withStub(seed: CloudStubSeed(collections: ["patients": uuidRows])) { c in
            var last: String? = nil
            var got: [String] = []
            while true {
                var filter = #"{"kind":{"_eq":"even"}}"#
                if let last { filter = #"{"_and":[{"id":{"_gt":"\#(last)"}},\#(filter)]}"# }
                let page = try await c.ids("/items/patients?fields=id&sort=id&limit=100&filter=\(q(filter))")
                got += page
                if page.count < 100 { break }
                last = page.last
            }
            let expected = uuidRows.compactMap { r -> String? in r["kind"]?.stringValue == "even" ? r["id"]?.stringValue : nil }.sorted()
            #expect(got == expected)
            #expect(got.count == 600)
        }
    }

    @Test("directus_answer: empty, html, data_object, wrong_types; for one collection or all; {} clears")
    func hostileModes() async throws {
        let seed = CloudStubSeed(collections: ["patients": Array(uuidRows.prefix(3)), "rooms": [["id": "r1", "name": "Sala 1"]]])
        try await withStub(seed: seed) { c in
            try await c.setFaults(#"{"directus_answer":"empty"}"#)
            #expect(try await c.items("/items/patients").json() == ["data": []])
            #expect(try await c.items("/items/rooms").json() == ["data": []])
            #expect(try await c.get("/server/ping").text == "pong")

            try await c.setFaults(#"{"directus_answer":"html","directus_collections":["patients"]}"#)
            let html = try await c.items("/items/patients")
            #expect(html.status == 200)
            #expect(html.headers["content-type"]?.hasPrefix("text/html") == true)
            #expect(html.text.contains("<html>"))
            #expect(try await c.ids("/items/rooms") == ["r1"], "other collections are served normally")

            try await c.setFaults(#"{"directus_answer":"data_object"}"#)
            #expect(try await c.items("/items/patients").json() == ["data": ["id": 1]])

            try await c.setFaults(#"{"directus_answer":"wrong_types"}"#)
            let wrong = try await c.items("/items/patients?fields=id,name").json()
            #expect(wrong["data"]?.arrayValue?.map { $0["id"] } == [.number(1), .number(2), .number(3)])
            #expect(wrong["data"]?.arrayValue?.first?["name"]?.stringValue != nil)
            let none = try await c.items("/items/patients?filter=\(q(#"{"id":{"_eq":"nope"}}"#))").json()
            #expect(none == ["data": [["id": 1]]])

            let bad = try await c.post("/_stub/faults", #"{"directus_answer":"nonsense"}"#)
            #expect(bad.status == 400)
            #expect(bad.text.contains("empty, html, data_object, wrong_types"))
            #expect(try await c.get("/_stub/faults").json()["directus_answer"]?.stringValue == "wrong_types")

            try await c.setFaults("{}")
            #expect(try await c.ids("/items/patients").count == 3)
        }
    }

    @Test("Scripted answers are served in order, one per items request, then normal service")
    func scriptedAnswers() async throws {
        try await withStub(seed: CloudStubSeed(collections: ["rooms": [["id": "r1"]]])) { c in
            c.stub.queueDirectusAnswers([
                DirectusScriptedAnswer(status: 418, headers: [("X-Odd", "1"), ("Content-Type", "text/plain")], body: Array("tea".utf8))
            ])
            let queued = try await c.post(
                "/_stub/directus/answers",
                #"""
                [{"status": 200, "headers": {"Retry-After": "nan"}, "body": "{\"data\":"},
                 {"status": 502, "body_base64": "AAEC"}]
                """#)
            #expect(try queued.json()["queued"] == .number(3))
            let first = try await c.items("/items/rooms")
            #expect(first.status == 418)
            #expect(first.text == "tea")
            #expect(first.headers["x-odd"] == "1")
            #expect(first.headers["content-type"] == "text/plain")
            #expect(try await c.get("/server/ping").text == "pong", "ping takes no scripted answer")
            let second = try await c.items("/items/rooms")
            #expect(second.status == 200)
            #expect(second.text == #"{"data":"#)
            #expect(second.headers["retry-after"] == "nan")
            let third = try await c.items("/items/rooms")
            #expect(third.status == 502)
            #expect(Array(third.body) == [0, 1, 2])
            #expect(try await c.get("/_stub/directus/answers").json()["queued"] == .number(0))
            #expect(try await c.ids("/items/rooms") == ["r1"])
            #expect(try await c.post("/_stub/directus/answers", #"[{"status": 5}]"#).status == 400)
            _ = try await c.post("/_stub/directus/answers", #"{"status": 500}"#)
            #expect(try await c.request("DELETE", "/_stub/directus/answers").json()["queued"] == .number(0))
            #expect(try await c.ids("/items/rooms") == ["r1"])
        }
    }
}
