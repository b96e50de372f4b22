package import Logging
package import NIOCore
package import NIOHPACK
import NIOHTTP1
package import NIOHTTP2

/// What an HTTP/2 front end decides for the streams an ``HTTP2StreamRelay`` serves: which
/// streams are admitted and where they go, the headers the peer gets, and how outcomes are logged
/// and counted. The outbound's h2c/gRPC front end (``OutboundHTTP2Front``) and the gateway
/// (``GatewayHTTP2Front``) are the two.
package protocol HTTP2RelayFront: Sendable {
    /// What the front keeps about an admitted request.
    associatedtype Request

    /// The connection's logger (the route's retries log there too).
    var logger: Logger { get }

    /// Admits a stream by its first HEADERS (hop-by-hop fields removed): calls `done` once, on
    /// `eventLoop` (possibly before returning), with the request and the authority to route it
    /// to, or with the answer to give instead (which the front has logged and counted).
    func admit(
        _ headers: HPACKHeaders, hasBody: Bool, eventLoop: any EventLoop,
        _ done: @escaping (Result<(Request, authority: String), HTTP2RelayAnswer>) -> Void)
    /// The headers the peer's stream opens with.
    func peerHeaders(for request: Request, pick: Pick) -> HPACKHeaders
    /// The peer's response went to the client in full; `grpcStatus` for a gRPC call's 200
    /// response (``GRPCStatus/ofResponse(httpStatus:ending:)``).
    func responded(_ request: Request, pick: Pick, status: Int, latency: Duration, grpcStatus: Int?)
    /// The relay answers `error` itself: log and count it.
    func failed(_ request: Request, error: ProxyError, pick: Pick?)
    /// The response broke off after its head went out: log it.
    func brokeOff(_ request: Request, pick: Pick, error: ProxyError)
}

/// An answer of the proxy's own instead of the peer's: status, `starling-error` code, message.
package struct HTTP2RelayAnswer: Error {
    var status: Int
    var code: ProxyError.Code
    var message: String
    /// For a gRPC request: answer with this gRPC status, trailers-only, instead of an HTTP error.
    var grpcStatus: Int?

    package init(_ error: ProxyError, grpcStatus: Int? = nil) {
        self.init(status: error.httpStatus, code: error.code, message: error.message, grpcStatus: grpcStatus)
    }

    package init(status: Int, code: ProxyError.Code, message: String, grpcStatus: Int? = nil) {
        self.status = status
        self.code = code
        self.message = message
        self.grpcStatus = grpcStatus
    }
}

