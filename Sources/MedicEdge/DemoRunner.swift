import Foundation
struct DemoRunner { let keepSeconds: Double; func run() async throws { print("demo: not yet") } }
