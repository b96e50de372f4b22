import Logging
import NIOCore
import NIOHPACK
import NIOHTTP2

/// The HTTP/2 (prior knowledge, h2c) front end of the outbound listener, for clients such as
/// gRPC that speak HTTP/2 to the proxy with `:authority` = the service. Every stream is routed by
/// its `:authority` and relayed on the event loop to a stream on the peer connection
/// (``HTTP2StreamRelay`` with ``OutboundHTTP2Front``); trailers pass through. Streams routed to a plain endpoint
/// (outside the mesh) are handed to a task each, which forwards them with ``OutboundForwarder``.
///
/// Limits against abusive clients: at most `maximumConcurrentStreams` streams, a 64 KiB header
/// list, NIOHTTP2's reset-frame rate limit (rapid reset, CVE-2023-44487), CONTINUATION and
/// control-frame limits and glitch counting — each closes the connection, so memory stays bounded.
struct OutboundHTTP2Server: Sendable {
    let forwarder: OutboundForwarder
    /// How long a finished response may wait for the client to take its last frames.
    let idleTimeout: TimeAmount

    /// NIOHTTP2 settings for the client-facing server side.
    static func http2Configuration(_ configuration: OutboundProxy.Configuration) -> NIOHTTP2Handler.Configuration {
        HTTP2Limits.configuration(settings: [
            HTTP2Setting(parameter: .maxConcurrentStreams, value: configuration.maximumConcurrentStreams),
            HTTP2Setting(parameter: .maxHeaderListSize, value: configuration.maximumHeaderBytes),
            HTTP2Setting(parameter: .enablePush, value: 0),
        ])
    }

    /// Adds the HTTP/2 server handlers after protocol detection (call on the event loop). Every
    /// stream is served on the event loop by an ``HTTP2StreamRelay``; only those routed to a plain
    /// endpoint reach ``serve(_:originalDestination:logger:)``.
    static func configure(
        _ channel: any Channel, configuration: OutboundProxy.Configuration,
        environment: HTTP2StreamRelay<OutboundHTTP2Front>.Environment, originalDestination: String?
    ) throws -> HTTP2ServerStreams {
        // The listener accepts half-closed connections for opaque TCP; HTTP/2 has no use for one.
        // A client's FIN (curl after its answer) closes the connection now, instead of leaving it
        // in CLOSE_WAIT until the idle timeout (the soak counted 140 such sockets on one proxy).
        try channel.syncOptions?.setOption(ChannelOptions.allowRemoteHalfClosure, value: false)
        let activity = HTTP2ConnectionActivity()
        var environment = environment
        environment.front.logger[metadataKey: "client"] = "\(channel.remoteAddress.map { "\($0)" } ?? "?")"
        environment.front.originalDestination = originalDestination
        let server = try HTTP2ServerStreams.configure(
            channel, configuration: http2Configuration(configuration), activity: activity
        ) { stream, _, handOff in
            HTTP2StreamRelay(client: stream, environment: environment, handOff: handOff)
        }
        try channel.pipeline.syncOperations.addHandler(
            HTTP2ConnectionLivenessHandler(activity: activity, idleTimeout: TimeAmount(configuration.idleTimeout)))
        return server
    }

    func serve(_ server: HTTP2ServerStreams, originalDestination: String?, logger: Logger) async {
        await server.serveEach { stream in
            await serveStream(stream, originalDestination: originalDestination, logger: logger)
        }
    }

    private func serveStream(_ stream: PeerStream, originalDestination: String?, logger: Logger) async {
        // Whatever ends the exchange early (an error, a reset by the client) resets the stream
        // unless it has closed.
        defer { stream.close() }
        do {
            let frames = stream.inbound.makeAsyncIterator()
            guard case .headers(let first)? = try await frames.next() else { return }
            let sink = HTTP2ResponseSink(stream: stream)
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
            // A gRPC answer larger than the client's window still has frames in NIOHTTP2.
            if case .responded = disposition, requestEnded {
                await stream.awaitClose(within: idleTimeout)
            }
        } catch {
            logger.debug("HTTP/2 client stream ended", metadata: ["error": "\(error)"])
        }
    }
}

