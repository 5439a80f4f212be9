import Foundation

/// The most a device payload may be (CONTRACT §1): bigger is rejected unparsed.
public let maxPayloadBytes = 64 * 1024
public let maxQRBytes = 512

public struct Rejection: Error, Sendable, Equatable {
    public var reason: RejectReason
    /// For the technician: which field and why. Never contains payload text.
    public var detail: String
    public init(_ reason: RejectReason, _ detail: String) { self.reason = reason; self.detail = detail }
}

public enum EnvironmentMetric: String, Sendable, CaseIterable {
    case temperatureC = "temperature_c", humidityPct = "humidity_pct", co2Ppm = "co2_ppm"
    public var range: ClosedRange<Double> {
        switch self {
        case .temperatureC: -40...85
        case .humidityPct: 0...100
        case .co2Ppm: 0...10000
        }
    }
    /// The unit the device sends it in (CONTRACT §1.4), as shown to people.
    public var unit: String {
        switch self {
        case .temperatureC: "°C"
        case .humidityPct: "%"
        case .co2Ppm: "ppm"
        }
    }
    public static var allNames: [String] { allCases.map(\.rawValue) }
}

public enum DeviceType: String, Sendable, CaseIterable {
    case checkinKiosk = "checkin_kiosk", presenceSensor = "presence_sensor", environment, wearableGateway = "wearable_gateway"
}

public struct KioskScan: Sendable, Equatable {
    public var scanId: String
    /// The scanned text: a credential. Hashed at once, never stored, logged or forwarded.
    public var qr: String
    public var ts: String?
}
public struct PresenceReading: Sendable, Equatable {
    public var occupied: Bool
    public var people: Int?
    public var ts: String?
}
public struct EnvironmentReading: Sendable, Equatable {
    public var values: [EnvironmentMetric: Double]
    public var ts: String?
}
public struct WearableSample: Sendable, Equatable {
    public var patientId: String, source: String, metricType: String, value: Double, unit: String, recordedAt: String
    /// The sample's JSON as received (unknown fields kept).
    public var raw: JSON
}
public struct WearableBatch: Sendable, Equatable {
    public var msgId: String
    public var valid: [WearableSample]
    public var invalid: [Rejection]
}
public struct DeviceStatus: Sendable, Equatable {
    public var online: Bool
    public var type: DeviceType?
    public var roomId: String?
    public var fw: String?
}

/// Pure validation of device payloads (CONTRACT §1.1–1.6).
public enum PayloadRules {
    public static let wearableSources: Set<String> = ["google_fit", "apple_health", "fitbit", "garmin", "whoop"]
    public static let wearableMetrics: Set<String> = ["steps", "heart_rate", "sleep", "stress", "spo2", "hrv"]

    /// Parses a payload into a JSON object, or says why not.
    public static func object(_ bytes: [UInt8]) -> Result<[String: JSON], Rejection> {
        if bytes.count > maxPayloadBytes { return .failure(Rejection(.tooLarge, "payload is \(bytes.count) bytes; the limit is \(maxPayloadBytes)")) }
        let v: JSON
        do { v = try JSON.parse(bytes) } catch {
            return .failure(Rejection(.notJSON, "payload is not valid UTF-8 JSON (\(error.message) at byte \(error.offset))"))
        }
        guard case .object(let o) = v else { return .failure(Rejection(.notObject, "payload must be one JSON object")) }
        return .success(o)
    }

    /// A readable `msg_id` (1–64 chars), nil when absent; a rejection when present but unusable.
    public static func msgId(_ o: [String: JSON], key: String = "msg_id") -> Result<String?, Rejection> {
        guard let v = o[key], !v.isNull else { return .success(nil) }
        guard let s = v.stringValue else { return .failure(Rejection(.wrongType, "\(key) must be a string")) }
        guard !s.isEmpty, s.count <= 64 else { return .failure(Rejection(.outOfRange, "\(key) must be 1-64 characters")) }
        return .success(s)
    }

    static func optionalTs(_ o: [String: JSON]) throws(Rejection) -> String? {
        guard let v = o["ts"], !v.isNull else { return nil }
        guard let s = v.stringValue, Time.parseMs(s) != nil else { throw Rejection(.wrongType, "ts must be an RFC 3339 time") }
        return s
    }

    public static func kioskScan(_ o: [String: JSON]) -> Result<KioskScan, Rejection> {
        guard let sv = o["scan_id"], !sv.isNull else { return .failure(Rejection(.missingField, "scan_id is required")) }
        switch msgId(o, key: "scan_id") {
        case .failure(let r): return .failure(r)
        case .success(let sid):
            guard let sid else { return .failure(Rejection(.missingField, "scan_id is required")) }
            guard let qv = o["qr"], !qv.isNull else { return .failure(Rejection(.missingField, "qr is required")) }
            guard let qr = qv.stringValue else { return .failure(Rejection(.wrongType, "qr must be a string")) }
            guard !qr.isEmpty, qr.utf8.count <= maxQRBytes else { return .failure(Rejection(.outOfRange, "qr must be 1-\(maxQRBytes) bytes")) }
            do { return .success(KioskScan(scanId: sid, qr: qr, ts: try optionalTs(o))) } catch { return .failure(error) }
        }
    }

    public static func presence(_ o: [String: JSON]) -> Result<PresenceReading, Rejection> {
        guard let ov = o["occupied"], !ov.isNull else { return .failure(Rejection(.missingField, "occupied is required")) }
        guard let occ = ov.boolValue else { return .failure(Rejection(.wrongType, "occupied must be true or false")) }
        var people: Int?
        if let pv = o["people"], !pv.isNull {
            guard let d = pv.doubleValue, d == d.rounded() else { return .failure(Rejection(.wrongType, "people must be a whole number")) }
            guard d >= 0, d <= 10000 else { return .failure(Rejection(.outOfRange, "people must be 0-10000")) }
            people = Int(d)
        }
        do { return .success(PresenceReading(occupied: occ, people: people, ts: try optionalTs(o))) } catch { return .failure(error) }
    }

