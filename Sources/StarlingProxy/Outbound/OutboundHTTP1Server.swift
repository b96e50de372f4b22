import Logging
import NIOCore
import NIOHPACK
import NIOHTTP1
import Synchronization

/// The task-based HTTP/1 front end of the outbound listener: a forward proxy. Reads one request
/// at a time (pipelined requests wait their turn), validates it, and hands it to the forwarder.
/// ``OutboundHTTP1ForwardHandler`` serves connections first and hands a connection over to this
/// server when a request goes to a plain (not meshed) endpoint.
///
/// Routing: the authority of an absolute-form target (`GET http://svc.ns:9898/ HTTP/1.1`, what
/// `http_proxy=` clients send), else the `Host` field; port 80 when none is given. A transparently
/// captured connection routes by its original destination instead.
struct OutboundHTTP1Server: Sendable {
    typealias Connection = NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>

    let forwarder: OutboundForwarder
    let maximumHeaderBytes: Int
    let draining: @Sendable () -> Bool

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

    func serve(_ connection: Connection, originalDestination: String?, logger: Logger) async {
        let channel = connection.channel
        do {
            try await connection.executeThenClose { inbound, outbound in
                var parts = inbound.makeAsyncIterator()
                while true {
                    let part: HTTPServerRequestPart?
                    do {
                        part = try await parts.next()
                    } catch {
                        // The decoder refused the bytes: answer once, then close.
                        let refusal = Self.refusal(for: error)
                        logger.debug("refused a malformed request", metadata: ["error": "\(error)"])
                        try? await Self.writeError(refusal, version: .http1_1, close: true, to: outbound)
                        return
                    }
                    // A request without a body is handled at its head; its `.end` arrives after.
                    if case .end? = part { continue }
                    guard case .head(let head)? = part else { return }
                    channel.triggerUserOutboundEvent(HTTP1ServerTimeoutEvent.requestHeadReceived, promise: nil)
                    let keepAlive = try await handle(
                        head, parts: &parts, outbound: outbound, channel: channel,
                        originalDestination: originalDestination)
                    channel.triggerUserOutboundEvent(HTTP1ServerTimeoutEvent.responseCompleted, promise: nil)
                    if !keepAlive || draining() { return }
                }
            }
        } catch {
            logger.debug("client connection ended", metadata: ["error": "\(error)"])
        }
    }

    /// Serves one request; returns whether the connection can carry another.
    private func handle(
        _ head: HTTPRequestHead, parts: inout NIOAsyncChannelInboundStream<HTTPServerRequestPart>.AsyncIterator,
        outbound: NIOAsyncChannelOutboundWriter<HTTPServerResponsePart>, channel: any Channel,
        originalDestination: String?
    ) async throws -> Bool {
        let prepared: Prepared
        do {
            prepared = try Self.prepare(head, maximumHeaderBytes: maximumHeaderBytes, originalDestination: originalDestination)
        } catch {
            // Framing is unknown or untrusted: never forward, never reuse the connection.
            try await Self.writeError(error, version: head.version, close: true, to: outbound)
            return false
        }
        let (request, head, framing) = (prepared.request, prepared.head, prepared.framing)
        if prepared.sendContinue {
            try await outbound.write(.head(HTTPResponseHead(version: head.version, status: .continue)))
        }
        let requestRead = RequestReadState(done: framing == .none)
        let sink = HTTP1ResponseSink(
            outbound: outbound, channel: channel, method: head.method, version: head.version,
            requestRead: requestRead)
        var finished = framing == .none
        let disposition = await forwarder.forward(request, sink: sink) { writer in
            while let part = try await parts.next() {
                switch part {
                case .body(let buffer):
                    try await writer.body(buffer)
                case .end(let trailers):
                    finished = true
                    requestRead.markDone()
                    try await writer.end(trailers.map(HTTPHeadConversion.http2Trailers(from:)))
                    return
                case .head:
                    throw ProxyError(.badRequest, "a request head arrived inside a request body")
                }
            }
            throw ProxyError(.badRequest, "the client closed the connection inside the request body")
        }
        guard case .responded = disposition, finished, !sink.closesConnection else { return false }
        return head.isKeepAlive
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
    /// the forwarder sends; shared by this server and ``OutboundHTTP1ForwardHandler``.
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

    static func writeError(
        _ error: ProxyError, version: HTTPVersion, close: Bool,
        to outbound: NIOAsyncChannelOutboundWriter<HTTPServerResponsePart>
    ) async throws {
        try await outbound.write(.head(OutboundErrorResponse.http1Head(error, version: version, close: close)))
        try await outbound.write(.body(.byteBuffer(OutboundErrorResponse.body(error))))
        try await outbound.write(.end(nil))
    }
}

/// Whether the current request's body has been read to its end (shared by the reading loop and
/// the response sink, which must close the connection when answering early).
final class RequestReadState: Sendable {
    private let done: Mutex<Bool>
    private let closing = Mutex(false)
    init(done: Bool) { self.done = Mutex(done) }
    var isDone: Bool { done.withLock { $0 } }
    func markDone() { done.withLock { $0 = true } }
    /// True once the response told the client that the connection closes after it.
    var closesConnection: Bool { closing.withLock { $0 } }
    func markClosing() { closing.withLock { $0 = true } }
}

/// Writes a response in HTTP/1 to the client: heads converted and framed
/// (``HTTPHeadConversion/http1ResponseHead(from:requestMethod:version:)``), chunked when the
/// upstream gave no length.
struct HTTP1ResponseSink: OutboundResponseSink {
    let outbound: NIOAsyncChannelOutboundWriter<HTTPServerResponsePart>
    let channel: any Channel
    let method: HTTPMethod
    let version: HTTPVersion
    let requestRead: RequestReadState

    var closesConnection: Bool { requestRead.closesConnection }

    func head(_ headers: HPACKHeaders) async throws {
        let head = try HTTPHeadConversion.http1ResponseHead(from: headers, requestMethod: method, version: version)
        if head.headers["connection"].contains(where: { $0.lowercased() == "close" }) {
            requestRead.markClosing()
        }
        try await outbound.write(.head(head))
    }

    func body(_ data: ByteBuffer) async throws {
        guard method != .HEAD else { return }
        try await outbound.write(.body(.byteBuffer(data)))
    }

    func end(_ trailers: HPACKHeaders?) async throws {
        try await outbound.write(.end(trailers.map(HTTPHeadConversion.http1Trailers(from:))))
    }

    func error(_ error: ProxyError, abortRequest: Bool) async throws {
        // An unread request body cannot be skipped safely: answer, then close.
        let close = abortRequest || !requestRead.isDone
        if close { requestRead.markClosing() }
        try await OutboundHTTP1Server.writeError(error, version: version, close: close, to: outbound)
        if close { channel.close(mode: .input, promise: nil) }
    }
}
