import Logging
import NIOCore
import NIOHPACK
import NIOHTTP1
import NIOHTTP2

/// The HTTP/1 front end of the outbound listener (a forward proxy), as a channel handler: each
/// request is validated (``OutboundHTTP1Request``), routed (``PeerStreamRoute``), and sent as one
/// upstream stream that lives on this connection's event loop — a stream on the pooled HTTP/2
/// mTLS connection to the chosen peer, or an HTTP/1.1 exchange on a pooled connection to a plain
/// endpoint (``PlainHTTP1Stream``). No task, no thread hop, no stream channel per request.
///
/// One request at a time: parts of a pipelined request wait in `queued` until the current
/// response is out, and reads stop once `maximumQueuedParts` wait, or once as many body parts
/// wait for the stream to open (not at every request's start or end: toggling read interest
/// costs two `epoll_ctl` calls a request). Request bodies are read only while the stream is
/// writable; the response's credit flows only while the client is.
///
/// Routing: the authority of an absolute-form target (`GET http://svc.ns:9898/ HTTP/1.1`, what
/// `http_proxy=` clients send), else `Host`; port 80 when none is given. A transparently captured
/// connection routes by its original destination instead.
final class OutboundHTTP1ForwardHandler: ChannelDuplexHandler, HTTP2FrameStreamOwner {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    /// What every connection's handler shares.
    struct Environment: Sendable {
        var forwarder: OutboundForwarder
        var maximumHeaderBytes: Int
        /// The listener's connections: once it drains, a connection closes after its current response.
        var registry: ConnectionRegistry
        /// Connections to plain endpoints (outside the mesh).
        var plainConnections: HTTP1AppConnectionPool
    }

    /// The request being served. A class, as is `Exchange`: the state is read on every frame,
    /// and matching an enum case copies its payload (a struct's every field retained each time).
    private final class Request {
        let head: HTTPRequestHead
        let outbound: OutboundRequest
        /// Parts read before the stream was open (body, end), in order.
        var held: [HTTPServerRequestPart] = []
        var requestDone: Bool
        /// Picks, connects and opens the stream; tries other endpoints after failures.
        var route: PeerStreamRoute?

        init(head: HTTPRequestHead, outbound: OutboundRequest, requestDone: Bool) {
            self.head = head
            self.outbound = outbound
            self.requestDone = requestDone
        }
    }

    /// The exchange with the peer once its stream is open.
    private final class Exchange {
        let stream: any UpstreamStream
        let pick: Pick
        let started: ContinuousClock.Instant
        var status: Int?
        /// The response says `connection: close`, or the connection must close after it.
        var closeAfter = false

        init(stream: any UpstreamStream, pick: Pick, started: ContinuousClock.Instant) {
            self.stream = stream
            self.pick = pick
            self.started = started
        }
    }

    private enum State {
        case idle
        /// Picking an endpoint, connecting or opening a stream; parts read meanwhile are held.
        case routing(Request)
        case exchanging(Request, Exchange)
        case closed
    }

    private let environment: Environment
    private let originalDestination: String?
    private var logger: Logger
    private var state = State.idle
    /// The client closed its side (it sends no more requests): close once the current one is
    /// answered, instead of keeping a half-closed connection open until its idle timeout.
    private var clientDone = false
    /// The last write of the latest response: a close waits for it (a close drops unwritten data).
    private var lastResponseWrite: EventLoopFuture<Void>?
    /// The current request's wait for its response head (one re-armed check per connection,
    /// not a timer per request).
    private var responseTimeout: DeadlineCheck?
    private var context: ChannelHandlerContext?
    /// Parts of the next request(s), decoded in the same read as the current one's end.
    private var queued: CircularBuffer<HTTPServerRequestPart> = []
    private static let maximumQueuedParts = 16
    /// Reads are held while `queued` or a routing request's `held` is full, and while the stream
    /// cannot take more body.
    private var readsPaused = false
    private var readPending = false

