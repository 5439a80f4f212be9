import Foundation
import Testing
@testable import EdgeCore

/// The daemon's decoder against the example payloads shipped in `devices/` (their manifest
/// `devices/examples.json`), so the installer's docs and the code cannot drift apart.
@Suite("Device examples in devices/ decode as documented")
struct DeviceExamplesTests {
    struct Example: Sendable, CustomTestStringConvertible {
        let file: String, topic: String, expect: String, reason: String?
        let ack: JSON?, result: JSON?
        var testDescription: String { file }
    }

    static let root: URL = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    static let examples: [Example] = {
        guard let data = try? Data(contentsOf: root.appendingPathComponent("devices/examples.json")),
            let list = try? JSON.parse([UInt8](data)).arrayValue
        else { return [] }
        return list.compactMap { e in
            guard let f = e["file"]?.stringValue, let t = e["topic"]?.stringValue, let x = e["expect"]?.stringValue else { return nil }
            return Example(file: f, topic: t, expect: x, reason: e["reason"]?.stringValue, ack: e["ack"], result: e["result"])
        }
    }()

    @Test("the manifest lists the examples of every device kind")
    func manifest() {
        #expect(Self.examples.count >= 40)
        let kinds = Set(Self.examples.map { $0.topic.split(separator: "/")[2] })
        #expect(kinds.isSuperset(of: ["kiosk", "room", "wearable", "device"]))
    }

    @Test("each example is accepted or rejected with its documented reason", arguments: examples)
    func decode(_ e: Example) throws {
        let bytes = [UInt8](try Data(contentsOf: Self.root.appendingPathComponent("devices/" + e.file)))
        let m = DeviceMessage.decode(topic: e.topic, payload: bytes, site: "demo")
        switch m {
        case .reject(_, _, _, let msgId, let r):
            #expect(e.expect == "rejected", "\(e.file) was rejected: \(r.reason.rawValue) \(r.detail)")
            #expect(r.reason.rawValue == e.reason)
            if let ack = e.ack, !ack.isNull {
                #expect(ack["msg_id"]?.stringValue == msgId)
                #expect(ack["error"]?.stringValue == r.reason.rawValue)
            } else if e.ack != nil {
                #expect(msgId == nil, "\(e.file): no ack can be addressed")
            }
        case .kiosk(_, _, _, let scan):
            switch scan {
            case .success: #expect(e.expect == "accepted", "\(e.file) was accepted")
            case .failure(let r):
                #expect(e.expect == "rejected")
                #expect(r.reason.rawValue == e.reason)
                #expect(e.result?.stringValue == "invalid_request")
            }
        default:
            #expect(e.expect == "accepted", "\(e.file) was accepted")
        }
    }
}
