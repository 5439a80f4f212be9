import ArgumentParser
import Foundation

struct Demo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract:
            "Show the appliance working on this machine: mosquitto, the cloud stub, the daemon and simulated devices on free ports, a scripted "
            + "clinic morning, then the totals.",
        discussion: """
            Needs mosquitto (apt-get install -y mosquitto). Everything runs on 127.0.0.1 under a temporary \
            directory that is deleted at the end; nothing is left running. Ctrl-C stops it early. See docs/demo.md.
            """)
    @Option(help: "Seconds to keep everything running after the story, to look at the console (0: exit at once).")
    var keep: Double = 0
    @Flag(help: "Shorter pauses (about 30 s in all), for tests.")
    var fast = false

    func validate() throws {
        if keep < 0 { throw ValidationError("--keep: seconds, 0 or more") }
    }

    func run() async throws {
        try await DemoRunner(keepSeconds: keep, fast: fast).run()
    }
}
