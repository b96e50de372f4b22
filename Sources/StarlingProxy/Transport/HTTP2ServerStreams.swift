package import Logging
package import NIOCore
package import NIOHTTP2

/// The server side of an HTTP/2 connection whose streams are relayed on the event loop (the
/// outbound's h2c front end, the gateway): NIOHTTP2 in frame mode, an ``HTTP2StreamDispatcher``
/// that gives every stream the client opens to the owner `serve` returns for it (an
/// ``HTTP2StreamRelay``), and the connection's ``HTTP2ServerConnectionHandler`` (idle close,
/// drain). The inbound proxy's server is built the same way with its own owners.
///
/// It needs no bound of its own: NIOHTTP2 refuses streams beyond the
/// SETTINGS_MAX_CONCURRENT_STREAMS the server announced.
package enum HTTP2ServerStreams {
    /// Returns the owner of a stream the client opened, given the stream and its first HEADERS.
    package typealias Serve = (HTTP2FrameStream, HTTP2Frame.FramePayload.Headers) -> any HTTP2FrameStreamOwner

    /// Adds the HTTP/2 server handlers to `channel` (call on its event loop).
    package static func configure(
        _ channel: any Channel, configuration: NIOHTTP2Handler.Configuration, idleTimeout: TimeAmount, logger: Logger,
        serve: @escaping Serve
    ) throws {
        let connection = HTTP2ServerConnectionHandler(idleTimeout: idleTimeout, logger: logger)
        let dispatcher = HTTP2StreamDispatcher(observer: connection) { stream, headers in
            (serve(stream, headers), .headers(headers))
        }
        try channel.pipeline.syncOperations.addFrameModeHTTP2(
            mode: .server, connection: configuration.connection, streams: configuration.stream, dispatcher: dispatcher)
        try channel.pipeline.syncOperations.addHandler(connection)
    }
}
