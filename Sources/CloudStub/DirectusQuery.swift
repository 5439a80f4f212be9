/// The subset of the Directus items query the stub understands: `fields`, `filter`, `sort`,
/// `limit`, `offset`, `page` and `meta`.
struct DirectusQuery {
    var fields: [String]? = nil
    var filter: DirectusFilter? = nil
    var sort: [(path: [String], descending: Bool)] = []
    var limit: Int = 100
    var offset: Int = 0
    var meta: Set<String> = []

    struct Invalid: Error {
        var message: String
    }

    /// Builds the query from decoded query-string pairs (in order, keys repeated as sent).
    init(pairs: [(String, String)]) throws(Invalid) {
        var bracketFilter: JSONValue? = nil
        var page: Int? = nil
        var fieldsList: [String] = []
        var sawFields = false
        for (key, value) in pairs {
            switch key {
            case "fields", "fields[]":
                sawFields = true
                fieldsList += DirectusQuery.splitList(value)
            case "filter":
                let json: JSONValue
                do {
                    json = try JSONValue.parse(value)
                } catch {
                    throw Invalid(message: "Invalid query. Invalid JSON for filter object: \(error).")
                }
                filter = try DirectusFilter.parse(json)
            case "sort", "sort[]":
                for item in DirectusQuery.splitList(value) {
                    if item.hasPrefix("-") {
                        sort.append((item.dropFirst().split(separator: ".").map(String.init), true))
                    } else {
                        sort.append((item.split(separator: ".").map(String.init), false))
                    }
                }
            case "limit":
                guard let n = Int(value), n >= -1 else {
                    throw Invalid(message: "Invalid query. \"limit\" has to be a number, -1 or greater.")
                }
                limit = n
            case "offset":
                guard let n = Int(value), n >= 0 else {
                    throw Invalid(message: "Invalid query. \"offset\" has to be a number, 0 or greater.")
                }
                offset = n
            case "page":
                guard let n = Int(value), n >= 1 else {
                    throw Invalid(message: "Invalid query. \"page\" has to be a number, 1 or greater.")
                }
                page = n
            case "meta", "meta[]":
                for m in DirectusQuery.splitList(value) { meta.insert(m) }
            default:
                if key.hasPrefix("filter[") {
                    let path = DirectusQuery.bracketPath(key.dropFirst("filter".count))
                    guard !path.isEmpty else { throw Invalid(message: "Invalid query. Bad filter parameter \"\(key)\".") }
                    bracketFilter = DirectusQuery.insert(.string(value), at: path[...], into: bracketFilter)
                }
            // Other parameters (deep, search, alias, …) are ignored.
            }
        }
        if let bf = bracketFilter {
            let parsed = try DirectusFilter.parse(DirectusQuery.arraysFromIndexedObjects(bf))
            if let f = filter {
                filter = .and([f, parsed])
            } else {
                filter = parsed
            }
        }
        if sawFields {
            fields = fieldsList
        }
        if let p = page, limit > 0 {
            offset = (p - 1) * limit
        }
    }

    static func splitList(_ s: String) -> [String] {
        s.split(separator: ",").map { $0.trimmingSpaces() }.filter { !$0.isEmpty }
    }

    /// `[a][b][0]` → ["a", "b", "0"].
    static func bracketPath(_ s: Substring) -> [String] {
        var out: [String] = []
        var rest = s
        while rest.first == "[" {
            guard let close = rest.firstIndex(of: "]") else { return [] }
            out.append(String(rest[rest.index(after: rest.startIndex)..<close]))
            rest = rest[rest.index(after: close)...]
        }
        return rest.isEmpty ? out : []
    }

    static func insert(_ value: JSONValue, at path: ArraySlice<String>, into node: JSONValue?) -> JSONValue {
        guard let key = path.first else { return value }
        var o = node?.objectValue ?? [:]
        o[key] = insert(value, at: path.dropFirst(), into: o[key])
        return .object(o)
    }

    /// Bracket notation writes arrays as objects keyed "0", "1", …; turn those back into arrays.
    static func arraysFromIndexedObjects(_ v: JSONValue) -> JSONValue {
        guard case .object(let o) = v else { return v }
        let converted = o.mapValues(arraysFromIndexedObjects)
        let indices = converted.keys.compactMap { Int($0) }
        if !converted.isEmpty, indices.count == converted.count {
            return .array(indices.sorted().map { converted[String($0)]! })
        }
        return .object(converted)
    }

    // MARK: Running the query

