/// A parsed JSON value. The appliance's own parser: strict (RFC 8259), bounded in depth,
/// fast on UTF-8 bytes, and exact about booleans versus numbers (device payloads are
/// untrusted input and are fuzzed).
public enum JSON: Sendable, Equatable {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSON])
    case object([String: JSON])

    public subscript(key: String) -> JSON? {
        if case .object(let o) = self { return o[key] }
        return nil
    }
    public var stringValue: String? { if case .string(let s) = self { return s }; return nil }
    public var doubleValue: Double? { if case .number(let d) = self { return d }; return nil }
    public var boolValue: Bool? { if case .bool(let b) = self { return b }; return nil }
    public var objectValue: [String: JSON]? { if case .object(let o) = self { return o }; return nil }
    public var arrayValue: [JSON]? { if case .array(let a) = self { return a }; return nil }
    public var isNull: Bool { if case .null = self { return true }; return false }

    /// Serializes (keys sorted, for stable output).
    public var text: String {
        switch self {
        case .null: return "null"
        case .bool(let b): return b ? "true" : "false"
        case .number(let d): return JSONText.number(d)
        case .string(let s): return JSONText.quote(s)
        case .array(let a): return "[" + a.map(\.text).joined(separator: ",") + "]"
        case .object(let o):
            return "{" + o.keys.sorted().map { JSONText.quote($0) + ":" + o[$0]!.text }.joined(separator: ",") + "}"
        }
    }

    public struct ParseError: Error, Equatable { public let offset: Int; public let message: String }

    public static func parse(_ bytes: [UInt8], maxDepth: Int = 32) throws(ParseError) -> JSON {
        var p = Parser(b: bytes, maxDepth: maxDepth)
        p.skipWS()
        let v = try p.value(depth: 0)
        p.skipWS()
        guard p.i == bytes.count else { throw ParseError(offset: p.i, message: "trailing characters") }
        return v
    }
    public static func parse(_ s: String) throws(ParseError) -> JSON { try parse(Array(s.utf8)) }
}

private struct Parser {
    let b: [UInt8]
    let maxDepth: Int
    var i = 0
    init(b: [UInt8], maxDepth: Int) { self.b = b; self.maxDepth = maxDepth }

    func fail(_ m: String) -> JSON.ParseError { JSON.ParseError(offset: i, message: m) }

    mutating func skipWS() {
        while i < b.count, b[i] == 0x20 || b[i] == 0x0a || b[i] == 0x0d || b[i] == 0x09 { i += 1 }
    }

    mutating func value(depth: Int) throws(JSON.ParseError) -> JSON {
        guard depth <= maxDepth else { throw fail("nested too deeply") }
        guard i < b.count else { throw fail("unexpected end") }
        switch b[i] {
        case UInt8(ascii: "{"):
            guard depth < maxDepth else { throw fail("nested too deeply") }
            i += 1
            var o: [String: JSON] = [:]
            skipWS()
            if i < b.count, b[i] == UInt8(ascii: "}") { i += 1; return .object(o) }
            while true {
                skipWS()
                guard i < b.count, b[i] == UInt8(ascii: "\"") else { throw fail("expected a key") }
                let k = try string()
                skipWS()
                guard i < b.count, b[i] == UInt8(ascii: ":") else { throw fail("expected ':'") }
                i += 1
                skipWS()
                let v = try value(depth: depth + 1)
                guard o[k] == nil else { throw fail("duplicate key") }
                o[k] = v
                skipWS()
                guard i < b.count else { throw fail("unexpected end") }
                if b[i] == UInt8(ascii: ",") { i += 1; continue }
                if b[i] == UInt8(ascii: "}") { i += 1; return .object(o) }
                throw fail("expected ',' or '}'")
            }
        case UInt8(ascii: "["):
            guard depth < maxDepth else { throw fail("nested too deeply") }
            i += 1
            var a: [JSON] = []
            skipWS()
            if i < b.count, b[i] == UInt8(ascii: "]") { i += 1; return .array(a) }
            while true {
                skipWS()
                a.append(try value(depth: depth + 1))
                skipWS()
                guard i < b.count else { throw fail("unexpected end") }
                if b[i] == UInt8(ascii: ",") { i += 1; continue }
                if b[i] == UInt8(ascii: "]") { i += 1; return .array(a) }
                throw fail("expected ',' or ']'")
            }
        case UInt8(ascii: "\""):
            return .string(try string())
        case UInt8(ascii: "t"): try literal("true"); return .bool(true)
        case UInt8(ascii: "f"): try literal("false"); return .bool(false)
        case UInt8(ascii: "n"): try literal("null"); return .null
        default:
            return .number(try number())
        }
    }

