import ArgumentParser
import Foundation

struct Demo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Start mosquitto, the cloud stub and the daemon on free ports, and show the appliance working.")
    @Option(help: "Seconds to keep running after the story (0: exit at once).") var keep: Double = 0
    func run() async throws {
        try await DemoRunner(keepSeconds: keep).run()
    }
}
