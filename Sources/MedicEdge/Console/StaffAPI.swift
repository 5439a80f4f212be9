import EdgeCore
import EdgeStore
import Foundation
import Hummingbird
import Logging
import Metrics
import Synchronization

/// Reception routes (CONTRACT §4): session, agenda, check-ins, rooms and the console page.
///
/// Staff authenticate with `Authorization: Bearer TOKEN` or the `medic_edge_session`
/// cookie. Every error is JSON `{"error": {"code", "message"}}` with a stable code and a
/// Portuguese message; nothing answers with a stack trace. State-changing requests that
/// rely on the cookie must come from the console's own origin (CSRF), see `sameOrigin`.
typealias FieldName = HTTPFields.Element.Name

struct StaffAPI: Sendable {
    let config: EdgeConfig
    let db: AppDatabase
    let state: EdgeState
    let logger: Logger
    let statusJSON: @Sendable () throws -> String
    let clock: any EdgeClock
    let accounts: StaffAccounts
    let throttle: LoginThrottle
    let hashGate = HashGate(limit: 2)
    let data: ConsoleData
    let agendaReads = AgendaReads()

    static let cookieName = "medic_edge_session"
    static let maxBodyBytes = 16 * 1024

    init(
        config: EdgeConfig, db: AppDatabase, state: EdgeState, logger: Logger, statusJSON: @escaping @Sendable () throws -> String,
        clock: any EdgeClock = SystemClock()
    ) {
        self.config = config; self.db = db; self.state = state; self.logger = logger; self.statusJSON = statusJSON
        self.clock = clock
        accounts = StaffAccounts(db: db, clock: clock)
        throttle = LoginThrottle(clock: clock)
        data = ConsoleData(config: config, db: db)
    }

    func register<Context: RequestContext>(_ router: Router<Context>) {
        router.post("/api/v1/session") { req, ctx in await self.guarded("login") { try await self.login(req, ctx) } }
        router.delete("/api/v1/session") { req, _ in await self.guarded("logout") { try await self.logout(req) } }
        router.get("/api/v1/agenda") { req, _ in await self.guarded("agenda") { try self.agenda(req) } }
        router.post("/api/v1/checkins") { req, _ in await self.guarded("checkin") { try await self.checkin(req) } }
        router.get("/api/v1/rooms") { req, _ in await self.guarded("rooms") { try self.rooms(req) } }
        registerColdChain(router)
        router.get("/") { req, _ in await self.guarded("page") { try self.page(req) } }
        router.get("/assets/console.css") { _, _ in StaffAPI.asset(ConsoleAssets.css, type: "text/css; charset=utf-8") }
        router.get("/assets/console.js") { _, _ in StaffAPI.asset(ConsoleAssets.js, type: "text/javascript; charset=utf-8") }
        router.get("/assets/login.js") { _, _ in StaffAPI.asset(ConsoleAssets.loginJS, type: "text/javascript; charset=utf-8") }
        registerColdChainPages(router)
    }

    // MARK: routes

