import Foundation
import NIOHTTP1

/// Hostile Directus answers (CONTRACT §3, "a bad answer never empties the day"), chosen with
/// the `directus_answer` fault (for every collection, or those in `directus_collections`):
///
/// - `empty`: 200 `{"data": []}` (a wrong permission filter, an emptied database);
/// - `html`: 200 `text/html`, a login page (a captive portal, a proxy);
/// - `data_object`: 200 `{"data": {"id": 1}}` (an object where the array belongs);
/// - `wrong_types`: 200 `{"data": [...]}`, the rows the query would return with every `id`
///   a number (one row `{"id": 1}` when the query matches none).
///
/// Scripted answers (`queueDirectusAnswers(_:)`, `POST /_stub/directus/answers`) are served
/// one per `/items/...` request, in order, before any fault; then normal service resumes.
public enum DirectusHostileAnswer: String, Codable, Sendable, CaseIterable {
    case empty, html
    case dataObject = "data_object"
    case wrongTypes = "wrong_types"
}

/// One scripted Directus answer: any status, headers and body bytes (the stub adds
/// `content-length`; a `content-type` given here replaces its JSON one).
public struct DirectusScriptedAnswer: Sendable, Equatable {
    public var status: Int
    public var headers: [(String, String)]
    public var body: [UInt8]

    public init(status: Int, headers: [(String, String)] = [], body: [UInt8]) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    public static func == (a: Self, b: Self) -> Bool {
        a.status == b.status && a.body == b.body && a.headers.elementsEqual(b.headers) { $0 == $1 }
    }

    var response: StubResponse {
        var r = StubResponse(status: HTTPResponseStatus(statusCode: status), body: body)
        r.contentType = headers.last { $0.0.lowercased() == "content-type" }?.1 ?? ""
        r.headers = headers.filter { $0.0.lowercased() != "content-type" }
        return r
    }

    /// `{"status": 200, "headers": {"name": "value"} or [["name", "value"]], "body": "text"}`
    /// (or `"body_base64"`).
    static func from(json: JSONValue, index i: Int) throws(CloudStubError) -> DirectusScriptedAnswer {
        guard let o = json.objectValue else { throw .badRequest("answer \(i) must be an object") }
        guard let s = o["status"]?.numberValue, let status = JSONValue.exactInteger(s), (100...999).contains(status) else {
            throw .badRequest("answer \(i): \"status\" must be an integer 100...999")
        }
        var headers: [(String, String)] = []
        switch o["headers"] {
        case nil, .null?: break
        case .object(let h)?:
            for k in h.keys.sorted() {
                guard let v = h[k]?.stringValue else { throw .badRequest("answer \(i): header \(k) must be a string") }
                headers.append((k, v))
            }
        case .array(let a)?:
            for pair in a {
                guard let p = pair.arrayValue, p.count == 2, let k = p[0].stringValue, let v = p[1].stringValue else {
                    throw .badRequest("answer \(i): \"headers\" must be an object or an array of [name, value]")
                }
                headers.append((k, v))
            }
        default: throw .badRequest("answer \(i): \"headers\" must be an object or an array of [name, value]")
        }
        var body: [UInt8] = []
        if let b = o["body_base64"], !b.isNull {
            guard let t = b.stringValue, let d = Data(base64Encoded: t) else {
                throw .badRequest("answer \(i): \"body_base64\" must be base64 text")
            }
            body = Array(d)
        } else if let b = o["body"], !b.isNull {
            guard let t = b.stringValue else { throw .badRequest("answer \(i): \"body\" must be a string") }
            body = Array(t.utf8)
        }
        return DirectusScriptedAnswer(status: Int(status), headers: headers, body: body)
    }
}

extension CloudStub {
    /// Queues scripted answers for the next `/items/...` requests (after any already queued).
    public func queueDirectusAnswers(_ answers: [DirectusScriptedAnswer]) {
        state.withLock { $0.directusScript += answers }
    }

    /// Scripted answers not served yet.
    public func directusAnswersQueued() -> Int {
        state.withLock { $0.directusScript.count }
    }

    static let directusLoginPage = Array(
        """
        <!DOCTYPE html>
        <html><head><title>Sign in</title></head>
        <body><form method="post" action="/login"><input name="user"><input type="password" name="password">
        <button>Sign in</button></form></body></html>

        """.utf8)

    /// The hostile answer forced by `directus_answer` for this request, if any.
    static func hostileDirectusAnswer(
        _ req: StubRequest, faults: CloudStubFaults,
        snapshot: DirectusSnapshot
    ) -> StubResponse? {
        guard let answer = faults.directusAnswer, req.path.count >= 2, req.path[0] == "items" else { return nil }
        if let only = faults.directusCollections, !only.contains(req.path[1]) { return nil }
        switch answer {
        case .empty:
            return .json(.ok, ["data": .array([])])
        case .html:
            return StubResponse(status: .ok, contentType: "text/html; charset=utf-8", body: directusLoginPage)
        case .dataObject:
            return .json(.ok, ["data": ["id": 1]])
        case .wrongTypes:
            let normal = directusResponse(req, state: snapshot)
            guard normal.status == .ok, let v = try? JSONValue.parse(normal.body), let rows = v["data"]?.arrayValue else {
                return normal
            }
            var out: [JSONValue] = []
            for (i, row) in rows.enumerated() {
                var o = row.objectValue ?? [:]
                o["id"] = .number(Double(i + 1))
                out.append(.object(o))
            }
            if out.isEmpty { out = [["id": 1]] }
            return .json(.ok, ["data": .array(out)])
        }
    }

    /// `POST /_stub/directus/answers` (queue), `GET` (how many are queued), `DELETE` (drop them).
    func handleDirectusScriptControl(_ req: StubRequest) -> StubResponse {
        switch req.method {
        case .GET:
            return .json(.ok, ["queued": .number(Double(directusAnswersQueued()))])
        case .DELETE:
            state.withLock { $0.directusScript = [] }
            return .json(.ok, ["queued": 0])
        case .POST:
            let json: JSONValue
            do {
                json = try JSONValue.parse(req.body)
            } catch {
                return .json(.badRequest, ["error": .string("invalid JSON: \(error)"), "status": 400])
            }
            let items: [JSONValue]
            switch json {
            case .array(let a): items = a
            case .object: items = [json]
            default: return .json(.badRequest, ["error": "the body must be an array of answers (or one answer)", "status": 400])
            }
            var answers: [DirectusScriptedAnswer] = []
            for (i, item) in items.enumerated() {
                do {
                    answers.append(try DirectusScriptedAnswer.from(json: item, index: i))
                } catch {
                    return .json(.badRequest, ["error": .string(error.description), "status": 400])
                }
            }
            queueDirectusAnswers(answers)
            return .json(.ok, ["queued": .number(Double(directusAnswersQueued()))])
        default:
            return .json(.methodNotAllowed, ["error": "method not allowed", "status": 405])
        }
    }
}

extension StubState {
    /// The next scripted answer for a Directus items request, if any.
    mutating func takeScriptedDirectusAnswer(path: [String]) -> StubResponse? {
        guard path.first == "items", !directusScript.isEmpty else { return nil }
        return directusScript.removeFirst().response
    }
}
