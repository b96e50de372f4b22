import Logging
import NIOCore
import NIOHPACK
import NIOHTTP1
import NIOHTTP2

/// What an HTTP/2 front end decides for the streams an ``HTTP2StreamRelay`` serves: which
/// streams are admitted and where they go, the headers the peer gets, and how outcomes are logged
/// and counted. The outbound's h2c/gRPC front end (``OutboundHTTP2Front``) and the gateway
/// (``GatewayHTTP2Front``) are the two.
protocol HTTP2RelayFront: Sendable {
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
    /// The peer's response went to the client in full.
    func responded(_ request: Request, pick: Pick, status: Int, latency: Duration)
    /// The relay answers `error` itself: log and count it.
    func failed(_ request: Request, error: ProxyError, pick: Pick?)
    /// The response broke off after its head went out: log it.
    func brokeOff(_ request: Request, pick: Pick, error: ProxyError)
}

/// An answer of the proxy's own instead of the peer's: status, `starling-error` code, message.
struct HTTP2RelayAnswer: Error {
    var status: Int
    var code: ProxyError.Code
    var message: String

    init(_ error: ProxyError) {
        self.init(status: error.httpStatus, code: error.code, message: error.message)
    }

    init(status: Int, code: ProxyError.Code, message: String) {
        self.status = status
        self.code = code
        self.message = message
    }
}

/// Serves one stream a client opened on an HTTP/2 front end, on the connection's event loop: the
/// front admits it, ``PeerStreamRoute`` picks an endpoint and opens an upstream stream on the
/// loop's pooled connection to it (HTTP/2 over mTLS to a peer, or HTTP/1.1 to a plain endpoint
/// where `plainConnections` allows them), and frames are relayed both ways. No task, no thread
/// hop: both sides live on the same loop.
///
/// - **Flow control.** Each side's DATA is taken only while the other side can take writes
///   (``HTTP2FrameStream/isReceiving``); credit withheld meanwhile holds the sender, at most one
///   window per stream. While the stream is admitted and routed, the client's body waits the
///   same way.
/// - **Trailers** pass both ways, so `grpc-status` stays a trailer; a trailers-only response
///   stays one HEADERS frame.
/// - **Failures** before a response head are answered by the proxy (``ErrorResponse``,
///   `starling-error`); a stream that broke before any answer is sent again elsewhere when its
///   request had no body and a method safe to repeat; a response that broke off after its head
///   resets the client's stream. The response head must come within the pick's timeout, counted
///   from the end of the request (as Envoy's route timeout): a client-streaming gRPC call may
///   upload for longer.
final class HTTP2StreamRelay<Front: HTTP2RelayFront>: HTTP2FrameStreamOwner {
    /// What every stream of a listener shares.
    struct Environment: Sendable {
        var front: Front
        var picker: any EndpointPicker
        var pool: PeerConnectionPool
        /// Connections to plain endpoints (outside the mesh); nil where they are refused (the gateway).
        var plainConnections: HTTP1AppConnectionPool?
        /// How long a finished stream may wait for the client to take its last frames or end
        /// its side, before it is reset.
        var idleTimeout: TimeAmount
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
    /// Whether the client's first HEADERS has arrived.
    private var started = false
    /// Set once the front admitted the stream.
    private var request: Front.Request?
    private var hasBody = false
    /// Whether the request may be sent again after its stream broke before any answer.
    private var repeatable = false
    /// The client's body and trailers received before the peer stream opened, in order.
    private var held: [HTTP2Frame.FramePayload] = []
    private var requestEnded = false
    private var route: PeerStreamRoute?
    private var peer: (any UpstreamStream)?
    private var pick: Pick?
    private var pickStarted = ContinuousClock.now
    /// The response's status, once its head went to the client.
    private var status: Int?
    /// Whether the response timeout is armed (a deadline of the client's stream).
    private var timeoutArmed = false
    /// The exchange is over (answered, broken off, or the client went away).
    private var done = false

