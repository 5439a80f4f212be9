import EdgeCore
import EdgeStore
import Foundation
import Hummingbird
import Logging

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
        json(
            status,
            JSONText.object { j in
                j.addRaw(
                    "error",
                    JSONText.object { e in
                        e.add("code", code); e.add("message", message)
                    })
            }, headers: headers)
    }

    /// No table is scanned here (CONTRACT §4).
    func statusJSON() throws -> String {
        let now = state.clock.nowMs()
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
            j.addRaw(
                "cloud",
                JSONText.object { c in
                    c.add("state", state.cloudState(nowMs: now).rawValue)
                    c.add("last_success_at", state.lastSuccessMs.map { Time.rfc3339(ms: $0) })
                })
            j.addRaw(
                "outbox",
                JSONText.object { o in
                    o.add("pending", stats.pending)
                    o.add("oldest_pending_at", stats.oldestPendingMs.map { Time.rfc3339(ms: $0) })
                    o.add("dead_letters", stats.deadLetters)
                })
            j.addRaw(
                "roster",
                JSONText.object { r in
                    r.add("patients", patients); r.add("appointments", appts)
                    r.add("last_sync_at", state.lastRosterSyncMs.map { Time.rfc3339(ms: $0) })
                })
            j.addRaw("alerts", JSONText.object { $0.add("active", alerts) })
            j.addRaw(
                "storage",
                JSONText.object { s in
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
            return HTTPRoutes.json(
                .serviceUnavailable,
                JSONText.object { j in
                    j.add("status", "unhealthy")
                    j.addRaw("reasons", "[" + reasons.map(JSONText.quote).joined(separator: ",") + "]")
                })
        }
        router.get("/metrics") { _, _ in
            Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(string: metrics.exposition())))
        }
        router.get("/api/v1/status") { _, _ in
            do { return HTTPRoutes.json(.ok, try statusJSON()) } catch {
                logger.error("http: status failed: \(error)")
                return HTTPRoutes.error(.internalServerError, code: "internal", message: "the status could not be read")
            }
        }
        StaffAPI(config: config, db: db, state: state, logger: logger, statusJSON: { try statusJSON() }, clock: state.clock).register(router)
        return router
    }
}
