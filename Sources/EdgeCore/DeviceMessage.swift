import Foundation

/// One device message after the pure checks (size, JSON, topic, payload rules), before
/// the ingest transaction. Pure: the daemon's decoder, tested against `devices/` examples.
public enum DeviceMessage: Sendable, Equatable {
    /// Dead-lettered only; `ackDevice`/`msgId` set when an error ack can be addressed.
    case reject(topic: String, kind: MessageKind, device: String?, msgId: String?, Rejection)
    case kiosk(topic: String, device: String, scanId: String, Result<KioskScan, Rejection>)
    case presence(room: String, device: String, msgId: String?, PresenceReading, raw: String)
    case environment(room: String, device: String, msgId: String?, EnvironmentReading, raw: String)
    case status(device: String, msgId: String?, DeviceStatus, raw: String)
    case wearable(gateway: String, WearableBatch)
}

extension DeviceMessage {

    public static func decode(topic rawTopic: String, payload: [UInt8], site: String) -> DeviceMessage {
        let parsed = DeviceTopic.parse(rawTopic, site: site)
        // Work out what the topic says first (kind, device), then the payload.
        let kind: MessageKind
        var device: String?
        switch parsed {
        case .ok(let t): kind = t.kind; device = t.deviceId
        case .badId(let k, let d): kind = k; device = d
        case .unknown: kind = .unknown
        }
        if payload.count > maxPayloadBytes {
            return .reject(
                topic: rawTopic, kind: kind, device: device, msgId: nil,
                Rejection(.tooLarge, "payload is \(payload.count) bytes; the limit is \(maxPayloadBytes)"))
        }
        let obj: [String: JSON]
        switch PayloadRules.object(payload) {
        case .failure(let r): return .reject(topic: rawTopic, kind: kind, device: device, msgId: nil, r)
        case .success(let o): obj = o
        }
        let idKey = kind == .kioskScan ? "scan_id" : "msg_id"
        let readableId: String? = (try? PayloadRules.msgId(obj, key: idKey).get()) ?? nil
        guard case .ok(let topic) = parsed else {
            let r =
                parsed == .unknown
                ? Rejection(.badTopic, "not a device topic of this appliance")
                : Rejection(.badTopic, "an id in the topic breaks [A-Za-z0-9_-]{1,64}")
            // A kiosk's scan_id is answered on its result topic, not acked: only msg_id acks.
            return .reject(topic: rawTopic, kind: kind, device: device, msgId: kind == .kioskScan ? nil : readableId, r)
        }
        let raw = String(decoding: payload, as: UTF8.self)
        switch topic {
        case .kioskScan(let d):
            guard let sid = readableId else {
                let r = PayloadRules.msgId(obj, key: "scan_id").failureValue ?? Rejection(.missingField, "scan_id is required")
                return .reject(topic: rawTopic, kind: kind, device: d, msgId: nil, r)
            }
            return .kiosk(topic: rawTopic, device: d, scanId: sid, PayloadRules.kioskScan(obj))
        case .presence(let room, let d):
            if case .failure(let r) = PayloadRules.msgId(obj) { return .reject(topic: rawTopic, kind: kind, device: d, msgId: nil, r) }
            switch PayloadRules.presence(obj) {
            case .failure(let r): return .reject(topic: rawTopic, kind: kind, device: d, msgId: readableId, r)
            case .success(let p): return .presence(room: room, device: d, msgId: readableId, p, raw: raw)
            }
        case .environment(let room, let d):
            if case .failure(let r) = PayloadRules.msgId(obj) { return .reject(topic: rawTopic, kind: kind, device: d, msgId: nil, r) }
            switch PayloadRules.environment(obj) {
            case .failure(let r): return .reject(topic: rawTopic, kind: kind, device: d, msgId: readableId, r)
            case .success(let e): return .environment(room: room, device: d, msgId: readableId, e, raw: raw)
            }
        case .deviceStatus(let d):
            if case .failure(let r) = PayloadRules.msgId(obj) { return .reject(topic: rawTopic, kind: kind, device: d, msgId: nil, r) }
            switch PayloadRules.deviceStatus(obj) {
            case .failure(let r): return .reject(topic: rawTopic, kind: kind, device: d, msgId: readableId, r)
            case .success(let s): return .status(device: d, msgId: readableId, s, raw: raw)
            }
        case .wearable(let g):
            switch PayloadRules.wearable(obj) {
            case .failure(let r): return .reject(topic: rawTopic, kind: kind, device: g, msgId: readableId, r)
            case .success(let b): return .wearable(gateway: g, b)
            }
        }
    }
}

extension Result {
    public var failureValue: Failure? { if case .failure(let f) = self { return f }; return nil }
}
