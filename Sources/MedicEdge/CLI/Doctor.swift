import ArgumentParser
import EdgeCore
import EdgeHTTPClient
import EdgeMQTT
import EdgeStore
import Foundation
import Logging
import NIOSSL

/// `medic-edge doctor [--json]` (CONTRACT §7): every check a technician needs, each `ok`,
/// `warn` or `fail` with one line saying what to do. Exit 0 all ok, 1 a warning, 2 a failure.
/// Reads the daemon's secrets only when it can (as root, or as the service); when it cannot,
/// the broker and cloud checks say `warn` and why. Checks in docs/operations.md ("Doctor").
struct Doctor: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check the appliance (config, data, database, disk, broker, cloud, clock, certificate, daemon); exit 0 ok, 1 warning, 2 failure.",
        discussion: """
            One line per check: ok|warn|fail  name  detail (for warn and fail, what to do).
            Run it as root (sudo medic-edge doctor) to check the broker login and the cloud keys
            with the daemon's own credentials; as another user those checks say warn.
            """)
    @OptionGroup var options: ConfigOption
    @Flag(help: "Print {\"status\", \"checks\": [{\"name\", \"status\", \"detail\"}]} instead of lines.") var json = false

    func run() async throws {
        let checks = await DoctorChecks(configPath: options.config ?? EdgeConfig.defaultPath()).run()
        let worst = checks.map(\.status).max() ?? .ok
        if json {
            let items = checks.map { c in
                JSONText.object { j in
                    j.add("name", c.name); j.add("status", c.status.rawValue); j.add("detail", c.detail)
                }
            }
            print(
                JSONText.object { j in
                    j.add("status", worst.rawValue); j.addRaw("checks", "[" + items.joined(separator: ",") + "]")
                })
        } else {
            for c in checks {
                print(
                    c.status.rawValue.padding(toLength: 6, withPad: " ", startingAt: 0) + c.name.padding(toLength: 14, withPad: " ", startingAt: 0)
                        + c.detail)
            }
        }
        if worst != .ok { throw ExitCode(worst == .fail ? 2 : 1) }
    }
}

struct DoctorCheck: Sendable, Equatable {
    enum Status: String, Sendable, Comparable {
        case ok, warn, fail
        static func < (a: Status, b: Status) -> Bool { a.rank < b.rank }
        var rank: Int {
            switch self {
            case .ok: 0
            case .warn: 1
            case .fail: 2
            }
        }
    }
    var name: String
    var status: Status
    var detail: String
    static func ok(_ name: String, _ detail: String) -> DoctorCheck { DoctorCheck(name: name, status: .ok, detail: detail) }
    static func warn(_ name: String, _ detail: String) -> DoctorCheck { DoctorCheck(name: name, status: .warn, detail: detail) }
    static func fail(_ name: String, _ detail: String) -> DoctorCheck { DoctorCheck(name: name, status: .fail, detail: detail) }
}

/// The checks, in the order printed.
struct DoctorChecks {
    let configPath: String?
    var environment = ProcessInfo.processInfo.environment
    /// The user the daemon runs as on an appliance (the installer creates it).
    static let serviceUser = "medic-edge"

