import Foundation
import Testing
@testable import EdgeCore

private func reason<T>(_ r: Result<T, Rejection>) -> RejectReason? { r.failureValue?.reason }

private func sample(
    patient: String = "6f1c2a9e-0000-4000-8000-000000000001", source: String = "garmin",
    metric: String = "heart_rate", value: String = "72", unit: String = "bpm",
    at: String = "2026-11-29T12:55:00Z"
) -> String {
    #"{"patient_id":"\#(patient)","source":"\#(source)","metric_type":"\#(metric)","value":\#(value),"unit":"\#(unit)","recorded_at":"\#(at)"}"#
}

@Suite("PayloadRules.object: the envelope of every device message")
struct PayloadEnvelopeTests {
    @Test("Given a payload over 64 KiB, when read, then it is too_large without being parsed")
    func tooLarge() {
        let big = [UInt8](repeating: UInt8(ascii: "{"), count: maxPayloadBytes + 1)
        let r = PayloadRules.object(big)
        #expect(reason(r) == .tooLarge)
        #expect(r.failureValue?.detail.contains("65537") == true)
    }

    @Test("Given a valid object of exactly 64 KiB, when read, then it is accepted")
    func exactlyAtLimit() {
        let head = #"{"pad":""#, tail = #""}"#
        let text = head + String(repeating: "x", count: maxPayloadBytes - head.utf8.count - tail.utf8.count) + tail
        #expect(text.utf8.count == 65_536)
        #expect(PayloadRules.object(Array(text.utf8)).successValue?["pad"] != nil)
    }

