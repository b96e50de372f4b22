import NIOCore
import NIOHTTP1
import NIOHTTP2

/// The life of one request that a front end forwards to an upstream stream — the outbound's
/// HTTP/1 and h2c/gRPC front ends, and the gateway — as a state machine that does no I/O, in the
/// manner of ``InboundHTTP1ForwardStateMachine``: the front end tells it what happened and performs
/// the action it returns.
///
/// pick → connect and open a stream → send the request (what arrived meanwhile was held) → await
/// the response head, within the pick's timeout counted from the request's end (as Envoy's route
/// timeout: a client-streaming call may upload for longer) → relay → finish.
///
/// - **Retries.** A connect that failed is tried on another endpoint as ``ConnectAttempts``
///   allows (again on the failed ones after a backoff when none is left and the endpoint could
///   not be reached at all); so is a stream that broke before any answer, when nothing of the
///   request is lost (no body) and its method is safe to repeat. When nothing is left to try, the last failure is
///   answered.
/// - **Reports.** Every pick's outcome goes to the balancer here, exactly once: a success, a
///   failure (a failed connect, a broken stream, a timeout, or a 5xx, which a peer proxy answers
///   for its own errors), or abandoned (the client went away).
///
/// A struct with stored fields rather than payload-carrying cases: a front end reads it on every
/// frame, in place, without copying what it holds.
struct UpstreamExchange {
    typealias Payload = HTTP2Frame.FramePayload

    enum Phase: Equatable {
        /// The front end is still deciding whether and where the request goes (the gateway's and
        /// the h2c front end's admission); the request's body is held meanwhile.
        case admitting
        /// Waiting for the picker (first, and again before each retry).
        case picking
        /// Connecting to the pick's endpoint and opening a stream there.
        case connecting
        /// The stream is open: the request goes out, the response comes back.
        case streaming
        /// Answered, broken off, or abandoned: whatever still arrives is dropped.
        case finished
    }

    /// Where the request is routed: the service authority the picker is asked for (empty while
    /// admitting).
    private(set) var authority: String
    /// Whether the request has a body (its head does not end it).
    let hasBody: Bool
    /// Whether the request may be sent again after its stream broke before any answer: it has no
    /// body, and its method is safe to repeat.
    let repeatable: Bool
    private(set) var phase: Phase
    /// Whether the client has sent all of the request.
    private(set) var requestEnded: Bool
    /// The current attempt's pick; nil once its outcome has been reported.
    private(set) var pick: Pick?
    /// The response's status, once its (final) head arrived.
    private(set) var status: Int?
    /// Body and trailers that arrived before the stream was open, in order.
    private var held: [Payload] = []
    private var attemptStarted: ContinuousClock.Instant?
    private var attempts: ConnectAttempts?
    /// The last connect or stream failure, answered when no other endpoint is left to try.
    private var lastFailure: ProxyError?

    /// - Parameters:
    ///   - authority: where the request goes; nil while the front end still admits it
    ///     (``admitted(authority:)`` follows).
    ///   - requestEnded: whether the request is complete already (an HTTP/2 HEADERS frame that
    ///     ends the stream; an HTTP/1 request's end arrives as its own part).
    init(authority: String?, method: HTTPMethod, hasBody: Bool, requestEnded: Bool) {
        self.authority = authority ?? ""
        self.phase = authority == nil ? .admitting : .picking
        self.hasBody = hasBody
        self.repeatable = !hasBody && Self.repeatable(method)
        self.requestEnded = requestEnded
    }

    /// Methods a client may send twice with the effect of once (RFC 9110 §9.2.2).
    static func repeatable(_ method: HTTPMethod) -> Bool {
        switch method {
        case .GET, .HEAD, .OPTIONS, .TRACE, .PUT, .DELETE: true
        default: false
        }
    }

    /// Parts held until the stream opens (a front end stops reading when too many wait).
    var heldCount: Int { held.count }

    /// Whether the response head has arrived.
    var responseStarted: Bool { status != nil }

    /// Endpoints a pick should avoid: those this request failed on.
    var avoided: [Endpoint] { attempts?.avoided ?? [] }

    /// The front end admitted the request to `authority`: pick an endpoint next.
    mutating func admitted(authority: String) {
        guard phase == .admitting else { return }
        self.authority = authority
        phase = .picking
    }

    // MARK: - Pick and connect

    enum PickedAction {
        /// Connect to the pick's endpoint and open a stream, within `timeout`; then
        /// ``streamOpened()`` or ``connectFailed(_:now:)``.
        case connect(Pick, timeout: Duration)
        /// No other endpoint is left: pick again (the failed ones included) after `wait`.
        case pickAfter(Duration)
        /// Nothing to try: answer `error` (the pick it belongs to, when one failed).
        case respond(ProxyError, Pick?)
        /// The exchange is over: nothing to do (an unwanted pick was reported abandoned).
        case ignore
    }

    mutating func picked(_ result: Result<Pick, ProxyError>, now: ContinuousClock.Instant) -> PickedAction {
        guard phase == .picking else {
            if case .success(let pick) = result { pick.complete(.abandoned) }
            return .ignore
        }
        switch result {
        case .failure(let error):
            // A re-pick that found nothing else to try after a refused (or timed-out) connect
            // waits and tries the failed endpoints again while the backoffs allow
            // (``ConnectAttempts/retryAfterBackoff(now:)``); nothing else is waited for (a peer
            // that failed verification, ``ProxyError/transient``). Then it answers with the
            // failure before it.
            if lastFailure?.transient == true, let wait = attempts?.retryAfterBackoff(now: now) {
                return .pickAfter(wait)
            }
            phase = .finished
            return .respond(lastFailure ?? error, nil)
        case .success(let pick):
            self.pick = pick
            attemptStarted = now
            phase = .connecting
            return .connect(pick, timeout: attempts?.remaining(now: now) ?? pick.timeout)
        }
    }

