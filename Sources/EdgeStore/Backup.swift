import Foundation
import GRDB
import GRDBSQLite

// The database as a whole file (CONTRACT §7): the online backup, the checks of a file
// (`quick_check`, `integrity_check`, "is it ours"), the restore, and the data directory's lock
// that tells a restore the daemon is running.

/// What a backup did: pages copied, steps taken, and the longest step (the longest the source
/// was read in one go; the writer is never held: see `AppDatabase.backup`).
public struct BackupReport: Sendable {
    public var pages: Int
    public var pageSize: Int
    public var steps: Int
    public var longestStepMs: Double
    public var seconds: Double
    public var bytes: Int64
}

/// What a restore did: where the database it replaced went.
public struct RestoreReport: Sendable {
    public var restored: String
    /// The previous database's files, moved aside (`pre-restore-<time>.sqlite` and its WAL).
    public var movedAside: [String]
}

public struct StoreFileError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(_ description: String) { self.description = description }
}

extension AppDatabase {
    public static let fileName = "medic-edge.sqlite"
    /// `data_dir/medic-edge.sqlite`.
    public static func databasePath(dataDir: String) -> String { (dataDir as NSString).appendingPathComponent(fileName) }

    /// A consistent copy of `dataDir`'s database in `destination` (mode 0600), taken while the
    /// daemon runs, through SQLite's online backup API.
    ///
    /// The copy is one snapshot: a read transaction is opened on the source first and held to
    /// the end, so every step reads the same committed state (no restart when the daemon
    /// commits meanwhile). In WAL mode a reader never blocks the writer: the daemon's commits
    /// go on during the whole backup (its WAL cannot be reset until the backup ends, so
    /// `pagesPerStep` pages are copied per step with a pause between steps only to leave the
    /// disk to the daemon). The copy is made in `destination.tmp`, turned into a single
    /// self-contained file (rollback journal, no WAL), checked with `PRAGMA integrity_check`
    /// and only then renamed to `destination`.
    public static func backup(
        dataDir: String, to destination: String, pagesPerStep: Int32 = 64, pauseMicroseconds: UInt32 = 1000
    ) throws -> BackupReport {
        let source = databasePath(dataDir: dataDir)
        guard FileManager.default.fileExists(atPath: source) else {
            throw StoreFileError("no database at \(source) (data_dir \(dataDir)): nothing to back up")
        }
        let folder = (destination as NSString).deletingLastPathComponent
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: folder.isEmpty ? "." : folder, isDirectory: &isDir), isDir.boolValue else {
            throw StoreFileError("cannot write \(destination): the folder \(folder) does not exist")
        }
        // Never over the live database (a rename there would replace it under the daemon).
        func real(_ p: String) -> String {
            let dir = (p as NSString).deletingLastPathComponent
            let r = realpath(dir.isEmpty ? "." : dir, nil)
            defer { free(r) }
            return (r.map { String(cString: $0) } ?? dir) + "/" + (p as NSString).lastPathComponent
        }
        let live = real(source)
        guard !["", "-wal", "-shm", "-journal"].contains(where: { real(destination) == live + $0 }) else {
            throw StoreFileError("\(destination) is the database itself: give another file")
        }
        let tmp = destination + ".tmp"
        let old = umask(0o077)
        defer { umask(old) }
        for suffix in ["", "-journal", "-wal", "-shm"] { unlink(tmp + suffix) }
        let started = DispatchTime.now().uptimeNanoseconds
        var report = BackupReport(pages: 0, pageSize: 0, steps: 0, longestStepMs: 0, seconds: 0, bytes: 0)
        do {
            var sourceConfig = Configuration()
            sourceConfig.busyMode = .timeout(10)
            let src = try DatabaseQueue(path: source, configuration: sourceConfig)
            let dest = try DatabaseQueue(path: tmp)
            try src.writeWithoutTransaction { s in
                try s.execute(sql: "PRAGMA query_only = 1")
                // The snapshot: a read transaction that has read (a deferred BEGIN alone takes none).
                try s.execute(sql: "BEGIN DEFERRED")
                defer { try? s.execute(sql: "ROLLBACK") }
                report.pageSize = try Int.fetchOne(s, sql: "PRAGMA page_size") ?? 4096
                _ = try Int.fetchOne(s, sql: "SELECT count(*) FROM sqlite_master")
                try dest.writeWithoutTransaction { d in
                    guard let b = sqlite3_backup_init(d.sqliteConnection, "main", s.sqliteConnection, "main") else {
                        throw StoreFileError("cannot start the backup: \(String(cString: sqlite3_errmsg(d.sqliteConnection)))")
                    }
                    var rc: Int32 = SQLITE_OK
                    while true {
                        let t0 = DispatchTime.now().uptimeNanoseconds
                        rc = sqlite3_backup_step(b, pagesPerStep)
                        let ms = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6
                        report.steps += 1
                        report.longestStepMs = max(report.longestStepMs, ms)
                        report.pages = Int(sqlite3_backup_pagecount(b))
                        if rc == SQLITE_DONE { break }
                        guard rc == SQLITE_OK || rc == SQLITE_BUSY || rc == SQLITE_LOCKED else { break }
                        if pauseMicroseconds > 0 { usleep(pauseMicroseconds) }
                    }
                    let finish = sqlite3_backup_finish(b)
                    guard rc == SQLITE_DONE, finish == SQLITE_OK else {
                        throw StoreFileError(
                            "backup failed: SQLite error \(rc == SQLITE_DONE ? finish : rc): \(String(cString: sqlite3_errmsg(d.sqliteConnection)))")
                    }
                    d.clearSchemaCache()
                    // One self-contained file: no WAL beside it.
                    try d.execute(sql: "PRAGMA journal_mode = DELETE")
                }
            }
            try dest.close()
            try src.close()
            chmod(tmp, 0o600)
            let problems = try check(file: tmp, quick: false)
            guard problems.isEmpty else {
                throw StoreFileError("the copy failed its integrity check: \(problems.prefix(3).joined(separator: "; "))")
            }
            let fd = Glibc.open(tmp, O_RDONLY)
            if fd >= 0 { fsync(fd); close(fd) }
            guard rename(tmp, destination) == 0 else {
                throw StoreFileError("cannot rename \(tmp) to \(destination): \(String(cString: strerror(errno)))")
            }
            syncDirectory(of: destination)
        } catch {
            for suffix in ["", "-journal", "-wal", "-shm"] { unlink(tmp + suffix) }
            if let e = error as? StoreFileError { throw e }
            throw StoreFileError(describe(error))
        }
        report.seconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
        report.bytes = ((try? FileManager.default.attributesOfItem(atPath: destination))?[.size] as? NSNumber)?.int64Value ?? 0
        return report
    }

    /// The problems of a database file (empty: none). `quick`: `PRAGMA quick_check` (what the
    /// doctor runs on the live database), else `PRAGMA integrity_check`. `requireSchema`: the
    /// file must be a medic-edge database (the `outbox` table and GRDB's migrations table).
    /// Opens the file without creating it and writes nothing to it.
    public static func check(file: String, quick: Bool, requireSchema: Bool = true) throws -> [String] {
        guard FileManager.default.fileExists(atPath: file) else { throw StoreFileError("no such file: \(file)") }
        do {
            var config = Configuration()
            config.busyMode = .timeout(10)
            config.prepareDatabase { db in try db.execute(sql: "PRAGMA query_only = 1") }
            let q = try DatabaseQueue(path: file, configuration: config)
            defer { try? q.close() }
            return try q.writeWithoutTransaction { db in
                let rows = try String.fetchAll(db, sql: quick ? "PRAGMA quick_check(20)" : "PRAGMA integrity_check(20)")
                var problems = rows == ["ok"] ? [] : rows
                if requireSchema && problems.isEmpty {
                    let tables = Set(
                        try String.fetchAll(
                            db, sql: "SELECT name FROM sqlite_master WHERE type = 'table' AND name IN ('outbox', 'grdb_migrations')"))
                    if !tables.contains("outbox") || !tables.contains("grdb_migrations") {
                        problems.append("not a medic-edge database (no outbox or migrations table)")
                    }
                }
                return problems
            }
        } catch let e as StoreFileError {
            throw e
        } catch {
            // SQLITE_NOTADB, SQLITE_CORRUPT on open or read: the file is damaged.
            return [describe(error)]
        }
    }

    /// Puts the backup `file` in place of `dataDir`'s database: the caller holds the data
    /// directory's lock (`DataDirLock`: the daemon is not running). The file is checked first
    /// (`integrity_check`, and that it is a medic-edge database); the current database and its
    /// WAL are moved aside as `pre-restore-<time>.sqlite` (kept); the copy gets mode 0600 and,
    /// when run as root, the data directory's owner. Event ids are in the rows: restored events
    /// go to the cloud with the ids they had.
    public static func restore(from file: String, dataDir: String, now: Date = Date()) throws -> RestoreReport {
        let problems = try check(file: file, quick: false)
        guard problems.isEmpty else {
            throw StoreFileError("\(file) is not a usable backup: \(problems.prefix(3).joined(separator: "; ")); nothing changed")
        }
        let target = databasePath(dataDir: dataDir)
        let incoming = target + ".restoring"
        let old = umask(0o077)
        defer { umask(old) }
        unlink(incoming)
        do {
            try FileManager.default.copyItem(atPath: file, toPath: incoming)
        } catch {
            unlink(incoming)
            throw StoreFileError("cannot copy \(file) into \(dataDir): \(error.localizedDescription); nothing changed")
        }
        chmod(incoming, 0o600)
        var st = stat()
        if geteuid() == 0, stat(dataDir, &st) == 0 { _ = chown(incoming, st.st_uid, st.st_gid) }
        let fd = Glibc.open(incoming, O_RDONLY)
        if fd >= 0 { fsync(fd); close(fd) }
        // Aside: the database with its WAL and shared memory under one new name (SQLite finds
        // a WAL by the database's name, so the kept copy opens with its last commits).
        var moved: [String] = []
        if FileManager.default.fileExists(atPath: target) {
            let f = DateFormatter()
            f.locale = Locale(identifier: "en_US_POSIX")
            f.timeZone = TimeZone(identifier: "UTC")
            f.dateFormat = "yyyyMMdd'T'HHmmss'Z'"
            var aside = (dataDir as NSString).appendingPathComponent("pre-restore-\(f.string(from: now)).sqlite")
            var n = 1
            while FileManager.default.fileExists(atPath: aside) {
                n += 1
                aside = (dataDir as NSString).appendingPathComponent("pre-restore-\(f.string(from: now))-\(n).sqlite")
            }
            for suffix in ["-wal", "-shm", ""] where FileManager.default.fileExists(atPath: target + suffix) {
                guard rename(target + suffix, aside + suffix) == 0 else {
                    let why = String(cString: strerror(errno))
                    // Put back what was moved; the database stays as it was.
                    for m in moved { _ = rename(m, target + String(m.dropFirst(aside.count))) }
                    unlink(incoming)
                    throw StoreFileError("cannot move \(target + suffix) aside: \(why); nothing changed")
                }
                moved.insert(aside + suffix, at: 0)
            }
        }
        guard rename(incoming, target) == 0 else {
            throw StoreFileError("cannot put the backup in place at \(target): \(String(cString: strerror(errno)))")
        }
        syncDirectory(of: target)
        return RestoreReport(restored: target, movedAside: moved)
    }

    static func syncDirectory(of path: String) {
        let fd = Glibc.open((path as NSString).deletingLastPathComponent, O_RDONLY)
        if fd >= 0 { fsync(fd); close(fd) }
    }
}

