import EdgeCore
import EdgeHTTPClient
import EdgeMQTT
import Foundation
import Logging
import Synchronization

/// Real parts for tests and the demo: a mosquitto on a free loopback port, the daemon as a
/// subprocess of the built binary, an MQTT client that records what it receives. Every wait
/// is bounded.
public enum Harness {
    public struct Timeout: Error, CustomStringConvertible {
        public let what: String; public var description: String { "timed out waiting for \(what)" }
    }

    /// A free TCP port on 127.0.0.1 (bound and released).
    public static func freePort() -> Int {
        let (fd, port) = loopbackSocket(listening: false)
        close(fd)
        return port
    }

    /// A TCP socket listening on a free loopback port, as another program holding a port
    /// would; the caller closes `fd`.
    public static func holdPort() -> (fd: Int32, port: Int) { loopbackSocket(listening: true) }

    private static func loopbackSocket(listening: Bool) -> (Int32, Int) {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
        if listening { _ = listen(fd, 4) }
        _ = withUnsafeMutablePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) } }
        return (fd, Int(UInt16(bigEndian: addr.sin_port)))
    }

    public static func canConnect(port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = UInt16(port).bigEndian
        return withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        } == 0
    }

    public static func waitUntil(_ what: String, timeout: Double = 10, poll: Double = 0.02, _ cond: () async throws -> Bool) async throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if (try? await cond()) == true { return }
            try await Task.sleep(for: .milliseconds(Int(poll * 1000)))
        }
        if try await cond() { return }
        throw Timeout(what: what)
    }

    /// A fresh folder under the system's temporary directory. Every one made here is removed
    /// when the process exits (a test run, the demo or a bench leaves nothing in /tmp);
    /// `MEDIC_EDGE_KEEP_TEMP=1` keeps them, to look at a failed test's daemon log and database.
    public static func tempDir(_ prefix: String = "medic-edge") -> String {
        let p = NSTemporaryDirectory() + "\(prefix)-\(UUID().uuidString.prefix(8))"
        try? FileManager.default.createDirectory(atPath: p, withIntermediateDirectories: true)
        TempDirs.shared.add(p)
        return p
    }

    /// The built `medic-edge` binary: $MEDIC_EDGE_BIN, else beside the running executable.
    public static func binaryPath() -> String {
        if let p = ProcessInfo.processInfo.environment["MEDIC_EDGE_BIN"], !p.isEmpty { return p }
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        var dir = (exe as NSString).deletingLastPathComponent
        // xctest bundles on Linux: .build/debug/medic-edgePackageTests.xctest
        for _ in 0..<3 {
            let candidate = (dir as NSString).appendingPathComponent("medic-edge")
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
            dir = (dir as NSString).deletingLastPathComponent
        }
        return exe
    }

    /// Stops a child process: SIGTERM, poll, SIGKILL after `timeout`. Returns the exit status.
    @discardableResult
    public static func stop(_ p: Process, timeout: Double) async -> Int32? {
        if p.isRunning { kill(p.processIdentifier, SIGTERM) }
        let deadline = Date().addingTimeInterval(timeout)
        while p.isRunning && Date() < deadline { try? await Task.sleep(for: .milliseconds(10)) }
        if p.isRunning {
            kill(p.processIdentifier, SIGKILL)
            while p.isRunning { try? await Task.sleep(for: .milliseconds(10)) }
            return nil
        }
        return p.terminationStatus
    }

    public static func mosquittoPath() -> String {
        for p in ["/usr/sbin/mosquitto", "/usr/bin/mosquitto", "/usr/local/sbin/mosquitto"] where FileManager.default.isExecutableFile(atPath: p) {
            return p
        }
        return "mosquitto"
    }
}

/// A real mosquitto broker on a free loopback port.
public final class Broker: @unchecked Sendable {
    public let port: Int
    public let dir: String
    private var process: Process?