    enum RetryAction {
        /// Pick again, avoiding ``avoided``; then ``picked(_:now:)``.
        case pick
        /// Answer `error`; its pick's failure has been reported.
        case respond(ProxyError, Pick)
        case ignore
    }

    mutating func connectFailed(_ error: ProxyError, now: ContinuousClock.Instant) -> RetryAction {
        guard phase == .connecting, let pick, let attemptStarted else { return .ignore }
        self.pick = nil
        lastFailure = error
        guard ConnectAttempts.record(&attempts, failedConnectOf: pick, started: attemptStarted, now: now) else {
            phase = .finished
            return .respond(error, pick)
        }
        phase = .picking
        return .pick
    }

    enum OpenedAction {
        /// Write the request head (ending the stream unless ``hasBody``), then `held`, and flush;
        /// arm the response timeout when given.
        case send(Pick, held: [Payload], armTimeout: TimeAmount?)
        /// The exchange is over: detach and reset the stream (its pick was reported abandoned).
        case discard
    }

    mutating func streamOpened() -> OpenedAction {
        guard phase == .connecting, let pick else { return .discard }
        phase = .streaming
        let sent = held
        held = []
        return .send(pick, held: sent, armTimeout: requestEnded ? TimeAmount(pick.timeout) : nil)
    }

    // MARK: - Request

    enum RequestAction {
        /// Wait for the stream (the part is held).
        case hold
        /// Write the part to the stream; arm the response timeout when given.
        case write(armTimeout: TimeAmount?)
        /// The exchange is over, or the request had ended: drop the part.
        case drop
    }

    /// A part of the request after its head: body or trailers (nil for an HTTP/1 end that
    /// carries nothing to send); `ends` when it is the last.
    mutating func requestReceived(_ payload: Payload?, ends: Bool) -> RequestAction {
        guard !requestEnded, phase != .finished else { return .drop }
        if ends { requestEnded = true }
        switch phase {
        case .admitting, .picking, .connecting:
            if hasBody, let payload { held.append(payload) }
            return .hold
        case .streaming:
            return .write(armTimeout: ends && status == nil ? pick.map { TimeAmount($0.timeout) } : nil)
        case .finished:
            return .drop
        }
    }

    // MARK: - Response

    enum HeadAction {
        /// An informational head (100 Continue): not relayed, the final one follows.
        case interim
        /// Relay the head; the response timeout is over.
        case forward
        case drop
    }

    mutating func responseHeadReceived(status: Int) -> HeadAction {
        guard phase == .streaming, self.status == nil else { return .drop }
        if (100..<200).contains(status) { return .interim }
        self.status = status
        return .forward
    }

    enum FinishAction {
        /// The response is out in full: record it (the pick's outcome is reported); detach the
        /// stream, and reset it when the client was still sending (nobody reads the rest).
        case finish(Pick, status: Int, latency: Duration, resetStream: Bool)
        case ignore
    }

    mutating func responseEnded(now: ContinuousClock.Instant) -> FinishAction {
        guard phase == .streaming, let pick, let status, let attemptStarted else { return .ignore }
        phase = .finished
        self.pick = nil
        let latency = now - attemptStarted
        // A 5xx from the peer proxy itself (it names its error) counts against the endpoint.
        pick.complete(status >= 500 ? .failure(latency: latency) : .success(latency: latency))
        return .finish(pick, status: status, latency: latency, resetStream: !requestEnded)
    }

    enum FailureAction {
        /// Send the request again elsewhere: pick again, avoiding ``avoided`` (the failed pick
        /// has been reported).
        case retry(after: Pick)
        /// Nothing was answered yet: answer `error`.
        case respond(ProxyError, Pick)
        /// The response broke off after its head went out: reset the client's side.
        case breakOff(ProxyError, Pick)
        case ignore
    }

    /// The stream closed or failed before the response ended (the front end detaches and resets
    /// it, whatever the action).
    mutating func streamFailed(_ error: ProxyError, now: ContinuousClock.Instant) -> FailureAction {
        guard phase == .streaming, let pick, let attemptStarted else { return .ignore }
        self.pick = nil
        guard status == nil else {
            phase = .finished
            pick.complete(.failure(latency: now - attemptStarted))
            return .breakOff(error, pick)
        }
        // Nothing answered and nothing of the request is lost: the peer went away mid-request (a
        // gateway or proxy that died), so another endpoint is tried.
        if repeatable {
            lastFailure = error
            if ConnectAttempts.record(&attempts, failedConnectOf: pick, started: attemptStarted, now: now) {
                phase = .picking
                return .retry(after: pick)
            }
        } else {
            pick.complete(.failure(latency: now - attemptStarted))
        }
        phase = .finished
        return .respond(error, pick)
    }

    /// No response head within the pick's timeout: answer the timeout (the front end detaches and
    /// resets the stream); nil when the head came meanwhile or the exchange is over.
    mutating func timedOut(now: ContinuousClock.Instant) -> (ProxyError, Pick)? {
        guard phase == .streaming, status == nil, let pick, let attemptStarted else { return nil }
        phase = .finished
        self.pick = nil
        pick.complete(.failure(latency: now - attemptStarted))
        return (ProxyError(.timeout, "no response within \(pick.timeout)"), pick)
    }

    /// The client went away (its stream reset, its connection closed). True when a stream is open
    /// and must be reset.
    mutating func clientClosed() -> Bool {
        let streaming = phase == .streaming
        if phase != .finished, let pick { pick.complete(.abandoned) }
        phase = .finished
        pick = nil
        held = []
        return streaming
    }
}