/// Serves one stream a client opened on an HTTP/2 front end, on the connection's event loop: the
/// front admits it, then an ``UpstreamExchange`` routes it — pick, connect through the loop's
/// pooled connection (HTTP/2 over mTLS to a peer, or HTTP/1.1 to a plain endpoint where the
/// connector allows them), open a stream — and frames are relayed both ways. No task, no thread
/// hop: both sides live on the same loop.
///
/// - **Flow control.** Each side's DATA is taken only while the other side can take writes
///   (``HTTP2FrameStream/isReceiving``); credit withheld meanwhile holds the sender, at most one
///   window per stream. While the stream is admitted and routed, the client's body waits the
///   same way.
/// - **Trailers** pass both ways, so `grpc-status` stays a trailer; a trailers-only response
///   stays one HEADERS frame.
/// - **Failures** before a response head are answered by the proxy (``ErrorResponse``,
///   `starling-error`); retries and timeouts are the exchange's (``UpstreamExchange``); a
///   response that broke off after its head resets the client's stream.
package final class HTTP2StreamRelay<Front: HTTP2RelayFront>: HTTP2FrameStreamOwner, UpstreamExchangeOwner {
    /// What every stream of a listener shares.
    package struct Environment: Sendable {
        var front: Front
        var connector: UpstreamConnector
        /// How long a finished stream may wait for the client to take its last frames or end
        /// its side, before it is reset.
        var idleTimeout: TimeAmount

        package init(front: Front, connector: UpstreamConnector, idleTimeout: TimeAmount) {
            self.front = front
            self.connector = connector
            self.idleTimeout = idleTimeout
        }
    }

    /// The peer stream's owner: its frames come back to the relay.
    private final class PeerSide: HTTP2FrameStreamOwner {
        let relay: HTTP2StreamRelay
        init(_ relay: HTTP2StreamRelay) { self.relay = relay }
        func streamReceived(_ payload: HTTP2Frame.FramePayload) { relay.peerReceived(payload) }
        func streamReadComplete() { relay.peerReadComplete() }
        func streamWritable() { relay.peerWritable() }
        func streamClosed(reason: HTTP2ErrorCode?) { relay.peerClosed(reason: reason) }
    }

    private let client: HTTP2FrameStream
    private let environment: Environment
    /// Set once the front admitted the stream.
    private var request: Front.Request?
    /// Set once the client's first HEADERS arrived (admitting until the front says where it goes).
    private var exchange: UpstreamExchange?
    private var peer: (any UpstreamStream)?
    /// The relay answered the stream itself, or the client went away before admission completed.
    private var over = false
    /// The request is a gRPC call: its response's `grpc-status` is counted.
    private var isGRPCCall = false

    package init(client: HTTP2FrameStream, environment: Environment) {
        self.client = client
        self.environment = environment
    }

    var connector: UpstreamConnector { environment.connector }
    var exchangeLogger: Logger { environment.front.logger }

    /// One exchange per relay.
    var exchangeGeneration: Int { 0 }

    func withExchange<Result>(_ generation: Int, _ body: (inout UpstreamExchange) -> Result) -> Result? {
        guard exchange != nil else { return nil }
        return body(&exchange!)
    }

    func makeStreamOwner() -> any HTTP2FrameStreamOwner { PeerSide(self) }

    // MARK: - Client side

    package func streamReceived(_ payload: HTTP2Frame.FramePayload) {
        guard !over else { return }
        let ends: Bool
        switch payload {
        case .headers(let headers):
            ends = headers.endStream
            if exchange == nil {
                start(headers.headers, endStream: ends)
                return
            }
        case .data(let data):
            ends = data.endStream
        default:
            return
        }
        // Held by the exchange until its stream is open (admission, pick and connect).
        guard let action = exchange?.requestReceived(payload, ends: ends) else { return }
        switch action {
        case .write(let armTimeout):
            peer?.write(payload)
            if let armTimeout { client.armDeadline(in: armTimeout) }
        case .hold, .drop:
            break
        }
    }

    package func streamReadComplete() {
        guard let peer, exchange?.phase == .streaming else { return }
        peer.flush()
        // The client's body flows while the peer takes it.
        if exchange?.requestEnded == false && !peer.isWritable { client.isReceiving = false }
    }

    package func streamWritable() {
        // The client takes the response again: the peer's credit flows.
        peer?.isReceiving = true
    }

    package func streamClosed(reason: HTTP2ErrorCode?) {
        // The client reset its stream, or its connection closed.
        over = true
        client.disarmDeadline()
        guard exchange?.clientClosed() == true, let peer else { return }
        self.peer = nil
        peer.detach()
        peer.reset()
    }

    package func streamDeadlinePassed() {
        guard let (error, pick) = exchange?.timedOut(now: .now) else { return }
        dropPeer()
        respond(error, pick: pick)
    }

    // MARK: - Admission and routing

    private func start(_ requestHeaders: HPACKHeaders, endStream: Bool) {
        var headers = requestHeaders
        HopByHopHeaders.remove(from: &headers)
        isGRPCCall = GRPCStatus.isCall(headers)
        exchange = UpstreamExchange(
            authority: nil, method: HTTPMethod(rawValue: headers.first(name: ":method") ?? ""), hasBody: !endStream,
            requestEnded: endStream)
        // The body waits for the peer stream: its credit is withheld until then.
        client.isReceiving = false
        environment.front.admit(headers, hasBody: !endStream, eventLoop: client.eventLoop) { result in
            self.admitted(result)
        }
    }

    private func admitted(_ result: Result<(Front.Request, authority: String), HTTP2RelayAnswer>) {
        guard !over else { return }
        switch result {
        case .failure(let answer):
            self.answer(answer)
        case .success(let (request, authority)):
            self.request = request
            exchange?.admitted(authority: authority)
            pickUpstream(on: client.eventLoop)
        }
    }

    func upstreamOpened(_ stream: any UpstreamStream, pick: Pick, held: [HTTP2Frame.FramePayload], armTimeout: TimeAmount?) {
        guard let request, let exchange else { return }
        peer = stream
        stream.write(.headers(.init(headers: environment.front.peerHeaders(for: request, pick: pick), endStream: !exchange.hasBody)))
        for payload in held { stream.write(payload) }
        stream.flush()
        if let armTimeout {
            client.armDeadline(in: armTimeout)
        } else if !exchange.requestEnded {
            client.isReceiving = stream.isWritable
        }
    }

    func upstreamUnavailable(_ error: ProxyError, pick: Pick?) {
        respond(error, pick: pick)
    }

    // MARK: - Peer side

    private func peerReceived(_ payload: HTTP2Frame.FramePayload) {
        guard exchange?.phase == .streaming else { return }
        switch payload {
        case .headers(let frame):
            guard exchange!.responseStarted else {
                guard let status = frame.headers.first(name: ":status").flatMap(Int.init) else {
                    peerFailed(ProxyError(.upstreamProtocol, "the peer's response has no valid :status"))
                    return
                }
                // Informational heads (100 Continue) are the peer proxy's business.
                guard case .forward = exchange!.responseHeadReceived(status: status) else { return }
                client.disarmDeadline()
                var headers = frame.headers
                HopByHopHeaders.remove(from: &headers)
                let head = HTTP2Frame.FramePayload.headers(.init(headers: headers, endStream: frame.endStream))
                if frame.endStream { finish(last: head) } else { client.write(head) }
                return
            }
            finish(last: .headers(.init(headers: frame.headers, endStream: true)))
        case .data(let frame):
            guard exchange!.responseStarted else {
                peerFailed(ProxyError(.upstreamProtocol, "the peer sent data before its response head"))
                return
            }
            if frame.endStream { finish(last: payload) } else { client.write(payload) }
        default:
            break
        }
    }

    private func peerReadComplete() {
        guard let peer else { return }
        client.flush()
        // The response's credit flows while the client keeps up.
        peer.isReceiving = client.isWritable
    }

    private func peerWritable() {
        guard exchange?.phase == .streaming, exchange?.requestEnded == false else { return }
        client.isReceiving = true
    }

    private func peerClosed(reason: HTTP2ErrorCode?) {
        peerFailed(
            ProxyError(
                .upstreamProtocol,
                "the peer closed the stream before the response ended (\(reason.map { "\($0)" } ?? "no error"))"))
    }

    /// The peer's stream closed or failed before the response ended.
    private func peerFailed(_ error: ProxyError) {
        guard let action = exchange?.streamFailed(error, now: .now) else { return }
        if case .ignore = action { return }
        client.disarmDeadline()
        dropPeer()
        switch action {
        case .retry(let failed):
            retryUpstream(after: error, pick: failed, on: client.eventLoop)
        case .respond(let error, let pick):
            respond(error, pick: pick)
        case .breakOff(let error, let pick):
            if let request { environment.front.brokeOff(request, pick: pick, error: error) }
            client.reset(.cancel)
        case .ignore:
            break
        }
    }

    private func dropPeer() {
        guard let peer else { return }
        self.peer = nil
        peer.detach()
        peer.reset()
    }

    /// The response ends with `last`, its frame with END_STREAM.
    private func finish(last: HTTP2Frame.FramePayload) {
        guard case .finish(let pick, let status, let latency, let resetStream) = exchange?.responseEnded(now: .now),
            let request, let peer
        else { return }
        // The exchange is finished before the write: when the client has ended its side, the
        // write closes the client's stream on the way, and that close is not the client going away.
        client.writeLast(last)
        client.disarmDeadline()
        environment.front.responded(
            request, pick: pick, status: status, latency: latency,
            grpcStatus: isGRPCCall ? GRPCStatus.ofResponse(httpStatus: status, ending: last) : nil)
        // The peer stream tells the relay no more (not even the end of this read): the
        // response's last frames are flushed now.
        client.flush()
        self.peer = nil
        peer.detach()
        // A request still being sent has no reader any more.
        if resetStream { peer.reset() }
        endClientStream()
    }

    // MARK: - Answers of the proxy's own

    private func respond(_ error: ProxyError, pick: Pick?) {
        if let request { environment.front.failed(request, error: error, pick: pick) }
        answer(HTTP2RelayAnswer(error))
    }

    /// Writes the proxy's own response and ends the exchange.
    private func answer(_ answer: HTTP2RelayAnswer) {
        over = true
        client.disarmDeadline()
        let error = ProxyError(answer.code, answer.message)
        if let grpcStatus = answer.grpcStatus {
            client.writeLast(ErrorResponse.grpcTrailersOnly(error, status: grpcStatus))
        } else {
            let body = ErrorResponse.body(answer.message)
            client.write(
                .headers(
                    .init(
                        headers: ErrorResponse.http2Headers(
                            status: answer.status, code: answer.code, bodyLength: body.readableBytes, headerValue: error.headerValue))))
            client.writeLast(.data(.init(data: .byteBuffer(body), endStream: true)))
        }
        client.flush()
        endClientStream()
    }

    /// The response is written (``HTTP2FrameStream/writeLast(_:)``): the client's stream closes
    /// once its last frame went out, reset with NO_ERROR if the client had not ended its side; one
    /// whose last frame does not go out within the idle timeout (a client that never opens its
    /// window) is reset. What the client still sends is taken and dropped.
    private func endClientStream() {
        client.detach()
        client.resetUnlessClosed(after: environment.idleTimeout)
    }
}

@available(*, unavailable)
extension HTTP2StreamRelay: Sendable {}