    public init(port: Int = Harness.freePort(), extraConfig: String = "") throws {
        self.port = port
        dir = Harness.tempDir("mosquitto")
        let conf = """
            listener \(port) 127.0.0.1
            allow_anonymous true
            set_tcp_nodelay true
            persistence false
            max_queued_messages 100000
            message_size_limit 262144
            log_dest stderr
            log_type error
            log_type warning
            \(extraConfig)
            """
        try conf.write(toFile: dir + "/mosquitto.conf", atomically: true, encoding: .utf8)
    }

    public func start() async throws {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: Harness.mosquittoPath())
        p.arguments = ["-c", dir + "/mosquitto.conf"]
        _ = FileManager.default.createFile(atPath: dir + "/mosquitto.log", contents: nil)
        let log = FileHandle(forWritingAtPath: dir + "/mosquitto.log")
        p.standardOutput = log; p.standardError = log
        try p.run()
        process = p
        try await Harness.waitUntil("mosquitto on port \(port)", timeout: 10) { Harness.canConnect(port: self.port) }
    }

    /// Stops the broker at once (SIGKILL: it keeps nothing on disk here, and a child started
    /// through Foundation's Process may inherit a signal mask that blocks SIGTERM).
    public func stop() async {
        guard let p = process else { return }
        process = nil
        await Harness.stop(p, timeout: 0)
    }
    public var pid: Int32? { process?.processIdentifier }
    deinit { if let p = process, p.isRunning { kill(p.processIdentifier, SIGKILL) } }
}

/// The daemon under test: `medic-edge run --config FILE` as a subprocess.
public final class DaemonProcess: @unchecked Sendable {
    public let dir: String
    public let configPath: String
    public let httpPort: Int
    public let logPath: String
    private(set) public var process: Process?
    private let http = CurlHTTPClient(label: "harness")

    /// `config` is YAML; `{HTTP_PORT}` and `{DATA_DIR}` are filled in.
    public init(configYAML: String, httpPort: Int = Harness.freePort(), dir: String = Harness.tempDir("daemon")) throws {
        self.dir = dir
        self.httpPort = httpPort
        configPath = dir + "/config.yaml"
        logPath = dir + "/daemon.log"
        let text = configYAML.replacingOccurrences(of: "{HTTP_PORT}", with: String(httpPort)).replacingOccurrences(
            of: "{DATA_DIR}", with: dir + "/data")
        try text.write(toFile: configPath, atomically: true, encoding: .utf8)
    }

    /// A config for a test: site `test-site`, the given broker and (optionally) cloud.
    /// Test intervals by default (roster every 0.3 s, 1 s / 2 s time-outs); the benchmarks
    /// pass production-like ones. `httpExtra`: more `http` keys (e.g. `tls_listen: "…"`).
    public static func standardConfig(
        mqttPort: Int, cloudPort: Int? = nil, eventKey: String = "test-key", token: String = "test-token",
        rosterSyncSeconds: Double = 0.3, connectTimeout: Double = 1, requestTimeout: Double = 2,
        cloudExtra: [String] = [], httpExtra: [String] = [], extra: String = ""
    ) -> String {
        var s = """
            site_id: test-site
            tenant_id: 6f1c2a9e-0000-4000-8000-000000000001
            timezone: America/Sao_Paulo
            data_dir: {DATA_DIR}
            log_level: info
            mqtt: {host: 127.0.0.1, port: \(mqttPort), client_id: medic-edge-test}
            http: {listen: "127.0.0.1:{HTTP_PORT}"\(httpExtra.map { ", " + $0 }.joined())}

            """
        if let cloudPort {
            s += """
                cloud:
                  events_url: http://127.0.0.1:\(cloudPort)/e/\(eventKey)
                  directus_url: http://127.0.0.1:\(cloudPort)
                  directus_token: \(token)
                  roster_sync_seconds: \(rosterSyncSeconds)
                  connect_timeout_seconds: \(connectTimeout)
                  request_timeout_seconds: \(requestTimeout)
                \(cloudExtra.map { "  " + $0 + "\n" }.joined())
                """
        }
        return s + extra
    }

    public var dataDir: String { dir + "/data" }
    public var baseURL: String { "http://127.0.0.1:\(httpPort)" }