    init(client: HTTP2FrameStream, environment: Environment) {
        self.client = client
        self.environment = environment
    }

    // MARK: - Client side

    func streamReceived(_ payload: HTTP2Frame.FramePayload) {
        guard !done else { return }
        let ends: Bool
        switch payload {
        case .headers(let headers):
            ends = headers.endStream
            if !started {
                requestEnded = ends
                start(headers.headers)
                return
            }
        case .data(let data):
            ends = data.endStream
        default:
            return
        }
        if ends { requestEnded = true }
        if let peer {
            peer.write(payload)
            if ends && status == nil { armTimeout() }
        } else {
            held.append(payload)
        }
    }

    func streamReadComplete() {
        guard !done, let peer else { return }
        peer.flush()
        // The client's body flows while the peer takes it.
        if !requestEnded && !peer.isWritable { client.isReceiving = false }
    }

    func streamWritable() {
        // The client takes the response again: the peer's credit flows.
        peer?.isReceiving = true
    }

    func streamClosed(reason: HTTP2ErrorCode?) {
        // The client reset its stream, or its connection closed.
        guard !done else { return }
        done = true
        disarmTimeout()
        route?.cancel()
        if let peer {
            peer.detach()
            peer.reset()
        }
        pick?.complete(.abandoned)
    }

    // MARK: - Admission and routing

    private func start(_ requestHeaders: HPACKHeaders) {
        started = true
        hasBody = !requestEnded
        var headers = requestHeaders
        HopByHopHeaders.remove(from: &headers)
        repeatable =
            !hasBody && PeerStreamRoute.repeatable(HTTPMethod(rawValue: headers.first(name: ":method") ?? ""))
        // The body waits for the peer stream: its credit is withheld until then.
        client.isReceiving = false
        environment.front.admit(headers, hasBody: hasBody, eventLoop: client.eventLoop) { result in
            self.admitted(result)
        }
    }

    private func admitted(_ result: Result<(Front.Request, authority: String), HTTP2RelayAnswer>) {
        guard !done else { return }
        switch result {
        case .failure(let answer):
            self.answer(answer)
        case .success(let (request, authority)):
            self.request = request
            let route = PeerStreamRoute(
                picker: environment.picker, pool: environment.pool, plainConnections: environment.plainConnections,
                logger: environment.front.logger, authority: authority, eventLoop: client.eventLoop)
            self.route = route
            route.start(owner: PeerSide(self), routed)
        }
    }

    private func routed(_ outcome: PeerStreamRoute.Outcome) {
        guard !done, let request else { return }
        switch outcome {
        case .failed(let error, let pick):
            respond(error, pick: pick)
        case .opened(let stream, let pick, let started):
            self.peer = stream
            self.pick = pick
            self.pickStarted = started
            stream.write(.headers(.init(headers: environment.front.peerHeaders(for: request, pick: pick), endStream: !hasBody)))
            if hasBody {
                for payload in held { stream.write(payload) }
            }
            held = []
            stream.flush()
            if requestEnded {
                armTimeout()
            } else {
                client.isReceiving = stream.isWritable
            }
        }
    }

    /// The response head must come within the pick's timeout once the request has ended.
    private func armTimeout() {
        guard !timeoutArmed, let pick else { return }
        timeoutArmed = true
        client.armDeadline(in: TimeAmount(pick.timeout))
    }

    private func disarmTimeout() {
        guard timeoutArmed else { return }
        timeoutArmed = false
        client.disarmDeadline()
    }

    func streamDeadlinePassed() {
        timeoutArmed = false
        timedOut()
    }

    // MARK: - Peer side

