import Logging
import NIOCore
import NIOHTTP2

/// What a front end's exchanges are routed with: the picker, the pooled mTLS connections to peer
/// proxies, and — where plain endpoints (outside the mesh) may be used at all — the pooled
/// HTTP/1.1 connections to them.
package struct UpstreamConnector: Sendable {
    let picker: any EndpointPicker
    let pool: PeerConnectionPool
    /// Connections to plain endpoints; nil where only meshed ones may be used (the gateway).
    let plainConnections: HTTP1AppConnectionPool?

    package init(picker: any EndpointPicker, pool: PeerConnectionPool, plainConnections: HTTP1AppConnectionPool?) {
        self.picker = picker
        self.pool = pool
        self.plainConnections = plainConnections
    }

    /// Picks an endpoint: at once from what discovery already knows, or — for an authority's
    /// first request — waiting for discovery off the loop. `done` runs on `eventLoop`, possibly
    /// before this returns.
    func pick(
        _ authority: String, avoiding: [Endpoint], on eventLoop: any EventLoop,
        _ done: @escaping (Result<Pick, ProxyError>) -> Void
    ) {
        if let result = picker.pickNow(authority, avoiding: avoiding) {
            done(result)
            return
        }
        let picker = self.picker
        let bound = NIOLoopBound(done, eventLoop: eventLoop)
        let promise = eventLoop.makePromise(of: Pick.self)
        promise.completeWithTask { try await picker.pick(authority, avoiding: avoiding) }
        promise.futureResult.whenComplete { result in
            bound.value(result.mapError { ($0 as? ProxyError) ?? ProxyError(.discoveryUnavailable, "\($0)") })
        }
    }

    /// Opens a stream to the pick's endpoint for `owner`, on the loop's pooled connection to it
    /// (made within `timeout` when there is none): a stream of the mTLS HTTP/2 connection to a
    /// meshed endpoint, or an HTTP/1.1 exchange (``PlainHTTP1Stream``) with a plain one. `done`
    /// runs on `eventLoop`, possibly before this returns. A connection made for a caller that is
    /// gone meanwhile (`stillWanted` false) opens no stream: `done` gets a failure.
    func open(
        _ pick: Pick, timeout: Duration, owner: any HTTP2FrameStreamOwner, on eventLoop: any EventLoop,
        stillWanted: @escaping () -> Bool, _ done: @escaping (Result<any UpstreamStream, ProxyError>) -> Void
    ) {
        let endpoint = pick.endpoint
        guard endpoint.identity != nil else {
            openPlain(endpoint, timeout: timeout, owner: owner, on: eventLoop, stillWanted: stillWanted, done)
            return
        }
        if let connection = pool.readyConnection(to: endpoint, on: eventLoop) {
            done(Self.stream(on: connection, to: endpoint, owner: owner))
            return
        }
        let bound = NIOLoopBound((owner, stillWanted, done), eventLoop: eventLoop)
        pool.connection(to: endpoint, on: eventLoop, timeout: timeout).whenComplete { result in
            let (owner, stillWanted, done) = bound.value
            switch result {
            case .success where !stillWanted():
                done(.failure(Self.unwanted))
            case .success(let connection):
                done(Self.stream(on: connection, to: endpoint, owner: owner))
            case .failure(let error):
                done(.failure((error as? ProxyError) ?? ProxyError(.connectFailed, "\(error)")))
            }
        }
    }

    /// The caller went away while its connection was being made.
    private static let unwanted = ProxyError(.connectFailed, "the request ended while connecting")

    private static func stream(
        on connection: PeerConnection, to endpoint: Endpoint, owner: any HTTP2FrameStreamOwner
    ) -> Result<any UpstreamStream, ProxyError> {
        guard let stream = connection.openFrameStream(owner: owner) else {
            return .failure(ProxyError(.connectFailed, "the connection to \(endpoint) takes no new stream"))
        }
        return .success(stream)
    }

    /// A plain endpoint: an idle pooled HTTP/1.1 connection, or a new one.
    private func openPlain(
        _ endpoint: Endpoint, timeout: Duration, owner: any HTTP2FrameStreamOwner, on eventLoop: any EventLoop,
        stillWanted: @escaping () -> Bool, _ done: @escaping (Result<any UpstreamStream, ProxyError>) -> Void
    ) {
        guard let plainConnections else {
            // Another endpoint may be meshed: this one is passed over as a failed connect would be.
            done(.failure(ProxyError(.connectFailed, "\(endpoint) is not meshed; this proxy forwards over mTLS only")))
            return
        }
        if let channel = plainConnections.idleConnection(host: endpoint.host, port: endpoint.port, on: eventLoop) {
            done(Self.plainStream(on: channel, pool: plainConnections, to: endpoint, owner: owner))
            return
        }
        let bound = NIOLoopBound((owner, stillWanted, done), eventLoop: eventLoop)
        plainConnections.connect(host: endpoint.host, port: endpoint.port, on: eventLoop, timeout: TimeAmount(timeout))
            .whenComplete { result in
                let (owner, stillWanted, done) = bound.value
                switch result {
                case .success(let channel) where !stillWanted():
                    channel.close(promise: nil)
                    done(.failure(Self.unwanted))
                case .success(let channel):
                    done(Self.plainStream(on: channel, pool: plainConnections, to: endpoint, owner: owner))
                case .failure(let error):
                    done(.failure(ProxyError.unreachable(endpoint, error)))
                }
            }
    }

    private static func plainStream(
        on channel: any Channel, pool: HTTP1AppConnectionPool, to endpoint: Endpoint, owner: any HTTP2FrameStreamOwner
    ) -> Result<any UpstreamStream, ProxyError> {
        guard let stream = PlainHTTP1Stream(leased: channel, pool: pool, host: endpoint.host, port: endpoint.port, owner: owner)
        else {
            return .failure(ProxyError(.connectFailed, "the connection to \(endpoint) is unusable"))
        }
        return .success(stream)
    }
}