    /// `viaShell`: started as `sh -c 'exec medic-edge run …'` (libfaketime, preloaded, edits
    /// the environment in its constructor, which loses the arguments of a Swift program it is
    /// preloaded into directly; through a shell the edit is already made).
    public func start(waitReady: Bool = true, environment: [String: String] = [:], viaShell: Bool = false) async throws {
        let p = Process()
        if viaShell {
            p.executableURL = URL(fileURLWithPath: "/bin/sh")
            p.arguments = ["-c", #"exec "$0" "$@""#, Harness.binaryPath(), "run", "--config", configPath]
        } else {
            p.executableURL = URL(fileURLWithPath: Harness.binaryPath())
            p.arguments = ["run", "--config", configPath]
        }
        var env = ProcessInfo.processInfo.environment
        for (k, v) in environment { env[k] = v }
        p.environment = env
        if !FileManager.default.fileExists(atPath: logPath) { _ = FileManager.default.createFile(atPath: logPath, contents: nil) }
        let log = FileHandle(forWritingAtPath: logPath)!
        log.seekToEndOfFile()
        p.standardOutput = log; p.standardError = log
        try p.run()
        process = p
        if waitReady { try await self.waitReady() }
    }

    public func waitReady(timeout: Double = 20) async throws {
        try await Harness.waitUntil("daemon /healthz", timeout: timeout, poll: 0.05) {
            if let p = self.process, !p.isRunning { throw Harness.Timeout(what: "daemon exited early: \(self.log().suffix(800))") }
            return try await self.get("/healthz").status == 200
        }
    }

    public func get(_ path: String, headers: [(String, String)] = []) async throws -> HTTPResponse {
        try await http.send(HTTPRequest(url: baseURL + path, headers: headers, connectTimeout: 1, timeout: 5))
    }
    /// `from`: the local address to connect from (any 127.0.0.x is another client).
    public func send(_ method: String, _ path: String, body: String? = nil, headers: [(String, String)] = [], from: String? = nil) async throws
        -> HTTPResponse
    {
        var h = headers
        if body != nil { h.append(("Content-Type", "application/json")) }
        return try await http.send(
            HTTPRequest(
                method: method, url: baseURL + path, headers: h, body: body.map { Array($0.utf8) },
                connectTimeout: 1, timeout: 5, localAddress: from))
    }
    public func status() async throws -> JSON { try JSON.parse(try await get("/api/v1/status").body) }

    /// SIGTERM, then the exit status (nil if it did not exit within `timeout`).
    public func terminate(timeout: Double = 12) async -> Int32? {
        guard let p = process else { return nil }
        return await Harness.stop(p, timeout: timeout)
    }
    /// kill -9, and wait until it is gone.
    public func kill9() async {
        guard let p = process, p.isRunning else { return }
        kill(p.processIdentifier, SIGKILL)
        while p.isRunning { try? await Task.sleep(for: .milliseconds(5)) }
    }
    public var pid: Int32? { process?.processIdentifier }
    public func log() -> String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }
    deinit { if let p = process, p.isRunning { kill(p.processIdentifier, SIGKILL) } }

    /// Runs the binary with arguments to completion: (exit status, stdout+stderr).
    public static func runCLI(_ args: [String], environment: [String: String] = [:], stdin: String? = nil, timeout: Double = 20) async throws -> (
        Int32, String
    ) {
        var env = ProcessInfo.processInfo.environment
        env.removeValue(forKey: "MEDIC_EDGE_CONFIG")
        for (k, v) in environment { env[k] = v }
        return try await Harness.runProgram(Harness.binaryPath(), args, environment: env, stdin: stdin, timeout: timeout)
    }
}

