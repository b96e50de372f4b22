import Logging
import NIOCore
import NIOHPACK
import NIOHTTP1
import NIOHTTP2

/// Serves one stream that an HTTP/2 client (h2c prior knowledge, gRPC) opened on the outbound
/// listener, on the connection's event loop: routes it by its `:authority` (or the original
/// destination of a captured connection) with ``OutboundStreamRoute``, opens a stream on the
/// loop's pooled mTLS connection to the picked peer, and relays frames both ways. No task, no
/// thread hop: both streams belong to frame-mode connections of the same loop.
///
/// - **Flow control.** Each side's DATA is taken only while the other side can take writes
///   (``HTTP2FrameStream/isReceiving``); credit withheld meanwhile holds the sender, at most one
///   window per stream. While the stream is routed, the client's body waits the same way.
/// - **Trailers** pass both ways, so `grpc-status` stays a trailer; a trailers-only response
///   stays one HEADERS frame.
/// - **Failures** before a response head are answered by the proxy (``OutboundErrorResponse``,
///   `starling-error`); a stream that broke before any answer is sent again elsewhere when its
///   request had no body and a method safe to repeat; a response that broke off after its head
///   resets the client's stream. The response head must come within the pick's timeout.
/// - **Plain endpoints** (outside the mesh) are handed to the task-based server with what was
///   received so far (`handOff`).
final class OutboundHTTP2StreamForwarder: HTTP2FrameStreamOwner {
    /// What every stream of the listener shares.
    struct Environment {
        var forwarder: OutboundForwarder
        /// How long a finished stream may wait for the client to take its last frames or end
        /// its side, before it is reset.
        var idleTimeout: TimeAmount
        var logger: Logger
    }

    /// The peer stream's owner: its frames come back to the forwarder.
    private final class PeerSide: HTTP2FrameStreamOwner {
        let forwarder: OutboundHTTP2StreamForwarder
        init(_ forwarder: OutboundHTTP2StreamForwarder) { self.forwarder = forwarder }
        func streamReceived(_ payload: HTTP2Frame.FramePayload) { forwarder.peerReceived(payload) }
        func streamReadComplete() { forwarder.peerReadComplete() }
        func streamWritable() { forwarder.peerWritable() }
        func streamClosed(reason: HTTP2ErrorCode?) { forwarder.peerClosed(reason: reason) }
    }

    private let client: HTTP2FrameStream
    private let environment: Environment
    private let originalDestination: String?
    /// Serves the stream in a task instead (plain endpoints), replaying what it is given.
    private let handOff: (HTTP2FrameStream, _ received: [HTTP2Frame.FramePayload]) -> Void
    /// Set by the first HEADERS.
    private var request: OutboundRequest?
    /// The client's first HEADERS as received, replayed by a hand-off.
    private var first: HTTP2Frame.FramePayload?
    /// Whether the request may be sent again after its stream broke before any answer.
    private var repeatable = false
    /// The client's body and trailers received while the stream is routed, in order.
    private var held: [HTTP2Frame.FramePayload] = []
    private var requestEnded = false
    private var route: OutboundStreamRoute?
    private var peer: HTTP2FrameStream?
    private var pick: Pick?
    private var started = ContinuousClock.now
    /// The response's status, once its head went to the client.
    private var status: Int?
    private var timeout: Scheduled<Void>?
    /// The exchange is over (answered, broken off, or the client went away).
    private var done = false

    init(
        client: HTTP2FrameStream, originalDestination: String?, environment: Environment,
        handOff: @escaping (HTTP2FrameStream, _ received: [HTTP2Frame.FramePayload]) -> Void
    ) {
        self.client = client
        self.originalDestination = originalDestination
        self.environment = environment
        self.handOff = handOff
    }

    // MARK: - Client side