    func run(on rows: [JSONValue]) -> (data: [JSONValue], filterCount: Int) {
        var selected = rows
        if let f = filter {
            selected = selected.filter { f.matches($0) }
        }
        let filterCount = selected.count
        if !sort.isEmpty {
            let keyed = selected.enumerated().map { ($0.offset, $0.element) }
            selected = keyed.sorted { a, b in
                for s in sort {
                    let va = a.1.lookup(s.path), vb = b.1.lookup(s.path)
                    let c = JSONValue.sortCompare(va, vb)
                    if c != 0 { return s.descending ? c > 0 : c < 0 }
                }
                return a.0 < b.0
            }.map(\.1)
        }
        if offset > 0 {
            selected = offset >= selected.count ? [] : Array(selected[offset...])
        }
        if limit >= 0, selected.count > limit {
            selected = Array(selected[..<limit])
        }
        if let fields = fields, !fields.contains("*") {
            let tree = FieldTree(paths: fields)
            selected = selected.map { tree.project($0) }
        }
        return (selected, filterCount)
    }
}

/// `fields=id,name,iot_config.mqtt_room_id` as a tree; a leaf (or `*`) takes the whole value.
struct FieldTree {
    var children: [String: FieldTree] = [:]
    var whole = false

    init(paths: [String]) {
        for p in paths {
            add(p.split(separator: ".").map(String.init)[...])
        }
    }

    private init() {}

    private mutating func add(_ path: ArraySlice<String>) {
        guard let first = path.first else {
            whole = true
            return
        }
        if first == "*" {
            whole = true
            return
        }
        var child = children[first] ?? FieldTree()
        child.add(path.dropFirst())
        children[first] = child
    }

    func project(_ v: JSONValue) -> JSONValue {
        if whole { return v }
        switch v {
        case .object(let o):
            var out: [String: JSONValue] = [:]
            for (k, sub) in children {
                // Like Directus, a requested field is always present (null when the row has none).
                out[k] = sub.project(o[k] ?? .null)
            }
            return .object(out)
        case .array(let a):
            return .array(a.map { project($0) })
        default:
            return v
        }
    }
}

/// A parsed Directus filter.
indirect enum DirectusFilter {
    case and([DirectusFilter])
    case or([DirectusFilter])
    case condition(path: [String], op: String, value: JSONValue)

    static let operators: Set<String> = [
        "_eq", "_neq", "_gt", "_gte", "_lt", "_lte", "_in", "_nin", "_between", "_nbetween",
        "_null", "_nnull", "_contains", "_ncontains", "_icontains", "_nicontains",
        "_starts_with", "_nstarts_with", "_istarts_with", "_ends_with", "_nends_with", "_iends_with",
        "_empty", "_nempty",
    ]

    static func parse(_ json: JSONValue, path: [String] = []) throws(DirectusQuery.Invalid) -> DirectusFilter {
        guard let o = json.objectValue else {
            throw DirectusQuery.Invalid(message: "Invalid query. Filter must be an object.")
        }
        var parts: [DirectusFilter] = []
        for key in o.keys.sorted() {
            let value = o[key]!
            if key == "_and" || key == "_or" {
                guard let items = value.arrayValue else {
                    throw DirectusQuery.Invalid(message: "Invalid query. \"\(key)\" needs an array of filters.")
                }
                var subs: [DirectusFilter] = []
                for item in items { subs.append(try parse(item, path: path)) }
                parts.append(key == "_and" ? .and(subs) : .or(subs))
            } else if key.hasPrefix("_") {
                guard !path.isEmpty else {
                    throw DirectusQuery.Invalid(message: "Invalid query. \"\(key)\" needs a field to compare.")
                }
                guard operators.contains(key) else {
                    throw DirectusQuery.Invalid(message: "Invalid query. Unknown filter operator \"\(key)\".")
                }
                parts.append(.condition(path: path, op: key, value: value))
            } else {
                guard value.objectValue != nil else {
                    throw DirectusQuery.Invalid(
                        message: "Invalid query. The filter for \"\((path + [key]).joined(separator: "."))\" must be an object of operators.")
                }
                parts.append(try parse(value, path: path + [key]))
            }
        }
        return parts.count == 1 ? parts[0] : .and(parts)
    }

    func matches(_ row: JSONValue) -> Bool {
        switch self {
        case .and(let fs): return fs.allSatisfy { $0.matches(row) }
        case .or(let fs): return fs.contains { $0.matches(row) }
        case .condition(let path, let op, let value):
            return DirectusFilter.evaluate(op, field: row.lookup(path), value: value)
        }
    }

    private static func truthy(_ v: JSONValue) -> Bool {
        switch v {
        case .bool(let b): return b
        case .string(let s): return s == "true" || s == "1"
        case .number(let d): return d != 0
        default: return false
        }
    }

    /// Values of a list operand: an array, or a comma-separated string.
    private static func list(_ v: JSONValue) -> [JSONValue] {
        switch v {
        case .array(let a): return a
        case .string(let s): return s.split(separator: ",", omittingEmptySubsequences: false).map { .string(String($0)) }
        default: return [v]
        }
    }

    private static func isEmptyValue(_ v: JSONValue) -> Bool {
        switch v {
        case .null: return true
        case .string(let s): return s.isEmpty
        case .array(let a): return a.isEmpty
        case .object(let o): return o.isEmpty
        default: return false
        }
    }

    /// SQL-like semantics: a null (or missing) field satisfies only `_null`, `_eq: null`,
    /// `_neq` of a non-null value is false for it (as `NULL <> x` is not true), and so on.
    static func evaluate(_ op: String, field: JSONValue, value: JSONValue) -> Bool {
        switch op {
        case "_null": return truthy(value) ? field.isNull : !field.isNull
        case "_nnull": return truthy(value) ? !field.isNull : field.isNull
        case "_empty": return truthy(value) ? isEmptyValue(field) : !isEmptyValue(field)
        case "_nempty": return truthy(value) ? !isEmptyValue(field) : isEmptyValue(field)
        case "_eq":
            if value.isNull { return field.isNull }
            return !field.isNull && JSONValue.looselyEqual(field, value)
        case "_neq":
            if value.isNull { return !field.isNull }
            return !field.isNull && !JSONValue.looselyEqual(field, value)
        default:
            break
        }
        if field.isNull { return false }
        switch op {
        case "_gt", "_gte", "_lt", "_lte":
            guard let c = JSONValue.compare(field, value) else { return false }
            switch op {
            case "_gt": return c > 0
            case "_gte": return c >= 0
            case "_lt": return c < 0
            default: return c <= 0
            }
        case "_in": return list(value).contains { JSONValue.looselyEqual(field, $0) }
        case "_nin": return !list(value).contains { JSONValue.looselyEqual(field, $0) }
        case "_between", "_nbetween":
            let bounds = list(value)
            guard bounds.count == 2, let lo = JSONValue.compare(field, bounds[0]),
                let hi = JSONValue.compare(field, bounds[1])
            else { return false }
            let inside = lo >= 0 && hi <= 0
            return op == "_between" ? inside : !inside
        default:
            guard let s = field.textForMatching, let needle = value.textForMatching else { return false }
            switch op {
            case "_contains": return s.contains(needle)
            case "_ncontains": return !s.contains(needle)
            case "_icontains": return s.lowercased().contains(needle.lowercased())
            case "_nicontains": return !s.lowercased().contains(needle.lowercased())
            case "_starts_with": return s.hasPrefix(needle)
            case "_nstarts_with": return !s.hasPrefix(needle)
            case "_istarts_with": return s.lowercased().hasPrefix(needle.lowercased())
            case "_ends_with": return s.hasSuffix(needle)
            case "_nends_with": return !s.hasSuffix(needle)
            case "_iends_with": return s.lowercased().hasSuffix(needle.lowercased())
            default: return false
            }
        }
    }
}

