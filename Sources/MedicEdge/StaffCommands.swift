import ArgumentParser

struct Staff: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Reception staff accounts (not built yet).")
    func run() async throws { throw ValidationError("staff accounts are not built yet") }
}