    init(environment: Environment, originalDestination: String?, logger: Logger) {
        self.environment = environment
        self.originalDestination = originalDestination
        self.logger = logger
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        responseTimeout = DeadlineCheck(eventLoop: context.eventLoop) {
            let (handler, context) = loopBound.value
            handler.timedOut(context: context)
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        responseTimeout?.cancel()
        responseTimeout = nil
    }

    // MARK: - Reads

    func read(context: ChannelHandlerContext) {
        if readsPaused {
            readPending = true
            return
        }
        context.read()
    }

    private func pauseReads() {
        readsPaused = true
    }

    private func resumeReads() {
        guard readsPaused, queued.count < Self.maximumQueuedParts else { return }
        readsPaused = false
        if readPending, let context {
            readPending = false
            context.read()
        }
    }

    // MARK: - Client side

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        // Parts wait behind those already queued, in order.
        if queued.isEmpty {
            process(part, context: context)
        } else {
            enqueue(part)
        }
    }

    private func enqueue(_ part: HTTPServerRequestPart) {
        queued.append(part)
        if queued.count >= Self.maximumQueuedParts { pauseReads() }
    }

    /// Whether the next client part belongs to the current request (or starts one).
    private var takesParts: Bool {
        switch state {
        case .idle: true
        case .routing(let request), .exchanging(let request, _): !request.requestDone
        case .closed: false
        }
    }

    private func process(_ part: HTTPServerRequestPart, context: ChannelHandlerContext) {
        switch state {
        case .idle:
            received(part, context: context)
        case .routing(let request):
            if request.requestDone {
                enqueue(part)
            } else {
                request.held.append(part)
                if case .end = part { request.requestDone = true }
                if request.held.count >= Self.maximumQueuedParts { pauseReads() }
            }
        case .exchanging(let request, let exchange):
            if request.requestDone {
                enqueue(part)
                return
            }
            switch part {
            case .head:
                // The decoder never sends a head inside a body; a safety net.
                streamFailed(ProxyError(.badRequest, "a request head arrived inside a request body"))
            case .body(let buffer):
                exchange.stream.write(.data(.init(data: .byteBuffer(buffer))))
            case .end(let trailers):
                request.requestDone = true
                // A body-less request ended with its HEADERS frame already.
                if request.outbound.hasBody {
                    exchange.stream.write(.requestEnd(trailers.map(HTTPHeadConversion.http2Trailers(from:))))
                }
                // The response head is awaited from the request's end (an upload may take longer).
                if exchange.status == nil { responseTimeout?.arm(in: TimeAmount(exchange.pick.timeout)) }
            }
        case .closed:
            break
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        switch state {
        case .exchanging(let request, let exchange):
            exchange.stream.flush()
            if !request.requestDone && !exchange.stream.isWritable { pauseReads() }
        default:
            break
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if case .exchanging(_, let exchange) = state, context.channel.isWritable {
            exchange.stream.isReceiving = true
        }
        context.fireChannelWritabilityChanged()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is DrainEvent {
            // The proxy is shutting down: a connection between requests closes now; one serving
            // a request closes after its response (`registry.isDraining`).
            if case .idle = state, queued.isEmpty { closeConnection(after: lastResponseWrite, context: context) }
            return
        }
        if let event = event as? ChannelEvent, event == .inputClosed {
            clientDone = true
            // Requests the decoder still holds come first; with none, nothing is left to answer.
            if case .idle = state, queued.isEmpty { closeConnection(after: lastResponseWrite, context: context) }
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        let previous = state
        state = .closed
        switch previous {
        case .exchanging(_, let exchange):
            responseTimeout?.disarm()
            exchange.stream.detach()
            exchange.stream.reset()
            exchange.pick.complete(.abandoned)
        case .routing(let request):
            request.route?.cancel()
        default:
            break
        }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // The decoder refused the bytes: answer once (if no response is under way), then close.
        switch state {
        case .idle, .routing:
            let refusal = OutboundHTTP1Request.refusal(for: error)
            logger.debug("refused a malformed request", metadata: ["error": "\(error)"])
            closeConnection(after: writeError(refusal, version: .http1_1, close: true, context: context), context: context)
        default:
            logger.debug("client connection failed", metadata: ["error": "\(error)"])
            closeConnection(after: nil, context: context)
        }
    }

    /// A part that starts a new request (state `.idle`).
    private func received(_ part: HTTPServerRequestPart, context: ChannelHandlerContext) {
        // A request without a body ends with its head; its `.end` arrives after.
        guard case .head(let head) = part else { return }
        context.triggerUserOutboundEvent(HTTP1ServerTimeoutEvent.requestHeadReceived, promise: nil)
        let prepared: OutboundHTTP1Request.Prepared
        do {
            prepared = try OutboundHTTP1Request.prepare(
                head, maximumHeaderBytes: environment.maximumHeaderBytes, originalDestination: originalDestination)
        } catch {
            // Framing is unknown or untrusted: never forward, never reuse the connection.
            closeConnection(after: writeError(error, version: head.version, close: true, context: context), context: context)
            return
        }
        if prepared.sendContinue {
            context.writeAndFlush(
                wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: .continue))), promise: nil)
        }
        // Body-less requests still send `.end`; it is held (and dropped) like a body's.
        let request = Request(head: prepared.head, outbound: prepared.request, requestDone: false)
        let route = PeerStreamRoute(
            picker: environment.forwarder.picker, pool: environment.forwarder.pool,
            plainConnections: environment.plainConnections, logger: logger,
            authority: prepared.request.routingAuthority, eventLoop: context.eventLoop)
        request.route = route
        state = .routing(request)
        route.start(owner: self) { outcome in self.routed(outcome, context: context) }
    }

