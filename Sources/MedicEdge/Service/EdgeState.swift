import EdgeCore
import Foundation
import Synchronization

public enum CloudState: String, Sendable { case online, degraded, offline, unauthorized, disabled }
public enum StorageState: String, Sendable { case ok, evicting, overBudget = "over_budget" }

/// Live state shared by the services (MQTT link, cloud health, storage), read by the
/// status API, the edge status publisher and metrics.
public final class EdgeState: Sendable {
    struct S {
        var mqttConnected = false
        var cloudConfigured = false
        var lastSuccessMs: Int64?
        var lastFailureMs: Int64?
        var failingSinceMs: Int64?
        var unauthorized = false
        var storage = StorageState.ok
        var usedBytes: Int64 = 0
        var lastRosterSyncMs: Int64?
        var figures: StatusFigures?
        /// Health (CONTRACT §4), on the monotonic clock (ns).
        var mqttDownSinceNs: UInt64?
        var mqttFatal: String?
        var commitFailingSinceNs: UInt64?
        var lastCommitError = ""
        var lastCommitFailureNs: UInt64?
        var busySinceNs: [String: UInt64] = [:]
    }
    private let s: Mutex<S>

    /// `clock`: the monotonic clock health is judged by (a `ManualClock` in tests).
    public init(cloudConfigured: Bool, clock: any EdgeClock = SystemClock()) {
        self.clock = clock
        var st = S(cloudConfigured: cloudConfigured)
        st.mqttDownSinceNs = clock.monoNs()
        s = Mutex(st)
    }
    public let clock: any EdgeClock
    /// The fridges' monotonic moments (last heard, excursion start), shared by ingest and the cold chain's timer.
    let coldAnchors = ColdChainAnchors()

    public var mqttConnected: Bool {
        get { s.withLock { $0.mqttConnected } }
    }
    public func setMQTTConnected(_ v: Bool) {
        s.withLock {
            if v { $0.mqttDownSinceNs = nil } else if $0.mqttConnected || $0.mqttDownSinceNs == nil { $0.mqttDownSinceNs = self.monoNs() }
            $0.mqttConnected = v
        }
    }

    public func uplinkSucceeded(nowMs: Int64) {
        s.withLock {
            $0.lastSuccessMs = nowMs; $0.failingSinceMs = nil; $0.unauthorized = false
        }
    }
    public func uplinkFailed(nowMs: Int64, unauthorized: Bool = false) {
        s.withLock {
            $0.lastFailureMs = nowMs
            if $0.failingSinceMs == nil { $0.failingSinceMs = nowMs }
            $0.unauthorized = unauthorized
        }
    }
    /// CONTRACT §2's five states.
    public func cloudState(nowMs: Int64) -> CloudState {
        s.withLock { st in
            guard st.cloudConfigured else { return .disabled }
            if st.unauthorized { return .unauthorized }
            if st.failingSinceMs == nil, st.lastSuccessMs != nil { return .online }
            if let ok = st.lastSuccessMs, nowMs - ok < 5 * 60_000 { return .degraded }
            return .offline
        }
    }
    public var lastSuccessMs: Int64? { s.withLock { $0.lastSuccessMs } }

    public var storage: (StorageState, Int64) { s.withLock { ($0.storage, $0.usedBytes) } }
    public func setStorage(_ st: StorageState, used: Int64) {
        s.withLock {
            $0.storage = st; $0.usedBytes = used
        }
    }

    public var lastRosterSyncMs: Int64? { s.withLock { $0.lastRosterSyncMs } }

    /// Pending outbox events, counted once a second by housekeeping (the MQTT status reads
    /// this figure; it never queries the database itself).
    public var backlog: Int { s.withLock { $0.figures?.outbox.pending ?? 0 } }
    /// The status figures as housekeeping last read them (nil before the first read).
    var figures: StatusFigures? { s.withLock { $0.figures } }
    func setFigures(_ f: StatusFigures) { s.withLock { $0.figures = f } }
    public func rosterSynced(nowMs: Int64) { s.withLock { $0.lastRosterSyncMs = nowMs } }

    // MARK: health (CONTRACT §4: /healthz and the watchdog)

    /// The monotonic clock of the state's own records (the injected clock).
    public func monoNs() -> UInt64 { clock.monoNs() }
    /// How long each condition may last before the daemon reports itself unhealthy.
    public static let mqttDownLimitNs: UInt64 = 60_000_000_000
    public static let commitFailLimitNs: UInt64 = 10_000_000_000
    public static let loopStuckLimitNs: UInt64 = 60_000_000_000

    /// libmosquitto's loop ended for good (a fatal code): no reconnect will come.
    public func mqttLoopEnded(_ why: String) { s.withLock { $0.mqttFatal = why } }
    /// A commit failed (SQLITE_FULL, an I/O error); `commitSucceeded` ends the failure.
    public func commitFailed(_ error: String) {
        s.withLock {
            let now = self.monoNs()
            if $0.commitFailingSinceNs == nil { $0.commitFailingSinceNs = now }
            $0.lastCommitError = error
            $0.lastCommitFailureNs = now
        }
    }
    public func commitSucceeded() { s.withLock { if $0.commitFailingSinceNs != nil { $0.commitFailingSinceNs = nil } } }
    public var commitsFailing: Bool { s.withLock { $0.commitFailingSinceNs != nil } }
    /// How long since the last failed commit (nil: none).
    public func sinceLastCommitFailureNs(nowNs: UInt64? = nil) -> UInt64? {
        let nowNs = nowNs ?? monoNs()
        return s.withLock { $0.lastCommitFailureNs.map { nowNs &- $0 } }
    }
    /// A loop (ingest, uplink, roster, housekeeping, noshow) starts a piece of work; `idle`
    /// when it waits (for messages, a back-off, its period). Busy for more than 60 s is stuck.
    public func busy(_ loop: String) { s.withLock { $0.busySinceNs[loop] = self.monoNs() } }
    public func idle(_ loop: String) { s.withLock { _ = $0.busySinceNs.removeValue(forKey: loop) } }

    /// Why the daemon is unhealthy, in words a technician can act on; empty when healthy.
    public func healthReasons(nowNs: UInt64? = nil) -> [String] {
        let nowNs = nowNs ?? monoNs()
        return s.withLock { st in
            var out: [String] = []
            if let why = st.mqttFatal {
                out.append("mqtt: the client loop ended (\(why)); restart the service")
            } else if !st.mqttConnected, let since = st.mqttDownSinceNs, nowNs &- since > EdgeState.mqttDownLimitNs {
                out.append("mqtt: disconnected from the broker for \((nowNs &- since) / 1_000_000_000) s; is mosquitto running?")
            }
            if let since = st.commitFailingSinceNs, nowNs &- since > EdgeState.commitFailLimitNs {
                out.append("storage: commits failing for \((nowNs &- since) / 1_000_000_000) s (\(st.lastCommitError)); is the disk full?")
            }
            for (loop, since) in st.busySinceNs.sorted(by: { $0.key < $1.key }) where nowNs &- since > EdgeState.loopStuckLimitNs {
                out.append("\(loop): no progress for \((nowNs &- since) / 1_000_000_000) s")
            }
            return out
        }
    }
}
