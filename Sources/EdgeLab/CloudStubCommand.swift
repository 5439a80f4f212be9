import ArgumentParser
import CloudStub
import Logging

struct CloudStubCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cloud-stub", abstract: "Run the cloud stub (Inngest Event API + Directus REST) for tests and demos.")
    @Option var host = "127.0.0.1"
    @Option var port = 0
    @Option(help: "Seed JSON file (event_key, directus_token, collections).") var seed: String?
    func run() async throws {
        LoggingSystem.bootstrap { StreamLogHandler.standardError(label: $0) }
        try await CloudStubMain.run(port: port, host: host, seedPath: seed, logger: Logger(label: "cloud-stub"))
    }
}
