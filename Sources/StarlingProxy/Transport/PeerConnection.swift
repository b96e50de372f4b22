public import NIOCore
public import NIOHTTP2

/// One multiplexed HTTP/2 connection to a peer proxy, shared by every request to that endpoint.
public struct PeerConnection: Sendable {
    /// A request stream on the connection.
    public typealias Stream = NIOAsyncChannel<HTTP2Frame.FramePayload, HTTP2Frame.FramePayload>

    public let channel: any Channel
    let multiplexer: NIOHTTP2Handler.AsyncStreamMultiplexer<Void>
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

    /// Makes the HTTP/2 client side on an established (TLS, ALPN `h2`) channel. Call on the
    /// channel's event loop.
    static func configure(
        _ channel: any Channel, idleTimeout: TimeAmount, configuration: NIOHTTP2Handler.Configuration
    ) throws -> PeerConnection {
        let activity = HTTP2ConnectionActivity()
        let multiplexer = try channel.pipeline.syncOperations.configureAsyncHTTP2Pipeline(
            mode: .client, streamDelegate: activity, configuration: configuration
        ) { stream in
            // The peer may not push; refuse any stream it tries to open.
            stream.close()
        }
        try channel.pipeline.syncOperations.addHandler(
            HTTP2ConnectionLivenessHandler(activity: activity, idleTimeout: idleTimeout))
        return PeerConnection(channel: channel, multiplexer: multiplexer, activity: activity)
    }
}
