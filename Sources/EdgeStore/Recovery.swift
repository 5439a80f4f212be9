import EdgeCore
import Foundation
import GRDB

// The start-up check (CONTRACT §7): `PRAGMA quick_check` on the database before the daemon
// opens it. A damaged file is moved aside (`corrupt-<time>.sqlite`, kept), a fresh database is
// made, and what can still be read of the damaged one is carried over, row by row, table by
// table (`carriedTables`), skipping what fails to read. The roster is not carried: a fresh
// database has no sync cursor, so the roster sync pulls it in full. Another database's WAL
// beside the file can pass `quick_check` (its pages make a consistent whole): each database
// carries a random instance number in its header (`user_version`), and a WAL whose newest
// page 1 holds another is set aside unread.

/// What the start-up check found and did with a damaged database.
public struct StorageRecovery: Sendable, Equatable {
    /// The damaged file's new name, in the data directory (`corrupt-<time>.sqlite`).
    public var movedTo: String
    /// The WAL beside the damaged file, when it was the damage (the main file alone passed the
    /// check) and was therefore not read: its new name (`corrupt-<time>.wal`).
    public var walSetAside: String?
    /// What the check said (SQLite's words: pages and tables, never a row's value).
    public var problem: String
    /// Rows carried into the fresh database, by table (every table of `carriedTables` that
    /// exists in the damaged file, also with 0).
    public var carried: [String: Int]
    /// By table: stretches of rows that could not be read, and rows read but refused by the
    /// fresh schema (or not whole); a table of `carriedTables` missing from the damaged file
    /// is not listed.
    public var lost: [String: Int]
    /// Tables of `carriedTables` whose rows could not be read at all (not even their schema).
    public var unreadable: [String]
}

extension AppDatabase {
    /// The tables carried from a damaged database into the fresh one, in this order: the
    /// events not yet delivered and those the cloud refused, the local facts (check-ins,
    /// no-shows, kiosk results), the staff accounts and their audit, the cold-chain records.
    /// Not carried: the roster (pulled again), the dedupe table `device_msgs` (a week of every
    /// device message: too long to copy at start-up; a repeated message can be taken again),
    /// sessions (staff sign in again), the rooms' live state (the devices send it again), `kv`
    /// and `sync_state`.
    public static let carriedTables = [
        "outbox", "outbox_dead", "checkins", "noshows", "kiosk_results", "staff", "staff_audit",
        "coldchain_readings", "coldchain_excursions", "coldchain_sensors", "coldchain_days",
    ]

    /// The database file's name in the data directory.

    /// Opens the database like `open`, after checking it (`PRAGMA quick_check`). A damaged
    /// database is moved aside, a fresh one made and what can be read carried over; the
    /// returned `StorageRecovery` says what happened (nil: the database was sound or new).
    /// Throws only for what is not the database's own damage (the data directory cannot be
    /// written, the disk is full): then the damaged file is never moved.
    public static func openChecked(
        dataDir: String, budgetBytes: Int64 = 2_147_483_648, backgroundCheckpoints: Bool = false, nowMs: Int64
    ) throws -> (AppDatabase, StorageRecovery?) {
        let path = (dataDir as NSString).appendingPathComponent(fileName)
        var problem: String?
        var walIsForeign = false
        if FileManager.default.fileExists(atPath: path) {
            if let mine = fileUserVersion(path), mine != 0, let theirs = walUserVersion(path + "-wal"), theirs != mine {
                problem = "its WAL belongs to another database (instance \(theirs), this file's is \(mine))"
                walIsForeign = true
            } else {
                problem = try check(path: path)
            }
        }
        if problem == nil {
            do {
                let db = try open(dataDir: dataDir, budgetBytes: budgetBytes, backgroundCheckpoints: backgroundCheckpoints)
                try db.markInstance()
                return (db, nil)
            } catch let e as DatabaseError where isDamage(e) {
                problem = describe(e)
            }
        }
        let aside = try moveAside(path: path, dataDir: dataDir, nowMs: nowMs, walIsForeign: walIsForeign)
        let db = try open(dataDir: dataDir, budgetBytes: budgetBytes, backgroundCheckpoints: backgroundCheckpoints)
        try db.markInstance()
        var r = StorageRecovery(
            movedTo: (aside.file as NSString).lastPathComponent, walSetAside: aside.walSetAside.map { ($0 as NSString).lastPathComponent },
            problem: problem ?? "damaged", carried: [:], lost: [:], unreadable: [])
        if let (had, header) = extendToHeaderSize(aside.file) {
            r.problem += "; the file is shorter than its header says (\(had) of \(header) bytes)"
        }
        try db.carry(from: aside.file, into: &r)
        // What the read-only reads left beside the kept file: the index, an empty WAL.
        try? FileManager.default.removeItem(atPath: aside.file + "-shm")
        if (try? FileManager.default.attributesOfItem(atPath: aside.file + "-wal")[.size] as? NSNumber)?.intValue == 0 {
            try? FileManager.default.removeItem(atPath: aside.file + "-wal")
        }
        return (db, r)
    }

