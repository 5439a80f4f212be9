import EdgeCore
import EdgeStore
import Foundation
import Logging
import Synchronization

/// The disk budget (CONTRACT §5): past `storage.max_bytes`, or below `storage.min_free_bytes`
/// free on the data directory's file system, telemetry goes oldest-first and
/// `integration/edge.data_dropped` says what went; clinical data is never dropped. When
/// clinical data alone fills it, new telemetry is refused (`storage_full`).
///
/// Checked inside each ingest transaction before it commits (`makeRoom`: three PRAGMAs read
/// from SQLite's header, two `stat` and one `statvfs` per batch), so the database and its WAL
/// never outgrow the budget by more than one batch; and once a second by housekeeping
/// (`enforce`), which also gives freed pages back to the file system and reports the drops.
///
/// What is counted: the pages in use (`page_count - freelist_count`), the WAL's reserve (the
/// size at which it is checkpointed, so a WAL that grows back never pushes the files past the
/// budget) and the shared-memory file.
final class StorageBudget: Sendable {
    let config: EdgeConfig
    let db: AppDatabase
    let state: EdgeState
    let metrics: EdgeMetrics
    let logger: Logger
    let walReserve: Int64
    private let walPath: String
    private let shmPath: String
    /// The log lines (and the drop reports) at most so often, with what they stand for.
    private let rate: RateLimit

    /// At most this much telemetry (by the outbox's `bytes`) is evicted by one ingest batch, so
    /// a large deficit (min_free_bytes on a big database) is made up over several batches
    /// instead of holding a kiosk scan behind one long DELETE.
    static let maxEvictPerBatch: Int64 = 16 << 20
    /// Seconds between two lines of a kind: evictions, failed commits, purges.
    static let evictLogEvery = 60.0, failLogEvery = 30.0, purgeLogEvery = 600.0
    /// `integration/edge.data_dropped` sums up the drops of this period (one event, not one
    /// per batch: it is clinical and never evicted itself).
    static let reportEvery = 1.0
    /// The detail of a telemetry message refused with `storage_full`.
    static let refusal =
        "no room for telemetry: clinical data fills the disk budget (storage.max_bytes) or the file system's free space (storage.min_free_bytes)"

    init(config: EdgeConfig, db: AppDatabase, state: EdgeState, metrics: EdgeMetrics, logger: Logger, backgroundCheckpoints: Bool = true) {
        self.config = config; self.db = db; self.state = state; self.metrics = metrics; self.logger = logger
        rate = RateLimit(clock: state.clock)
        walReserve = AppDatabase.walReserveBytes(budgetBytes: config.storageMaxBytes, backgroundCheckpoints: backgroundCheckpoints)
        walPath = (db.path ?? "") + "-wal"
        shmPath = (db.path ?? "") + "-shm"
    }

    // MARK: measuring

    /// One look at the storage: what counts against the limit, the files' size, and the limit
    /// (the budget, lowered to keep `min_free_bytes` free on the file system).
    struct Check: Sendable {
        var usage: Int64 = 0
        var physical: Int64 = 0
        /// The WAL file's size.
        var wal: Int64 = 0
        var limit: Int64 = 0
        /// The limit comes from the file system's free space, not from `storage.max_bytes`.
        var byFreeSpace = false
        var evicted = 0
        /// Over the limit with no telemetry left to drop: clinical data alone fills it.
        var over = false
    }

    static func fileSize(_ path: String) -> Int64 {
        var s = stat()
        return stat(path, &s) == 0 ? Int64(s.st_size) : 0
    }
    /// Bytes available on the file system holding `dir` (nil when it cannot be read).
    static func freeBytes(_ dir: String) -> Int64? {
        var v = statvfs()
        guard statvfs(dir, &v) == 0 else { return nil }
        return Int64(v.f_bavail) * Int64(v.f_frsize)
    }

    func measure(_ db: StoreTransaction) throws -> Check {
        let f = try db.pageFigures()
        let pageSize = f.pageSize, pages = f.pages, free = f.freePages
        let wal = Self.fileSize(walPath), shm = Self.fileSize(shmPath)
        var c = Check()
        c.wal = wal
        c.physical = pages * pageSize + wal + shm
        // The WAL counts as its reserve, not its size of the moment: evicting telemetry cannot
        // shrink a WAL that a reader keeps from restarting, and a transient WAL spike must not
        // drop all telemetry and refuse the rest (storage_full) as if clinical data filled it.
        c.usage = (pages - free) * pageSize + walReserve + shm
        c.limit = config.storageMaxBytes
        if config.storageMinFreeBytes > 0, let avail = Self.freeBytes(config.dataDir) {
            let byFree = c.physical + avail - config.storageMinFreeBytes
            if byFree < c.limit { c.limit = byFree; c.byFreeSpace = true }
        }
        return c
    }

