public import NIOCore
public import NIOHTTP2
import Synchronization

/// Tracks the liveness of one HTTP/2 connection: how many streams are open, since when it has
/// been idle, and whether the peer sent GOAWAY. Fed by NIOHTTP2 (as the stream delegate) or an
/// ``HTTP2StreamDispatcher``, and by ``HTTP2ConnectionLivenessHandler``; read from any thread.
public final class HTTP2ConnectionActivity: NIOHTTP2StreamDelegate, Sendable {
    private struct State {
        var openStreams = 0
        var idleSince: NIODeadline? = .now()
        var goingAway = false
    }

    private let state = Mutex(State())

    public init() {}

    public func streamCreated(_ id: HTTP2StreamID, channel: any Channel) {
        streamOpened(id)
    }

    public func streamClosed(_ id: HTTP2StreamID, channel: any Channel) {
        streamClosed(id)
    }

    /// Streams currently open.
    public var openStreams: Int { state.withLock { $0.openStreams } }

    /// True once the peer sent GOAWAY: no new streams may be opened on this connection.
    public var isGoingAway: Bool { state.withLock { $0.goingAway } }

    func markGoingAway() { state.withLock { $0.goingAway = true } }

    /// When the connection has had no open stream since; nil while streams are open.
    public var idleSince: NIODeadline? { state.withLock { $0.idleSince } }
}

/// Fed by an ``HTTP2StreamDispatcher`` (a frame-mode connection).
extension HTTP2ConnectionActivity: HTTP2StreamObserver {
    func streamOpened(_ id: HTTP2StreamID) {
        state.withLock {
            $0.openStreams += 1
            $0.idleSince = nil
        }
    }

    func streamClosed(_ id: HTTP2StreamID) {
        state.withLock {
            $0.openStreams = max(0, $0.openStreams - 1)
            if $0.openStreams == 0 { $0.idleSince = .now() }
        }
    }
}

/// Sits after `NIOHTTP2Handler` on a connection channel: records a GOAWAY from the peer in the
/// connection's ``HTTP2ConnectionActivity`` and closes the connection once it has had no open
/// stream for `idleTimeout` (the pool's idle eviction; slow or silent clients on a server).
public final class HTTP2ConnectionLivenessHandler: ChannelInboundHandler {
    public typealias InboundIn = HTTP2Frame
    public typealias InboundOut = HTTP2Frame

    private let activity: HTTP2ConnectionActivity
    private let idleTimeout: TimeAmount
    private var check: RepeatedTask?

    public init(activity: HTTP2ConnectionActivity, idleTimeout: TimeAmount) {
        self.activity = activity
        self.idleTimeout = idleTimeout
    }

    public func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { start(context: context) }
    }

    public func channelActive(context: ChannelHandlerContext) {
        start(context: context)
        context.fireChannelActive()
    }

    public func channelInactive(context: ChannelHandlerContext) {
        stop()
        context.fireChannelInactive()
    }

    public func handlerRemoved(context: ChannelHandlerContext) {
        stop()
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .goAway = unwrapInboundIn(data).payload {
            activity.markGoingAway()
        }
        context.fireChannelRead(data)
    }

    /// A connection error (stream errors stop at ``HTTP2StreamDispatcher``): NIOHTTP2 has sent
    /// GOAWAY and reads nothing more, so the connection is closed, which ends its streams and
    /// takes it out of the pool. Left open, every stream opened on it waited for its timeout.
    public func errorCaught(context: ChannelHandlerContext, error: any Error) {
        activity.markGoingAway()
        context.close(promise: nil)
    }

    private func start(context: ChannelHandlerContext) {
        guard check == nil else { return }
        let activity = self.activity
        let idleTimeout = self.idleTimeout
        let channel = context.channel
        // Checking a few times per timeout keeps the overshoot small without a timer per stream.
        let interval = max(TimeAmount.milliseconds(50), TimeAmount.nanoseconds(idleTimeout.nanoseconds / 4))
        check = context.eventLoop.scheduleRepeatedTask(initialDelay: interval, delay: interval) { task in
            if let since = activity.idleSince, NIODeadline.now() - since >= idleTimeout {
                task.cancel()
                channel.close(promise: nil)
            }
        }
    }

    private func stop() {
        check?.cancel()
        check = nil
    }
}

@available(*, unavailable)
extension HTTP2ConnectionLivenessHandler: Sendable {}
