import CoreMetrics
import EdgeCore
import Foundation
import Metrics
import Prometheus

/// The daemon's metrics (CONTRACT §4), through swift-metrics with a Prometheus backend.
public final class EdgeMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry

    public init(bootstrap: Bool) {
        registry = PrometheusCollectorRegistry()
        if bootstrap {
            var factory = PrometheusMetricsFactory(registry: registry)
            let buckets: [Duration] = [
                .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(3),
                .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50),
                .milliseconds(100), .milliseconds(250), .milliseconds(1000),
            ]
            factory.durationHistogramBuckets = ["medic_edge_checkin_seconds": buckets]
            MetricsSystem.bootstrap(factory)
        }
        // Make the core series visible from the start (zero until something happens).
        for k in MessageKind.allCases {
            for r in ["accepted", "duplicate", "rejected"] {
                Counter(label: "medic_edge_mqtt_messages_total", dimensions: [("kind", k.rawValue), ("result", r)]).increment(by: 0)
            }
        }
        for r in RejectReason.allCases { deadLetter(r.rawValue, by: 0) }
        for o in KioskOutcome.allCases { Counter(label: "medic_edge_checkins_total", dimensions: [("outcome", o.rawValue)]).increment(by: 0) }
        for r in ["accepted", "rejected"] { Counter(label: "medic_edge_wearable_samples_total", dimensions: [("result", r)]).increment(by: 0) }
        Counter(label: "medic_edge_events_delivered_total").increment(by: 0)
        storageWriteFailures(by: 0)
        Counter(label: "medic_edge_login_password_checks_total").increment(by: 0)
        for c in ["patients", "professionals", "services", "rooms", "appointments"] { rosterSuspectPull(c, by: 0) }
        for d in ["forward", "backward"] { clockJump(d, by: 0) }
    }

    /// A commit that failed (SQLITE_FULL, an I/O error): its batch got no ack and no result.
    public func storageWriteFailures(by n: Int = 1) {
        Counter(label: "medic_edge_storage_write_failures_total").increment(by: n)
    }
    /// A full roster pull held back because it would remove most local rows (CONTRACT §3).
    public func rosterSuspectPull(_ collection: String, by n: Int = 1) {
        Counter(label: "medic_edge_roster_suspect_pulls_total", dimensions: [("collection", collection)]).increment(by: n)
    }
    /// The wall clock jumped (`forward` more than 10 min, `backward` more than 2 min).
    public func clockJump(_ direction: String, by n: Int = 1) {
        Counter(label: "medic_edge_clock_jumps_total", dimensions: [("direction", direction)]).increment(by: n)
    }

    public func message(_ kind: MessageKind, _ result: String, by n: Int = 1) {
        Counter(label: "medic_edge_mqtt_messages_total", dimensions: [("kind", kind.rawValue), ("result", result)]).increment(by: n)
    }
    public func deadLetter(_ reason: String, by n: Int = 1) {
        Counter(label: "medic_edge_dead_letters_total", dimensions: [("reason", reason)]).increment(by: n)
    }
    public func checkin(_ outcome: KioskOutcome, seconds: Double) {
        Counter(label: "medic_edge_checkins_total", dimensions: [("outcome", outcome.rawValue)]).increment()
        Metrics.Timer(label: "medic_edge_checkin_seconds").recordNanoseconds(Int64(seconds * 1e9))
    }
    public func wearableSamples(accepted: Int, rejected: Int) {
        Counter(label: "medic_edge_wearable_samples_total", dimensions: [("result", "accepted")]).increment(by: accepted)
        Counter(label: "medic_edge_wearable_samples_total", dimensions: [("result", "rejected")]).increment(by: rejected)
    }
    public func uplinkRequest(status: String) {
        Counter(label: "medic_edge_uplink_requests_total", dimensions: [("status", status)]).increment()
    }
    /// Events the cloud refused (or too big to send), dead-lettered in the outbox. Kept apart
    /// from `medic_edge_dead_letters_total{reason}`, whose reasons are the device word list.
    public func cloudRefused(status: String, by n: Int) {
        Counter(label: "medic_edge_uplink_dead_letters_total", dimensions: [("status", status)]).increment(by: n)
    }
    public func delivered(_ n: Int) { Counter(label: "medic_edge_events_delivered_total").increment(by: n) }
    public func outbox(_ s: OutboxStatsView, nowMs: Int64) {
        Gauge(label: "medic_edge_outbox_pending", dimensions: [("class", "clinical")]).record(s.clinical)
        Gauge(label: "medic_edge_outbox_pending", dimensions: [("class", "telemetry")]).record(s.telemetry)
        Gauge(label: "medic_edge_outbox_oldest_pending_seconds").record(s.oldestMs.map { Double(max(0, nowMs - $0)) / 1000 } ?? 0)
    }
    public func cloudUp(_ up: Bool) { Gauge(label: "medic_edge_cloud_up").record(up ? 1 : 0) }
    public func storage(used: Int64, budget: Int64) {
        Gauge(label: "medic_edge_storage_used_bytes").record(used)
        Gauge(label: "medic_edge_storage_budget_bytes").record(budget)
    }
    /// The data directory's file system: bytes free (when `statvfs` can read it), the
    /// `storage.min_free_bytes` kept free, and 1 while the status API says `over_budget`.
    public func storageSpace(free: Int64?, minFree: Int64, overBudget: Bool) {
        if let free { Gauge(label: "medic_edge_storage_free_bytes").record(free) }
        Gauge(label: "medic_edge_storage_min_free_bytes").record(minFree)
        Gauge(label: "medic_edge_storage_over_budget").record(overBudget ? 1 : 0)
    }

    /// A fridge's gauges (CONTRACT §6): its latest temperature and limits, whether an
    /// excursion is open, an alarm, its sensor silent (0/1).
    public func coldChain(room: String, tempC: Double?, limits: MetricLimits, open: Bool, alarm: Bool, silent: Bool) {
        let r = [("room", room)]
        if let tempC { Gauge(label: "medic_edge_coldchain_temperature_celsius", dimensions: r).record(tempC) }
        Gauge(label: "medic_edge_coldchain_limit_celsius", dimensions: r + [("bound", "min")]).record(limits.min)
        Gauge(label: "medic_edge_coldchain_limit_celsius", dimensions: r + [("bound", "max")]).record(limits.max)
        Gauge(label: "medic_edge_coldchain_excursion_open", dimensions: r).record(open ? 1 : 0)
        Gauge(label: "medic_edge_coldchain_alarm", dimensions: r).record(alarm ? 1 : 0)
        Gauge(label: "medic_edge_coldchain_sensor_silent", dimensions: r).record(silent ? 1 : 0)
    }
    public func coldChainExcursionStarted(room: String, by n: Int = 1) {
        Counter(label: "medic_edge_coldchain_excursions_total", dimensions: [("room", room)]).increment(by: n)
    }

    public func exposition() -> String {
        var buffer = [UInt8]()
        registry.emit(into: &buffer)
        return String(decoding: buffer, as: UTF8.self)
    }
}

public struct OutboxStatsView: Sendable { public var clinical: Int; public var telemetry: Int; public var oldestMs: Int64? }