    func login<Context: RequestContext>(_ req: Request, _ ctx: Context) async throws -> Response {
        // A login form posted from another site (login CSRF) is refused; curl sends no Origin.
        if let origin = req.headers[.origin], !StaffAPI.originMatches(origin, host: StaffAPI.host(of: req)) {
            return StaffAPI.failure(.forbidden, "origin_mismatch", "Pedido recusado: origem diferente do console.")
        }
        let body: [UInt8]
        switch await StaffAPI.readBody(req) {
        case .success(let b): body = b
        case .failure(let r): return r
        }
        guard let doc = try? JSON.parse(body), doc.objectValue != nil else {
            return StaffAPI.failure(.badRequest, "bad_request", "Envie JSON: {\"name\": \"…\", \"password\": \"…\"}.")
        }
        let rawName = doc["name"]?.stringValue ?? ""
        let password = doc["password"]?.stringValue ?? ""
        let nameKey = StaffName.normalized(rawName) ?? String(rawName.trimmingCharacters(in: .whitespaces).lowercased().prefix(64))
        let address = StaffAPI.peerAddress(ctx)
        // Counted before the password is checked: parallel guesses cannot pass the throttle.
        let mark: Int64
        switch throttle.attempt(name: nameKey, address: address) {
        case .locked(let wait):
            logger.warning("console: login throttled (address \(address)); retry in \(wait) s")
            return StaffAPI.failure(
                .tooManyRequests, "too_many_attempts",
                "Muitas tentativas de login. Tente novamente em \(StaffAPI.minutesText(wait)).",
                headers: [.retryAfter: String(wait)])
        case .counted(let m): mark = m
        }
        let failed = { [logger] in
            logger.notice("console: login failed (address \(address))")
            return StaffAPI.unauthorized("invalid_credentials", "Usuário ou senha incorretos.")
        }
        guard !rawName.isEmpty, !password.isEmpty else { return failed() }
        // At most 2 password checks at once; this attempt made no guess, so it is taken back.
        guard hashGate.tryEnter() else {
            throttle.release(name: nameKey, address: address, mark: mark)
            logger.warning("console: login refused: \(hashGate.limit) password checks already running (address \(address))")
            return StaffAPI.failure(
                .serviceUnavailable, "busy", "Muitos logins ao mesmo tempo. Tente novamente em instantes.",
                headers: [.retryAfter: "1"])
        }
        Counter(label: "medic_edge_login_password_checks_total").increment()
        let verified: String?
        do {
            defer { hashGate.leave() }
            verified = try await accounts.verify(name: rawName, password: password)
        }
        guard let name = verified else { return failed() }
        throttle.release(name: nameKey, address: address, mark: mark)
        let (token, expires) = try accounts.startSession(name: name)
        logger.info("console: \(name) signed in")
        let body200 = JSONText.object { j in
            j.add("token", token); j.add("name", name); j.add("expires_at", Time.rfc3339(ms: expires))
        }
        let cookie =
            "\(StaffAPI.cookieName)=\(token); Path=/; Max-Age=\(StaffAccounts.sessionMs / 1000); HttpOnly; SameSite=Strict"
            + (StaffAPI.isTLS(req, ctx) ? "; Secure" : "")
        return HTTPRoutes.json(.ok, body200, headers: [.setCookie: cookie])
    }

    func logout(_ req: Request) async throws -> Response {
        let auth = try authenticate(req, changesState: true)
        guard case .ok(let session, _) = auth else { return auth.refusal! }
        try accounts.endSession(session)
        logger.info("console: \(session.name) signed out")
        var h = HTTPFields()
        h[.setCookie] = "\(StaffAPI.cookieName)=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict"
        h[.cacheControl] = "no-store"
        return Response(status: .noContent, headers: h)
    }

    func agenda(_ req: Request) throws -> Response {
        let auth = try authenticate(req, changesState: false)
        guard case .ok = auth else { return auth.refusal! }
        let day = req.uri.queryParameters.get("date") ?? LocalDay.dayString(clock.nowMs(), zone: config.timeZone)
        guard let items = try data.agenda(day: day) else {
            return StaffAPI.failure(.badRequest, "bad_date", "Data inválida: use AAAA-MM-DD (por exemplo 2026-11-29).")
        }
        if case .ok(let session, _) = auth { try auditAgendaRead(staff: session.name, day: day) }
        return HTTPRoutes.json(.ok, ConsoleData.agendaJSON(day: day, items: items))
    }

    /// A read of the agenda (personal data) in the staff audit, `agenda_read` with the day
    /// (CONTRACT §7); once per account and day every 15 minutes, as the console polls.
    func auditAgendaRead(staff: String, day: String) throws {
        let now = clock.nowMs()
        guard agendaReads.due(staff: staff, day: day, nowMs: now) else { return }
        try db.write { try $0.audit(name: staff, action: "agenda_read", target: day, nowMs: now) }
    }

