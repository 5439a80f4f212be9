import CloudStub
import EdgeCore
import EdgeTestSupport
import Foundation
import Testing

/// Store-and-forward to the cloud: the outbox and its uplink survive outages, crashes,
/// poison events and a full disk.
@Suite("Store-and-forward to the cloud", .serialized)
struct UplinkTests {
    /// Publishes `n` environment readings with msg_ids and waits for all their acks.
    static func burst(_ env: Env, prefix: String, n: Int, device: String = "env-1", room: String = "sala-2") async throws {
        for i in 0..<n {
            try env.device.publish(
                env.topic("room/\(room)/environment/\(device)"),
                #"{"msg_id": "\#(prefix)-\#(i)", "temperature_c": \#(20 + Double(i % 10) / 10), "battery": 87}"#)
        }
        try await env.device.waitFor(env.topic("device/\(device)/ack"), count: n, timeout: 30) {
            ($0["msg_id"]?.stringValue ?? "").hasPrefix(prefix + "-")
        }
    }

    static func readingMsgIds(_ events: [JSON]) -> [String] {
        events.filter { $0["data"]?["event_type"]?.stringValue == "environment" }.compactMap { $0["data"]?["payload"]?["msg_id"]?.stringValue }
    }

    @Test("An outage during a burst: everything is delivered after recovery, once per id, in order, without a restart")
    func outageDuringBurst() async throws {
        let env = try await Env.start(cloudConfig: ["max_batch: 50"])
        defer { Task { await env.stop() } }
        let stub = try #require(env.stub)
        try await Self.burst(env, prefix: "pre", n: 20)
        _ = try await env.waitForCloudEvents("integration/iot.event", count: 20)
        stub.setFaults(.init(mode: .down))
        try await Self.burst(env, prefix: "out", n: 300)
        try await Harness.waitUntil("cloud state degraded or offline") {
            let s = try await env.daemon.status()["cloud"]?["state"]?.stringValue
            return s == "degraded" || s == "offline"
        }
        let pending = try await env.daemon.status()["outbox"]?["pending"]?.doubleValue ?? 0
        #expect(pending >= 300)
        stub.setFaults(.init(mode: .none))
        try await Harness.waitUntil("backlog drained", timeout: 60) { (try await env.daemon.status())["outbox"]?["pending"]?.doubleValue == 0 }
        let ids = Self.readingMsgIds(env.cloudEvents(named: "integration/iot.event"))
        #expect(Set(ids).count == 320, "lost: \(320 - Set(ids).count)")
        #expect(stub.stats().duplicateIds == 0)
        // Per-source order: the device's readings arrive in the order they were recorded.
        let out = ids.filter { $0.hasPrefix("out-") }.map { Int($0.dropFirst(4))! }
        #expect(out == out.sorted())
        #expect(try await env.daemon.status()["cloud"]?["state"]?.stringValue == "online")
        try await Harness.waitUntil("medic_edge_cloud_up 1 (updated every second)") { try await env.metric("medic_edge_cloud_up") == 1 }
        await env.stop()
    }

    @Test(
        "500s, connection resets and answers slower than the time-out behave like an outage",
        arguments: [
            CloudStubFaults(mode: .error500), CloudStubFaults(mode: .reset), CloudStubFaults(mode: .slow, slowMs: 3500),
        ])
    func faultsLikeOutage(_ fault: CloudStubFaults) async throws {
        let env = try await Env.start()
        defer { Task { await env.stop() } }
        let stub = try #require(env.stub)
        stub.setFaults(fault)
        try await Self.burst(env, prefix: "f", n: 40)
        try await Task.sleep(for: .milliseconds(2500))
        #expect(try await env.daemon.status()["outbox"]?["pending"]?.doubleValue ?? 0 > 0)
        stub.setFaults(.init(mode: .none))
        try await Harness.waitUntil("backlog drained", timeout: 60) { (try await env.daemon.status())["outbox"]?["pending"]?.doubleValue == 0 }
        let ids = Set(Self.readingMsgIds(env.cloudEvents(named: "integration/iot.event")))
        #expect(ids.count == 40)
        await env.stop()
    }

    @Test("401 for a while: nothing is dropped, the state says unauthorized, sending resumes by itself")
    func unauthorized() async throws {
        let env = try await Env.start()
        defer { Task { await env.stop() } }
        let stub = try #require(env.stub)
        stub.setFaults(.init(mode: .unauthorized))
        try await Self.burst(env, prefix: "u", n: 30)
        try await Harness.waitUntil("unauthorized state") { (try await env.daemon.status())["cloud"]?["state"]?.stringValue == "unauthorized" }
        #expect(try await env.metric("medic_edge_cloud_up") == 0)
        #expect(env.daemon.log().contains("refused the event key"))
        stub.setFaults(.init(mode: .none))
        try await Harness.waitUntil("backlog drained", timeout: 70) { (try await env.daemon.status())["outbox"]?["pending"]?.doubleValue == 0 }
        #expect(Set(Self.readingMsgIds(env.cloudEvents(named: "integration/iot.event"))).count == 30)
        #expect(try await env.daemon.status()["outbox"]?["dead_letters"]?.doubleValue == 0)
        await env.stop()
    }

    @Test("400 on one event: it alone is dead-lettered, every other event is delivered in order")
    func poisonEvent() async throws {
        let env = try await Env.start(cloudConfig: ["max_batch: 100"])
        defer { Task { await env.stop() } }
        let stub = try #require(env.stub)
        stub.setFaults(.init(mode: .down))
        try await Self.burst(env, prefix: "a", n: 25)
        // The one occupancy change is the poison.
        try env.device.publish(env.topic("room/sala-2/presence/pres-1"), #"{"occupied": true, "msg_id": "p-1"}"#)
        try await env.device.waitFor(env.topic("device/pres-1/ack"))
        try await Self.burst(env, prefix: "b", n: 25)
        stub.setFaults(.init(mode: .none, rejectEventNames: ["clinic/room.occupancy_changed"]))
        try await Harness.waitUntil("backlog drained", timeout: 30) { (try await env.daemon.status())["outbox"]?["pending"]?.doubleValue == 0 }
        let s = try await env.daemon.status()
        #expect(s["outbox"]?["dead_letters"]?.doubleValue == 1)
        #expect(env.cloudEvents(named: "clinic/room.occupancy_changed").isEmpty)
        let ids = Self.readingMsgIds(env.cloudEvents(named: "integration/iot.event"))
        #expect(Set(ids).count == 50)
        // first arrival of each id keeps the recorded order
        var seen = Set<String>(); var firsts: [String] = []
        for i in ids where seen.insert(i).inserted { firsts.append(i) }
        #expect(firsts == (0..<25).map { "a-\($0)" } + (0..<25).map { "b-\($0)" })
        let (code, out) = try await env.cli(["outbox", "dead-letters"])
        #expect(code == 0)
        #expect(out.contains("clinic/room.occupancy_changed") && out.contains("HTTP 400"))
        // An operator re-queues it once the cloud accepts it again.
        stub.setFaults(.init(mode: .none))
        let (rc, rout) = try await env.cli(["outbox", "retry"])
        #expect(rc == 0 && rout.contains("1 event(s) re-queued"))
        _ = try await env.waitForCloudEvents("clinic/room.occupancy_changed", count: 1)
        await env.stop()
    }

    @Test("413 with a small request limit at the cloud: everything arrives in smaller requests")
    func requestTooLarge() async throws {
        let env = try await Env.start()
        defer { Task { await env.stop() } }
        let stub = try #require(env.stub)
        stub.setFaults(.init(mode: .down))
        try await Self.burst(env, prefix: "s", n: 60)
        stub.setFaults(.init(mode: .none, maxRequestBytes: 6000))
        try await Harness.waitUntil("backlog drained", timeout: 30) { (try await env.daemon.status())["outbox"]?["pending"]?.doubleValue == 0 }
        #expect(Set(Self.readingMsgIds(env.cloudEvents(named: "integration/iot.event"))).count == 60)
        #expect((stub.stats().requestsByStatus["413"] ?? 0) > 0)
        #expect(try await env.daemon.status()["outbox"]?["dead_letters"]?.doubleValue == 0)
        await env.stop()
    }

    @Test("kill -9 of the daemon at random moments under load, 10 times: every acked message reaches the cloud")
    func killNineUnderLoad() async throws {
        let env = try await Env.start(cloudConfig: ["max_batch: 20"])
        defer { Task { await env.stop() } }
        let stub = try #require(env.stub)
        stub.setFaults(.init(mode: .slow, slowMs: 50))
        var acked = Set<String>()
        var sent = 0
        for round in 0..<10 {
            // A device that resends until acked: publish a burst, kill the daemon at a random moment.
            let n = 30
            for i in 0..<n {
                try env.device.publish(env.topic("room/sala-2/environment/env-k"), #"{"msg_id": "k\#(round)-\#(i)", "co2_ppm": \#(400 + i)}"#)
            }
            sent += n
            try await Task.sleep(for: .milliseconds(Int.random(in: 5...120)))
            await env.daemon.kill9()
            try await env.daemon.start()
            // resend what was not acked, until acked
            try await Harness.waitUntil("round \(round) acked", timeout: 30, poll: 0.3) {
                let have = Set(env.device.json(on: env.topic("device/env-k/ack")).compactMap { $0["msg_id"]?.stringValue })
                let missing = (0..<n).map { "k\(round)-\($0)" }.filter { !have.contains($0) }
                for m in missing {
                    let i = Int(m.split(separator: "-")[1])!
                    try env.device.publish(env.topic("room/sala-2/environment/env-k"), #"{"msg_id": "\#(m)", "co2_ppm": \#(400 + i)}"#)
                }
                return missing.isEmpty
            }
        }
        acked = Set(env.device.json(on: env.topic("device/env-k/ack")).compactMap { $0["msg_id"]?.stringValue })
        #expect(acked.count == sent)
        stub.setFaults(.init(mode: .none))
        try await Harness.waitUntil("backlog drained", timeout: 60) { (try await env.daemon.status())["outbox"]?["pending"]?.doubleValue == 0 }
        let delivered = Set(Self.readingMsgIds(env.cloudEvents(named: "integration/iot.event")))
        #expect(acked.subtracting(delivered).isEmpty, "acked but never delivered: \(acked.subtracting(delivered).sorted().prefix(10))")
        // One fact, one id: a resent msg_id is stored once, so no reading has two ids.
        let events = env.cloudEvents(named: "integration/iot.event")
        var idsByMsg: [String: Set<String>] = [:]
        for e in events { if let m = e["data"]?["payload"]?["msg_id"]?.stringValue { idsByMsg[m, default: []].insert(e["id"]?.stringValue ?? "") } }
        #expect(idsByMsg.values.allSatisfy { $0.count == 1 })
        await env.stop()
    }

    @Test("Disk budget reached: telemetry goes oldest-first and is reported; clinical events stay; the file stays within budget")
    func diskBudget() async throws {
        let budget = 2 * 1024 * 1024
        let env = try await Env.start(extraConfig: "storage: {max_bytes: \(budget)}\n")
        defer { Task { await env.stop() } }
        let stub = try #require(env.stub)
        stub.setFaults(.init(mode: .down))
        var maxUsed = 0.0
        for round in 0..<12 {
            try env.device.publish(env.topic("room/sala-2/presence/pres-1"), #"{"occupied": \#(round % 2 == 0)}"#)
            let pad = String(repeating: "z", count: 900)
            for i in 0..<400 {
                try env.device.publish(
                    env.topic("room/sala-3/environment/env-b"), #"{"msg_id": "b\#(round)-\#(i)", "humidity_pct": 50, "note": "\#(pad)"}"#)
            }
            try await env.device.waitFor(env.topic("device/env-b/ack"), count: (round + 1) * 400, timeout: 60)
            maxUsed = max(maxUsed, try await env.daemon.status()["storage"]?["used_bytes"]?.doubleValue ?? 0)
        }
        try await Harness.waitUntil("eviction reported", timeout: 20) {
            let st = try await env.daemon.status()["storage"]
            return (st?["used_bytes"]?.doubleValue ?? .infinity) <= Double(budget)
        }
        stub.setFaults(.init(mode: .none))
        try await Harness.waitUntil("backlog drained", timeout: 60) { (try await env.daemon.status())["outbox"]?["pending"]?.doubleValue == 0 }
        // Drops are reported by housekeeping (once a second, summed): the last report can come
        // just after the backlog first reads empty.
        var dropped: [JSON] = [], droppedCount = 0.0, delivered = Set<String>()
        try? await Harness.waitUntil("every reading delivered or reported dropped", timeout: 15) {
            dropped = env.cloudEvents(named: "integration/edge.data_dropped")
            droppedCount = dropped.compactMap { $0["data"]?["count"]?.doubleValue }.reduce(0, +)
            delivered = Set(Self.readingMsgIds(env.cloudEvents(named: "integration/iot.event")).filter { $0.hasPrefix("b") })
            return Double(delivered.count) + droppedCount >= 4800
        }
        #expect(!dropped.isEmpty)
        #expect(Double(delivered.count) + droppedCount >= 4800, "every reading is either delivered or reported dropped")
        #expect(dropped.allSatisfy { $0["data"]?["class"]?.stringValue == "telemetry" && $0["data"]?["reason"]?.stringValue == "disk_budget" })
        // Clinical: all 12 occupancy changes arrive.
        #expect(env.cloudEvents(named: "clinic/room.occupancy_changed").count == 12)
        // Oldest-first: what survived is the newest.
        if let oldestKept = delivered.compactMap({ Int($0.dropFirst().split(separator: "-")[0]) }).min() { #expect(oldestKept > 0) }
        // Within budget on disk, give or take one batch (256 messages of ~1 KiB plus their rows).
        #expect(maxUsed <= Double(budget) + 1_500_000, "max used \(maxUsed)")
        await env.stop()
    }

    @Test(
        "Clinical data fills the budget: over_budget, an error, telemetry refused (storage_full, reject row); check-ins work; once delivered, taken"
    )
    func overBudget() async throws {
        var day = ClinicDay()
        day.book(day.maria, startMinutes: 30)
        let budget = 1024 * 1024
        let env = try await Env.start(day: day, extraConfig: "storage: {max_bytes: \(budget)}\n")
        defer { Task { await env.stop() } }
        let stub = try #require(env.stub)
        stub.setFaults(.init(mode: .down, eventsOnly: true))
        // Device status changes are clinical events: 5,000 of them exceed 1 MiB on their own.
        for i in 0..<5000 {
            try env.device.publish(
                env.topic("device/s1/status"),
                #"{"state": "\#(i % 2 == 0 ? "offline" : "online")", "type": "presence_sensor", "msg_id": "s\#(i)"}"#)
        }
        try await env.device.waitFor(env.topic("device/s1/ack"), count: 5000, timeout: 120)
        try await Harness.waitUntil("storage over_budget", timeout: 30) {
            (try await env.daemon.status())["storage"]?["state"]?.stringValue == "over_budget"
        }
        #expect(env.daemon.log().contains("clinical data alone fills the disk budget"))
        try env.device.publish(env.topic("room/sala-2/presence/p1"), #"{"occupied": true, "msg_id": "full-1"}"#)
        let ack = try await env.device.waitFor(env.topic("device/p1/ack")) { $0["msg_id"]?.stringValue == "full-1" }
        #expect(ack[0]["error"]?.stringValue == "storage_full")
        #expect(try await env.metric(#"medic_edge_dead_letters_total{reason="storage_full"}"#) == 1)
        let (rc, rejects) = try await env.cli(["rejects"])
        #expect(rc == 0 && rejects.contains("storage_full"))
        #expect(try await env.metric(#"medic_edge_mqtt_messages_total{kind="presence",result="rejected"}"#) == 1)
        // Clinical facts are still recorded: a check-in works and is queued.
        let r = try await env.scan(day.maria.qr, scanId: "full-scan")
        #expect(r["outcome"]?.stringValue == "checked_in")
        // The cloud comes back: the backlog drains, the budget frees up, telemetry is taken again.
        stub.setFaults(.init(mode: .none))
        try await Harness.waitUntil("budget back to ok", timeout: 90) {
            (try await env.daemon.status())["storage"]?["state"]?.stringValue != "over_budget"
        }
        try env.device.publish(env.topic("room/sala-2/presence/p1"), #"{"occupied": true, "msg_id": "full-2"}"#)
        let ack2 = try await env.device.waitFor(env.topic("device/p1/ack")) { $0["msg_id"]?.stringValue == "full-2" }
        #expect(ack2[0]["error"] == nil)
        _ = try await env.waitForCloudEvents("clinic/checkin.recorded", count: 1, timeout: 30)
        _ = try await env.waitForCloudEvents("integration/iot.event", count: 1, timeout: 30) { $0["data"]?["event_type"]?.stringValue == "presence" }
        #expect(env.cloudEvents(named: "integration/device.status_changed").count == 5000, "every clinical event delivered")
        let presence = env.cloudEvents(named: "integration/iot.event").filter { $0["data"]?["event_type"]?.stringValue == "presence" }
        #expect(
            presence.count == 1 && presence.allSatisfy { $0["data"]?["payload"]?["msg_id"]?.stringValue == "full-2" },
            "the refused reading never became an event; the one after did")
        await env.stop()
    }
}
