import EdgeCore
import EdgeStore
import Foundation
import Hummingbird
import Logging

/// Reception routes (CONTRACT §4: session, agenda, check-ins, rooms, console).
/// Not built yet: see issue "The reception console". Until then these answer 501 with a
/// JSON error, so nothing pretends to work.
struct StaffAPI: Sendable {
    let config: EdgeConfig
    let db: AppDatabase
    let state: EdgeState
    let logger: Logger
    let statusJSON: @Sendable () throws -> String

    func register(_ router: Router<BasicRequestContext>) {
        let notYet: @Sendable (Request, BasicRequestContext) async throws -> Response = { _, _ in
            HTTPRoutes.error(.notImplemented, code: "not_implemented", message: "the reception console is not built yet")
        }
        router.post("/api/v1/session", use: notYet)
        router.delete("/api/v1/session", use: notYet)
        router.get("/api/v1/agenda", use: notYet)
        router.post("/api/v1/checkins", use: notYet)
        router.get("/api/v1/rooms", use: notYet)
    }
}
