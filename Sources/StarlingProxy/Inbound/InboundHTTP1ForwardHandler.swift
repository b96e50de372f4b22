import Logging
import NIOCore
import NIOHPACK
import NIOHTTP1
import NIOHTTP2

/// Forwards one HTTP/2 stream's request to the application over a pooled HTTP/1.1 connection,
/// and relays the response back.
///
/// The handler converts between the stream's frames and HTTP/1 parts itself (no codec in the
/// stream's pipeline: one handler less on every frame and every stream). The response's last
/// frame carries END_STREAM: a body part followed by the end goes out as one DATA frame, a head
/// followed by the end (no body) as one HEADERS frame.
///
/// Bodies stream both ways with backpressure: the stream is read only while the application
/// connection is writable, and the application only while the stream is writable.
final class InboundHTTP1ForwardHandler: ChannelInboundHandler, InboundHTTP1AppOwner {
    typealias InboundIn = HTTP2Frame.FramePayload
    typealias OutboundOut = HTTP2Frame.FramePayload

    private let environment: InboundStreamEnvironment
    private let appPort: Int
    private var logger: Logger
    private var recorder: InboundRequestRecorder
    private var machine = InboundHTTP1ForwardStateMachine()
    private var context: ChannelHandlerContext?
    private var app: (channel: any Channel, handler: InboundAppHTTP1Handler)?
    private var responseKeepAlive = true
    /// A read is owed to the stream once the application connection drains.
    private var streamReadWaiting = false
    /// A read is owed to the application once the stream drains.
    private var appReadWaiting = false
    /// Whether the request head has arrived (a later HEADERS frame carries trailers).
    private var requestHeadSeen = false
    /// The response frame not written yet: it is held until the next part shows whether it is
    /// the last (then it carries END_STREAM) or the application's read ends.
    private var heldResponse: HTTP2Frame.FramePayload?

