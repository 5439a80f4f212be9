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
    public init(method: String = "GET", url: String, headers: [(String, String)] = [], body: [UInt8]? = nil,
                connectTimeout: Double = 5, timeout: Double = 15, localAddress: String? = nil, caFile: String? = nil,
                maxBodyBytes: Int? = nil) {
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
}

public struct HTTPTransportError: Error, CustomStringConvertible, Sendable {
    public let code: Int
    public let message: String
    public var isTimeout: Bool { code == Int(CURLE_OPERATION_TIMEDOUT.rawValue) }
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
    private static let globalInit: Void = { curl_global_init(Int(CURL_GLOBAL_DEFAULT)); return () }()

    public init(label: String = "medic-edge.curl") {
        _ = CurlHTTPClient.globalInit
        handle = curl_easy_init()
        queue = DispatchQueue(label: label)
    }
    deinit { curl_easy_cleanup(handle) }

    final class Collector {
        var body: [UInt8] = []
        var headers: [String: String] = [:]
    }

    public func send(_ request: HTTPRequest) async throws -> HTTPResponse {
        try await withCheckedThrowingContinuation { (cont: CheckedContinuation<HTTPResponse, Error>) in
            queue.async { cont.resume(with: Result { try self.perform(request) }) }
        }
    }

    /// Blocking; only on `queue`.
    private func perform(_ r: HTTPRequest) throws -> HTTPResponse {
        let h = handle
        curl_easy_reset(h)
        let collector = Collector()
        let cp = Unmanaged.passUnretained(collector).toOpaque()
        var list: UnsafeMutablePointer<curl_slist>? = nil
        for (k, v) in r.headers { list = curl_slist_append(list, "\(k): \(v)") }
        if r.body != nil { list = curl_slist_append(list, "Expect:") }
        defer { curl_slist_free_all(list) }
        var errbuf = [CChar](repeating: 0, count: Int(CURL_ERROR_SIZE) + 1)
        let code: CURLcode = r.url.withCString { url in
            r.method.withCString { method in
                errbuf.withUnsafeMutableBufferPointer { eb in
                    (r.body ?? []).withUnsafeBytes { body in
                        _ = medic_curl_setopt_str(h, CURLOPT_URL, url)
                        _ = medic_curl_setopt_long(h, CURLOPT_NOSIGNAL, 1)
                        _ = medic_curl_setopt_long(h, CURLOPT_TCP_NODELAY, 1)
                        _ = medic_curl_setopt_long(h, CURLOPT_SSLVERSION, Int(CURL_SSLVERSION_TLSv1_2))
                        _ = medic_curl_setopt_long(h, CURLOPT_SSL_VERIFYPEER, 1)
                        _ = medic_curl_setopt_long(h, CURLOPT_SSL_VERIFYHOST, 2)
                        _ = medic_curl_setopt_long(h, CURLOPT_CONNECTTIMEOUT_MS, max(1, Int(r.connectTimeout * 1000)))
                        _ = medic_curl_setopt_long(h, CURLOPT_TIMEOUT_MS, max(1, Int(r.timeout * 1000)))
                        _ = medic_curl_setopt_long(h, CURLOPT_FOLLOWLOCATION, 0)
                        _ = medic_curl_setopt_ptr(h, CURLOPT_ERRORBUFFER, eb.baseAddress)
                        if let a = r.localAddress { _ = medic_curl_setopt_str(h, CURLOPT_INTERFACE, "host!" + a) }
                        if let ca = r.caFile { _ = medic_curl_setopt_str(h, CURLOPT_CAINFO, ca) }
                        _ = medic_curl_setopt_ptr(h, CURLOPT_HTTPHEADER, list)
                        if r.method == "GET" {
                            _ = medic_curl_setopt_long(h, CURLOPT_HTTPGET, 1)
                        } else {
                            _ = medic_curl_setopt_str(h, CURLOPT_CUSTOMREQUEST, method)
                        }
                        if r.body != nil {
                            _ = medic_curl_setopt_off(h, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(body.count))
                            _ = medic_curl_setopt_ptr(h, CURLOPT_POSTFIELDS, body.baseAddress ?? UnsafeRawPointer(("" as StaticString).utf8Start))
                        }
                        _ = medic_curl_setopt_write(h, CURLOPT_WRITEFUNCTION) { ptr, size, n, ud in
                            let c = Unmanaged<Collector>.fromOpaque(ud!).takeUnretainedValue()
                            let count = size * n
                            if let ptr { c.body.append(contentsOf: UnsafeRawBufferPointer(start: ptr, count: count)) }
                            return count
                        }
                        _ = medic_curl_setopt_ptr(h, CURLOPT_WRITEDATA, cp)
                        _ = medic_curl_setopt_write(h, CURLOPT_HEADERFUNCTION) { ptr, size, n, ud in
                            let c = Unmanaged<Collector>.fromOpaque(ud!).takeUnretainedValue()
                            let count = size * n
                            if let ptr {
                                let line = String(decoding: UnsafeRawBufferPointer(start: ptr, count: count), as: UTF8.self)
                                if line.hasPrefix("HTTP/") { c.headers = [:] } // a new response (e.g. after 100)
                                if let colon = line.firstIndex(of: ":") {
                                    let k = line[..<colon].lowercased()
                                    let v = line[line.index(after: colon)...].trimmingCharacters(in: .whitespacesAndNewlines)
                                    c.headers[k] = v
                                }
                            }
                            return count
                        }
                        _ = medic_curl_setopt_ptr(h, CURLOPT_HEADERDATA, cp)
                        return curl_easy_perform(h)
                    }
                }
            }
        }
        guard code == CURLE_OK else {
            let msg = String(cString: errbuf)
            throw HTTPTransportError(code: Int(code.rawValue), message: msg.isEmpty ? String(cString: curl_easy_strerror(code)) : msg)
        }
        var status = 0
        _ = medic_curl_getinfo_long(h, CURLINFO_RESPONSE_CODE, &status)
        return HTTPResponse(status: status, headers: collector.headers, body: collector.body)
    }
}