    func checkin(_ req: Request) async throws -> Response {
        let (session, body): (StaffAccounts.Session, [UInt8])
        switch try await signedBody(req) {
        case .ok(let s, let b): (session, body) = (s, b)
        case .refused(let r): return r
        }
        guard let doc = try? JSON.parse(body), let id = doc["appointment_id"]?.stringValue, !id.isEmpty, id.utf8.count <= 128 else {
            return StaffAPI.failure(.badRequest, "bad_request", "Envie JSON: {\"appointment_id\": \"…\"}.")
        }
        let now = clock.nowMs()
        switch try data.checkIn(appointmentId: id, staff: session.name, nowMs: now) {
        case .recorded(let at):
            logger.info("console: reception check-in of appointment \(id) by \(session.name)")
            return HTTPRoutes.json(
                .created,
                JSONText.object { j in
                    j.add("appointment_id", id); j.add("checked_in_at", Time.rfc3339(ms: at)); j.add("method", "reception")
                })
        case .unknown:
            return StaffAPI.failure(.notFound, "appointment_not_found", "Consulta não encontrada.")
        case .alreadyCheckedIn(let at, let method):
            let when = at.map { " às " + KioskMessages.clock($0, zone: config.timeZone) } ?? ""
            let how = method == "qr" ? " pelo quiosque" : method == "reception" ? " pela recepção" : ""
            return StaffAPI.failure(.conflict, "already_checked_in", "Check-in já feito\(how)\(when).")
        case .notCheckable(let status):
            switch status {
            case "cancelled": return StaffAPI.failure(.conflict, "appointment_cancelled", "Consulta cancelada: não é possível fazer check-in.")
            case "rescheduled": return StaffAPI.failure(.conflict, "appointment_rescheduled", "Consulta remarcada: não é possível fazer check-in.")
            default:
                return StaffAPI.failure(.conflict, "appointment_not_checkable", "Consulta com situação \"\(status)\": não é possível fazer check-in.")
            }
        }
    }

    func rooms(_ req: Request) throws -> Response {
        let auth = try authenticate(req, changesState: false)
        guard case .ok = auth else { return auth.refusal! }
        return HTTPRoutes.json(.ok, ConsoleData.roomsJSON(try data.rooms()))
    }

    /// The console when the cookie names a live session, else the login page.
    func page(_ req: Request) throws -> Response {
        let now = clock.nowMs()
        let today = LocalDay.dayString(now, zone: config.timeZone)
        guard case .ok(let session, _) = try authenticate(req, changesState: false) else {
            return StaffAPI.html(ConsolePage.login(site: config.siteId))
        }
        let items = try data.agenda(day: today) ?? []
        try auditAgendaRead(staff: session.name, day: today)
        let rooms = try data.rooms()
        let status = (try? JSON.parse(statusJSON())) ?? .null
        return StaffAPI.html(
            ConsolePage.console(
                staff: session.name, site: config.siteId, zone: config.timeZone, today: today,
                items: items, rooms: rooms, status: status, nowMs: now))
    }

    // MARK: authentication and CSRF

    enum Auth {
        case ok(StaffAccounts.Session, viaCookie: Bool)
        case refused(Response)
        var refusal: Response? { if case .refused(let r) = self { return r }; return nil }
    }

    /// Bearer token first (exempt from the origin check: a browser never adds it by itself),
    /// else the session cookie (state changes then need the console's own origin).
    func authenticate(_ req: Request, changesState: Bool) throws -> Auth {
        if let header = req.headers[.authorization] {
            let parts = header.split(separator: " ", maxSplits: 1)
            guard parts.count == 2, parts[0].lowercased() == "bearer" else {
                return .refused(StaffAPI.unauthorized("invalid_token", "Credencial inválida: use Authorization: Bearer TOKEN."))
            }
            guard let s = try accounts.session(token: String(parts[1]).trimmingCharacters(in: .whitespaces)) else {
                return .refused(StaffAPI.unauthorized("invalid_token", "Sessão inválida ou expirada: faça login novamente."))
            }
            return .ok(s, viaCookie: false)
        }
        guard let token = StaffAPI.cookie(StaffAPI.cookieName, in: req) else {
            return .refused(StaffAPI.unauthorized("unauthenticated", "Faça login para continuar."))
        }
        guard let s = try accounts.session(token: token) else {
            return .refused(StaffAPI.unauthorized("invalid_session", "Sessão inválida ou expirada: faça login novamente."))
        }
        if changesState && !StaffAPI.sameOrigin(req) {
            logger.warning("console: refused a cookie-authenticated \(req.method) \(req.uri.path) from another origin")
            return .refused(
                StaffAPI.failure(
                    .forbidden, "csrf_refused",
                    "Pedido recusado: origem diferente do console (proteção contra CSRF)."))
        }
        return .ok(s, viaCookie: true)
    }