    init(environment: InboundStreamEnvironment, appPort: Int, authority: String, logger: Logger) {
        self.environment = environment
        self.appPort = appPort
        self.logger = logger
        self.recorder = InboundRequestRecorder(authority: authority, client: environment.client)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    // MARK: - Stream side

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .headers(let headers) where !requestHeadSeen:
            requestHeadSeen = true
            let head: HTTPRequestHead
            do {
                head = try HTTPHeadConversion.http1RequestHead(from: headers.headers)
            } catch {
                respondWithError(context: context, ProxyError(.badRequest, "\(error)"))
                return
            }
            received(.head(head), context: context)
            if headers.endStream { received(.end(nil), context: context) }
        case .headers(let trailers):
            received(.end(HTTPHeadConversion.http1Trailers(from: trailers.headers)), context: context)
        case .data(let data):
            if case .byteBuffer(let body) = data.data, body.readableBytes > 0 {
                received(.body(body), context: context)
            }
            if data.endStream { received(.end(nil), context: context) }
        default:
            // Resets close the stream (channelInactive); other frames mean nothing to HTTP/1.
            break
        }
    }

    private func received(_ part: HTTPServerRequestPart, context: ChannelHandlerContext) {
        switch machine.requestReceived(part) {
        case .connect:
            connect(context: context)
        case .hold, .drop:
            break
        case .forward(let part):
            app?.handler.send(clientPart(part))
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        guard let app else { return }
        app.handler.flush()
        readStreamIfPossible(context: context)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable, appReadWaiting {
            appReadWaiting = false
            app?.handler.read()
        }
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        // Only an exchange still under way makes the app connection unusable. The stream also
        // closes while its last response frame is flushed (`finish`), before the connection went
        // back to the pool: closing it then cost one TCP connection to the app per request.
        if machine.streamClosed(), let app {
            // The stream ended before its exchange finished: the app connection may hold half
            // of it, so it is closed — never left leased and open (that leaked connections).
            app.handler.endLease()
            app.channel.close(promise: nil)
            self.app = nil
        }
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        logger.debug("inbound HTTP/1 stream failed", metadata: ["error": "\(error)"])
        context.close(promise: nil)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is InboundDrainEvent { return }
        context.fireUserInboundEventTriggered(event)
    }

    private func readStreamIfPossible(context: ChannelHandlerContext) {
        guard machine.wantsRequestBody else { return }
        if app?.handler.isWritable ?? false {
            context.read()
        } else {
            streamReadWaiting = true
        }
    }

    // MARK: - Connecting

    private func connect(context: ChannelHandlerContext) {
        let pool = environment.http1Pool
        if let channel = pool.idleConnection(port: appPort, on: context.eventLoop) {
            connected(channel)
            return
        }
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        pool.connect(port: appPort, on: context.eventLoop).whenComplete { result in
            let handler = loopBound.value
            switch result {
            case .success(let channel):
                handler.connected(channel)
            case .failure(let error):
                handler.connectFailed(error)
            }
        }
    }

    private func connected(_ channel: any Channel) {
        guard let context else {
            channel.close(promise: nil)
            return
        }
        switch machine.connected() {
        case .discard:
            channel.close(promise: nil)
        case .send(let held, let readMore):
            let handler: InboundAppHTTP1Handler
            do {
                handler = try channel.pipeline.syncOperations.handler(type: InboundAppHTTP1Handler.self)
            } catch {
                channel.close(promise: nil)
                _ = machine.appFailed()
                respondWithError(context: context, ProxyError(.connectFailed, "the application connection is unusable"))
                return
            }
            handler.lease(to: self)
            app = (channel, handler)
            for part in held { handler.send(clientPart(part)) }
            handler.flush()
            handler.read()
            if readMore { readStreamIfPossible(context: context) }
        }
    }

    private func connectFailed(_ error: any Error) {
        guard machine.connectFailed(), let context else { return }
        let host = environment.configuration.appHost
        logger.debug("connecting to the application failed", metadata: ["error": "\(error)"])
        respondWithError(
            context: context,
            ProxyError(.connectFailed, "connecting to the application at \(host):\(appPort) failed: \(error)")
        )
    }

    // MARK: - Application side

    func appReceived(_ part: HTTPClientResponsePart) {
        guard let context else { return }
        if case .head(let head) = part {
            responseKeepAlive = head.isKeepAlive
        }
        switch machine.responseReceived(part, keepAlive: responseKeepAlive) {
        case .drop:
            break
        case .forward(let part):
            write(part, context: context)
        case .finish(let part, let disposal, let resetStream):
            write(part, context: context)
            finishExchange(disposal)
            context.flush()
            if resetStream {
                // The caller is still sending a body nobody will read.
                context.close(promise: nil)
            }
        }
    }

    func appReadComplete() {
        guard let context else { return }
        writeHeldResponse(context: context)
        context.flush()
        guard machine.wantsResponse else { return }
        if context.channel.isWritable {
            app?.handler.read()
        } else {
            appReadWaiting = true
        }
    }

    func appWritabilityChanged(isWritable: Bool) {
        guard isWritable, streamReadWaiting, let context else { return }
        streamReadWaiting = false
        readStreamIfPossible(context: context)
    }

    func appFailed(_ error: (any Error)?) {
        guard let context else { return }
        let app = self.app
        self.app = nil
        app?.channel.close(promise: nil)
        switch machine.appFailed() {
        case .none:
            break
        case .respondWithError:
            let reason = error.map { "\($0)" } ?? "it closed the connection"
            logger.debug("the application failed before responding", metadata: ["error": "\(reason)"])
            respondWithError(
                context: context,
                ProxyError(.upstreamProtocol, "the application failed before responding: \(reason)")
            )
        case .resetStream:
            context.close(promise: nil)
        }
    }

    // MARK: - Helpers

    /// Writes the response frame held so far and holds `part`'s frame; an end completes the held
    /// frame (END_STREAM) instead of sending an empty DATA frame after it.
    private func write(_ part: HTTPClientResponsePart, context: ChannelHandlerContext) {
        switch part {
        case .head(let head):
            recorder.responded(status: Int(head.status.code))
            writeHeldResponse(context: context)
            heldResponse = .headers(.init(headers: HTTPHeadConversion.http2ResponseHeaders(from: head)))
        case .body(let body):
            writeHeldResponse(context: context)
            heldResponse = .data(.init(data: .byteBuffer(body)))
        case .end(let trailers?) where !trailers.isEmpty:
            writeHeldResponse(context: context)
            context.write(
                wrapOutboundOut(.headers(.init(headers: HTTPHeadConversion.http2Trailers(from: trailers), endStream: true))),
                promise: nil)
        case .end:
            switch heldResponse {
            case .headers(var headers):
                headers.endStream = true
                heldResponse = .headers(headers)
            case .data(var data):
                data.endStream = true
                heldResponse = .data(data)
            default:
                heldResponse = .data(.init(data: .byteBuffer(ByteBuffer()), endStream: true))
            }
            writeHeldResponse(context: context)
        }
    }

    private func writeHeldResponse(context: ChannelHandlerContext) {
        guard let held = heldResponse else { return }
        heldResponse = nil
        context.write(wrapOutboundOut(held), promise: nil)
    }

    private func finishExchange(_ disposal: InboundHTTP1ForwardStateMachine.Disposal) {
        guard let app else { return }
        self.app = nil
        app.handler.endLease()
        switch disposal {
        case .reuse:
            environment.http1Pool.release(app.channel, port: appPort)
        case .close:
            app.channel.close(promise: nil)
        }
    }

    private func respondWithError(context: ChannelHandlerContext, _ error: ProxyError) {
        var headers = HPACKHeaders()
        headers.add(name: ":status", value: String(error.httpStatus))
        headers.add(name: ProxyError.headerName, value: error.code.name)
        headers.add(name: "content-length", value: "0")
        recorder.responded(status: error.httpStatus)
        heldResponse = nil
        // Whatever the caller still sends has nowhere to go: end the stream after the answer.
        context.writeAndFlush(wrapOutboundOut(.headers(.init(headers: headers, endStream: true))))
            .assumeIsolated().whenComplete { _ in context.close(promise: nil) }
    }
}

@available(*, unavailable)
extension InboundHTTP1ForwardHandler: Sendable {}

/// The same request part, typed for an HTTP/1 client pipeline.
private func clientPart(_ part: HTTPServerRequestPart) -> HTTPClientRequestPart {
    switch part {
    case .head(let head): .head(head)
    case .body(let body): .body(.byteBuffer(body))
    case .end(let trailers): .end(trailers)
    }
}
