public import NIOCore
public import NIOHTTP2

/// One multiplexed HTTP/2 connection to a peer proxy, shared by every request to that endpoint.
public struct PeerConnection: Sendable {
    /// A request stream on the connection.
    public typealias Stream = NIOAsyncChannel<HTTP2Frame.FramePayload, HTTP2Frame.FramePayload>

    public let channel: any Channel
    let multiplexer: NIOHTTP2Handler.AsyncStreamMultiplexer<Void>
    /// The same multiplexer for channel handlers, usable on the connection's event loop only.
    let handlerMultiplexer: NIOLoopBound<NIOHTTP2Handler.StreamMultiplexer>
    let activity: HTTP2ConnectionActivity

    /// False once the connection closed or the peer sent GOAWAY; the pool then replaces it.
    public var isUsable: Bool { channel.isActive && !activity.isGoingAway }

    /// Opens a new request stream.
    ///
    /// - Throws: `ProxyError.connectFailed` when the connection can take no new stream.
    public func openStream() async throws(ProxyError) -> Stream {
        do {
            return try await multiplexer.openStream { channel in
                channel.eventLoop.makeCompletedFuture { try Stream(wrappingChannelSynchronously: channel) }
            }
        } catch {
            throw ProxyError(.connectFailed, "opening a stream to \(channel.remoteAddress.map { "\($0)" } ?? "the peer") failed: \(error)")
        }
    }

    /// Opens a new request stream whose pipeline `initialize` sets up (a channel handler's path:
    /// no task, no async channel). Call on the connection's event loop.
    func createStream(
        promise: EventLoopPromise<any Channel>, _ initialize: @escaping @Sendable (any Channel) -> EventLoopFuture<Void>
    ) {
        handlerMultiplexer.value.createStreamChannel(promise: promise, initialize)
    }

    /// Makes the HTTP/2 client side on an established (TLS, ALPN `h2`) channel. Call on the
    /// channel's event loop.
    static func configure(
        _ channel: any Channel, idleTimeout: TimeAmount, configuration: NIOHTTP2Handler.Configuration
    ) throws -> PeerConnection {
        let activity = HTTP2ConnectionActivity()
        try channel.pipeline.syncOperations.addHandler(FlushCoalescingHandler())
        let multiplexer = try channel.pipeline.syncOperations.configureAsyncHTTP2Pipeline(
            mode: .client, streamDelegate: activity, configuration: configuration
        ) { stream in
            // The peer may not push; refuse any stream it tries to open.
            stream.close()
        }
        try channel.pipeline.syncOperations.addHandler(
            HTTP2ConnectionLivenessHandler(activity: activity, idleTimeout: idleTimeout))
        let handlerMultiplexer = try channel.pipeline.syncOperations.handler(type: NIOHTTP2Handler.self).syncMultiplexer()
        return PeerConnection(
            channel: channel, multiplexer: multiplexer,
            handlerMultiplexer: NIOLoopBound(handlerMultiplexer, eventLoop: channel.eventLoop), activity: activity)
    }
}