    /// The errors that mean the file itself is damaged (not a permission, a full disk or a
    /// busy lock).
    static func isDamage(_ e: DatabaseError) -> Bool {
        [.SQLITE_CORRUPT, .SQLITE_NOTADB, .SQLITE_FORMAT].contains(e.resultCode)
    }

    /// nil when the file passes `PRAGMA quick_check` (with its WAL, read-only: nothing is
    /// written, a WAL is not checkpointed into the file); else what is wrong. Throws for an
    /// error that is not damage.
    static func check(path: String) throws -> String? {
        var config = Configuration()
        config.readonly = true
        do {
            let q = try DatabaseQueue(path: path, configuration: config)
            defer { try? q.close() }
            let lines = try q.read { db in try String.fetchAll(db, sql: "PRAGMA quick_check(20)") }
            if lines == ["ok"] { return nil }
            // One line: SQLite's words without its "*** in database main ***" heading.
            return lines.prefix(3).joined(separator: "; ").replacingOccurrences(of: "*** in database main ***", with: "")
                .split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
                .joined(separator: "; ")
        } catch let e as DatabaseError where isDamage(e) {
            return describe(e)
        }
    }

    /// Moves the damaged file (and its WAL) to `corrupt-<time>.sqlite` in the data directory;
    /// the shared-memory index is removed (rebuilt from the WAL when read). When the WAL is
    /// another database's, or the main file alone passes the check, the WAL was the damage: it
    /// is kept as `corrupt-<time>.wal`, where SQLite will not read it with the file.
    static func moveAside(path: String, dataDir: String, nowMs: Int64, walIsForeign: Bool = false) throws -> (file: String, walSetAside: String?) {
        let fm = FileManager.default
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "UTC")
        f.dateFormat = "yyyyMMdd'T'HHmmss'Z'"
        let stamp = f.string(from: Date(timeIntervalSince1970: Double(nowMs) / 1000))
        var base = (dataDir as NSString).appendingPathComponent("corrupt-\(stamp)")
        var n = 1
        while fm.fileExists(atPath: base + ".sqlite") {
            n += 1
            base = (dataDir as NSString).appendingPathComponent("corrupt-\(stamp)-\(n)")
        }
        let file = base + ".sqlite", wal = base + ".wal"
        try fm.moveItem(atPath: path, toPath: file)
        try? fm.removeItem(atPath: path + "-shm")
        let walBytes = (try? fm.attributesOfItem(atPath: path + "-wal")[.size] as? NSNumber)?.int64Value
        guard let walBytes else { return (file, nil) }
        guard walBytes > 0 else {
            try? fm.removeItem(atPath: path + "-wal")
            return (file, nil)
        }
        try fm.moveItem(atPath: path + "-wal", toPath: wal)
        defer {
            // A read-only open makes an empty WAL and an index beside the file it reads.
            try? fm.removeItem(atPath: file + "-shm")
        }
        if walIsForeign { return (file, wal) }
        let aloneSound: Bool
        do { aloneSound = try check(path: file) == nil } catch { aloneSound = false }
        if aloneSound { return (file, wal) }
        try? fm.removeItem(atPath: file + "-wal")
        try? fm.removeItem(atPath: file + "-shm")
        try fm.moveItem(atPath: wal, toPath: file + "-wal")
        return (file, nil)
    }

    /// A file cut short (its header, still trusted by SQLite, counts more pages than it has)
    /// cannot even show its schema: it is extended with zeros (a sparse end: no disk used) to
    /// the size its header says, so the pages that are left can be read and the missing ones
    /// fail like damaged pages. Returns (bytes it had, bytes the header says) when extended.
    static func extendToHeaderSize(_ path: String) -> (Int64, Int64)? {
        guard let h = FileHandle(forReadingAtPath: path) else { return nil }
        defer { try? h.close() }
        guard let b = try? h.read(upToCount: 100), b.count == 100, let end = try? h.seekToEnd() else { return nil }
        let hb = Array(b)
        let rawPageSize = Int64(hb[16]) << 8 | Int64(hb[17])
        let pageSize = rawPageSize == 1 ? 65536 : rawPageSize
        let pages = Int64(bigEndian(hb, 28))
        // SQLite trusts the header's page count only when the change counter matches
        // "version valid for"; else it goes by the file's size already.
        guard bigEndian(hb, 24) == bigEndian(hb, 92), pageSize >= 512, pages > 0 else { return nil }
        let want = pages * pageSize
        guard Int64(end) < want, truncate(path, off_t(want)) == 0 else { return nil }
        return (Int64(end), want)
    }

    // MARK: which database a WAL belongs to

    /// Marks this database with a random instance number in its header (`PRAGMA user_version`,
    /// page 1) when it has none. A WAL carries page 1 whenever a commit changed the file's size
    /// or free list, so a WAL holding another number is another database's.
    func markInstance() throws {
        try writer.writeWithoutTransaction { db in
            if try Int.fetchOne(db, sql: "PRAGMA user_version") ?? 0 == 0 {
                try db.execute(sql: "PRAGMA user_version = \(Int32.random(in: 1...Int32.max))")
            }
        }
    }

    /// The instance number in a database file's header (offset 60), read without SQLite.
    static func fileUserVersion(_ path: String) -> UInt32? {
        guard let h = FileHandle(forReadingAtPath: path) else { return nil }
        defer { try? h.close() }
        guard let b = try? h.read(upToCount: 64), b.count == 64 else { return nil }
        return bigEndian(Array(b), 60)
    }

    /// The instance number in the newest committed image of page 1 in a WAL file (nil: no WAL,
    /// or none of its valid frames is page 1). Frames are read in order while their salts match
    /// the WAL header's (the frames of this WAL generation).
    static func walUserVersion(_ walPath: String) -> UInt32? {
        guard let h = FileHandle(forReadingAtPath: walPath) else { return nil }
        defer { try? h.close() }
        guard let header = try? h.read(upToCount: 32), header.count == 32 else { return nil }
        let hb = Array(header)
        let magic = bigEndian(hb, 0)
        guard magic == 0x377F_0682 || magic == 0x377F_0683 else { return nil }
        let pageSize = Int(bigEndian(hb, 8))
        guard pageSize >= 512, pageSize <= 65536 else { return nil }
        let salt1 = bigEndian(hb, 16), salt2 = bigEndian(hb, 20)
        var pending: UInt32?, committed: UInt32?
        var offset: UInt64 = 32
        for _ in 0..<1_000_000 {
            guard (try? h.seek(toOffset: offset)) != nil, let fh = try? h.read(upToCount: 24), fh.count == 24 else { break }
            let f = Array(fh)
            guard bigEndian(f, 8) == salt1, bigEndian(f, 12) == salt2 else { break }
            if bigEndian(f, 0) == 1 {
                guard let page = try? h.read(upToCount: 64), page.count == 64 else { break }
                pending = bigEndian(Array(page), 60)
            }
            if bigEndian(f, 4) != 0, let p = pending { committed = p }
            offset += 24 + UInt64(pageSize)
        }
        return committed
    }

    private static func bigEndian(_ b: [UInt8], _ at: Int) -> UInt32 {
        UInt32(b[at]) << 24 | UInt32(b[at + 1]) << 16 | UInt32(b[at + 2]) << 8 | UInt32(b[at + 3])
    }

    /// Copies every row of `carriedTables` that can be read from the damaged file at `source`
    /// (opened read-only) into this database, counting into `r`.
    func carry(from source: String, into r: inout StorageRecovery) throws {
        var config = Configuration()
        config.readonly = true
        let old: DatabaseQueue
        do { old = try DatabaseQueue(path: source, configuration: config) } catch {
            r.unreadable = AppDatabase.carriedTables
            return
        }
        defer { try? old.close() }
        let present: Set<String>
        do {
            present = Set(try old.read { try String.fetchAll($0, sql: "SELECT name FROM sqlite_master WHERE type = 'table'") })
        } catch {
            r.unreadable = AppDatabase.carriedTables
            return
        }
        for table in AppDatabase.carriedTables where present.contains(table) {
            let columns: [String] = try writer.read { db in
                guard try db.tableExists(table) else { return [] }
                return try db.columns(in: table).map(\.name)
            }
            guard !columns.isEmpty else { continue }
            do {
                let (carried, lost) = try copyRows(table: table, columns: columns, from: old)
                r.carried[table] = carried
                if lost > 0 { r.lost[table] = lost }
            } catch let e as CarryWriteError {
                // The fresh database cannot be written (the disk is full?): the daemon starts
                // with what was carried; the damaged file is kept.
                r.problem += "; carrying stopped at \(table): \(AppDatabase.describe(e.underlying))"
                break
            } catch {
                r.unreadable.append(table)
            }
        }
    }

    /// One table, row by row, in rowid order. A read that fails ends a stretch: the copy goes on
    /// after the unreadable pages, found by seeking ever further past the last row read (a seek
    /// that does not cross a damaged page works). A table without rowid is read by primary key,
    /// forward, then backward from its end down to the last key read. Returns (rows carried, stretches and rows lost). Throws when nothing of the
    /// table can be read.
    private func copyRows(table: String, columns: [String], from old: DatabaseQueue) throws -> (Int, Int) {
        let oldColumns: [String] = try old.read { db in try db.columns(in: table).map(\.name) }
        let shared = columns.filter { oldColumns.contains($0) }
        guard !shared.isEmpty else { return (0, 0) }
        let list = shared.map { "\"\($0)\"" }.joined(separator: ", ")
        let marks = Array(repeating: "?", count: shared.count).joined(separator: ", ")
        let insert = "INSERT OR IGNORE INTO \"\(table)\" (\(list)) VALUES (\(marks))"
        let hasRowid: Bool = (try? old.read { db in try db.execute(sql: "SELECT rowid FROM \"\(table)\" LIMIT 0") }) != nil
        let isOutbox = table == "outbox" || table == "outbox_dead"
        var carried = 0, lost = 0
        var last: Int64 = 0  // the carried tables' rowids are positive
        var rounds = 0, readAny = false
        try writer.write { new in
            let ins = try new.makeStatement(sql: insert)
            func keep(_ row: Row) throws {
                // An event whose JSON no longer parses could only be refused by the cloud.
                if isOutbox {
                    let value: DatabaseValue = row["data"]
                    guard let data = String.fromDatabaseValue(value), (try? JSON.parse(data)) != nil else {
                        lost += 1
                        return
                    }
                }
                do { try ins.execute(arguments: StatementArguments(shared.map { row[$0] as DatabaseValue })) } catch {
                    throw CarryWriteError(underlying: error)
                }
                if new.changesCount > 0 { carried += 1 } else { lost += 1 }
            }
            guard hasRowid else {
                // By primary key, forward until a read fails, then backward from the end down to
                // the last key read: the rows on both sides of one damaged stretch are carried.
                let pk = try old.read { db in try db.primaryKey(table).columns }
                let key = pk.map { "\"\($0)\"" }.joined(separator: ", ")
                var lastKey: [DatabaseValue]?
                var failed = false
                do {
                    try old.read { db in
                        let rows = try Row.fetchCursor(db, sql: "SELECT \(list) FROM \"\(table)\" ORDER BY \(key)")
                        while let row = try rows.next() {
                            readAny = true
                            try keep(row)
                            lastKey = pk.map { row[$0] as DatabaseValue }
                        }
                    }
                } catch let e as CarryWriteError {
                    throw e
                } catch {
                    lost += 1
                    failed = true
                }
                guard failed else { return }
                do {
                    try old.read { db in
                        let desc = pk.map { "\"\($0)\" DESC" }.joined(separator: ", ")
                        let after = lastKey.map { _ in " WHERE (\(key)) > (\(pk.map { _ in "?" }.joined(separator: ", ")))" } ?? ""
                        let rows = try Row.fetchCursor(
                            db, sql: "SELECT \(list) FROM \"\(table)\"\(after) ORDER BY \(desc)", arguments: StatementArguments(lastKey ?? []))
                        while let row = try rows.next() {
                            readAny = true
                            try keep(row)
                        }
                    }
                } catch let e as CarryWriteError {
                    throw e
                } catch {}
                if !readAny { throw DatabaseError(resultCode: .SQLITE_CORRUPT, message: "table \(table) unreadable") }
                return
            }
            while rounds < 10_000 {
                rounds += 1
                do {
                    try old.read { db in
                        let rows = try Row.fetchCursor(
                            db, sql: "SELECT rowid AS \"_rowid_\", \(list) FROM \"\(table)\" WHERE rowid > ? ORDER BY rowid", arguments: [last])
                        while let row = try rows.next() {
                            readAny = true
                            try keep(row)
                            last = row["_rowid_"]
                        }
                    }
                    return
                } catch let e as CarryWriteError {
                    throw e
                } catch {
                    lost += 1
                    // Past the unreadable pages: the first seek after `last + step` that reads.
                    var step: Int64 = 1
                    var resumed = false
                    while step < (1 << 40) {
                        let probe = last.addingReportingOverflow(step).partialValue
                        let readable: Bool
                        do {
                            _ = try old.read { db in
                                try Int64.fetchOne(
                                    db, sql: "SELECT rowid FROM \"\(table)\" WHERE rowid > ? ORDER BY rowid LIMIT 1", arguments: [probe])
                            }
                            readable = true
                        } catch { readable = false }
                        if readable {
                            last = probe
                            resumed = true
                            break
                        }
                        step *= 2
                    }
                    if !resumed { break }
                }
            }
            if !readAny && lost > 0 {
                // Not one row could be read: the table is unreadable.
                throw DatabaseError(resultCode: .SQLITE_CORRUPT, message: "table \(table) unreadable")
            }
        }
        return (carried, lost)
    }
}

/// A write into the fresh database failed while carrying rows (not a read of the damaged one).
struct CarryWriteError: Error {
    let underlying: any Error
}
