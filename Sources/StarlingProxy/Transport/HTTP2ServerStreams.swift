import NIOCore
import NIOHTTP2

/// The server side of an HTTP/2 connection whose streams are served by tasks (the outbound's h2c
/// front end, the gateway): NIOHTTP2 in frame mode and an ``HTTP2StreamDispatcher`` that hands
/// every stream the client opens to ``streams`` as a ``PeerStream``, its first HEADERS as the
/// first frame of its inbound sequence. The inbound proxy's server is the same without tasks
/// (its dispatcher's `accept` routes each stream to a handler-style forwarder).
///
/// The sequence ends when the connection closes. It needs no bound of its own: NIOHTTP2 refuses
/// streams beyond the SETTINGS_MAX_CONCURRENT_STREAMS the server announced.
struct HTTP2ServerStreams: Sendable {
    let streams: AsyncStream<PeerStream>
    /// The connection's loop, where its stream tasks run.
    let eventLoop: any EventLoop

    /// Serves every stream the client opens with `serve`, a task each, until the connection
    /// closes. The tasks run on the connection's loop (``EventLoopTaskExecutor``), and so also
    /// use that loop's peer connections.
    func serveEach(_ serve: @escaping @Sendable (PeerStream) async -> Void) async {
        await withTaskExecutorPreference(EventLoopTaskExecutor(eventLoop)) {
            await withDiscardingTaskGroup { group in
                for await stream in streams {
                    group.addTask { await serve(stream) }
                }
            }
        }
    }

    /// Serves a stream on the event loop: given the stream, its first HEADERS and `handOff` (which
    /// gives the stream to ``serveEach`` instead, replaying the frames it is passed), returns the
    /// stream's owner.
    typealias ServeOnLoop = (
        HTTP2FrameStream, HTTP2Frame.FramePayload.Headers,
        _ handOff: @escaping (HTTP2FrameStream, [HTTP2Frame.FramePayload]) -> Void
    ) -> any HTTP2FrameStreamOwner

    /// Adds the HTTP/2 server handlers to `channel` (call on its event loop); `activity` counts
    /// the open streams for the handlers added after it (idle close, drain). With `serveOnLoop`,
    /// every stream goes to it first, and only those it hands off reach ``streams``.
    static func configure(
        _ channel: any Channel, configuration: NIOHTTP2Handler.Configuration, activity: HTTP2ConnectionActivity,
        serveOnLoop: ServeOnLoop? = nil
    ) throws -> HTTP2ServerStreams {
        let (streams, continuation) = AsyncStream.makeStream(of: PeerStream.self)
        let client = "client \(channel.remoteAddress.map { "\($0)" } ?? "?")"
        let dispatcher = HTTP2StreamDispatcher(observer: activity) { stream, headers in
            if let serveOnLoop {
                let owner = serveOnLoop(stream, headers) { stream, received in
                    let (peerStream, owner) = PeerStream.accepted(stream, peerDescription: client)
                    stream.handOver(to: owner)
                    for payload in received { owner.streamReceived(payload) }
                    continuation.yield(peerStream)
                }
                return (owner, .headers(headers))
            }
            let (peerStream, owner) = PeerStream.accepted(stream, peerDescription: client)
            continuation.yield(peerStream)
            return (owner, .headers(headers))
        }
        channel.closeFuture.whenComplete { _ in continuation.finish() }
        try channel.pipeline.syncOperations.addFrameModeHTTP2(
            mode: .server, connection: configuration.connection, streams: configuration.stream, dispatcher: dispatcher)
        return HTTP2ServerStreams(streams: streams, eventLoop: channel.eventLoop)
    }
}
