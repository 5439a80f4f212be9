import CloudStub
import EdgeHTTPClient
import Foundation
import Testing

@Suite("Hostile Event API answers")
struct HostileEventsTests {
    /// A new client (so a new connection) per request: libcurl resends a request once by
    /// itself when a reused connection turns out dead, which would take two answers.
    static func post(_ http: CurlHTTPClient? = nil, port: Int, id: String) async throws -> HTTPResponse {
        let http = http ?? CurlHTTPClient(label: "hostile-test")
        let body = JSONValue.array([event(id)]).serialized()
        return try await http.send(
            HTTPRequest(
                method: "POST", url: "http://127.0.0.1:\(port)/e/test-key",
                headers: [("Content-Type", "application/json")], body: Array(body.utf8),
                connectTimeout: 2, timeout: 5))
    }

    @Test("hostile_events answers in turn, one per request, cycling; nothing is recorded; {} restores service")
    func answersInTurn() async throws {
        try await withStub { (c: StubClient) async throws in
            let set = try await c.post("/_stub/faults", #"{"mode":"hostile_events"}"#)
            #expect(set.status == 200)
            #expect(try set.json()["mode"] == "hostile_events")
            let all = HostileEventAnswer.allCases
            #expect(all.count == 27)
            for (i, answer) in (all + [all[0]]).enumerated() {
                let result: Result<HTTPResponse, any Error>
                do { result = .success(try await Self.post(port: c.port, id: "e\(i)")) } catch { result = .failure(error) }
                switch answer {
                case .connectionReset:
                    #expect(throws: (any Error).self, "\(answer)") { try result.get() }
                case .okTruncated:
                    #expect(throws: (any Error).self, "\(answer)") { try result.get() }
                    if case .failure(let e) = result {
                        #expect((e as? HTTPTransportError)?.isPartialBody == true, "a body cut short: \(e)")
                    }
                default:
                    let r = try result.get()
                    #expect(r.status == answer.status, "\(answer)")
                    #expect(r.headers["retry-after"] == answer.retryAfter, "\(answer)")
                    if answer == .redirectToLogin { #expect(r.headers["location"]?.hasPrefix("/login") == true) }
                    if answer == .badGatewayEmpty { #expect(r.body.isEmpty) }
                    if answer == .okHTMLPage { #expect(r.text.contains("<html>")) }
                    if answer == .okNotInngest { #expect(r.text == #"{"ok":true}"#) }
                    if answer == .okEmptyIds { #expect(r.text.hasPrefix(#"{"ids":[]"#)) }
                }
            }
            // The list, with the values the brief names, in order, then round again.
            let retryAfters = Set(all.compactMap(\.retryAfter))
            #expect(retryAfters == ["nan", "inf", "-inf", "-1", "1e308", "abc", "", "0x10", "5.5.5", HostileEventAnswer.pastDate])
            #expect(all.filter { $0.retryAfter != nil }.count == 20)
            let log = c.stub.eventRequests().map(\.answer)
            #expect(log == (all + [all[0]]).map(\.rawValue))
            let overHTTP = try await c.get("/_stub/event_requests")
            #expect(try overHTTP.json()["requests"]?.arrayValue?.count == all.count + 1)
            #expect(c.stub.receivedEvents().isEmpty, "no hostile answer records an event")
            try await c.setFaults("{}")
            let ok = try await Self.post(port: c.port, id: "after")
            #expect(ok.status == 200 && ok.text.contains(#""ids":["after"]"#))
            #expect(c.stub.receivedEvents() == [event("after")])
        }
    }

    @Test("Setting the faults again starts the cycle from its first answer")
    func cycleRestarts() async throws {
        try await withStub { (c: StubClient) async throws in
            c.stub.setFaults(CloudStubFaults(mode: .hostileEvents))
            _ = try? await Self.post(port: c.port, id: "a")
            _ = try? await Self.post(port: c.port, id: "b")
            c.stub.setFaults(CloudStubFaults(mode: .hostileEvents))
            let r = try await Self.post(port: c.port, id: "c")
            #expect(r.status == 429 && r.headers["retry-after"] == "nan")
            // Directus routes are not affected.
            #expect(try await c.get("/server/ping").status == 200)
        }
    }
}
