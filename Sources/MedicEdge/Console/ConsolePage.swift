import EdgeCore
import Foundation

/// The reception console's HTML, rendered on the server (Brazilian Portuguese). The page is
/// complete as served; `console.js` then refreshes it every 2 s from the JSON API with the
/// same markup (see `ConsoleAssets`). No external resource: the internet may be down.
enum ConsolePage {
    static func esc(_ s: String) -> String {
        var o = ""
        o.reserveCapacity(s.utf8.count)
        for c in s.unicodeScalars {
            switch c {
            case "&": o += "&amp;"
            case "<": o += "&lt;"
            case ">": o += "&gt;"
            case "\"": o += "&quot;"
            case "'": o += "&#39;"
            default: o.unicodeScalars.append(c)
            }
        }
        return o
    }

    static func head(title: String) -> String {
        """
        <!doctype html>
        <html lang="pt-BR">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <meta name="color-scheme" content="light">
        <title>\(esc(title))</title>
        <link rel="icon" href="data:,">
        <link rel="stylesheet" href="/assets/console.css">
        </head>
        """
    }

    // MARK: login

    static func login(site: String) -> String {
        head(title: "Entrar · Recepção") + """
            <body class="login-page">
            <main class="login-card" aria-labelledby="login-title">
              <h1 id="login-title">Recepção</h1>
              <p class="muted">Aparelho da clínica · unidade <span class="mono">\(esc(site))</span></p>
              <form id="login-form" novalidate>
                <div class="field">
                  <label for="login-name">Usuário</label>
                  <input id="login-name" name="name" type="text" autocomplete="username" autocapitalize="none" spellcheck="false" required autofocus>
                </div>
                <div class="field">
                  <label for="login-password">Senha</label>
                  <input id="login-password" name="password" type="password" autocomplete="current-password" required>
                </div>
                <p id="login-error" class="form-error" role="alert" aria-live="assertive"></p>
                <button id="login-submit" class="btn btn-primary btn-block" type="submit">Entrar</button>
              </form>
              <noscript><p class="form-error">Ative o JavaScript do navegador para usar o console.</p></noscript>
              <p class="muted small">O check-in e a agenda funcionam mesmo sem internet.</p>
            </main>
            <script src="/assets/login.js"></script>
            </body>
            </html>
            """
    }

    // MARK: console

    static func console(
        staff: String, site: String, zone: TimeZone, today: String, items: [AgendaItem], rooms: [RoomView],
        status: JSON, nowMs: Int64
    ) -> String {
        head(title: "Recepção · \(site)") + """
            <body>
            <a class="skip" href="#agenda">Pular para a agenda</a>
            <div id="console" data-zone="\(esc(zone.identifier))" data-day="\(today)" data-today="\(today)">
            <header class="topbar">
              <div class="brand"><h1>Recepção</h1><span class="site mono">\(esc(site))</span></div>
              <nav aria-label="Seções" class="sections"><a href="#agenda">Agenda</a><a href="#rooms">Salas</a></nav>
              <div class="who"><span>Conectado como <strong id="staff-name">\(esc(staff))</strong></span>
                <button id="logout" type="button" class="btn btn-quiet">Sair</button></div>
            </header>
            \(coldChainBanner(zone: zone))
            \(banner(status, zone: zone))
            <div id="announce" class="toast" role="status" aria-live="polite" aria-atomic="true"></div>
            <main class="layout">
              <section id="agenda" class="panel" aria-labelledby="agenda-title" tabindex="-1">
                <div class="panel-head">
                  <div class="title"><h2 id="agenda-title">Agenda</h2>\
            <p id="agenda-day" class="day-label">\(dayLabel(today, today: today, zone: zone))</p></div>
                  <div class="controls">
                    <div class="day-picker" role="group" aria-label="Dia da agenda">
                      <button id="prev-day" type="button" class="btn btn-quiet" aria-label="Dia anterior">‹</button>
                      <label for="agenda-date" class="sr-only">Data</label>
                      <input id="agenda-date" type="date" value="\(today)">
                      <button id="next-day" type="button" class="btn btn-quiet" aria-label="Próximo dia">›</button>
                      <button id="today" type="button" class="btn btn-quiet">Hoje</button>
                    </div>
                    <div class="search">
                      <label for="agenda-search">Buscar paciente</label>
                      <input id="agenda-search" type="search" placeholder="Nome ou telefone" autocomplete="off" spellcheck="false">
                    </div>
                  </div>
                </div>
                <p id="agenda-summary" class="summary">\(summary(items))</p>
                <table class="agenda">
                  <caption class="sr-only">Consultas do dia, em ordem de horário</caption>
                  <thead><tr><th scope="col">Horário</th><th scope="col">Paciente</th>\
            <th scope="col">Profissional</th><th scope="col">Sala</th><th scope="col">Serviço</th>\
            <th scope="col">Situação</th><th scope="col"><span class="sr-only">Ação</span></th></tr></thead>
                  <tbody id="agenda-rows">\(rows(items, zone: zone, checkinOpen: true))</tbody>
                </table>
                <p id="agenda-empty" class="empty"\(items.isEmpty ? "" : " hidden")>Nenhuma consulta neste dia.</p>
                <p id="agenda-nomatch" class="empty" hidden>Nenhum paciente encontrado para esta busca.</p>
              </section>
              <section id="rooms" class="panel" aria-labelledby="rooms-title" tabindex="-1">
                <div class="panel-head"><h2 id="rooms-title">Salas</h2></div>
                <ul id="room-list" class="rooms">\(roomCards(rooms, zone: zone, nowMs: nowMs))</ul>
                <p id="rooms-empty" class="empty"\(rooms.isEmpty ? "" : " hidden")>Nenhuma sala configurada.</p>
              </section>
            </main>
            <footer class="foot muted small">Atualização automática a cada 2 s · \
            <span id="last-update">carregado às \(KioskMessages.clock(nowMs, zone: zone))</span></footer>
            </div>
            <script src="/assets/coldchain.js"></script>
            <script src="/assets/console.js"></script>
            </body>
            </html>
            """
    }

