import EdgeCore
import EdgeMQTT
import Foundation
import Logging
import Synchronization

// Device simulators (issue 5 item 8): one MQTT connection per simulated device, each with its
// retained status and its will, behaving as the firmware described in `devices/*/README.md`
// does: kiosks that scan and resend a scan until its result, presence sensors that toggle and
// flicker, room monitors, a vaccine fridge that warms above 8 °C and recovers, wearable
// gateways that resend a batch until its ack. Used by `medic-edge-lab simulate`, the demo, the
// benchmarks and the integration tests; never by the daemon (docs/modules.md). This file: the
// settings, the events devices report, seeded randomness and simulated time.
//
// Time: every device has "simulated" intervals (a room monitor reads every 60 s, a gateway
// sends every 5 min); a rate multiplier R makes them R times shorter on the wall clock.
// Protocol timers (resend after 3 s / 10 s / 30 s) scale the same way, never below
// `SimSettings.minResendSeconds`.
//
// Privacy: a QR text is a credential. The simulator never prints, logs or emits it; events
// carry the scan id, the outcome and the kiosk's message only.

/// The device types `medic-edge simulate --type` knows.
public enum SimDeviceType: String, CaseIterable, Sendable, Hashable {
    case kiosk, presence, environment, fridge, wearable, status
}

public struct SimSettings: Sendable {
    public var host = "127.0.0.1"
    public var port = 1883
    public var site = "demo"
    public var username: String?
    public var password: String?
    /// Rate multiplier for every device type without its own entry in `rates`.
    public var rate: Double = 1
    public var rates: [SimDeviceType: Double] = [:]
    public var seed: UInt64 = UInt64.random(in: 1...UInt64.max)
    /// Resend timers never go below this (seconds, wall clock).
    public var minResendSeconds: Double = 0.5
    public var keepalive = 30
    /// Devices use persistent sessions (clean session = false), as their READMEs ask.
    public var cleanSession = false
    /// Occasionally send what real firmware gets wrong: a −127 probe reading, a torn QR read,
    /// a wearable sample from an unknown source. Off by default.
    public var faults = false
    /// Prepended to every MQTT client id (the device id stays the device id in topics).
    public var clientIdPrefix = ""

    public init(host: String = "127.0.0.1", port: Int = 1883, site: String = "demo", rate: Double = 1) {
        self.host = host; self.port = port; self.site = site; self.rate = rate
    }

    public func rate(for t: SimDeviceType) -> Double { max(0.001, rates[t] ?? rate) }
}

/// What a kiosk got back for one scan.
public struct KioskAnswer: Sendable {
    public var device: String
    public var scanId: String
    public var outcome: String
    /// The pt-BR text the kiosk shows (first name at most).
    public var message: String
    public var firstName: String?
    /// Publish → result, wall clock.
    public var millis: Double
    /// How many times the scan was published (1 = no resend).
    public var sends: Int
    /// What the scan was, as a label for people (`known`, `repeat`, `unknown`, `torn`, `given`); never the QR text.
    public var label: String
    public var result: JSON
}

/// What simulated devices report while they run.
public enum SimEvent: Sendable {
    case online(device: String)
    case connectionLost(device: String, code: Int32)
    case refused(device: String, reason: String)
    case kioskResult(KioskAnswer)
    case kioskGaveUp(device: String, scanId: String)
    /// An ack for a `msg_id` (error set when the appliance rejected the message).
    case acked(device: String, msgId: String, error: String?, sends: Int)
    case resent(device: String, key: String, sends: Int)
    case presence(device: String, room: String, occupied: Bool, people: Int)
    case environment(device: String, room: String, temperature: Double, humidity: Double, co2: Double)
    case fridge(device: String, room: String, temperature: Double, phase: String)
    case wearableBatch(device: String, msgId: String, samples: Int, invalid: Int)
    case rebooting(device: String)
    /// The appliance's retained `edge/status` as a kiosk sees it.
    case applianceStatus(JSON)
    case stopped(device: String)
}

public struct SimDeviceStats: Sendable, Equatable {
    public var device: String
    public var type: SimDeviceType
    /// Publishes of data messages (first sends and resends; not status messages).
    public var published = 0
    public var resent = 0
    public var acked = 0
    public var ackErrors = 0
    /// Messages still waiting for their ack or result.
    public var pending = 0
    public var results: [String: Int] = [:]
    public var connects = 0
}

public struct SimError: Error, CustomStringConvertible {
    public let description: String
    public init(_ d: String) { description = d }
}

// MARK: - Randomness and time

/// SplitMix64: a small seeded generator, so a run can be repeated with `--seed`.
public struct SimRandom: RandomNumberGenerator, Sendable {
    private var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

final class LockedRandom: Sendable {
    private let g: Mutex<SimRandom>
    init(seed: UInt64, salt: String) {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for b in salt.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
        g = Mutex(SimRandom(seed: seed ^ h))
    }
    func double(_ r: ClosedRange<Double>) -> Double { g.withLock { Double.random(in: r, using: &$0) } }
    func int(_ r: ClosedRange<Int>) -> Int { g.withLock { Int.random(in: r, using: &$0) } }
    func chance(_ p: Double) -> Bool { double(0...1) < p }
    func pick<T>(_ a: [T]) -> T { a[int(0...(a.count - 1))] }
    func hex(_ n: Int) -> String { (0..<n).map { _ in String(int(0...15), radix: 16) }.joined() }
    func uuid() -> String {
        let h = hex(32)
        let c = Array(h)
        return "\(String(c[0..<8]))-\(String(c[8..<12]))-4\(String(c[13..<16]))-8\(String(c[17..<20]))-\(String(c[20..<32]))"
    }
}

func uptime() -> Double { Double(DispatchTime.now().uptimeNanoseconds) / 1e9 }

/// Sleeps `simSeconds` of simulated time (wall = sim / rate). Throws on cancellation.
func simSleep(_ simSeconds: Double, rate: Double) async throws {
    try await Task.sleep(for: .milliseconds(max(1, Int(simSeconds / rate * 1000))))
}

func round1(_ x: Double) -> Double { (x * 10).rounded() / 10 }

/// A short tag unique to this run, so message ids never repeat across runs (the appliance
/// dedupes `(device, msg_id)` for at least 7 days).
func runTag() -> String {
    let s = String(UInt64(Date().timeIntervalSince1970 * 10), radix: 36)
    return String(s.suffix(7)) + String(Int.random(in: 0..<1296), radix: 36)
}

/// Shared state of a room: presence sensors write it, environment monitors read it (CO₂).
final class RoomModel: Sendable {
    private let occupants = Mutex<[String: Int]>([:])
    func set(_ device: String, people: Int) { occupants.withLock { $0[device] = people } }
    var people: Int { occupants.withLock { $0.values.max() ?? 0 } }
}