    func run() async -> [DoctorCheck] {
        var out: [DoctorCheck] = []
        let config: EdgeConfig
        do { config = try EdgeConfig.load(path: configPath, readSecrets: false) } catch {
            let path = configPath ?? "(none)"
            return [.fail("config", "\(error): fix it in \(path), then run medic-edge doctor again")]
        }
        // The daemon's secrets, when this user can read them (root, or the service itself).
        var full: EdgeConfig?
        var secretsWhy = ""
        if config.secretsNotRead.isEmpty {
            full = config
        } else {
            do { full = try EdgeConfig.load(path: configPath, readSecrets: true) } catch { secretsWhy = "\(error)" }
        }
        if let configPath {
            out.append(.ok("config", "\(configPath) is valid"))
        } else {
            out.append(
                .warn(
                    "config",
                    "no config file (--config, $MEDIC_EDGE_CONFIG, /etc/medic-edge/config.yaml): built-in defaults; "
                        + "install with provisioning/install.sh"
                ))
        }
        out.append(contentsOf: dataDirChecks(config))
        out.append(diskCheck(config))
        out.append(brokerCheck(config, full: full, why: secretsWhy))
        let http = CurlHTTPClient(label: "doctor")
        out.append(await eventsCheck(config, full: full, why: secretsWhy, http: http))
        out.append(await rosterCheck(config, full: full, why: secretsWhy, http: http))
        out.append(clockCheck())
        out.append(certificateCheck(config))
        out.append(contentsOf: await daemonChecks(config, http: http))
        return out
    }

    // MARK: data directory and database

    /// (uid, name) the data must belong to: the service user when run as root (root itself on
    /// a machine without that user), else the user running this command (the service user).
    static func expectedOwner() -> (uid: uid_t, name: String) {
        if geteuid() == 0 {
            if let pw = getpwnam(serviceUser) { return (pw.pointee.pw_uid, serviceUser) }
            return (0, "root")
        }
        let uid = geteuid()
        return (uid, getpwuid(uid).map { String(cString: $0.pointee.pw_name) } ?? String(uid))
    }
    static func userName(_ uid: uid_t) -> String { getpwuid(uid).map { String(cString: $0.pointee.pw_name) } ?? "uid \(uid)" }

    func dataDirChecks(_ c: EdgeConfig) -> [DoctorCheck] {
        let dir = c.dataDir
        var st = stat()
        guard stat(dir, &st) == 0 else {
            return [
                .warn("data_dir", "\(dir) does not exist yet: the daemon makes it at first start (systemctl start medic-edge)"),
                .warn("database", "no database yet in \(dir): the daemon makes it at first start"),
            ]
        }
        let (uid, owner) = Self.expectedOwner()
        var problems: [String] = []
        var actions: [String] = []
        if st.st_uid != uid {
            problems.append("\(dir) belongs to \(Self.userName(st.st_uid)), not \(owner)")
            actions.append("chown -R \(owner): \(dir)")
        }
        let mode = st.st_mode & 0o7777
        if mode & 0o077 != 0 || mode & 0o700 != 0o700 {
            problems.append("\(dir) has mode \(String(mode, radix: 8)), expected 700")
            actions.append("chmod 700 \(dir)")
        }
        let db = AppDatabase.databasePath(dataDir: dir)
        for suffix in ["", "-wal", "-shm"] {
            var f = stat()
            guard stat(db + suffix, &f) == 0 else { continue }
            if f.st_uid != uid && !actions.contains("chown -R \(owner): \(dir)") {
                problems.append("\(db + suffix) belongs to \(Self.userName(f.st_uid)), not \(owner)")
                actions.append("chown -R \(owner): \(dir)")
            }
            if f.st_mode & 0o077 != 0 {
                problems.append("\(db + suffix) has mode \(String(f.st_mode & 0o7777, radix: 8)), expected 600")
                actions.append("chmod 600 \(db)*")
            }
        }
        var out: [DoctorCheck] = []
        if problems.isEmpty {
            out.append(.ok("data_dir", "\(dir): owner \(owner), mode 700; database files 600"))
        } else {
            out.append(.fail("data_dir", problems.joined(separator: "; ") + ": " + actions.joined(separator: "; ")))
        }
        out.append(databaseCheck(db))
        return out
    }