    // MARK: - Routing

    private func routed(_ outcome: PeerStreamRoute.Outcome, context: ChannelHandlerContext) {
        switch outcome {
        case .failed(let error, let pick):
            respond(error, pick: pick, context: context)
        case .opened(let stream, let pick, let started):
            streamOpened(stream, pick: pick, started: started, context: context)
        }
    }

    private func streamOpened(_ stream: any UpstreamStream, pick: Pick, started: ContinuousClock.Instant, context: ChannelHandlerContext) {
        guard case .routing(let request) = state else {
            stream.detach()
            stream.reset()
            pick.complete(.abandoned)
            return
        }
        let headers = environment.forwarder.meshHeaders(for: request.outbound, pick: pick)
        let hasBody = request.outbound.hasBody
        stream.write(.headers(.init(headers: headers, endStream: !hasBody)))
        let held = request.held
        request.held = []
        if hasBody {
            for part in held {
                switch part {
                case .body(let buffer): stream.write(.data(.init(data: .byteBuffer(buffer))))
                case .end(let trailers): stream.write(.requestEnd(trailers.map(HTTPHeadConversion.http2Trailers(from:))))
                case .head: break
                }
            }
        }
        stream.flush()
        let exchange = Exchange(stream: stream, pick: pick, started: started)
        if request.requestDone { responseTimeout?.arm(in: TimeAmount(pick.timeout)) }
        state = .exchanging(request, exchange)
        if stream.isWritable { resumeReads() }
    }

    // MARK: - Upstream side (called by the upstream stream, on this event loop)

