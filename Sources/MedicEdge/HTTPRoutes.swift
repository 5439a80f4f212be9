import EdgeCore
import EdgeStore
import Foundation
import Hummingbird
import HummingbirdTLS
import Logging
import NIOSSL

/// The local HTTP API (CONTRACT §4).
struct HTTPRoutes: Sendable {
    let config: EdgeConfig
    let db: AppDatabase
    let state: EdgeState
    let metrics: EdgeMetrics
    let logger: Logger

    static func json(_ status: HTTPResponse.Status, _ text: String, headers: HTTPFields = [:]) -> Response {
        var h = headers
        h[.contentType] = "application/json; charset=utf-8"
        h[.cacheControl] = "no-store"
        return Response(status: status, headers: h, body: .init(byteBuffer: ByteBuffer(string: text)))
    }
    static func error(_ status: HTTPResponse.Status, code: String, message: String, headers: HTTPFields = [:]) -> Response {
        json(status, JSONText.object { j in
            j.addRaw("error", JSONText.object { e in e.add("code", code); e.add("message", message) })
        }, headers: headers)
    }

    /// No table is scanned here (CONTRACT §4).
    func statusJSON() throws -> String {
        let now = Time.nowMs()
        // The outbox's figures: one row kept by triggers and one index lookup, read now; the
        // roster and alert counts as housekeeping (once a second) or the roster sync last read
        // them (read here only if that first read failed).
        let stats = try db.outboxStats()
        let f = try state.figures ?? StatusFigures.read(db)
        let (patients, appts, alerts) = (f.patients, f.appointments, f.alerts)
        let (storageState, used) = state.storage
        return JSONText.object { j in
            j.add("site_id", config.siteId)
            j.addRaw("mqtt", JSONText.object { $0.add("connected", state.mqttConnected) })
            j.addRaw("cloud", JSONText.object { c in
                c.add("state", state.cloudState(nowMs: now).rawValue)
                c.add("last_success_at", state.lastSuccessMs.map { Time.rfc3339(ms: $0) })
            })
            j.addRaw("outbox", JSONText.object { o in
                o.add("pending", stats.pending)
                o.add("oldest_pending_at", stats.oldestPendingMs.map { Time.rfc3339(ms: $0) })
                o.add("dead_letters", stats.deadLetters)
            })
            j.addRaw("roster", JSONText.object { r in
                r.add("patients", patients); r.add("appointments", appts)
                r.add("last_sync_at", state.lastRosterSyncMs.map { Time.rfc3339(ms: $0) })
            })
            j.addRaw("alerts", JSONText.object { $0.add("active", alerts) })
            j.addRaw("storage", JSONText.object { s in
                s.add("used_bytes", used); s.add("budget_bytes", config.storageMaxBytes)
                s.add("state", storageState.rawValue)
            })
        }
    }

    /// The routes, with a request context that knows the peer's address (per-address login
    /// throttling) and whether the listener is TLS: `ConsoleRequestContext` on the plain
    /// listener, `ConsoleTLSRequestContext` on the HTTPS one (same routes on both).
    func router<Context: RequestContext>(context: Context.Type = ConsoleRequestContext.self) -> Router<Context> {
        let router = Router(context: Context.self)
        router.get("/healthz") { _, _ in
            let reasons = state.healthReasons()
            if reasons.isEmpty { return HTTPRoutes.json(.ok, #"{"status":"ok"}"#) }
            return HTTPRoutes.json(.serviceUnavailable, JSONText.object { j in
                j.add("status", "unhealthy")
                j.addRaw("reasons", "[" + reasons.map(JSONText.quote).joined(separator: ",") + "]")
            })
        }
        router.get("/metrics") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                     body: .init(byteBuffer: ByteBuffer(string: metrics.exposition())))
        }
        router.get("/api/v1/status") { _, _ in
            do { return HTTPRoutes.json(.ok, try statusJSON()) } catch {
                logger.error("http: status failed: \(error)")
                return HTTPRoutes.error(.internalServerError, code: "internal", message: "the status could not be read")
            }
        }
        StaffAPI(config: config, db: db, state: state, logger: logger, statusJSON: { try statusJSON() }).register(router)
        return router
    }
}

/// The console's HTTPS listener (`http.tls_listen`): the certificate chain and private key
/// (PEM) from `http.cert_file` / `http.key_file`, TLS 1.2 or newer.
enum ConsoleTLS {
    /// nil without `http.tls_listen`. Everything is loaded and checked here, at start-up, so
    /// a bad file stops the daemon with one line naming the key and the file (ConfigError),
    /// never later in the listener.
    /// The listener's TLS settings and the end of the certificate's validity (Unix seconds).
    struct Loaded { let tls: TLSConfiguration; let notValidAfter: Int64 }
    static func configuration(_ http: EdgeConfig.HTTP) throws -> Loaded? {
        guard http.tlsListen != nil else { return nil }
        guard let certFile = http.certFile else { throw ConfigError(key: "http.cert_file", problem: "required with http.tls_listen") }
        guard let keyFile = http.keyFile else { throw ConfigError(key: "http.key_file", problem: "required with http.tls_listen") }
        guard FileManager.default.isReadableFile(atPath: certFile) else {
            throw ConfigError(key: "http.cert_file", problem: "cannot read \(certFile)")
        }
        guard FileManager.default.isReadableFile(atPath: keyFile) else {
            throw ConfigError(key: "http.key_file", problem: "cannot read \(keyFile)")
        }
        let chain = (try? NIOSSLCertificate.fromPEMFile(certFile)) ?? []
        guard !chain.isEmpty else {
            throw ConfigError(key: "http.cert_file", problem: "\(certFile) holds no PEM certificate (expected the server certificate, then any intermediates)")
        }
        let key: NIOSSLPrivateKey
        do { key = try NIOSSLPrivateKey(file: keyFile, format: .pem) } catch {
            throw ConfigError(key: "http.key_file", problem: "\(keyFile) is not an unencrypted PEM private key")
        }
        var tls = TLSConfiguration.makeServerConfiguration(certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key))
        tls.minimumTLSVersion = .tlsv12
        // Building the context checks that the key belongs to the (first) certificate.
        do { _ = try NIOSSLContext(configuration: tls) } catch {
            throw ConfigError(key: "http.key_file", problem: "\(keyFile) does not match the certificate in \(certFile)")
        }
        return Loaded(tls: tls, notValidAfter: Int64(chain[0].notValidAfter))
    }

    /// What to tell the technician about the certificate's end: an error once it has expired
    /// (browsers refuse the console), a warning in its last 30 days, nothing before.
    static func expiryNotice(notValidAfter: Int64, nowSeconds: Int64, certFile: String) -> (isError: Bool, text: String)? {
        let left = notValidAfter - nowSeconds
        let day = String(Time.rfc3339(ms: notValidAfter * 1000).prefix(10))
        if left <= 0 {
            return (true, "console: the certificate in http.cert_file \(certFile) expired on \(day); browsers refuse the console over HTTPS: re-run install.sh to reissue it")
        }
        guard left < 30 * 86_400 else { return nil }
        let days = Int((left + 86_399) / 86_400)
        return (false, "console: the certificate in http.cert_file \(certFile) expires on \(day) (in \(days) day\(days == 1 ? "" : "s")): re-run install.sh to reissue it")
    }
}
