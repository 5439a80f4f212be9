import EdgeCore
import EdgeSimulators
import EdgeTestSupport
import Foundation
import Synchronization

// What `simulate` and `demo` show on the terminal: Ctrl-C handling (`InterruptHandler`), the
// story's timestamped lines (`StoryLog`) and the wording of simulator events (`SimText`). The
// simulators themselves are the EdgeSimulators target (devices/<type>/…Simulator.swift), so
// the integration tests drive them in-process too.

/// Ctrl-C and SIGTERM for a command that must clean up: the first signal calls `onSignal`
/// (which cancels the work; cleanup follows), a second one calls `onForce` and exits 130.
final class InterruptHandler: @unchecked Sendable {
    // @unchecked: DispatchSourceSignal is not Sendable; `sources` is written in init only, then just kept alive.
    private var sources: [DispatchSourceSignal] = []
    private let count = Mutex(0)

    init(
        signals: [Int32] = [SIGINT, SIGTERM], onSignal: @escaping @Sendable (Int32) -> Void,
        onForce: @escaping @Sendable () -> Void = {}
    ) {
        for sig in signals {
            signal(sig, SIG_IGN)
            let s = DispatchSource.makeSignalSource(signal: sig, queue: .global())
            s.setEventHandler { [weak self] in
                guard let self else { return }
                let n = self.count.withLock {
                    $0 += 1; return $0
                }
                if n == 1 {
                    onSignal(sig)
                } else {
                    onForce()
                    FileHandle.standardError.write(Data("medic-edge: stopped at once (second signal)\n".utf8))
                    _exit(130)
                }
            }
            s.resume()
            sources.append(s)
        }
    }

    var interrupted: Bool { count.withLock { $0 > 0 } }
}

/// Plain lines with a timestamp, written at once (unbuffered, so a pipe sees them as they
/// happen), never interleaved.
final class StoryLog: Sendable {
    /// The formatter (not thread-safe) and, while held, the right to write to stdout.
    private let formatter: Mutex<DateFormatter>
    let zone: TimeZone

    init(zone: TimeZone) {
        self.zone = zone
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = zone
        f.dateFormat = "HH:mm:ss"
        formatter = Mutex(f)
    }

    func clock(_ d: Date = Date()) -> String { formatter.withLock { $0.string(from: d) } }

    /// `HH:mm:ss  topic    text`
    func line(_ topic: String, _ text: String) {
        let stamp = clock()
        let padded = topic.count >= 8 ? topic : topic + String(repeating: " ", count: 8 - topic.count)
        write("\(stamp)  \(padded) \(text)\n")
    }
    func plain(_ text: String) { write(text + "\n") }

    private func write(_ s: String) {
        formatter.withLock { _ in FileHandle.standardOutput.write(Data(s.utf8)) }
    }
}

enum SimText {
    static func number(_ d: Double) -> String { d == d.rounded() ? String(Int(d)) : String(format: "%.1f", d) }
    static func celsius(_ d: Double) -> String { String(format: "%.1f °C", d) }
    static func ms(_ d: Double) -> String { d < 10 ? String(format: "%.1f ms", d) : String(format: "%.0f ms", d) }

    /// One line for a simulator event, or nil for events not worth a line at this verbosity.
    static func describe(_ e: SimEvent, verbose: Bool) -> (String, String)? {
        switch e {
        case .online(let d): return (d, "online (retained status; will: offline)")
        case .connectionLost(let d, let code): return (d, "connection lost (\(code)); reconnecting")
        case .refused(let d, let reason): return (d, "the broker refused the connection: \(reason)")
        case .kioskResult(let a):
            let resend = a.sends > 1 ? ", sent \(a.sends)×" : ""
            return (a.device, "scan \(a.scanId) (\(a.label)) → \(a.outcome) in \(ms(a.millis))\(resend): \"\(a.message)\"")
        case .kioskGaveUp(let d, let s): return (d, "scan \(s): no result after 60 s: \"Fale com a recepção\"")
        case .acked(let d, let m, let err, let sends):
            if let err { return (d, "\(m) rejected by the appliance: \(err)") }
            return verbose || sends > 1 ? (d, "\(m) acked\(sends > 1 ? " after \(sends) sends" : "")") : nil
        case .resent(let d, let k, let n): return verbose || n == 2 ? (d, "no answer yet: \(k) resent (send \(n))") : nil
        case .presence(let d, let r, let o, let p): return (d, "\(r): \(o ? "occupied (\(p) \(p == 1 ? "person" : "people"))" : "empty")")
        case .environment(let d, let r, let t, let h, let c):
            return verbose ? (d, "\(r): \(number(t)) °C, \(number(h)) %RH, \(number(c)) ppm CO₂") : nil
        case .fridge(let d, let r, let t, let phase):
            return verbose || phase != "warming" && phase != "cooling" ? (d, "\(r): \(celsius(t)) (\(phase))") : nil
        case .wearableBatch(let d, let m, let n, let bad): return (d, "batch \(m): \(n) samples\(bad > 0 ? " (\(bad) invalid)" : "")")
        case .rebooting(let d): return (d, "rebooting (offline status, then online again)")
        case .applianceStatus(let j):
            let state = j["state"]?.stringValue ?? "?"
            if state == "offline" { return ("appliance", "offline: check-in unavailable, \"fale com a recepção\"") }
            return (
                "appliance", "\(state), cloud \(j["cloud"]?.stringValue ?? "?"), backlog \(j["backlog"]?.doubleValue.map { String(Int($0)) } ?? "?")"
            )
        case .stopped(let d): return verbose ? (d, "stopped (offline status published)") : nil
        }
    }

    static func summary(_ stats: [SimDeviceStats]) -> String {
        let published = stats.reduce(0) { $0 + $1.published }
        let resent = stats.reduce(0) { $0 + $1.resent }
        let acked = stats.reduce(0) { $0 + $1.acked }
        let errors = stats.reduce(0) { $0 + $1.ackErrors }
        let pending = stats.reduce(0) { $0 + $1.pending }
        var results: [String: Int] = [:]
        for s in stats { for (k, v) in s.results { results[k, default: 0] += v } }
        let r = results.isEmpty ? "" : "; kiosk " + results.sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
        return "\(stats.count) devices: published \(published) (\(resent) resends), acked \(acked), rejected \(errors), waiting \(pending)\(r)"
    }
}
