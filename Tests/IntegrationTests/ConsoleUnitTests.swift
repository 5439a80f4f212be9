import EdgeCore
@testable import EdgeStore
import EdgeTestSupport
import Foundation
import GRDB
import Hummingbird
import Logging
@testable import MedicEdge
import Synchronization
import Testing

/// Pure logic of the reception console: the password hash, sessions and throttling with a
/// manual clock (no sleeping), and the page's text helpers.
@Suite("Reception console: units")
struct ConsoleUnitTests {
    static func hex(_ b: [UInt8]) -> String { b.map { String(format: "%02x", $0) }.joined() }

    @Test("PBKDF2-HMAC-SHA256 matches the published test vectors (RFC 7914 §11 and the RFC 6070 inputs)")
    func pbkdf2Vectors() {
        let p = Array("password".utf8), s = Array("salt".utf8)
        #expect(
            Self.hex(StaffPassword.pbkdf2(password: p, salt: s, iterations: 1, length: 32))
                == "120fb6cffcf8b32c43e7225256c4f837a86548c92ccc35480805987cb70be17b")
        #expect(
            Self.hex(StaffPassword.pbkdf2(password: p, salt: s, iterations: 2, length: 32))
                == "ae4d0c95af6b46d32d0adff928f06dd02a303f8ef3c251dfd6e2d85a95474c43")
        #expect(
            Self.hex(StaffPassword.pbkdf2(password: p, salt: s, iterations: 4096, length: 32))
                == "c5e478d59288c841aa530db6845c4c8d962893a001ce4e11a4963873aa98134a")
        // Two output blocks (RFC 7914 §11).
        #expect(
            Self.hex(StaffPassword.pbkdf2(password: Array("passwd".utf8), salt: s, iterations: 1, length: 64))
                == "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc49ca9cccf179b645991664b39d77ef317c71b845b1e30bd509112041d3a19783")
        // A key longer than the HMAC block (hashed first) and a 40-byte output.
        #expect(
            Self.hex(
                StaffPassword.pbkdf2(
                    password: Array("passwordPASSWORDpassword".utf8), salt: Array("saltSALTsaltSALTsaltSALTsaltSALTsalt".utf8),
                    iterations: 4096, length: 40))
                == "348c89dbcbd32b2f32d814b8116e84cf2b17347ebc1800181c4e2a1fb8dd53e1c635518c7dac47e9")
    }

    @Test("Given a new password, the stored value is a salted slow hash: not the password, different salt each time, ≥ 100,000 iterations")
    func storedIsNotThePassword() {
        let pw = "segredo-da-recepcao"
        let a = StaffPassword.make(pw), b = StaffPassword.make(pw)
        #expect(a.iterations == StaffPassword.defaultIterations)
        #expect(a.iterations >= 100_000)
        #expect(a.salt.count == 16 && a.hash.count == 32)
        #expect(a.hash != Array(pw.utf8))
        #expect(!String(decoding: a.hash + a.salt, as: UTF8.self).contains(pw))
        #expect(a.salt != b.salt, "a fresh random salt per account")
        #expect(a.hash != b.hash, "the same password gives different stored hashes")
        #expect(StaffPassword.verify(pw, against: a))
        #expect(StaffPassword.verify(pw, against: b))
        #expect(!StaffPassword.verify("segredo-da-recepcaO", against: a))
        #expect(!StaffPassword.verify("", against: a))
        // The iteration count stored with the row is the one used.
        var fewer = a; fewer.iterations = 100_001
        #expect(!StaffPassword.verify(pw, against: fewer))
        let cheap = StaffPassword.make(pw, iterations: 1000)
        #expect(StaffPassword.verify(pw, against: cheap))
    }

    @Test("Password rules: at least 8 characters, not blank, at most 1024 bytes")
    func passwordRules() {
        #expect(throws: StaffPassword.Problem.tooShort) { try StaffPassword.check("") }
        #expect(throws: StaffPassword.Problem.tooShort) { try StaffPassword.check("1234567") }
        #expect(throws: StaffPassword.Problem.blank) { try StaffPassword.check("          ") }
        #expect(throws: StaffPassword.Problem.tooLong) { try StaffPassword.check(String(repeating: "x", count: 1025)) }
        #expect(throws: Never.self) { try StaffPassword.check("12345678") }
        #expect(throws: Never.self) { try StaffPassword.check("senha ção 8") }
    }

    @Test("The comparison is constant-time: right for a difference at any position, and as slow for the first byte as for the last")
    func constantTime() {
        let n = 4096
        let base = (0..<n).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        #expect(StaffPassword.constantTimeEquals(base, base))
        for i in [0, 1, n / 2, n - 1] {
            var other = base; other[i] ^= 0x01
            #expect(!StaffPassword.constantTimeEquals(base, other))
        }
        #expect(!StaffPassword.constantTimeEquals(base, Array(base.dropLast())))
        var first = base; first[0] ^= 0xff
        var last = base; last[n - 1] ^= 0xff
        // Best of many runs, so noise from other processes does not decide. An early-exit
        // comparison would be thousands of times faster on `first`.
        func best(_ other: [UInt8]) -> Double {
            var m = Double.infinity
            for _ in 0..<200 {
                let t0 = DispatchTime.now().uptimeNanoseconds
                for _ in 0..<20 { _ = StaffPassword.constantTimeEquals(base, other) }
                m = min(m, Double(DispatchTime.now().uptimeNanoseconds - t0))
            }
            return m
        }
        let tFirst = best(first), tLast = best(last), tEqual = best(base)
        #expect(tFirst > tLast / 3 && tFirst < tLast * 3, "first-byte \(tFirst) ns vs last-byte \(tLast) ns")
        #expect(tFirst > tEqual / 3, "first-byte \(tFirst) ns vs equal \(tEqual) ns")
    }

    @Test("Throttling: the 6th attempt after 5 failures for one name within 5 minutes is refused until the oldest failure is 5 minutes old")
    func throttleByName() {
        let clock = ManualClock()
        let t = LoginThrottle(clock: clock)
        for i in 0..<4 {
            t.recordFailure(name: "ana", address: "10.0.0.\(i)")
            clock.advance(seconds: 10)
        }
        #expect(t.retryAfter(name: "ana", address: "10.0.0.9") == nil, "4 failures: still allowed")
        t.recordFailure(name: "ana", address: "10.0.0.4")  // at t0 + 40 s
        // Locked for the name, from any address; the oldest failure (t0) leaves the window at t0 + 300 s.
        #expect(t.retryAfter(name: "ana", address: "10.0.0.9") == 260)
        #expect(t.retryAfter(name: "bruno", address: "10.0.0.9") == nil, "another name from a clean address is fine")
        clock.advance(seconds: 259)
        #expect(t.retryAfter(name: "ana", address: "10.0.0.9") == 1)
        clock.advance(seconds: 1)
        #expect(t.retryAfter(name: "ana", address: "10.0.0.9") == nil, "t0 is 5 minutes old: 4 failures left in the window")
        t.recordFailure(name: "ana", address: "10.0.0.9")
        #expect(t.retryAfter(name: "ana", address: "10.0.0.9") == 10, "5 again; the next oldest (t0+10 s) frees it")
    }

    @Test("An attempt is counted before its check: the sixth parallel attempt is refused; a success or an unchecked attempt is taken back")
    func throttleCountsAttempts() {
        let clock = ManualClock()
        let t = LoginThrottle(clock: clock)
        var marks: [Int64] = []
        for i in 0..<5 {
            guard case .counted(let m) = t.attempt(name: "ana", address: "10.0.1.\(i)") else { Issue.record("attempt \(i) refused"); return }
            marks.append(m)
        }
        #expect(t.attempt(name: "ana", address: "10.0.1.9") == .locked(seconds: 300), "5 attempts in flight lock the name")
        t.release(name: "ana", address: "10.0.1.0", mark: marks[0])
        guard case .counted = t.attempt(name: "ana", address: "10.0.1.9") else { Issue.record("a released attempt still counted"); return }
        #expect(t.retryAfter(name: "ana", address: "10.0.1.8") == 300)
    }

    @Test("At most 2 password checks at once: 50 concurrent callers never see more than 2 inside")
    func hashGate() async {
        final class Peak: Sendable { let value = Mutex(0) }
        let gate = HashGate(limit: 2), peakBox = Peak()
        let admitted = await withTaskGroup(of: Bool.self) { group in
            for _ in 0..<50 {
                group.addTask {
                    guard gate.tryEnter() else { return false }
                    peakBox.value.withLock { $0 = max($0, gate.inUse) }
                    try? await Task.sleep(for: .milliseconds(20))
                    gate.leave()
                    return true
                }
            }
            return await group.reduce(0) { $0 + ($1 ? 1 : 0) }
        }
        let peak = peakBox.value.withLock { $0 }
        #expect(peak <= 2 && peak >= 1)
        #expect(admitted >= 2 && admitted < 50, "admitted \(admitted)")
        #expect(gate.inUse == 0)
        #expect(gate.tryEnter() && gate.tryEnter() && !gate.tryEnter())
    }

    @Test("Throttling: 5 failures from one address lock that address for every name, not other addresses")
    func throttleByAddress() {
        let clock = ManualClock()
        let t = LoginThrottle(clock: clock)
        for i in 0..<5 { t.recordFailure(name: "nome\(i)", address: "192.168.0.50") }
        #expect(t.retryAfter(name: "outra", address: "192.168.0.50") == 300)
        #expect(t.retryAfter(name: "outra", address: "192.168.0.51") == nil)
        clock.advance(ms: LoginThrottle.windowMs)
        #expect(t.retryAfter(name: "outra", address: "192.168.0.50") == nil)
    }

    static func accounts(_ clock: ManualClock) throws -> StaffAccounts {
        StaffAccounts(db: try AppDatabase.inMemory(), clock: clock)
    }

    @Test("Sessions: the token works until 12 h after login, not one millisecond more; only its SHA-256 is stored")
    func sessionExpiry() async throws {
        let clock = ManualClock()
        let acc = try Self.accounts(clock)
        try acc.add(name: "Ana", password: "senha-forte-1", iterations: 1000)
        #expect(try await acc.verify(name: "ANA", password: "senha-forte-1") == "ana")
        #expect(try await acc.verify(name: "ana", password: "senha-errada") == nil)
        #expect(try await acc.verify(name: "ninguem", password: "senha-forte-1") == nil)
        let (token, expires) = try acc.startSession(name: "ana")
        #expect(expires == clock.nowMs() + 12 * 3600_000)
        #expect(try StaffAccounts.base64urlDecodedCount(token) == 32)
        let stored = try await acc.db.writer.read { try String.fetchAll($0, sql: "SELECT token_hash FROM sessions") }
        #expect(stored == [StaffAccounts.tokenHash(token)])
        #expect(!stored.contains(token))
        #expect(try acc.session(token: token)?.name == "ana")
        clock.advance(ms: 12 * 3600_000 - 1)
        #expect(try acc.session(token: token)?.name == "ana")
        clock.advance(ms: 1)
        #expect(try acc.session(token: token) == nil, "expired at 12 h")
        #expect(try acc.session(token: "x") == nil)
        #expect(try acc.session(token: String(repeating: "A", count: 43)) == nil)
    }

    @Test("Logout, a password replaced and an account removed all end the sessions; audit rows are kept")
    func sessionsEnd() async throws {
        let clock = ManualClock()
        let acc = try Self.accounts(clock)
        try acc.add(name: "ana", password: "senha-forte-1", iterations: 1000)
        #expect(throws: StaffAccounts.AddError.exists) { try acc.add(name: "ana", password: "outra-senha-2", iterations: 1000) }
        #expect(throws: StaffAccounts.AddError.badName) { try acc.add(name: "ana maria", password: "outra-senha-2", iterations: 1000) }
        let s1 = try acc.startSession(name: "ana").token
        let s2 = try acc.startSession(name: "ana").token
        try acc.endSession(try #require(try acc.session(token: s1)))
        #expect(try acc.session(token: s1) == nil)
        #expect(try acc.session(token: s2) != nil, "logout ends only that session")
        try acc.add(name: "ana", password: "outra-senha-2", replace: true, iterations: 1000)
        #expect(try acc.session(token: s2) == nil)
        #expect(try await acc.verify(name: "ana", password: "outra-senha-2") == "ana")
        let s3 = try acc.startSession(name: "ana").token
        #expect(try acc.remove(name: "ana"))
        #expect(try !acc.remove(name: "ana"))
        #expect(try acc.session(token: s3) == nil)
        let actions = try await acc.db.writer.read { try String.fetchAll($0, sql: "SELECT action FROM staff_audit ORDER BY id") }
        #expect(actions == ["account_created", "login", "login", "logout", "password_replaced", "login", "account_removed"])
    }

    @Test("The console API with a manual clock: a session expires after 12 h; the 6th failed login is 429 with Retry-After")
    func apiWithManualClock() async throws {
        // The same StaffAPI the daemon serves, called in-process through its handlers.
        let clock = ManualClock()
        let db = try AppDatabase.inMemory()
        let api = StaffAPI(
            config: EdgeConfig(), db: db, state: EdgeState(cloudConfigured: false), logger: .init(label: "test"),
            statusJSON: { "{}" }, clock: clock)
        try api.accounts.add(name: "ana", password: "senha-forte-1", iterations: 1000)
        let (token, _) = try api.accounts.startSession(name: "ana")
        let req = StaffAPI.bearerProbe(token)
        #expect(try api.agenda(req).status == .ok)
        clock.advance(ms: StaffAccounts.sessionMs)
        let expired = try api.agenda(req)
        #expect(expired.status == .unauthorized)
        for _ in 0..<5 { api.throttle.recordFailure(name: "ana", address: "listener") }
        #expect(api.throttle.retryAfter(name: "ana", address: "listener") == 300)
        clock.advance(seconds: 300)
        #expect(api.throttle.retryAfter(name: "ana", address: "listener") == nil)
    }

    @Test("Origin check: same host and port only (default ports implied); Sec-Fetch-Site as the fallback")
    func originMatching() {
        #expect(StaffAPI.originMatches("http://127.0.0.1:8080", host: "127.0.0.1:8080"))
        #expect(StaffAPI.originMatches("https://recepcao.local", host: "recepcao.local:443"))
        #expect(StaffAPI.originMatches("http://recepcao.local", host: "recepcao.local"))
        #expect(StaffAPI.originMatches("https://[::1]:8443", host: "[::1]:8443"))
        #expect(StaffAPI.originMatches("HTTP://LOCALHOST:8080", host: "localhost:8080"))
        #expect(!StaffAPI.originMatches("http://127.0.0.1:8081", host: "127.0.0.1:8080"))
        #expect(!StaffAPI.originMatches("http://evil.example", host: "127.0.0.1:8080"))
        #expect(StaffAPI.originMatches("https://recepcao.local", host: "recepcao.local"), "no port in Host: the origin scheme's default")
        #expect(!StaffAPI.originMatches("https://127.0.0.1:8080", host: "127.0.0.1:8443"))
        #expect(!StaffAPI.originMatches("http://127.0.0.1", host: "127.0.0.1:443"))
        #expect(!StaffAPI.originMatches("null", host: "127.0.0.1:8080"))
        #expect(!StaffAPI.originMatches("http://127.0.0.1:8080", host: nil))
        #expect(!StaffAPI.originMatches("file:///tmp/x.html", host: "127.0.0.1:8080"))
    }

    @Test("Page helpers: HTML escaping, Brazilian phone display, accent-free search keys, decimal comma")
    func pageHelpers() {
        #expect(ConsolePage.esc(#"<b a="1">&'"#) == "&lt;b a=&quot;1&quot;&gt;&amp;&#39;")
        #expect(ConsolePage.phoneText("+5511990000001") == "(11) 99000-0001")
        #expect(ConsolePage.phoneText("1133334444") == "(11) 3333-4444")
        #expect(ConsolePage.phoneText("+1 555 0100") == "+1 555 0100")
        #expect(ConsolePage.fold("João Conceição") == "joao conceicao")
        #expect(ConsolePage.number(4.56) == "4,6")
        #expect(ConsolePage.number(22) == "22")
        #expect(ConsolePage.number(-1.04) == "-1")
        let sp = TimeZone(identifier: "America/Sao_Paulo")!
        #expect(ConsolePage.dayLabel("2026-11-29", today: "2026-11-29", zone: sp) == "Domingo, 29 de novembro de 2026 (hoje)")
        #expect(ConsolePage.dayLabel("2026-03-02", today: "2026-11-29", zone: sp) == "Segunda-feira, 2 de março de 2026")
    }
}

