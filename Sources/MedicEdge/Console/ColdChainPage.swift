import EdgeCore
import Foundation
import Hummingbird

/// The console's cold-chain pages (CONTRACT §6): the banner every console page carries, and
/// the printable monthly chart ("Mapa de controle de temperatura") at
/// `/coldchain?room=KEY&month=YYYY-MM`. The server renders the frame (room, range, workday,
/// month navigation, the CSV link); `coldchain.js` fills the banner from
/// `GET /api/v1/coldchain/excursions` and `/api/v1/rooms`, and the chart's rows from
/// `GET /api/v1/coldchain/{room}/chart` (the lead's routes; no cold-chain logic here).
extension StaffAPI {
    func registerColdChainPages<Context: RequestContext>(_ router: Router<Context>) {
        router.get("/coldchain") { req, _ in await self.guarded("coldchain page") { try self.coldChainPage(req) } }
        router.get("/assets/coldchain.js") { _, _ in StaffAPI.asset(ConsoleAssets.coldChainJS, type: "text/javascript; charset=utf-8") }
    }

    /// The chart page with a live session, else the login page (which comes back here).
    func coldChainPage(_ req: Request) throws -> Response {
        guard case .ok(let session, _) = try authenticate(req, changesState: false) else {
            return StaffAPI.html(ConsolePage.login(site: config.siteId))
        }
        let zone = config.timeZone
        let today = LocalDay.dayString(clock.nowMs(), zone: zone)
        let thisMonth = String(today.prefix(7))
        let key: String = req.uri.queryParameters.get("room").map { String($0) } ?? ""
        let monthParam: String? = req.uri.queryParameters.get("month").map { String($0) }
        let page = ColdChainPage(staff: session.name, site: config.siteId, zone: zone)
        guard let room = config.rooms[key], let cc = room.coldChain, let limits = room.limits[EnvironmentMetric.temperatureC.rawValue]
        else {
            let known = ConsolePage.coldChainRooms(config).sorted()
            return StaffAPI.html(
                page.problem(
                    key.isEmpty ? "Escolha a geladeira." : "A sala \"\(key)\" não tem controle de cadeia de frio.",
                    rooms: known.map { ($0, config.rooms[$0]?.name ?? $0) }),
                status: key.isEmpty ? .ok : .notFound)
        }
        let month = monthParam ?? thisMonth
        guard ColdChainPage.monthBounds(month) != nil else {
            return StaffAPI.html(page.problem("Mês inválido: use AAAA-MM (por exemplo \(thisMonth)).", rooms: []), status: .badRequest)
        }
        return StaffAPI.html(
            page.chart(
                room: key, name: room.name ?? key, limits: limits, workday: cc.workday, month: month,
                today: today))
    }
}

extension StaffAPI {
    static func html(_ text: String, status: HTTPResponse.Status) -> Response {
        var r = html(text)
        r.status = status
        return r
    }
}

extension ConsolePage {
    /// The rooms with a cold chain (a `cold_chain` section and a temperature range), as
    /// `GET /api/v1/rooms` marks them with `cold_chain`.
    static func coldChainRooms(_ config: EdgeConfig) -> Set<String> {
        Set(
            config.rooms.compactMap { key, room in
                room.coldChain != nil && room.limits[EnvironmentMetric.temperatureC.rawValue] != nil ? key : nil
            })
    }

    /// The cold-chain banner's place at the top of every console page, filled by
    /// `coldchain.js` (hidden while there is nothing to say).
    static func coldChainBanner(zone: TimeZone) -> String {
        "<section id=\"cc-banner\" class=\"cc-banner\" aria-labelledby=\"cc-title\" data-zone=\"\(esc(zone.identifier))\" hidden>"
            + "<h2 id=\"cc-title\" class=\"sr-only\">Cadeia de frio</h2><ul id=\"cc-list\" class=\"cc-list\"></ul>"
            + "<p id=\"cc-notice\" class=\"cc-notice\" role=\"status\" aria-live=\"polite\"></p></section>"
    }

    /// `encodeURIComponent`'s encoding (the script builds the same links).
    static func urlQuery(_ s: String) -> String {
        var allowed = CharacterSet(charactersIn: "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
        allowed.insert(charactersIn: "-_.!~*'()")
        return s.addingPercentEncoding(withAllowedCharacters: allowed) ?? s
    }
}

/// The monthly chart page (the frame; `coldchain.js` draws the rows).
struct ColdChainPage {
    let staff: String
    let site: String
    let zone: TimeZone

    static let monthNames = [
        "janeiro", "fevereiro", "março", "abril", "maio", "junho", "julho", "agosto", "setembro", "outubro", "novembro", "dezembro",
    ]

    /// (year, month) of a valid "YYYY-MM" (years 2000–2999).
    static func monthBounds(_ m: String) -> (Int, Int)? {
        let parts = m.split(separator: "-", omittingEmptySubsequences: false)
        guard m.utf8.count == 7, parts.count == 2, parts[0].count == 4, parts[1].count == 2,
            let y = Int(parts[0]), let mo = Int(parts[1]), (2000...2999).contains(y), (1...12).contains(mo)
        else { return nil }
        return (y, mo)
    }

    static func shift(_ m: String, by n: Int) -> String {
        guard let (y, mo) = monthBounds(m) else { return m }
        let i = y * 12 + (mo - 1) + n
        return String(format: "%04d-%02d", i / 12, i % 12 + 1)
    }

    static func label(_ m: String) -> String {
        guard let (y, mo) = monthBounds(m) else { return m }
        return "\(monthNames[mo - 1]) de \(y)"
    }