    mutating func literal(_ s: StaticString) throws(JSON.ParseError) {
        let n = s.utf8CodeUnitCount
        guard i + n <= b.count else { throw fail("bad literal") }
        let p = s.utf8Start
        for k in 0..<n where b[i + k] != p[k] { throw fail("bad literal") }
        i += n
    }

    mutating func number() throws(JSON.ParseError) -> Double {
        let start = i
        if i < b.count, b[i] == UInt8(ascii: "-") { i += 1 }
        guard i < b.count, b[i] >= 48, b[i] <= 57 else { throw fail("bad value") }
        if b[i] == 48 { i += 1 } else { while i < b.count, b[i] >= 48, b[i] <= 57 { i += 1 } }
        if i < b.count, b[i] == UInt8(ascii: ".") {
            i += 1
            guard i < b.count, b[i] >= 48, b[i] <= 57 else { throw fail("bad number") }
            while i < b.count, b[i] >= 48, b[i] <= 57 { i += 1 }
        }
        if i < b.count, b[i] == UInt8(ascii: "e") || b[i] == UInt8(ascii: "E") {
            i += 1
            if i < b.count, b[i] == UInt8(ascii: "+") || b[i] == UInt8(ascii: "-") { i += 1 }
            guard i < b.count, b[i] >= 48, b[i] <= 57 else { throw fail("bad number") }
            while i < b.count, b[i] >= 48, b[i] <= 57 { i += 1 }
        }
        let s = String(decoding: b[start..<i], as: UTF8.self)
        guard let d = Double(s), d.isFinite else { throw fail("bad number") }
        return d
    }

    mutating func hex4() throws(JSON.ParseError) -> UInt32 {
        guard i + 4 <= b.count else { throw fail("bad escape") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let c = b[i]; i += 1
            let d: UInt32
            switch c {
            case 48...57: d = UInt32(c - 48)
            case 65...70: d = UInt32(c - 55)
            case 97...102: d = UInt32(c - 87)
            default: throw fail("bad escape")
            }
            v = v << 4 | d
        }
        return v
    }

    mutating func string() throws(JSON.ParseError) -> String {
        i += 1  // opening quote
        let start = i
        // fast path: no escapes
        while i < b.count {
            let c = b[i]
            if c == UInt8(ascii: "\"") {
                guard let s = String(validating: b[start..<i], as: UTF8.self) else { throw fail("invalid UTF-8") }
                i += 1
                return s
            }
            if c == UInt8(ascii: "\\") { break }
            if c < 0x20 { throw fail("control character in string") }
            i += 1
        }
        var out = Array(b[start..<i])
        while i < b.count {
            let c = b[i]
            if c == UInt8(ascii: "\"") {
                i += 1
                guard let s = String(validating: out, as: UTF8.self) else { throw fail("invalid UTF-8") }
                return s
            }
            if c < 0x20 { throw fail("control character in string") }
            if c == UInt8(ascii: "\\") {
                i += 1
                guard i < b.count else { break }
                let e = b[i]; i += 1
                switch e {
                case UInt8(ascii: "\""): out.append(0x22)
                case UInt8(ascii: "\\"): out.append(0x5c)
                case UInt8(ascii: "/"): out.append(0x2f)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0c)
                case UInt8(ascii: "n"): out.append(0x0a)
                case UInt8(ascii: "r"): out.append(0x0d)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "u"):
                    var cp = try hex4()
                    if (0xD800...0xDBFF).contains(cp) {
                        guard i + 2 <= b.count, b[i] == UInt8(ascii: "\\"), b[i + 1] == UInt8(ascii: "u") else { throw fail("lone surrogate") }
                        i += 2
                        let lo = try hex4()
                        guard (0xDC00...0xDFFF).contains(lo) else { throw fail("lone surrogate") }
                        cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00)
                    } else if (0xDC00...0xDFFF).contains(cp) {
                        throw fail("lone surrogate")
                    }
                    guard let sc = Unicode.Scalar(cp) else { throw fail("bad escape") }
                    out.append(contentsOf: Array(String(Character(sc)).utf8))
                default: throw fail("bad escape")
                }
                continue
            }
            out.append(c); i += 1
        }
        throw fail("unterminated string")
    }
}
