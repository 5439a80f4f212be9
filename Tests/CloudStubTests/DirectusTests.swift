import CloudStub
import Foundation
import Testing

/// Four appointments; a2 and a4 are written with a -03:00 offset, so comparing them as text
/// against `Z` bounds would give the wrong answer.
let appointments: [JSONValue] = [
    [
        "id": "a1", "status": "scheduled", "scheduled_start": "2026-11-29T13:00:00Z", "price": 100,
        "room_id": "r1", "created_at": "2026-11-01T10:00:00Z", "updated_at": .null, "meta": ["kiosk": "k1"],
    ],
    [
        "id": "a2", "status": "confirmed", "scheduled_start": "2026-11-29T10:30:00-03:00", "price": 250,
        "room_id": "r2", "created_at": "2026-11-02T10:00:00Z", "updated_at": "2026-11-28T12:00:00Z", "meta": ["kiosk": "k2"],
    ],
    [
        "id": "a3", "status": "cancelled", "scheduled_start": "2026-11-30T09:00:00Z", "price": 50.5,
        "room_id": .null, "created_at": "2026-11-03T10:00:00Z", "updated_at": "2026-11-29T08:00:00.500Z",
    ],
    [
        "id": "a4", "status": "no_show", "scheduled_start": "2026-11-28T23:00:00-03:00", "price": 0,
        "room_id": "r1", "created_at": "2026-11-28T10:00:00Z",
    ],
]

let rosterSeed = CloudStubSeed(collections: [
    "appointments": appointments,
    "patients": [["id": "p1", "name": "Maria Souza", "phone": "+55 11 99999-0000", "qr_code_hash": "ab12"]],
    "rooms": [],
    "many": (0..<150).map { .object(["id": .string(String(format: "m%03d", $0)), "n": .number(Double($0))]) },
])

struct FilterCase: Sendable, CustomTestStringConvertible {
    var filter: String
    var expected: [String]
    var testDescription: String { filter }
    init(_ filter: String, _ expected: [String]) {
        self.filter = filter
        self.expected = expected
    }
}

@Suite("Directus REST")
struct DirectusTests {
    @Test func pingNeedsNoToken() async throws {
        try await withStub(seed: rosterSeed) { (c: StubClient) async throws in
            let answer = try await c.get("/server/ping")
            #expect(answer.status == 200)
            #expect(answer.text == "pong")
        }
    }

    @Test func authentication() async throws {
        try await withStub(seed: rosterSeed) { (c: StubClient) async throws in
            let invalid = #"{"errors":[{"extensions":{"code":"INVALID_CREDENTIALS"},"message":"Invalid user credentials."}]}"#
            let missing = try await c.get("/items/patients")
            #expect(missing.status == 401)
            #expect(missing.text == invalid)
            let wrong = try await c.items("/items/patients", token: "nope")
            #expect(wrong.status == 401)
            #expect(wrong.text == invalid)
            let notBearer = try await c.get("/items/patients", headers: ["Authorization": "Basic test-token"])
            #expect(notBearer.status == 401)
            #expect(try await c.items("/items/patients").status == 200)
            #expect(try await c.get("/items/patients?access_token=test-token").status == 200)
            let unknown = try await c.items("/items/invoices")
            #expect(unknown.status == 403)
            #expect(unknown.text == #"{"errors":[{"extensions":{"code":"FORBIDDEN"},"message":"You don't have permission to access this."}]}"#)
            #expect(c.stub.stats().directusRequests == 6)
        }
    }

    @Test func returnsAllRowsAndEmptyCollections() async throws {
        try await withStub(seed: rosterSeed) { (c: StubClient) async throws in
            let answer = try await c.items("/items/patients")
            #expect(try answer.json() == ["data": [["id": "p1", "name": "Maria Souza", "phone": "+55 11 99999-0000", "qr_code_hash": "ab12"]]])
            #expect(try await c.items("/items/rooms").text == #"{"data":[]}"#)
            #expect(try await c.ids("/items/appointments") == ["a1", "a2", "a3", "a4"])
        }
    }

    @Test func singleItemById() async throws {
        try await withStub(seed: rosterSeed) { (c: StubClient) async throws in
            let one = try await c.items("/items/patients/p1?fields=id,name")
            #expect(try one.json() == ["data": ["id": "p1", "name": "Maria Souza"]])
            #expect(try await c.items("/items/patients/zz").status == 403)
        }
    }