extension Harness {
    /// Runs a program to completion with a time limit: (exit status, stdout+stderr). Past the
    /// limit it is stopped, and `Timeout` says so with the end of its output. Polls instead of
    /// `waitUntilExit` (which spins a run loop).
    public static func runProgram(
        _ path: String, _ args: [String], environment: [String: String]? = nil, stdin: String? = nil,
        timeout: Double
    ) async throws -> (Int32, String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: path)
        p.arguments = args
        if let environment { p.environment = environment }
        let out = Pipe()
        p.standardOutput = out; p.standardError = out
        let inPipe = Pipe()
        p.standardInput = inPipe
        try p.run()
        if let stdin { inPipe.fileHandleForWriting.write(Data(stdin.utf8)) }
        try? inPipe.fileHandleForWriting.close()
        let reader = Task.detached { out.fileHandleForReading.readDataToEndOfFile() }
        let deadline = Date().addingTimeInterval(timeout)
        while p.isRunning && Date() < deadline { try await Task.sleep(for: .milliseconds(20)) }
        if p.isRunning {
            await Harness.stop(p, timeout: 1)
            let tail = String(decoding: await reader.value, as: UTF8.self).suffix(800)
            throw Harness.Timeout(
                what:
                    "\((path as NSString).lastPathComponent) \(args.joined(separator: " ").prefix(200)) to finish within \(Int(timeout)) s; its "
                    + "output ended: \(tail)"
            )
        }
        let data = await reader.value
        return (p.terminationStatus, String(decoding: data, as: UTF8.self))
    }
}

/// An MQTT client for tests and simulators: publishes, and records what it receives.
public final class TestMQTT: Sendable {
    public let client: MQTTClient
    private struct State {
        var received: [MQTTMessage] = []
        var connected = false
        var pump: Task<Void, Never>?
    }
    private let state = Mutex(State())

    public init(port: Int, clientId: String = "test-\(UUID().uuidString.prefix(8))", will: MQTTWill? = nil) async throws {
        client = try TestMQTT.loopbackClient(port: port, clientId: clientId, will: will, label: "test-mqtt")
        let pump = TestMQTT.pump(client, max: 1000) { [weak self] events in
            guard let self else { return false }
            self.absorb(events)
            return true
        }
        state.withLock { $0.pump = pump }
        try await Harness.waitUntil("test MQTT connect", timeout: 10) { self.isConnected }
    }
    /// A clean-session client connected to the broker on loopback `port`, logging errors only.
    static func loopbackClient(port: Int, clientId: String, will: MQTTWill? = nil, label: String) throws -> MQTTClient {
        var logger = Logger(label: label)
        logger.logLevel = .error
        let client = try MQTTClient(clientId: clientId, cleanSession: true, will: will, logger: logger)
        try client.connect(host: "127.0.0.1", port: port)
        return client
    }
    /// Hands the client's events to `absorb` in batches until the client closes or `absorb`
    /// says its owner is gone.
    static func pump(_ client: MQTTClient, max: Int, absorb: @escaping @Sendable ([MQTTEvent]) -> Bool) -> Task<Void, Never> {
        Task {
            while !Task.isCancelled {
                let events = await client.nextBatch(max: max)
                if events.isEmpty || !absorb(events) { return }
            }
        }
    }
    private func absorb(_ events: [MQTTEvent]) {
        state.withLock { s in
            for e in events {
                switch e {
                case .connected(let code): if code == 0 { s.connected = true }
                case .disconnected: s.connected = false
                case .message(let m): s.received.append(m)
                }
            }
        }
    }
    public var isConnected: Bool { state.withLock { $0.connected } }

    public func subscribe(_ topic: String) async throws {
        try client.subscribe([topic], qos: 1)
        try await Task.sleep(for: .milliseconds(100))
    }
    public func publish(_ topic: String, _ text: String, retain: Bool = false) throws {
        try client.publish(topic: topic, text: text, qos: 1, retain: retain)
    }
    public func publish(_ topic: String, bytes: [UInt8]) throws { try client.publish(topic: topic, payload: bytes, qos: 1) }

    public func messages(on topic: String) -> [MQTTMessage] {
        state.withLock { $0.received.filter { $0.topic == topic } }
    }
    public func texts(on topic: String) -> [String] { messages(on: topic).map { String(decoding: $0.payload, as: UTF8.self) } }
    public func json(on topic: String) -> [JSON] { messages(on: topic).compactMap { try? JSON.parse($0.payload) } }
    public func clear() { state.withLock { $0.received = [] } }