    func databaseCheck(_ db: String) -> DoctorCheck {
        guard FileManager.default.fileExists(atPath: db) else {
            return .warn("database", "no database yet at \(db): the daemon makes it at first start (systemctl start medic-edge)")
        }
        guard access(db, R_OK | W_OK) == 0 else {
            return .warn("database", "cannot open \(db) as \(Self.userName(geteuid())): run as the service user or root (sudo medic-edge doctor)")
        }
        let restore =
            "the database is damaged: systemctl stop medic-edge; medic-edge restore <newest file in /var/lib/medic-edge/backups>; "
            + "systemctl start medic-edge (docs/operations.md, Backup and restore)"
        do {
            let problems = try AppDatabase.check(file: db, quick: true)
            if problems.isEmpty {
                let size = ((try? FileManager.default.attributesOfItem(atPath: db))?[.size] as? NSNumber)?.int64Value ?? 0
                return .ok("database", "quick_check ok (\(Self.bytes(size)))")
            }
            return .fail("database", "quick_check: \(problems.prefix(2).joined(separator: "; ")): \(restore)")
        } catch {
            return .fail("database", "\(error): \(restore)")
        }
    }

    static func bytes(_ n: Int64) -> String {
        if n >= 1 << 30 { return String(format: "%.1f GiB", Double(n) / Double(1 << 30)) }
        if n >= 1 << 20 { return String(format: "%.1f MiB", Double(n) / Double(1 << 20)) }
        return String(format: "%.0f KiB", Double(n) / 1024)
    }

    // MARK: disk

    func diskCheck(_ c: EdgeConfig) -> DoctorCheck {
        var dir = c.dataDir
        while !FileManager.default.fileExists(atPath: dir) && dir != "/" && !dir.isEmpty {
            dir = (dir as NSString).deletingLastPathComponent
        }
        var v = statvfs()
        guard statvfs(dir.isEmpty ? "." : dir, &v) == 0 else {
            return .warn("disk", "cannot read the free space of \(dir): \(String(cString: strerror(errno)))")
        }
        let free = Int64(v.f_bavail) * Int64(v.f_frsize)
        let db = AppDatabase.databasePath(dataDir: c.dataDir)
        let used = ["", "-wal", "-shm"].reduce(Int64(0)) { sum, s in
            sum + (((try? FileManager.default.attributesOfItem(atPath: db + s))?[.size] as? NSNumber)?.int64Value ?? 0)
        }
        let minFree = c.storageMinFreeBytes, budget = c.storageMaxBytes
        let figures = "\(Self.bytes(free)) free on \(dir); database \(Self.bytes(used)) of storage.max_bytes \(Self.bytes(budget))"
        let makeRoom =
            "make room on that file system (journalctl --vacuum-size=200M, old files, the broker's persistence) or give it a bigger disk"
        if free < minFree {
            return .fail(
                "disk",
                "disk nearly full: \(Self.bytes(free)) free on \(dir), below storage.min_free_bytes \(Self.bytes(minFree)) "
                    + "(telemetry is being dropped): \(makeRoom)")
        }
        if used > budget {
            return .fail(
                "disk",
                "database \(Self.bytes(used)) is over storage.max_bytes \(Self.bytes(budget)) (clinical events alone; new telemetry is refused): "
                    + "check the cloud checks (events are not leaving), then raise storage.max_bytes if the disk allows")
        }
        if free < 2 * minFree {
            return .warn("disk", "\(figures): less than twice storage.min_free_bytes (\(Self.bytes(minFree))) left: \(makeRoom)")
        }
        if used * 10 > budget * 9 {
            return .warn("disk", "\(figures): over 90 % of the budget: check the cloud checks (events are not leaving)")
        }
        if free + used < budget {
            return .warn(
                "disk",
                "\(figures): the file system cannot hold the budget: lower storage.max_bytes below \(Self.bytes(free + used - minFree)) "
                    + "or give it a bigger disk")
        }
        return .ok("disk", figures)
    }

    // MARK: broker

