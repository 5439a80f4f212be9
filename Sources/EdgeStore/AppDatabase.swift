import EdgeCore
import Foundation
import GRDB

/// The appliance's one SQLite database (WAL, `auto_vacuum = INCREMENTAL` from creation,
/// `synchronous = FULL`), in the style of GRDB's demo app: it takes a `DatabaseWriter`,
/// one migrator, write methods named for what they do.
///
/// The store is the one owner of every table: other modules call its methods named for their
/// intent (in the files beside this one, one per table family) and never see SQL or GRDB.
/// Several operations in one commit go through `write { tx in … }` (`StoreTransaction`).
public final class AppDatabase: Sendable {
    let writer: any DatabaseWriter
    public let path: String?

    init(_ writer: any DatabaseWriter, path: String? = nil) throws {
        self.writer = writer
        self.path = path
        try AppDatabase.migrator.migrate(writer)
    }

    /// `budgetBytes` bounds the WAL: it is checkpointed well before it could outgrow the
    /// disk budget (at most 1/16 of it, never more than SQLite's default 1000 pages).
    /// `backgroundCheckpoints`: a `Checkpointer` keeps the WAL short, so the writer's own
    /// automatic checkpoint (inside a commit) is only a safety net at 4× that size.
    public static func configuration(budgetBytes: Int64 = 2_147_483_648, backgroundCheckpoints: Bool = false) -> Configuration {
        var config = Configuration()
        config.busyMode = .timeout(10)
        let pages = max(16, min(1000, Int(budgetBytes / 4096 / 16))) * (backgroundCheckpoints ? 4 : 1)
        let journalLimit = max(65536, min(16_777_216, Int(budgetBytes / 16)))
        config.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = FULL")
            try db.execute(sql: "PRAGMA journal_size_limit = \(journalLimit)")
            try db.execute(sql: "PRAGMA wal_autocheckpoint = \(pages)")
        }
        return config
    }

    /// Opens (or creates) `data_dir/medic-edge.sqlite` with 0700/0600 permissions.
    public static func open(
        dataDir: String, readonly: Bool = false, budgetBytes: Int64 = 2_147_483_648,
        backgroundCheckpoints: Bool = false
    ) throws -> AppDatabase {
        let fm = FileManager.default
        if !fm.fileExists(atPath: dataDir) {
            try fm.createDirectory(atPath: dataDir, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        }
        chmod(dataDir, 0o700)
        let path = (dataDir as NSString).appendingPathComponent("medic-edge.sqlite")
        let old = umask(0o077)
        defer { umask(old) }
        if !fm.fileExists(atPath: path) {
            // auto_vacuum can only be chosen before the first table exists.
            let q = try DatabaseQueue(path: path)
            try q.writeWithoutTransaction { db in
                try db.execute(sql: "PRAGMA auto_vacuum = INCREMENTAL")
                try db.execute(sql: "PRAGMA journal_mode = WAL")
                try db.execute(sql: "CREATE TABLE _init(x); DROP TABLE _init;")
            }
            try q.close()
        }
        var config = configuration(budgetBytes: budgetBytes, backgroundCheckpoints: backgroundCheckpoints)
        config.readonly = readonly
        let pool = try DatabasePool(path: path, configuration: config)
        for suffix in ["", "-wal", "-shm"] { chmod(path + suffix, 0o600) }
        return try AppDatabase(pool, path: path)
    }

    public static var migrator: DatabaseMigrator {
        var m = DatabaseMigrator()
        m.registerMigration("v1") { db in
            try db.execute(
                sql: """
                    CREATE TABLE outbox (
                      seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, name TEXT NOT NULL,
                      class INTEGER NOT NULL, source TEXT NOT NULL, data TEXT NOT NULL, created_ms INTEGER NOT NULL,
                      bytes INTEGER NOT NULL);
                    CREATE INDEX outbox_class_seq ON outbox(class, seq);
                    CREATE TABLE outbox_dead (
                      seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, name TEXT NOT NULL, class INTEGER NOT NULL,
                      source TEXT NOT NULL, data TEXT NOT NULL, created_ms INTEGER NOT NULL, bytes INTEGER NOT NULL,
                      status INTEGER NOT NULL, reason TEXT NOT NULL, failed_ms INTEGER NOT NULL);
                    CREATE TABLE rejects (
                      id INTEGER PRIMARY KEY AUTOINCREMENT, received_ms INTEGER NOT NULL, topic TEXT NOT NULL,
                      kind TEXT NOT NULL, device_id TEXT, msg_id TEXT, reason TEXT NOT NULL, detail TEXT NOT NULL);
                    CREATE TABLE device_msgs (
                      device_id TEXT NOT NULL, msg_id TEXT NOT NULL, received_ms INTEGER NOT NULL, ack TEXT NOT NULL,
                      PRIMARY KEY (device_id, msg_id)) WITHOUT ROWID;
                    CREATE INDEX device_msgs_time ON device_msgs(received_ms);
                    CREATE TABLE kiosk_results (
                      device_id TEXT NOT NULL, scan_id TEXT NOT NULL, outcome TEXT NOT NULL, result TEXT NOT NULL,
                      created_ms INTEGER NOT NULL, PRIMARY KEY (device_id, scan_id)) WITHOUT ROWID;
                    CREATE TABLE patients (id TEXT PRIMARY KEY, name TEXT NOT NULL, phone TEXT, qr_code_hash TEXT,
                      created_at TEXT, updated_at TEXT);
                    CREATE INDEX patients_qr ON patients(qr_code_hash);
                    CREATE TABLE professionals (id TEXT PRIMARY KEY, name TEXT, created_at TEXT, updated_at TEXT);
                    CREATE TABLE services (id TEXT PRIMARY KEY, name TEXT, created_at TEXT, updated_at TEXT);
                    CREATE TABLE rooms (id TEXT PRIMARY KEY, name TEXT, mqtt_room_id TEXT, created_at TEXT, updated_at TEXT);
                    CREATE INDEX rooms_key ON rooms(mqtt_room_id);
                    CREATE TABLE appointments (
                      id TEXT PRIMARY KEY, patient_id TEXT, professional_id TEXT, service_id TEXT, room_id TEXT,
                      start_ms INTEGER NOT NULL, end_ms INTEGER NOT NULL, scheduled_start TEXT NOT NULL,
                      scheduled_end TEXT NOT NULL, status TEXT NOT NULL, created_at TEXT, updated_at TEXT);
                    CREATE INDEX appointments_patient ON appointments(patient_id, start_ms);
                    CREATE INDEX appointments_start ON appointments(start_ms);
                    CREATE TABLE checkins (
                      appointment_id TEXT PRIMARY KEY, patient_id TEXT NOT NULL, checked_in_ms INTEGER NOT NULL,
                      method TEXT NOT NULL, device_id TEXT NOT NULL, staff TEXT, event_id TEXT NOT NULL);
                    CREATE TABLE noshows (appointment_id TEXT PRIMARY KEY, detected_ms INTEGER NOT NULL, event_id TEXT NOT NULL);
                    CREATE TABLE presence (device_id TEXT PRIMARY KEY, room_key TEXT NOT NULL, occupied INTEGER NOT NULL,
                      online INTEGER NOT NULL DEFAULT 1, updated_ms INTEGER NOT NULL);
                    CREATE TABLE room_state (room_key TEXT PRIMARY KEY, occupied INTEGER NOT NULL, changed_ms INTEGER NOT NULL);
                    CREATE TABLE readings (room_key TEXT NOT NULL, metric TEXT NOT NULL, value REAL NOT NULL,
                      at_ms INTEGER NOT NULL, device_id TEXT NOT NULL, PRIMARY KEY (room_key, metric)) WITHOUT ROWID;
                    CREATE TABLE alerts (room_key TEXT NOT NULL, metric TEXT NOT NULL, value REAL NOT NULL, min REAL NOT NULL,
                      max REAL NOT NULL, since_ms INTEGER NOT NULL, device_id TEXT NOT NULL,
                      PRIMARY KEY (room_key, metric)) WITHOUT ROWID;
                    CREATE TABLE devices (device_id TEXT PRIMARY KEY, type TEXT, room_id TEXT, fw TEXT, state TEXT,
                      last_seen_ms INTEGER NOT NULL);
                    CREATE TABLE staff (name TEXT PRIMARY KEY, salt BLOB NOT NULL, hash BLOB NOT NULL,
                      iterations INTEGER NOT NULL, created_ms INTEGER NOT NULL);
                    CREATE TABLE sessions (token_hash TEXT PRIMARY KEY, name TEXT NOT NULL, expires_ms INTEGER NOT NULL);
                    CREATE TABLE staff_audit (id INTEGER PRIMARY KEY AUTOINCREMENT, at_ms INTEGER NOT NULL, name TEXT NOT NULL,
                      action TEXT NOT NULL, target TEXT);
                    CREATE TABLE sync_state (collection TEXT PRIMARY KEY, cursor TEXT, last_sync_ms INTEGER, last_full_ms INTEGER);
                    CREATE TABLE kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);
                    CREATE TABLE dropped (id INTEGER PRIMARY KEY AUTOINCREMENT, class TEXT NOT NULL, count INTEGER NOT NULL,
                      oldest_ms INTEGER NOT NULL, newest_ms INTEGER NOT NULL, at_ms INTEGER NOT NULL);
                    """)
        }
        // Bounded device dead letters (CONTRACT §5): repeated rejections of one device for one
        // kind and reason within an hour are one row with a count; the dead-letter tables are
        // purged oldest-first by housekeeping (`Ledger.purgeRejects`, `purgeDeadLetters`).
        // Drops evicted before this version were reported when made: `dropped_reported` starts
        // past them (`StorageBudget.reportDrops` reports newer rows).
        m.registerMigration("v2-bounded-rejects") { db in
            try db.execute(
                sql: """
                    ALTER TABLE rejects ADD COLUMN count INTEGER NOT NULL DEFAULT 1;
                    ALTER TABLE rejects ADD COLUMN last_ms INTEGER NOT NULL DEFAULT 0;
                    UPDATE rejects SET last_ms = received_ms;
                    CREATE INDEX rejects_repeat ON rejects(device_id, kind, reason, id);
                    INSERT OR REPLACE INTO kv (key, value) SELECT 'dropped_reported', CAST(coalesce(max(id), 0) AS TEXT) FROM dropped;
                    """)
        }
        // The outbox's figures kept by triggers, so the status API and metrics read one row
        // instead of counting a table of up to millions of rows (CONTRACT §4: a request never
        // scans a table). Outbox rows are only inserted (or ignored) and deleted; a seq is in
        // outbox_dead at most once (dead-lettering deletes it from the outbox in the same
        // transaction), so no REPLACE skips a delete trigger.
        m.registerMigration("v3-outbox-figures") { db in
            try db.execute(
                sql: """
                    CREATE TABLE outbox_figures (id INTEGER PRIMARY KEY CHECK (id = 1), clinical INTEGER NOT NULL,
                      telemetry INTEGER NOT NULL, dead INTEGER NOT NULL);
                    INSERT INTO outbox_figures SELECT 1, (SELECT count(*) FROM outbox WHERE class = 0),
                      (SELECT count(*) FROM outbox WHERE class = 1), (SELECT count(*) FROM outbox_dead);
                    CREATE TRIGGER outbox_figures_ins AFTER INSERT ON outbox BEGIN
                      UPDATE outbox_figures SET clinical = clinical + (NEW.class = 0), telemetry = telemetry + (NEW.class = 1) WHERE id = 1; END;
                    CREATE TRIGGER outbox_figures_del AFTER DELETE ON outbox BEGIN
                      UPDATE outbox_figures SET clinical = clinical - (OLD.class = 0), telemetry = telemetry - (OLD.class = 1) WHERE id = 1; END;
                    CREATE TRIGGER outbox_figures_dead_ins AFTER INSERT ON outbox_dead BEGIN
                      UPDATE outbox_figures SET dead = dead + 1 WHERE id = 1; END;
                    CREATE TRIGGER outbox_figures_dead_del AFTER DELETE ON outbox_dead BEGIN
                      UPDATE outbox_figures SET dead = dead - 1 WHERE id = 1; END;
                    """)
        }
        // The cold chain (CONTRACT §6): each fridge's readings as a data logger keeps them (kept
        // 3 years, thinned after 30 days; never evicted by the disk budget), its excursions with
        // their acknowledgement (at most one open per room), its sensor's last word (silence is
        // judged on it), and the days whose summary was sent.
        m.registerMigration("v4-cold-chain") { db in
            try db.execute(
                sql: """
                    CREATE TABLE coldchain_readings (room_key TEXT NOT NULL, at_ms INTEGER NOT NULL, device_id TEXT NOT NULL,
                      temp_c REAL NOT NULL, PRIMARY KEY (room_key, at_ms, device_id)) WITHOUT ROWID;
                    CREATE TABLE coldchain_excursions (id TEXT PRIMARY KEY, room_key TEXT NOT NULL, device_id TEXT NOT NULL,
                      started_ms INTEGER NOT NULL, ended_ms INTEGER, min_c REAL NOT NULL, max_c REAL NOT NULL,
                      limit_min REAL NOT NULL, limit_max REAL NOT NULL, alarm_ms INTEGER, ack_by TEXT, ack_ms INTEGER, action TEXT);
                    CREATE INDEX coldchain_excursions_room ON coldchain_excursions(room_key, started_ms);
                    CREATE UNIQUE INDEX coldchain_excursions_open ON coldchain_excursions(room_key) WHERE ended_ms IS NULL;
                    CREATE TABLE coldchain_sensors (room_key TEXT PRIMARY KEY, device_id TEXT, last_reading_ms INTEGER,
                      last_heard_ms INTEGER, silent_since_ms INTEGER);
                    CREATE TABLE coldchain_days (room_key TEXT NOT NULL, date TEXT NOT NULL, event_id TEXT NOT NULL,
                      sent_ms INTEGER NOT NULL, PRIMARY KEY (room_key, date)) WITHOUT ROWID;
                    """)
        }
        return m
    }

    /// The WAL's share of the disk budget: the size at which the writer's own automatic
    /// checkpoint starts (see `configuration`). The budget check keeps this much free for it.
    public static func walReserveBytes(budgetBytes: Int64, backgroundCheckpoints: Bool) -> Int64 {
        Int64(max(16, min(1000, Int(budgetBytes / 4096 / 16))) * (backgroundCheckpoints ? 4 : 1)) * 4096
    }
}

/// Checkpoints the WAL from a connection of its own. PASSIVE never takes the write lock, so
/// the writer (the ingest path: kiosk scans, acks) never waits for a checkpoint's copy and
/// fsync inside its commit.
public final class Checkpointer: Sendable {
    private let queue: DatabaseQueue

    public init(path: String) throws {
        var c = Configuration()
        c.busyMode = .timeout(1)
        c.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = FULL")
            try db.execute(sql: "PRAGMA wal_autocheckpoint = 0")
        }
        queue = try DatabaseQueue(path: path, configuration: c)
    }

    /// One PASSIVE checkpoint: returns (frames in the WAL, frames checkpointed). Cheap when
    /// there is nothing to copy.
    @discardableResult
    public func run() async throws -> (Int, Int) {
        try await queue.writeWithoutTransaction { db in
            let row = try Row.fetchOne(db, sql: "PRAGMA wal_checkpoint(PASSIVE)")
            return (row?[1] ?? 0, row?[2] ?? 0)
        }
    }
}
