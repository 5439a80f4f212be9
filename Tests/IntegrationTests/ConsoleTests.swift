import EdgeCore
import EdgeHTTPClient
import EdgeTestSupport
import Foundation
import Testing

/// The reception console (issue "The reception console"): staff accounts, the JSON API of
/// CONTRACT §4 and the page, against the real daemon, real SQLite and the cloud stub.
@Suite("Reception console", .serialized)
struct ConsoleTests {
    static let password = "senha-da-recepcao"
    static let fridgeConfig = """
        rooms:
          geladeira-vacinas: {name: Geladeira de vacinas, limits: {temperature_c: {min: 2, max: 8, hysteresis: 0.5}}}
          sala-3: {limits: {co2_ppm: {min: 0, max: 1000, hysteresis: 50}}}

        """

    // MARK: helpers

    /// Runs a test body with its real parts, and stops them however the body ends (a thrown
    /// error too: no broker or daemon is left behind).
    static func withEnv(cloud: Bool = true, day: ClinicDay? = nil, extraConfig: String = "", _ body: (Env) async throws -> Void) async throws {
        let env = try await Env.start(cloud: cloud, day: day, extraConfig: extraConfig)
        do { try await body(env) } catch {
            await env.stop()
            throw error
        }
        await env.stop()
    }

    struct Staffer { let name: String; let token: String; let cookie: String }

    static func addStaff(_ env: Env, _ name: String = "recepcao", password: String = ConsoleTests.password) async throws {
        let (code, out) = try await DaemonProcess.runCLI(["staff", "add", name, "--config", env.daemon.configPath], stdin: password + "\n")
        #expect(code == 0, "staff add failed: \(out)")
    }

    static func login(_ env: Env, _ name: String, _ password: String, headers: [(String, String)] = [], from: String? = nil) async throws
        -> HTTPResponse
    {
        try await env.daemon.send(
            "POST", "/api/v1/session",
            body: JSONText.object {
                $0.add("name", name); $0.add("password", password)
            },
            headers: headers, from: from)
    }

    static func signIn(_ env: Env, _ name: String = "recepcao") async throws -> Staffer {
        let r = try await login(env, name, password)
        try #require(r.status == 200, "login: \(r.status) \(r.text)")
        let token = try #require(try JSON.parse(r.body)["token"]?.stringValue)
        let setCookie = try #require(r.headers["set-cookie"])
        let pair = try #require(setCookie.split(separator: ";").first)
        return Staffer(name: name, token: token, cookie: String(pair))
    }

    static func bearer(_ s: Staffer) -> [(String, String)] { [("Authorization", "Bearer \(s.token)")] }

    static func errorCode(_ r: HTTPResponse) -> String? { (try? JSON.parse(r.body))?["error"]?["code"]?.stringValue }

    static func checkIn(_ env: Env, _ s: Staffer, _ id: String) async throws -> HTTPResponse {
        try await env.daemon.send("POST", "/api/v1/checkins", body: JSONText.object { $0.add("appointment_id", id) }, headers: bearer(s))
    }

    static func agenda(_ env: Env, _ s: Staffer, date: String? = nil) async throws -> JSON {
        let r = try await env.daemon.get("/api/v1/agenda" + (date.map { "?date=\($0)" } ?? ""), headers: bearer(s))
        try #require(r.status == 200, "agenda: \(r.status) \(r.text)")
        return try JSON.parse(r.body)
    }

    static let zone = TimeZone(identifier: "America/Sao_Paulo")!

    /// Start offsets (minutes from now) that stay inside today's local day, so tests run at
    /// any hour: ahead of now when the day has room, else behind now (with long durations,
    /// so the appointment is still open for check-in).
    static func slots(_ n: Int, spacing: Double = 15) -> (starts: [Double], minutes: Double) {
        let now = Date()
        let today = LocalDay.dayString(Int64(now.timeIntervalSince1970 * 1000), zone: zone)
        let (from, to) = LocalDay.bounds(today, zone: zone)!
        let nowMs = Int64(now.timeIntervalSince1970 * 1000)
        let minutesLeft = Double(to - nowMs) / 60_000, minutesGone = Double(nowMs - from) / 60_000
        if minutesLeft > spacing * Double(n) + 30 { return ((0..<n).map { 10 + spacing * Double($0) }, 50) }
        let back = min(minutesGone - 1, spacing * Double(n) + 5)
        return ((0..<n).map { -back + spacing * Double($0) }, back + 60)
    }

    static func dayOf(_ startMinutes: Double, now: Date) -> String {
        LocalDay.dayString(Int64(now.addingTimeInterval(startMinutes * 60).timeIntervalSince1970 * 1000), zone: zone)
    }

    // MARK: staff accounts (CLI)