/// Writes a response as HTTP/2 frames on the client's stream.
struct HTTP2ResponseSink: OutboundResponseSink {
    let stream: PeerStream

    func head(_ headers: HPACKHeaders) async throws {
        var headers = headers
        HopByHopHeaders.remove(from: &headers)
        try await stream.write(.headers(.init(headers: headers)))
    }

    func body(_ data: ByteBuffer) async throws {
        try await stream.write(.data(.init(data: .byteBuffer(data))))
    }

    /// Trailers-only: one HEADERS frame that ends the stream, so `grpc-status` stays a trailer.
    func headOnly(_ headers: HPACKHeaders) async throws {
        var headers = headers
        HopByHopHeaders.remove(from: &headers)
        try await stream.write(.headers(.init(headers: headers, endStream: true)))
    }

    func end(_ trailers: HPACKHeaders?) async throws {
        if let trailers, !trailers.isEmpty {
            try await stream.write(.headers(.init(headers: trailers, endStream: true)))
        } else {
            try await stream.write(.data(.init(data: .byteBuffer(ByteBuffer()), endStream: true)))
        }
    }

    func error(_ error: ProxyError, abortRequest: Bool) async throws {
        try await stream.write(.headers(.init(headers: OutboundErrorResponse.http2Headers(error))))
        try await stream.write(.data(.init(data: .byteBuffer(OutboundErrorResponse.body(error)), endStream: true)))
    }
}

/// The outbound's h2c/gRPC streams: routed by `:authority` (or the original destination of a
/// captured connection), sent with the mesh headers, counted as outbound requests.
struct OutboundHTTP2Front: HTTP2RelayFront {
    let forwarder: OutboundForwarder
    var logger: Logger
    /// Set per connection: a transparently captured one routes by where it was going.
    var originalDestination: String? = nil

    func admit(
        _ headers: HPACKHeaders, hasBody: Bool, eventLoop: any EventLoop,
        _ done: @escaping (Result<(OutboundRequest, authority: String), HTTP2RelayAnswer>) -> Void
    ) {
        guard let authority = headers.first(name: ":authority") ?? headers.first(name: "host"),
            let routing = HostPort.canonical(authority, defaultPort: 80)
        else {
            done(.failure(HTTP2RelayAnswer(ProxyError(.badRequest, "the request has no usable :authority"))))
            return
        }
        let request = OutboundRequest(
            headers: headers, routingAuthority: originalDestination ?? routing, authority: authority,
            method: headers.first(name: ":method") ?? "", originalProtocol: nil, hasBody: hasBody)
        done(.success((request, request.routingAuthority)))
    }

    func peerHeaders(for request: OutboundRequest, pick: Pick) -> HPACKHeaders {
        forwarder.meshHeaders(for: request, pick: pick)
    }

    func plainEndpoint(_ pick: Pick, request: OutboundRequest) -> ProxyError? {
        nil
    }

    func responded(_ request: OutboundRequest, pick: Pick, status: Int, latency: Duration) {
        forwarder.record(request, pick: pick, status: status, latency: latency)
        if logger.logLevel <= .debug {
            logger.debug(
                "forwarded",
                metadata: [
                    "authority": "\(request.authority)", "endpoint": "\(pick.endpoint)", "status": "\(status)",
                    "latency": "\(latency)",
                ])
        }
    }

    func failed(_ request: OutboundRequest, error: ProxyError, pick: Pick?) {
        forwarder.failed(request, error: error, pick: pick, logger: logger)
    }

    func brokeOff(_ request: OutboundRequest, pick: Pick, error: ProxyError) {
        logger.warning(
            "response broke off",
            metadata: ["authority": "\(request.authority)", "endpoint": "\(pick.endpoint)", "error": "\(error)"])
    }
}
