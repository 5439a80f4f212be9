import ArgumentParser
import EdgeCore
import EdgeTestSupport
import Foundation

/// `medic-edge bench idle`: the daemon's resident memory after it has idled (connected to its
/// broker and the cloud stub, roster synced), next to a bare Foundation process with the
/// clinic's time zone and a pt-BR formatter (the limit). `--patients N` seeds the stub's
/// Directus with N more patients and N appointments over the coming days (the roster's weight).
struct BenchIdle: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "idle", abstract: "The daemon's idle VmRSS next to a bare Foundation process's.")

    @Option(help: "Seconds the daemon idles before it is measured.") var seconds = 10.0
    @Option(help: "Patients added to the roster, each with one appointment today or in the coming six days (0…100,000).")
    var patients = 0
    @Flag(inversion: .prefixedNo, help: "Also compile (swiftc) and measure a stand-alone bare Foundation program.")
    var bare = true

    func run() async throws {
        BenchEnv.start("idle")
        guard seconds >= 0, seconds <= 3600 else { throw ValidationError("--seconds must be within 0…3600") }
        guard patients >= 0, patients <= 100_000 else { throw ValidationError("--patients must be within 0…100,000") }
        let broker = try await BenchEnv.broker()
        let day = BenchIdle.roster(patients: patients)
        let (stub, cloudPort) = try await BenchEnv.stub(day.seed)
        let daemon = try BenchEnv.daemon(mqttPort: broker.port, cloudPort: cloudPort)
        var rss: [String: Int]?
        var samples: [Int] = []
        var mappings: [(String, Int)] = []
        do {
            try await BenchEnv.start(daemon)
            let t0 = benchNowNs()
            try await BenchEnv.waitRoster(
                daemon, patients: day.patients.count, appointments: day.appointments.count,
                timeout: 60 + Double(patients) / 100)
            let pid = daemon.pid ?? 0
            say(
                "set-up: mosquitto :\(broker.port), cloud stub :\(cloudPort), daemon pid \(pid); roster \(day.patients.count) patients, "
                    + "\(day.appointments.count) appointments, synced in \(Fmt.f(Double(benchNowNs() - t0) / 1e9)) s; idling \(Fmt.f(seconds)) s…")
            let end = Date().addingTimeInterval(seconds)
            while Date() < end {
                if let r = Proc.rssKB(pid) { samples.append(r) }
                try await Task.sleep(for: .milliseconds(500))
            }
            rss = Proc.status(pid)
            mappings = Proc.rssByMapping(pid)
        } catch {
            await BenchEnv.stop(daemon); try? await stub.stop(); await BenchEnv.stop(broker); BenchCleanup.shared.removeDirs()
            throw error
        }
        await BenchEnv.stop(daemon)
        try? await stub.stop()
        await BenchEnv.stop(broker)

        // The limit: this binary with only Foundation work done, as a subprocess.
        let (code, out) = try await DaemonProcess.runCLI(["baseline-rss"], timeout: 30)
        let baseline = code == 0 ? BenchBaselineRSS.parse(out) : nil
        var bareRSS: [String: Int]?
        var bareNote = "skipped (--no-bare)"
        if bare {
            (bareRSS, bareNote) = await BenchIdle.bareFoundation()
        }
        BenchCleanup.shared.removeDirs()

        say("")
        say("resident memory (kB from /proc/PID/status)")
        say("  " + Fmt.pad("process", 58) + Fmt.lpad("VmRSS", 11) + Fmt.lpad("VmHWM", 11) + Fmt.lpad("RssAnon", 11) + Fmt.lpad("RssFile", 11))
        func row(_ label: String, _ s: [String: Int]?) {
            say(
                "  " + Fmt.pad(label, 58) + Fmt.lpad(Fmt.mib(s?["VmRSS"]), 11) + Fmt.lpad(Fmt.mib(s?["VmHWM"]), 11)
                    + Fmt.lpad(Fmt.mib(s?["RssAnon"]), 11) + Fmt.lpad(Fmt.mib(s?["RssFile"]), 11))
        }
        row("daemon, idle \(Fmt.f(seconds)) s, roster \(day.patients.count) patients", rss)
        row("limit: `medic-edge baseline-rss` (the daemon binary)", baseline)
        row("limit: bare Foundation program (\(bareNote))", bareRSS)
        if let lo = samples.min(), let hi = samples.max() {
            say("  daemon VmRSS sampled every 0.5 s while idling: \(Fmt.mib(lo)) … \(Fmt.mib(hi))")
        }
        if !mappings.isEmpty {
            say(
                "  daemon's resident memory by mapping (largest first): "
                    + mappings.prefix(14).map { "\(($0.0 as NSString).lastPathComponent) \(Fmt.mib($0.1))" }.joined(separator: ", "))
        }
        if code != 0 { say("  baseline-rss failed (exit \(code)): \(out.suffix(400))") }
        let d = rss?["VmRSS"]
        if let d, let b = baseline?["VmRSS"] {
            say("")
            say("ratio daemon / baseline (same binary): \(Fmt.f(Double(d) / Double(b), 2))×, +\(Fmt.mib(d - b))")
        }
        if let d, let b = bareRSS?["VmRSS"] {
            say("ratio daemon / bare Foundation program: \(Fmt.f(Double(d) / Double(b), 2))×, +\(Fmt.mib(d - b))")
        }
        let anon = rss?["RssAnon"], file = rss?["RssFile"], peak = rss?["VmHWM"]
        say("")
        say("daemon with \(day.patients.count) patients and \(day.appointments.count) appointments synced:")
        say(
            "  RssAnon \(Fmt.mib(anon)) + RssFile \(Fmt.mib(file)) = \(Fmt.mib(anon.flatMap { a in file.map { a + $0 } })) (VmRSS \(Fmt.mib(d))), "
                + "peak VmHWM \(Fmt.mib(peak)) (the roster's sync included)")
        say("target: ≤ 40 MiB idle → \(Fmt.mib(d)): \(Fmt.verdict((d ?? .max) <= 40 * 1024))")
        say("target: ≤ 64 MiB peak → \(Fmt.mib(peak)): \(Fmt.verdict((peak ?? .max) <= 64 * 1024))")
        BenchEnv.finish()
    }

    /// The small clinic day plus `patients` patients, each with one appointment: today's
    /// from 30 minutes ahead, the rest spread over the next six days (all inside the daemon's
    /// default window, today − 1 … today + 7).
    static func roster(patients: Int) -> ClinicDay {
        var day = ClinicDay()
        day.book(day.maria, startMinutes: 30)
        day.book(day.joao, startMinutes: 90)
        day.patients.reserveCapacity(day.patients.count + patients)
        day.appointments.reserveCapacity(day.appointments.count + patients)
        for i in 0..<patients {
            let p = ClinicDay.Patient(
                id: String(format: "9b000000-0000-4000-8000-%012d", i), name: "Paciente \(i) Bench",
                phone: "+55119\(String(format: "%08d", i))", qr: "medic-qr:v1:idle\(i):\(String(format: "%010d", i))")
            day.patients.append(p)
            day.book(
                p, startMinutes: 30 + Double(i % 7) * 1440 + Double(i / 7 % 600), minutes: 30,
                id: String(format: "ab000000-0000-4000-8000-%012d", i))
        }
        return day
    }

    /// Compiles a program that only loads Foundation, the clinic's zone and a pt-BR
    /// formatter; runs it; returns its /proc status figures.
    static func bareFoundation() async -> ([String: Int]?, String) {
        let swiftc =
            ["/usr/bin/swiftc", "/usr/local/bin/swiftc"].first { FileManager.default.isExecutableFile(atPath: $0) }
            ?? ProcessInfo.processInfo.environment["PATH"]?.split(separator: ":").map { "\($0)/swiftc" }
            .first { FileManager.default.isExecutableFile(atPath: $0) }
        guard let swiftc else { return (nil, "swiftc not found") }
        let dir = Harness.tempDir("bench-bare")
        BenchCleanup.shared.track(dir: dir)
        let src = """
            import Foundation
            let f = DateFormatter()
            f.locale = Locale(identifier: "pt_BR")
            f.timeZone = TimeZone(identifier: "America/Sao_Paulo")!
            f.dateStyle = .full; f.timeStyle = .short
            let text = f.string(from: Date())
            Thread.sleep(forTimeInterval: 0.2)
            let status = (try? String(contentsOfFile: "/proc/self/status", encoding: .utf8)) ?? ""
            print(text)
            print(status)
            """
        do {
            try src.write(toFile: dir + "/main.swift", atomically: true, encoding: .utf8)
            let build = try await Harness.runProgram(swiftc, ["-O", dir + "/main.swift", "-o", dir + "/bare"], timeout: 300)
            guard build.0 == 0 else { return (nil, "swiftc failed: \(build.1.suffix(200))") }
            let r = try await Harness.runProgram(dir + "/bare", [], timeout: 30)
            guard r.0 == 0 else { return (nil, "exit \(r.0)") }
            return (BenchBaselineRSS.parse(r.1), "swiftc -O")
        } catch {
            return (nil, "\(error)")
        }
    }
}

/// The output of `medic-edge baseline-rss` (the daemon's binary, hidden command).
enum BenchBaselineRSS {
    /// Reads the `Key: N kB` lines of a /proc status dump (nil without VmRSS).
    static func parse(_ text: String) -> [String: Int]? {
        let out = Proc.parseStatus(text)
        return out["VmRSS"] == nil ? nil : out
    }
}
