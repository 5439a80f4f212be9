import EdgeCore
import EdgeStore
import Foundation
import Hummingbird

/// The cold chain's staff routes (CONTRACT §6): the excursions, and their acknowledgement
/// with the action taken (recorded with who and when, in the staff audit too).
extension StaffAPI {
    func registerColdChain<Context: RequestContext>(_ router: Router<Context>) {
        router.get("/api/v1/coldchain/excursions") { req, _ in await self.guarded("excursions") { try await self.excursions(req) } }
        router.get("/api/v1/coldchain/:room/chart") { req, ctx in
            await self.guarded("chart") { try await self.chart(req, room: ctx.parameters.get("room") ?? "") }
        }
        router.post("/api/v1/coldchain/excursions/:id/ack") { req, ctx in
            await self.guarded("excursion ack") { try await self.acknowledge(req, id: ctx.parameters.get("id") ?? "") }
        }
    }

    /// Open excursions (`?open=true`), else those of the last 30 days (and any still open), newest first.
    func excursions(_ req: Request) async throws -> Response {
        let auth = try authenticate(req, changesState: false)
        guard case .ok = auth else { return auth.refusal! }
        let openOnly = req.uri.queryParameters.get("open").map { $0 == "true" || $0 == "1" } ?? false
        let now = clock.nowMs()
        let rows = try await db.read { try $0.excursions(sinceMs: now - 30 * 86_400_000, openOnly: openOnly) }
        let config = self.config
        let list = rows.map { Self.excursionJSON($0, config: config, nowMs: now) }
        return HTTPRoutes.json(.ok, "{\"excursions\":[" + list.joined(separator: ",") + "]}")
    }

    static func excursionJSON(_ e: ExcursionRecord, config: EdgeConfig, nowMs: Int64) -> String {
        ColdChainJSON.excursion(e, roomName: config.rooms[e.room]?.name ?? e.room, nowMs: nowMs)
    }

    /// `{"action"}` (1–500 characters) → 201; 409 when already acknowledged; 404 unknown.
    func acknowledge(_ req: Request, id: String) async throws -> Response {
        let (session, body): (StaffAccounts.Session, [UInt8])
        switch try await signedBody(req) {
        case .ok(let s, let b): (session, body) = (s, b)
        case .refused(let r): return r
        }
        guard let doc = try? JSON.parse(body), let raw = doc["action"]?.stringValue else {
            return StaffAPI.failure(.badRequest, "bad_request", "Envie JSON: {\"action\": \"ação tomada\"}.")
        }
        let action = raw.trimmingCharacters(in: .whitespacesAndNewlines)
        guard (1...500).contains(action.count) else {
            return StaffAPI.failure(.badRequest, "bad_action", "Descreva a ação tomada (de 1 a 500 caracteres).")
        }
        let now = clock.nowMs()
        let desk = ColdChainDesk(config: config, ids: .shared, anchors: state.coldAnchors)
        let name = session.name
        enum Outcome { case done(ExcursionRecord), unknown, already(ExcursionRecord) }
        let outcome: Outcome = try await db.write { tx in
            guard let e = try tx.excursion(id: id) else { return .unknown }
            guard try tx.acknowledgeExcursion(id: id, by: name, atMs: now, action: action) else { return .already(e) }
            try tx.audit(name: name, action: "coldchain_ack", target: id, nowMs: now)
            try desk.acknowledgedEvent(tx, e, by: name, action: action, nowMs: now)
            return .done(e)
        }
        switch outcome {
        case .unknown:
            return StaffAPI.failure(.notFound, "excursion_not_found", "Excursão não encontrada.")
        case .already(let e):
            let who = e.ackBy ?? "outra pessoa"
            let when = e.ackMs.map { " às " + KioskMessages.clock($0, zone: config.timeZone) } ?? ""
            return StaffAPI.failure(.conflict, "already_acknowledged", "Esta excursão já foi registrada por \(who)\(when).")
        case .done(let e):
            logger.info("cold chain: excursion \(e.id) of \(e.room) acknowledged by \(name)")
            return HTTPRoutes.json(
                .created,
                JSONText.object { j in
                    j.add("id", e.id); j.add("acknowledged_by", name); j.add("acknowledged_at", Time.rfc3339(ms: now)); j.add("action", action)
                })
        }
    }
}

/// An excursion as the staff routes show it (CONTRACT §6's fields, plus `room_name` and `alarm_at`).
enum ColdChainJSON {
    static func excursion(_ e: ExcursionRecord, roomName: String, nowMs: Int64 = Time.nowMs()) -> String {
        JSONText.object { j in
            j.add("id", e.id); j.add("room_id", e.room); j.add("room_name", roomName)
            j.add("state", e.state); j.add("started_at", Time.rfc3339(ms: e.startedMs))
            j.add("ended_at", e.endedMs.map { Time.rfc3339(ms: $0) }); j.add("duration_seconds", e.durationSeconds(nowMs: nowMs))
            j.add("min_c", e.minC); j.add("max_c", e.maxC); j.add("alarm_at", e.alarmMs.map { Time.rfc3339(ms: $0) })
            j.add("acknowledged_by", e.ackBy); j.add("acknowledged_at", e.ackMs.map { Time.rfc3339(ms: $0) }); j.add("action", e.action)
        }
    }
}