/// A front end that forwards requests as ``UpstreamExchange``s (the outbound's HTTP/1 front end,
/// ``HTTP2StreamRelay``): the picking and connecting its exchange asks for are done here, for
/// both, and what comes of them is handed back.
protocol UpstreamExchangeOwner: AnyObject {
    var connector: UpstreamConnector { get }
    var exchangeLogger: Logger { get }
    /// Names the current exchange (an owner serving one after another numbers them), so that a
    /// late pick or connect result finds only its own.
    var exchangeGeneration: Int { get }
    /// Runs `body` on exchange `generation`, in place; nil when it is not the current one any more.
    func withExchange<Result>(_ generation: Int, _ body: (inout UpstreamExchange) -> Result) -> Result?
    /// The owner of the streams opened for the exchange.
    func makeStreamOwner() -> any HTTP2FrameStreamOwner
    /// The stream is open: write the request head and `held`, arm the response timeout if given.
    func upstreamOpened(_ stream: any UpstreamStream, pick: Pick, held: [HTTP2Frame.FramePayload], armTimeout: TimeAmount?)
    /// Nothing could be opened: answer `error` (every failed pick has been reported).
    func upstreamUnavailable(_ error: ProxyError, pick: Pick?)
}

extension UpstreamExchangeOwner {
    /// Picks an endpoint for the current exchange — first, or again after a failure — and goes on
    /// to connect to it.
    func pickUpstream(on eventLoop: any EventLoop) {
        let generation = exchangeGeneration
        guard let (authority, avoided) = withExchange(generation, { ($0.authority, $0.avoided) }) else { return }
        connector.pick(authority, avoiding: avoided, on: eventLoop) { result in
            self.picked(result, generation: generation, on: eventLoop)
        }
    }

    private func picked(_ result: Result<Pick, ProxyError>, generation: Int, on eventLoop: any EventLoop) {
        switch withExchange(generation, { $0.picked(result, now: .now) }) {
        case .connect(let pick, let timeout):
            connector.open(
                pick, timeout: timeout, owner: makeStreamOwner(), on: eventLoop,
                stillWanted: { self.withExchange(generation, { $0.phase == .connecting }) == true }
            ) { result in
                self.opened(result, pick: pick, generation: generation, on: eventLoop)
            }
        case .pickAfter(let wait):
            exchangeLogger.debug("no other endpoint; connecting again after a backoff", metadata: ["backoff": "\(wait)"])
            // Only for this exchange, and only while it still waits for a pick.
            eventLoop.assumeIsolated().scheduleTask(in: TimeAmount(wait)) {
                guard self.withExchange(generation, { $0.phase == .picking }) == true else { return }
                self.pickUpstream(on: eventLoop)
            }
        case .respond(let error, let pick):
            upstreamUnavailable(error, pick: pick)
        case .ignore:
            break
        case nil:
            // The exchange is gone (its connection closed): the pick was for nobody.
            if case .success(let pick) = result { pick.complete(.abandoned) }
        }
    }

    private func opened(
        _ result: Result<any UpstreamStream, ProxyError>, pick: Pick, generation: Int, on eventLoop: any EventLoop
    ) {
        switch result {
        case .success(let stream):
            switch withExchange(generation, { $0.streamOpened() }) {
            case .send(let pick, let held, let armTimeout):
                upstreamOpened(stream, pick: pick, held: held, armTimeout: armTimeout)
            case .discard, nil:
                stream.detach()
                stream.reset()
            }
        case .failure(let error):
            // A failure after the exchange ended (it reported its pick then) changes nothing.
            switch withExchange(generation, { $0.connectFailed(error, now: .now) }) {
            case .pick:
                exchangeLogger.debug(
                    "connecting elsewhere after a connect failure",
                    metadata: ["endpoint": "\(pick.endpoint)", "error": "\(error)"])
                pickUpstream(on: eventLoop)
            case .respond(let error, let pick):
                upstreamUnavailable(error, pick: pick)
            case .ignore, nil:
                break
            }
        }
    }

    /// The exchange's stream broke before any answer and is to be sent again elsewhere.
    func retryUpstream(after error: ProxyError, pick: Pick, on eventLoop: any EventLoop) {
        exchangeLogger.debug(
            "trying another endpoint after the stream broke before a response",
            metadata: ["endpoint": "\(pick.endpoint)", "error": "\(error)"])
        pickUpstream(on: eventLoop)
    }
}
