import Foundation
import NIOHTTP1

/// The Event API's hostile answers, served one per request, in this order, cycling, by the
/// `hostile_events` fault mode: what a proxy, a captive portal, a load balancer or a broken
/// cloud may send. None of them is a delivery (CONTRACT §2) and none records the events.
/// The order mixes the kinds, so a client that backs off still meets several early on.
public enum HostileEventAnswer: String, CaseIterable, Sendable {
    case tooManyRequestsRetryAfterNaN = "429_retry_after_nan"
    case okHTMLPage = "200_html_page"
    case unavailableRetryAfterInf = "503_retry_after_inf"
    case okNotInngest = "200_ok_true"
    case tooManyRequestsRetryAfterMinusInf = "429_retry_after_-inf"
    case okEmptyIds = "200_ids_empty"
    case unavailableRetryAfterMinusOne = "503_retry_after_-1"
    case okTruncated = "200_truncated"
    case tooManyRequestsRetryAfterHuge = "429_retry_after_1e308"
    case redirectToLogin = "302_login"
    case unavailableRetryAfterText = "503_retry_after_abc"
    case badGatewayEmpty = "502_empty"
    case tooManyRequestsRetryAfterEmpty = "429_retry_after_empty"
    case connectionReset = "reset"
    case unavailableRetryAfterHex = "503_retry_after_0x10"
    case tooManyRequestsRetryAfterDots = "429_retry_after_5.5.5"
    case unavailableRetryAfterPastDate = "503_retry_after_past_date"
    case tooManyRequestsRetryAfterInf = "429_retry_after_inf"
    case unavailableRetryAfterNaN = "503_retry_after_nan"
    case tooManyRequestsRetryAfterMinusOne = "429_retry_after_-1"
    case unavailableRetryAfterMinusInf = "503_retry_after_-inf"
    case tooManyRequestsRetryAfterText = "429_retry_after_abc"
    case unavailableRetryAfterHuge = "503_retry_after_1e308"
    case tooManyRequestsRetryAfterHex = "429_retry_after_0x10"
    case unavailableRetryAfterEmpty = "503_retry_after_empty"
    case tooManyRequestsRetryAfterPastDate = "429_retry_after_past_date"
    case unavailableRetryAfterDots = "503_retry_after_5.5.5"

    /// A past HTTP-date (RFC 9110's example): a valid Retry-After meaning "now".
    public static let pastDate = "Sun, 06 Nov 1994 08:49:37 GMT"

    /// The `Retry-After` value sent, if any.
    public var retryAfter: String? {
        let parts = rawValue.components(separatedBy: "_retry_after_")
        guard parts.count == 2 else { return nil }
        switch parts[1] {
        case "empty": return ""
        case "past_date": return Self.pastDate
        default: return parts[1]
        }
    }

    /// The HTTP status sent (nil for the connection reset).
    public var status: Int? {
        self == .connectionReset ? nil : Int(rawValue.prefix(3))
    }

    static let htmlPage = Array(
        """
        <!DOCTYPE html>
        <html><head><title>Wi-Fi da clínica</title></head>
        <body><h1>Bem-vindo</h1><p>Aceite os termos de uso para navegar.</p>
        <form method="post" action="/login"><button>Aceitar</button></form></body></html>
        """.utf8)

    /// The answer to serve.
    var action: StubAction {
        if self == .connectionReset { return .reset }
        if let value = retryAfter {
            let status: HTTPResponseStatus = rawValue.hasPrefix("429") ? .tooManyRequests : .serviceUnavailable
            var r = StubResponse.json(status, ["error": .string(status.reasonPhrase.lowercased()), "status": .number(Double(status.code))])
            r.headers.append(("Retry-After", value))
            return .respond(r)
        }
        switch self {
        case .okHTMLPage:
            return .respond(StubResponse(status: .ok, contentType: "text/html; charset=utf-8", body: Self.htmlPage))
        case .okNotInngest:
            return .respond(StubResponse(status: .ok, body: Array(#"{"ok":true}"#.utf8)))
        case .okEmptyIds:
            return .respond(StubResponse(status: .ok, body: Array(#"{"ids":[],"status":200}"#.utf8)))
        case .okTruncated:
            // Content-Length announces the whole answer; half of it is written, then the
            // connection is closed.
            var r = StubResponse(status: .ok, body: Array(#"{"ids":["01","02","03","04","05","06","07","08"],"status":200}"#.utf8))
            r.truncateBodyAt = r.body.count / 2
            return .respond(r)
        case .redirectToLogin:
            var r = StubResponse(status: .found, contentType: "text/html; charset=utf-8", body: Self.htmlPage)
            r.headers.append(("Location", "/login?next=%2Fe%2F"))
            return .respond(r)
        case .badGatewayEmpty:
            return .respond(StubResponse(status: .badGateway, contentType: "text/plain", body: []))
        default:
            return .respond(StubResponse(status: .internalServerError))
        }
    }
}

/// One request the Event API saw: when (monotonic clock), and what it answered (an HTTP
/// status like `"200"`, `"reset"`, or a hostile answer's name).
public struct EventRequestRecord: Sendable, Equatable {
    /// `DispatchTime.now().uptimeNanoseconds` when the request was answered (or reset).
    public var atNs: UInt64
    public var answer: String
}

extension StubState {
    /// Kept per stub (most recent first out when over the bound).
    static let maxEventRequestRecords = 100_000

    mutating func logEventRequest(_ answer: String) {
        if eventRequestLog.count >= StubState.maxEventRequestRecords { eventRequestLog.removeFirst(eventRequestLog.count / 2) }
        eventRequestLog.append(EventRequestRecord(atNs: DispatchTime.now().uptimeNanoseconds, answer: answer))
    }

    /// The next hostile answer, in turn.
    mutating func nextHostileAnswer() -> HostileEventAnswer {
        let all = HostileEventAnswer.allCases
        defer { hostileIndex = (hostileIndex + 1) % all.count }
        return all[hostileIndex % all.count]
    }
}

extension CloudStub {
    /// Every request the Event API saw (any answer, faults included), oldest first.
    public func eventRequests() -> [EventRequestRecord] {
        state.withLock { $0.eventRequestLog }
    }
}
