import EdgeCore
import EdgeTestSupport
import Foundation
import Testing

/// Acks go to devices at QoS 0 (CONTRACT §1): a lost ack only means a resend, which the
/// appliance deduplicates and acks again. Real mosquitto, the daemon as a subprocess, the
/// cloud stub.
@Suite("A lost ack is healed by the device's resend", .serialized)
struct LostAckTests {
    @Test("A reading whose ack was lost is resent with the same msg_id: acked again, stored and forwarded once")
    func lostAckHealedByResend() async throws {
        let env = try await Env.start()
        defer { Task { await env.stop() } }
        let topic = env.topic("room/sala-2/environment/env-lost")
        let ackTopic = env.topic("device/env-lost/ack")
        let reading = #"{"msg_id": "lost-1", "temperature_c": 21.5, "humidity_pct": 48}"#
        // The sensor is not subscribed to its ack topic: the ack the appliance sends is lost.
        let sensor = try await TestMQTT(port: env.broker.port)
        defer { sensor.close() }
        try sensor.publish(topic, reading)
        // The ack was sent (the observer subscribed to everything sees it, at QoS 0 although it
        // subscribed at QoS 1) and the sensor did not get it.
        let sent = try await env.device.waitFor(ackTopic) { $0["msg_id"]?.stringValue == "lost-1" }
        #expect(sent.count == 1)
        #expect(sent[0]["error"] == nil)
        #expect(env.device.messages(on: ackTopic).map(\.qos) == [0], "acks are published at QoS 0")
        #expect(sensor.messages(on: ackTopic).isEmpty)

        // The device, still without its ack, subscribes and resends the same message.
        try await sensor.subscribe(ackTopic)
        try sensor.publish(topic, reading)
        let healed = try await sensor.waitFor(ackTopic) { $0["msg_id"]?.stringValue == "lost-1" }
        #expect(healed.count == 1)
        #expect(healed[0]["error"] == nil, "a duplicate is acked as the first was")
        #expect(env.device.json(on: ackTopic).filter { $0["msg_id"]?.stringValue == "lost-1" }.count == 2)

        // A later reading from the same sensor: once it is at the cloud, anything queued before
        // it (the outbox keeps insertion order) has been delivered too.
        try sensor.publish(topic, #"{"msg_id": "after-1", "temperature_c": 21.7}"#)
        try await sensor.waitFor(ackTopic) { $0["msg_id"]?.stringValue == "after-1" }
        _ = try await env.waitForCloudEvents("integration/iot.event", count: 1) { $0["data"]?["payload"]?["msg_id"]?.stringValue == "after-1" }
        let forwarded = UplinkTests.readingMsgIds(env.cloudEvents(named: "integration/iot.event"))
        #expect(forwarded.filter { $0 == "lost-1" }.count == 1, "the reading is forwarded once: \(forwarded)")
        #expect(try await env.metric(#"medic_edge_mqtt_messages_total{kind="environment",result="accepted"}"#) == 2)
        #expect(try await env.metric(#"medic_edge_mqtt_messages_total{kind="environment",result="duplicate"}"#) == 1)
        try await Harness.waitUntil("outbox empty") { (try await env.daemon.status())["outbox"]?["pending"]?.doubleValue == 0 }
        await env.stop()
    }
}