    // The functions below have twins in console.js (same markup): keep them in step.

    static let statusLabels: [String: String] = [
        "scheduled": "Agendada", "confirmed": "Confirmada", "no_show": "Faltou", "arrived": "Chegou",
        "in_progress": "Em atendimento", "completed": "Concluída", "cancelled": "Cancelada", "rescheduled": "Remarcada",
    ]

    static func summary(_ items: [AgendaItem]) -> String {
        let active = items.filter { !["cancelled", "rescheduled"].contains($0.status) }
        let arrived = active.filter(\.arrived).count
        let n = active.count
        return
            "\(n) \(n == 1 ? "consulta" : "consultas") · \(arrived) \(arrived == 1 ? "chegou" : "chegaram") · \(n - arrived) "
            + "\(n - arrived == 1 ? "aguardando" : "aguardando")"
    }

    /// "Domingo, 29 de novembro de 2026 (hoje)": the native date field follows the
    /// browser's language, this line is always Portuguese.
    static func dayLabel(_ day: String, today: String, zone: TimeZone) -> String {
        guard let (start, _) = LocalDay.bounds(day, zone: zone) else { return day }
        let f = DateFormatter()
        f.locale = Locale(identifier: "pt_BR")
        f.timeZone = zone
        f.dateFormat = "EEEE, d 'de' MMMM 'de' y"
        let t = f.string(from: Date(timeIntervalSince1970: Double(start) / 1000 + 12 * 3600))
        return t.prefix(1).uppercased() + t.dropFirst() + (day == today ? " (hoje)" : "")
    }

    static func digits(_ s: String?) -> String { String((s ?? "").filter(\.isASCII).filter(\.isNumber)) }

    /// Brazilian phone as people read it: +5511990000001 → (11) 99000-0001.
    static func phoneText(_ s: String?) -> String {
        guard let s, !s.isEmpty else { return "" }
        var d = digits(s)
        if d.hasPrefix("55") && (d.count == 12 || d.count == 13) { d = String(d.dropFirst(2)) }
        guard d.count == 10 || d.count == 11 else { return s }
        let a = Array(d)
        let ddd = String(a[0..<2]), rest = Array(a[2...])
        let cut = rest.count - 4
        return "(\(ddd)) \(String(rest[0..<cut]))-\(String(rest[cut...]))"
    }

    /// Lower-case, without accents: what search compares.
    static func fold(_ s: String) -> String {
        s.folding(options: [.diacriticInsensitive, .caseInsensitive], locale: Locale(identifier: "pt_BR")).lowercased()
    }

