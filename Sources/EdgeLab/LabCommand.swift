import ArgumentParser
import Foundation

/// `medic-edge-lab`: the lab's commands, apart from the daemon (docs/modules.md). The daemon's
/// binary hands `medic-edge demo|simulate|bench|cloud-stub …` over to this one, so both
/// spellings work; the daemon under test is always the `medic-edge` binary beside this one
/// (or `$MEDIC_EDGE_BIN`).
public struct LabCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "medic-edge-lab",
        abstract: "MedicSaaS Edge lab: the demo, device simulators, benchmarks and the cloud stub.",
        subcommands: [Demo.self, Simulate.self, Bench.self, CloudStubCommand.self])
    public init() {}

    /// The entry point the executable calls.
    public static func entry() async {
        do {
            var command = try parseAsRoot(nil)
            if var a = command as? AsyncParsableCommand { try await a.run() } else { try command.run() }
        } catch {
            exit(withError: error)
        }
    }
}
