import CloudStub
import Foundation
#if canImport(FoundationNetworking)
    import FoundationNetworking
#endif
#if canImport(Glibc)
    import Glibc
    private let sysSend = Glibc.send
#elseif canImport(Darwin)
    import Darwin
    private let sysSend = Darwin.send
#endif

/// An HTTP answer as the tests look at it.
struct HTTPAnswer {
    var status: Int
    var headers: [String: String]  // lowercased names
    var body: Data

    var text: String { String(decoding: body, as: UTF8.self) }

    func json() throws -> JSONValue { try JSONValue.parse(Array(body)) }
}

struct TestFailure: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}

/// A running stub plus a URLSession client for it.
struct StubClient {
    let stub: CloudStub
    let port: Int
    let session: URLSession

    var base: String { "http://127.0.0.1:\(port)" }

    func request(
        _ method: String, _ path: String, body: Data? = nil, headers: [String: String] = [:],
        timeout: TimeInterval = 10
    ) async throws -> HTTPAnswer {
        guard let url = URL(string: base + path) else { throw TestFailure("bad URL \(path)") }
        var req = URLRequest(url: url, cachePolicy: .reloadIgnoringLocalCacheData, timeoutInterval: timeout)
        req.httpMethod = method
        req.httpBody = body
        if body != nil { req.setValue("application/json", forHTTPHeaderField: "Content-Type") }
        for (k, v) in headers { req.setValue(v, forHTTPHeaderField: k) }
        let (data, response) = try await session.data(for: req)
        guard let http = response as? HTTPURLResponse else { throw TestFailure("not an HTTP response") }
        var h: [String: String] = [:]
        for (k, v) in http.allHeaderFields {
            if let k = k as? String, let v = v as? String { h[k.lowercased()] = v }
        }
        return HTTPAnswer(status: http.statusCode, headers: h, body: data)
    }

    func get(_ path: String, headers: [String: String] = [:]) async throws -> HTTPAnswer {
        try await request("GET", path, headers: headers)
    }

    func post(_ path: String, _ body: String, headers: [String: String] = [:]) async throws -> HTTPAnswer {
        try await request("POST", path, body: Data(body.utf8), headers: headers)
    }

    func post(_ path: String, json: JSONValue) async throws -> HTTPAnswer {
        try await request("POST", path, body: Data(json.serialized().utf8))
    }

    /// Directus GET with the seed's token.
    func items(_ pathAndQuery: String, token: String = "test-token") async throws -> HTTPAnswer {
        try await get(pathAndQuery, headers: ["Authorization": "Bearer \(token)"])
    }

    /// `data[].id` of a Directus answer, in order.
    func ids(_ pathAndQuery: String) async throws -> [String] {
        let answer = try await items(pathAndQuery)
        guard answer.status == 200 else { throw TestFailure("HTTP \(answer.status): \(answer.text)") }
        guard let rows = try answer.json()["data"]?.arrayValue else { throw TestFailure("no data: \(answer.text)") }
        return rows.compactMap { $0["id"]?.stringValue }
    }

    func setFaults(_ json: String) async throws {
        let answer = try await post("/_stub/faults", json)
        guard answer.status == 200 else { throw TestFailure("faults: HTTP \(answer.status) \(answer.text)") }
    }
}

/// Starts a stub on a free port, runs `body`, stops the stub (also when `body` throws).
func withStub(seed: CloudStubSeed = CloudStubSeed(), _ body: (StubClient) async throws -> Void) async throws {
    let stub = CloudStub(seed: seed)
    let port = try await stub.start()
    let config = URLSessionConfiguration.ephemeral
    config.timeoutIntervalForRequest = 10
    let session = URLSession(configuration: config)
    let client = StubClient(stub: stub, port: port, session: session)
    do {
        try await body(client)
        session.invalidateAndCancel()
        try await stub.stop()
    } catch {
        session.invalidateAndCancel()
        try? await stub.stop()
        throw error
    }
}

