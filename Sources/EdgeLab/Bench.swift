import ArgumentParser

/// `medic-edge bench …`: the performance figures of DESIGN.md ("Performance"), each printed
/// next to a limit measured in the same run, with the ratio and the target. Run them on the
/// release build (`swift build -c release`, then `.build/release/medic-edge bench …`): the
/// daemon under test is a subprocess of this same binary. Not tests: nothing here asserts
/// wall-clock time. See docs/benchmarks.md.
struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Benchmarks against limits measured in the same run (run on the release build).",
        discussion: """
            checkin   kiosk publish → result received, alone / with background load, cloud up / down
            ingest    sustained durable ingest (QoS 1, acked) vs. the broker feeding a discarding subscriber
            drain     1,000,000 pending events → cloud stub, vs. the stub's own capacity; start-to-ready
            idle      the daemon's idle resident memory vs. a bare Foundation process
            backup    kiosk p99 with and without medic-edge backup running back to back (target ≤ 2×)
            """,
        subcommands: [BenchCheckin.self, BenchIngest.self, BenchDrain.self, BenchIdle.self, BenchBackup.self])
}
