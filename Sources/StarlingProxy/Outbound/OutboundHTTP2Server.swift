import Logging
import NIOCore
import NIOHPACK
import NIOHTTP2
import StarlingCore

/// The HTTP/2 (prior knowledge, h2c) front end of the outbound listener, for clients such as
/// gRPC that speak HTTP/2 to the proxy with `:authority` = the service. Every stream is routed by
/// its `:authority` and relayed on the event loop to a stream on the peer connection
/// (``HTTP2StreamRelay`` with ``OutboundHTTP2Front``); trailers pass through. A stream routed to a
/// plain endpoint (outside the mesh) reaches it as HTTP/1.1 (``PlainHTTP1Stream``).
///
/// Limits against abusive clients: at most `maximumConcurrentStreams` streams, a 64 KiB header
/// list, NIOHTTP2's reset-frame rate limit (rapid reset, CVE-2023-44487), CONTINUATION and
/// control-frame limits and glitch counting — each closes the connection, so memory stays bounded.
enum OutboundHTTP2Server {
    /// NIOHTTP2 settings for the client-facing server side.
    static func http2Configuration(_ configuration: OutboundProxy.Configuration) -> NIOHTTP2Handler.Configuration {
        HTTP2Limits.configuration(settings: [
            HTTP2Setting(parameter: .maxConcurrentStreams, value: configuration.maximumConcurrentStreams),
            HTTP2Setting(parameter: .maxHeaderListSize, value: configuration.maximumHeaderBytes),
            HTTP2Setting(parameter: .enablePush, value: 0),
        ])
    }

    /// Adds the HTTP/2 server handlers after protocol detection (call on the event loop): every
    /// stream is served on the event loop by an ``HTTP2StreamRelay``.
    static func configure(
        _ channel: any Channel, configuration: OutboundProxy.Configuration,
        environment: HTTP2StreamRelay<OutboundHTTP2Front>.Environment, originalDestination: String?
    ) throws {
        // The listener accepts half-closed connections for opaque TCP; HTTP/2 has no use for one.
        // A client's FIN (curl after its answer) closes the connection now, instead of leaving it
        // in CLOSE_WAIT until the idle timeout (the soak counted 140 such sockets on one proxy).
        try channel.syncOptions?.setOption(ChannelOptions.allowRemoteHalfClosure, value: false)
        var environment = environment
        environment.front.logger[metadataKey: "client"] = "\(channel.remoteAddress.map { "\($0)" } ?? "?")"
        environment.front.originalDestination = originalDestination
        try HTTP2ServerStreams.configure(
            channel, configuration: http2Configuration(configuration), idleTimeout: TimeAmount(configuration.idleTimeout),
            logger: environment.front.logger
        ) { stream, _ in
            HTTP2StreamRelay(client: stream, environment: environment)
        }
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
        let method = headers.first(name: ":method") ?? ""
        // An upstream reached over HTTP/1 would read such a body as a second request.
        if hasBody, method == "TRACE" {
            done(.failure(HTTP2RelayAnswer(ProxyError(.badRequest, "a TRACE request must not have a body"))))
            return
        }
        let request = OutboundRequest(
            headers: headers, routingAuthority: originalDestination ?? routing, authority: authority,
            method: method, originalProtocol: nil, hasBody: hasBody)
        done(.success((request, request.routingAuthority)))
    }

    func peerHeaders(for request: OutboundRequest, pick: Pick) -> HPACKHeaders {
        forwarder.meshHeaders(for: request, pick: pick)
    }

    func responded(_ request: OutboundRequest, pick: Pick, status: Int, latency: Duration, grpcStatus: Int?) {
        forwarder.record(request, pick: pick, status: status, latency: latency, grpcStatus: grpcStatus)
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