    /// Inside a write transaction (the ingest batch's, before it commits): when the storage is
    /// over its limit, the oldest telemetry goes (with some headroom, so this is not done for
    /// every batch), at most `maxEvict` bytes of it. `over` when no telemetry is left to drop.
    func makeRoom(_ db: StoreTransaction, nowMs: Int64, maxEvict: Int64 = StorageBudget.maxEvictPerBatch) throws -> Check {
        var c = try measure(db)
        guard c.usage > c.limit else { return c }
        let headroom = min(max(c.limit / 32, 64 << 10), 4 << 20)
        var budgetLeft = maxEvict
        var evicted = 0
        for _ in 0..<8 where c.usage > c.limit && budgetLeft > 0 {
            let want = min(c.usage - c.limit + headroom, budgetLeft)
            let (n, bytes) = try db.evictOldestTelemetry(bytes: want, nowMs: nowMs)
            if n == 0 {
                c.over = true
                break
            }
            evicted += n; budgetLeft -= bytes
            c = try measure(db)
        }
        c.evicted = evicted
        return c
    }

    // MARK: after an ingest batch

    /// Under a burst the background checkpointer (another connection, every 250 ms) never
    /// catches up with a writer committing every few milliseconds, and the WAL grows past its
    /// reserve (a 4 MiB budget saw a 4.9 MB WAL). Past a quarter of its reserve, the writer itself
    /// checkpoints after its commit (PASSIVE: it never waits for readers); the next write then
    /// starts the WAL again from its beginning, within the reserve.
    /// Meanwhile the background checkpointer stands aside (`writerCheckpointsWAL`): its
    /// checkpoint, running beside the writer's commits, would only make the writer's busy.
    func walNeedsCheckpoint(_ c: Check) -> Bool { c.wal > walReserve / 4 }
    func checkpointFromWriter() async {
        lastWriterCheckpointNs.store(state.monoNs(), ordering: .relaxed)
        _ = try? await db.checkpointPassive()
    }
    private let lastWriterCheckpointNs = Atomic<UInt64>(0)
    /// The writer checkpointed within the last second: the background checkpointer waits.
    var writerCheckpointsWAL: Bool {
        let last = lastWriterCheckpointNs.load(ordering: .relaxed)
        return last != 0 && state.monoNs() &- last < 1_000_000_000
    }

    /// After a batch committed: its budget check's outcome in the shared state and the log.
    func noteBatch(_ c: Check) {
        if c.over {
            enterOverBudget(c)
        } else if c.evicted > 0 {
            if state.storage.0 != .overBudget { state.setStorage(.evicting, used: c.physical) }
            if let t = rate.note("evicted", every: Self.evictLogEvery, c.evicted) {
                logger.warning(
                    """
                    storage: \(limitWords(c)) reached: \(t.sum(0)) oldest telemetry events dropped (reported to the cloud as \
                    integration/edge.data_dropped); clinical data is kept
                    """
                )
            }
        }
    }

    private func limitWords(_ c: Check) -> String {
        c.byFreeSpace
            ? "less than storage.min_free_bytes (\(config.storageMinFreeBytes) bytes) free on the file system of \(config.dataDir)"
            : "the disk budget (storage.max_bytes \(config.storageMaxBytes) bytes)"
    }

    private func enterOverBudget(_ c: Check) {
        if state.storage.0 != .overBudget {
            if c.byFreeSpace {
                logger.error(
                    """
                    storage: less than storage.min_free_bytes (\(config.storageMinFreeBytes) bytes) free on the file system of \(config.dataDir) and \
                    no telemetry left to drop: clinical data is kept, new telemetry is refused (storage_full); free space on that file system (df -h \
                    \(config.dataDir))
                    """
                )
            } else {
                logger.error(
                    """
                    storage: clinical data alone fills the disk budget (\(c.usage) of \(c.limit) bytes): clinical data is kept, new telemetry is \
                    refused (storage_full); is the cloud reachable (medic-edge status)? raise storage.max_bytes if the disk allows
                    """
                )
            }
        }
        state.setStorage(.overBudget, used: c.physical)
    }

    static let probeAfterNs: UInt64 = 15_000_000_000

    /// A batch's commit failed (SQLITE_FULL, an I/O error): nothing of it was acknowledged.
    /// Counted, reported to /healthz (after 10 s), logged at most every 30 s.
    func commitFailed(_ error: any Error, messages: Int) {
        metrics.storageWriteFailures()
        let text = Self.describe(error)
        state.commitFailed(text)
        if let t = rate.note("commit_failed", every: Self.failLogEvery, messages) {
            let avail = Self.freeBytes(config.dataDir).map { "\($0) bytes free there" } ?? "free space unknown"
            logger.error(
                """
                storage: commit failed (\(text)): \(t.count) batch(es), \(t.sum(0)) message(s) not acknowledged, devices resend them; free space on \
                the file system of \(config.dataDir) (\(avail); df -h \(config.dataDir)) or check the disk; intake resumes by itself once SQLite can \
                write
                """
            )
        }
    }

