import Foundation
import Testing
@testable import EdgeCore

/// Small helpers shared by the EdgeCore suites (a clinic day in numbers).
enum Clinic {
    static let saoPaulo = TimeZone(identifier: "America/Sao_Paulo")!
    /// 2026-11-29T13:30:00Z — Maria's acupuncture with Dr. Erick, 10:30 in São Paulo.
    static let mariaStartMs: Int64 = 1_795_959_000_000
    static let minute: Int64 = 60_000
    static let hour: Int64 = 3_600_000
}

/// A temporary folder for config files and secrets; removed by `cleanup()`.
struct TempDir {
    let path: String
    init() throws {
        path =
            FileManager.default.temporaryDirectory
            .appendingPathComponent("edgecore-tests-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    @discardableResult
    func write(_ name: String, _ text: String) throws -> String {
        let p = (path as NSString).appendingPathComponent(name)
        try text.write(toFile: p, atomically: true, encoding: .utf8)
        return p
    }
    func cleanup() { try? FileManager.default.removeItem(atPath: path) }
}

/// Parses JSON text that the test knows to be an object.
func obj(_ text: String, sourceLocation: SourceLocation = #_sourceLocation) -> [String: JSON] {
    switch PayloadRules.object(Array(text.utf8)) {
    case .success(let o): return o
    case .failure(let r):
        Issue.record("test fixture is not a JSON object: \(r)", sourceLocation: sourceLocation)
        return [:]
    }
}

extension Result {
    var failureValue: Failure? { if case .failure(let f) = self { return f }; return nil }
    var successValue: Success? { if case .success(let s) = self { return s }; return nil }
}