    func header(title: String) -> String {
        ConsolePage.head(title: title) + """
            <body class="cc-page">
            <header class="topbar">
              <div class="brand"><h1>Recepção</h1><span class="site mono">\(ConsolePage.esc(site))</span></div>
              <nav aria-label="Seções" class="sections"><a href="/#agenda">Agenda</a><a href="/#rooms">Salas</a></nav>
              <div class="who"><span>Conectado como <strong id="staff-name">\(ConsolePage.esc(staff))</strong></span>
                <button id="logout" type="button" class="btn btn-quiet">Sair</button></div>
            </header>
            \(ConsolePage.coldChainBanner(zone: zone))
            <div id="announce" class="toast" role="status" aria-live="polite" aria-atomic="true"></div>
            """
    }

    static let footer = """
        <script src="/assets/coldchain.js"></script>
        </body>
        </html>
        """

    func problem(_ text: String, rooms: [(String, String)]) -> String {
        let links = rooms.map { "<li><a href=\"/coldchain?room=\(ConsolePage.esc(ConsolePage.urlQuery($0.0)))\">\(ConsolePage.esc($0.1))</a></li>" }
        return header(title: "Mapa de controle de temperatura")
            + "<main class=\"chart-main\"><section class=\"panel chart-card\"><h2>Mapa de controle de temperatura</h2>"
            + "<p class=\"form-error\">\(ConsolePage.esc(text))</p>"
            + (links.isEmpty ? "" : "<ul class=\"cc-rooms\">\(links.joined())</ul>")
            + "<p><a href=\"/\">Voltar ao console</a></p></section></main>" + Self.footer
    }

    func chart(room: String, name: String, limits: MetricLimits, workday: Workday, month: String, today: String) -> String {
        let thisMonth = String(today.prefix(7))
        let e = ConsolePage.esc
        let q = ConsolePage.urlQuery(room)
        let prev = Self.shift(month, by: -1), next = Self.shift(month, by: 1)
        let link = { (m: String) in "/coldchain?room=\(q)&amp;month=\(m)" }
        let csv = "/api/v1/coldchain/\(q)/chart?month=\(month)&amp;format=csv"
        let hours = "\(Workday.text(ofMinute: workday.opensMinute))–\(Workday.text(ofMinute: workday.closesMinute))"
        let range = "\(ConsolePage.number(limits.min))–\(ConsolePage.number(limits.max)) °C"
        let nextLink =
            next <= thisMonth
            ? "<a class=\"btn btn-quiet\" id=\"next-month\" href=\"\(link(next))\">\(Self.label(next)) ›</a>" : ""
        return header(title: "Mapa de temperatura · \(name) · \(Self.label(month))") + """
            <main class="chart-main">
            <section id="chart" class="panel chart-card" aria-labelledby="chart-title" data-room="\(e(room))" data-month="\(month)" \
            data-today="\(today)" \
            data-min="\(limits.min)" data-max="\(limits.max)">
              <div class="chart-head">
                <div class="chart-title">
                  <h2 id="chart-title">Mapa de controle de temperatura</h2>
                  <p class="chart-sub"><strong>\(e(name))</strong> · <span id="chart-month">\(Self.label(month))</span> · \
            faixa \(range) · expediente \(hours) · unidade <span class="mono">\(e(site))</span></p>
                </div>
                <nav class="chart-nav" aria-label="Mês e ações">
                  <a class="btn btn-quiet" id="prev-month" href="\(link(prev))">‹ \(Self.label(prev))</a>
                  \(nextLink)
                  <a class="btn btn-quiet" id="chart-csv" href="\(csv)" download="mapa-temperatura-\(e(room))-\(month).csv">Baixar CSV</a>
                  <button id="chart-print" type="button" class="btn btn-primary">Imprimir</button>
                </nav>
              </div>
              <table class="chart">
                <caption class="sr-only">Temperaturas de \(e(name)), um dia por linha</caption>
                <thead>
                  <tr><th scope="col" rowspan="2">Dia</th><th scope="colgroup" colspan="4">Abertura</th>\
            <th scope="colgroup" colspan="4">Fechamento</th><th scope="colgroup" colspan="2">Dia inteiro</th>\
            <th scope="col" rowspan="2">Leituras</th><th scope="col" rowspan="2">Excursões e ação tomada</th>\
            <th scope="col" rowspan="2">Responsável</th></tr>
                  <tr><th scope="col">Hora</th><th scope="col">Atual</th><th scope="col">Mín.</th><th scope="col">Máx.</th>\
            <th scope="col">Hora</th><th scope="col">Atual</th><th scope="col">Mín.</th><th scope="col">Máx.</th>\
            <th scope="col">Mín.</th><th scope="col">Máx.</th></tr>
                </thead>
                <tbody id="chart-rows"><tr><td colspan="14" class="chart-loading">Carregando…</td></tr></tbody>
              </table>
              <p id="chart-error" class="form-error" role="alert"></p>
              <p class="chart-legend small">Temperaturas em °C. Abertura: a primeira leitura a partir das \
            \(Workday.text(ofMinute: workday.opensMinute)), com a mínima e a máxima desde o fechamento anterior; fechamento: a última \
            leitura até as \(Workday.text(ofMinute: workday.closesMinute)), com a mínima e a máxima desde a abertura. \
            Excursão: temperatura fora de \(range).</p>
              <p class="chart-sign">Responsável técnico: ______________________________ &nbsp; Data: ____/____/______</p>
            </section>
            </main>
            """ + Self.footer
    }
}