    /// The request comes from the console's own pages: its `Origin` names this host, or (no
    /// `Origin`) the browser says `Sec-Fetch-Site: same-origin`.
    static func sameOrigin(_ req: Request) -> Bool {
        if let origin = req.headers[.origin] { return originMatches(origin, host: host(of: req)) }
        return req.headers[secFetchSite]?.lowercased() == "same-origin"
    }
    static let secFetchSite = FieldName("Sec-Fetch-Site")!
    static let forwardedProto = FieldName("X-Forwarded-Proto")!

    static func host(of req: Request) -> String? { req.head.authority }

    /// `http://127.0.0.1:8080` matches the Host `127.0.0.1:8080` (default ports implied).
    static func originMatches(_ origin: String, host: String?) -> Bool {
        guard let host, !host.isEmpty, let u = URLComponents(string: origin), let scheme = u.scheme?.lowercased(),
            scheme == "http" || scheme == "https", var oh = u.host?.lowercased(), !oh.isEmpty
        else { return false }
        if oh.hasPrefix("[") { oh = String(oh.dropFirst().dropLast()) }
        let defaultPort = scheme == "https" ? 443 : 80
        let op = u.port ?? defaultPort
        var h = host.lowercased(), hp = defaultPort
        if h.hasPrefix("["), let close = h.firstIndex(of: "]") {
            let rest = h[h.index(after: close)...]
            if rest.hasPrefix(":") { guard let p = Int(rest.dropFirst()) else { return false }; hp = p }
            h = String(h[h.index(after: h.startIndex)..<close])
        } else if let colon = h.lastIndex(of: ":") {
            guard let p = Int(h[h.index(after: colon)...]) else { return false }
            hp = p; h = String(h[..<colon])
        }
        return oh == h && op == hp
    }

    static func cookie(_ name: String, in req: Request) -> String? {
        for line in req.headers[values: .cookie] {
            for pair in line.split(separator: ";") {
                let kv = pair.split(separator: "=", maxSplits: 1)
                if kv.count == 2, kv[0].trimmingCharacters(in: .whitespaces) == name {
                    let v = kv[1].trimmingCharacters(in: .whitespaces)
                    if !v.isEmpty { return v }
                }
            }
        }
        return nil
    }

    /// The peer address for throttling: `ConsoleRequestContext` (the daemon's router) gives
    /// the real one; a context without it (unit tests with `BasicRequestContext`) counts
    /// every request as coming from the listener's one address.
    static func peerAddress<Context: RequestContext>(_ ctx: Context) -> String {
        if let p = (ctx as? any ConsolePeerContext)?.peerAddress { return p }
        return "listener"
    }

    /// Served over TLS (natively, or behind a proxy that says so): the cookie gets `Secure`.
    static func isTLS<Context: RequestContext>(_ req: Request, _ ctx: Context) -> Bool {
        if (ctx as? any ConsolePeerContext)?.isTLS == true { return true }
        if req.head.scheme?.lowercased() == "https" { return true }
        if req.headers[forwardedProto]?.lowercased() == "https" { return true }
        if let o = req.headers[.origin], o.lowercased().hasPrefix("https://") { return true }
        return false
    }

    // MARK: answers

    static func failure(_ status: HTTPResponse.Status, _ code: String, _ message: String, headers: HTTPFields = [:]) -> Response {
        HTTPRoutes.error(status, code: code, message: message, headers: headers)
    }
    static func unauthorized(_ code: String, _ message: String) -> Response {
        failure(.unauthorized, code, message, headers: [.wwwAuthenticate: "Bearer realm=\"medic-edge\""])
    }

    enum Body { case success([UInt8]), failure(Response) }