    func brokerCheck(_ c: EdgeConfig, full: EdgeConfig?, why: String) -> DoctorCheck {
        let at = "\(HostPort(host: c.mqtt.host, port: c.mqtt.port))"
        let unreachable =
            "the broker at \(at) does not answer: is mosquitto running? systemctl status mosquitto; check mqtt.host and mqtt.port"
        guard let full else {
            if Self.tcpReachable(host: c.mqtt.host, port: c.mqtt.port, timeout: 3) {
                return .warn(
                    "broker", "the broker at \(at) answers, but the login was not checked (\(why)): run as root: sudo medic-edge doctor")
            }
            return .fail("broker", unreachable)
        }
        var logger = Logger(label: "doctor-mqtt")
        logger.logLevel = .critical
        let m = full.mqtt
        let client: MQTTClient
        do {
            client = try MQTTClient(
                clientId: "\(m.clientId)-doctor-\(getpid())", cleanSession: true, username: m.username, password: m.password, logger: logger)
            try client.connect(host: m.host, port: m.port, keepalive: 10)
        } catch {
            return .fail("broker", "cannot start an MQTT client: \(error)")
        }
        defer { client.requestDisconnect() }
        let deadline = Date().addingTimeInterval(5)
        while Date() < deadline {
            for e in client.drain(max: 16) {
                if case .connected(let code) = e {
                    if code == 0 { return .ok("broker", "logged in at \(at)\(m.username.map { " as \($0)" } ?? "")") }
                    return .fail(
                        "broker",
                        "the broker at \(at) refused the login: \(MQTTClient.describe(code: code)): check mqtt.username and the password "
                            + "(mqtt.password_file) against the broker's password file (mosquitto_passwd)")
                }
            }
            usleep(20_000)
        }
        if Self.tcpReachable(host: m.host, port: m.port, timeout: 2) {
            return .fail("broker", "\(at) accepts connections but gave no MQTT answer within 5 s: is it mosquitto? check mqtt.port")
        }
        return .fail("broker", unreachable)
    }

