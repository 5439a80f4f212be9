import ArgumentParser
import EdgeCore
import EdgeStore
import Foundation

/// `medic-edge backup FILE` / `backup --dir DIR --keep N` (CONTRACT §7): a consistent copy of
/// the database while the daemon runs, mode 0600, checked before it is named FILE. As the
/// service user; no secret is read.
struct Backup: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Copy the database while the daemon runs (consistent, mode 0600, checked with integrity_check).",
        discussion: """
            medic-edge backup /var/lib/medic-edge/backups/today.sqlite
            medic-edge backup --dir /var/lib/medic-edge/backups --keep 14   (names medic-edge-<UTC time>.sqlite; keeps the newest 14)
            """)
    @OptionGroup var options: ConfigOption
    @Argument(help: "The file to write (replaced if it exists).") var file: String?
    @Option(help: "Write medic-edge-<UTC time>.sqlite into this folder (made with mode 0700 if missing).") var dir: String?
    @Option(help: "With --dir: keep only the newest N backups there (older medic-edge-*.sqlite files are removed).") var keep: Int?

    func validate() throws {
        guard (file == nil) != (dir == nil) else { throw ValidationError("give either FILE or --dir DIR") }
        if let keep, keep < 1 || keep > 10_000 { throw ValidationError("--keep must be from 1 to 10000") }
        if keep != nil && dir == nil { throw ValidationError("--keep goes with --dir") }
    }

    func run() async throws {
        let c = try options.load(readSecrets: false)
        let target: String
        if let dir {
            if !FileManager.default.fileExists(atPath: dir) {
                do {
                    try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
                } catch { Self.fail("medic-edge: cannot make \(dir): \(error.localizedDescription)") }
            }
            target = (dir as NSString).appendingPathComponent(BackupRotation.name(for: Date()))
        } else {
            target = file ?? ""
        }
        let report: BackupReport
        do { report = try AppDatabase.backup(dataDir: c.dataDir, to: target) } catch {
            Self.fail("medic-edge: backup failed: \(error)")
        }
        print(
            "backup written: \(target) (\(report.bytes) bytes, \(report.pages) pages in \(report.steps) steps, "
                + "\(String(format: "%.2f", report.seconds)) s; "
                + "integrity_check ok)")
        if let dir, let keep {
            let removed = BackupRotation.prune(dir: dir, keep: keep)
            if !removed.isEmpty { print("removed \(removed.count) older backup(s): \(removed.joined(separator: ", "))") }
        }
    }

    static func fail(_ message: String) -> Never {
        FileHandle.standardError.write(Data((message + "\n").utf8))
        Foundation.exit(1)
    }
}

/// The names `backup --dir` gives and the rotation that keeps the newest N.
enum BackupRotation {
    static let prefix = "medic-edge-"
    static let suffix = ".sqlite"

    /// `medic-edge-20261207T031500.123Z.sqlite`: UTC, sortable as text.
    static func name(for date: Date) -> String {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "UTC")
        f.dateFormat = "yyyyMMdd'T'HHmmss.SSS'Z'"
        return prefix + f.string(from: date) + suffix
    }

    /// Removes all but the newest `keep` backups this command named in `dir`; returns the removed names.
    static func prune(dir: String, keep: Int) -> [String] {
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [])
            .filter { $0.range(of: #"^medic-edge-[0-9]{8}T[0-9]{6}\.[0-9]{3}Z\.sqlite$"#, options: .regularExpression) != nil }
            .sorted()
        guard names.count > keep else { return [] }
        var removed: [String] = []
        for n in names.prefix(names.count - keep)
        where (try? FileManager.default.removeItem(atPath: (dir as NSString).appendingPathComponent(n))) != nil {
            removed.append(n)
        }
        return removed
    }
}

/// `medic-edge restore FILE` (CONTRACT §7): refuses while the daemon runs (it holds the data
/// directory's lock), checks the file, moves the current database aside and puts the backup
/// in its place. Event ids are in the rows: nothing restored is a new fact to the cloud.
struct Restore: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Put a backup in place of the database (the daemon must be stopped; the current database is kept aside).",
        discussion: """
            systemctl stop medic-edge
            medic-edge restore /var/lib/medic-edge/backups/medic-edge-20261207T031500.000Z.sqlite
            systemctl start medic-edge
            """)
    @OptionGroup var options: ConfigOption
    @Argument(help: "The backup file (made by medic-edge backup).") var file: String

    func run() async throws {
        let c = try options.load(readSecrets: false)
        guard FileManager.default.isReadableFile(atPath: file) else { Backup.fail("medic-edge: restore refused: cannot read \(file)") }
        let lock: DataDirLock
        do { lock = try DataDirLock.acquire(dataDir: c.dataDir) } catch DataDirLock.Failure.held(let pid, _) {
            Backup.fail(
                "medic-edge: restore refused: the daemon is running\(pid.map { " (pid \($0))" } ?? "") on data_dir \(c.dataDir): "
                    + "systemctl stop medic-edge, then run the restore again")
        } catch {
            Backup.fail("medic-edge: restore refused: \(error)")
        }
        defer { withExtendedLifetime(lock) {} }
        do {
            let r = try AppDatabase.restore(from: file, dataDir: c.dataDir)
            print("restored \(file) into \(r.restored)")
            if r.movedAside.isEmpty {
                print("(there was no database before)")
            } else {
                print("the previous database is kept as \(r.movedAside.joined(separator: ", "))")
            }
            print("start the daemon: systemctl start medic-edge (pending events go to the cloud with their original ids)")
        } catch {
            Backup.fail("medic-edge: restore refused: \(error)")
        }
    }
}
