import ArgumentParser

struct Simulate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Device simulators (not built yet).")
    func run() async throws { throw ValidationError("simulators are not built yet") }
}