    @Test("Staff CLI: add reads the password from stdin and refuses short ones and duplicates; list shows names; remove ends access")
    func staffCLI() async throws {
        try await Self.withEnv(cloud: false) { env in
            let cfg = ["--config", env.daemon.configPath]
            var (code, out) = try await DaemonProcess.runCLI(["staff", "add", "Ana"] + cfg, stdin: "curta\n")
            #expect(code != 0 && out.contains("at least 8"), "\(out)")
            (code, out) = try await DaemonProcess.runCLI(["staff", "add", "ana"] + cfg, stdin: "\n")
            #expect(code != 0, "empty password refused: \(out)")
            (code, out) = try await DaemonProcess.runCLI(["staff", "add", "ana"] + cfg, stdin: "")
            #expect(code != 0 && out.contains("standard input"), "no input at all: \(out)")
            (code, out) = try await DaemonProcess.runCLI(["staff", "add", "ana maria"] + cfg, stdin: "senha-boa-123\n")
            #expect(code != 0 && out.contains("bad name"), "\(out)")
            (code, out) = try await DaemonProcess.runCLI(["staff", "add", "Ana"] + cfg, stdin: "senha-boa-123\n")
            #expect(code == 0 && out.contains("\"ana\" created"), "\(out)")
            (code, out) = try await DaemonProcess.runCLI(["staff", "add", "ana"] + cfg, stdin: "outra-senha-456\n")
            #expect(code != 0 && out.contains("already exists"), "\(out)")
            (code, out) = try await DaemonProcess.runCLI(["staff", "add", "bruno"] + cfg, stdin: "senha-do-bruno\n")
            #expect(code == 0)
            (code, out) = try await DaemonProcess.runCLI(["staff", "list"] + cfg)
            #expect(code == 0 && out.contains("ana") && out.contains("bruno"), "\(out)")
            #expect(!out.contains("senha"))

            // Login with any case of the name; the session works; removal ends it.
            let r = try await Self.login(env, "ANA", "senha-boa-123")
            #expect(r.status == 200, "\(r.text)")
            let token = try #require(try JSON.parse(r.body)["token"]?.stringValue)
            #expect(try await env.daemon.get("/api/v1/rooms", headers: [("Authorization", "Bearer \(token)")]).status == 200)
            (code, out) = try await DaemonProcess.runCLI(["staff", "list"] + cfg)
            #expect(out.split(separator: "\n").contains { $0.hasPrefix("ana ") && $0.hasSuffix(" 1") }, "one open session: \(out)")
            (code, out) = try await DaemonProcess.runCLI(["staff", "add", "ana", "--replace"] + cfg, stdin: "senha-nova-789\n")
            #expect(code == 0, "\(out)")
            #expect(
                try await env.daemon.get("/api/v1/rooms", headers: [("Authorization", "Bearer \(token)")]).status == 401,
                "a new password ends the sessions")
            #expect(try await Self.login(env, "ana", "senha-boa-123").status == 401)
            let r2 = try await Self.login(env, "ana", "senha-nova-789")
            let token2 = try #require(try JSON.parse(r2.body)["token"]?.stringValue)
            (code, out) = try await DaemonProcess.runCLI(["staff", "remove", "ana"] + cfg)
            #expect(code == 0, "\(out)")
            #expect(try await env.daemon.get("/api/v1/rooms", headers: [("Authorization", "Bearer \(token2)")]).status == 401)
            (code, out) = try await DaemonProcess.runCLI(["staff", "remove", "ana"] + cfg)
            #expect(code != 0 && out.contains("no staff account"), "\(out)")

            // The database holds neither the passwords nor the tokens.
            _ = await env.daemon.terminate()
            var blob = Data()
            for f in (try? FileManager.default.contentsOfDirectory(atPath: env.daemon.dataDir)) ?? [] {
                blob.append(try Data(contentsOf: URL(fileURLWithPath: env.daemon.dataDir + "/" + f)))
            }
            let hay = String(decoding: blob, as: UTF8.self)
            for secret in ["senha-boa-123", "senha-do-bruno", "senha-nova-789", token, token2] {
                #expect(!hay.contains(secret), "found a secret in the database files")
            }
        }
    }

    // MARK: session

    @Test("Login: 200 with a token and an HttpOnly SameSite=Strict cookie; 401 JSON for a wrong or missing name or password; 400 for non-JSON")
    func login() async throws {
        try await Self.withEnv(cloud: false) { env in
            try await Self.addStaff(env)
            let ok = try await Self.login(env, "recepcao", Self.password)
            #expect(ok.status == 200)
            let body = try JSON.parse(ok.body)
            let token = try #require(body["token"]?.stringValue)
            #expect(token.count == 43, "32 random bytes, base64url without padding")
            #expect(token.allSatisfy { $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" })
            #expect(body["name"]?.stringValue == "recepcao")
            let expires = try #require(Time.parseMs(body["expires_at"]?.stringValue ?? ""))
            #expect(abs(expires - Time.nowMs() - 12 * 3600_000) < 60_000)
            let cookie = try #require(ok.headers["set-cookie"])
            #expect(cookie.hasPrefix("medic_edge_session=\(token);"))
            for attr in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=43200"] {
                #expect(cookie.contains(attr), "cookie lacks \(attr): \(cookie)")
            }
            #expect(!cookie.contains("Secure"), "plain HTTP: no Secure attribute")
            #expect(ok.headers["cache-control"] == "no-store")
            // Behind TLS (a proxy saying so, or an https Origin) the cookie is Secure.
            let tls = try await Self.login(env, "recepcao", Self.password, headers: [("X-Forwarded-Proto", "https")])
            #expect(tls.headers["set-cookie"]?.contains("; Secure") == true)

            let wrong = try await Self.login(env, "recepcao", "senha-errada!")
            #expect(wrong.status == 401)
            #expect(Self.errorCode(wrong) == "invalid_credentials")
            #expect((try JSON.parse(wrong.body))["error"]?["message"]?.stringValue == "Usuário ou senha incorretos.")
            #expect(wrong.headers["content-type"]?.hasPrefix("application/json") == true)
            #expect(wrong.headers["www-authenticate"]?.hasPrefix("Bearer") == true)
            #expect(wrong.headers["set-cookie"] == nil)
            let unknown = try await Self.login(env, "ninguem", Self.password)
            #expect(unknown.status == 401 && Self.errorCode(unknown) == "invalid_credentials")
            let missing = try await env.daemon.send("POST", "/api/v1/session", body: #"{"name":"recepcao"}"#)
            #expect(missing.status == 401 && Self.errorCode(missing) == "invalid_credentials")
            let notJSON = try await env.daemon.send("POST", "/api/v1/session", body: "name=recepcao&password=x")
            #expect(notJSON.status == 400 && Self.errorCode(notJSON) == "bad_request")
            let huge = try await env.daemon.send("POST", "/api/v1/session", body: String(repeating: "x", count: 100_000))
            #expect(huge.status == 413 && Self.errorCode(huge) == "body_too_large")
            // A login form posted from another site is refused (login CSRF).
            let foreign = try await Self.login(env, "recepcao", Self.password, headers: [("Origin", "http://evil.example")])
            #expect(foreign.status == 403 && Self.errorCode(foreign) == "origin_mismatch")
            #expect(!env.daemon.log().contains(Self.password))
        }
    }

    @Test("Throttling: after 5 failures within 5 minutes the next login is 429 with Retry-After, even with the right password")
    func throttling() async throws {
        try await Self.withEnv(cloud: false) { env in
            try await Self.addStaff(env)
            let s = try await Self.signIn(env)
            for i in 1...5 {
                let r = try await Self.login(env, "recepcao", "errada-\(i)-xyz")
                #expect(r.status == 401, "failure \(i)")
            }
            let locked = try await Self.login(env, "recepcao", Self.password)
            #expect(locked.status == 429)
            #expect(Self.errorCode(locked) == "too_many_attempts")
            let retry = try #require(Int(locked.headers["retry-after"] ?? ""))
            #expect((1...300).contains(retry), "Retry-After \(retry)")
            #expect((try JSON.parse(locked.body))["error"]?["message"]?.stringValue?.contains("Tente novamente") == true)
            // The address (127.0.0.1) is locked too, for any name.
            #expect(try await Self.login(env, "outra-pessoa", "qualquer-coisa").status == 429)
            // From another address the name stays locked, other names are not.
            #expect(try await Self.login(env, "recepcao", Self.password, from: "127.0.0.3").status == 429)
            #expect(try await Self.login(env, "outra-pessoa", "qualquer-coisa", from: "127.0.0.3").status == 401)
            // Sessions already open keep working.
            #expect(try await env.daemon.get("/api/v1/rooms", headers: Self.bearer(s)).status == 200)
        }
    }

    @Test(
        "20 parallel logins with wrong passwords for one name: at most 5 reach the password check, the rest get 429 or 503; then the name is locked")
    func parallelGuesses() async throws {
        try await Self.withEnv(cloud: false) { env in
            try await Self.addStaff(env)
            // Each guess on a connection (and an address) of its own, all at once: the throttle
            // by address cannot help, only counting each attempt before its hash can.
            let statuses = try await withThrowingTaskGroup(of: Int.self) { group in
                for i in 0..<20 {
                    group.addTask {
                        let body = JSONText.object {
                            $0.add("name", "recepcao"); $0.add("password", "chute-errado-\(i)")
                        }
                        let r = try await CurlHTTPClient(label: "guess-\(i)").send(
                            HTTPRequest(
                                method: "POST", url: env.daemon.baseURL + "/api/v1/session", headers: [("Content-Type", "application/json")],
                                body: Array(body.utf8), connectTimeout: 2, timeout: 30, localAddress: "127.0.0.\(10 + i)"))
                        return r.status
                    }
                }
                return try await group.reduce(into: [Int]()) { $0.append($1) }
            }
            let wrong = statuses.filter { $0 == 401 }.count
            #expect(wrong >= 1 && wrong <= 5, "guesses that reached the password check: \(statuses.sorted())")
            #expect(statuses.allSatisfy { [401, 429, 503].contains($0) }, "\(statuses.sorted())")
            let checks = try await env.metric("medic_edge_login_password_checks_total")
            #expect(checks == Double(wrong), "password checks run: \(checks ?? -1)")
            // Whatever was refused without a check (503) was taken back; once 5 guesses failed,
            // the name is locked, even with the right password from a new address.
            if wrong == 5 {
                #expect(try await Self.login(env, "recepcao", Self.password, from: "127.0.0.40").status == 429)
            } else {
                #expect(try await Self.login(env, "recepcao", Self.password, from: "127.0.0.40").status == 200)
            }
        }
    }

    @Test("Throttling by address: 5 failures from one client (any names) lock that client, not the others")
    func throttlingByAddress() async throws {
        try await Self.withEnv(cloud: false) { env in
            try await Self.addStaff(env)
            for i in 1...5 {
                let r = try await Self.login(env, "ninguem-\(i)", "errada-\(i)-xyz", from: "127.0.0.2")
                #expect(r.status == 401, "failure \(i)")
            }
            let locked = try await Self.login(env, "recepcao", Self.password, from: "127.0.0.2")
            #expect(locked.status == 429 && Self.errorCode(locked) == "too_many_attempts")
            #expect(Int(locked.headers["retry-after"] ?? "").map { (1...300).contains($0) } == true)
            // The same staff member from another PC (and from the box itself) signs in.
            #expect(try await Self.login(env, "recepcao", Self.password, from: "127.0.0.4").status == 200)
            #expect(try await Self.login(env, "recepcao", Self.password).status == 200)
            #expect(env.daemon.log().contains("address 127.0.0.2"), "the throttled address is logged")
        }
    }

    @Test("Logout: 204, then the token and the cookie both get 401; logout needs credentials")
    func logout() async throws {
        try await Self.withEnv(cloud: false) { env in
            try await Self.addStaff(env)
            let a = try await Self.signIn(env)
            let b = try await Self.signIn(env)
            #expect(try await env.daemon.get("/api/v1/agenda", headers: Self.bearer(a)).status == 200)
            #expect(try await env.daemon.get("/api/v1/agenda", headers: [("Cookie", a.cookie)]).status == 200)
            let out = try await env.daemon.send("DELETE", "/api/v1/session", headers: Self.bearer(a))
            #expect(out.status == 204)
            #expect(out.headers["set-cookie"]?.contains("Max-Age=0") == true)
            let after = try await env.daemon.get("/api/v1/agenda", headers: Self.bearer(a))
            #expect(after.status == 401 && Self.errorCode(after) == "invalid_token")
            let cookieAfter = try await env.daemon.get("/api/v1/agenda", headers: [("Cookie", a.cookie)])
            #expect(cookieAfter.status == 401 && Self.errorCode(cookieAfter) == "invalid_session")
            #expect(try await env.daemon.send("DELETE", "/api/v1/session", headers: Self.bearer(a)).status == 401)
            #expect(try await env.daemon.get("/api/v1/agenda", headers: Self.bearer(b)).status == 200, "the other session lives on")
            // Cookie logout from the page (same origin).
            let port = env.daemon.httpPort
            let viaCookie = try await env.daemon.send(
                "DELETE", "/api/v1/session", headers: [("Cookie", b.cookie), ("Origin", "http://127.0.0.1:\(port)")])
            #expect(viaCookie.status == 204)
            #expect(try await env.daemon.get("/api/v1/agenda", headers: Self.bearer(b)).status == 401)
            #expect(try await env.daemon.send("DELETE", "/api/v1/session").status == 401)
        }
    }

    @Test(
        "The chart page /coldchain: login page without a session; the frame for a fridge; 404 other room, 400 bad month; a silent sensor on the card"
    )
    func chartPage() async throws {
        let config = Self.fridgeConfig.replacingOccurrences(
            of: "hysteresis: 0.5}}}",
            with: "hysteresis: 0.5}}, cold_chain: {alarm_delay_minutes: 15, silence_minutes: 0.05, workday: {opens: \"07:30\", closes: \"18:00\"}}}")
        try await Self.withEnv(cloud: false, extraConfig: config) { env in
            try await Self.addStaff(env)
            let s = try await Self.signIn(env)
            let cookie = [("Cookie", s.cookie)]
            let anon = try await env.daemon.get("/coldchain?room=geladeira-vacinas")
            #expect(anon.status == 200 && anon.text.contains("id=\"login-form\""), "login page without a session")
            let page = try await env.daemon.get("/coldchain?room=geladeira-vacinas&month=2026-03", headers: cookie)
            #expect(page.status == 200)
            #expect(page.headers["content-security-policy"]?.contains("script-src 'self'") == true)
            for part in [
                "Mapa de controle de temperatura", "Geladeira de vacinas", "março de 2026", "faixa 2–8 °C", "expediente 07:30–18:00",
                "id=\"chart-rows\"", "data-month=\"2026-03\"", "‹ fevereiro de 2026", "abril de 2026 ›", "Baixar CSV", "Imprimir",
                "/api/v1/coldchain/geladeira-vacinas/chart?month=2026-03&amp;format=csv", "<script src=\"/assets/coldchain.js\">",
                "id=\"cc-banner\"",
            ] {
                #expect(page.text.contains(part), "chart page lacks \(part)")
            }
            let thisMonth = String(LocalDay.dayString(Time.nowMs(), zone: Self.zone).prefix(7))
            let current = try await env.daemon.get("/coldchain?room=geladeira-vacinas", headers: cookie)
            #expect(current.status == 200 && current.text.contains("data-month=\"\(thisMonth)\""), "the current month by default")
            #expect(!current.text.contains("id=\"next-month\""), "no link to a month still to come")
            let other = try await env.daemon.get("/coldchain?room=sala-3", headers: cookie)
            #expect(other.status == 404 && other.text.contains("não tem controle de cadeia de frio"))
            #expect(other.text.contains("/coldchain?room=geladeira-vacinas"), "links to the fridges")
            for bad in ["2026-13", "2026-3", "mar%C3%A7o", "2026-03-01"] {
                let r = try await env.daemon.get("/coldchain?room=geladeira-vacinas&month=\(bad)", headers: cookie)
                #expect(r.status == 400 && r.text.contains("Mês inválido"), "month \(bad): \(r.status)")
            }
            let script = try await env.daemon.get("/assets/coldchain.js")
            #expect(script.status == 200 && script.headers["content-type"]?.hasPrefix("text/javascript") == true)
            #expect(script.text.contains("Esta excursão já foi registrada por "))
            // The console carries the banner's place, and the fridge's card links to its chart.
            let console = try await env.daemon.get("/", headers: cookie)
            #expect(console.text.contains("id=\"cc-banner\"") && console.text.contains("href=\"/coldchain?room=geladeira-vacinas\""))
            #expect(!console.text.contains("href=\"/coldchain?room=sala-3\""))

            // A fridge sensor silent for 3 s: the server-rendered card says so, as the script does.
            try env.device.publish(env.topic("room/geladeira-vacinas/environment/env-1"), #"{"temperature_c": 4.6}"#)
            try await Harness.waitUntil("the fridge's sensor silent", timeout: 20) {
                let rooms = try JSON.parse(try await env.daemon.get("/api/v1/rooms", headers: Self.bearer(s)).body)["rooms"]?.arrayValue ?? []
                return rooms.contains { $0["id"]?.stringValue == "geladeira-vacinas" && $0["cold_chain"]?["sensor_silent"]?.boolValue == true }
            }
            let silent = try await env.daemon.get("/", headers: cookie).text
            #expect(silent.contains("<li class=\"room room-alert\" data-room=\"geladeira-vacinas\">"), "the silent fridge's card is an alert")
            #expect(silent.contains("<li>Sensor sem leituras desde "))
        }
    }

    @Test("Every staff route answers 401 JSON without credentials or with wrong ones; / shows the login page")
    func unauthorized() async throws {
        try await Self.withEnv(cloud: false) { env in
            try await Self.addStaff(env)
            let s = try await Self.signIn(env)
            let routes: [(String, String, String?)] = [
                ("GET", "/api/v1/agenda", nil), ("GET", "/api/v1/agenda?date=2026-11-29", nil),
                ("GET", "/api/v1/rooms", nil), ("POST", "/api/v1/checkins", #"{"appointment_id":"x"}"#),
                ("DELETE", "/api/v1/session", nil),
            ]
            let bad: [([(String, String)], String)] = [
                ([], "unauthenticated"),
                ([("Authorization", "Bearer wrong-token-wrong-token-wrong-token-xxxxx")], "invalid_token"),
                ([("Authorization", "Bearer")], "invalid_token"),
                ([("Authorization", "Basic cmVjZXBjYW86c2VuaGE=")], "invalid_token"),
                ([("Cookie", "medic_edge_session=forged-forged-forged-forged-forged-forged")], "invalid_session"),
                ([("Cookie", "other=1")], "unauthenticated"),
                ([("Authorization", "Bearer \(s.token)x")], "invalid_token"),
            ]
            for (method, path, body) in routes {
                for (headers, code) in bad {
                    let r = try await env.daemon.send(method, path, body: body, headers: headers)
                    #expect(r.status == 401, "\(method) \(path) with \(headers.map(\.0)): \(r.status)")
                    #expect(Self.errorCode(r) == code, "\(method) \(path) with \(headers.map(\.0)): \(r.text)")
                    #expect(r.headers["content-type"]?.hasPrefix("application/json") == true)
                    #expect(!r.text.contains("Error") || r.text.contains("\"error\""), "no stack traces")
                }
            }
            // The page: login form when not signed in, the console with the cookie.
            let page = try await env.daemon.get("/")
            #expect(page.status == 200)
            #expect(page.headers["content-type"]?.hasPrefix("text/html") == true)
            #expect(page.text.contains("<html lang=\"pt-BR\">"))
            #expect(page.text.contains("id=\"login-form\"") && page.text.contains("Entrar"))
            #expect(page.headers["content-security-policy"]?.contains("default-src 'none'") == true)
            #expect(page.headers["x-frame-options"] == "DENY")
            let stale = try await env.daemon.get("/", headers: [("Cookie", "medic_edge_session=forged-forged-forged-forged-forged-forged")])
            #expect(stale.text.contains("id=\"login-form\""))
            let console = try await env.daemon.get("/", headers: [("Cookie", s.cookie)])
            #expect(console.status == 200)
            #expect(
                console.text.contains("id=\"agenda-rows\"") && console.text.contains("id=\"room-list\"") && console.text.contains("id=\"banner\""))
            #expect(!console.text.contains("id=\"login-form\""))
            // Assets ship with the binary.
            for (path, type) in [
                ("/assets/console.css", "text/css"), ("/assets/console.js", "text/javascript"), ("/assets/login.js", "text/javascript"),
            ] {
                let a = try await env.daemon.get(path)
                #expect(a.status == 200 && a.headers["content-type"]?.hasPrefix(type) == true && a.body.count > 500, "\(path)")
            }
            #expect(!console.text.contains("http://") && !console.text.contains("https://"), "no external resource")
        }
    }

    // MARK: agenda

    @Test(
        "Given a seeded day, the agenda lists that local day's appointments by time with patient, professional, room, service and how each checked in"
    )
    func agenda() async throws {
        var day = ClinicDay()
        let (starts, minutes) = Self.slots(5)
        let now = day.now
        let beatriz = day.book(
            day.beatriz, startMinutes: starts[2], minutes: minutes, professional: day.draAna, room: day.sala3, service: day.nutricao)
        let maria = day.book(day.maria, startMinutes: starts[0], minutes: minutes)
        let joao = day.book(day.joao, startMinutes: starts[1], minutes: minutes, status: "cancelled")
        let carlos = day.book(day.carlos, startMinutes: starts[3], minutes: minutes)
        let tomorrow = day.book(day.maria, startMinutes: 24 * 60 + 5, minutes: 30)
        try await Self.withEnv(day: day) { env in
            try await Self.addStaff(env)
            let s = try await Self.signIn(env)

            // Maria by the kiosk, Carlos at the reception.
            #expect(try await env.scan(day.maria.qr, scanId: "ag-1")["outcome"]?.stringValue == "checked_in")
            #expect(try await Self.checkIn(env, s, carlos).status == 201)

            let today = Self.dayOf(starts[0], now: now)
            let a = try await Self.agenda(env, s, date: today)
            #expect(a["date"]?.stringValue == today)
            let list = try #require(a["appointments"]?.arrayValue)
            #expect(list.compactMap { $0["id"]?.stringValue } == [maria, joao, beatriz, carlos], "by scheduled_start, every status included")
            let m = list[0]
            #expect(
                m.objectValue?.keys.sorted() == [
                    "checked_in_at", "checkin_method", "id", "patient", "professional", "room", "scheduled_end",
                    "scheduled_start", "service", "status",
                ])
            #expect(m["patient"]?["id"]?.stringValue == day.maria.id)
            #expect(m["patient"]?["name"]?.stringValue == "Maria Aparecida Souza")
            #expect(m["patient"]?["phone"]?.stringValue == "+5511990000001")
            #expect(m["professional"]?["name"]?.stringValue == "Dr. Erick")
            #expect(m["professional"]?["id"]?.stringValue == day.drErick)
            #expect(m["room"]?["name"]?.stringValue == "Sala 2")
            #expect(m["room"]?["id"]?.stringValue == day.sala2)
            #expect(m["service"]?["name"]?.stringValue == "Acupuntura")
            #expect(m["status"]?.stringValue == "confirmed")
            #expect(m["checkin_method"]?.stringValue == "qr")
            let mStart = try #require(Time.parseMs(m["scheduled_start"]?.stringValue ?? ""))
            #expect(m["scheduled_start"]?.stringValue?.hasSuffix("Z") == true)
            #expect(abs(mStart - Int64(now.addingTimeInterval(starts[0] * 60).timeIntervalSince1970 * 1000)) < 1000)
            #expect(Time.parseMs(m["checked_in_at"]?.stringValue ?? "") != nil)
            #expect(list[1]["status"]?.stringValue == "cancelled")
            #expect(list[1]["checked_in_at"]?.isNull == true && list[1]["checkin_method"]?.isNull == true)
            #expect(list[2]["professional"]?["name"]?.stringValue == "Dra. Ana")
            #expect(list[2]["room"]?["name"]?.stringValue == "Sala 3")
            #expect(list[2]["service"]?["name"]?.stringValue == "Nutrição")
            #expect(list[2]["checked_in_at"]?.isNull == true)
            #expect(list[3]["checkin_method"]?.stringValue == "reception")

            // Without a date: today in the clinic's zone. Another day: only that day's.
            let t = try await Self.agenda(env, s)
            #expect(t["date"]?.stringValue == LocalDay.dayString(Time.nowMs(), zone: Self.zone))
            let next = Self.dayOf(24 * 60 + 5, now: now)
            let n = try await Self.agenda(env, s, date: next)
            #expect(n["appointments"]?.arrayValue?.compactMap { $0["id"]?.stringValue }.contains(tomorrow) == true)
            #expect(n["appointments"]?.arrayValue?.contains { $0["id"]?.stringValue == maria } == false)
            let empty = try await Self.agenda(env, s, date: "2001-01-01")
            #expect(empty["appointments"]?.arrayValue?.isEmpty == true)

            // Bad dates: 400 JSON.
            for bad in ["2026-13-01", "2026-02-30", "hoje", "29/11/2026", "2026-1-5", ""] {
                let r = try await env.daemon.get("/api/v1/agenda?date=\(bad)", headers: Self.bearer(s))
                #expect(r.status == 400, "date \(bad)")
                #expect(Self.errorCode(r) == "bad_date", "date \(bad): \(r.text)")
            }
            // The agenda is the one place names and phones appear: never in the logs.
            #expect(!env.daemon.log().contains("Aparecida") && !env.daemon.log().contains("+5511990000001"))
        }
    }

    // MARK: check-in

    @Test("Manual check-in: 201 then 409; 404 unknown; 409 cancelled, rescheduled or arrived per the cloud; the cloud gets method reception; audited")
    func manualCheckin() async throws {
        var day = ClinicDay()
        let (starts, minutes) = Self.slots(5)
        let maria = day.book(day.maria, startMinutes: starts[0], minutes: minutes)
        let joao = day.book(day.joao, startMinutes: starts[1], minutes: minutes, status: "cancelled")
        let beatriz = day.book(day.beatriz, startMinutes: starts[2], minutes: minutes, status: "rescheduled")
        let carlos = day.book(day.carlos, startMinutes: starts[3], minutes: minutes, status: "arrived")
        let late = day.book(day.carlos, startMinutes: starts[4], minutes: minutes, status: "no_show")
        try await Self.withEnv(day: day) { env in
            try await Self.addStaff(env)
            let s = try await Self.signIn(env)

            let r = try await Self.checkIn(env, s, maria)
            #expect(r.status == 201, "\(r.text)")
            let body = try JSON.parse(r.body)
            #expect(body.objectValue?.keys.sorted() == ["appointment_id", "checked_in_at", "method"])
            #expect(body["appointment_id"]?.stringValue == maria)
            #expect(body["method"]?.stringValue == "reception")
            let at = try #require(Time.parseMs(body["checked_in_at"]?.stringValue ?? ""))
            #expect(abs(at - Time.nowMs()) < 10_000)

            let again = try await Self.checkIn(env, s, maria)
            #expect(again.status == 409 && Self.errorCode(again) == "already_checked_in")
            #expect((try JSON.parse(again.body))["error"]?["message"]?.stringValue?.contains("pela recepção") == true)
            // The kiosk sees the same fact: already checked in.
            #expect(try await env.scan(day.maria.qr, scanId: "mc-1")["outcome"]?.stringValue == "already_checked_in")

            let unknown = try await Self.checkIn(env, s, "a0000000-0000-4000-8000-00000000dead")
            #expect(unknown.status == 404 && Self.errorCode(unknown) == "appointment_not_found")
            let cancelled = try await Self.checkIn(env, s, joao)
            #expect(cancelled.status == 409 && Self.errorCode(cancelled) == "appointment_cancelled")
            let rescheduled = try await Self.checkIn(env, s, beatriz)
            #expect(rescheduled.status == 409 && Self.errorCode(rescheduled) == "appointment_rescheduled")
            let arrived = try await Self.checkIn(env, s, carlos)
            #expect(arrived.status == 409 && Self.errorCode(arrived) == "already_checked_in")
            #expect(try await Self.checkIn(env, s, late).status == 201, "a late arrival marked no_show still checks in")
            for bad in ["{}", #"{"appointment_id": 12}"#, #"{"appointment_id": ""}"#, "not json"] {
                let b = try await env.daemon.send("POST", "/api/v1/checkins", body: bad, headers: Self.bearer(s))
                #expect(b.status == 400 && Self.errorCode(b) == "bad_request", "body \(bad)")
            }

            // The cloud gets exactly one check-in per appointment, method reception.
            let events = try await env.waitForCloudEvents("clinic/checkin.recorded", count: 2)
            let mine = events.filter { $0["data"]?["appointment_id"]?.stringValue == maria }
            #expect(mine.count == 1)
            let d = try #require(mine.first?["data"])
            #expect(d["method"]?.stringValue == "reception")
            #expect(d["device_id"]?.stringValue == "reception")
            #expect(d["patient_id"]?.stringValue == day.maria.id)
            #expect(d["site_id"]?.stringValue == "test-site")
            #expect(d["checked_in_at"]?.stringValue == body["checked_in_at"]?.stringValue)
            try await Task.sleep(for: .milliseconds(500))
            #expect(env.cloudEvents(named: "clinic/checkin.recorded").count == 2)

            // Who did it is kept locally: the check-in row and the audit trail.
            _ = await env.daemon.terminate()
            let db = env.daemon.dataDir + "/medic-edge.sqlite"
            #expect(
                try Self.sqlite(db, "SELECT method || '|' || device_id || '|' || staff FROM checkins WHERE appointment_id = '\(maria)'")
                    == "reception|reception|recepcao")
            #expect(try Self.sqlite(db, "SELECT name || '|' || action FROM staff_audit WHERE target = '\(maria)'") == "recepcao|checkin")
        }
    }

    /// One value from the database file (sqlite3 CLI, read-only).
    static func sqlite(_ path: String, _ sql: String) throws -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/sqlite3")
        p.arguments = ["-readonly", path, sql]
        let out = Pipe()
        p.standardOutput = out
        try p.run()
        p.waitUntilExit()
        return String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    @Test("With the cloud down, the agenda and manual check-in work; the check-in reaches the cloud when it comes back")
    func cloudDown() async throws {
        var day = ClinicDay()
        let (starts, minutes) = Self.slots(2)
        let maria = day.book(day.maria, startMinutes: starts[0], minutes: minutes)
        try await Self.withEnv(day: day) { env in
            try await Self.addStaff(env)
            let s = try await Self.signIn(env)
            let stub = try #require(env.stub)
            stub.setFaults(.init(mode: .down))
            try await Task.sleep(for: .milliseconds(700))  // a failed roster pull meanwhile keeps the roster
            let a = try await Self.agenda(env, s, date: Self.dayOf(starts[0], now: day.now))
            #expect(a["appointments"]?.arrayValue?.first?["patient"]?["name"]?.stringValue == "Maria Aparecida Souza")
            let r = try await Self.checkIn(env, s, maria)
            #expect(r.status == 201)
            try await Harness.waitUntil("cloud state leaves online", timeout: 10) {
                let st = try await env.daemon.status()
                return st["cloud"]?["state"]?.stringValue != "online" && (st["outbox"]?["pending"]?.doubleValue ?? 0) >= 1
            }
            #expect(env.cloudEvents(named: "clinic/checkin.recorded").isEmpty)
            stub.setFaults(.init(mode: .none))
            let ev = try await env.waitForCloudEvents("clinic/checkin.recorded", count: 1, timeout: 40)
            #expect(ev[0]["data"]?["method"]?.stringValue == "reception")
            #expect(ev[0]["data"]?["appointment_id"]?.stringValue == maria)
        }
    }

    // MARK: rooms

    @Test("Rooms: config rooms, linked cloud rooms and reporting rooms, with occupancy, last readings and active alerts")
    func rooms() async throws {
        try await Self.withEnv(day: ClinicDay(), extraConfig: Self.fridgeConfig) { env in
            try await Self.addStaff(env)
            let s = try await Self.signIn(env)
            func rooms() async throws -> [String: JSON] {
                let r = try await env.daemon.get("/api/v1/rooms", headers: Self.bearer(s))
                try #require(r.status == 200)
                var out: [String: JSON] = [:]
                for room in try JSON.parse(r.body)["rooms"]?.arrayValue ?? [] { out[room["id"]?.stringValue ?? "?"] = room }
                return out
            }
            var all = try await rooms()
            #expect(Set(all.keys) == ["geladeira-vacinas", "sala-2", "sala-3"], "config rooms plus the linked cloud rooms")
            #expect(all["geladeira-vacinas"]?["name"]?.stringValue == "Geladeira de vacinas")
            #expect(all["sala-2"]?["name"]?.stringValue == "Sala 2")
            #expect(all["sala-2"]?["occupied"]?.boolValue == false)
            #expect(all["geladeira-vacinas"]?["readings"]?["temperature_c"]?.isNull == true)
            #expect(all["geladeira-vacinas"]?["readings"]?["at"]?.isNull == true)
            #expect(all["geladeira-vacinas"]?["alerts"]?.arrayValue?.isEmpty == true)
            let keys = all["sala-2"]?.objectValue?.keys.sorted() ?? []
            for k in ["alerts", "id", "name", "occupied", "readings"] { #expect(keys.contains(k), "room lacks \(k)") }

            try env.device.publish(env.topic("room/geladeira-vacinas/environment/env-1"), #"{"temperature_c": 4.6, "humidity_pct": 40}"#)
            try env.device.publish(env.topic("room/sala-2/presence/pres-1"), #"{"occupied": true, "people": 1}"#)
            try env.device.publish(env.topic("room/sala-4/environment/env-4"), #"{"co2_ppm": 700}"#)
            try await Harness.waitUntil("readings and presence") {
                let r = try await rooms()
                return r["geladeira-vacinas"]?["readings"]?["temperature_c"]?.doubleValue == 4.6 && r["sala-2"]?["occupied"]?.boolValue == true
                    && r["sala-4"] != nil
            }
            all = try await rooms()
            let fridge = try #require(all["geladeira-vacinas"])
            #expect(fridge["readings"]?["humidity_pct"]?.doubleValue == 40)
            #expect(fridge["readings"]?["co2_ppm"]?.isNull == true)
            #expect(Time.parseMs(fridge["readings"]?["at"]?.stringValue ?? "") != nil)
            #expect(fridge["alerts"]?.arrayValue?.isEmpty == true)
            #expect(all["sala-4"]?["name"]?.stringValue == "sala-4", "a room seen only in readings is named by its key")
            #expect(all["sala-4"]?["readings"]?["co2_ppm"]?.doubleValue == 700)

            // The fridge warms up: one active alert, until it is back inside the hysteresis band.
            try env.device.publish(env.topic("room/geladeira-vacinas/environment/env-1"), #"{"temperature_c": 9.1}"#)
            try await Harness.waitUntil("fridge alert") { try await rooms()["geladeira-vacinas"]?["alerts"]?.arrayValue?.count == 1 }
            let alert = try #require(try await rooms()["geladeira-vacinas"]?["alerts"]?.arrayValue?.first)
            #expect(alert["metric"]?.stringValue == "temperature_c")
            #expect(alert["value"]?.doubleValue == 9.1)
            #expect(alert["min"]?.doubleValue == 2 && alert["max"]?.doubleValue == 8)
            #expect(Time.parseMs(alert["since"]?.stringValue ?? "") != nil)
            #expect(alert.objectValue?.keys.sorted() == ["max", "metric", "min", "since", "value"])
            // The status figures are read once a second (a request never scans a table).
            try await Harness.waitUntil("the alert counted in the status") { (try await env.daemon.status())["alerts"]?["active"]?.doubleValue == 1 }
            try env.device.publish(env.topic("room/geladeira-vacinas/environment/env-1"), #"{"temperature_c": 7.8}"#)
            try await Task.sleep(for: .milliseconds(400))
            #expect(try await rooms()["geladeira-vacinas"]?["alerts"]?.arrayValue?.count == 1, "7.8 is inside the limits but not the hysteresis band")
            try env.device.publish(env.topic("room/geladeira-vacinas/environment/env-1"), #"{"temperature_c": 5.0}"#)
            try await Harness.waitUntil("alert cleared") { try await rooms()["geladeira-vacinas"]?["alerts"]?.arrayValue?.isEmpty == true }
            #expect(try await rooms()["geladeira-vacinas"]?["readings"]?["temperature_c"]?.doubleValue == 5.0)
        }
    }

    // MARK: CSRF

    @Test("CSRF: a cookie-authenticated change needs the console's Origin (or Sec-Fetch-Site: same-origin); bearer tokens are exempt")
    func csrf() async throws {
        var day = ClinicDay()
        let (starts, minutes) = Self.slots(4)
        let ids = (0..<4).map { i in day.book(day.patients[i], startMinutes: starts[i], minutes: minutes) }
        try await Self.withEnv(day: day) { env in
            try await Self.addStaff(env)
            let s = try await Self.signIn(env)
            let origin = "http://127.0.0.1:\(env.daemon.httpPort)"
            let body = { (id: String) in JSONText.object { $0.add("appointment_id", id) } }
            let cookie = ("Cookie", s.cookie)

            for headers in [
                [cookie], [cookie, ("Origin", "http://evil.example")], [cookie, ("Origin", "null")],
                [cookie, ("Origin", "http://127.0.0.1:1")], [cookie, ("Sec-Fetch-Site", "cross-site")],
                [cookie, ("Origin", "http://evil.example"), ("Sec-Fetch-Site", "same-origin")],
            ] {
                let r = try await env.daemon.send("POST", "/api/v1/checkins", body: body(ids[0]), headers: headers)
                #expect(r.status == 403, "\(headers.map { $0.0 + ": " + $0.1 })")
                #expect(Self.errorCode(r) == "csrf_refused")
                let out = try await env.daemon.send("DELETE", "/api/v1/session", headers: headers)
                #expect(out.status == 403)
            }
            #expect(
                (try await Self.agenda(env, s, date: Self.dayOf(starts[0], now: day.now)))["appointments"]?.arrayValue?
                    .allSatisfy { $0["checked_in_at"]?.isNull == true } == true, "nothing was recorded")
            // Reads with the cookie alone are fine (SameSite=Strict keeps other sites from sending it).
            #expect(try await env.daemon.get("/api/v1/rooms", headers: [cookie]).status == 200)
            #expect(try await env.daemon.send("POST", "/api/v1/checkins", body: body(ids[0]), headers: [cookie, ("Origin", origin)]).status == 201)
            #expect(
                try await env.daemon.send("POST", "/api/v1/checkins", body: body(ids[1]), headers: [cookie, ("Sec-Fetch-Site", "same-origin")]).status
                    == 201)
            #expect(
                try await env.daemon.send("POST", "/api/v1/checkins", body: body(ids[2]), headers: Self.bearer(s)).status == 201,
                "bearer: no Origin needed")
            #expect(
                try await env.daemon.send(
                    "POST", "/api/v1/checkins", body: body(ids[3]),
                    headers: Self.bearer(s) + [("Origin", "http://evil.example")]
                ).status == 201,
                "a bearer token is never sent by a browser on its own")
        }
    }

    // MARK: the page in a real browser

    static var repoRoot: String {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
    }

    @Test("In a real browser: log in, see the seeded agenda, check a patient in, see a kiosk check-in appear without reload, see the offline banner")
    func browser() async throws {
        // CI installs these (apt-get install -y chromium chromium-driver python3-selenium); a
        // missing one fails this test, it never skips it.
        let chromium = "/usr/bin/chromium", driver = "/usr/bin/chromedriver", python = "/usr/bin/python3"
        for (path, what) in [
            (chromium, "chromium"), (driver, "chromium-driver"), (python, "python3"), ("/usr/bin/mosquitto_pub", "mosquitto-clients"),
        ] {
            guard FileManager.default.isExecutableFile(atPath: path) else {
                Issue.record(
                    "the browser test needs \(what) at \(path): apt-get install -y chromium chromium-driver python3-selenium mosquitto-clients")
                return
            }
        }
        let (seleniumOK, seleniumOut) = try await Harness.runProgram(python, ["-c", "import selenium"], timeout: 30)
        guard seleniumOK == 0 else {
            Issue.record("the browser test needs Debian's python3-selenium (apt-get install -y python3-selenium): \(seleniumOut)")
            return
        }

        var day = ClinicDay()
        day.patients += [
            ClinicDay.Patient(
                id: "9a000000-0000-4000-8000-000000000005", name: "Helena Prado", phone: "+5511990000005", qr: "medic-qr:v1:helena:5555"),
            ClinicDay.Patient(
                id: "9a000000-0000-4000-8000-000000000006", name: "Rafael Oliveira", phone: "+5511990000006", qr: "medic-qr:v1:rafael:6666"),
        ]
        let (starts, minutes) = Self.slots(6, spacing: 12)
        day.book(day.patients[4], startMinutes: starts[0], minutes: minutes, professional: day.draAna, room: day.sala3, service: day.nutricao)
        day.book(day.maria, startMinutes: starts[1], minutes: minutes)
        day.book(day.joao, startMinutes: starts[2], minutes: minutes, professional: day.draAna, room: day.sala3, service: day.nutricao)
        day.book(day.beatriz, startMinutes: starts[3], minutes: minutes)
        day.book(day.carlos, startMinutes: starts[4], minutes: minutes, status: "cancelled")
        day.book(day.patients[5], startMinutes: starts[5], minutes: minutes, professional: day.draAna, room: day.sala3, service: day.nutricao)
        let expected = ["Helena Prado", "Maria Aparecida Souza", "João Pedro Lima", "Beatriz Santos", "Carlos Eduardo Nunes", "Rafael Oliveira"]

        // The fridge is a cold-chain room here, with a 3-second alarm delay.
        let config = Self.fridgeConfig.replacingOccurrences(
            of: "hysteresis: 0.5}}}",
            with: "hysteresis: 0.5}}, cold_chain: {alarm_delay_minutes: 0.05, silence_minutes: 10, workday: {opens: \"07:00\", closes: \"19:00\"}}}")
        try await Self.withEnv(day: day, extraConfig: config) { env in
            let stub = try #require(env.stub)
            let user = "recepcao", password = "Senha-da-Recepcao-2026"
            let (code, out) = try await DaemonProcess.runCLI(["staff", "add", user, "--config", env.daemon.configPath], stdin: password + "\n")
            try #require(code == 0, "staff add: \(out)")
            let (code2, out2) = try await DaemonProcess.runCLI(
                ["staff", "add", "ana", "--config", env.daemon.configPath], stdin: "Senha-da-Ana-2026\n")
            try #require(code2 == 0, "staff add ana: \(out2)")

            // The rooms board's material: the fridge is fine, Sala 2 is occupied, Sala 3's CO2 is high.
            try env.device.publish(env.topic("room/geladeira-vacinas/environment/env-1"), #"{"temperature_c": 4.6, "humidity_pct": 45}"#)
            try env.device.publish(env.topic("room/sala-2/presence/pres-1"), #"{"occupied": true, "people": 2}"#)
            try env.device.publish(env.topic("room/sala-2/environment/env-2"), #"{"temperature_c": 23.5, "humidity_pct": 52, "co2_ppm": 640}"#)
            try env.device.publish(env.topic("room/sala-3/environment/env-3"), #"{"temperature_c": 24.1, "co2_ppm": 1250}"#)
            try await Harness.waitUntil("alert raised and the cloud online", timeout: 20) {
                let st = try await env.daemon.status()
                return st["alerts"]?["active"]?.doubleValue == 1 && st["cloud"]?["state"]?.stringValue == "online"
            }

            let shots = Self.repoRoot + "/docs/screenshots"
            try FileManager.default.createDirectory(atPath: shots, withIntermediateDirectories: true)
            let args = [
                Self.repoRoot + "/tests/browser/console_test.py",
                "--url", env.daemon.baseURL, "--user", user, "--password", password,
                "--mqtt-port", String(env.broker.port), "--site", env.site, "--stub-url", "http://127.0.0.1:\(stub.port)",
                "--kiosk-qr", day.beatriz.qr, "--kiosk-patient", day.beatriz.name, "--reception-patient", day.maria.name,
                "--expect-patients", expected.joined(separator: ","), "--search-phone", "99000-0003",
                "--name-query", "joao pedro", "--name-expect", day.joao.name,
                "--screenshots", shots, "--chromium", chromium, "--chromedriver", driver,
                "--coldchain-room", "geladeira-vacinas", "--second-user", "ana", "--second-password", "Senha-da-Ana-2026",
            ]
            let (status, output) = try await Harness.runProgram(python, args, timeout: 240)
            #expect(status == 0, "browser test failed:\n\(output)")
            #expect(output.contains("all steps passed"), "\(output)")

            // What the browser did is what the API says.
            stub.setFaults(.init(mode: .none))
            let r = try await Self.login(env, user, password)
            let token = try #require(try JSON.parse(r.body)["token"]?.stringValue)
            let agenda = try JSON.parse(
                try await env.daemon.get(
                    "/api/v1/agenda?date=\(Self.dayOf(starts[0], now: day.now))",
                    headers: [("Authorization", "Bearer \(token)")]
                ).body)
            let byName = Dictionary(
                (agenda["appointments"]?.arrayValue ?? []).map { ($0["patient"]?["name"]?.stringValue ?? "", $0) },
                uniquingKeysWith: { a, _ in a })
            #expect(byName[day.maria.name]?["checkin_method"]?.stringValue == "reception")
            #expect(byName[day.beatriz.name]?["checkin_method"]?.stringValue == "qr")
            #expect(byName[day.joao.name]?["checked_in_at"]?.isNull == true)
            let ev = try await env.waitForCloudEvents("clinic/checkin.recorded", count: 2, timeout: 40)
            #expect(Set(ev.compactMap { $0["data"]?["method"]?.stringValue }) == ["reception", "qr"])
            // The browser acknowledged the first excursion; ana the second (the page then got the 409).
            let excursions = try JSON.parse(
                try await env.daemon.get("/api/v1/coldchain/excursions", headers: [("Authorization", "Bearer \(token)")]).body)
            let acks = (excursions["excursions"]?.arrayValue ?? []).compactMap { $0["acknowledged_by"]?.stringValue }.sorted()
            #expect(acks == ["ana", user], "acknowledged by: \(acks)")
            for f in ["agenda.png", "rooms.png", "agenda-1280.png", "phone.png", "coldchain-banner.png", "coldchain-chart.png"] {
                let size = (try? FileManager.default.attributesOfItem(atPath: shots + "/" + f)[.size] as? Int) ?? 0
                #expect(size > 10_000, "screenshot \(f)")
            }
        }
    }
}
