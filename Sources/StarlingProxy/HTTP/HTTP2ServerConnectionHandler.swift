import Logging
import NIOCore
import NIOHTTP2

/// Manages one served HTTP/2 connection as a whole (the root stream, after the stream
/// dispatcher): the inbound's, the outbound's h2c front end's and the gateway's. Counts open
/// streams, sends GOAWAY after `idleTimeout` without any, and on drain (``DrainEvent``) sends
/// GOAWAY naming the last stream it accepted, then closes once those streams have finished.
/// A connection NIOHTTP2 failed (the dispatcher passes on only those errors) is closed.
final class HTTP2ServerConnectionHandler: ChannelInboundHandler, HTTP2StreamObserver {
    typealias InboundIn = HTTP2Frame
    typealias OutboundOut = HTTP2Frame

    private let idleTimeout: TimeAmount
    private let logger: Logger
    private var context: ChannelHandlerContext?
    private var openStreams = 0
    private var lastStreamID = HTTP2StreamID.rootStream
    private var draining = false
    /// Armed whenever no stream is open. One check per connection, re-armed, not a timer
    /// scheduled and cancelled each time the last stream closes (at low load: every request).
    private var idleCheck: DeadlineCheck?

    init(idleTimeout: TimeAmount, logger: Logger) {
        self.idleTimeout = idleTimeout
        self.logger = logger
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        idleCheck = DeadlineCheck(eventLoop: context.eventLoop) {
            let handler = loopBound.value
            handler.logger.debug("closing an idle HTTP/2 connection")
            handler.goAway()
        }
        armIdleCheck()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        idleCheck?.cancel()
        idleCheck = nil
        self.context = nil
    }

    // MARK: - Streams (from the connection's ``HTTP2StreamDispatcher``)

    func streamOpened(_ id: HTTP2StreamID) {
        openStreams += 1
        if id > lastStreamID { lastStreamID = id }
        idleCheck?.disarm()
    }

    func streamClosed(_ id: HTTP2StreamID) {
        openStreams -= 1
        guard openStreams == 0 else { return }
        if draining {
            closeAfterPendingWrites()
        } else {
            armIdleCheck()
        }
    }

    private func armIdleCheck() {
        guard openStreams == 0, !draining else { return }
        idleCheck?.arm(in: idleTimeout)
    }

    /// Sends GOAWAY (no error, naming the last accepted stream); closes now if nothing is open.
    private func goAway() {
        guard let context, !draining else { return }
        draining = true
        idleCheck?.disarm()
        logger.debug(
            "sending GOAWAY", metadata: ["open_streams": "\(openStreams)", "last_stream_id": "\(lastStreamID)"])
        let frame = HTTP2Frame(
            streamID: .rootStream, payload: .goAway(lastStreamID: lastStreamID, errorCode: .noError, opaqueData: nil))
        context.writeAndFlush(wrapOutboundOut(frame), promise: nil)
        if openStreams == 0 {
            closeAfterPendingWrites()
        }
    }

    /// Closes once what is already written has gone out. A stream counts as closed as soon as its
    /// last frame is written, which may be before that frame was flushed.
    private func closeAfterPendingWrites() {
        guard let context else { return }
        context.flush()
        let channel = context.channel
        context.eventLoop.execute {
            channel.flush()
            channel.close(promise: nil)
        }
    }

    // MARK: - Events

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        // Root-stream frames (SETTINGS, PING, GOAWAY) are NIOHTTP2's business.
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        switch event {
        case is DrainEvent:
            goAway()
        case ChannelEvent.inputClosed:
            // The caller is done sending; HTTP/2 has no use for a half-open connection.
            context.close(promise: nil)
        default:
            context.fireUserInboundEventTriggered(event)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        logger.debug("HTTP/2 connection failed", metadata: ["error": "\(error)"])
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        idleCheck?.cancel()
        idleCheck = nil
        context.fireChannelInactive()
    }
}

@available(*, unavailable)
extension HTTP2ServerConnectionHandler: Sendable {}