// MARK: - Comparisons

extension JSONValue {
    func lookup(_ path: [String]) -> JSONValue {
        var cur = self
        for key in path {
            guard case .object(let o) = cur, let next = o[key] else { return .null }
            cur = next
        }
        return cur
    }

    var textForMatching: String? {
        switch self {
        case .string(let s): return s
        case .number, .bool: return idString
        default: return nil
        }
    }

    /// Orders two scalars, or nil when they cannot be compared (null, mixed kinds).
    /// Numbers compare as numbers (a numeric string against a number too); two strings that both
    /// parse as RFC 3339 timestamps compare as instants (so offsets are honoured); other strings
    /// compare lexicographically.
    static func compare(_ a: JSONValue, _ b: JSONValue) -> Int? {
        switch (a, b) {
        case (.number(let x), .number(let y)):
            return x < y ? -1 : (x > y ? 1 : 0)
        case (.number(let x), .string(let s)):
            guard let y = Double(s.trimmingSpaces()) else { return nil }
            return x < y ? -1 : (x > y ? 1 : 0)
        case (.string(let s), .number(let y)):
            guard let x = Double(s.trimmingSpaces()) else { return nil }
            return x < y ? -1 : (x > y ? 1 : 0)
        case (.string(let x), .string(let y)):
            if let dx = Timestamp(x), let dy = Timestamp(y) {
                return dx < dy ? -1 : (dy < dx ? 1 : 0)
            }
            return x < y ? -1 : (x > y ? 1 : 0)
        case (.bool(let x), .bool(let y)):
            return x == y ? 0 : (x ? 1 : -1)
        case (.bool(let x), .string(let s)), (.string(let s), .bool(let x)):
            guard s == "true" || s == "false" else { return nil }
            let y = s == "true"
            let c = x == y ? 0 : (x ? 1 : -1)
            if case .bool = a { return c }
            return -c
        case (.bool(let x), .number(let y)):
            let xv: Double = x ? 1 : 0
            return xv < y ? -1 : (xv > y ? 1 : 0)
        case (.number(let x), .bool(let y)):
            let yv: Double = y ? 1 : 0
            return x < yv ? -1 : (x > yv ? 1 : 0)
        default:
            return nil
        }
    }

