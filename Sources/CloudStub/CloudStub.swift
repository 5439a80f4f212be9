import Foundation
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// A fake cloud for tests and the demo: the Inngest Event API (`POST /e/{key}`), the Directus
/// items API (`GET /items/{collection}`, `GET /server/ping`) and a control API (`/_stub/...`),
/// all over real HTTP/1.1 sockets, with injectable faults. See docs/cloud-stub.md.
public final class CloudStub: Sendable {
    let logger: Logger
    let state: Mutex<StubState>
    let server = Mutex(ServerState())

    public init(seed: CloudStubSeed, logger: Logger) {
        self.logger = logger
        self.state = Mutex(StubState(seed: seed))
    }

    /// A stub with a quiet logger (warnings and errors only), for tests and tools that do not
    /// configure logging themselves.
    public convenience init(seed: CloudStubSeed = CloudStubSeed()) {
        var logger = Logger(label: "cloud-stub")
        logger.logLevel = .warning
        self.init(seed: seed, logger: logger)
    }

    // MARK: Lifecycle

    /// Binds `host:port` (port 0 = any free port) and returns the bound port.
    public func start(host: String = "127.0.0.1", port: Int = 0) async throws -> Int {
        try server.withLock { s throws(CloudStubError) in
            guard !s.running else { throw .alreadyStarted }
            s.running = true
        }
        let bootstrap = ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.tcpOption(.tcp_nodelay), value: 1)
            .childChannelOption(.maxMessagesPerRead, value: 16)
            .childChannelInitializer { [self] channel in
                channel.eventLoop.makeCompletedFuture {
                    guard self.track(channel) else { throw ChannelError.ioOnClosedChannel }
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(StubHTTPHandler(stub: self))
                }
            }
        do {
            let channel = try await bootstrap.bind(host: host, port: port).get()
            let bound = channel.localAddress?.port ?? port
            server.withLock { s in
                s.channel = channel
                s.port = bound
            }
            logger.info("cloud stub listening", metadata: ["host": "\(host)", "port": "\(bound)"])
            return bound
        } catch {
            server.withLock { $0.running = false }
            throw error
        }
    }

    /// Closes the listening socket and every open connection. The stub can be started again
    /// (on the same port, to model the cloud coming back); its recorded state is kept.
    public func stop() async throws {
        let listener: Channel? = server.withLock { s in
            s.running = false
            defer { s.channel = nil }
            return s.channel
        }
        if let listener {
            listener.close(promise: nil)
            try? await listener.closeFuture.get()
        }
        let children: [Channel] = server.withLock { Array($0.children.values) }
        for child in children {
            child.close(promise: nil)
        }
        for child in children {
            try? await child.closeFuture.get()
        }
        if listener != nil { logger.info("cloud stub stopped") }
    }

    /// The bound port while running (after a stop: the port it last had; before any start: 0).
    public var port: Int {
        server.withLock { $0.port }
    }

    private func track(_ channel: Channel) -> Bool {
        let id = ObjectIdentifier(channel)
        let ok = server.withLock { s in
            guard s.running else { return false }
            s.children[id] = channel
            return true
        }
        if ok {
            channel.closeFuture.whenComplete { [self] _ in
                _ = server.withLock { $0.children.removeValue(forKey: id) }
            }
        }
        return ok
    }

    // MARK: In-process control (the same as the HTTP control API)

    public func setFaults(_ f: CloudStubFaults) {
        state.withLock {
            $0.faults = f; $0.hostileIndex = 0
        }
        logger.info("cloud stub faults set", metadata: ["faults": "\(f.json.serialized())"])
    }

    public func faults() -> CloudStubFaults {
        state.withLock { $0.faults }
    }

    /// Every accepted event object, in arrival order, duplicates included.
    public func receivedEvents() -> [JSONValue] {
        state.withLock { $0.events }
    }

    public func stats() -> CloudStubStats {
        state.withLock { $0.stats }
    }

    /// Inserts or replaces rows (by their `id`) of a collection, creating the collection if needed.
    public func upsert(collection: String, rows: [JSONValue]) {
        state.withLock { s in
            var c = s.collections[collection] ?? StubCollection(rows: [])
            for r in rows { c.upsert(r) }
            s.collections[collection] = c
        }
    }

    public func delete(collection: String, id: String) {
        _ = state.withLock { $0.collections[collection]?.delete(id: id) }
    }

    /// The rows of a collection as stored (nil for an unknown collection).
    public func rows(collection: String) -> [JSONValue]? {
        state.withLock { $0.collections[collection]?.rows }
    }

    /// Forgets the recorded events and resets every counter of `stats()`.
    /// Collections and faults are kept.
    public func clearEvents() {
        state.withLock { s in
            s.events = []
            s.seenIds = []
            s.stats = CloudStubStats()
            s.eventRequestLog = []
        }
    }
}

// MARK: - State

struct ServerState {
    var running = false
    var channel: Channel? = nil
    var children: [ObjectIdentifier: Channel] = [:]
    var port = 0
}

struct StubCollection {
    var rows: [JSONValue] = []
    var index: [String: Int] = [:]

    init(rows: [JSONValue]) {
        for r in rows { upsert(r) }
    }

    mutating func upsert(_ row: JSONValue) {
        guard let id = row["id"]?.idString else {
            rows.append(row)
            return
        }
        if let i = index[id] {
            rows[i] = row
        } else {
            index[id] = rows.count
            rows.append(row)
        }
    }

    @discardableResult
    mutating func delete(id: String) -> Bool {
        guard let i = index[id] else { return false }
        rows.remove(at: i)
        index = [:]
        for (n, r) in rows.enumerated() {
            if let rid = r["id"]?.idString { index[rid] = n }
        }
        return true
    }

    func row(id: String) -> JSONValue? {
        index[id].map { rows[$0] }
    }
}

struct StubState {
    var eventKey: String
    var directusToken: String
    var collections: [String: StubCollection] = [:]
    var faults = CloudStubFaults()
    /// Scripted Directus answers still to serve (DirectusHostile.swift).
    var directusScript: [DirectusScriptedAnswer] = []
    var events: [JSONValue] = []
    var seenIds: Set<String> = []
    var stats = CloudStubStats()
    /// Every Event API request, when and how it was answered (`CloudStub.eventRequests()`).
    var eventRequestLog: [EventRequestRecord] = []
    /// The next answer of the `hostile_events` mode (reset when faults are set).
    var hostileIndex = 0

    init(seed: CloudStubSeed) {
        eventKey = seed.eventKey
        directusToken = seed.directusToken
        for (name, rows) in seed.collections {
            collections[name] = StubCollection(rows: rows)
        }
    }

    mutating func count(status: String) {
        stats.requestsByStatus[status, default: 0] += 1
    }

    mutating func accept(_ event: JSONValue, id: String) {
        events.append(event)
        stats.eventsReceived += 1
        if seenIds.insert(id).inserted {
            stats.uniqueIds += 1
        } else {
            stats.duplicateIds += 1
        }
    }
}