/// URL query encoding for a filter's JSON (also encodes `&`, `=`, `+`, `#`).
func q(_ s: String) -> String {
    var allowed = CharacterSet.alphanumerics
    allowed.insert(charactersIn: "-._~")
    return s.addingPercentEncoding(withAllowedCharacters: allowed) ?? s
}

func event(_ id: String, _ name: String = "clinic/checkin.recorded", data: JSONValue = ["site_id": "demo"]) -> JSONValue {
    ["id": .string(id), "name": .string(name), "ts": 1_764_421_331_000, "data": data]
}

// MARK: - A raw TCP client, for what URLSession hides (connection reuse, 100-continue, resets)

final class RawConnection {
    enum ReadError: Error, Equatable {
        case reset  // ECONNRESET
        case closed  // orderly EOF
        case timeout
        case other(Int32)
    }

    let fd: Int32
    private var buffer: [UInt8] = []

    init(port: Int) throws {
        #if canImport(Glibc)
            fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #else
            fd = socket(AF_INET, SOCK_STREAM, 0)
        #endif
        guard fd >= 0 else { throw TestFailure("socket() failed") }
        var tv = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_port = in_port_t(UInt16(port)).bigEndian
        addr.sin_addr = in_addr(s_addr: inet_addr("127.0.0.1"))
        let rc = withUnsafePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard rc == 0 else {
            close(fd)
            throw TestFailure("connect() failed: errno \(errno)")
        }
    }

    deinit { close(fd) }

    func send(_ text: String) throws {
        try send(Array(text.utf8))
    }

    func send(_ bytes: [UInt8]) throws {
        var sent = 0
        while sent < bytes.count {
            #if canImport(Glibc)
                let flags = Int32(MSG_NOSIGNAL)
            #else
                let flags: Int32 = 0
            #endif
            let n = bytes[sent...].withUnsafeBytes { sysSend(fd, $0.baseAddress, $0.count, flags) }
            guard n > 0 else { throw TestFailure("send() failed: errno \(errno)") }
            sent += n
        }
    }

    private func fill() throws(ReadError) {
        var chunk = [UInt8](repeating: 0, count: 65536)
        let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if n > 0 {
            buffer += chunk[0..<n]
            return
        }
        if n == 0 { throw .closed }
        let e = errno
        if e == ECONNRESET { throw .reset }
        if e == EAGAIN || e == EWOULDBLOCK { throw .timeout }
        throw .other(e)
    }

    /// Reads one response (status, lowercased headers, body by Content-Length).
    func readResponse() throws(ReadError) -> HTTPAnswer {
        let sep: [UInt8] = [13, 10, 13, 10]
        var headEnd: Int? = nil
        while headEnd == nil {
            if buffer.count >= 4 {
                for i in 0...(buffer.count - 4) where Array(buffer[i..<i + 4]) == sep {
                    headEnd = i
                    break
                }
            }
            if headEnd == nil { try fill() }
        }
        let headText = String(decoding: buffer[0..<headEnd!], as: UTF8.self)
        buffer.removeFirst(headEnd! + 4)
        var lines = headText.components(separatedBy: "\r\n")
        let statusLine = lines.removeFirst().split(separator: " ")
        let status = statusLine.count > 1 ? Int(statusLine[1]) ?? 0 : 0
        var headers: [String: String] = [:]
        for line in lines {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        let length = headers["content-length"].flatMap { Int($0) } ?? 0
        while buffer.count < length { try fill() }
        let body = Data(buffer[0..<length])
        buffer.removeFirst(length)
        return HTTPAnswer(status: status, headers: headers, body: body)
    }

    /// Waits for the peer to end the connection and says how (expects no data first).
    func readEnd() -> (ReadError, bytesBefore: Int) {
        while true {
            do {
                try fill()
            } catch {
                return (error, buffer.count)
            }
        }
    }
}
