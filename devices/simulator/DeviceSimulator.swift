import EdgeCore
import EdgeMQTT
import Foundation
import Logging
import Synchronization

// MARK: - The fleet

/// Runs a set of simulated devices against one broker.
///
/// ```swift
/// var s = SimSettings(port: broker.port, site: "test-site", rate: 60)
/// let sim = DeviceSimulator(settings: s)
/// let kiosk = sim.addKiosk(codes: [day.maria.qr], auto: false)
/// sim.addFleet([.presence, .environment, .fridge, .wearable])
/// try await sim.start()
/// let answer = await kiosk.scan(day.maria.qr)
/// await sim.stop()
/// ```
public final class DeviceSimulator: Sendable {
    public let settings: SimSettings
    /// Everything the devices report (the newest 10,000 are kept if nobody reads).
    public let events: AsyncStream<SimEvent>
    private let continuation: AsyncStream<SimEvent>.Continuation
    private struct State {
        var devices: [any SimRunnable] = []
        var tasks: [Task<Void, Never>] = []
        var rooms: [String: RoomModel] = [:]
        var started = false
        var listeners: [@Sendable (SimEvent) -> Void] = []
    }
    private let state = Mutex(State())

    public init(settings: SimSettings) {
        self.settings = settings
        var c: AsyncStream<SimEvent>.Continuation!
        events = AsyncStream(bufferingPolicy: .bufferingNewest(10_000)) { c = $0 }
        continuation = c
    }

    /// Calls `f` for every event too (from the devices' threads; keep it short).
    public func onEvent(_ f: @escaping @Sendable (SimEvent) -> Void) { state.withLock { $0.listeners.append(f) } }

    private var emitter: @Sendable (SimEvent) -> Void {
        { [weak self] e in
            guard let self else { return }
            self.continuation.yield(e)
            let ls = self.state.withLock { $0.listeners }
            for l in ls { l(e) }
        }
    }

    private func room(_ key: String) -> RoomModel {
        state.withLock {
            if let r = $0.rooms[key] { return r }
            let r = RoomModel(); $0.rooms[key] = r; return r
        }
    }

    private func add<D: SimRunnable>(_ d: D) -> D {
        let running = state.withLock {
            $0.devices.append(d); return $0.started
        }
        if running {
            try? d.link.connect()
            let t = Task { await d.behave() }
            state.withLock { $0.tasks.append(t) }
        }
        return d
    }

    @discardableResult
    public func addKiosk(id: String = "kiosk-recepcao-1", room: String? = "recepcao", codes: [String] = [], auto: Bool = true) -> KioskSim {
        add(KioskSim(id: id, room: room, codes: codes, auto: auto, settings: settings, emit: emitter))
    }
    @discardableResult
    public func addPresence(id: String, room: String, auto: Bool = true) -> PresenceSim {
        add(PresenceSim(id: id, room: room, auto: auto, model: self.room(room), settings: settings, emit: emitter))
    }
    @discardableResult
    public func addEnvironment(id: String, room: String) -> EnvironmentSim {
        add(EnvironmentSim(id: id, room: room, model: self.room(room), settings: settings, emit: emitter))
    }
    /// `intervalSeconds`: simulated seconds between readings (60 in the field). `sending: false`
    /// connects the probe but sends no live reading until `resumeReadings()` (e.g. a logger
    /// that first flushes its buffer with `sendHistory`).
    @discardableResult
    public func addFridge(
        id: String = "env-geladeira", room: String = "geladeira-vacinas", autoExcursions: Bool = true,
        intervalSeconds: Double = 60, sending: Bool = true
    ) -> FridgeSim {
        add(
            FridgeSim(
                id: id, room: room, autoExcursions: autoExcursions, intervalSeconds: intervalSeconds, sending: sending, settings: settings,
                emit: emitter))
    }
    @discardableResult
    public func addWearableGateway(
        id: String = "gw-1", patients: [String] = [], batchSize: ClosedRange<Int> = 20...200,
        auto: Bool = true
    ) -> WearableGatewaySim {
        add(WearableGatewaySim(id: id, patients: patients, batchSize: batchSize, auto: auto, settings: settings, emit: emitter))
    }
    @discardableResult
    public func addStatusDevice(
        id: String = "kiosk-recepcao-2", type: String = "checkin_kiosk", room: String? = "recepcao",
        reboots: Bool = true
    ) -> StatusSim {
        add(StatusSim(id: id, type: type, room: room, reboots: reboots, settings: settings, emit: emitter))
    }

    /// The standard fleet of the device READMEs for the given types: one kiosk, one presence
    /// sensor and one monitor per room, the fridge probe, the wearable gateway, and a second
    /// kiosk that only keeps its status.
    public func addFleet(
        _ types: Set<SimDeviceType>, rooms: [String] = ["sala-2", "sala-3"], codes: [String] = [],
        patients: [String] = []
    ) {
        if types.contains(.kiosk) { addKiosk(codes: codes) }
        if types.contains(.presence) { for r in rooms { addPresence(id: "pres-\(r)", room: r) } }
        if types.contains(.environment) { for r in rooms { addEnvironment(id: "env-\(r)", room: r) } }
        if types.contains(.fridge) { addFridge() }
        if types.contains(.wearable) { addWearableGateway(patients: patients) }
        if types.contains(.status) { addStatusDevice() }
    }

    public var deviceIds: [String] { state.withLock { $0.devices }.map { $0.link.id } }

    /// Connects every device (status online, will offline), waits until all are connected,
    /// then starts their behaviour.
    public func start(timeout: Double = 10) async throws {
        let ds = state.withLock {
            $0.started = true; return $0.devices
        }
        for d in ds { try d.link.connect() }
        let deadline = uptime() + timeout
        while ds.contains(where: { !$0.link.isConnected }) {
            if uptime() > deadline {
                let missing = ds.filter { !$0.link.isConnected }.map { $0.link.id }
                throw SimError(
                    "cannot connect to the MQTT broker at \(settings.host):\(settings.port) within \(Int(timeout)) s (devices not connected: "
                        + "\(missing.joined(separator: ", ")))"
                )
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        var ts: [Task<Void, Never>] = []
        for d in ds { ts.append(Task { await d.behave() }) }
        state.withLock { $0.tasks += ts }
    }

    /// Stops every device cleanly: behaviours cancelled, offline status published, disconnect.
    public func stop() async {
        let (ts, ds) = state.withLock { s -> ([Task<Void, Never>], [any SimRunnable]) in
            defer { s.tasks = []; s.started = false }
            return (s.tasks, s.devices)
        }
        for t in ts { t.cancel() }
        for d in ds { await d.link.stop(final: true) }
        for t in ts { await t.value }
    }

    public func stats() -> [SimDeviceStats] {
        let ds = state.withLock { $0.devices }
        return ds.map { $0.link.snapshot() }
    }

    deinit { continuation.finish() }
}