    private func peerReceived(_ payload: HTTP2Frame.FramePayload) {
        guard !done else { return }
        switch payload {
        case .headers(let frame):
            if status == nil {
                guard let code = frame.headers.first(name: ":status").flatMap(Int.init) else {
                    peerFailed(ProxyError(.upstreamProtocol, "the peer's response has no valid :status"))
                    return
                }
                // Informational heads (100 Continue) are the peer proxy's business.
                if (100..<200).contains(code) { return }
                disarmTimeout()
                status = code
                var headers = frame.headers
                HopByHopHeaders.remove(from: &headers)
                let head = HTTP2Frame.FramePayload.headers(.init(headers: headers, endStream: frame.endStream))
                if frame.endStream { finish(last: head) } else { client.write(head) }
            } else {
                finish(last: .headers(.init(headers: frame.headers, endStream: true)))
            }
        case .data(let frame):
            guard status != nil else {
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
        if !done { peer.isReceiving = client.isWritable }
    }

    private func peerWritable() {
        guard !done, !requestEnded else { return }
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
        guard !done, let peer, let pick, let request else { return }
        disarmTimeout()
        peer.detach()
        peer.reset()
        self.peer = nil
        self.pick = nil
        if status == nil {
            // Nothing answered and nothing of the request is lost: the peer went away mid-request
            // (a gateway or proxy that died), so another endpoint is tried.
            if repeatable, let route {
                if route.retry(after: error, pick: pick, started: pickStarted, routed) { return }
            } else {
                pick.complete(.failure(latency: ContinuousClock.now - pickStarted))
            }
            respond(error, pick: pick)
            return
        }
        pick.complete(.failure(latency: ContinuousClock.now - pickStarted))
        environment.front.brokeOff(request, pick: pick, error: error)
        done = true
        // The route holds the peer side, which holds the relay.
        route = nil
        client.reset(.cancel)
    }

    private func timedOut() {
        guard !done, status == nil, let peer, let pick else { return }
        peer.detach()
        peer.reset()
        self.peer = nil
        self.pick = nil
        pick.complete(.failure(latency: ContinuousClock.now - pickStarted))
        respond(ProxyError(.timeout, "no response within \(pick.timeout)"), pick: pick)
    }

    /// The response ends with `last`, its frame with END_STREAM.
    private func finish(last: HTTP2Frame.FramePayload) {
        guard let request, let pick, let status, let peer else { return }
        // Done before the write: when the client has ended its side, the write closes the client's
        // stream on the way, and its close must not count as the client going away.
        done = true
        client.write(last)
        disarmTimeout()
        let latency = ContinuousClock.now - pickStarted
        // A 5xx from the peer proxy itself (it names its error) counts against the endpoint.
        pick.complete(status >= 500 ? .failure(latency: latency) : .success(latency: latency))
        environment.front.responded(request, pick: pick, status: status, latency: latency)
        // The peer stream tells the relay no more (not even the end of this read): the
        // response's last frames are flushed now.
        client.flush()
        peer.detach()
        // A request still being sent has no reader any more.
        if !requestEnded { peer.reset() }
        endClientStream()
    }

    // MARK: - Answers of the proxy's own

    private func respond(_ error: ProxyError, pick: Pick?) {
        if let request { environment.front.failed(request, error: error, pick: pick) }
        answer(HTTP2RelayAnswer(error))
    }

    /// Writes the proxy's own response and ends the exchange.
    private func answer(_ answer: HTTP2RelayAnswer) {
        done = true
        disarmTimeout()
        route?.cancel()
        let body = ErrorResponse.body(answer.message)
        client.write(
            .headers(
                .init(headers: ErrorResponse.http2Headers(status: answer.status, code: answer.code, bodyLength: body.readableBytes))))
        client.write(.data(.init(data: .byteBuffer(body), endStream: true)))
        client.flush()
        endClientStream()
    }

    /// The response is out: the client's stream closes once its last frames went out and the
    /// client ended its side; one that does not within the idle timeout is reset. What the client
    /// still sends is taken and dropped.
    private func endClientStream() {
        route = nil
        held = []
        client.detach()
        client.resetUnlessClosed(after: environment.idleTimeout)
    }
}

@available(*, unavailable)
extension HTTP2StreamRelay: Sendable {}