    func streamReceived(_ payload: HTTP2Frame.FramePayload) {
        guard !done else { return }
        let ends: Bool
        switch payload {
        case .headers(let headers):
            ends = headers.endStream
            if request == nil {
                requestEnded = ends
                start(headers.headers, frame: payload)
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
        timeout?.cancel()
        route?.cancel()
        if let peer {
            peer.detach()
            peer.reset()
        }
        pick?.complete(.abandoned)
    }

    // MARK: - Routing

    private func start(_ requestHeaders: HPACKHeaders, frame: HTTP2Frame.FramePayload) {
        var headers = requestHeaders
        HopByHopHeaders.remove(from: &headers)
        let method = headers.first(name: ":method") ?? ""
        guard let authority = headers.first(name: ":authority") ?? headers.first(name: "host"),
            let routing = HostPort.canonical(authority, defaultPort: 80)
        else {
            answer(ProxyError(.badRequest, "the request has no usable :authority"))
            return
        }
        request = OutboundRequest(
            headers: headers, routingAuthority: originalDestination ?? routing, authority: authority, method: method,
            originalProtocol: nil, hasBody: !requestEnded)
        first = frame
        repeatable = requestEnded && OutboundStreamRoute.repeatable(HTTPMethod(rawValue: method))
        // The body waits for the peer stream: its credit is withheld until then.
        client.isReceiving = false
        let route = OutboundStreamRoute(
            forwarder: environment.forwarder, authority: originalDestination ?? routing, eventLoop: client.eventLoop)
        self.route = route
        route.start(owner: PeerSide(self), routed)
    }

    private func routed(_ outcome: OutboundStreamRoute.Outcome) {
        guard !done, let request else { return }
        switch outcome {
        case .failed(let error, let pick):
            respond(error, pick: pick)
        case .plain(let pick):
            pick.complete(.abandoned)
            done = true
            route = nil
            let received = (first.map { [$0] } ?? []) + held
            first = nil
            held = []
            handOff(client, received)
        case .opened(let stream, let pick, let started):
            self.peer = stream
            self.pick = pick
            self.started = started
            stream.write(
                .headers(.init(headers: environment.forwarder.meshHeaders(for: request, pick: pick), endStream: !request.hasBody)))
            if request.hasBody {
                for payload in held { stream.write(payload) }
            }
            held = []
            stream.flush()
            let bound = NIOLoopBound(self, eventLoop: client.eventLoop)
            timeout = client.eventLoop.scheduleTask(in: TimeAmount(pick.timeout)) { bound.value.timedOut() }
            if !requestEnded { client.isReceiving = stream.isWritable }
        }
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
                timeout?.cancel()
                timeout = nil
                status = code
                var headers = frame.headers
                HopByHopHeaders.remove(from: &headers)
                client.write(.headers(.init(headers: headers, endStream: frame.endStream)))
            } else {
                client.write(.headers(.init(headers: frame.headers, endStream: true)))
            }
            if frame.endStream { finish() }
        case .data(let frame):
            guard status != nil else {
                peerFailed(ProxyError(.upstreamProtocol, "the peer sent data before its response head"))
                return
            }
            client.write(payload)
            if frame.endStream { finish() }
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
        timeout?.cancel()
        timeout = nil
        peer.detach()
        peer.reset()
        self.peer = nil
        self.pick = nil
        if status == nil {
            // Nothing answered and nothing of the request is lost: the peer went away mid-request
            // (a gateway or proxy that died), so another endpoint is tried.
            if repeatable, let route {
                if route.retry(after: error, pick: pick, started: started, routed) { return }
            } else {
                pick.complete(.failure(latency: ContinuousClock.now - started))
            }
            respond(error, pick: pick)
            return
        }
        pick.complete(.failure(latency: ContinuousClock.now - started))
        environment.logger.warning(
            "response broke off",
            metadata: ["authority": "\(request.authority)", "endpoint": "\(pick.endpoint)", "error": "\(error)"])
        done = true
        client.reset(.cancel)
    }

    private func timedOut() {
        guard !done, status == nil, let peer, let pick else { return }
        timeout = nil
        peer.detach()
        peer.reset()
        self.peer = nil
        self.pick = nil
        pick.complete(.failure(latency: ContinuousClock.now - started))
        respond(ProxyError(.timeout, "no response within \(pick.timeout)"), pick: pick)
    }

    /// The response ended (its last frame went to the client).
    private func finish() {
        guard let request, let pick, let status, let peer else { return }
        done = true
        timeout?.cancel()
        timeout = nil
        let latency = ContinuousClock.now - started
        // A 5xx from the peer proxy itself (it names its error) counts against the endpoint.
        pick.complete(status >= 500 ? .failure(latency: latency) : .success(latency: latency))
        environment.forwarder.record(request, pick: pick, status: status, latency: latency)
        if environment.logger.logLevel <= .debug {
            environment.logger.debug(
                "forwarded",
                metadata: [
                    "authority": "\(request.authority)", "endpoint": "\(pick.endpoint)", "status": "\(status)",
                    "latency": "\(latency)",
                ])
        }
        // The peer stream tells the forwarder no more (not even the end of this read): the
        // response's last frames are flushed now.
        client.flush()
        peer.detach()
        // A request still being sent has no reader any more.
        if !requestEnded { peer.reset() }
        endClientStream()
    }

    // MARK: - Answers of the proxy's own

    private func respond(_ error: ProxyError, pick: Pick?) {
        if let request { environment.forwarder.failed(request, error: error, pick: pick, logger: environment.logger) }
        answer(error)
    }

    /// Writes the proxy's error response and ends the exchange.
    private func answer(_ error: ProxyError) {
        done = true
        timeout?.cancel()
        timeout = nil
        route?.cancel()
        client.write(.headers(.init(headers: OutboundErrorResponse.http2Headers(error))))
        client.write(.data(.init(data: .byteBuffer(OutboundErrorResponse.body(error)), endStream: true)))
        client.flush()
        endClientStream()
    }

    /// The response is out: the client's stream closes once its last frames went out and the
    /// client ended its side; one that does not within the idle timeout is reset. What the client
    /// still sends is taken and dropped.
    private func endClientStream() {
        route = nil
        first = nil
        held = []
        client.detach()
        client.resetUnlessClosed(after: environment.idleTimeout)
    }
}

@available(*, unavailable)
extension OutboundHTTP2StreamForwarder: Sendable {}
