import Logging
import NIOCore
import NIOHPACK
import NIOHTTP1
import NIOHTTP2

/// The HTTP/1 front end of the outbound listener (a forward proxy), as a channel handler: each
/// request is validated (``OutboundHTTP1Request``) and forwarded as an ``UpstreamExchange`` to
/// one upstream stream that lives on this connection's event loop — a stream on the pooled HTTP/2
/// mTLS connection to the chosen peer, or an HTTP/1.1 exchange on a pooled connection to a plain
/// endpoint (``PlainHTTP1Stream``). No task, no thread hop, no stream channel per request. The
/// exchange decides (routing, retries, the response timeout, reports); this handler is HTTP/1:
/// framing, keep-alive, pipelining and read pressure.
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
final class OutboundHTTP1ForwardHandler: ChannelDuplexHandler, HTTP2FrameStreamOwner, UpstreamExchangeOwner {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    typealias OutboundIn = HTTPServerResponsePart
    typealias OutboundOut = HTTPServerResponsePart

    /// What every connection's handler shares.
    struct Environment: Sendable {
        var forwarder: OutboundForwarder
        var connector: UpstreamConnector
        var maximumHeaderBytes: Int
        /// The listener's connections: once it drains, a connection closes after its current response.
        var registry: ConnectionRegistry
    }

    /// The request being served. A class: the state is read on every frame, and matching an enum
    /// case copies its payload (a struct's every field retained each time); its exchange is
    /// changed in place.
    private final class Request {
        let head: HTTPRequestHead
        let outbound: OutboundRequest
        var exchange: UpstreamExchange
        /// The upstream stream, while the exchange has one open.
        var stream: (any UpstreamStream)?
        /// The response says `connection: close`, or the connection must close after it.
        var closeAfter = false

        init(head: HTTPRequestHead, outbound: OutboundRequest) {
            self.head = head
            self.outbound = outbound
            exchange = UpstreamExchange(
                authority: outbound.routingAuthority, method: head.method, hasBody: outbound.hasBody, requestEnded: false)
        }
    }

    private enum State {
        case idle
        /// A request is being forwarded: its exchange routes it, sends it, and relays the answer.
        case forwarding(Request)
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
    /// Reads are held while `queued` or the exchange's held parts are full, and while the stream
    /// cannot take more body.
    private var readsPaused = false
    private var readPending = false

    init(environment: Environment, originalDestination: String?, logger: Logger) {
        self.environment = environment
        self.originalDestination = originalDestination
        self.logger = logger
    }

    // MARK: - The exchange's owner

    var connector: UpstreamConnector { environment.connector }
    var exchangeLogger: Logger { logger }

    /// The number of the request being served (the connection's first is 1).
    private(set) var exchangeGeneration = 0

    func withExchange<Result>(_ generation: Int, _ body: (inout UpstreamExchange) -> Result) -> Result? {
        guard case .forwarding(let request) = state, generation == exchangeGeneration else { return nil }
        return body(&request.exchange)
    }

