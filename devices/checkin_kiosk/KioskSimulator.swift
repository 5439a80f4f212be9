import EdgeCore
import EdgeMQTT
import Foundation
import Logging
import Synchronization

/// A check-in kiosk (devices/checkin_kiosk): scans QR codes and shows the appliance's answer;
/// resends the same `scan_id` when no result comes within 3 s (backing off to 30 s, giving up
/// after 60 s).
public final class KioskSim: SimRunnable, Sendable {
    public let id: String
    let link: SimLink
    let rng: LockedRandom
    let rate: Double
    let knownCodes: [String]
    let auto: Bool
    let faults: Bool
    let tag = runTag()
    private struct State {
        var counter = 0
        var lastKnown: String?
        var rush = false
    }
    private let state = Mutex(State())
    /// Morning rush: one scan every 15–30 s instead of every 2–5 minutes.
    public var rush: Bool {
        get { state.withLock { $0.rush } }
        set { state.withLock { $0.rush = newValue } }
    }

    init(id: String, room: String?, codes: [String], auto: Bool, settings: SimSettings, emit: @escaping @Sendable (SimEvent) -> Void) {
        self.id = id; knownCodes = codes; self.auto = auto; faults = settings.faults
        rate = settings.rate(for: .kiosk)
        rng = LockedRandom(seed: settings.seed, salt: id)
        link = SimLink(
            id: id, kind: .kiosk, contractType: "checkin_kiosk", room: room, fw: "1.4.0", settings: settings,
            extraReplyTopics: ["clinic/\(settings.site)/kiosk/\(id)/result", "clinic/\(settings.site)/edge/status"],
            resendProtocolSeconds: 3, resendCapProtocolSeconds: 30, emit: emit)
    }

    func nextScanId() -> String {
        let n = state.withLock {
            $0.counter += 1; return $0.counter
        }
        return "\(id)-\(tag)-\(String(format: "%06d", n))"
    }

    /// Scans `qr` and waits for the result (nil: no result within `timeout` seconds).
    /// `label` names the scan in events (never the QR text).
    @discardableResult
    public func scan(_ qr: String, label: String = "given", timeout: Double = 60) async -> KioskAnswer? {
        let scanId = nextScanId()
        let payload = JSONText.object { j in
            j.add("scan_id", scanId); j.add("qr", qr); j.add("ts", Time.rfc3339(Date()))
        }
        guard let (json, sends, ms) = await link.request("clinic/\(link.site)/kiosk/\(id)/scan", payload, key: scanId, giveUpAfter: timeout) else {
            return nil
        }
        let a = KioskAnswer(
            device: id, scanId: scanId, outcome: json["outcome"]?.stringValue ?? "?",
            message: json["message"]?.stringValue ?? "", firstName: json["patient"]?["first_name"]?.stringValue,
            millis: ms, sends: sends, label: label, result: json)
        link.emit(.kioskResult(a))
        return a
    }

    /// The mix of the README: mostly known codes, some patients scanning twice, some old or
    /// foreign codes, and (with faults) a torn read.
    func pickCode() -> (String, String) {
        let r = rng.double(0...1)
        let last = state.withLock { $0.lastKnown }
        if faults && r < 0.005 { return ("", "torn") }
        if r < 0.05, let last { return (last, "repeat") }
        if r < 0.10 || knownCodes.isEmpty { return ("medic-qr:v1:unknown:" + rng.hex(10), "unknown") }
        let code = rng.pick(knownCodes)
        state.withLock { $0.lastKnown = code }
        return (code, "known")
    }

    func behave() async {
        guard auto else { return }
        while !Task.isCancelled {
            let gap = rush ? rng.double(15...30) : rng.double(120...300)
            do { try await simSleep(gap, rate: rate) } catch { return }
            let (code, label) = pickCode()
            await scan(code, label: label)
        }
    }

    public var stats: SimDeviceStats { link.snapshot() }
}
