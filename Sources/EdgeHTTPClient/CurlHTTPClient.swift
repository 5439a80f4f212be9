import CCurl
import Foundation

public struct HTTPRequest: Sendable {
    public var method: String
    public var url: String
    public var headers: [(String, String)]
    public var body: [UInt8]?
    public var connectTimeout: Double
    public var timeout: Double
    /// The local address to connect from (tests use 127.0.0.x to be several clients).
    public var localAddress: String?
    /// A PEM file of CA certificates to trust instead of the system's (tests trust a local
    /// CA this way). Verification of the peer and its name stays on.
    public var caFile: String?
    /// The most bytes of response body taken; a longer body fails the request (nil: no cap).
    public var maxBodyBytes: Int?
    public init(
        method: String = "GET", url: String, headers: [(String, String)] = [], body: [UInt8]? = nil,
        connectTimeout: Double = 5, timeout: Double = 15, localAddress: String? = nil, caFile: String? = nil,
        maxBodyBytes: Int? = nil
    ) {
        self.method = method; self.url = url; self.headers = headers; self.body = body
        self.connectTimeout = connectTimeout; self.timeout = timeout; self.localAddress = localAddress
        self.caFile = caFile; self.maxBodyBytes = maxBodyBytes
    }
}

public struct HTTPResponse: Sendable {
    public var status: Int
    /// Lower-cased names.
    public var headers: [String: String]
    public var body: [UInt8]
    public var text: String { String(decoding: body, as: UTF8.self) }
    public init(status: Int, headers: [String: String] = [:], body: [UInt8] = []) {
        self.status = status; self.headers = headers; self.body = body
    }
}

public struct HTTPTransportError: Error, CustomStringConvertible, Sendable {
    public let code: Int
    public let message: String
    /// The libcurl option that could not be set (the request was never sent); nil otherwise.
    public let option: String?
    public init(code: Int, message: String, option: String? = nil) { self.code = code; self.message = message; self.option = option }
    public var isTimeout: Bool { code == Int(CURLE_OPERATION_TIMEDOUT.rawValue) }
    /// The answer's body was longer than `HTTPRequest.maxBodyBytes`: the transfer was aborted.
    public var isBodyTooLarge: Bool { code == Int(CURLE_FILESIZE_EXCEEDED.rawValue) }
    /// The answer ended before its announced length (a body cut short).
    public var isPartialBody: Bool { code == Int(CURLE_PARTIAL_FILE.rawValue) }
    /// A libcurl option could not be set: the request was never sent.
    public var isSetoptFailure: Bool { option != nil }
    public var description: String { "http transport error \(code): \(message)" }
}

/// How the appliance talks HTTP: libcurl in production, anything speaking the same
/// protocol in unit tests.
public protocol HTTPTransport: Sendable {
    func send(_ request: HTTPRequest) async throws -> HTTPResponse
}

/// The one Swift owner of a libcurl easy handle. Requests run one at a time on a private
/// thread; the handle is kept, so connections (and TLS sessions) are reused.
public final class CurlHTTPClient: HTTPTransport, @unchecked Sendable {
    private let handle: UnsafeMutableRawPointer
    private let queue: DispatchQueue
    private static let globalInit: Void = {
        curl_global_init(Int(CURL_GLOBAL_DEFAULT)); return ()
    }()

    public init(label: String = "medic-edge.curl") {
        _ = CurlHTTPClient.globalInit
        handle = curl_easy_init()
        queue = DispatchQueue(label: label)
    }
    deinit { curl_easy_cleanup(handle) }

    final class Collector {
        var body: [UInt8] = []
        var headers: [String: String] = [:]
        /// The most body bytes taken (Int.max: no cap); past it the write callback aborts.
        var maxBody = Int.max
        var overflowed = false
        var headerBytes = 0
        var headersOverflowed = false
        /// The most bytes of response headers taken (libcurl bounds one line, not their number).
        static let maxHeaderBytes = 256 * 1024
    }

    /// A time-out in whole milliseconds for libcurl: at least 1, and a NaN, infinite or huge
    /// value clamped (a day) instead of trapping in the integer conversion.
    static func millis(_ seconds: Double) -> Int {
        guard seconds.isFinite else { return seconds.isNaN ? 1 : 86_400_000 }
        return Int(min(max(seconds * 1000, 1), 86_400_000))
    }

