import Testing
@testable import EdgeCore

/// MQTT 3.1.1 topic-filter matching (`+` one level, `#` the rest), to check the subscriptions.
private func matches(_ filter: String, _ topic: String) -> Bool {
    let f = filter.split(separator: "/", omittingEmptySubsequences: false)
    let t = topic.split(separator: "/", omittingEmptySubsequences: false)
    for (i, part) in f.enumerated() {
        if part == "#" { return true }
        guard i < t.count else { return false }
        if part != "+" && part != t[i] { return false }
    }
    return f.count == t.count
}

@Suite("DeviceTopic: topics under clinic/{site}/ (CONTRACT §1)")
struct DeviceTopicTests {
    let site = "pleno-cuidado"

    @Test(
        "Given each device topic shape, when parsed, then kind, device and room are known",
        arguments: [
            ("kiosk/k1/scan", DeviceTopic.kioskScan(device: "k1"), MessageKind.kioskScan, "k1", String?.none),
            ("room/sala-2/presence/pir_01", .presence(room: "sala-2", device: "pir_01"), .presence, "pir_01", "sala-2"),
            (
                "room/geladeira-vacinas/environment/env-7", .environment(room: "geladeira-vacinas", device: "env-7"), .environment, "env-7",
                "geladeira-vacinas"
            ),
            ("wearable/gw1", .wearable(gateway: "gw1"), .wearable, "gw1", nil),
            ("device/k1/status", .deviceStatus(device: "k1"), .deviceStatus, "k1", nil),
            (
                "kiosk/\(String(repeating: "K", count: 64))/scan", .kioskScan(device: String(repeating: "K", count: 64)), .kioskScan,
                String(repeating: "K", count: 64), nil
            ),
        ])
    func shapes(_ suffix: String, _ expected: DeviceTopic, _ kind: MessageKind, _ device: String, _ room: String?) {
        let r = DeviceTopic.parse("clinic/\(site)/\(suffix)", site: site)
        #expect(r == .ok(expected))
        #expect(expected.kind == kind)
        #expect(expected.deviceId == device)
        #expect(expected.roomKey == room)
    }

    @Test(
        "Given a topic for another site or not a device topic, when parsed, then it is unknown",
        arguments: [
            "clinic/outra-clinica/kiosk/k1/scan", "clinic/pleno/kiosk/k1/scan", "clinic/pleno-cuidado-2/kiosk/k1/scan",
            "clinic/pleno-cuidado/kiosk/k1/result", "clinic/pleno-cuidado/device/k1/ack", "clinic/pleno-cuidado/edge/status",
            "clinic/pleno-cuidado/kiosk/k1", "clinic/pleno-cuidado/kiosk/k1/scan/extra", "clinic/pleno-cuidado/room/sala-2/presence",
            "clinic/pleno-cuidado/room/sala-2/noise/n1", "clinic/pleno-cuidado/wearable/gw1/more", "clinic/pleno-cuidado",
            "clinic/pleno-cuidado/", "/clinic/pleno-cuidado/kiosk/k1/scan", "Clinic/pleno-cuidado/kiosk/k1/scan",
            "clinic", "", "hospital/pleno-cuidado/kiosk/k1/scan",
        ])
    func unknown(_ topic: String) {
        #expect(DeviceTopic.parse(topic, site: site) == .unknown)
    }

    @Test(
        "Given a known shape with a bad id, when parsed, then badId carries the kind and the device only when valid",
        arguments: [
            ("kiosk/sala.2/scan", MessageKind.kioskScan, String?.none),
            ("kiosk//scan", .kioskScan, nil),
            ("kiosk/\(String(repeating: "k", count: 65))/scan", .kioskScan, nil),
            ("kiosk/quiosque-recepção/scan", .kioskScan, nil),
            ("kiosk/k 1/scan", .kioskScan, nil),
            ("room/sala.2/presence/pir1", .presence, "pir1"),
            ("room//presence/pir1", .presence, "pir1"),
            ("room/sala-2/presence/pir.1", .presence, nil),
            ("room/sala-2/presence/", .presence, nil),
            ("room/\(String(repeating: "r", count: 65))/environment/env1", .environment, "env1"),
            ("room/sala-2/environment/env+1", .environment, nil),
            ("wearable/", .wearable, nil),
            ("wearable/gw#1", .wearable, nil),
            ("device/sala.2/status", .deviceStatus, nil),
            ("device//status", .deviceStatus, nil),
        ])
    func badIds(_ suffix: String, _ kind: MessageKind, _ device: String?) {
        #expect(DeviceTopic.parse("clinic/\(site)/\(suffix)", site: site) == .badId(kind: kind, device: device))
    }

    @Test(
        "Given ids, when checked, then only [A-Za-z0-9_-]{1,64} is valid",
        arguments: [
            ("sala-2", true), ("PIR_01", true), ("a", true), (String(repeating: "z", count: 64), true),
            ("", false), (String(repeating: "z", count: 65), false), ("sala.2", false), ("sala 2", false),
            ("sala/2", false), ("ação", false), ("+", false), ("#", false),
        ])
    func idPattern(_ id: String, _ valid: Bool) {
        #expect(DeviceTopic.isValidId(id) == valid)
    }

    @Test("Given the site, when subscribing, then every device topic is covered and none of the appliance's own topics")
    func subscriptions() {
        let subs = DeviceTopic.subscriptions(site: site)
        #expect(subs.count == 5)
        for topic in [
            "clinic/\(site)/kiosk/k1/scan", "clinic/\(site)/room/sala-2/presence/pir1",
            "clinic/\(site)/room/sala-2/environment/env1", "clinic/\(site)/wearable/gw1",
            "clinic/\(site)/device/k1/status",
        ] {
            #expect(subs.contains { matches($0, topic) }, "\(topic) must be subscribed")
        }
        let own = [
            DeviceTopic.ackTopic(site: site, device: "k1"), DeviceTopic.resultTopic(site: site, device: "k1"),
            DeviceTopic.edgeStatusTopic(site: site),
        ]
        #expect(own == ["clinic/\(site)/device/k1/ack", "clinic/\(site)/kiosk/k1/result", "clinic/\(site)/edge/status"])
        for topic in own {
            #expect(!subs.contains { matches($0, topic) }, "\(topic) is published by the appliance, never subscribed")
        }
        #expect(!subs.contains { $0.contains("#") }, "no multi-level wildcard")
        #expect(subs.allSatisfy { $0.hasPrefix("clinic/\(site)/") })
        #expect(!subs.contains { matches($0, "clinic/outra-clinica/kiosk/k1/scan") })
    }
}
