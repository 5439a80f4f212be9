import EdgeCore
import EdgeStore
import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
@testable import MedicEdge
import Testing

/// The local HTTP API's routes in-process, through Hummingbird's testing module (the router
/// the daemon serves, without a socket), with the injected `ManualClock`: health that turns
/// 503 after the broker has been gone 61 s, the status document, the console's login, session
/// expiry and security headers, and the embedded assets — none of it waits on a wall clock.
@Suite("HTTP routes in-process (HummingbirdTesting, manual clock)")
struct RoutesTests {
    struct World {
        let clock = ManualClock()
        let state: EdgeState
        let db: AppDatabase
        let routes: HTTPRoutes
        init() throws {
            state = EdgeState(cloudConfigured: false, clock: clock)
            db = try AppDatabase.inMemory()
            routes = HTTPRoutes(
                config: EdgeConfig(), db: db, state: state, metrics: EdgeMetrics(bootstrap: false),
                logger: Logger(label: "routes-test"))
        }
        func test(_ body: @escaping @Sendable (any TestClientProtocol) async throws -> Void) async throws {
            let app = Application(router: routes.router(context: BasicRequestContext.self))
            try await app.test(.router) { client in try await body(client) }
        }
    }

    static func json(_ r: TestResponse) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(r.body.readableBytesView)) as? [String: Any])
    }

    @Test("/healthz: 200 while the broker is there; 200 at 59 s without it; 503 naming the broker at 61 s; 200 again when it is back")
    func healthByTheInjectedClock() async throws {
        let w = try World()
        w.state.setMQTTConnected(true)
        try await w.test { client in
            try await client.execute(uri: "/healthz", method: .get) { r in
                #expect(r.status == .ok)
                #expect(String(buffer: r.body) == #"{"status":"ok"}"#)
            }
            w.state.setMQTTConnected(false)
            w.clock.advance(seconds: 59)
            try await client.execute(uri: "/healthz", method: .get) { r in #expect(r.status == .ok) }
            w.clock.advance(seconds: 2)
            try await client.execute(uri: "/healthz", method: .get) { r in
                #expect(r.status == .serviceUnavailable)
                let doc = try Self.json(r)
                #expect(doc["status"] as? String == "unhealthy")
                let reasons = try #require(doc["reasons"] as? [String])
                #expect(reasons == ["mqtt: disconnected from the broker for 61 s; is mosquitto running?"])
            }
            w.state.setMQTTConnected(true)
            try await client.execute(uri: "/healthz", method: .get) { r in #expect(r.status == .ok) }
            // A loop busy for more than 60 s is stuck.
            w.state.busy("uplink")
            w.clock.advance(seconds: 61)
            try await client.execute(uri: "/healthz", method: .get) { r in
                #expect(r.status == .serviceUnavailable)
                let reasons = try Self.json(r)["reasons"] as? [String]
                #expect(reasons == ["uplink: no progress for 61 s"])
            }
        }
    }

    @Test("/api/v1/status: the contract's document, times from the injected wall clock")
    func statusDocument() async throws {
        let w = try World()
        w.state.setMQTTConnected(true)
        try await w.test { client in
            try await client.execute(uri: "/api/v1/status", method: .get) { r in
                #expect(r.status == .ok)
                #expect(r.headers[.contentType] == "application/json; charset=utf-8")
                #expect(r.headers[.cacheControl] == "no-store")
                let doc = try Self.json(r)
                #expect(doc["site_id"] as? String == "demo")
                #expect((doc["mqtt"] as? [String: Any])?["connected"] as? Bool == true)
                #expect((doc["cloud"] as? [String: Any])?["state"] as? String == "disabled")
                let outbox = try #require(doc["outbox"] as? [String: Any])
                #expect(outbox["pending"] as? Int == 0 && outbox["dead_letters"] as? Int == 0)
                #expect((doc["roster"] as? [String: Any])?["patients"] as? Int == 0)
                #expect((doc["alerts"] as? [String: Any])?["active"] as? Int == 0)
                #expect((doc["storage"] as? [String: Any])?["budget_bytes"] as? Int == Int(EdgeConfig().storageMaxBytes))
            }
        }
    }

    @Test(
        "Console over the router: another site's login 403, wrong password 401, right one 200 with an HttpOnly cookie, the agenda, 401 after 12 h"
    )
    func loginSessionExpiry() async throws {
        let w = try World()
        try StaffAccounts(db: w.db, clock: w.clock).add(name: "ana", password: "senha-forte-1", iterations: 1000)
        try await w.test { client in
            // A login posted from another site is refused before any check (login CSRF).
            try await client.execute(
                uri: "/api/v1/session", method: .post,
                headers: [.contentType: "application/json", .origin: "http://evil.example"],
                body: ByteBuffer(string: #"{"name":"ana","password":"senha-forte-1"}"#)
            ) { r in
                #expect(r.status == .forbidden)
                let error = try Self.json(r)["error"] as? [String: Any]
                #expect(error?["code"] as? String == "origin_mismatch")
            }
            let headers: HTTPFields = [.contentType: "application/json"]  // as curl sends it: no Origin
            try await client.execute(
                uri: "/api/v1/session", method: .post, headers: headers,
                body: ByteBuffer(string: #"{"name":"ana","password":"errada-123"}"#)
            ) { r in
                #expect(r.status == .unauthorized)
                let error = try Self.json(r)["error"] as? [String: Any]
                #expect(error?["code"] as? String == "invalid_credentials")
            }
            let token: String = try await client.execute(
                uri: "/api/v1/session", method: .post, headers: headers,
                body: ByteBuffer(string: #"{"name":"Ana","password":"senha-forte-1"}"#)
            ) { r in
                #expect(r.status == .ok)
                let cookie = try #require(r.headers[.setCookie])
                #expect(cookie.hasPrefix("medic_edge_session=") && cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"))
                #expect(!cookie.contains("Secure"), "plain listener, no TLS")
                return try #require(try Self.json(r)["token"] as? String)
            }
            let bearer: HTTPFields = [.authorization: "Bearer \(token)"]
            try await client.execute(uri: "/api/v1/agenda?date=2027-01-15", method: .get, headers: bearer) { r in
                #expect(r.status == .ok)
                let date = try Self.json(r)["date"] as? String
                #expect(date == "2027-01-15")
            }
            try await client.execute(uri: "/api/v1/agenda?date=15/01/2027", method: .get, headers: bearer) { r in
                #expect(r.status == .badRequest)
            }
            w.clock.advance(ms: StaffAccounts.sessionMs)
            try await client.execute(uri: "/api/v1/agenda", method: .get, headers: bearer) { r in
                #expect(r.status == .unauthorized)
                #expect(r.headers[.wwwAuthenticate] == #"Bearer realm="medic-edge""#)
            }
        }
    }

    @Test("The console's assets are the files in Console/Assets, embedded in the binary; the page carries the security headers")
    func embeddedAssets() async throws {
        let w = try World()
        let dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Sources/MedicEdge/Console/Assets")
        try await w.test { client in
            for (uri, file, type) in [
                ("/assets/console.css", "console.css", "text/css; charset=utf-8"),
                ("/assets/console.js", "console.js", "text/javascript; charset=utf-8"),
                ("/assets/login.js", "login.js", "text/javascript; charset=utf-8"),
            ] {
                let onDisk = try String(contentsOf: dir.appendingPathComponent(file), encoding: .utf8)
                try await client.execute(uri: uri, method: .get) { r in
                    #expect(r.status == .ok)
                    #expect(r.headers[.contentType] == type)
                    #expect(String(buffer: r.body) == onDisk, "\(uri) is not \(file) as written")
                }
            }
            try await client.execute(uri: "/", method: .get) { r in
                #expect(r.status == .ok, "without a session the page is the login form")
                #expect(r.headers[FieldName("Content-Security-Policy")!]?.contains("default-src 'none'") == true)
                #expect(r.headers[FieldName("X-Frame-Options")!] == "DENY")
            }
        }
    }
}