    /// A state-changing request's session and body, or the refusal to answer with (401, CSRF, too large).
    enum SignedBody { case ok(StaffAccounts.Session, [UInt8]), refused(Response) }
    func signedBody(_ req: Request) async throws -> SignedBody {
        let auth = try authenticate(req, changesState: true)
        guard case .ok(let session, _) = auth else { return .refused(auth.refusal!) }
        switch await StaffAPI.readBody(req) {
        case .success(let b): return .ok(session, b)
        case .failure(let r): return .refused(r)
        }
    }
    static func readBody(_ req: Request) async -> Body {
        do {
            let buf = try await req.body.collect(upTo: maxBodyBytes)
            return .success(Array(buf.readableBytesView))
        } catch {
            return .failure(failure(.contentTooLarge, "body_too_large", "Pedido grande demais (máximo \(maxBodyBytes / 1024) KiB)."))
        }
    }

    static func minutesText(_ seconds: Int) -> String {
        seconds < 60 ? "\(seconds) s" : "\((seconds + 59) / 60) min"
    }

    static let securityHeaders: [(FieldName, String)] = [
        (
            FieldName("Content-Security-Policy")!,
            "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors "
                + "'none'; base-uri 'none'"
        ),
        (FieldName("X-Content-Type-Options")!, "nosniff"),
        (FieldName("X-Frame-Options")!, "DENY"),
        (FieldName("Referrer-Policy")!, "no-referrer"),
    ]

    static func html(_ text: String) -> Response {
        var h = HTTPFields()
        h[.contentType] = "text/html; charset=utf-8"
        h[.cacheControl] = "no-store"
        for (k, v) in securityHeaders { h[k] = v }
        return Response(status: .ok, headers: h, body: .init(byteBuffer: ByteBuffer(string: text)))
    }

    static func asset(_ text: String, type: String) -> Response {
        var h = HTTPFields()
        h[.contentType] = type
        h[.cacheControl] = "no-cache"
        h[FieldName("X-Content-Type-Options")!] = "nosniff"
        return Response(status: .ok, headers: h, body: .init(byteBuffer: ByteBuffer(string: text)))
    }

    /// Any unexpected error becomes a JSON 500 without details (and a log line without
    /// personal data).
    func guarded(_ what: String, _ body: () async throws -> Response) async -> Response {
        do { return try await body() } catch {
            logger.error("console: \(what) failed: \(type(of: error))")
            return StaffAPI.failure(.internalServerError, "internal", "Erro interno do aparelho. Tente de novo; se persistir, chame o suporte.")
        }
    }
}

/// What a request context may tell the console beyond `BasicRequestContext`.
protocol ConsolePeerContext {
    var peerAddress: String? { get }
    var isTLS: Bool { get }
}

/// Which listener a request came in on.
protocol ConsoleListener: Sendable { static var isTLS: Bool { get } }
/// The plain listener (`http.listen`, loopback by contract).
enum PlainListener: ConsoleListener { static let isTLS = false }
/// The HTTPS listener (`http.tls_listen`): every request came over TLS, so the session
/// cookie gets `Secure`.
enum TLSListener: ConsoleListener { static let isTLS = true }

/// The daemon's request context: the peer's address, for per-address login throttling, and
/// the listener. `StaffAPI.register` works with any context (unit tests use
/// `BasicRequestContext`).
struct ConsoleContext<Listener: ConsoleListener>: RequestContext, ConsolePeerContext {
    var coreContext: CoreRequestContextStorage
    let peerAddress: String?
    var isTLS: Bool { Listener.isTLS }
    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        peerAddress = source.channel.remoteAddress?.ipAddress
    }
}
typealias ConsoleRequestContext = ConsoleContext<PlainListener>
typealias ConsoleTLSRequestContext = ConsoleContext<TLSListener>

/// When each account last had a read of each day's agenda audited (kept 15 minutes).
final class AgendaReads: Sendable {
    static let everyMs: Int64 = 15 * 60_000
    private let last = Mutex<[String: Int64]>([:])
    /// True when this read is to be audited (none for this account and day in 15 minutes).
    func due(staff: String, day: String, nowMs: Int64) -> Bool {
        last.withLock { m in
            let key = staff + "\u{1F}" + day
            if let t = m[key], nowMs - t < Self.everyMs, nowMs >= t { return false }
            if m.count > 1000 { m = m.filter { nowMs - $0.value < Self.everyMs } }
            m[key] = nowMs
            return true
        }
    }
}
