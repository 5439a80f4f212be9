import Foundation
import Testing

/// Issue 13: one owner per table. Only `Sources/EdgeStore` speaks SQL or imports GRDB; every
/// other module calls the store's methods named for their intent.
@Suite("Architecture: SQL lives in EdgeStore only")
struct ArchitectureTests {
    /// The package's root, from this file's path (Tests/EdgeCoreTests/ArchitectureTests.swift).
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// What marks SQL (or the SQL library) in Swift source.
    static let markers = ["sql:", "SELECT ", "INSERT ", "UPDATE ", "DELETE FROM", "import GRDB"]

    /// `file:line: text` of every line under `Sources/` outside `Sources/EdgeStore` with a marker.
    static func offenders() throws -> [String] {
        let sources = root.appendingPathComponent("Sources")
        guard let walk = FileManager.default.enumerator(at: sources, includingPropertiesForKeys: nil) else { return ["Sources/ not found"] }
        var out: [String] = []
        for case let url as URL in walk where url.pathExtension == "swift" {
            let rel = String(url.path.dropFirst(root.path.count + 1))
            if rel.hasPrefix("Sources/EdgeStore/") { continue }
            let lines = try String(contentsOf: url, encoding: .utf8).components(separatedBy: "\n")
            for (i, line) in lines.enumerated() where markers.contains(where: { line.contains($0) }) {
                out.append("\(rel):\(i + 1): \(line.trimmingCharacters(in: .whitespaces))")
            }
        }
        return out.sorted()
    }

    @Test("Given the sources, when searched for SQL and `import GRDB`, then none is found outside Sources/EdgeStore")
    func noSQLOutsideTheStore() throws {
        let found = try Self.offenders()
        #expect(FileManager.default.fileExists(atPath: Self.root.appendingPathComponent("Sources/EdgeStore").path))
        let list = found.joined(separator: "\n")
        #expect(found.count == 0, "SQL outside Sources/EdgeStore (\(found.count) lines):\n\(list)")
    }
}