    public func send(_ request: HTTPRequest) async throws -> HTTPResponse {
        try await withCheckedThrowingContinuation { (cont: CheckedContinuation<HTTPResponse, Error>) in
            queue.async { cont.resume(with: Result { try self.perform(request) }) }
        }
    }

    /// Sets one option; a failure names the option. Every option matters: a TLS option that
    /// silently failed would leave verification off, so nothing is sent when any fails.
    private static func check(_ code: CURLcode, _ option: String) throws {
        guard code == CURLE_OK else {
            throw HTTPTransportError(
                code: Int(code.rawValue),
                message: "curl_easy_setopt(\(option)) failed: \(String(cString: curl_easy_strerror(code)))", option: option)
        }
    }

    /// Blocking; only on `queue`.
    private func perform(_ r: HTTPRequest) throws -> HTTPResponse {
        let h = handle
        curl_easy_reset(h)
        let collector = Collector()
        if let cap = r.maxBodyBytes { collector.maxBody = max(0, cap) }
        let cp = Unmanaged.passUnretained(collector).toOpaque()
        var list: UnsafeMutablePointer<curl_slist>? = nil
        for (k, v) in r.headers { list = curl_slist_append(list, "\(k): \(v)") }
        if r.body != nil { list = curl_slist_append(list, "Expect:") }
        defer { curl_slist_free_all(list) }
        var errbuf = [CChar](repeating: 0, count: Int(CURL_ERROR_SIZE) + 1)
        let check = CurlHTTPClient.check
        let code: CURLcode = try r.url.withCString { url in
            try r.method.withCString { method in
                try errbuf.withUnsafeMutableBufferPointer { eb in
                    try (r.body ?? []).withUnsafeBytes { body in
                        try check(medic_curl_setopt_ptr(h, CURLOPT_ERRORBUFFER, eb.baseAddress), "CURLOPT_ERRORBUFFER")
                        try check(medic_curl_setopt_str(h, CURLOPT_URL, url), "CURLOPT_URL")
                        try check(medic_curl_setopt_str(h, CURLOPT_PROTOCOLS_STR, "http,https"), "CURLOPT_PROTOCOLS_STR")
                        try check(medic_curl_setopt_long(h, CURLOPT_NOSIGNAL, 1), "CURLOPT_NOSIGNAL")
                        try check(medic_curl_setopt_long(h, CURLOPT_TCP_NODELAY, 1), "CURLOPT_TCP_NODELAY")
                        try check(medic_curl_setopt_long(h, CURLOPT_SSLVERSION, Int(CURL_SSLVERSION_TLSv1_2)), "CURLOPT_SSLVERSION")
                        try check(medic_curl_setopt_long(h, CURLOPT_SSL_VERIFYPEER, 1), "CURLOPT_SSL_VERIFYPEER")
                        try check(medic_curl_setopt_long(h, CURLOPT_SSL_VERIFYHOST, 2), "CURLOPT_SSL_VERIFYHOST")
                        try check(
                            medic_curl_setopt_long(h, CURLOPT_CONNECTTIMEOUT_MS, CurlHTTPClient.millis(r.connectTimeout)), "CURLOPT_CONNECTTIMEOUT_MS"
                        )
                        try check(medic_curl_setopt_long(h, CURLOPT_TIMEOUT_MS, CurlHTTPClient.millis(r.timeout)), "CURLOPT_TIMEOUT_MS")
                        // Redirects are never followed (CONTRACT §2: a 3xx is not a delivery).
                        try check(medic_curl_setopt_long(h, CURLOPT_FOLLOWLOCATION, 0), "CURLOPT_FOLLOWLOCATION")
                        if let a = r.localAddress { try check(medic_curl_setopt_str(h, CURLOPT_INTERFACE, "host!" + a), "CURLOPT_INTERFACE") }
                        if let ca = r.caFile { try check(medic_curl_setopt_str(h, CURLOPT_CAINFO, ca), "CURLOPT_CAINFO") }
                        try check(medic_curl_setopt_ptr(h, CURLOPT_HTTPHEADER, list), "CURLOPT_HTTPHEADER")
                        if r.method == "GET" {
                            try check(medic_curl_setopt_long(h, CURLOPT_HTTPGET, 1), "CURLOPT_HTTPGET")
                        } else {
                            try check(medic_curl_setopt_str(h, CURLOPT_CUSTOMREQUEST, method), "CURLOPT_CUSTOMREQUEST")
                        }
                        if r.body != nil {
                            try check(medic_curl_setopt_off(h, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(body.count)), "CURLOPT_POSTFIELDSIZE_LARGE")
                            try check(
                                medic_curl_setopt_ptr(h, CURLOPT_POSTFIELDS, body.baseAddress ?? UnsafeRawPointer(("" as StaticString).utf8Start)),
                                "CURLOPT_POSTFIELDS")
                        }
                        if let cap = r.maxBodyBytes {
                            // Refused before the body when the answer announces its length; the
                            // write callback enforces it for the rest (chunked, or a lie).
                            try check(medic_curl_setopt_off(h, CURLOPT_MAXFILESIZE_LARGE, curl_off_t(max(0, cap))), "CURLOPT_MAXFILESIZE_LARGE")
                        }
                        try check(
                            medic_curl_setopt_write(h, CURLOPT_WRITEFUNCTION) { ptr, size, n, ud in
                                let c = Unmanaged<Collector>.fromOpaque(ud!).takeUnretainedValue()
                                let count = size * n
                                if c.body.count + count > c.maxBody {
                                    c.overflowed = true
                                    return 0  // anything but `count` aborts the transfer (CURLE_WRITE_ERROR)
                                }
                                if let ptr { c.body.append(contentsOf: UnsafeRawBufferPointer(start: ptr, count: count)) }
                                return count
                            }, "CURLOPT_WRITEFUNCTION")
                        try check(medic_curl_setopt_ptr(h, CURLOPT_WRITEDATA, cp), "CURLOPT_WRITEDATA")
                        try check(
                            medic_curl_setopt_write(h, CURLOPT_HEADERFUNCTION) { ptr, size, n, ud in
                                let c = Unmanaged<Collector>.fromOpaque(ud!).takeUnretainedValue()
                                let count = size * n
                                c.headerBytes += count
                                if c.headerBytes > Collector.maxHeaderBytes {
                                    c.headersOverflowed = true
                                    return 0
                                }
                                if let ptr {
                                    let line = String(decoding: UnsafeRawBufferPointer(start: ptr, count: count), as: UTF8.self)
                                    if line.hasPrefix("HTTP/") { c.headers = [:] }  // a new response (e.g. after 100)
                                    if let colon = line.firstIndex(of: ":") {
                                        let k = line[..<colon].lowercased()
                                        let v = line[line.index(after: colon)...].trimmingCharacters(in: .whitespacesAndNewlines)
                                        c.headers[k] = v
                                    }
                                }
                                return count
                            }, "CURLOPT_HEADERFUNCTION")
                        try check(medic_curl_setopt_ptr(h, CURLOPT_HEADERDATA, cp), "CURLOPT_HEADERDATA")
                        return curl_easy_perform(h)
                    }
                }
            }
        }
        if collector.headersOverflowed {
            throw HTTPTransportError(
                code: Int(CURLE_WRITE_ERROR.rawValue),
                message: "response headers over \(Collector.maxHeaderBytes) bytes; transfer aborted")
        }
        if collector.overflowed || code == CURLE_FILESIZE_EXCEEDED {
            throw HTTPTransportError(
                code: Int(CURLE_FILESIZE_EXCEEDED.rawValue),
                message: "response body over \(collector.maxBody) bytes (the most this request takes); transfer aborted")
        }
        guard code == CURLE_OK else {
            let msg = String(decoding: errbuf.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
            throw HTTPTransportError(code: Int(code.rawValue), message: msg.isEmpty ? String(cString: curl_easy_strerror(code)) : msg)
        }
        var status = 0
        let info = medic_curl_getinfo_long(h, CURLINFO_RESPONSE_CODE, &status)
        guard info == CURLE_OK else {
            throw HTTPTransportError(
                code: Int(info.rawValue), message: "curl_easy_getinfo(CURLINFO_RESPONSE_CODE) failed: \(String(cString: curl_easy_strerror(info)))")
        }
        return HTTPResponse(status: status, headers: collector.headers, body: collector.body)
    }
}
