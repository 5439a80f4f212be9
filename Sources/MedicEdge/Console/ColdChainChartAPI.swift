import EdgeCore
import EdgeStore
import Foundation
import Hummingbird

/// The daily chart (CONTRACT §6): `GET /api/v1/coldchain/{room_id}/chart?month=YYYY-MM[&format=csv]`,
/// staff. The rows are `ColdChainChart`'s (see docs/cold-chain.md, "How the chart is read").
extension StaffAPI {
    func chart(_ req: Request, room: String) async throws -> Response {
        let auth = try authenticate(req, changesState: false)
        guard case .ok = auth else { return auth.refusal! }
        guard let cold = config.rooms[room]?.coldChain else {
            return StaffAPI.failure(.notFound, "room_not_found", "Sala sem controle de temperatura de vacinas.")
        }
        let now = clock.nowMs()
        let zone = config.timeZone
        let month = req.uri.queryParameters.get("month") ?? String(LocalDay.dayString(now, zone: zone).prefix(7))
        let format = req.uri.queryParameters.get("format") ?? "json"
        guard format == "json" || format == "csv" else {
            return StaffAPI.failure(.badRequest, "bad_format", "Formato desconhecido: use format=json ou format=csv.")
        }
        guard let window = try? ColdChainChart.readingWindow(month: month, timeZone: zone, workday: cold.workday) else {
            return StaffAPI.failure(.badRequest, "bad_month", "Informe o mês como AAAA-MM (por exemplo 2026-12).")
        }
        let (readings, excursions) = try await db.read { tx in
            (
                try tx.coldReadings(room: room, fromMs: window.fromMs, toMs: window.toMs),
                try tx.excursions(room: room, overlappingFrom: window.fromMs, to: window.toMs)
            )
        }
        let chart = try ColdChainChart.month(
            room: room, month: month, timeZone: zone, workday: cold.workday, readings: readings, excursions: excursions, nowMs: now)
        guard format == "csv" else { return HTTPRoutes.json(.ok, ColdChainChart.json(chart, nowMs: now)) }
        var h = HTTPFields()
        h[.contentType] = "text/csv; charset=utf-8"
        h[.cacheControl] = "no-store"
        // The room key is [a-z0-9_-] (config rule), safe in a file name.
        h[.contentDisposition] = "attachment; filename=\"temperaturas-\(room)-\(month).csv\""
        return Response(status: .ok, headers: h, body: .init(byteBuffer: ByteBuffer(string: ColdChainChart.csv(chart, nowMs: now))))
    }
}
