import ArgumentParser
import EdgeCore
import EdgeStore
import Foundation
import Logging

/// `medic-edge` command line (CONTRACT §5). The executable only calls `main()`.
@available(macOS 10.15, macCatalyst 13, iOS 13, tvOS 13, watchOS 6, *)
public struct MedicEdgeCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "medic-edge",
        abstract: "MedicSaaS Edge: the clinic's on-premise appliance daemon.",
        subcommands: [Run.self, Status.self, Staff.self, Outbox.self, Rejects.self, Doctor.self, Backup.self, Restore.self, BaselineRSS.self]
            + LabHandOff.commands)
    public init() {}

    /// The entry point the executable calls.
    public static func entry() async {
        // The lab's commands (demo, simulate, bench, cloud-stub) live in medic-edge-lab, not in
        // the daemon's binary: hand the whole command line over to it.
        LabHandOff.execIfLabCommand(CommandLine.arguments)
        do {
            var command = try parseAsRoot(nil)
            if var a = command as? AsyncParsableCommand { try await a.run() } else { try command.run() }
        } catch {
            exit(withError: error)
        }
    }
}

struct ConfigOption: ParsableArguments {
    @Option(name: .long, help: "Configuration file (default: $MEDIC_EDGE_CONFIG, else /etc/medic-edge/config.yaml, else built-in defaults).")
    var config: String?

    func load(readSecrets: Bool = true) throws -> EdgeConfig {
        do { return try EdgeConfig.load(path: config ?? EdgeConfig.defaultPath(), readSecrets: readSecrets) } catch let e as ConfigError {
            FileHandle.standardError.write(Data("medic-edge: \(e.description)\n".utf8))
            throw ExitCode(2)
        }
    }
    /// For operator commands: no secret is read.
    func openDatabase() throws -> (EdgeConfig, AppDatabase) {
        let c = try load(readSecrets: false)
        return (c, try AppDatabase.open(dataDir: c.dataDir))
    }
}

struct Run: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Run the daemon.")
    @OptionGroup var options: ConfigOption
    func run() async throws {
        let config = try options.load()
        do { try await Daemon.run(config: config) } catch {
            FileHandle.standardError.write(Data("medic-edge: cannot start: \(error)\n".utf8))
            throw ExitCode(1)
        }
    }
}

struct Status: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print the appliance's status from its database (safe while the daemon runs).")
    @OptionGroup var options: ConfigOption
    func run() async throws {
        let (c, db) = try options.openDatabase()
        let s = try db.outboxStats()
        let (rejects, patients, appts, alerts) = try await db.read { d in
            (try d.rowCount(.rejects), try d.rowCount(.patients), try d.rowCount(.appointments), try d.rowCount(.alerts))
        }
        print("site:            \(c.siteId)")
        print("database:        \(db.path ?? "-") (\(db.usedBytes()) of \(c.storageMaxBytes) bytes)")
        print("outbox pending:  \(s.pending) (clinical \(s.pendingClinical), telemetry \(s.pendingTelemetry))")
        print("oldest pending:  \(s.oldestPendingMs.map { Time.rfc3339(ms: $0) } ?? "-")")
        print("dead letters:    \(s.deadLetters) (events the cloud refused)")
        print("device rejects:  \(rejects)")
        print("roster:          \(patients) patients, \(appts) appointments")
        print("active alerts:   \(alerts)")
        print("cloud:           \(c.cloud == nil ? "disabled (no cloud configured)" : "configured; live state at GET /api/v1/status")")
    }
}

struct Outbox: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Events waiting for the cloud, and those it refused.",
        subcommands: [List.self, DeadLetters.self, Retry.self])
    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Pending events by class and name, with the oldest.")
        @OptionGroup var options: ConfigOption
        func run() async throws {
            let (_, db) = try options.openDatabase()
            let rows = try db.pendingGroups()
            print("class       name                                count  oldest")
            for r in rows {
                let cls = r.eventClass.name
                print(
                    cls.padding(toLength: 12, withPad: " ", startingAt: 0) + r.name.padding(toLength: 36, withPad: " ", startingAt: 0)
                        + String(r.count).padding(toLength: 7, withPad: " ", startingAt: 0) + Time.rfc3339(ms: r.oldestMs))
            }
            if rows.isEmpty { print("(nothing pending)") }
        }
    }
    struct DeadLetters: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "dead-letters", abstract: "Events the cloud refused, with its reasons.")
        @OptionGroup var options: ConfigOption
        func run() async throws {
            let (_, db) = try options.openDatabase()
            let rows = try db.deadLetters()
            for r in rows {
                print("\(Time.rfc3339(ms: r.failedMs))  \(r.id)  \(r.name)  HTTP \(r.status)  \(r.reason)")
            }
            if rows.isEmpty { print("(no dead letters)") }
        }
    }
    struct Retry: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Put the dead letters back in the outbox (same ids).")
        @OptionGroup var options: ConfigOption
        func run() async throws {
            let (_, db) = try options.openDatabase()
            let n = try await db.requeueDeadLetters()
            print("\(n) event(s) re-queued")
        }
    }
}

struct Rejects: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Device messages rejected, with reasons (newest first).")
    @OptionGroup var options: ConfigOption
    @Option(help: "How many rows.") var limit = 50
    func run() async throws {
        let (_, db) = try options.openDatabase()
        let rows = try db.recentRejects(limit: limit)
        for r in rows {
            // Repeats of one device, kind and reason within an hour share a row with a count.
            let count = r.count
            let repeats = count > 1 ? "  (\(count) times, last \(Time.rfc3339(ms: r.lastMs)))" : ""
            print("\(Time.rfc3339(ms: r.receivedMs))  \(r.kind)  \(r.deviceId ?? "?")  \(r.reason)  \(r.detail)  [\(r.topic)]\(repeats)")
        }
        if rows.isEmpty { print("(no rejected messages)") }
    }
}
