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
        var backlog = 0
        var loopsAlive = true
    }
    private let s: Mutex<S>

    public init(cloudConfigured: Bool) { s = Mutex(S(cloudConfigured: cloudConfigured)) }

    public var mqttConnected: Bool {
        get { s.withLock { $0.mqttConnected } }
    }
    public func setMQTTConnected(_ v: Bool) { s.withLock { $0.mqttConnected = v } }

    public func uplinkSucceeded(nowMs: Int64) {
        s.withLock { $0.lastSuccessMs = nowMs; $0.failingSinceMs = nil; $0.unauthorized = false }
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
    public func setStorage(_ st: StorageState, used: Int64) { s.withLock { $0.storage = st; $0.usedBytes = used } }

    public var lastRosterSyncMs: Int64? { s.withLock { $0.lastRosterSyncMs } }

    /// Pending outbox events, counted once a second by housekeeping (the MQTT status reads
    /// this figure; it never queries the database itself).
    public var backlog: Int { s.withLock { $0.backlog } }
    public func setBacklog(_ n: Int) { s.withLock { $0.backlog = n } }
    public func rosterSynced(nowMs: Int64) { s.withLock { $0.lastRosterSyncMs = nowMs } }
}