    static func searchKey(_ i: AgendaItem) -> String {
        var d = digits(i.patientPhone)
        var parts = [fold(i.patientName ?? ""), d]
        if d.hasPrefix("55") { d = String(d.dropFirst(2)); parts.append(d) }
        return parts.joined(separator: " ")
    }

    static func statusBadge(_ i: AgendaItem, zone: TimeZone) -> (String, String) {
        if let at = i.checkedInMs {
            let how = i.checkinMethod == "qr" ? "Quiosque" : i.checkinMethod == "reception" ? "Recepção" : (i.checkinMethod ?? "")
            return ("arrived", "Chegou às \(KioskMessages.clock(at, zone: zone))" + (how.isEmpty ? "" : " · \(how)"))
        }
        let label = statusLabels[i.status] ?? i.status
        switch i.status {
        case "arrived", "in_progress", "completed": return ("arrived", label)
        case "cancelled", "rescheduled": return ("cancelled", label)
        case "no_show": return ("late", label)
        default: return ("waiting", label)
        }
    }

    static func rows(_ items: [AgendaItem], zone: TimeZone, checkinOpen: Bool) -> String {
        items.map { i in
            let (cls, label) = statusBadge(i, zone: zone)
            let start = KioskMessages.clock(i.startMs, zone: zone), end = KioskMessages.clock(i.endMs, zone: zone)
            let name = i.patientName ?? "Paciente não encontrado"
            let button =
                (checkinOpen && i.checkinAllowed)
                ? "<button type=\"button\" class=\"btn btn-primary btn-checkin\" data-checkin=\"\(esc(i.id))\" data-name=\"\(esc(name))\" "
                    + "data-focus-key=\"checkin:\(esc(i.id))\" aria-label=\"Fazer check-in de \(esc(name)), \(start)\">Check-in</button>"
                : ""
            return "<tr id=\"appt-\(esc(i.id))\" class=\"appt st-\(cls)\" data-id=\"\(esc(i.id))\" data-search=\"\(esc(searchKey(i)))\">"
                + "<td class=\"time\" data-label=\"Horário\"><span class=\"t-start\">\(start)</span> <span class=\"t-end\">– \(end)</span></td>"
                + "<td class=\"patient\" data-label=\"Paciente\"><span class=\"p-name\">\(esc(name))</span> "
                + "<span class=\"p-phone\">\(esc(phoneText(i.patientPhone)))</span></td>"
                + "<td data-label=\"Profissional\">\(esc(i.professionalName ?? "—"))</td>"
                + "<td class=\"col-room\" data-label=\"Sala\">\(esc(i.roomName ?? "—"))</td>"
                + "<td data-label=\"Serviço\">\(esc(i.serviceName ?? "—"))</td>"
                + "<td class=\"status\" data-label=\"Situação\" tabindex=\"-1\" data-focus-key=\"status:\(esc(i.id))\">"
                + "<span class=\"badge badge-\(cls)\">\(esc(label))</span></td>"
                + "<td class=\"action\">\(button)</td></tr>"
        }.joined()
    }

    /// Each metric's key, its name in Portuguese and its unit.
    static let metricLabels: [(String, String, String)] = EnvironmentMetric.allCases.map { m in
        let name =
            switch m {
            case .temperatureC: "Temperatura";
            case .humidityPct: "Umidade";
            case .co2Ppm: "CO₂"
            }
        return (m.rawValue, name, m.unit)
    }

    static func number(_ v: Double) -> String {
        let r = (v * 10).rounded() / 10
        let s = r == r.rounded() ? String(Int64(r)) : String(format: "%.1f", r)
        return s.replacingOccurrences(of: ".", with: ",")
    }

