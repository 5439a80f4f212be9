import EdgeCore
import EdgeTestSupport
import Foundation
import Testing

/// The clock (CONTRACT §5): a wall clock that jumps is noticed against the monotonic clock;
/// no-shows whose moment a forward jump skipped over are not signalled.
@Suite("Clock jumps", .serialized)
struct ClockJumpTests {
    static let libfaketime = ["/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1", "/usr/lib/aarch64-linux-gnu/faketime/libfaketimeMT.so.1"]
        .first { FileManager.default.fileExists(atPath: $0) }

    @Test(
        "Given appointments in the next 3 h, when the clock jumps forward 3 h and back 10 min, then no burst of no-shows and both jumps are counted"
    )
    func jumps() async throws {
        let lib = try #require(Self.libfaketime, "libfaketime (Debian's faketime) is installed by scripts/install-deps.sh")
        var day = ClinicDay()
        let due = day.book(day.joao, startMinutes: -5, minutes: 30)  // already a no-show: signalled as usual
        for (p, m) in [(day.maria, 60.0), (day.beatriz, 90.0), (day.carlos, 150.0)] {
            day.book(p, startMinutes: m, minutes: 30)  // their no-show moments are jumped over
        }
        day.book(day.maria, startMinutes: 200, minutes: 30)  // still ahead after the jump
        // libfaketime moves the daemon's wall clock by the offset in this file (re-read at most
        // once a second); the monotonic clock stays real.
        let offsetFile = Harness.tempDir("faketime") + "/offset"
        try "+0\n".write(toFile: offsetFile, atomically: true, encoding: .utf8)
        let env = try await Env.start(
            day: day, extraConfig: "noshow: {grace_minutes: 0.5, check_interval_seconds: 0.2}\n",
            daemonEnvironment: [
                "LD_PRELOAD": lib, "FAKETIME_TIMESTAMP_FILE": offsetFile,
                "FAKETIME_CACHE_DURATION": "1", "FAKETIME_DONT_FAKE_MONOTONIC": "1",
            ])
        do {
            let first = try await env.waitForCloudEvents("clinic/noshow.detected", count: 1, timeout: 20)
            #expect(first.first?["data"]?["appointment_id"]?.stringValue == due)

            try "+3h\n".write(toFile: offsetFile, atomically: true, encoding: .utf8)
            try await Harness.waitUntil("the forward jump counted", timeout: 15) {
                try await env.metric(#"medic_edge_clock_jumps_total{direction="forward"}"#) == 1
            }
            try "+170m\n".write(toFile: offsetFile, atomically: true, encoding: .utf8)
            try await Harness.waitUntil("the backward jump counted", timeout: 15) {
                try await env.metric(#"medic_edge_clock_jumps_total{direction="backward"}"#) == 1
            }
            // Several no-show checks (every 0.2 s) and uplink rounds later: still only the first.
            try await Task.sleep(for: .seconds(3))
            #expect(env.cloudEvents(named: "clinic/noshow.detected").count == 1, "no burst of no-shows for the jumped-over appointments")
            #expect(try await env.metric(#"medic_edge_clock_jumps_total{direction="forward"}"#) == 1, "one jump, counted once")
            let log = env.daemon.log()
            #expect(log.contains("clock: the wall clock jumped forward"))
            #expect(log.contains("clock: the wall clock jumped backward"))
            #expect(log.contains("3 appointment(s) whose no-show moment a clock jump skipped over"))
            #expect(try await env.daemon.get("/healthz").status == 200, "a jump alone is not a fault of the daemon")
        } catch {
            await env.stop()
            throw error
        }
        await env.stop()
    }
}
