import Logging
import NIOCore
import NIOHPACK
import NIOHTTP2

/// Forwards one inbound HTTP/2 stream to a stream on the application's h2c connection and relays
/// the response — headers, data and trailers (gRPC's status lives there) — back.
///
/// Frames move one for one with backpressure: each side is read only while the other is
/// writable. Frames that arrive while the application stream is being opened are held (one
/// read's worth, bounded by HTTP/2 flow control).
final class InboundHTTP2ForwardHandler: ChannelInboundHandler, InboundHTTP2AppOwner {
    typealias InboundIn = HTTP2Frame.FramePayload
    typealias OutboundOut = HTTP2Frame.FramePayload

    private enum State {
        case connecting(held: [HTTP2Frame.FramePayload])
        case forwarding(InboundAppHTTP2StreamHandler)
        case done
    }

    private let environment: InboundStreamEnvironment
    private let appPort: Int
    private let logger: Logger
    private var recorder: InboundRequestRecorder
    private var context: ChannelHandlerContext?
    private var state: State = .connecting(held: [])
    private var requestEnded = false
    private var responseStarted = false
    private var responseEnded = false
    private var streamReadWaiting = false
    private var appReadWaiting = false
    private var connectStarted = false

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

    // MARK: - Caller side

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let payload = unwrapInboundIn(data)
        guard Self.isRelayed(payload) else { return }
        if Self.endsStream(payload) { requestEnded = true }
        switch state {
        case .connecting(var held):
            held.append(payload)
            state = .connecting(held: held)
            if !connectStarted {
                connectStarted = true
                connect(context: context)
            }
        case .forwarding(let app):
            app.send(payload)
        case .done:
            break
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        guard case .forwarding(let app) = state else { return }
        app.flush()
        readStreamIfPossible(context: context, app: app)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable, appReadWaiting, case .forwarding(let app) = state {
            appReadWaiting = false
            app.read()
        }
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        if case .forwarding(let app) = state {
            // Closing an open stream resets it; a finished one is already closed.
            app.close()
        }
        state = .done
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        logger.debug("inbound HTTP/2 stream failed", metadata: ["error": "\(error)"])
        context.close(promise: nil)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is InboundDrainEvent { return }
        context.fireUserInboundEventTriggered(event)
    }

    private func readStreamIfPossible(context: ChannelHandlerContext, app: InboundAppHTTP2StreamHandler) {
        guard !requestEnded else { return }
        if app.isWritable {
            context.read()
        } else {
            streamReadWaiting = true
        }
    }

    // MARK: - Opening the application stream

    private func connect(context: ChannelHandlerContext) {
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        let eventLoop = context.eventLoop
        environment.http2Connections.openStream(port: appPort, on: eventLoop) { stream in
            stream.eventLoop.makeCompletedFuture {
                try stream.syncOptions?.setOption(ChannelOptions.autoRead, value: false)
                let handler = InboundAppHTTP2StreamHandler(owner: loopBound.value)
                try stream.pipeline.syncOperations.addHandler(handler)
            }
        }.whenComplete { result in
            let handler = loopBound.value
            switch result {
            case .success(let stream):
                handler.opened(stream)
            case .failure(let error):
                handler.openFailed(error)
            }
        }
    }

    private func opened(_ stream: any Channel) {
        guard case .connecting(let held) = state, let context,
            let app = try? stream.pipeline.syncOperations.handler(type: InboundAppHTTP2StreamHandler.self)
        else {
            stream.close(promise: nil)
            return
        }
        state = .forwarding(app)
        for payload in held { app.send(payload) }
        app.flush()
        app.read()
        readStreamIfPossible(context: context, app: app)
    }

    private func openFailed(_ error: any Error) {
        guard case .connecting = state, let context else { return }
        state = .done
        let host = environment.configuration.appHost
        logger.debug("opening an HTTP/2 stream to the application failed", metadata: ["error": "\(error)"])
        respondWithError(
            context: context,
            ProxyError(.connectFailed, "connecting to the application at \(host):\(appPort) failed: \(error)")
        )
    }

    // MARK: - Application side

    func appReceived(_ payload: HTTP2Frame.FramePayload) {
        guard let context, case .forwarding = state, Self.isRelayed(payload) else { return }
        // Interim (1xx) responses are relayed as they are; the final status is the one recorded.
        if case .headers(let headers) = payload, !responseStarted,
            let status = headers.headers.first(name: ":status").flatMap(Int.init), status >= 200
        {
            responseStarted = true
            recorder.responded(status: status)
        }
        if Self.endsStream(payload) { responseEnded = true }
        context.write(wrapOutboundOut(payload), promise: nil)
    }

    func appReadComplete() {
        guard let context else { return }
        context.flush()
        guard case .forwarding(let app) = state, !responseEnded else { return }
        if context.channel.isWritable {
            app.read()
        } else {
            appReadWaiting = true
        }
    }

    func appWritabilityChanged(isWritable: Bool) {
        guard isWritable, streamReadWaiting, let context, case .forwarding(let app) = state else { return }
        streamReadWaiting = false
        readStreamIfPossible(context: context, app: app)
    }

    func appClosed(_ error: (any Error)?) {
        guard case .forwarding = state, let context else { return }
        state = .done
        if responseEnded { return }
        if responseStarted {
            context.close(promise: nil)
        } else {
            let reason = error.map { "\($0)" } ?? "the application reset the stream"
            respondWithError(context: context, ProxyError(.upstreamProtocol, "the application failed before responding: \(reason)"))
        }
    }

    // MARK: - Helpers

    private func respondWithError(context: ChannelHandlerContext, _ error: ProxyError) {
        recorder.responded(status: error.httpStatus)
        let headers: HPACKHeaders = [
            ":status": String(error.httpStatus), ProxyError.headerName: error.code.name, "content-length": "0",
        ]
        let requestEnded = requestEnded
        context.writeAndFlush(wrapOutboundOut(.headers(.init(headers: headers, endStream: true))))
            .assumeIsolated().whenComplete { _ in
                // The caller may still be sending a body nobody will read.
                if !requestEnded { context.close(promise: nil) }
            }
    }

    /// Only HEADERS and DATA carry the exchange; stream channels handle the rest themselves.
    static func isRelayed(_ payload: HTTP2Frame.FramePayload) -> Bool {
        switch payload {
        case .headers, .data: true
        default: false
        }
    }

    static func endsStream(_ payload: HTTP2Frame.FramePayload) -> Bool {
        switch payload {
        case .headers(let headers): headers.endStream
        case .data(let data): data.endStream
        default: false
        }
    }
}

@available(*, unavailable)
extension InboundHTTP2ForwardHandler: Sendable {}