    func streamReceived(_ payload: HTTP2Frame.FramePayload) {
        guard let context, case .exchanging(let request, let exchange) = state else { return }
        switch payload {
        case .headers(let frame):
            if exchange.status == nil {
                guard let status = frame.headers.first(name: ":status").flatMap(Int.init) else {
                    streamFailed(ProxyError(.upstreamProtocol, "the peer's response has no valid :status"))
                    return
                }
                if (100..<200).contains(status) { return }
                responseTimeout?.disarm()
                let head: HTTPResponseHead
                do {
                    head = try HTTPHeadConversion.http1ResponseHead(
                        from: frame.headers, requestMethod: request.head.method, version: request.head.version)
                } catch {
                    streamFailed(ProxyError(.upstreamProtocol, "\(error)"))
                    return
                }
                exchange.status = status
                if head.headers["connection"].contains(where: { $0.lowercased() == "close" }) {
                    exchange.closeAfter = true
                }
                context.write(wrapOutboundOut(.head(head)), promise: nil)
                // A response that cannot have a body is complete with its head, whatever else
                // the peer sends on the stream (the detached stream drains until it closes).
                let bodyless = request.head.method == .HEAD || status == 204 || status == 304
                if frame.endStream {
                    finish(trailers: nil, context: context)
                } else if bodyless {
                    finish(trailers: nil, streamEnded: false, context: context)
                }
            } else {
                finish(trailers: HTTPHeadConversion.http1Trailers(from: frame.headers), context: context)
            }
        case .data(let frame):
            guard exchange.status != nil else {
                streamFailed(ProxyError(.upstreamProtocol, "the peer sent data before its response head"))
                return
            }
            if request.head.method != .HEAD, case .byteBuffer(let buffer) = frame.data, buffer.readableBytes > 0 {
                context.write(wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
            }
            if frame.endStream { finish(trailers: nil, context: context) }
        default:
            break
        }
    }

    func streamReadComplete() {
        guard let context, case .exchanging(_, let exchange) = state else { return }
        context.flush()
        // The response's credit flows while the client keeps up.
        exchange.stream.isReceiving = context.channel.isWritable
    }

    func streamWritable() {
        guard case .exchanging(let request, _) = state, !request.requestDone else { return }
        resumeReads()
    }

    func streamClosed(reason: HTTP2ErrorCode?) {
        streamFailed(
            ProxyError(
                .upstreamProtocol,
                "the peer closed the stream before the response ended (\(reason.map { "\($0)" } ?? "no error"))"))
    }

    /// The stream closed or failed before the response ended.
    func streamFailed(_ error: ProxyError) {
        guard let context, case .exchanging(let request, let exchange) = state else { return }
        responseTimeout?.disarm()
        exchange.stream.detach()
        exchange.stream.reset()
        // Nothing answered and nothing of the request is lost (no body, a method safe to repeat):
        // the peer went away mid-request — a gateway or proxy that died — so try another endpoint.
        if exchange.status == nil, !request.outbound.hasBody, PeerStreamRoute.repeatable(request.head.method),
            let route = request.route
        {
            // The request's end went out with its head: hold it again for the next attempt.
            request.held = request.requestDone ? [.end(nil)] : []
            state = .routing(request)
            // `retry` reports the failure to the balancer.
            if route.retry(
                after: error, pick: exchange.pick, started: exchange.started,
                { outcome in self.routed(outcome, context: context) })
            {
                return
            }
        } else {
            exchange.pick.complete(.failure(latency: ContinuousClock.now - exchange.started))
        }
        if exchange.status != nil {
            logger.warning(
                "response broke off",
                metadata: ["authority": "\(request.outbound.authority)", "endpoint": "\(exchange.pick.endpoint)", "error": "\(error)"])
            state = .closed
            context.flush()
            context.close(promise: nil)
            return
        }
        state = .routing(request)
        respond(error, pick: exchange.pick, context: context)
    }

    private func timedOut(context: ChannelHandlerContext) {
        guard case .exchanging(let request, let exchange) = state, exchange.status == nil else { return }
        let timeout = exchange.pick.timeout
        exchange.stream.detach()
        exchange.stream.reset()
        exchange.pick.complete(.failure(latency: ContinuousClock.now - exchange.started))
        state = .routing(request)
        respond(ProxyError(.timeout, "no response within \(timeout)"), pick: exchange.pick, context: context)
    }

    /// The response ended: complete it, then serve the next request or close.
    /// - Parameter streamEnded: false when the response ended before its stream (a bodyless
    /// response whose END_STREAM is still to come): the stream is then left to drain, bounded.
    private func finish(trailers: HTTPHeaders?, streamEnded: Bool = true, context: ChannelHandlerContext) {
        guard case .exchanging(let request, let exchange) = state, let status = exchange.status else { return }
        exchange.stream.detach()
        if !streamEnded { exchange.stream.resetUnlessClosed(after: TimeAmount(exchange.pick.timeout)) }
        let latency = ContinuousClock.now - exchange.started
        // A 5xx from the peer proxy itself (it names its error) counts against the endpoint.
        exchange.pick.complete(status >= 500 ? .failure(latency: latency) : .success(latency: latency))
        environment.forwarder.record(request.outbound, pick: exchange.pick, status: status, latency: latency)
        if logger.logLevel <= .debug {
            logger.debug(
                "forwarded",
                metadata: [
                    "authority": "\(request.outbound.authority)", "endpoint": "\(exchange.pick.endpoint)",
                    "status": "\(status)", "latency": "\(latency)",
                ])
        }
        // An unread request body cannot be skipped safely: close after answering early.
        let keepAlive =
            request.requestDone && !exchange.closeAfter && request.head.isKeepAlive && !environment.registry.isDraining
        if !request.requestDone { exchange.stream.reset() }
        if keepAlive {
            lastResponseWrite = context.writeAndFlush(wrapOutboundOut(.end(trailers)))
            nextRequest(after: nil, context: context)
        } else {
            nextRequest(after: context.writeAndFlush(wrapOutboundOut(.end(trailers))), context: context)
        }
    }

    // MARK: - Answers of the proxy's own

    /// Answers `error` for the current request (state `.routing`), then goes on like `finish`.
    private func respond(_ error: ProxyError, pick: Pick?, context: ChannelHandlerContext) {
        guard case .routing(let request) = state else { return }
        environment.forwarder.failed(request.outbound, error: error, pick: pick, logger: logger)
        let close = !request.requestDone || environment.registry.isDraining || !request.head.isKeepAlive
        let written = writeError(error, version: request.head.version, close: close, context: context)
        lastResponseWrite = written
        nextRequest(after: close ? written : nil, context: context)
    }

    /// Writes an error response; the future completes when its last part went out.
    private func writeError(
        _ error: ProxyError, version: HTTPVersion, close: Bool, context: ChannelHandlerContext
    ) -> EventLoopFuture<Void> {
        context.write(wrapOutboundOut(.head(ErrorResponse.http1Head(error, version: version, close: close))), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(ErrorResponse.body(error)))), promise: nil)
        return context.writeAndFlush(wrapOutboundOut(.end(nil)))
    }

    /// After a response: the next request, or — when `closing` is given — closing the connection
    /// once that last write went out.
    private func nextRequest(after closing: EventLoopFuture<Void>?, context: ChannelHandlerContext) {
        context.triggerUserOutboundEvent(HTTP1ServerTimeoutEvent.responseCompleted, promise: nil)
        if let closing {
            closeConnection(after: closing, context: context)
            return
        }
        state = .idle
        drainQueued(context: context)
        if case .idle = state {
            if clientDone, queued.isEmpty {
                closeConnection(after: lastResponseWrite, context: context)
                return
            }
            resumeReads()
        }
    }

    /// Hands what the last read already decoded to the current request, as far as it belongs to it.
    private func drainQueued(context: ChannelHandlerContext) {
        while takesParts, let part = queued.popFirst() {
            process(part, context: context)
        }
    }

    /// Closes the connection, after `written` completes when given (a close drops unwritten data).
    private func closeConnection(after written: EventLoopFuture<Void>?, context: ChannelHandlerContext) {
        state = .closed
        queued = []
        guard let written else {
            context.close(promise: nil)
            return
        }
        let channel = context.channel
        written.whenComplete { _ in channel.close(promise: nil) }
    }
}

@available(*, unavailable)
extension OutboundHTTP1ForwardHandler: Sendable {}
