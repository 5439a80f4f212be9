@testable import EdgeMQTT
import Testing

/// The MQTT client's receive queue (pure logic): urgent messages first, each lane in arrival
/// order, batches bounded, nothing lost or repeated across many drains.
@Suite("MQTT receive queue")
struct MQTTQueueTests {
    static func message(_ topic: String, _ n: Int, urgent: Bool) -> MQTTEvent {
        .message(MQTTMessage(topic: topic, payload: Array("\(n)".utf8), qos: 1, retain: false, receivedAtNs: UInt64(n), urgent: urgent))
    }
    static func numbers(_ events: [MQTTEvent]) -> [Int] {
        events.compactMap { if case .message(let m) = $0 { Int(String(decoding: m.payload, as: UTF8.self)) } else { nil } }
    }

    @Test(
        "Urgent messages come out first, then the rest, each in arrival order; a batch never exceeds max; one in progress can take just urgent ones"
    )
    func urgentFirst() {
        let (stream, cont) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        _ = stream
        let sink = Sink(cont)
        for n in 0..<5 { sink.put(Self.message("clinic/s/room/r/presence/p", n, urgent: false)) }
        sink.put(Self.message("clinic/s/kiosk/k1/scan", 100, urgent: true), urgent: true)
        sink.put(Self.message("clinic/s/room/r/presence/p", 5, urgent: false))
        sink.put(Self.message("clinic/s/kiosk/k2/scan", 101, urgent: true), urgent: true)
        #expect(Self.numbers(sink.drain(max: 3)) == [100, 101, 0])
        // A batch in progress takes only the urgent ones that arrived meanwhile.
        sink.put(Self.message("clinic/s/kiosk/k1/scan", 102, urgent: true), urgent: true)
        #expect(sink.drainUrgent().map { String(decoding: $0.payload, as: UTF8.self) } == ["102"])
        #expect(sink.drainUrgent().isEmpty)
        #expect(Self.numbers(sink.drain(max: 10)) == [1, 2, 3, 4, 5])
        #expect(sink.drain(max: 10).isEmpty)
    }

    @Test("20,000 messages drained in small batches while more arrive: each exactly once, in order")
    func manyDrains() {
        let (_, cont) = AsyncStream<Void>.makeStream(bufferingPolicy: .bufferingNewest(1))
        let sink = Sink(cont)
        var out: [Int] = []
        var next = 0
        // 300 in, 256 out per round: the queue grows, so its front is compacted on the way.
        while next < 20_000 {
            for _ in 0..<300 where next < 20_000 { sink.put(Self.message("t", next, urgent: false)); next += 1 }
            out += Self.numbers(sink.drain(max: 256))
        }
        while case let b = sink.drain(max: 256), !b.isEmpty { out += Self.numbers(b) }
        #expect(out == Array(0..<20_000))
    }

}
