import Logging
import NIOCore
import NIOHTTP1
import StarlingCore

/// The HTTP/1 front end of the outbound listener before routing: the server codec with its
/// limits and timeouts, and each request head validated and converted to the HTTP/2 form every
/// upstream stream takes (``OutboundHTTP1ForwardHandler`` serves the requests).
///
/// Routing: the authority of an absolute-form target (`GET http://svc.ns:9898/ HTTP/1.1`, what
/// `http_proxy=` clients send), else the `Host` field; port 80 when none is given. A transparently
/// captured connection routes by its original destination instead.
enum OutboundHTTP1Request {
    /// Adds the HTTP/1 server handlers after protocol detection, with
    /// ``OutboundHTTP1ForwardHandler`` serving the requests (call on the event loop).
    static func configure(
        _ channel: any Channel, configuration: OutboundProxy.Configuration,
        environment: OutboundHTTP1ForwardHandler.Environment, originalDestination: String?, logger: Logger
    ) throws {
        try addCodec(channel, configuration: configuration)
        try channel.pipeline.syncOperations.addHandler(
            OutboundHTTP1ForwardHandler(
                environment: environment, originalDestination: originalDestination, logger: logger))
    }

    /// The HTTP/1 server codec with its limits and timeouts (call on the event loop).
    private static func addCodec(_ channel: any Channel, configuration: OutboundProxy.Configuration) throws {
        var limits = NIOHTTPDecoderLimitConfiguration()
        limits.maxHeaderListSize = configuration.maximumHeaderBytes
        limits.maxHeaderFieldSize = configuration.maximumHeaderBytes
        var encoderConfiguration = HTTPResponseEncoder.Configuration()
        encoderConfiguration.automaticallySetFramingHeaders = false
        let sync = channel.pipeline.syncOperations
        try sync.addHandler(
            HTTP1ServerTimeoutHandler(
                headerTimeout: TimeAmount(configuration.headerReadTimeout),
                idleTimeout: TimeAmount(configuration.idleTimeout)))
        try sync.addHandler(HTTPResponseEncoder(configuration: encoderConfiguration))
        try sync.addHandler(
            ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .forwardBytes, limitConfiguration: limits)))
    }

    /// A validated HTTP/1 request, ready to forward.
    struct Prepared {
        var request: OutboundRequest
        /// The head as it goes on (`Expect: 100-continue` answered here, so removed).
        var head: HTTPRequestHead
        var framing: HTTP1RequestValidation.BodyFraming
        /// Answer `100 Continue` before reading the body.
        var sendContinue: Bool
    }

    /// Validates a request head (framing, size, authority) and converts it to the HTTP/2 form
    /// the forwarder sends; as ``OutboundHTTP1ForwardHandler`` forwards it.
    static func prepare(
        _ head: HTTPRequestHead, maximumHeaderBytes: Int, originalDestination: String?
    ) throws(ProxyError) -> Prepared {
        let framing = try HTTP1RequestValidation.validate(head, maximumHeaderBytes: maximumHeaderBytes)
        let (authority, routing) = try authority(of: head)
        var head = head
        var sendContinue = false
        if head.headers["expect"].contains(where: { $0.lowercased() == "100-continue" }) {
            head.headers.remove(name: "expect")
            sendContinue = framing != .none
        }
        let request = OutboundRequest(
            headers: HTTPHeadConversion.http2RequestHeaders(from: head, authority: authority),
            routingAuthority: originalDestination ?? routing, authority: authority, method: head.method.rawValue,
            originalProtocol: head.version == .http1_1 ? "HTTP/1.1" : "HTTP/\(head.version.major).\(head.version.minor)",
            hasBody: framing != .none)
        return Prepared(request: request, head: head, framing: framing, sendContinue: sendContinue)
    }

    /// The `:authority` to send and the routing authority (`host:port`, port 80 by default).
    static func authority(of head: HTTPRequestHead) throws(ProxyError) -> (authority: String, routing: String) {
        let written: String
        if let target = RequestTarget(head.uri) {
            guard target.scheme == "http" else {
                throw ProxyError(.badRequest, "the proxy forwards http:// targets only, not '\(target.scheme ?? "")'")
            }
            written = target.authority
        } else if head.uri.hasPrefix("/") || head.uri == "*" {
            // Counted in place (the subscript would build an array on every request).
            var hosts = 0
            var host = ""
            for field in head.headers where field.name.isASCIICaseInsensitiveEqual(to: "host") {
                hosts += 1
                host = field.value
            }
            guard hosts == 1, !host.isEmpty else {
                throw ProxyError(.badRequest, "the request has \(hosts) Host fields; exactly one is required")
            }
            written = host
        } else {
            throw ProxyError(.badRequest, "the request target '\(head.uri.prefix(64))' is malformed")
        }
        guard let routing = HostPort.canonical(written, defaultPort: 80) else {
            throw ProxyError(.badRequest, "the authority '\(written.prefix(64))' is not host[:port]")
        }
        return (written, routing)
    }

    /// The error a decoder failure maps to: 431 for oversized heads, 400 otherwise.
    static func refusal(for error: any Error) -> ProxyError {
        if let parserError = error as? HTTPParserError, parserError == .headerOverflow {
            return ProxyError(.headersTooLarge, "the request head is too large")
        }
        return ProxyError(.badRequest, "the request is malformed: \(error)")
    }
}