    /// A TCP connection to host:port within `timeout` seconds.
    static func tcpReachable(host: String, port: Int, timeout: Double) -> Bool {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var res: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, String(port), &hints, &res) == 0, let first = res else { return false }
        defer { freeaddrinfo(res) }
        var ai: UnsafeMutablePointer<addrinfo>? = first
        while let a = ai {
            let fd = socket(a.pointee.ai_family, a.pointee.ai_socktype, a.pointee.ai_protocol)
            if fd >= 0 {
                _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
                var ok = connect(fd, a.pointee.ai_addr, a.pointee.ai_addrlen) == 0
                if !ok && errno == EINPROGRESS {
                    var p = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                    if poll(&p, 1, Int32(timeout * 1000)) == 1 {
                        var err: Int32 = 0
                        var len = socklen_t(MemoryLayout<Int32>.size)
                        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len)
                        ok = err == 0
                    }
                }
                close(fd)
                if ok { return true }
            }
            ai = a.pointee.ai_next
        }
        return false
    }

    // MARK: cloud

    func notRead(_ why: String) -> String { "not checked: this user cannot read the daemon's secrets (\(why)): run as root: sudo medic-edge doctor" }

    func transportProblem(_ error: any Error, host: String) -> String {
        "the cloud is unreachable (\(host): \((error as? HTTPTransportError)?.message ?? "\(error)")): check the network, DNS and the "
            + "firewall (outbound HTTPS)"
    }

    func eventsCheck(_ c: EdgeConfig, full: EdgeConfig?, why: String, http: CurlHTTPClient) async -> DoctorCheck {
        guard let cloud = c.cloud else { return .ok("cloud.events", "no cloud configured (offline-only)") }
        guard cloud.eventsURLSecret != nil else { return .ok("cloud.events", "no cloud.events_url configured") }
        guard let fc = full?.cloud, let url = fc.eventsURL else { return .warn("cloud.events", notRead(why)) }
        // Never shown: the URL holds the event key.
        let host = URL(string: url)?.host ?? "?"
        let timeout = min(fc.requestTimeoutSeconds, 10)
        let response: HTTPResponse
        do {
            // An empty batch checks the key and sends no event (CONTRACT §7).
            response = try await http.send(
                HTTPRequest(
                    method: "POST", url: url, headers: [("Content-Type", "application/json")], body: Array("[]".utf8),
                    connectTimeout: fc.connectTimeoutSeconds, timeout: timeout, maxBodyBytes: 64 << 10))
        } catch {
            return .fail("cloud.events", transportProblem(error, host: host))
        }
        switch response.status {
        case 200..<300:
            if let j = try? JSON.parse(response.body), j["ids"]?.arrayValue != nil {
                return .ok("cloud.events", "\(host) accepted the event key (an empty batch: nothing sent)")
            }
            return .fail(
                "cloud.events",
                "\(host) answered HTTP \(response.status) but not as Inngest's Event API (a captive portal or proxy?): check cloud.events_url "
                    + "and the network's proxy")
        case 401, 403:
            return .fail(
                "cloud.events",
                "\(host) refused the event key (HTTP \(response.status)): put the right key in cloud.events_url (or its _file; Inngest: "
                    + "Event keys), then systemctl restart medic-edge")
        case 429, 500..<600:
            return .warn(
                "cloud.events", "\(host) answered HTTP \(response.status) (busy or failing): the appliance keeps the events and retries; check later")
        default:
            return .fail("cloud.events", "\(host) answered HTTP \(response.status): check cloud.events_url (redirects are not followed)")
        }
    }

    func rosterCheck(_ c: EdgeConfig, full: EdgeConfig?, why: String, http: CurlHTTPClient) async -> DoctorCheck {
        guard let cloud = c.cloud else { return .ok("cloud.roster", "no cloud configured (offline-only)") }
        guard let base = cloud.directusURL else { return .ok("cloud.roster", "no cloud.directus_url configured") }
        guard let fc = full?.cloud, let token = fc.directusToken else { return .warn("cloud.roster", notRead(why)) }
        let host = URL(string: base)?.host ?? base
        let url = (base.hasSuffix("/") ? String(base.dropLast()) : base) + "/items/rooms?limit=1"
        let response: HTTPResponse
        do {
            response = try await http.send(
                HTTPRequest(
                    url: url, headers: [("Authorization", "Bearer \(token)")], connectTimeout: fc.connectTimeoutSeconds,
                    timeout: min(fc.requestTimeoutSeconds, 10), maxBodyBytes: 1 << 20))
        } catch {
            return .fail("cloud.roster", transportProblem(error, host: host))
        }
        switch response.status {
        case 200..<300:
            if let j = try? JSON.parse(response.body), j["data"]?.arrayValue != nil {
                return .ok("cloud.roster", "\(host) accepted the Directus token (read rooms)")
            }
            return .fail(
                "cloud.roster",
                "\(host) answered HTTP \(response.status) but not as Directus (a captive portal or proxy?): check cloud.directus_url")
        case 401, 403:
            return .fail(
                "cloud.roster",
                "\(host) refused the Directus token (HTTP \(response.status)): put a valid token in cloud.directus_token (or its _file) "
                    + "whose role may read patients, appointments, professionals, services and rooms, then systemctl restart medic-edge")
        case 429, 500..<600:
            return .warn("cloud.roster", "\(host) answered HTTP \(response.status) (busy or failing): the appliance retries; check later")
        default:
            return .fail("cloud.roster", "\(host) answered HTTP \(response.status) on /items/rooms: check cloud.directus_url")
        }
    }

    // MARK: clock

    /// The clock's source: `timedatectl show -p NTPSynchronized --value`; without systemd,
    /// `/run/systemd/timesync/synchronized`, then the kernel's STA_UNSYNC (adjtimex). Tests
    /// only: `MEDIC_EDGE_DOCTOR_TIMEDATECTL` names a program run instead of timedatectl (and
    /// then nothing else is asked).
    func clockCheck() -> DoctorCheck {
        let action = "the clock is not synchronised: timedatectl set-ntp true; systemctl status systemd-timesyncd; allow NTP (UDP 123) out"
        let fake = environment["MEDIC_EDGE_DOCTOR_TIMEDATECTL"].flatMap { $0.isEmpty ? nil : $0 }
        let program = fake ?? ["/usr/bin/timedatectl", "/bin/timedatectl"].first { FileManager.default.isExecutableFile(atPath: $0) }
        if let program, let (code, out) = Self.runProgram(program, ["show", "-p", "NTPSynchronized", "--value"], timeout: 5), code == 0 {
            switch out.trimmingCharacters(in: .whitespacesAndNewlines) {
            case "yes": return .ok("clock", "synchronised (timedatectl: NTPSynchronized=yes)")
            case "no": return .fail("clock", "timedatectl says NTPSynchronized=no: \(action)")
            default: break
            }
        }
        if fake != nil { return .warn("clock", "cannot tell: \(fake ?? "") gave no yes/no answer") }
        if FileManager.default.fileExists(atPath: "/run/systemd/timesync/synchronized") {
            return .ok("clock", "synchronised (systemd-timesyncd)")
        }
        guard let unsync = Self.kernelUnsynchronised() else {
            return .warn("clock", "cannot tell whether the clock is synchronised (no timedatectl, adjtimex failed)")
        }
        if unsync { return .fail("clock", "the kernel says unsynchronised (adjtimex STA_UNSYNC): \(action)") }
        return .ok("clock", "synchronised (kernel: adjtimex)")
    }

    /// The kernel's view (`adjtimex` with no change: TIME_ERROR or STA_UNSYNC); nil when it
    /// cannot be asked. Glibc's module map leaves out <sys/timex.h>, so the call is looked up
    /// by name and `struct timex` read by offset (64-bit Linux: `status` at byte 40 of 208).
    static func kernelUnsynchronised() -> Bool? {
        #if arch(x86_64) || arch(arm64)
            guard let libc = dlopen(nil, RTLD_NOW), let sym = dlsym(libc, "adjtimex") else { return nil }
            typealias AdjTimex = @convention(c) (UnsafeMutableRawPointer) -> Int32
            let call = unsafeBitCast(sym, to: AdjTimex.self)
            let buffer = UnsafeMutableRawPointer.allocate(byteCount: 512, alignment: 16)
            defer { buffer.deallocate() }
            buffer.initializeMemory(as: UInt8.self, repeating: 0, count: 512)  // modes = 0: read only
            let state = call(buffer)
            guard state >= 0 else { return nil }
            let status = buffer.load(fromByteOffset: 40, as: Int32.self)
            let timeError: Int32 = 5, staUnsync: Int32 = 0x0040
            return state == timeError || status & staUnsync != 0
        #else
            return nil
        #endif
    }

    /// Runs a program with a time limit: (exit status, standard output); nil when it cannot run
    /// or outlives the limit.
    static func runProgram(_ path: String, _ args: [String], timeout: Double) -> (Int32, String)? {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: path)
        p.arguments = args
        let out = Pipe()
        p.standardOutput = out
        p.standardError = FileHandle.nullDevice
        p.standardInput = FileHandle.nullDevice
        do { try p.run() } catch { return nil }
        let deadline = Date().addingTimeInterval(timeout)
        while p.isRunning && Date() < deadline { usleep(10_000) }
        if p.isRunning {
            kill(p.processIdentifier, SIGKILL)
            return nil
        }
        let data = out.fileHandleForReading.readDataToEndOfFile()
        return (p.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    // MARK: certificate

    func certificateCheck(_ c: EdgeConfig, nowSeconds: Int64 = Int64(Date().timeIntervalSince1970)) -> DoctorCheck {
        guard c.http.tlsListen != nil, let file = c.http.certFile else {
            return .ok("certificate", "no HTTPS console configured (http.tls_listen)")
        }
        guard let chain = try? NIOSSLCertificate.fromPEMFile(file), let first = chain.first else {
            return .fail("certificate", "cannot read a PEM certificate from http.cert_file \(file): re-run install.sh to reissue it")
        }
        let end = Int64(first.notValidAfter)
        let day = String(Time.rfc3339(ms: end * 1000).prefix(10))
        let left = end - nowSeconds
        let days = left <= 0 ? 0 : Int((left + 86_399) / 86_400)
        let reissue = "re-run install.sh to reissue it (or put a new certificate in \(file)), then systemctl restart medic-edge"
        if left <= 0 { return .fail("certificate", "the console certificate \(file) expired on \(day) (browsers refuse it): \(reissue)") }
        if left < 7 * 86_400 { return .fail("certificate", "the console certificate \(file) expires on \(day) (in \(days) days): \(reissue)") }
        if left < 30 * 86_400 { return .warn("certificate", "the console certificate \(file) expires on \(day) (in \(days) days): \(reissue)") }
        return .ok("certificate", "\(file) valid until \(day) (\(days) days)")
    }

    // MARK: the running daemon

    func daemonChecks(_ c: EdgeConfig, http: CurlHTTPClient) async -> [DoctorCheck] {
        var host = c.http.listen.host
        if host == "0.0.0.0" || host.isEmpty { host = "127.0.0.1" }
        if host == "::" { host = "::1" }
        let base = "http://\(HostPort(host: host, port: c.http.listen.port))"
        let health: HTTPResponse
        do {
            health = try await http.send(HTTPRequest(url: base + "/healthz", connectTimeout: 2, timeout: 5, maxBodyBytes: 64 << 10))
        } catch {
            return [
                .warn(
                    "daemon",
                    "not running (nothing answers on \(base)): systemctl start medic-edge; if it stops again: journalctl -u medic-edge -n 50")
            ]
        }
        var out: [DoctorCheck] = []
        switch health.status {
        case 200:
            out.append(.ok("daemon", "running: \(base)/healthz ok"))
        case 503:
            let reasons = (try? JSON.parse(health.body))?["reasons"]?.arrayValue?.compactMap(\.stringValue) ?? []
            out.append(
                .fail(
                    "daemon",
                    "unhealthy: \(reasons.isEmpty ? "no reason given" : reasons.joined(separator: "; ")): journalctl -u medic-edge -n 50 "
                        + "(systemd restarts a daemon that stays stuck)"))
        default:
            return [.fail("daemon", "\(base)/healthz answered HTTP \(health.status): is another program on http.listen \(c.http.listen)?")]
        }
        guard let s = try? await http.send(HTTPRequest(url: base + "/api/v1/status", connectTimeout: 2, timeout: 5, maxBodyBytes: 1 << 20)),
            s.status == 200, let j = try? JSON.parse(s.body), let outbox = j["outbox"]
        else {
            out.append(.warn("backlog", "\(base)/api/v1/status gave no status: journalctl -u medic-edge -n 50"))
            return out
        }
        let pending = Int(outbox["pending"]?.doubleValue ?? 0)
        let dead = Int(outbox["dead_letters"]?.doubleValue ?? 0)
        if let oldest = outbox["oldest_pending_at"]?.stringValue, let ms = Time.parseMs(oldest), Time.nowMs() - ms > 3_600_000 {
            let hours = Double(Time.nowMs() - ms) / 3_600_000
            out.append(
                .warn(
                    "backlog",
                    "\(pending) events wait for the cloud, the oldest since \(oldest) (\(String(format: "%.1f", hours)) h): see the cloud "
                        + "checks; medic-edge outbox list"))
        } else {
            out.append(.ok("backlog", "\(pending) events waiting for the cloud, none older than 1 h"))
        }
        if dead > 0 {
            out.append(
                .warn(
                    "dead_letters",
                    "\(dead) events the cloud refused: medic-edge outbox dead-letters says why; once the cause is fixed: medic-edge outbox retry"))
        } else {
            out.append(.ok("dead_letters", "none"))
        }
        return out
    }
}