    static func roomCards(_ rooms: [RoomView], zone: TimeZone, nowMs: Int64) -> String {
        rooms.map { r in
            let hasLimits = !r.limits.isEmpty
            // A cold-chain sensor's silence is an alert of its own (`sensor_silent` in the API's `alerts`).
            let silent = r.coldChain?.silentSinceMs
            let alerting = !r.alerts.isEmpty || silent != nil
            let chart =
                r.coldChain != nil
                ? "<p class=\"room-links\"><a href=\"/coldchain?room=\(esc(urlQuery(r.key)))\">Mapa de temperatura</a></p>" : ""
            let badge =
                alerting
                ? "<span class=\"badge badge-alert\">Alerta</span>"
                : hasLimits ? "<span class=\"badge badge-ok\">Normal</span>" : ""
            var occ = ""
            if r.presenceKnown {
                occ = r.occupied ? "<p class=\"occupancy occ-busy\">Ocupada</p>" : "<p class=\"occupancy occ-free\">Livre</p>"
            }
            var dl = ""
            for (key, label, unit) in metricLabels {
                guard let v = r.readings[key] else { continue }
                let lim = r.limits[key].map { " <span class=\"range\">(\(number($0.min))–\(number($0.max)) \(unit))</span>" } ?? ""
                let bad = r.alerts.contains { $0.metric == key }
                dl +=
                    "<div class=\"reading\(bad ? " reading-bad" : "")\" data-metric=\"\(key)\"><dt>\(label)</dt>"
                    + "<dd><span class=\"value\">\(number(v)) \(unit)</span>\(lim)</dd></div>"
            }
            var when = ""
            if let at = r.readingsAtMs {
                let stale = nowMs - at > 15 * 60_000
                when =
                    stale
                    ? "<p class=\"updated stale\">Sem leitura recente (última às \(KioskMessages.clock(at, zone: zone)))</p>"
                    : "<p class=\"updated\">Leitura às \(KioskMessages.clock(at, zone: zone))</p>"
            } else if hasLimits {
                when = "<p class=\"updated stale\">Sem leituras ainda</p>"
            }
            let alerts =
                r.alerts.map { a -> String in
                    let (label, unit) = metricLabels.first { $0.0 == a.metric }.map { ($0.1, $0.2) } ?? (a.metric, "")
                    return
                        "<li>\(label) \(number(a.value)) \(unit) fora do limite (\(number(a.min))–\(number(a.max)) \(unit)) desde "
                        + "\(KioskMessages.clock(a.sinceMs, zone: zone))</li>"
                }.joined()
                + (silent.map { "<li>Sensor sem leituras desde \(KioskMessages.clock($0, zone: zone))</li>" } ?? "")
            return "<li class=\"room\(alerting ? " room-alert" : "")\" data-room=\"\(esc(r.key))\">"
                + "<div class=\"room-head\"><h3>\(esc(r.name))</h3>\(badge)</div>\(occ)"
                + (dl.isEmpty ? "" : "<dl class=\"readings\">\(dl)</dl>") + when
                + (alerts.isEmpty ? "" : "<ul class=\"alerts\" aria-label=\"Alertas de \(esc(r.name))\">\(alerts)</ul>")
                + chart + "</li>"
        }.joined()
    }

    static func banner(_ status: JSON, zone: TimeZone) -> String {
        let (cls, state, title, detail) = bannerText(status, zone: zone)
        return "<div id=\"banner\" class=\"banner banner-\(cls)\" data-cloud-state=\"\(esc(state))\" role=\"status\" aria-live=\"polite\">"
            + "<strong id=\"banner-title\">\(esc(title))</strong> <span id=\"banner-detail\">\(esc(detail))</span></div>"
    }

    static func bannerText(_ s: JSON, zone: TimeZone) -> (String, String, String, String) {
        let state = s["cloud"]?["state"]?.stringValue ?? "unknown"
        let pending = Int(s["outbox"]?["pending"]?.doubleValue ?? 0)
        let backlog = pending == 0 ? "Nada aguardando envio." : "\(pending) \(pending == 1 ? "registro aguardando" : "registros aguardando") envio."
        let last =
            s["cloud"]?["last_success_at"]?.stringValue.flatMap(Time.parseMs).map { " Última comunicação às \(KioskMessages.clock($0, zone: zone))." }
            ?? ""
        let mqtt = s["mqtt"]?["connected"]?.boolValue == false ? " Atenção: quiosques e sensores desconectados do aparelho." : ""
        switch state {
        case "online": return ("online", state, "Nuvem conectada.", backlog + mqtt)
        case "degraded", "offline":
            return ("offline", state, "Sem conexão com a nuvem.", "O check-in continua funcionando. " + backlog + last + mqtt)
        case "unauthorized":
            return ("offline", state, "A nuvem recusou o acesso do aparelho.", "O check-in continua funcionando; chame o suporte. " + backlog + mqtt)
        case "disabled": return ("local", state, "Modo local (sem nuvem configurada).", "O check-in funciona normalmente." + mqtt)
        default: return ("offline", state, "Estado da nuvem desconhecido.", backlog + mqtt)
        }
    }
}
