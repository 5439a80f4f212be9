import ArgumentParser

struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Benchmarks (not built yet).")
    func run() async throws { throw ValidationError("benchmarks are not built yet") }
}