    /// A commit succeeded: the failure (if any) is over.
    func commitSucceeded() {
        guard state.commitsFailing else { return }
        state.commitSucceeded()
        let lost = rate.end("commit_failed")?.sum(0) ?? 0
        logger.notice(
            "storage: commits succeed again; intake resumed (\(lost) more message(s) were not acknowledged since the last line, devices resend them)")
    }

    /// SQLite's code and words, without the statement.
    static func describe(_ error: any Error) -> String {
        AppDatabase.describe(error)
    }

    // MARK: housekeeping

    /// Once a second: the same check as each batch, from the timer (when no batch comes);
    /// freed pages given back to the file system when the files are over the limit; the drops
    /// reported; the state and the gauges updated.
    func enforce() async {
        // Commits failing and no batch failed for 15 s (no device message since): a tiny write
        // says whether SQLite can write again, so /healthz (and the watchdog) recover without
        // waiting for a device. Not sooner: a one-row write can still fit where batches do
        // not, and must not hide their failures.
        let clock = state.clock
        if state.commitsFailing, (state.sinceLastCommitFailureNs() ?? 0) > Self.probeAfterNs,
            (try? await db.write({ try $0.setSetting("storage_probe_ms", String(clock.nowMs())) })) != nil
        {
            commitSucceeded()
        }
        guard var c = try? await db.read({ try self.measure($0) }) else { return }
        if c.physical > c.limit {
            await shrink()
            c = (try? await db.read { try self.measure($0) }) ?? c
        }
        var evicted = 0
        for _ in 0..<50 where c.usage > c.limit && !c.over {
            guard let r = try? await db.write({ db in try self.makeRoom(db, nowMs: clock.nowMs()) }) else { break }
            c = r; evicted += r.evicted
            if r.evicted > 0 {
                await shrink()
                c.physical = db.usedBytes()
            }
            if r.evicted == 0 { break }
        }
        await reportDrops()
        if c.over {
            enterOverBudget(c)
        } else {
            if evicted > 0 { noteBatch(Check(usage: c.usage, physical: c.physical, limit: c.limit, byFreeSpace: c.byFreeSpace, evicted: evicted)) }
            state.setStorage(evicted > 0 ? .evicting : .ok, used: c.physical)
        }
        metrics.storage(used: c.physical, budget: config.storageMaxBytes)
        metrics.storageSpace(free: Self.freeBytes(config.dataDir), minFree: config.storageMinFreeBytes, overBudget: state.storage.0 == .overBudget)
    }

    /// Checkpoints the WAL to its start and gives the database's free pages back.
    private func shrink() async {
        _ = try? await db.checkpointAndVacuum()
    }

    /// One `integration/edge.data_dropped` for the drops recorded since the last one (at most
    /// one a second, the housekeeping tick).
    func reportDrops() async {
        guard rate.note("report", every: Self.reportEvery) != nil else { return }
        let config = self.config, clock = state.clock
        _ = try? await db.write { db in
            let last = Int64(try db.setting("dropped_reported") ?? "0") ?? 0
            guard let r = try db.drops(afterId: last) else { return }
            let maxId = r.lastId, count = r.count, oldest = r.oldestMs, newest = r.newestMs
            let data = JSONText.object { j in
                j.add("tenant_id", config.tenantId); j.add("site_id", config.siteId); j.add("class", "telemetry")
                j.add("count", count); j.add("oldest_at", Time.rfc3339(ms: oldest)); j.add("newest_at", Time.rfc3339(ms: newest))
                j.add("reason", "disk_budget")
            }
            try db.enqueue(name: "integration/edge.data_dropped", eventClass: .clinical, source: "edge:storage", data: data, nowMs: clock.nowMs())
            try db.setSetting("dropped_reported", String(maxId))
        }
    }

    /// Rejected-message rows and dead letters: at most 30 days and `storage.max_reject_rows`
    /// each, oldest first, in short transactions of at most 1,000 rows (the writer is never
    /// held by one long DELETE).
    func purgeBounded() async {
        let now = state.clock.nowMs(), maxRows = config.storageMaxRejectRows, step = 1000
        var rejects = 0, dead = 0
        for _ in 0..<10_000 {
            let n = (try? await db.write { try $0.purgeRejects(nowMs: now, maxRows: maxRows, limit: step) }) ?? 0
            rejects += n
            if n < step || Task.isCancelled { break }
            await Task.yield()
        }
        for _ in 0..<10_000 {
            let n = (try? await db.write { try $0.purgeDeadLetters(nowMs: now, maxRows: maxRows, limit: step) }) ?? 0
            dead += n
            if n < step || Task.isCancelled { break }
            await Task.yield()
        }
        guard rejects + dead > 0, let t = rate.note("purged", every: Self.purgeLogEvery, rejects, dead) else { return }
        logger.notice(
            """
            storage: purged \(t.sum(0)) rejected-message row(s) and \(t.sum(1)) dead letter(s), oldest first (kept: 30 days and \
            storage.max_reject_rows = \(maxRows) each)
            """
        )
    }
}
