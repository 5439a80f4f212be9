import Foundation
import Testing
@testable import EdgeCore

/// Property tests of the device-message decoder on mutated and random input (a seeded
/// generator, so a failure replays): it never traps, never hangs, and every rejection carries
/// one reason from the contract's word list with a detail a person can read.
@Suite("Device-message decoder under mutated and random input")
struct DecoderFuzzTests {
    /// SplitMix64: small, seedable, the same sequence on every run.
    struct Seeded: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    static let seeds: [(String, String)] = [
        (
            "clinic/demo/kiosk/k1/scan",
            #"{"scan_id": "k1-000001", "qr": "medic:6f1c2a9e-0000-4000-8000-000000000001:Zx9", "ts": "2026-11-29T10:01:00Z"}"#
        ),
        ("clinic/demo/room/sala-2/presence/p1", #"{"occupied": true, "msg_id": "m-1", "ts": "2026-11-29T10:01:00Z", "battery": 88}"#),
        ("clinic/demo/room/geladeira-vacinas/environment/env-1", #"{"temperature_c": 4.5, "humidity_pct": 41, "co2_ppm": 612, "msg_id": "e-1"}"#),
        ("clinic/demo/device/p1/status", #"{"state": "online", "type": "presence_sensor", "room_id": "sala-2", "fw": "1.4.2"}"#),
        (
            "clinic/demo/wearable/gw-1",
            #"{"msg_id": "w-1", "samples": [{"patient_id": "6f1c2a9e-0000-4000-8000-000000000001", "source": "garmin", "metric_type": "heart_rate", "#
                + #""value": 72, "unit": "bpm", "recorded_at": "2026-11-29T09:55:00Z"}]}"#
        ),
    ]
    static let interesting: [UInt8] = Array(#"{}[]":,\ 0123456789.-+eEtrufalsn"#.utf8) + [0x00, 0x1f, 0x7f, 0xc3, 0xa9, 0xff, 0xed, 0xa0, 0x80]

    static func mutate(_ bytes: [UInt8], _ rng: inout Seeded) -> [UInt8] {
        var b = bytes
        for _ in 0..<Int.random(in: 1...6, using: &rng) {
            let op = Int.random(in: 0..<5, using: &rng)
            let i = b.isEmpty ? 0 : Int.random(in: 0..<b.count, using: &rng)
            switch op {
            case 0 where !b.isEmpty: b[i] = interesting.randomElement(using: &rng)!
            case 1: b.insert(interesting.randomElement(using: &rng)!, at: i)
            case 2 where !b.isEmpty: b.remove(at: i)
            case 3 where b.count > 2: b = Array(b[..<i])  // truncate
            case 4: b.insert(contentsOf: Array(repeating: UInt8(ascii: "["), count: Int.random(in: 1...300, using: &rng)), at: i)  // deep nesting
            default: b.append(UInt8.random(in: 0...255, using: &rng))
            }
        }
        return b
    }

    static func check(_ m: DeviceMessage) -> String? {
        switch m {
        case .reject(_, _, _, _, let r):
            return r.detail.isEmpty ? "a rejection without detail (\(r.reason))" : nil
        case .kiosk(_, let d, let sid, let scan):
            if d.isEmpty || sid.isEmpty { return "kiosk without device or scan_id" }
            if case .failure(let r) = scan, r.detail.isEmpty { return "kiosk rejection without detail" }
            return nil
        case .presence(_, let d, _, _, _), .environment(_, let d, _, _, _), .status(let d, _, _, _):
            return DeviceTopic.isValidId(d) ? nil : "accepted with a bad device id \(d)"
        case .wearable(let g, let b):
            return DeviceTopic.isValidId(g) && b.valid.count + b.invalid.count <= 1000 ? nil : "wearable out of bounds"
        }
    }

    @Test("20,000 mutations of valid messages of every kind: no trap, every outcome well-formed")
    func mutatedValid() {
        var rng = Seeded(state: 0x6D65_6469_6365_6467)
        var outcomes: [String: Int] = [:]
        for n in 0..<20_000 {
            let (topic, text) = Self.seeds[n % Self.seeds.count]
            let payload = Self.mutate(Array(text.utf8), &rng)
            let m = DeviceMessage.decode(topic: topic, payload: payload, site: "demo")
            if let problem = Self.check(m) {
                Issue.record("\(problem) for \(String(decoding: payload, as: UTF8.self).prefix(200))")
                return
            }
            if case .reject(_, _, _, _, let r) = m { outcomes[r.reason.rawValue, default: 0] += 1 } else { outcomes["accepted", default: 0] += 1 }
        }
        // The mutations reach both sides and several distinct reasons.
        #expect((outcomes["accepted"] ?? 0) > 0)
        #expect(outcomes.keys.filter { $0 != "accepted" }.count >= 4, "reasons seen: \(outcomes)")
    }

    @Test("5,000 random byte strings and random topics: no trap, rejected with a reason")
    func randomBytes() {
        var rng = Seeded(state: 42)
        let topics = [
            "clinic/demo/kiosk/k1/scan", "clinic/demo/room/r/presence/d", "clinic/demo/wearable/g",
            "clinic/demo/device/d/status", "clinic/other/kiosk/k1/scan", "clinic/demo/kiosk/../scan", "", "clinic/demo/#",
        ]
        for _ in 0..<5_000 {
            let n = Int.random(in: 0...512, using: &rng)
            let payload = (0..<n).map { _ in UInt8.random(in: 0...255, using: &rng) }
            let topic = topics.randomElement(using: &rng)!
            let m = DeviceMessage.decode(topic: topic, payload: payload, site: "demo")
            if let problem = Self.check(m) { Issue.record("\(problem)"); return }
            if case .reject = m {
            } else if !(payload.first == UInt8(ascii: "{")) {
                Issue.record("random bytes not starting with { were accepted on \(topic)"); return
            }
        }
    }

    @Test("Deep nesting and a payload just over 64 KiB are refused with a reason, quickly enough to finish")
    func limits() {
        let deep = Array(repeating: UInt8(ascii: "["), count: 60_000)
        let m = DeviceMessage.decode(topic: "clinic/demo/room/r/presence/d", payload: deep, site: "demo")
        guard case .reject(_, _, _, _, let r) = m else { Issue.record("deep nesting accepted"); return }
        #expect(r.reason == .notJSON || r.reason == .notObject)
        let big = Array(#"{"occupied": true, "pad": ""#.utf8) + Array(repeating: UInt8(ascii: "x"), count: 65_536) + Array(#""}"#.utf8)
        guard case .reject(_, _, _, _, let r2) = DeviceMessage.decode(topic: "clinic/demo/room/r/presence/d", payload: big, site: "demo") else {
            Issue.record("oversized accepted"); return
        }
        #expect(r2.reason == .tooLarge)
    }
}