    static func looselyEqual(_ a: JSONValue, _ b: JSONValue) -> Bool {
        if let c = compare(a, b) { return c == 0 }
        return a == b
    }

    /// Total order for `sort`: nulls first, then booleans, numbers, strings, others.
    static func sortCompare(_ a: JSONValue, _ b: JSONValue) -> Int {
        func rank(_ v: JSONValue) -> Int {
            switch v {
            case .null: return 0
            case .bool: return 1
            case .number: return 2
            case .string: return 3
            case .array: return 4
            case .object: return 5
            }
        }
        let ra = rank(a), rb = rank(b)
        if ra != rb { return ra < rb ? -1 : 1 }
        if let c = compare(a, b) { return c }
        if ra >= 4 {
            let sa = a.serialized(), sb = b.serialized()
            return sa < sb ? -1 : (sa > sb ? 1 : 0)
        }
        return 0
    }
}

extension StringProtocol {
    func trimmingSpaces() -> String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" { s = s.dropFirst() }
        while let l = s.last, l == " " || l == "\t" { s = s.dropLast() }
        return String(s)
    }
}

/// An instant parsed from RFC 3339 / ISO 8601 text (`2026-11-29`, `2026-11-29T13:02:11Z`,
/// `2026-11-29 10:02:11.5-03:00`, `2026-11-29T13:02:11` = UTC, as Directus treats it).
struct Timestamp: Comparable {
    var seconds: Int64
    var nanos: Int64

    static func < (l: Timestamp, r: Timestamp) -> Bool {
        l.seconds != r.seconds ? l.seconds < r.seconds : l.nanos < r.nanos
    }

    init?(_ text: String) {
        let b = Array(text.utf8)
        guard b.count >= 10 else { return nil }
        var i = 0
        func digits(_ n: Int) -> Int? {
            guard i + n <= b.count else { return nil }
            var v = 0
            for k in 0..<n {
                let c = b[i + k]
                guard c >= 48, c <= 57 else { return nil }
                v = v * 10 + Int(c - 48)
            }
            i += n
            return v
        }
        func expect(_ c: UInt8) -> Bool {
            guard i < b.count, b[i] == c else { return false }
            i += 1
            return true
        }
        guard let year = digits(4), expect(UInt8(ascii: "-")), let month = digits(2), expect(UInt8(ascii: "-")),
            let day = digits(2), (1...12).contains(month), (1...31).contains(day)
        else { return nil }
        var hour = 0, minute = 0, second = 0
        var nanos: Int64 = 0
        var offset = 0
        if i < b.count {
            guard b[i] == UInt8(ascii: "T") || b[i] == UInt8(ascii: "t") || b[i] == UInt8(ascii: " ") else { return nil }
            i += 1
            guard let h = digits(2), expect(UInt8(ascii: ":")), let m = digits(2), h <= 23, m <= 59 else { return nil }
            hour = h
            minute = m
            if expect(UInt8(ascii: ":")) {
                guard let s = digits(2), s <= 60 else { return nil }
                second = s
                if expect(UInt8(ascii: ".")) || expect(UInt8(ascii: ",")) {
                    var scale: Int64 = 100_000_000
                    var any = false
                    while i < b.count, b[i] >= 48, b[i] <= 57 {
                        nanos += Int64(b[i] - 48) * scale
                        scale /= 10
                        i += 1
                        any = true
                    }
                    guard any else { return nil }
                }
            }
            if i < b.count {
                let c = b[i]
                if c == UInt8(ascii: "Z") || c == UInt8(ascii: "z") {
                    i += 1
                } else if c == UInt8(ascii: "+") || c == UInt8(ascii: "-") {
                    i += 1
                    guard let oh = digits(2), oh <= 23 else { return nil }
                    _ = expect(UInt8(ascii: ":"))
                    guard let om = digits(2), om <= 59 else { return nil }
                    offset = (oh * 60 + om) * 60 * (c == UInt8(ascii: "-") ? -1 : 1)
                } else {
                    return nil
                }
            }
            guard i == b.count else { return nil }
        }
        // Days from civil (Howard Hinnant's algorithm).
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = (month + 9) % 12
        let doy = (153 * mp + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        let days = era * 146_097 + doe - 719_468
        seconds = Int64(days) * 86_400 + Int64(hour * 3600 + minute * 60 + second) - Int64(offset)
        self.nanos = nanos
    }
}