extension StaffAccounts {
    static func base64urlDecodedCount(_ s: String) throws -> Int {
        var b = s.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        while b.count % 4 != 0 { b += "=" }
        return try #require(Data(base64Encoded: b)).count
    }
}

extension StaffAPI {
    /// A GET /api/v1/agenda request carrying a bearer token, for in-process handler calls.
    static func bearerProbe(_ token: String) -> Request {
        var fields = HTTPFields()
        fields[.authorization] = "Bearer \(token)"
        return Request(
            head: .init(method: .get, scheme: "http", authority: "127.0.0.1:8080", path: "/api/v1/agenda", headerFields: fields),
            body: RequestBody(buffer: ByteBuffer()))
    }
}

@Suite("Console certificate expiry notices")
struct ConsoleCertificateExpiryTests {
    static let end: Int64 = 1_798_761_600  // 2027-01-01T00:00:00Z

    @Test(
        "Given a certificate with more than 30 days left, in its last 30 days, on its last day, or expired: nothing, a warning, a warning, an error"
    )
    func notices() throws {
        let file = "/etc/medic-edge/tls/console.crt"
        #expect(ConsoleTLS.expiryNotice(notValidAfter: Self.end, nowSeconds: Self.end - 31 * 86_400, certFile: file) == nil)
        #expect(ConsoleTLS.expiryNotice(notValidAfter: Self.end, nowSeconds: Self.end - 30 * 86_400, certFile: file) == nil)
        let soon = try #require(ConsoleTLS.expiryNotice(notValidAfter: Self.end, nowSeconds: Self.end - 10 * 86_400 + 5, certFile: file))
        #expect(!soon.isError)
        #expect(soon.text == "console: the certificate in http.cert_file \(file) expires on 2027-01-01 (in 10 days): re-run install.sh to reissue it")
        let lastDay = try #require(ConsoleTLS.expiryNotice(notValidAfter: Self.end, nowSeconds: Self.end - 60, certFile: file))
        #expect(lastDay.text.contains("(in 1 day)"))
        let expired = try #require(ConsoleTLS.expiryNotice(notValidAfter: Self.end, nowSeconds: Self.end, certFile: file))
        #expect(expired.isError)
        #expect(
            expired.text
                == "console: the certificate in http.cert_file \(file) expired on 2027-01-01; browsers refuse the console over HTTPS: re-run "
                + "install.sh to reissue it"
        )
    }
}
