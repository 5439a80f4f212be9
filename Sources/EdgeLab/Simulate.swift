import ArgumentParser
import EdgeSimulators
import EdgeTestSupport
import Foundation

/// `medic-edge simulate`: clinic devices against an MQTT broker (docs/simulators.md).
struct Simulate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract:
            "Simulate clinic devices (kiosks, presence sensors, environment monitors, the vaccine fridge, wearable gateways, device status) against "
            + "an MQTT broker.",
        discussion: """
            Types: kiosk, presence, environment, fridge, wearable, status, or all (comma list or repeated --type).
            Rates multiply the devices' real rates (a room monitor reads every 60 s; --rate 60 makes that every second):
            --rate 30 sets every type, --rate wearable=120 one type. Examples:
              medic-edge simulate --type all --site pleno-cuidado --rate 30 --clinic-day
              medic-edge simulate --type fridge --rate 60 --duration 120
              medic-edge simulate --type kiosk --qr-file codes.txt --rush
              medic-edge simulate --fridge-story history --fridge-story door-short --fridge-story door-long --rate 60
            Fridge stories (the cold chain; they imply --type fridge when --type is not given, and the command ends
            after them unless --duration is set): door-short, door-long, dead-sensor, history.
            QR texts are credentials: prefer --qr-file (a command line is visible to other users); they are never printed.
            """)

    @Option(name: .customLong("type"), help: "Device types (kiosk, presence, environment, fridge, wearable, status, all; default all).")
    var types: [String] = []
    @Option(help: "Broker host.") var host = "127.0.0.1"
    @Option(help: "Broker port.") var port = 1883
    @Option(help: "The appliance's site_id (topic root clinic/SITE).") var site = "demo"
    @Option(help: "MQTT user name (a broker with passwords).") var username: String?
    @Option(help: "File holding the MQTT password.") var passwordFile: String?
    @Option(help: "Rate multiplier: N for every type, or TYPE=N (repeatable).") var rate: [String] = []
    @Option(help: "Seconds to run (0: until Ctrl-C).") var duration: Double = 0
    @Option(help: "A QR text the kiosks scan (repeatable).") var qr: [String] = []
    @Option(help: "A file of QR texts, one per line.") var qrFile: String?
    @Flag(help: "Use the sample clinic day's QR codes and patient ids (the ones the demo and the tests seed in the cloud stub).")
    var clinicDay = false
    @Option(help: "Patient UUID for wearable samples (repeatable; default: the clinic day's, else random).") var patient: [String] = []
    @Option(help: "Room keys for presence sensors and room monitors, comma separated.") var rooms = "sala-2,sala-3"
    @Option(help: "Device id prefix for a second fleet on the same broker (e.g. b- gives b-kiosk-recepcao-1).") var idPrefix = ""
    @Flag(help: "Kiosks in the morning rush: a scan every 15-30 s instead of every 2-5 minutes.") var rush = false
    @Flag(help: "Send what real firmware gets wrong now and then (a -127 probe reading, a torn QR read, an unknown wearable source).")
    var faults = false
    @Option(help: "A cold-chain story for the fridge probe, played once (repeatable, in order): door-short, door-long, dead-sensor, history.")
    var fridgeStory: [String] = []
    @Option(help: "The appliance's cold_chain.alarm_delay_minutes (door-long stays above 8 °C 3 minutes longer).")
    var alarmDelayMinutes: Double = 15
    @Option(help: "The appliance's cold_chain.silence_minutes (dead-sensor stays quiet 3 minutes longer).")
    var silenceMinutes: Double = 10
    @Option(help: "Days of buffered readings the history story sends.") var historyDays = 30
    @Option(help: "Seconds between the history's readings.") var historyInterval: Double = 300
    @Option(help: "Unacknowledged history readings at most (flow control).") var historyWindow = 200
    @Option(help: "Random seed (repeat a run).") var seed: UInt64?
    @Option(help: "Seconds between summary lines (0: none).") var statsEvery: Double = 10
    @Flag(help: "A line for every message.") var verbose = false

    func parsedStories() throws -> [FridgeStory] {
        try fridgeStory.flatMap { $0.split(separator: ",") }.map { raw in
            let t = raw.trimmingCharacters(in: .whitespaces).lowercased()
            guard let s = FridgeStory(rawValue: t) else {
                throw ValidationError("--fridge-story \(t): unknown story; use door-short, door-long, dead-sensor or history")
            }
            return s
        }
    }

    func validate() throws {
        if alarmDelayMinutes < 0 || alarmDelayMinutes > 1440 { throw ValidationError("--alarm-delay-minutes: 0 to 1440") }
        if silenceMinutes <= 0 || silenceMinutes > 1440 { throw ValidationError("--silence-minutes: more than 0, at most 1440") }
        if historyDays < 1 || historyDays > 40 { throw ValidationError("--history-days: 1 to 40 (the appliance records older readings at receipt)") }
        if historyInterval < 10 || historyInterval > 900 { throw ValidationError("--history-interval: 10 to 900 seconds") }
        if historyWindow < 1 || historyWindow > 1000 { throw ValidationError("--history-window: 1 to 1000") }
    }

    func parsedTypes() throws -> Set<SimDeviceType> {
        var out = Set<SimDeviceType>()
        let types = self.types.isEmpty ? [fridgeStory.isEmpty ? "all" : "fridge"] : self.types
        for t in types.flatMap({ $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces).lowercased() } }) where !t.isEmpty {
            if t == "all" { out.formUnion(SimDeviceType.allCases); continue }
            guard let v = SimDeviceType(rawValue: t) else {
                throw ValidationError("--type \(t): unknown device type; use kiosk, presence, environment, fridge, wearable, status or all")
            }
            out.insert(v)
        }
        if out.isEmpty { throw ValidationError("--type: give at least one device type") }
        return out
    }

    func settings() throws -> SimSettings {
        var s = SimSettings(host: host, port: port, site: site)
        for r in rate {
            let parts = r.split(separator: "=", maxSplits: 1).map(String.init)
            if parts.count == 1 {
                guard let v = Double(parts[0]), v > 0 else { throw ValidationError("--rate \(r): a positive number, or TYPE=NUMBER") }
                s.rate = v
            } else {
                guard let v = Double(parts[1]), v > 0 else { throw ValidationError("--rate \(r): a positive number after =") }
                if parts[0] == "all" { s.rate = v; continue }
                guard let t = SimDeviceType(rawValue: parts[0]) else { throw ValidationError("--rate \(r): unknown device type \(parts[0])") }
                s.rates[t] = v
            }
        }
        s.username = username
        if let passwordFile {
            guard let p = try? String(contentsOfFile: passwordFile, encoding: .utf8) else {
                throw ValidationError("--password-file: cannot read \(passwordFile)")
            }
            s.password = p.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        if let seed { s.seed = seed }
        s.faults = faults
        return s
    }

    func run() async throws {
        let kinds = try parsedTypes()
        let stories = try parsedStories()
        if !stories.isEmpty && !kinds.contains(.fridge) { throw ValidationError("--fridge-story needs the fridge: add --type fridge") }
        let s = try settings()
        var codes = qr
        if let qrFile {
            guard let text = try? String(contentsOfFile: qrFile, encoding: .utf8) else { throw ValidationError("--qr-file: cannot read \(qrFile)") }
            codes += text.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        }
        var patients = patient
        if clinicDay {
            let day = ClinicDay()
            codes += day.patients.map(\.qr)
            if patients.isEmpty { patients = day.patients.map(\.id) }
        }
        let roomKeys = rooms.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }

        let log = StoryLog(zone: TimeZone.current)
        let sim = DeviceSimulator(settings: s)
        let p = idPrefix
        if kinds.contains(.kiosk) {
            let k = sim.addKiosk(id: p + "kiosk-recepcao-1", codes: codes)
            k.rush = rush
        }
        if kinds.contains(.presence) { for r in roomKeys { sim.addPresence(id: p + "pres-\(r)", room: r) } }
        if kinds.contains(.environment) { for r in roomKeys { sim.addEnvironment(id: p + "env-\(r)", room: r) } }
        // With stories, no random door openings; a history goes out before any live reading.
        let fridge =
            kinds.contains(.fridge)
            ? sim.addFridge(id: p + "env-geladeira", autoExcursions: stories.isEmpty, sending: stories.first != .history) : nil
        if kinds.contains(.wearable) { sim.addWearableGateway(id: p + "gw-1", patients: patients) }
        if kinds.contains(.status) { sim.addStatusDevice(id: p + "kiosk-recepcao-2") }

        let verbose = self.verbose
        sim.onEvent { e in
            if let (who, text) = SimText.describe(e, verbose: verbose) { log.line(who, text) }
        }
        let rateText = ([("all", s.rate)] + s.rates.sorted { $0.key.rawValue < $1.key.rawValue }.map { ($0.key.rawValue, $0.value) })
            .map { "\($0.0)=\(SimText.number($0.1))" }.joined(separator: " ")
        log.line(
            "simulate",
            "\(sim.deviceIds.count) devices → mqtt://\(host):\(port), topics clinic/\(site)/…, rates \(rateText), seed \(s.seed)"
                + (kinds.contains(.kiosk) ? ", \(codes.count) known QR codes" : ""))

        let timing = FridgeStoryTiming(
            alarmDelayMinutes: alarmDelayMinutes, silenceMinutes: silenceMinutes, historyDays: historyDays,
            historyIntervalSeconds: historyInterval, historyWindow: historyWindow)
        let storyDevice = p + "env-geladeira"
        let work = Task {
            try await sim.start()
            let started = Date()
            var nextStats = statsEvery > 0 ? statsEvery : .infinity
            let storyDone = DemoFlag()
            let storyTask = Task {
                defer { storyDone.set(true) }
                guard let fridge, !stories.isEmpty else { return }
                for story in stories { try await fridge.play(story, timing: timing) { log.line(storyDevice, $0) } }
                log.line(storyDevice, "stories done")
            }
            defer { storyTask.cancel() }
            while true {
                if duration > 0 {
                    if Date().timeIntervalSince(started) >= duration { break }
                } else if !stories.isEmpty && storyDone.isOn {
                    break  // with stories and no --duration: stop when they are done
                }
                try await Task.sleep(for: .milliseconds(200))
                let t = Date().timeIntervalSince(started)
                if t >= nextStats {
                    log.line("stats", SimText.summary(sim.stats()))
                    nextStats += statsEvery
                }
                if storyDone.isOn, case .failure(let e) = await storyTask.result, !(e is CancellationError) { throw e }
            }
        }
        let interrupt = InterruptHandler(onSignal: { _ in work.cancel() })
        let result = await work.result
        await sim.stop()
        log.line("stats", SimText.summary(sim.stats()) + " — stopped")
        if case .failure(let e) = result, !(e is CancellationError), !interrupt.interrupted {
            FileHandle.standardError.write(Data("medic-edge simulate: \(e)\n".utf8))
            throw ExitCode(1)
        }
    }
}
