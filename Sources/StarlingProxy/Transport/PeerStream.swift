public import NIOCore
public import NIOHTTP2

/// An HTTP/2 stream of a frame-mode connection (``HTTP2StreamDispatcher``) for code that runs
/// in tasks: a request stream it opens on a ``PeerConnection`` (the HTTP/2 front end, the gateway,
/// the replayed HTTP/1 path), or a stream a client opened on one of the task-served HTTP/2
/// servers (``HTTP2ServerStreams``). The channel-handler paths use the ``HTTP2FrameStream``
/// directly.
///
/// Frames arrive as an async sequence with backpressure: while the consumer lags, the stream's
/// flow-control credit is withheld. A write returns once the stream can take more.
public struct PeerStream: Sendable {
    public typealias Inbound = NIOThrowingAsyncSequenceProducer<
        HTTP2Frame.FramePayload, any Error, NIOAsyncSequenceProducerBackPressureStrategies.HighLowWatermark,
        PeerStreamDelegate
    >

    /// The frames the peer sends (HEADERS and DATA); ends with the peer's END_STREAM, throws if
    /// the stream is reset or the connection closes first.
    public let inbound: Inbound
    private let bridge: NIOLoopBound<PeerStreamBridge>
    private let eventLoop: any EventLoop
    /// The peer's address, for messages.
    public let peerDescription: String

    /// Opens a stream on `dispatcher`. Call on the connection's event loop.
    static func open(on dispatcher: HTTP2StreamDispatcher, eventLoop: any EventLoop, peerDescription: String) -> PeerStream? {
        let (peerStream, bridge) = make(eventLoop: eventLoop, peerDescription: peerDescription)
        guard let stream = dispatcher.openStream(owner: bridge) else {
            bridge.source?.finish()
            return nil
        }
        bridge.stream = stream
        return peerStream
    }

    /// Takes over `stream`, which the client opened (a server dispatcher's `accept`): returns
    /// the task's side and the owner to give the dispatcher. Call on the connection's event loop.
    static func accepted(
        _ stream: HTTP2FrameStream, peerDescription: String
    ) -> (PeerStream, owner: any HTTP2FrameStreamOwner) {
        let (peerStream, bridge) = make(eventLoop: stream.eventLoop, peerDescription: peerDescription)
        bridge.stream = stream
        return (peerStream, bridge)
    }

    private static func make(eventLoop: any EventLoop, peerDescription: String) -> (PeerStream, PeerStreamBridge) {
        let bridge = PeerStreamBridge(eventLoop: eventLoop)
        let bound = NIOLoopBound(bridge, eventLoop: eventLoop)
        let produced = Inbound.makeSequence(
            backPressureStrategy: .init(lowWatermark: 2, highWatermark: 8), finishOnDeinit: true,
            delegate: PeerStreamDelegate(eventLoop: eventLoop, bridge: bound))
        bridge.source = produced.source
        let stream = PeerStream(inbound: produced.sequence, bridge: bound, eventLoop: eventLoop, peerDescription: peerDescription)
        return (stream, bridge)
    }

    /// Writes `payload` and flushes; returns once the stream can take more.
    ///
    /// - Throws: `ProxyError.upstreamProtocol` once the stream has closed.
    public func write(_ payload: HTTP2Frame.FramePayload) async throws {
        let bridge = self.bridge
        try await eventLoop.flatSubmit { bridge.value.write(payload) }.get()
    }

    /// Resets the stream unless it has already closed (both sides ended).
    public func close() {
        let bridge = self.bridge
        eventLoop.execute { bridge.value.stream?.reset(.cancel) }
    }

    /// Waits for a stream whose two sides have both ended to close by itself, and resets it if
    /// it has not within `limit`. Until it closes, the last frames written may still wait in
    /// NIOHTTP2 for the peer's flow-control window: resetting at once would lose them.
    public func awaitClose(within limit: TimeAmount) async {
        let bridge = self.bridge
        try? await eventLoop.flatSubmit { bridge.value.closed(within: limit) }.get()
    }
}

/// Tells the stream when its consumer wants more, or is gone.
public struct PeerStreamDelegate: NIOAsyncSequenceProducerDelegate {
    let eventLoop: any EventLoop
    let bridge: NIOLoopBound<PeerStreamBridge>

    public func produceMore() {
        let bridge = self.bridge
        eventLoop.execute { bridge.value.stream?.isReceiving = true }
    }

    public func didTerminate() {
        let bridge = self.bridge
        eventLoop.execute { bridge.value.consumerGone() }
    }
}

/// The stream's owner on the event loop: feeds the sequence and completes writes.
public final class PeerStreamBridge: HTTP2FrameStreamOwner {
    private let eventLoop: any EventLoop
    /// Set once the stream is open; nil again once it closed.
    fileprivate var stream: HTTP2FrameStream?
    fileprivate var source: PeerStream.Inbound.Source?
    private var ended = false
    private var writableWaiters: [EventLoopPromise<Void>] = []
    private var closeWaiters: [EventLoopPromise<Void>] = []

    fileprivate init(eventLoop: any EventLoop) {
        self.eventLoop = eventLoop
    }

    fileprivate func write(_ payload: HTTP2Frame.FramePayload) -> EventLoopFuture<Void> {
        guard let stream else {
            return eventLoop.makeFailedFuture(ProxyError(.upstreamProtocol, "the stream to the peer has closed"))
        }
        stream.write(payload)
        stream.flush()
        // A write that ends the second side closes the stream on the way (`self.stream` is nil
        // then): it went out, and there is nothing to wait for.
        if self.stream == nil || stream.isWritable { return eventLoop.makeSucceededVoidFuture() }
        let promise = eventLoop.makePromise(of: Void.self)
        writableWaiters.append(promise)
        return promise.futureResult
    }

    fileprivate func closed(within limit: TimeAmount) -> EventLoopFuture<Void> {
        guard let stream else { return eventLoop.makeSucceededVoidFuture() }
        let promise = eventLoop.makePromise(of: Void.self)
        closeWaiters.append(promise)
        stream.resetUnlessClosed(after: limit)
        return promise.futureResult
    }

    fileprivate func consumerGone() {
        // Nobody reads the response any more: the stream has no use.
        if !ended { stream?.reset(.cancel) }
    }

    func streamReceived(_ payload: HTTP2Frame.FramePayload) {
        guard let source, !ended else { return }
        let endsStream: Bool
        switch payload {
        case .headers(let headers): endsStream = headers.endStream
        case .data(let data): endsStream = data.endStream
        default: endsStream = false
        }
        if case .stopProducing = source.yield(payload) {
            stream?.isReceiving = false
        }
        if endsStream {
            ended = true
            source.finish()
        }
    }

    func streamReadComplete() {}

    func streamWritable() {
        let waiters = writableWaiters
        writableWaiters = []
        for waiter in waiters { waiter.succeed() }
    }

    func streamClosed(reason: HTTP2ErrorCode?) {
        if !ended {
            ended = true
            source?.finish(
                ProxyError(
                    .upstreamProtocol,
                    "the peer closed the stream before the response ended (\(reason.map { "\($0)" } ?? "no error"))"))
        }
        let waiters = writableWaiters
        writableWaiters = []
        for waiter in waiters { waiter.fail(ProxyError(.upstreamProtocol, "the stream to the peer has closed")) }
        let closeWaiters = self.closeWaiters
        self.closeWaiters = []
        for waiter in closeWaiters { waiter.succeed() }
        stream = nil
    }
}

@available(*, unavailable)
extension PeerStreamBridge: Sendable {}