    func makeStreamOwner() -> any HTTP2FrameStreamOwner { self }

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
        case .forwarding(let request): !request.exchange.requestEnded
        case .closed: false
        }
    }

    private func process(_ part: HTTPServerRequestPart, context: ChannelHandlerContext) {
        switch state {
        case .idle:
            received(part, context: context)
        case .forwarding(let request):
            guard !request.exchange.requestEnded else {
                enqueue(part)
                return
            }
            let payload: HTTP2Frame.FramePayload?
            let ends: Bool
            switch part {
            case .head:
                // The decoder never sends a head inside a body; a safety net: framing is lost.
                logger.debug("a request head arrived inside a request body")
                closeConnection(after: nil, context: context)
                return
            case .body(let buffer):
                payload = .data(.init(data: .byteBuffer(buffer)))
                ends = false
            case .end(let trailers):
                // A body-less request ended with its HEADERS frame already.
                payload = request.outbound.hasBody ? .requestEnd(trailers.map(HTTPHeadConversion.http2Trailers(from:))) : nil
                ends = true
            }
            switch request.exchange.requestReceived(payload, ends: ends) {
            case .hold:
                if request.exchange.heldCount >= Self.maximumQueuedParts { pauseReads() }
            case .write(let armTimeout):
                if let payload { request.stream?.write(payload) }
                if let armTimeout { responseTimeout?.arm(in: armTimeout) }
            case .drop:
                break
            }
        case .closed:
            break
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        guard case .forwarding(let request) = state, let stream = request.stream else { return }
        stream.flush()
        if !request.exchange.requestEnded && !stream.isWritable { pauseReads() }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if case .forwarding(let request) = state, context.channel.isWritable {
            request.stream?.isReceiving = true
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
        abandonExchange()
        state = .closed
        context.fireChannelInactive()
    }

    /// The connection is going away: the current exchange (if any) is abandoned, its stream reset.
    private func abandonExchange() {
        guard case .forwarding(let request) = state else { return }
        responseTimeout?.disarm()
        let streaming = request.exchange.clientClosed()
        if let stream = request.stream {
            request.stream = nil
            stream.detach()
            if streaming { stream.reset() }
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // The decoder refused the bytes: answer once (if no response is under way), then close.
        // While a request is forwarded, the failure is its own only while its body is read; once
        // it has ended, the bytes were a pipelined request's, and nothing is answered.
        let answers: Bool
        switch state {
        case .idle: answers = true
        case .forwarding(let request): answers = !request.exchange.requestEnded && !request.exchange.responseStarted
        case .closed: answers = false
        }
        if !answers {
            logger.debug("client connection failed", metadata: ["error": "\(error)"])
            closeConnection(after: nil, context: context)
        } else {
            let refusal = OutboundHTTP1Request.refusal(for: error)
            logger.debug("refused a malformed request", metadata: ["error": "\(error)"])
            let version = if case .forwarding(let request) = state { request.head.version } else { HTTPVersion.http1_1 }
            closeConnection(after: writeError(refusal, version: version, close: true, context: context), context: context)
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
        exchangeGeneration += 1
        state = .forwarding(Request(head: prepared.head, outbound: prepared.request))
        pickUpstream(on: context.eventLoop)
    }

    // MARK: - Routing (called for the exchange, on this event loop)

    func upstreamOpened(_ stream: any UpstreamStream, pick: Pick, held: [HTTP2Frame.FramePayload], armTimeout: TimeAmount?) {
        guard case .forwarding(let request) = state else { return }
        request.stream = stream
        let headers = environment.forwarder.meshHeaders(for: request.outbound, pick: pick)
        stream.write(.headers(.init(headers: headers, endStream: !request.outbound.hasBody)))
        for payload in held { stream.write(payload) }
        stream.flush()
        if let armTimeout { responseTimeout?.arm(in: armTimeout) }
        if stream.isWritable { resumeReads() }
    }

    func upstreamUnavailable(_ error: ProxyError, pick: Pick?) {
        guard let context else { return }
        respond(error, pick: pick, context: context)
    }

    // MARK: - Upstream side (called by the upstream stream, on this event loop)

    func streamReceived(_ payload: HTTP2Frame.FramePayload) {
        guard let context, case .forwarding(let request) = state, request.exchange.phase == .streaming else { return }
        switch payload {
        case .headers(let frame):
            guard request.exchange.responseStarted else {
                responseHeadReceived(frame, request: request, context: context)
                return
            }
            finish(trailers: HTTPHeadConversion.http1Trailers(from: frame.headers), context: context)
        case .data(let frame):
            guard request.exchange.responseStarted else {
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

    private func responseHeadReceived(_ frame: HTTP2Frame.FramePayload.Headers, request: Request, context: ChannelHandlerContext) {
        let head: HTTPResponseHead
        do {
            head = try HTTPHeadConversion.http1ResponseHead(
                from: frame.headers, requestMethod: request.head.method, version: request.head.version)
        } catch {
            streamFailed(ProxyError(.upstreamProtocol, "\(error)"))
            return
        }
        let status = Int(head.status.code)
        guard case .forward = request.exchange.responseHeadReceived(status: status) else { return }
        responseTimeout?.disarm()
        if head.headers["connection"].contains(where: { $0.lowercased() == "close" }) {
            request.closeAfter = true
        }
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        // A response that cannot have a body is complete with its head, whatever else the peer
        // sends on the stream (the detached stream drains until it closes).
        let bodyless = request.head.method == .HEAD || status == 204 || status == 304
        if frame.endStream {
            finish(trailers: nil, context: context)
        } else if bodyless {
            finish(trailers: nil, streamEnded: false, context: context)
        }
    }

    func streamReadComplete() {
        guard let context, case .forwarding(let request) = state, let stream = request.stream else { return }
        context.flush()
        // The response's credit flows while the client keeps up.
        stream.isReceiving = context.channel.isWritable
    }

    func streamWritable() {
        guard case .forwarding(let request) = state, !request.exchange.requestEnded else { return }
        resumeReads()
    }

    func streamClosed(reason: HTTP2ErrorCode?) {
        streamFailed(
            ProxyError(
                .upstreamProtocol,
                "the peer closed the stream before the response ended (\(reason.map { "\($0)" } ?? "no error"))"))
    }

    /// The stream closed or failed before the response ended.
    private func streamFailed(_ error: ProxyError) {
        guard let context, case .forwarding(let request) = state else { return }
        let action = request.exchange.streamFailed(error, now: .now)
        if case .ignore = action { return }
        responseTimeout?.disarm()
        if let stream = request.stream {
            request.stream = nil
            stream.detach()
            stream.reset()
        }
        switch action {
        case .retry(let failed):
            retryUpstream(after: error, pick: failed, on: context.eventLoop)
        case .respond(let error, let pick):
            respond(error, pick: pick, context: context)
        case .breakOff(let error, let pick):
            logger.warning(
                "response broke off",
                metadata: ["authority": "\(request.outbound.authority)", "endpoint": "\(pick.endpoint)", "error": "\(error)"])
            state = .closed
            context.flush()
            context.close(promise: nil)
        case .ignore:
            break
        }
    }

    private func timedOut(context: ChannelHandlerContext) {
        guard case .forwarding(let request) = state, let (error, pick) = request.exchange.timedOut(now: .now) else { return }
        if let stream = request.stream {
            request.stream = nil
            stream.detach()
            stream.reset()
        }
        respond(error, pick: pick, context: context)
    }

    /// The response ended: complete it, then serve the next request or close.
    /// - Parameter streamEnded: false when the response ended before its stream (a bodyless
    /// response whose END_STREAM is still to come): the stream is then left to drain, bounded.
    private func finish(trailers: HTTPHeaders?, streamEnded: Bool = true, context: ChannelHandlerContext) {
        guard case .forwarding(let request) = state,
            case .finish(let pick, let status, let latency, let resetStream) = request.exchange.responseEnded(now: .now),
            let stream = request.stream
        else { return }
        request.stream = nil
        stream.detach()
        if !streamEnded { stream.resetUnlessClosed(after: TimeAmount(pick.timeout)) }
        // An unread request body cannot be skipped safely: the connection closes after answering early.
        if resetStream { stream.reset() }
        environment.forwarder.record(request.outbound, pick: pick, status: status, latency: latency)
        if logger.logLevel <= .debug {
            logger.debug(
                "forwarded",
                metadata: [
                    "authority": "\(request.outbound.authority)", "endpoint": "\(pick.endpoint)",
                    "status": "\(status)", "latency": "\(latency)",
                ])
        }
        let keepAlive =
            request.exchange.requestEnded && !request.closeAfter && request.head.isKeepAlive
            && !environment.registry.isDraining
        if keepAlive {
            lastResponseWrite = context.writeAndFlush(wrapOutboundOut(.end(trailers)))
            nextRequest(after: nil, context: context)
        } else {
            nextRequest(after: context.writeAndFlush(wrapOutboundOut(.end(trailers))), context: context)
        }
    }

    // MARK: - Answers of the proxy's own

    /// Answers `error` for the current request (its exchange is finished), then goes on like `finish`.
    private func respond(_ error: ProxyError, pick: Pick?, context: ChannelHandlerContext) {
        guard case .forwarding(let request) = state else { return }
        environment.forwarder.failed(request.outbound, error: error, pick: pick, logger: logger)
        let close = !request.exchange.requestEnded || environment.registry.isDraining || !request.head.isKeepAlive
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
        abandonExchange()
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
