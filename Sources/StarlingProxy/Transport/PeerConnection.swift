public import NIOCore
import NIOHTTP2

/// One HTTP/2 connection to a peer proxy, shared by every request to that endpoint on one event
/// loop. NIOHTTP2 runs in frame mode under an ``HTTP2StreamDispatcher``: requests are streams
/// without a channel each.
public struct PeerConnection: Sendable {
    public let channel: any Channel
    let dispatcher: NIOLoopBound<HTTP2StreamDispatcher>
    let activity: HTTP2ConnectionActivity

    /// False once the connection closed, the peer sent GOAWAY or its stream IDs ran out; the
    /// pool then replaces it.
    public var isUsable: Bool { channel.isActive && !activity.isGoingAway }

    /// Opens a stream for a channel handler (`owner`); nil when the connection takes no new
    /// stream. Call on the connection's event loop.
    func openFrameStream(owner: any HTTP2FrameStreamOwner) -> HTTP2FrameStream? {
        let dispatcher = self.dispatcher.value
        let stream = dispatcher.openStream(owner: owner)
        if dispatcher.isExhausted { activity.markGoingAway() }
        return stream
    }

    /// Makes the HTTP/2 client side on an established (TLS, ALPN `h2`) channel. Call on the
    /// channel's event loop.
    static func configure(
        _ channel: any Channel, idleTimeout: TimeAmount, configuration: NIOHTTP2Handler.Configuration
    ) throws -> PeerConnection {
        let activity = HTTP2ConnectionActivity()
        // A client-side dispatcher serves no stream the peer opens (push is refused).
        let dispatcher = HTTP2StreamDispatcher(observer: activity)
        let sync = channel.pipeline.syncOperations
        try sync.addFrameModeHTTP2(
            mode: .client, connection: configuration.connection, streams: configuration.stream, dispatcher: dispatcher)
        try sync.addHandler(HTTP2ConnectionLivenessHandler(activity: activity, idleTimeout: idleTimeout))
        return PeerConnection(
            channel: channel, dispatcher: NIOLoopBound(dispatcher, eventLoop: channel.eventLoop), activity: activity)
    }
}