    /// Waits until `count` messages on `topic` satisfy `match`; returns them.
    @discardableResult
    public func waitFor(_ topic: String, count: Int = 1, timeout: Double = 10, where match: @escaping (JSON) -> Bool = { _ in true }) async throws
        -> [JSON]
    {
        var found: [JSON] = []
        try await Harness.waitUntil("\(count) message(s) on \(topic)", timeout: timeout, poll: 0.005) {
            found = self.json(on: topic).filter(match)
            return found.count >= count
        }
        return found
    }

    public func close() {
        client.disconnect()
        state.withLock { $0.pump }?.cancel()
    }
    deinit { state.withLock { $0.pump }?.cancel() }
}

/// The folders `Harness.tempDir` made, removed at exit.
final class TempDirs: Sendable {
    static let shared = TempDirs()
    private let paths = Mutex<[String]>([])
    private init() {
        atexit { TempDirs.shared.removeAll() }
    }
    func add(_ p: String) { paths.withLock { $0.append(p) } }
    func removeAll() {
        if ProcessInfo.processInfo.environment["MEDIC_EDGE_KEEP_TEMP"] == "1" { return }
        let all = paths.withLock { ps in
            defer { ps = [] }; return ps
        }
        for p in all { try? FileManager.default.removeItem(atPath: p) }
    }
}

extension Harness {
    /// A process's peak resident memory (`VmHWM` in /proc/PID/status), in bytes; nil when
    /// it cannot be read (the process is gone).
    public static func peakMemoryBytes(pid: Int32) -> Int? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix("VmHWM:") {
            let kib = line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first.flatMap { Int($0) }
            return kib.map { $0 * 1024 }
        }
        return nil
    }

    public static func mosquittoPubPath() -> String {
        for p in ["/usr/bin/mosquitto_pub", "/usr/local/bin/mosquitto_pub"] where FileManager.default.isExecutableFile(atPath: p) { return p }
        return "mosquitto_pub"
    }

    /// A device publishing every line of `file` as one QoS-1 message on `topic`, as fast as
    /// the broker takes them (`mosquitto_pub -l`). The caller waits for it or stops it.
    public static func publishLines(port: Int, topic: String, file: String, clientId: String) throws -> Process {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: mosquittoPubPath())
        p.arguments = ["-h", "127.0.0.1", "-p", String(port), "-i", clientId, "-q", "1", "-t", topic, "-l"]
        p.standardInput = FileHandle(forReadingAtPath: file)
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        try p.run()
        return p
    }
}

/// Counts the distinct payloads received on a topic filter (e.g. every device ack) without
/// keeping the messages: for floods of hundreds of thousands.
public final class TopicCounter: Sendable {
    private let client: MQTTClient
    private struct State {
        var seen = Set<[UInt8]>()
        var total = 0
        var connected = false
        var pump: Task<Void, Never>?
    }
    private let state = Mutex(State())

    public init(port: Int, filter: String) async throws {
        client = try TestMQTT.loopbackClient(port: port, clientId: "counter-\(UUID().uuidString.prefix(8))", label: "topic-counter")
        let pump = TestMQTT.pump(client, max: 4096) { [weak self] events in
            guard let self else { return false }
            self.absorb(events)
            return true
        }
        state.withLock { $0.pump = pump }
        try await Harness.waitUntil("counter MQTT connect", timeout: 10) { self.state.withLock { $0.connected } }
        try client.subscribe([filter], qos: 1)
        try await Task.sleep(for: .milliseconds(100))
    }
    private func absorb(_ events: [MQTTEvent]) {
        state.withLock { s in
            for e in events {
                switch e {
                case .connected(let code): if code == 0 { s.connected = true }
                case .disconnected: s.connected = false
                case .message(let m): s.total += 1; s.seen.insert(m.payload)
                }
            }
        }
    }
    /// (distinct payloads, messages in all)
    public var counts: (distinct: Int, total: Int) { state.withLock { ($0.seen.count, $0.total) } }
    public func close() { client.disconnect(); state.withLock { $0.pump }?.cancel() }
    deinit { state.withLock { $0.pump }?.cancel() }
}