    @Test(
        "Given payloads that are not a JSON object, when read, then the reason says why",
        arguments: [
            ("hello kiosk", RejectReason.notJSON), ("", .notJSON), (#"{"scan_id":"k1","#, .notJSON), (#"{"a":1,"a":2}"#, .notJSON),
            ("[1,2,3]", .notObject), (#""just a string""#, .notObject), ("42", .notObject), ("null", .notObject), ("true", .notObject),
        ])
    func notAnObject(_ text: String, _ expected: RejectReason) {
        #expect(reason(PayloadRules.object(Array(text.utf8))) == expected)
    }

    @Test("Given invalid UTF-8, when read, then it is not_json")
    func invalidUTF8() {
        #expect(reason(PayloadRules.object([0x7b, 0x22, 0x71, 0x72, 0x22, 0x3a, 0x22, 0xff, 0x22, 0x7d])) == .notJSON)
    }

    @Test("Given unknown firmware fields, when read, then they are kept")
    func unknownFieldsKept() {
        let o = obj(#"{"occupied":true,"battery_pct":87,"fw_extra":{"rssi":-61}}"#)
        #expect(o["battery_pct"] == .number(87))
        #expect(PayloadRules.presence(o).successValue?.occupied == true)
    }

    @Test(
        "Given msg_id values, when read, then 1-64 chars is accepted and anything else explained",
        arguments: [
            (#"{}"#, Result<String?, RejectReason>.success(nil)), (#"{"msg_id":null}"#, .success(nil)),
            (#"{"msg_id":"gw1-0042"}"#, .success("gw1-0042")), (#"{"msg_id":42}"#, .failure(.wrongType)),
            (#"{"msg_id":""}"#, .failure(.outOfRange)), (#"{"msg_id":"\#(String(repeating: "m", count: 65))"}"#, .failure(.outOfRange)),
            (#"{"msg_id":"\#(String(repeating: "m", count: 64))"}"#, .success(String(repeating: "m", count: 64))),
        ])
    func msgId(_ text: String, _ expected: Result<String?, RejectReason>) {
        #expect(PayloadRules.msgId(obj(text)).mapError(\.reason) == expected)
    }
}

@Suite("PayloadRules.kioskScan (CONTRACT §1.1)")
struct KioskScanRulesTests {
    @Test("Given Maria's scan, when validated, then scan id, QR text and time are read")
    func valid() {
        let r = PayloadRules.kioskScan(obj(#"{"scan_id":"k1-000123","qr":"MEDIC:patient:0001","ts":"2026-11-29T13:02:11Z"}"#))
        #expect(r.successValue == KioskScan(scanId: "k1-000123", qr: "MEDIC:patient:0001", ts: "2026-11-29T13:02:11Z"))
        #expect(PayloadRules.kioskScan(obj(#"{"scan_id":"k1-1","qr":"Q"}"#)).successValue?.ts == nil)
    }

    @Test("Given a QR of exactly 512 bytes, when validated, then it is accepted")
    func qrAtLimit() {
        let qr = String(repeating: "Q", count: 512)
        #expect(PayloadRules.kioskScan(obj(#"{"scan_id":"k1-2","qr":"\#(qr)"}"#)).successValue?.qr == qr)
    }

    @Test(
        "Given a bad scan, when validated, then the reason matches",
        arguments: [
            (#"{"qr":"MEDIC:1"}"#, RejectReason.missingField, "scan_id missing"),
            (#"{"scan_id":null,"qr":"MEDIC:1"}"#, .missingField, "scan_id null"),
            (#"{"scan_id":123,"qr":"MEDIC:1"}"#, .wrongType, "scan_id a number"),
            (#"{"scan_id":"","qr":"MEDIC:1"}"#, .outOfRange, "scan_id empty"),
            (#"{"scan_id":"\#(String(repeating: "s", count: 65))","qr":"MEDIC:1"}"#, .outOfRange, "scan_id 65 chars"),
            (#"{"scan_id":"k1-3"}"#, .missingField, "qr missing"),
            (#"{"scan_id":"k1-3","qr":null}"#, .missingField, "qr null"),
            (#"{"scan_id":"k1-3","qr":12345}"#, .wrongType, "qr a number"),
            (#"{"scan_id":"k1-3","qr":true}"#, .wrongType, "qr a boolean"),
            (#"{"scan_id":"k1-3","qr":["MEDIC:1"]}"#, .wrongType, "qr an array"),
            (#"{"scan_id":"k1-3","qr":"\#(String(repeating: "Q", count: 513))"}"#, .outOfRange, "qr 513 bytes"),
            (#"{"scan_id":"k1-3","qr":"\#(String(repeating: "é", count: 257))"}"#, .outOfRange, "qr 257 chars but 514 bytes"),
            (#"{"scan_id":"k1-3","qr":""}"#, .outOfRange, "qr empty"),
            (#"{"scan_id":"k1-3","qr":"MEDIC:1","ts":"yesterday"}"#, .wrongType, "ts not RFC 3339"),
            (#"{"scan_id":"k1-3","qr":"MEDIC:1","ts":1795957331}"#, .wrongType, "ts a number"),
        ])
    func rejected(_ text: String, _ expected: RejectReason, _ why: String) {
        #expect(reason(PayloadRules.kioskScan(obj(text))) == expected, "\(why)")
    }

    @Test("Given a rejected scan, when explained, then the QR text never appears in the detail")
    func qrNeverInDetail() {
        let secret = "MEDIC-SECRET-" + String(repeating: "7", count: 600)
        for text in [#"{"scan_id":"k1-4","qr":"\#(secret)"}"#, #"{"scan_id":"k1-4","qr":"MEDIC-SECRET-1","ts":"bad"}"#] {
            let detail = PayloadRules.kioskScan(obj(text)).failureValue?.detail ?? ""
            #expect(!detail.isEmpty)
            #expect(!detail.contains("MEDIC-SECRET"))
        }
    }
}

@Suite("PayloadRules.presence (CONTRACT §1.3)")
struct PresenceRulesTests {
    @Test("Given a room sensor's reading, when validated, then occupied and people are read")
    func valid() {
        #expect(
            PayloadRules.presence(obj(#"{"occupied":true,"people":1,"ts":"2026-11-29T13:31:00Z","msg_id":"p-1"}"#)).successValue
                == PresenceReading(occupied: true, people: 1, ts: "2026-11-29T13:31:00Z"))
        #expect(PayloadRules.presence(obj(#"{"occupied":false}"#)).successValue == PresenceReading(occupied: false, people: nil, ts: nil))
        #expect(PayloadRules.presence(obj(#"{"occupied":false,"people":0}"#)).successValue?.people == 0)
        #expect(PayloadRules.presence(obj(#"{"occupied":true,"people":null}"#)).successValue?.people == nil)
    }

    @Test(
        "Given a bad presence reading, when validated, then the reason matches",
        arguments: [
            (#"{"people":2}"#, RejectReason.missingField, "occupied missing"),
            (#"{"occupied":null}"#, .missingField, "occupied null"),
            (#"{"occupied":1}"#, .wrongType, "occupied is 1, not true"),
            (#"{"occupied":"true"}"#, .wrongType, "occupied a string"),
            (#"{"occupied":true,"people":-1}"#, .outOfRange, "people negative"),
            (#"{"occupied":true,"people":10001}"#, .outOfRange, "people absurd"),
            (#"{"occupied":true,"people":1.5}"#, .wrongType, "people fractional"),
            (#"{"occupied":true,"people":"2"}"#, .wrongType, "people a string"),
            (#"{"occupied":true,"people":true}"#, .wrongType, "people a boolean"),
            (#"{"occupied":true,"ts":"2026-11-29T13:31:00"}"#, .wrongType, "ts without offset"),
        ])
    func rejected(_ text: String, _ expected: RejectReason, _ why: String) {
        #expect(reason(PayloadRules.presence(obj(text))) == expected, "\(why)")
    }
}

@Suite("PayloadRules.environment (CONTRACT §1.4)")
struct EnvironmentRulesTests {
    @Test("Given a full reading, when validated, then all three metrics are read")
    func valid() {
        let r = PayloadRules.environment(obj(#"{"ts":"2026-11-29T13:00:00Z","temperature_c":22.4,"humidity_pct":51.0,"co2_ppm":640}"#))
        #expect(r.successValue == EnvironmentReading(values: [.temperatureC: 22.4, .humidityPct: 51, .co2Ppm: 640], ts: "2026-11-29T13:00:00Z"))
    }

    @Test("Given a single metric, when validated, then the subset is enough", arguments: EnvironmentMetric.allCases)
    func subset(_ m: EnvironmentMetric) {
        #expect(PayloadRules.environment(obj(#"{"\#(m.rawValue)":50}"#)).successValue?.values == [m: 50])
    }

    static let bounds: [(EnvironmentMetric, Double, Double)] = [
        (.temperatureC, -40, 85), (.humidityPct, 0, 100), (.co2Ppm, 0, 10_000),
    ]

    @Test("Given a value exactly at a bound, when validated, then it is accepted", arguments: bounds)
    func atBounds(_ m: EnvironmentMetric, _ lo: Double, _ hi: Double) {
        #expect(m.range == lo...hi)
        for v in [lo, hi] {
            #expect(PayloadRules.environment(obj(#"{"\#(m.rawValue)":\#(JSONText.number(v))}"#)).successValue?.values[m] == v)
        }
    }

    @Test("Given a value just outside either bound, when validated, then it is out_of_range", arguments: bounds)
    func outsideBounds(_ m: EnvironmentMetric, _ lo: Double, _ hi: Double) {
        for v in [lo - 0.1, hi + 0.1, lo - 1000, hi + 1e6] {
            let r = PayloadRules.environment(obj(#"{"\#(m.rawValue)":\#(JSONText.number(v))}"#))
            #expect(reason(r) == .outOfRange, "\(m.rawValue)=\(v)")
        }
        // one bad metric rejects the whole reading, even with good ones beside it
        let other = m == .temperatureC ? "humidity_pct" : "temperature_c"
        #expect(reason(PayloadRules.environment(obj(#"{"\#(other)":20,"\#(m.rawValue)":\#(JSONText.number(hi + 1))}"#))) == .outOfRange)
    }

    @Test(
        "Given a bad environment reading, when validated, then the reason matches",
        arguments: [
            (#"{"ts":"2026-11-29T13:00:00Z"}"#, RejectReason.missingField, "no metric"),
            (#"{}"#, .missingField, "empty object"),
            (#"{"battery_pct":90,"pressure_hpa":1013}"#, .missingField, "only unknown metrics"),
            (#"{"temperature_c":null}"#, .missingField, "metric null"),
            (#"{"temperature_c":"22.4"}"#, .wrongType, "temperature a string"),
            (#"{"humidity_pct":true}"#, .wrongType, "humidity a boolean"),
            (#"{"co2_ppm":[640]}"#, .wrongType, "co2 an array"),
            (#"{"co2_ppm":640,"ts":"soon"}"#, .wrongType, "bad ts"),
        ])
    func rejected(_ text: String, _ expected: RejectReason, _ why: String) {
        #expect(reason(PayloadRules.environment(obj(text))) == expected, "\(why)")
    }
}

@Suite("PayloadRules.deviceStatus (CONTRACT §1.6)")
struct DeviceStatusRulesTests {
    @Test("Given the kiosk's will and birth, when validated, then state and type are read")
    func valid() {
        #expect(
            PayloadRules.deviceStatus(obj(#"{"state":"online","type":"checkin_kiosk","room_id":"sala-2","fw":"1.4.0"}"#)).successValue
                == DeviceStatus(online: true, type: .checkinKiosk, roomId: "sala-2", fw: "1.4.0"))
        #expect(PayloadRules.deviceStatus(obj(#"{"state":"offline"}"#)).successValue == DeviceStatus(online: false, type: nil, roomId: nil, fw: nil))
    }

    @Test("Given each device type, when validated, then it is known", arguments: DeviceType.allCases)
    func types(_ t: DeviceType) {
        #expect(PayloadRules.deviceStatus(obj(#"{"state":"online","type":"\#(t.rawValue)"}"#)).successValue?.type == t)
    }

    @Test(
        "Given a bad status, when validated, then the reason matches",
        arguments: [
            (#"{"type":"checkin_kiosk"}"#, RejectReason.missingField, "state missing"),
            (#"{"state":"sleeping"}"#, .unknownValue, "unknown state"),
            (#"{"state":"Online"}"#, .unknownValue, "state in capitals"),
            (#"{"state":true}"#, .wrongType, "state a boolean"),
            (#"{"state":"online","type":"toaster"}"#, .unknownValue, "unknown type"),
            (#"{"state":"online","type":7}"#, .wrongType, "type a number"),
            (#"{"state":"online","room_id":5}"#, .wrongType, "room id a number"),
            (#"{"state":"online","fw":1.4}"#, .wrongType, "fw a number"),
        ])
    func rejected(_ text: String, _ expected: RejectReason, _ why: String) {
        #expect(reason(PayloadRules.deviceStatus(obj(text))) == expected, "\(why)")
    }

    @Test("Given a room id that breaks the id pattern, when validated, then it is rejected")
    func badRoomId() {
        #expect(PayloadRules.deviceStatus(obj(#"{"state":"online","room_id":"sala.2"}"#)).failureValue != nil)
    }
}

@Suite("PayloadRules.wearable (CONTRACT §1.5)")
struct WearableRulesTests {
    @Test("Given a gateway batch, when validated, then the samples are read and the patient id lowercased")
    func valid() throws {
        let text =
            #"{"msg_id":"gw1-0042","samples":[\#(sample(patient: "6F1C2A9E-0000-4000-8000-00000000000A")),"#
            + #"\#(sample(metric: "steps", value: "1200", unit: "count"))]}"#
        let b = try #require(PayloadRules.wearable(obj(text)).successValue)
        #expect(b.msgId == "gw1-0042")
        #expect(b.valid.count == 2)
        #expect(b.invalid.isEmpty)
        #expect(b.valid[0].patientId == "6f1c2a9e-0000-4000-8000-00000000000a")
        #expect(b.valid[0].source == "garmin")
        #expect(b.valid[0].metricType == "heart_rate")
        #expect(b.valid[0].value == 72)
        #expect(b.valid[0].unit == "bpm")
        #expect(b.valid[0].recordedAt == "2026-11-29T12:55:00Z")
        #expect(b.valid[1].value == 1200)
    }

    @Test(
        "Given every known source and metric, when validated, then each is accepted",
        arguments: ["google_fit", "apple_health", "fitbit", "garmin", "whoop"], ["steps", "heart_rate", "sleep", "stress", "spo2", "hrv"])
    func sourcesAndMetrics(_ source: String, _ metric: String) {
        let b = PayloadRules.wearable(obj(#"{"msg_id":"m","samples":[\#(sample(source: source, metric: metric))]}"#))
        #expect(b.successValue?.valid.count == 1)
    }

    @Test("Given unknown fields in a sample, when validated, then they stay in the raw sample")
    func rawKept() {
        let s =
            #"{"patient_id":"6f1c2a9e-0000-4000-8000-000000000001","source":"whoop","metric_type":"hrv","value":55.5,"unit":"ms","#
            + #""recorded_at":"2026-11-29T06:00:00-03:00","strap":"4.0"}"#
        let b = PayloadRules.wearable(obj(#"{"msg_id":"m","samples":[\#(s)]}"#)).successValue
        #expect(b?.valid.first?.raw["strap"] == .string("4.0"))
    }

    @Test(
        "Given a bad batch, when validated, then the whole message is rejected with the reason",
        arguments: [
            (#"{"samples":[\#(sample())]}"#, RejectReason.missingField, "msg_id missing"),
            (#"{"msg_id":null,"samples":[\#(sample())]}"#, .missingField, "msg_id null"),
            (#"{"msg_id":42,"samples":[\#(sample())]}"#, .wrongType, "msg_id a number"),
            (#"{"msg_id":"","samples":[\#(sample())]}"#, .outOfRange, "msg_id empty"),
            (#"{"msg_id":"gw1-1"}"#, .missingField, "samples missing"),
            (#"{"msg_id":"gw1-1","samples":\#(sample())}"#, .wrongType, "samples an object"),
            (#"{"msg_id":"gw1-1","samples":"many"}"#, .wrongType, "samples a string"),
            (#"{"msg_id":"gw1-1","samples":[]}"#, .outOfRange, "zero samples"),
        ])
    func rejected(_ text: String, _ expected: RejectReason, _ why: String) {
        #expect(reason(PayloadRules.wearable(obj(text))) == expected, "\(why)")
    }

    @Test("Given 1000 samples, when validated, then all are kept; given 1001, then out_of_range")
    func sampleCountLimits() {
        let s = sample()
        let thousand = #"{"msg_id":"gw1-2","samples":["# + Array(repeating: s, count: 1000).joined(separator: ",") + "]}"
        #expect(PayloadRules.wearable(try! JSON.parse(thousand).objectValue!).successValue?.valid.count == 1000)
        let tooMany = #"{"msg_id":"gw1-3","samples":["# + Array(repeating: s, count: 1001).joined(separator: ",") + "]}"
        #expect(reason(PayloadRules.wearable(try! JSON.parse(tooMany).objectValue!)) == .outOfRange)
    }

    @Test(
        "Given one bad sample among good ones, when validated, then only it is dropped",
        arguments: [
            (sample(patient: "not-a-uuid"), RejectReason.wrongType),
            (sample(source: "polar"), .unknownValue),
            (sample(metric: "blood_pressure"), .unknownValue),
            (sample(value: #""72""#), .wrongType),
            (sample(value: "true"), .wrongType),
            (sample(at: "2026-11-29 noon"), .wrongType),
            (#"{"source":"garmin","metric_type":"steps","value":1,"unit":"count","recorded_at":"2026-11-29T12:00:00Z"}"#, .missingField),
            (
                #"{"patient_id":"6f1c2a9e-0000-4000-8000-000000000001","source":"garmin","metric_type":"steps","unit":"count","#
                    + #""recorded_at":"2026-11-29T12:00:00Z"}"#,
                .missingField
            ),
            (
                #"{"patient_id":"6f1c2a9e-0000-4000-8000-000000000001","source":"garmin","metric_type":"steps","value":1,"#
                    + #""recorded_at":"2026-11-29T12:00:00Z"}"#,
                .missingField
            ),
            (
                #"{"patient_id":"6f1c2a9e-0000-4000-8000-000000000001","source":"garmin","metric_type":"steps","value":1,"unit":5,"#
                    + #""recorded_at":"2026-11-29T12:00:00Z"}"#,
                .wrongType
            ),
            ("42", .wrongType),
            (#""a sample""#, .wrongType),
        ])
    func oneBadSampleDroppedAlone(_ bad: String, _ expected: RejectReason) throws {
        let text = #"{"msg_id":"gw1-4","samples":[\#(sample()),\#(bad),\#(sample(metric: "spo2", value: "97", unit: "%"))]}"#
        let b = try #require(PayloadRules.wearable(obj(text)).successValue)
        #expect(b.valid.count == 2)
        #expect(b.valid.map(\.metricType) == ["heart_rate", "spo2"], "order of the valid rest is kept")
        #expect(b.invalid.map(\.reason) == [expected])
    }

    @Test("Given only bad samples, when validated, then the message is rejected with the first sample's reason")
    func allBad() {
        let text = #"{"msg_id":"gw1-5","samples":[\#(sample(source: "polar")),\#(sample(patient: "x"))]}"#
        let r = PayloadRules.wearable(obj(text))
        #expect(reason(r) == .unknownValue)
        #expect(r.failureValue?.detail.hasPrefix("no valid sample") == true)
    }
}
