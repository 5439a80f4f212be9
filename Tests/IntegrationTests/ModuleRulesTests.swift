import EdgeTestSupport
import Foundation
import Testing

/// The house rules of docs/modules.md, checked: each target imports only what its row allows,
/// the daemon imports nothing of the lab, and the daemon's built binary carries no lab code.
@Suite("Module rules (docs/modules.md)")
struct ModuleRulesTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The system modules any target may import.
    static let system: Set<String> = ["Foundation", "Dispatch", "Glibc", "Darwin", "Synchronization"]
    /// The lab: the daemon's targets may import none of these.
    static let lab: Set<String> = ["EdgeLab", "EdgeSimulators", "EdgeTestSupport", "CloudStub"]
    /// The daemon's targets (the `medic-edge` executable and what it links).
    static let daemon: Set<String> = ["medic-edge", "MedicEdge", "EdgeCore", "EdgeStore", "EdgeMQTT", "EdgeHTTPClient"]

    /// Folder → what its Swift files may import (besides `system`): the "may import" column.
    static let allowed: [(folder: String, target: String, may: Set<String>)] = [
        ("Sources/EdgeCore", "EdgeCore", ["Crypto", "Yams"]),
        ("Sources/EdgeStore", "EdgeStore", ["EdgeCore", "GRDB", "GRDBSQLite"]),
        ("Sources/EdgeMQTT", "EdgeMQTT", ["CMosquitto", "Logging"]),
        ("Sources/EdgeHTTPClient", "EdgeHTTPClient", ["CCurl"]),
        (
            "Sources/MedicEdge", "MedicEdge",
            [
                "EdgeCore", "EdgeStore", "EdgeMQTT", "EdgeHTTPClient", "CLibCrypto", "ArgumentParser", "Logging", "Metrics",
                "CoreMetrics", "Prometheus", "ServiceLifecycle", "Hummingbird", "HummingbirdTLS", "NIOCore", "NIOSSL", "Crypto",
            ]
        ),
        ("Sources/medic-edge", "medic-edge", ["MedicEdge"]),
        ("Sources/CloudStub", "CloudStub", ["Logging", "NIOCore", "NIOPosix", "NIOHTTP1"]),
        ("devices", "EdgeSimulators", ["EdgeCore", "EdgeMQTT", "Logging"]),
        ("Sources/EdgeTestSupport", "EdgeTestSupport", ["EdgeCore", "EdgeMQTT", "EdgeHTTPClient", "CloudStub", "Logging"]),
        (
            "Sources/EdgeLab", "EdgeLab",
            [
                "EdgeCore", "EdgeStore", "EdgeMQTT", "EdgeHTTPClient", "CloudStub", "EdgeTestSupport", "EdgeSimulators",
                "ArgumentParser", "Logging",
            ]
        ),
        ("Sources/medic-edge-lab", "medic-edge-lab", ["EdgeLab"]),
    ]

    /// `import X` lines of every Swift file under a folder: (file:line, module).
    static func imports(under folder: String) throws -> [(String, String)] {
        let base = root.appendingPathComponent(folder)
        guard let files = FileManager.default.enumerator(atPath: base.path) else { return [] }
        var out: [(String, String)] = []
        for case let rel as String in files where rel.hasSuffix(".swift") {
            let text = try String(contentsOf: base.appendingPathComponent(rel), encoding: .utf8)
            for (n, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
                var words = line.split(separator: " ").map(String.init)
                while let w = words.first, w.hasPrefix("@") || ["public", "internal", "package", "private"].contains(w) { words.removeFirst() }
                guard words.count >= 2, words[0] == "import" else { continue }
                // `import struct Foo.Bar`, `import Foo.Bar`: the module is the first path component.
                let path =
                    words.count >= 3 && ["struct", "class", "enum", "protocol", "func", "var", "typealias"].contains(words[1]) ? words[2] : words[1]
                out.append(("\(folder)/\(rel):\(n + 1)", String(path.split(separator: ".")[0])))
            }
        }
        return out
    }

    @Test("Every target imports only what docs/modules.md allows; the daemon's targets import nothing of the lab")
    func importsFollowTheTable() throws {
        var broken: [String] = []
        var seen = 0
        for rule in Self.allowed {
            let found = try Self.imports(under: rule.folder)
            #expect(!found.isEmpty, "no Swift file found under \(rule.folder)")
            seen += found.count
            for (place, module) in found where !Self.system.contains(module) && !rule.may.contains(module) {
                broken.append("\(place): \(rule.target) imports \(module), which its row in docs/modules.md does not allow")
            }
            if Self.daemon.contains(rule.target) {
                #expect(rule.may.isDisjoint(with: Self.lab), "the table itself lets the daemon's \(rule.target) import the lab")
            }
        }
        #expect(broken.isEmpty, "\(broken.joined(separator: "\n"))")
        #expect(seen > 100)
        // Every target folder is in the table (a new target gets a row).
        let folders = try FileManager.default.contentsOfDirectory(atPath: Self.root.appendingPathComponent("Sources").path)
            .filter { !$0.hasPrefix("C") || $0 == "CloudStub" }
        for f in folders { #expect(Self.allowed.contains { $0.folder == "Sources/\(f)" }, "Sources/\(f) has no row in the table") }
    }

    @Test("The daemon's built binary carries no code of the lab (no CloudStub, EdgeLab, EdgeSimulators or EdgeTestSupport symbol)")
    func daemonBinaryHasNoLab() throws {
        let path = Harness.binaryPath()
        try #require(path.hasSuffix("/medic-edge"), "medic-edge is not built beside the tests (swift build --build-tests)")
        let bytes = try Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped)
        // Swift mangles a module name as its length and its name: `9MedicEdge`, `7EdgeLab`.
        func carries(_ module: String) -> Bool { bytes.range(of: Data("\(module.utf8.count)\(module)".utf8)) != nil }
        #expect(carries("MedicEdge"), "the check itself is broken: no MedicEdge symbol found in \(path)")
        for module in Self.lab.sorted() { #expect(!carries(module), "\(path) carries \(module) code") }
    }
}