    @Test func fields() async throws {
        try await withStub(seed: rosterSeed) { (c: StubClient) async throws in
            let some = try await c.items("/items/patients?fields=id,qr_code_hash")
            #expect(try some.json() == ["data": [["id": "p1", "qr_code_hash": "ab12"]]])
            let star = try await c.items("/items/patients?fields=*")
            #expect(try star.json()["data"]?.arrayValue?.first?.objectValue?.count == 4)
            let bracket = try await c.items("/items/patients?fields[]=id&fields[]=name")
            #expect(try bracket.json() == ["data": [["id": "p1", "name": "Maria Souza"]]])
            let nested = try await c.items("/items/appointments?fields=id,meta.kiosk,updated_at&filter=\(q(#"{"id":{"_in":["a1","a4"]}}"#))")
            #expect(
                try nested.json() == [
                    "data": [
                        ["id": "a1", "meta": ["kiosk": "k1"], "updated_at": .null],
                        ["id": "a4", "meta": .null, "updated_at": .null],
                    ]
                ])
        }
    }

    static let filterCases: [FilterCase] = [
        FilterCase(#"{"status":{"_eq":"scheduled"}}"#, ["a1"]),
        FilterCase(#"{"status":{"_neq":"scheduled"}}"#, ["a2", "a3", "a4"]),
        FilterCase(#"{"room_id":{"_neq":"r1"}}"#, ["a2"]),  // null fails _neq, as in SQL
        FilterCase(#"{"price":{"_eq":"100"}}"#, ["a1"]),
        FilterCase(#"{"price":{"_gt":100}}"#, ["a2"]),
        FilterCase(#"{"price":{"_gte":"100"}}"#, ["a1", "a2"]),
        FilterCase(#"{"price":{"_lt":50.5}}"#, ["a4"]),
        FilterCase(#"{"price":{"_lte":50.5}}"#, ["a3", "a4"]),
        FilterCase(#"{"status":{"_in":["scheduled","no_show"]}}"#, ["a1", "a4"]),
        FilterCase(#"{"status":{"_in":"scheduled,confirmed"}}"#, ["a1", "a2"]),
        FilterCase(#"{"status":{"_nin":["scheduled","no_show"]}}"#, ["a2", "a3"]),
        FilterCase(#"{"price":{"_between":[50.5,100]}}"#, ["a1", "a3"]),
        FilterCase(#"{"price":{"_nbetween":[1,200]}}"#, ["a2", "a4"]),
        // Instants, whatever the offset: a4 is 02:00Z on the 29th, a2 is 13:30Z.
        FilterCase(#"{"scheduled_start":{"_between":["2026-11-29T00:00:00Z","2026-11-29T13:15:00Z"]}}"#, ["a1", "a4"]),
        FilterCase(#"{"scheduled_start":{"_gt":"2026-11-29T13:15:00Z"}}"#, ["a2", "a3"]),
        FilterCase(#"{"scheduled_start":{"_lte":"2026-11-29T10:00:00-03:00"}}"#, ["a1", "a4"]),
        FilterCase(#"{"scheduled_start":{"_eq":"2026-11-29T13:30:00.000Z"}}"#, ["a2"]),
        FilterCase(#"{"room_id":{"_null":true}}"#, ["a3"]),
        FilterCase(#"{"room_id":{"_nnull":true}}"#, ["a1", "a2", "a4"]),
        FilterCase(#"{"updated_at":{"_null":true}}"#, ["a1", "a4"]),  // a missing field is null
        FilterCase(#"{"updated_at":{"_gt":"2026-11-01T00:00:00Z"}}"#, ["a2", "a3"]),  // null fails _gt
        FilterCase(#"{"updated_at":{"_eq":null}}"#, ["a1", "a4"]),
        FilterCase(#"{"meta":{"kiosk":{"_eq":"k2"}}}"#, ["a2"]),
        FilterCase(#"{"status":{"_neq":"cancelled"},"room_id":{"_eq":"r1"}}"#, ["a1", "a4"]),
        FilterCase(#"{"_or":[{"status":{"_eq":"cancelled"}},{"price":{"_gte":250}}]}"#, ["a2", "a3"]),
        FilterCase(#"{"_and":[{"room_id":{"_eq":"r1"}},{"_or":[{"status":{"_eq":"no_show"}},{"price":{"_gt":99}}]}]}"#, ["a1", "a4"]),
        FilterCase(
            #"{"_or":[{"_and":[{"status":{"_eq":"scheduled"}},{"price":{"_lt":10}}]},{"_and":[{"status":{"_eq":"no_show"}},{"price":{"_lt":10}}]}]}"#,
            ["a4"]),
        // The roster's incremental pull: created or updated after a cursor.
        FilterCase(#"{"_or":[{"created_at":{"_gt":"2026-11-27T00:00:00Z"}},{"updated_at":{"_gt":"2026-11-27T00:00:00Z"}}]}"#, ["a2", "a3", "a4"]),
        FilterCase(#"{"status":{"_starts_with":"con"}}"#, ["a2"]),
        FilterCase(#"{"status":{"_contains":"sched"}}"#, ["a1"]),
        FilterCase(#"{"_and":[]}"#, ["a1", "a2", "a3", "a4"]),
        FilterCase(#"{"_or":[]}"#, []),
    ]

    @Test(arguments: filterCases)
    func filter(_ fc: FilterCase) async throws {
        try await withStub(seed: rosterSeed) { (c: StubClient) async throws in
            let ids = try await c.ids("/items/appointments?filter=\(q(fc.filter))")
            #expect(ids == fc.expected)
        }
    }

    @Test func bracketFilterNotation() async throws {
        try await withStub(seed: rosterSeed) { (c: StubClient) async throws in
            #expect(try await c.ids("/items/appointments?filter[status][_eq]=confirmed") == ["a2"])
            #expect(try await c.ids("/items/appointments?filter[_or][0][status][_eq]=confirmed&filter[_or][1][price][_lt]=1") == ["a2", "a4"])
        }
    }

    @Test(arguments: [
        "filter=\(q("{not json"))",
        "filter=\(q(#"{"status":{"_like":"x"}}"#))",
        "filter=\(q(#"{"status":"scheduled"}"#))",
        "filter=\(q(#"[1]"#))",
        "filter=\(q(#"{"_and":{"status":{"_eq":"x"}}}"#))",
        "limit=abc",
        "limit=-2",
        "offset=-1",
    ])
    func badQueryIs400(query: String) async throws {
        try await withStub(seed: rosterSeed) { (c: StubClient) async throws in
            let answer = try await c.items("/items/appointments?\(query)")
            #expect(answer.status == 400)
            let error = try answer.json()["errors"]?.arrayValue?.first
            #expect(error?["extensions"]?["code"] == "INVALID_QUERY")
            #expect(error?["message"]?.stringValue?.hasPrefix("Invalid query.") == true)
        }
    }

    @Test func sort() async throws {
        try await withStub(seed: rosterSeed) { (c: StubClient) async throws in
            #expect(try await c.ids("/items/appointments?sort=-price") == ["a2", "a1", "a3", "a4"])
            #expect(try await c.ids("/items/appointments?sort=price") == ["a4", "a3", "a1", "a2"])
            // Nulls first when ascending; ties broken by the next key.
            #expect(try await c.ids("/items/appointments?sort=room_id,-price") == ["a3", "a1", "a4", "a2"])
            // Timestamps sort as instants.
            #expect(try await c.ids("/items/appointments?sort=scheduled_start") == ["a4", "a1", "a2", "a3"])
            #expect(try await c.ids("/items/appointments?sort[]=-scheduled_start") == ["a3", "a2", "a1", "a4"])
            #expect(try await c.ids("/items/appointments?sort=-meta.kiosk") == ["a2", "a1", "a3", "a4"])
        }
    }

    @Test func limitOffsetAndPaging() async throws {
        try await withStub(seed: rosterSeed) { (c: StubClient) async throws in
            #expect(try await c.ids("/items/appointments?sort=id&limit=2&offset=1") == ["a2", "a3"])
            #expect(try await c.ids("/items/appointments?sort=id&limit=2&page=2") == ["a3", "a4"])
            #expect(try await c.ids("/items/appointments?limit=0") == [])
            #expect(try await c.ids("/items/appointments?offset=10") == [])
            let firstPage = try await c.ids("/items/many")
            #expect(firstPage.count == 100)  // the default limit
            #expect(firstPage.first == "m000")
            #expect(try await c.ids("/items/many?limit=-1").count == 150)
            let tail = try await c.ids("/items/many?sort=-n&limit=100&offset=100")
            #expect(tail.count == 50)
            #expect(tail.first == "m049")
            let filtered = try await c.ids("/items/many?filter=\(q(#"{"n":{"_gte":140}}"#))&sort=n&limit=5&offset=5")
            #expect(filtered == ["m145", "m146", "m147", "m148", "m149"])
        }
    }

    @Test func metaCounts() async throws {
        try await withStub(seed: rosterSeed) { (c: StubClient) async throws in
            let answer = try await c.items("/items/many?meta=total_count,filter_count&limit=1&filter=\(q(#"{"n":{"_lt":10}}"#))")
            let json = try answer.json()
            #expect(json["meta"] == ["total_count": 150, "filter_count": 10])
            #expect(json["data"]?.arrayValue?.count == 1)
        }
    }
}
