import Logging
import NIOCore
import NIOHTTP1

/// Routes one request to an upstream stream (the outbound's HTTP/1 and HTTP/2 front ends, the
/// gateway), on the client connection's event loop: pick (from what discovery already knows, or
/// waiting for it off the loop for an authority's first request) → connect through the pool
/// (the loop's own connection to the endpoint) → open a stream whose owner is the caller. A
/// meshed endpoint gets a stream on its pooled mTLS HTTP/2 connection; a plain one (outside the
/// mesh) an HTTP/1.1 exchange on a pooled connection (``PlainHTTP1Stream``), where the caller
/// allows plain endpoints at all.
///
/// A connect that fails, or a stream that breaks before anything answered, is tried again on
/// another endpoint as ``ConnectAttempts`` allows; when none is left the outcome is the last
/// connect error. The caller reports the opened stream's outcome to its pick.
final class PeerStreamRoute {
    enum Outcome {
        /// The stream is open; its frames go to the owner given to ``start(owner:_:)``.
        case opened(any UpstreamStream, Pick, started: ContinuousClock.Instant)
        /// Nothing could be opened: the error to answer, and the pick it belongs to (nil when
        /// picking itself failed). Every failed pick has been reported.
        case failed(ProxyError, Pick?)
    }

    private let picker: any EndpointPicker
    private let pool: PeerConnectionPool
    /// Connections to plain endpoints; nil where only meshed ones may be used (the gateway).
    private let plainConnections: HTTP1AppConnectionPool?
    private let logger: Logger
    private let authority: String
    private let eventLoop: any EventLoop
    private var attempts: ConnectAttempts?
    /// The last connect failure, answered when no other endpoint is left to try.
    private var connectError: ProxyError?
    private var owner: (any HTTP2FrameStreamOwner)?
    /// Cleared when the outcome is delivered or the route cancelled: a late callback finds nil.
    private var completion: ((Outcome) -> Void)?

    init(
        picker: any EndpointPicker, pool: PeerConnectionPool, plainConnections: HTTP1AppConnectionPool?, logger: Logger,
        authority: String, eventLoop: any EventLoop
    ) {
        self.picker = picker
        self.pool = pool
        self.plainConnections = plainConnections
        self.logger = logger
        self.authority = authority
        self.eventLoop = eventLoop
    }

    /// Starts routing; `completion` is called once, on the event loop (possibly before this
    /// returns), unless the route is cancelled first.
    func start(owner: any HTTP2FrameStreamOwner, _ completion: @escaping (Outcome) -> Void) {
        self.owner = owner
        self.completion = completion
        pick()
    }

    /// Forgets the caller (its request ended): nothing more is delivered, and a pick or
    /// connection still under way is abandoned when it completes.
    func cancel() {
        completion = nil
        owner = nil
    }

    /// The stream of `pick` broke before any response, and the request can be sent again (the
    /// caller checks that: nothing of it is lost, and its method is safe to repeat). Reports the
    /// failure; true when another endpoint is being tried (the outcome follows through the same
    /// completion, which the caller passes again).
    func retry(
        after error: ProxyError, pick: Pick, started: ContinuousClock.Instant, _ completion: @escaping (Outcome) -> Void
    ) -> Bool {
        connectError = error
        guard ConnectAttempts.record(&attempts, failedConnectOf: pick, started: started) else { return false }
        logger.debug(
            "trying another endpoint after the stream broke before a response",
            metadata: ["authority": "\(authority)", "endpoint": "\(pick.endpoint)", "error": "\(error)"])
        self.completion = completion
        self.pick()
        return true
    }

    /// Methods a client may send twice with the effect of once (RFC 9110 §9.2.2): a request
    /// without a body whose stream broke before any answer may go to another endpoint.
    static func repeatable(_ method: HTTPMethod) -> Bool {
        switch method {
        case .GET, .HEAD, .OPTIONS, .TRACE, .PUT, .DELETE: true
        default: false
        }
    }

    private func deliver(_ outcome: Outcome) {
        guard let completion else {
            switch outcome {
            case .opened(let stream, let pick, _):
                stream.detach()
                stream.reset()
                pick.complete(.abandoned)
            case .failed:
                break
            }
            return
        }
        self.completion = nil
        if case .opened = outcome {} else { owner = nil }
        completion(outcome)
    }

    private func pick() {
        let avoiding = attempts?.avoided ?? []
        if let result = picker.pickNow(authority, avoiding: avoiding) {
            picked(result)
            return
        }
        let picker = self.picker
        let authority = self.authority
        let bound = NIOLoopBound(self, eventLoop: eventLoop)
        let promise = eventLoop.makePromise(of: Pick.self)
        promise.completeWithTask { try await picker.pick(authority, avoiding: avoiding) }
        promise.futureResult.whenComplete { result in
            bound.value.picked(result.mapError { ($0 as? ProxyError) ?? ProxyError(.discoveryUnavailable, "\($0)") })
        }
    }

