import Foundation

/// Writes JSON text by hand: the appliance builds event bodies from parts (some of them a
/// device's payload as received), so it needs exact control and no re-encoding.
public struct JSONText: Sendable {
    public private(set) var text: String = "{"
    private var first = true
    public init() { text.reserveCapacity(256) }

    /// Whether `s` has a character JSON must escape (most keys and values have none).
    @inline(__always)
    static func needsEscape(_ s: String) -> Bool {
        s.utf8.contains { $0 < 0x20 || $0 == UInt8(ascii: "\"") || $0 == UInt8(ascii: "\\") }
    }

    public static func quote(_ s: String) -> String {
        if !needsEscape(s) { return "\"" + s + "\"" }
        var out = "\""
        out.reserveCapacity(s.utf8.count + 2)
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where u.value < 0x20:
                out += String(format: "\\u%04x", u.value)
            default: out.unicodeScalars.append(u)
            }
        }
        return out + "\""
    }
    public static func number(_ d: Double) -> String {
        if d.isFinite, d == d.rounded(), abs(d) < 1e15 { return String(Int64(d)) }
        return d.isFinite ? "\(d)" : "null"
    }

    private mutating func appendQuoted(_ s: String) {
        if JSONText.needsEscape(s) { text += JSONText.quote(s); return }
        text += "\""; text += s; text += "\""
    }
    private mutating func key(_ k: String) {
        if !first { text += "," }
        first = false
        appendQuoted(k)
        text += ":"
    }
    public mutating func add(_ k: String, _ v: String?) {
        key(k)
        if let v { appendQuoted(v) } else { text += "null" }
    }
    public mutating func add(_ k: String, _ v: Double?) { key(k); text += v.map(JSONText.number) ?? "null" }
    public mutating func add(_ k: String, _ v: Int) { key(k); text += String(v) }
    public mutating func add(_ k: String, _ v: Int64) { key(k); text += String(v) }
    public mutating func add(_ k: String, _ v: Bool) { key(k); text += v ? "true" : "false" }
    /// Adds already-valid JSON text as the value.
    public mutating func addRaw(_ k: String, _ json: String) { key(k); text += json }
    public func finished() -> String { text + "}" }

    public static func object(_ build: (inout JSONText) -> Void) -> String {
        var j = JSONText(); build(&j); return j.finished()
    }
}
