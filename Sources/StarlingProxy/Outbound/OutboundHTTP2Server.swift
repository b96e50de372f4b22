import Logging
import NIOCore
import NIOHPACK
import NIOHTTP2

/// The HTTP/2 (prior knowledge, h2c) front end of the outbound listener, for clients such as
/// gRPC that speak HTTP/2 to the proxy with `:authority` = the service. Every stream is routed by
/// its `:authority` and forwarded as a stream on the peer connection; trailers pass through.
///
/// Limits against abusive clients: at most `maximumConcurrentStreams` streams, a 64 KiB header
/// list, NIOHTTP2's reset-frame rate limit (rapid reset, CVE-2023-44487), CONTINUATION and
/// control-frame limits and glitch counting — each closes the connection, so memory stays bounded.
struct OutboundHTTP2Server: Sendable {
    typealias Stream = NIOAsyncChannel<HTTP2Frame.FramePayload, HTTP2Frame.FramePayload>
    typealias Multiplexer = NIOHTTP2Handler.AsyncStreamMultiplexer<Stream>

    let forwarder: OutboundForwarder
    /// How long a finished response may wait for the client to take its last frames.
    let idleTimeout: TimeAmount

    /// NIOHTTP2 settings for the client-facing server side.
    static func http2Configuration(_ configuration: OutboundProxy.Configuration) -> NIOHTTP2Handler.Configuration {
        var http2 = NIOHTTP2Handler.Configuration()
        http2.connection.initialSettings = [
            HTTP2Setting(parameter: .maxConcurrentStreams, value: configuration.maximumConcurrentStreams),
            HTTP2Setting(parameter: .maxHeaderListSize, value: configuration.maximumHeaderBytes),
            HTTP2Setting(parameter: .enablePush, value: 0),
        ]
        http2.connection.maximumRecentlyResetStreams = 32
        http2.connection.maximumSequentialContinuationFrames = 5
        http2.stream.streamResetFrameRateLimit.maximumCount = 200
        http2.stream.streamResetFrameRateLimit.windowLength = .seconds(30)
        http2.stream.streamErrorRateLimit.maximumCount = 200
        http2.stream.streamErrorRateLimit.windowLength = .seconds(30)
        return http2
    }

    /// Adds the HTTP/2 server handlers after protocol detection (call on the event loop).
    static func configure(_ channel: any Channel, configuration: OutboundProxy.Configuration) throws -> Multiplexer {
        let activity = HTTP2ConnectionActivity()
        let multiplexer = try channel.pipeline.syncOperations.configureAsyncHTTP2Pipeline(
            mode: .server, streamDelegate: activity, configuration: http2Configuration(configuration)
        ) { stream in
            stream.eventLoop.makeCompletedFuture { try Stream(wrappingChannelSynchronously: stream) }
        }
        try channel.pipeline.syncOperations.addHandler(
            HTTP2ConnectionLivenessHandler(activity: activity, idleTimeout: TimeAmount(configuration.idleTimeout)))
        return multiplexer
    }

    func serve(_ multiplexer: Multiplexer, originalDestination: String?, logger: Logger) async {
        do {
            try await withThrowingDiscardingTaskGroup { group in
                for try await stream in multiplexer.inbound {
                    group.addTask {
                        await serveStream(stream, originalDestination: originalDestination, logger: logger)
                    }
                }
            }
        } catch {
            logger.debug("HTTP/2 client connection ended", metadata: ["error": "\(error)"])
        }
    }

    private func serveStream(_ stream: Stream, originalDestination: String?, logger: Logger) async {
        try? await stream.executeThenClose { inbound, outbound in
            var frames = inbound.makeAsyncIterator()
            guard case .headers(let first)? = try await frames.next() else { return }
            let sink = HTTP2ResponseSink(outbound: outbound)
            var headers = first.headers
            HopByHopHeaders.remove(from: &headers)
            let method = headers.first(name: ":method") ?? ""
            guard let authority = headers.first(name: ":authority") ?? headers.first(name: "host"),
                let routing = HostPort.canonical(authority, defaultPort: 80)
            else {
                try await sink.error(ProxyError(.badRequest, "the request has no usable :authority"), abortRequest: true)
                return
            }
            let request = OutboundRequest(
                headers: headers, routingAuthority: originalDestination ?? routing, authority: authority,
                method: method, originalProtocol: nil, hasBody: !first.endStream)
            var requestEnded = first.endStream
            let disposition = await forwarder.forward(request, sink: sink) { writer in
                while let payload = try await frames.next() {
                    switch payload {
                    case .data(let data):
                        if case .byteBuffer(let buffer) = data.data, buffer.readableBytes > 0 {
                            try await writer.body(buffer)
                        }
                        if data.endStream {
                            try await writer.end(nil)
                            requestEnded = true
                            return
                        }
                    case .headers(let trailers):
                        try await writer.end(trailers.headers)
                        requestEnded = true
                        return
                    case .rstStream:
                        throw ProxyError(.badRequest, "the client reset the stream")
                    default:
                        continue
                    }
                }
                throw ProxyError(.badRequest, "the client's stream ended inside the request body")
            }
            if case .responded = disposition, requestEnded {
                await awaitDelivery(of: stream.channel, within: idleTimeout)
            }
        }
    }
}

/// Waits, at most `limit`, for a stream whose request and response are both complete to close by
/// itself. Closing it sooner resets it, and the response's last frames may still wait in NIOHTTP2
/// for the client's flow-control window: a gRPC answer larger than the window lost its end so.
func awaitDelivery(of stream: any Channel, within limit: TimeAmount) async {
    let deadline = stream.eventLoop.scheduleTask(in: limit) { stream.close(promise: nil) }
    try? await stream.closeFuture.get()
    deadline.cancel()
}

/// Writes a response as HTTP/2 frames on the client's stream.
struct HTTP2ResponseSink: OutboundResponseSink {
    let outbound: NIOAsyncChannelOutboundWriter<HTTP2Frame.FramePayload>

    func head(_ headers: HPACKHeaders) async throws {
        var headers = headers
        HopByHopHeaders.remove(from: &headers)
        try await outbound.write(.headers(.init(headers: headers)))
    }

    func body(_ data: ByteBuffer) async throws {
        try await outbound.write(.data(.init(data: .byteBuffer(data))))
    }

    /// Trailers-only: one HEADERS frame that ends the stream, so `grpc-status` stays a trailer.
    func headOnly(_ headers: HPACKHeaders) async throws {
        var headers = headers
        HopByHopHeaders.remove(from: &headers)
        try await outbound.write(.headers(.init(headers: headers, endStream: true)))
    }

    func end(_ trailers: HPACKHeaders?) async throws {
        if let trailers, !trailers.isEmpty {
            try await outbound.write(.headers(.init(headers: trailers, endStream: true)))
        } else {
            try await outbound.write(.data(.init(data: .byteBuffer(ByteBuffer()), endStream: true)))
        }
    }

    func error(_ error: ProxyError, abortRequest: Bool) async throws {
        try await outbound.write(.headers(.init(headers: OutboundErrorResponse.http2Headers(error))))
        try await outbound.write(.data(.init(data: .byteBuffer(OutboundErrorResponse.body(error)), endStream: true)))
    }
}