    private func picked(_ result: Result<Pick, ProxyError>) {
        let pick: Pick
        switch result {
        case .failure(let error):
            // A re-pick that found nothing else to try answers with the connect failure.
            deliver(.failed(connectError ?? error, nil))
            return
        case .success(let chosen):
            pick = chosen
        }
        guard completion != nil else {
            pick.complete(.abandoned)
            return
        }
        let started = ContinuousClock.now
        guard pick.endpoint.identity != nil else {
            connectPlain(pick, started: started)
            return
        }
        let pool = self.pool
        if let connection = pool.readyConnection(to: pick.endpoint, on: eventLoop) {
            openStream(on: connection, pick: pick, started: started)
            return
        }
        let bound = NIOLoopBound(self, eventLoop: eventLoop)
        let timeout = attempts?.remaining(now: started) ?? pick.timeout
        pool.connection(to: pick.endpoint, on: eventLoop, timeout: timeout).whenComplete { result in
            switch result {
            case .success(let connection):
                bound.value.openStream(on: connection, pick: pick, started: started)
            case .failure(let error):
                bound.value.connectFailed((error as? ProxyError) ?? ProxyError(.connectFailed, "\(error)"), pick: pick, started: started)
            }
        }
    }

    private func connectFailed(_ error: ProxyError, pick: Pick, started: ContinuousClock.Instant) {
        guard completion != nil else {
            pick.complete(.abandoned)
            return
        }
        connectError = error
        guard ConnectAttempts.record(&attempts, failedConnectOf: pick, started: started) else {
            deliver(.failed(error, pick))
            return
        }
        logger.debug(
            "connecting elsewhere after a connect failure",
            metadata: ["authority": "\(authority)", "endpoint": "\(pick.endpoint)", "error": "\(error)"])
        self.pick()
    }

    /// A plain endpoint: an idle pooled HTTP/1.1 connection, or a new one.
    private func connectPlain(_ pick: Pick, started: ContinuousClock.Instant) {
        guard let plainConnections else {
            // Another endpoint may be meshed: this one is passed over as a failed connect would be.
            connectFailed(
                ProxyError(.connectFailed, "\(pick.endpoint) of \(authority) is not meshed; this proxy forwards over mTLS only"),
                pick: pick, started: started)
            return
        }
        let endpoint = pick.endpoint
        if let channel = plainConnections.idleConnection(host: endpoint.host, port: endpoint.port, on: eventLoop) {
            openPlainStream(on: channel, pick: pick, started: started)
            return
        }
        let bound = NIOLoopBound(self, eventLoop: eventLoop)
        let timeout = attempts?.remaining(now: started) ?? pick.timeout
        plainConnections.connect(host: endpoint.host, port: endpoint.port, on: eventLoop, timeout: TimeAmount(timeout))
            .whenComplete { result in
                switch result {
                case .success(let channel):
                    bound.value.openPlainStream(on: channel, pick: pick, started: started)
                case .failure(let error):
                    bound.value.connectFailed(
                        ProxyError(.connectFailed, "connecting to \(endpoint) failed: \(error)"), pick: pick, started: started)
                }
            }
    }

    private func openPlainStream(on channel: any Channel, pick: Pick, started: ContinuousClock.Instant) {
        guard completion != nil, let owner, let plainConnections else {
            pick.complete(.abandoned)
            channel.close(promise: nil)
            return
        }
        guard
            let stream = PlainHTTP1Stream(
                leased: channel, pool: plainConnections, host: pick.endpoint.host, port: pick.endpoint.port, owner: owner)
        else {
            connectFailed(
                ProxyError(.connectFailed, "the connection to \(pick.endpoint) is unusable"), pick: pick, started: started)
            return
        }
        deliver(.opened(stream, pick, started: started))
    }

    private func openStream(on connection: PeerConnection, pick: Pick, started: ContinuousClock.Instant) {
        guard completion != nil, let owner else {
            pick.complete(.abandoned)
            return
        }
        guard let stream = connection.openFrameStream(owner: owner) else {
            connectFailed(
                ProxyError(.connectFailed, "the connection to \(pick.endpoint) takes no new stream"), pick: pick,
                started: started)
            return
        }
        deliver(.opened(stream, pick, started: started))
    }
}

@available(*, unavailable)
extension PeerStreamRoute: Sendable {}
