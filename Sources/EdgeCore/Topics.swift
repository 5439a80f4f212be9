import Foundation

/// The kind of a device message, as counted in metrics (CONTRACT §1).
public enum MessageKind: String, Sendable, CaseIterable {
    case kioskScan = "kiosk_scan", presence, environment, wearable, deviceStatus = "device_status", unknown
}

/// Why a device message was rejected (CONTRACT §1's word list; devices parse these).
public enum RejectReason: String, Sendable, CaseIterable, Error {
    case tooLarge = "too_large", notJSON = "not_json", notObject = "not_object", badTopic = "bad_topic"
    case missingField = "missing_field", wrongType = "wrong_type", outOfRange = "out_of_range"
    case unknownValue = "unknown_value", storageFull = "storage_full"
}

/// A device topic under `clinic/{site}/`, parsed.
public enum DeviceTopic: Sendable, Equatable {
    case kioskScan(device: String)
    case presence(room: String, device: String)
    case environment(room: String, device: String)
    case wearable(gateway: String)
    case deviceStatus(device: String)

    public var kind: MessageKind {
        switch self {
        case .kioskScan: .kioskScan
        case .presence: .presence
        case .environment: .environment
        case .wearable: .wearable
        case .deviceStatus: .deviceStatus
        }
    }
    /// The device that sent it (the gateway for wearables).
    public var deviceId: String {
        switch self {
        case .kioskScan(let d), .presence(_, let d), .environment(_, let d), .wearable(let d), .deviceStatus(let d): d
        }
    }
    public var roomKey: String? {
        switch self {
        case .presence(let r, _), .environment(let r, _): r
        default: nil
        }
    }

    /// `[A-Za-z0-9_-]{1,64}`
    public static func isValidId(_ s: Substring) -> Bool {
        guard !s.isEmpty, s.utf8.count <= 64 else { return false }
        for b in s.utf8 {
            switch b {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                 UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "_"), UInt8(ascii: "-"): continue
            default: return false
            }
        }
        return true
    }
    public static func isValidId(_ s: String) -> Bool { isValidId(Substring(s)) }

    /// The subscriptions the daemon makes: device topics only, never what it publishes itself.
    public static func subscriptions(site: String) -> [String] {
        ["clinic/\(site)/kiosk/+/scan", "clinic/\(site)/room/+/presence/+", "clinic/\(site)/room/+/environment/+",
         "clinic/\(site)/wearable/+", "clinic/\(site)/device/+/status"]
    }

    public enum ParseResult: Sendable, Equatable {
        case ok(DeviceTopic)
        /// The topic has a known shape but an id breaks the id pattern. Carries the kind and
        /// the raw device segment (for a readable ack address when it is valid).
        case badId(kind: MessageKind, device: String?)
        /// Not a topic this appliance handles.
        case unknown
    }

    public static func parse(_ topic: String, site: String) -> ParseResult {
        let parts = topic.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count >= 3, parts[0] == "clinic", parts[1] == Substring(site) else { return .unknown }
        let rest = Array(parts[2...])
        func ids(_ kind: MessageKind, _ segs: [Substring], device: Substring, make: () -> DeviceTopic) -> ParseResult {
            if segs.allSatisfy({ isValidId($0) }) { return .ok(make()) }
            return .badId(kind: kind, device: isValidId(device) ? String(device) : nil)
        }
        switch rest.count {
        case 3 where rest[0] == "kiosk" && rest[2] == "scan":
            return ids(.kioskScan, [rest[1]], device: rest[1]) { .kioskScan(device: String(rest[1])) }
        case 4 where rest[0] == "room" && rest[2] == "presence":
            return ids(.presence, [rest[1], rest[3]], device: rest[3]) { .presence(room: String(rest[1]), device: String(rest[3])) }
        case 4 where rest[0] == "room" && rest[2] == "environment":
            return ids(.environment, [rest[1], rest[3]], device: rest[3]) { .environment(room: String(rest[1]), device: String(rest[3])) }
        case 2 where rest[0] == "wearable":
            return ids(.wearable, [rest[1]], device: rest[1]) { .wearable(gateway: String(rest[1])) }
        case 3 where rest[0] == "device" && rest[2] == "status":
            return ids(.deviceStatus, [rest[1]], device: rest[1]) { .deviceStatus(device: String(rest[1])) }
        default:
            return .unknown
        }
    }

    public static func ackTopic(site: String, device: String) -> String { "clinic/\(site)/device/\(device)/ack" }
    public static func resultTopic(site: String, device: String) -> String { "clinic/\(site)/kiosk/\(device)/result" }
    public static func edgeStatusTopic(site: String) -> String { "clinic/\(site)/edge/status" }
}
