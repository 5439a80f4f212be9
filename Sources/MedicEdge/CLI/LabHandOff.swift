import ArgumentParser
import Foundation

/// The lab's commands — `demo`, `simulate`, `bench`, `cloud-stub` — are not in the daemon's
/// binary (docs/modules.md: the daemon imports nothing of the lab). `medic-edge demo …` keeps
/// working (CONTRACT §5): the command line is handed whole to `medic-edge-lab`, the lab's
/// executable built beside this one (`swift build` builds both). Installed from the package,
/// the box carries the daemon only, and these commands say so.
enum LabHandOff {
    /// The lab's commands, with the one line each shows in `medic-edge --help`.
    static let names: [(String, String)] = [
        ("demo", "Show the appliance working on this machine (runs medic-edge-lab demo)."),
        ("simulate", "Simulated clinic devices against an MQTT broker (runs medic-edge-lab simulate)."),
        ("bench", "Benchmarks against limits measured in the same run (runs medic-edge-lab bench)."),
        ("cloud-stub", "The cloud stub for tests and demos (runs medic-edge-lab cloud-stub)."),
    ]
    static let labName = "medic-edge-lab"

    /// Help entries, so `medic-edge --help` lists them; reached only if the hand-off failed.
    static var commands: [any ParsableCommand.Type] {
        [LabDemo.self, LabSimulate.self, LabBench.self, LabCloudStub.self]
    }

    /// The lab's binary beside this executable, if it is there.
    static func labPath() -> String? {
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        let path = ((exe as NSString).deletingLastPathComponent as NSString).appendingPathComponent(labName)
        return FileManager.default.isExecutableFile(atPath: path) ? path : nil
    }

    /// When `arguments[1]` is a lab command, replaces this process by the lab's binary with
    /// the same arguments (never returns then). Without the lab, says what to do and exits 2.
    static func execIfLabCommand(_ arguments: [String]) {
        guard arguments.count >= 2, names.contains(where: { $0.0 == arguments[1] }) else { return }
        guard let lab = labPath() else {
            FileHandle.standardError.write(
                Data(
                    """
                    medic-edge: '\(arguments[1])' is a lab command and \(labName) is not installed beside this binary \
                    (the package carries the daemon only). Build from source: swift build --product \(labName), \
                    then run .build/debug/medic-edge \(arguments[1]).

                    """.utf8))
            exit(2)
        }
        var argv: [UnsafeMutablePointer<CChar>?] = ([labName] + arguments.dropFirst()).map { strdup($0) }
        argv.append(nil)
        execv(lab, &argv)
        FileHandle.standardError.write(Data("medic-edge: cannot run \(lab): \(String(cString: strerror(errno)))\n".utf8))
        exit(2)
    }
}

/// One help entry per lab command; `run` is reached only when the hand-off did not happen.
protocol LabCommandEntry: ParsableCommand {}
extension LabCommandEntry {
    func run() throws {
        LabHandOff.execIfLabCommand(["medic-edge", Self.configuration.commandName ?? ""])
        throw ExitCode(2)
    }
}
struct LabDemo: LabCommandEntry {
    static let configuration = CommandConfiguration(commandName: "demo", abstract: LabHandOff.names[0].1)
    @Argument(parsing: .allUnrecognized) var rest: [String] = []
}
struct LabSimulate: LabCommandEntry {
    static let configuration = CommandConfiguration(commandName: "simulate", abstract: LabHandOff.names[1].1)
    @Argument(parsing: .allUnrecognized) var rest: [String] = []
}
struct LabBench: LabCommandEntry {
    static let configuration = CommandConfiguration(commandName: "bench", abstract: LabHandOff.names[2].1)
    @Argument(parsing: .allUnrecognized) var rest: [String] = []
}
struct LabCloudStub: LabCommandEntry {
    static let configuration = CommandConfiguration(commandName: "cloud-stub", abstract: LabHandOff.names[3].1)
    @Argument(parsing: .allUnrecognized) var rest: [String] = []
}

/// `medic-edge baseline-rss` (hidden): loads Foundation, the clinic's time zone and a pt-BR
/// formatter, formats a date, and prints this binary's resident memory — the limit of
/// `medic-edge bench idle`, measured on the daemon's own binary.
struct BaselineRSS: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "baseline-rss", abstract: "Print this binary's resident memory after Foundation, a TimeZone and a pt-BR DateFormatter.",
        shouldDisplay: false)

    func run() throws {
        let f = DateFormatter()
        f.locale = Locale(identifier: "pt_BR")
        f.timeZone = TimeZone(identifier: "America/Sao_Paulo")!
        f.dateStyle = .full
        f.timeStyle = .short
        let text = f.string(from: Date())
        Thread.sleep(forTimeInterval: 0.2)
        let status = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
        print(text)
        for k in ["VmRSS", "VmHWM", "RssAnon", "RssFile"] {
            let line = status.split(separator: "\n").first { $0.hasPrefix(k + ":") }
            let kb = line.flatMap { Int($0.split(separator: " ").dropFirst().first { !$0.isEmpty }.map(String.init) ?? "") } ?? 0
            print("\(k):\t\(kb) kB")
        }
    }
}
