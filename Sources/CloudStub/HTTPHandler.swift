import NIOCore
import NIOHTTP1
import NIOPosix

/// One connection's HTTP/1.1 handler: accumulates a request, asks the stub what to do, answers
/// (possibly late, for the `slow` fault) or resets the connection (the `reset` fault).
/// Keep-alive and pipelining come from `configureHTTPServerPipeline`.
final class StubHTTPHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    /// Requests with a larger body get a 413 and the connection is closed.
    static let hardBodyLimit = 64 * 1024 * 1024

    private let stub: CloudStub
    private var head: HTTPRequestHead?
    private var body = ByteBuffer()
    /// Set while the rest of a request is to be ignored (answered early, or reset).
    private var ignoring = false
    private var closed = false
    private var pendingAnswer: Scheduled<Void>?

    init(stub: CloudStub) {
        self.stub = stub
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let h):
            head = h
            body.clear()
            ignoring = false
            if stub.resetsAtHead(path: h.uri) {
                reset(context: context)
                return
            }
            if let cl = h.headers.first(name: "content-length").flatMap(Int.init), cl > Self.hardBodyLimit {
                answerTooLargeAndClose(context: context, head: h)
                return
            }
            if h.version.major == 1, h.version.minor >= 1,
                h.headers["expect"].contains(where: { $0.lowercased() == "100-continue" })
            {
                let cont = HTTPResponseHead(version: h.version, status: .continue)
                context.writeAndFlush(wrapOutboundOut(.head(cont)), promise: nil)
            }
        case .body(var part):
            guard !ignoring, let h = head else { return }
            if body.readableBytes + part.readableBytes > Self.hardBodyLimit {
                answerTooLargeAndClose(context: context, head: h)
                return
            }
            body.writeBuffer(&part)
        case .end:
            guard !ignoring, let h = head else { return }
            head = nil
            let bytes = Array(body.readableBytesView)
            body.clear()
            if body.capacity > 1 << 20 { body = ByteBuffer() }
            let request = StubRequest(method: h.method, uri: h.uri, headers: h.headers, body: bytes)
            switch stub.handle(request) {
            case .reset:
                reset(context: context)
            case .respond(let response):
                if response.delayMs > 0 {
                    pendingAnswer = context.eventLoop.assumeIsolated().scheduleTask(
                        in: .milliseconds(Int64(response.delayMs))
                    ) { [self] in
                        pendingAnswer = nil
                        guard !closed else { return }
                        send(response, for: h, context: context)
                    }
                } else {
                    send(response, for: h, context: context)
                }
            }
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        closed = true
        pendingAnswer?.cancel()
        pendingAnswer = nil
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        closed = true
        pendingAnswer?.cancel()
        pendingAnswer = nil
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        // Connection errors (a client gone, a reset) just end the connection.
        context.close(promise: nil)
    }

    private func send(_ response: StubResponse, for request: HTTPRequestHead, context: ChannelHandlerContext) {
        let keepAlive = request.isKeepAlive
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: response.contentType)
        headers.add(name: "content-length", value: String(response.body.count))
        headers.add(name: "server", value: "medic-cloud-stub")
        for (name, value) in response.headers { headers.add(name: name, value: value) }
        if !keepAlive {
            headers.add(name: "connection", value: "close")
        } else if request.version.major == 1, request.version.minor == 0 {
            headers.add(name: "connection", value: "keep-alive")
        }
        let head = HTTPResponseHead(version: request.version, status: response.status, headers: headers)
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        if let cut = response.truncateBodyAt {
            // A body cut short of its Content-Length: part of it, then the connection closes.
            ignoring = true
            var buffer = context.channel.allocator.buffer(capacity: cut)
            buffer.writeBytes(response.body.prefix(max(0, cut)))
            let channel = context.channel
            context.writeAndFlush(wrapOutboundOut(.body(.byteBuffer(buffer)))).whenComplete { _ in
                channel.close(promise: nil)
            }
            return
        }
        if request.method != .HEAD, !response.body.isEmpty {
            var buffer = context.channel.allocator.buffer(capacity: response.body.count)
            buffer.writeBytes(response.body)
            context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
        }
        if keepAlive {
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        } else {
            let channel = context.channel
            context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in
                channel.close(promise: nil)
            }
        }
    }

    private func answerTooLargeAndClose(context: ChannelHandlerContext, head: HTTPRequestHead) {
        ignoring = true
        self.head = nil
        body.clear()
        var close = head
        close.headers.replaceOrAdd(name: "connection", value: "close")
        send(CloudStub.eventError(.payloadTooLarge, "request too large"), for: close, context: context)
    }

    /// Closes the TCP connection abruptly: SO_LINGER {on, 0} makes close() send an RST,
    /// and nothing is written first.
    private func reset(context: ChannelHandlerContext) {
        ignoring = true
        head = nil
        body.clear()
        if let provider = context.channel as? SocketOptionProvider {
            _ = provider.setSoLinger(linger(l_onoff: 1, l_linger: 0))
        }
        context.close(promise: nil)
    }
}