/// The data directory's lock (`data_dir/medic-edge.lock`, an exclusive `flock`): the daemon
/// holds it while it runs, and `medic-edge restore` takes it, so a restore never replaces the
/// database under a running daemon and a daemon never starts during a restore. The kernel
/// drops it when the holder exits, however it exits. The file holds the holder's pid.
public final class DataDirLock: Sendable {
    public static let fileName = "medic-edge.lock"
    private let fd: Int32

    public enum Failure: Error, CustomStringConvertible, Sendable {
        case held(pid: Int32?, path: String)
        case cannotOpen(path: String, reason: String)
        public var description: String {
            switch self {
            case .held(let pid, let path): "\(path) is held by another process\(pid.map { " (pid \($0))" } ?? "")"
            case .cannotOpen(let path, let reason): "cannot open \(path): \(reason)"
            }
        }
    }

    private init(fd: Int32) { self.fd = fd }

    /// Takes the lock, creating the directory (0700) and the file (0600) when missing; throws
    /// `.held` at once when another process has it.
    public static func acquire(dataDir: String) throws -> DataDirLock {
        let fm = FileManager.default
        if !fm.fileExists(atPath: dataDir) {
            try? fm.createDirectory(atPath: dataDir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        }
        let path = (dataDir as NSString).appendingPathComponent(fileName)
        let fd = Glibc.open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw Failure.cannotOpen(path: path, reason: String(cString: strerror(errno))) }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            let busy = errno == EWOULDBLOCK
            let reason = String(cString: strerror(errno))
            close(fd)
            if busy { throw Failure.held(pid: holder(dataDir: dataDir), path: path) }
            throw Failure.cannotOpen(path: path, reason: reason)
        }
        let pid = Array("\(getpid())\n".utf8)
        _ = ftruncate(fd, 0)
        _ = pid.withUnsafeBytes { pwrite(fd, $0.baseAddress, $0.count, 0) }
        return DataDirLock(fd: fd)
    }

    /// The pid written by the lock's holder (it may be stale when nobody holds the lock).
    public static func holder(dataDir: String) -> Int32? {
        let path = (dataDir as NSString).appendingPathComponent(fileName)
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return nil }
        return Int32(text.trimmingCharacters(in: .whitespacesAndNewlines))
    }

    /// Whether another process holds the lock now (a probe: takes and drops it when free).
    public static func isHeld(dataDir: String) -> Bool {
        let path = (dataDir as NSString).appendingPathComponent(fileName)
        let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        if flock(fd, LOCK_EX | LOCK_NB) == 0 {
            flock(fd, LOCK_UN)
            return false
        }
        return errno == EWOULDBLOCK
    }

    deinit { close(fd) }
}
