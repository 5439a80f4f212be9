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
                UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "_"), UInt8(ascii: "-"):
                continue
            default: return false
            }
        }
        return true
    }
    public static func isValidId(_ s: String) -> Bool { isValidId(Substring(s)) }

    /// The subscriptions the daemon makes: device topics only, never what it publishes itself.
    public static func subscriptions(site: String) -> [String] {
        [
            "clinic/\(site)/kiosk/+/scan", "clinic/\(site)/room/+/presence/+", "clinic/\(site)/room/+/environment/+",
            "clinic/\(site)/wearable/+", "clinic/\(site)/device/+/status",
        ]
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
        // Runs for every device message (on the network thread): the segments are found in one
        // pass over the bytes, as substrings of the topic (one small array, no copies).
        let u = topic.utf8
        var parts: [Substring] = []
        parts.reserveCapacity(6)
        var start = u.startIndex, i = u.startIndex
        while i != u.endIndex {
            if u[i] == UInt8(ascii: "/") {
                if parts.count == 5 { return .unknown }  // no device topic has more than 6 levels
                parts.append(topic[start..<i])
                start = u.index(after: i)
            }
            i = u.index(after: i)
        }
        parts.append(topic[start..<u.endIndex])
        guard parts.count >= 3, parts[0] == "clinic", parts[1] == site[...] else { return .unknown }
        /// The ids must be valid; a bad one names the device only when the device's own id is fine.
        func ids(_ kind: MessageKind, device: Substring, also other: Substring? = nil, make: () -> DeviceTopic) -> ParseResult {
            let deviceOK = isValidId(device)
            if deviceOK, other.map({ isValidId($0) }) ?? true { return .ok(make()) }
            return .badId(kind: kind, device: deviceOK ? String(device) : nil)
        }
        switch parts.count - 2 {
        case 3 where parts[2] == "kiosk" && parts[4] == "scan":
            return ids(.kioskScan, device: parts[3]) { .kioskScan(device: String(parts[3])) }
        case 4 where parts[2] == "room" && parts[4] == "presence":
            return ids(.presence, device: parts[5], also: parts[3]) { .presence(room: String(parts[3]), device: String(parts[5])) }
        case 4 where parts[2] == "room" && parts[4] == "environment":
            return ids(.environment, device: parts[5], also: parts[3]) { .environment(room: String(parts[3]), device: String(parts[5])) }
        case 2 where parts[2] == "wearable":
            return ids(.wearable, device: parts[3]) { .wearable(gateway: String(parts[3])) }
        case 3 where parts[2] == "device" && parts[4] == "status":
            return ids(.deviceStatus, device: parts[3]) { .deviceStatus(device: String(parts[3])) }
        default:
            return .unknown
        }
    }

    public static func ackTopic(site: String, device: String) -> String { "clinic/\(site)/device/\(device)/ack" }
    public static func resultTopic(site: String, device: String) -> String { "clinic/\(site)/kiosk/\(device)/result" }
    public static func edgeStatusTopic(site: String) -> String { "clinic/\(site)/edge/status" }
}
