import NIOCore
package import NIOHTTP2

/// The HTTP/2 limits of every connection the proxy serves or opens (inbound, gateway, the
/// outbound's h2c front end, and the pooled connections to peers), set in one place.
///
/// NIOHTTP2's protections against rapid reset (CVE-2023-44487), CONTINUATION floods, stream
/// errors and control-frame floods stay on. Two of its defaults are wrong for a proxy:
/// - **Recently reset streams: 32 → 1,024.** Frames the peer sent before it saw our RST_STREAM
///   are dropped only for the last 32 streams reset; a frame for an older one is a connection
///   error (STREAM_CLOSED), after which NIOHTTP2 sends GOAWAY and reads nothing more. A client
///   that left with 50 requests in flight made the outbound reset 50 peer streams at once, the
///   answers already on their way killed the pooled connection, and every request routed to it
///   then waited for its timeout (the bench's h2load "stalls", issue #14). 1,024 covers every
///   stream a peer lets us open (250) several times over, at 4 bytes each.
/// - **RST_STREAM frames a peer may send: 200 per 30 s → 1,000 per 10 s.** The outbound
///   cancels a peer stream whenever its client cancels (a gRPC deadline, a closed browser tab),
///   so one pooled connection carries the cancellations of every client of a workload. At 200
///   per 30 s, four h2load runs ending within 30 s closed the connection with
///   ENHANCE_YOUR_CALM; a deadline storm would do the same in production. A rapid-reset attack
///   sends tens of thousands per second and still ends within its first 1,001 streams.
package enum HTTP2Limits {
    static let recentlyResetStreams = 1_024
    static let resetFrames = 1_000
    static let resetWindow = TimeAmount.seconds(10)
    static let streamErrors = 200
    static let streamErrorWindow = TimeAmount.seconds(30)
    static let sequentialContinuationFrames = 5
    /// Control frames NIOHTTP2 may buffer while the socket is backed up, on the connections the
    /// inbound and the gateway serve to peers (bounding what a peer that does not read costs);
    /// elsewhere NIOHTTP2's 10,000, which a burst of cancellations on a busy pooled connection
    /// must not exhaust.
    package static let bufferedControlFramesFromPeers = 1_000

    /// NIOHTTP2's configuration with these limits and `settings` as the initial SETTINGS.
    package static func configuration(
        settings: HTTP2Settings = nioDefaultSettings, bufferedControlFrames: Int = 10_000
    ) -> NIOHTTP2Handler.Configuration {
        var http2 = NIOHTTP2Handler.Configuration()
        http2.connection.initialSettings = settings
        http2.connection.maximumRecentlyResetStreams = recentlyResetStreams
        http2.connection.maximumSequentialContinuationFrames = sequentialContinuationFrames
        http2.connection.maximumBufferedControlFrames = bufferedControlFrames
        http2.stream.streamResetFrameRateLimit.maximumCount = resetFrames
        http2.stream.streamResetFrameRateLimit.windowLength = resetWindow
        http2.stream.streamErrorRateLimit.maximumCount = streamErrors
        http2.stream.streamErrorRateLimit.windowLength = streamErrorWindow
        return http2
    }
}
