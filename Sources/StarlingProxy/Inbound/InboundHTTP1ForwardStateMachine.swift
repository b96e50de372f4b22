import NIOHTTP1

/// The life of one request forwarded from an HTTP/2 stream to an HTTP/1.1 application connection.
///
/// Request parts that arrive while the connection is being set up are held (at most one stream
/// window: the stream's credit is withheld until the connection is there, so HTTP/2 flow control
/// bounds them). The exchange ends when the response has ended — the connection goes back
/// to the pool only when the request had been sent completely too and the response allows it.
struct InboundHTTP1ForwardStateMachine {
    enum State {
        case idle
        case connecting(held: [HTTPServerRequestPart])
        case forwarding(requestDone: Bool, responseStarted: Bool)
        case done
    }

    /// What becomes of the application connection when an exchange ends.
    enum Disposal: Equatable {
        case reuse
        case close
    }

    private(set) var state: State = .idle

    // MARK: - Request side

    enum RequestAction {
        /// Lease a connection to the application.
        case connect
        /// Hold the part until the connection is there.
        case hold
        case forward(HTTPServerRequestPart)
        /// The exchange is over (or the request is malformed); drop it.
        case drop
    }

    mutating func requestReceived(_ part: HTTPServerRequestPart) -> RequestAction {
        switch state {
        case .idle:
            guard case .head = part else { return .drop }
            state = .connecting(held: [part])
            return .connect
        case .connecting(var held):
            held.append(part)
            state = .connecting(held: held)
            return .hold
        case .forwarding(let requestDone, let responseStarted):
            guard !requestDone else { return .drop }
            if case .end = part {
                state = .forwarding(requestDone: true, responseStarted: responseStarted)
            }
            return .forward(part)
        case .done:
            return .drop
        }
    }

    /// Whether to ask the stream for more of the request body.
    var wantsRequestBody: Bool {
        if case .forwarding(requestDone: false, _) = state { return true }
        return false
    }

    /// Whether the application's response is still being relayed.
    var wantsResponse: Bool {
        if case .forwarding = state { return true }
        return false
    }

    // MARK: - Connection

    enum ConnectedAction {
        /// Send the held parts; read more of the request unless it is complete.
        case send([HTTPServerRequestPart], readMore: Bool)
        /// The stream went away meanwhile: close the new connection.
        case discard
    }

    mutating func connected() -> ConnectedAction {
        guard case .connecting(let held) = state else { return .discard }
        let requestDone = held.contains { if case .end = $0 { true } else { false } }
        state = .forwarding(requestDone: requestDone, responseStarted: false)
        return .send(held, readMore: !requestDone)
    }

    /// Connecting failed: answer with an error if the stream still waits.
    mutating func connectFailed() -> Bool {
        guard case .connecting = state else { return false }
        state = .done
        return true
    }

    // MARK: - Response side

    enum ResponseAction {
        case forward(HTTPClientResponsePart)
        /// Forward the end; then dispose of the connection, and reset the stream if the caller
        /// is still sending (the application answered before reading the whole request).
        case finish(HTTPClientResponsePart, Disposal, resetStream: Bool)
        case drop
    }

    mutating func responseReceived(_ part: HTTPClientResponsePart, keepAlive: Bool) -> ResponseAction {
        guard case .forwarding(let requestDone, _) = state else { return .drop }
        switch part {
        case .head(let head) where head.status.code < 200:
            // Interim responses are not relayed; the final one follows.
            return .drop
        case .head, .body:
            state = .forwarding(requestDone: requestDone, responseStarted: true)
            return .forward(part)
        case .end:
            state = .done
            return .finish(part, requestDone && keepAlive ? .reuse : .close, resetStream: !requestDone)
        }
    }

    enum FailureAction: Equatable {
        /// Nothing was sent back yet: answer with a proxy error.
        case respondWithError
        /// A response was under way: reset the stream.
        case resetStream
        /// Already over.
        case none
    }

    /// The application connection closed or failed mid-exchange.
    mutating func appFailed() -> FailureAction {
        switch state {
        case .forwarding(_, let responseStarted):
            state = .done
            return responseStarted ? .resetStream : .respondWithError
        case .connecting:
            // The lease future reports connect failures.
            return .none
        case .idle, .done:
            return .none
        }
    }

    /// The caller's stream closed. True when an application connection is in use and must be
    /// closed (it may hold half an exchange).
    mutating func streamClosed() -> Bool {
        switch state {
        case .forwarding:
            state = .done
            return true
        case .idle, .connecting, .done:
            state = .done
            return false
        }
    }
}