    public static func environment(_ o: [String: JSON]) -> Result<EnvironmentReading, Rejection> {
        var values: [EnvironmentMetric: Double] = [:]
        for m in EnvironmentMetric.allCases {
            guard let v = o[m.rawValue], !v.isNull else { continue }
            guard let d = v.doubleValue else { return .failure(Rejection(.wrongType, "\(m.rawValue) must be a number")) }
            guard m.range.contains(d) else {
                return .failure(
                    Rejection(.outOfRange, "\(m.rawValue) must be \(JSONText.number(m.range.lowerBound))...\(JSONText.number(m.range.upperBound))"))
            }
            values[m] = d
        }
        guard !values.isEmpty else {
            return .failure(Rejection(.missingField, "needs at least one of temperature_c, humidity_pct, co2_ppm"))
        }
        do { return .success(EnvironmentReading(values: values, ts: try optionalTs(o))) } catch { return .failure(error) }
    }

    public static func deviceStatus(_ o: [String: JSON]) -> Result<DeviceStatus, Rejection> {
        guard let sv = o["state"], !sv.isNull else { return .failure(Rejection(.missingField, "state is required")) }
        guard let s = sv.stringValue else { return .failure(Rejection(.wrongType, "state must be a string")) }
        guard s == "online" || s == "offline" else { return .failure(Rejection(.unknownValue, "state must be online or offline")) }
        var st = DeviceStatus(online: s == "online")
        if let tv = o["type"], !tv.isNull {
            guard let t = tv.stringValue else { return .failure(Rejection(.wrongType, "type must be a string")) }
            guard let dt = DeviceType(rawValue: t) else {
                return .failure(Rejection(.unknownValue, "type must be one of checkin_kiosk, presence_sensor, environment, wearable_gateway"))
            }
            st.type = dt
        }
        if let rv = o["room_id"], !rv.isNull {
            guard let r = rv.stringValue else { return .failure(Rejection(.wrongType, "room_id must be a string")) }
            guard DeviceTopic.isValidId(r) else { return .failure(Rejection(.outOfRange, "room_id must match [A-Za-z0-9_-]{1,64}")) }
            st.roomId = r
        }
        if let fv = o["fw"], !fv.isNull {
            guard let f = fv.stringValue else { return .failure(Rejection(.wrongType, "fw must be a string")) }
            st.fw = String(f.prefix(64))
        }
        return .success(st)
    }

    public static func wearableSample(_ v: JSON) -> Result<WearableSample, Rejection> {
        guard let o = v.objectValue else { return .failure(Rejection(.wrongType, "a sample must be an object")) }
        func str(_ k: String) throws(Rejection) -> String {
            guard let x = o[k], !x.isNull else { throw Rejection(.missingField, "sample.\(k) is required") }
            guard let s = x.stringValue else { throw Rejection(.wrongType, "sample.\(k) must be a string") }
            return s
        }
        do {
            let pid = try str("patient_id")
            guard UUID(uuidString: pid) != nil else { return .failure(Rejection(.wrongType, "sample.patient_id must be a UUID")) }
            let source = try str("source")
            guard wearableSources.contains(source) else { return .failure(Rejection(.unknownValue, "sample.source is not a known source")) }
            let metric = try str("metric_type")
            guard wearableMetrics.contains(metric) else { return .failure(Rejection(.unknownValue, "sample.metric_type is not a known metric")) }
            guard let vv = o["value"], !vv.isNull else { return .failure(Rejection(.missingField, "sample.value is required")) }
            guard let value = vv.doubleValue else { return .failure(Rejection(.wrongType, "sample.value must be a number")) }
            let unit = try str("unit")
            let rec = try str("recorded_at")
            guard Time.parseMs(rec) != nil else { return .failure(Rejection(.wrongType, "sample.recorded_at must be an RFC 3339 time")) }
            return .success(
                WearableSample(patientId: pid.lowercased(), source: source, metricType: metric, value: value, unit: unit, recordedAt: rec, raw: v))
        } catch { return .failure(error) }
    }

    /// A wearable batch: the message is rejected only when it is unusable as a whole
    /// (no msg_id, no samples array, too many, or no valid sample at all).
    public static func wearable(_ o: [String: JSON]) -> Result<WearableBatch, Rejection> {
        let mid: String
        switch msgId(o) {
        case .failure(let r): return .failure(r)
        case .success(nil): return .failure(Rejection(.missingField, "msg_id is required for wearables"))
        case .success(let m?): mid = m
        }
        guard let sv = o["samples"], !sv.isNull else { return .failure(Rejection(.missingField, "samples is required")) }
        guard let arr = sv.arrayValue else { return .failure(Rejection(.wrongType, "samples must be an array")) }
        guard (1...1000).contains(arr.count) else { return .failure(Rejection(.outOfRange, "samples must hold 1-1000 samples")) }
        var batch = WearableBatch(msgId: mid, valid: [], invalid: [])
        for s in arr {
            switch wearableSample(s) {
            case .success(let w): batch.valid.append(w)
            case .failure(let r): batch.invalid.append(r)
            }
        }
        if batch.valid.isEmpty, let first = batch.invalid.first {
            return .failure(Rejection(first.reason, "no valid sample: " + first.detail))
        }
        return .success(batch)
    }
}
