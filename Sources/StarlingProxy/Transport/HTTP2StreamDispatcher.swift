import NIOCore
import NIOHPACK
package import NIOHTTP2

/// What the user of one ``HTTP2FrameStream`` is told, on the connection's event loop.
package protocol HTTP2FrameStreamOwner: AnyObject {
    /// A HEADERS or DATA frame of the stream (NIOHTTP2 and the dispatcher handle the others).
    func streamReceived(_ payload: HTTP2Frame.FramePayload)
    /// The end of one read from the connection that delivered frames to this stream.
    func streamReadComplete()
    /// The stream can take writes again, after ``HTTP2FrameStream/isWritable`` was false.
    func streamWritable()
    /// The stream is gone: both sides ended it, either side reset it, or the connection closed.
    /// Nothing written afterwards goes out.
    func streamClosed(reason: HTTP2ErrorCode?)
    /// The deadline set with ``HTTP2FrameStream/armDeadline(in:)`` has passed (it is disarmed).
    func streamDeadlinePassed()
}

extension HTTP2FrameStreamOwner {
    func streamDeadlinePassed() {}
}

/// Told when streams open and close (the connection's idle and drain accounting).
protocol HTTP2StreamObserver: AnyObject {
    func streamOpened(_ id: HTTP2StreamID)
    func streamClosed(_ id: HTTP2StreamID)
}

/// Runs an HTTP/2 connection's streams without a child channel each: NIOHTTP2's handler works
/// in frame mode, and this handler, right after it, hands each stream's frames to its
/// ``HTTP2FrameStream``, keeps each stream's writability and returns flow-control credit.
///
/// A child channel per stream (NIOHTTP2's multiplexer) costs a channel, a pipeline, a handler
/// context and a promise per write, and was a third of the proxy's allocations per request. The
/// rules it kept are kept here (docs/data-plane.md, "Frame-mode connections"):
/// - **Credit.** A stream's DATA is credited back once it has been taken; while its owner says it
///   cannot take more (``HTTP2FrameStream/isReceiving`` false) credit is withheld, so a fast
///   sender is held by HTTP/2 flow control, at most one window (64 KiB) per stream. The
///   connection's credit always flows (one slow stream must not stall the others) and follows
///   the window NIOHTTP2 reports, which also counts DATA it dropped for streams already gone.
/// - **A reset closes the stream at once.** NIOHTTP2 reports no close for a stream whose HEADERS
///   still wait for the peer's concurrency limit; the stream is closed here when it is reset.
/// - **Writability.** A stream is writable while the connection is and its DATA still waiting in
///   NIOHTTP2 (for the peer's window) is under ``highWatermark``.
/// - **Window updates wait for the end of the read.** A write into NIOHTTP2's handler while it
///   delivers a frame makes it fire the events that frame caused (such as the stream's close)
///   before the frame itself has reached this handler.
///
/// Server side: a HEADERS frame on a new stream ID asks `accept` for the stream's owner. Client
/// side: ``openStream(owner:)`` numbers the streams. Only the connection's event loop calls in.
final class HTTP2StreamDispatcher: ChannelInboundHandler {
    typealias InboundIn = HTTP2Frame
    typealias InboundOut = HTTP2Frame
    typealias OutboundOut = HTTP2Frame

    /// Decides what serves a stream the peer opened, given its first HEADERS: the owner and the
    /// frame to hand it (the headers, possibly rewritten).
    typealias Accept = (HTTP2FrameStream, HTTP2Frame.FramePayload.Headers) -> (
        any HTTP2FrameStreamOwner, HTTP2Frame.FramePayload
    )

    /// Credit is returned once half of a window has been taken.
    static let windowSize = 65_535
    static let highWatermark = 65_536
    static let lowWatermark = 32_768

    private let accept: Accept?
    private weak var observer: (any HTTP2StreamObserver)?
    private var context: ChannelHandlerContext?
    private var streams: [HTTP2StreamID: HTTP2FrameStream] = [:]
    /// Client side: the ID the next stream gets. Server side: the highest ID accepted.
    private var streamIDs: HTTP2StreamID
    /// The connection's receive window as NIOHTTP2 last reported it.
    private var connectionWindow = HTTP2StreamDispatcher.windowSize
    private var pendingCredit: [(HTTP2StreamID, Int)] = []
    private var readTouched: [HTTP2FrameStream] = []
    private var inRead = false
    /// Set when NIOHTTP2 failed the connection: it wrote GOAWAY with an error code (it is this
    /// handler's frame delegate), and the error that follows ends the connection.
    private var connectionFailed = false
    /// Client side: set when stream IDs ran out or the peer sent GOAWAY.
    private(set) var isExhausted = false
    /// Streams with an armed deadline (each knows its index), and the one timer that checks them.
    private var timed: [HTTP2FrameStream] = []
    private var sweep: Scheduled<Void>?
    private var sweepAt: NIODeadline?

    /// A server-side dispatcher: `accept` serves each stream the peer opens.
    init(observer: (any HTTP2StreamObserver)?, accept: @escaping Accept) {
        self.accept = accept
        self.observer = observer
        self.streamIDs = .rootStream
    }

    /// A client-side dispatcher: streams come from ``openStream(owner:)``, numbered from
    /// `firstStreamID` (tests start near the end of the ID space).
    init(observer: (any HTTP2StreamObserver)?, firstStreamID: HTTP2StreamID = HTTP2StreamID(1)) {
        self.accept = nil
        self.observer = observer
        self.streamIDs = firstStreamID
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        dropDeadlines()
    }

    var openStreams: Int { streams.count }

    // MARK: - Client side

    /// A new stream for a request; nil when the connection cannot take one (closed, going away,
    /// or out of stream IDs: the caller then needs another connection).
    func openStream(owner: any HTTP2FrameStreamOwner) -> HTTP2FrameStream? {
        guard accept == nil, let context, !isExhausted else { return nil }
        let id = streamIDs
        if Int32(id) > Int32.max - 2 {
            isExhausted = true
        } else {
            streamIDs = HTTP2StreamID(Int32(id) + 2)
        }
        let stream = HTTP2FrameStream(id: id, dispatcher: self, eventLoop: context.eventLoop)
        stream.owner = owner
        streams[id] = stream
        observer?.streamOpened(id)
        return stream
    }

    // MARK: - From the streams

    fileprivate var isConnectionWritable: Bool { context?.channel.isWritable ?? false }

    fileprivate func write(_ payload: HTTP2Frame.FramePayload, on stream: HTTP2FrameStream) {
        guard let context else { return }
        let frame = HTTP2Frame(streamID: stream.id, payload: payload)
        // DATA that more DATA may follow counts against the stream's writability until NIOHTTP2
        // has sent it on; a stream's last frame needs no accounting.
        if case .data(let data) = payload, !data.endStream, data.data.readableBytes > 0 {
            let size = data.data.readableBytes
            stream.buffered += size
            let promise = context.eventLoop.makePromise(of: Void.self)
            context.write(wrapOutboundOut(frame), promise: promise)
            let loopBound = NIOLoopBound((self, stream), eventLoop: context.eventLoop)
            promise.futureResult.whenComplete { _ in
                let (dispatcher, stream) = loopBound.value
                dispatcher.sent(size, on: stream)
            }
            return
        }
        context.write(wrapOutboundOut(frame), promise: nil)
    }

    /// Writes a server stream's last frame; once NIOHTTP2 has sent it (it may wait for the
    /// peer's window), a stream the peer has not ended is reset with NO_ERROR.
    fileprivate func writeLast(_ payload: HTTP2Frame.FramePayload, on stream: HTTP2FrameStream) {
        guard let context else { return }
        let promise = context.eventLoop.makePromise(of: Void.self)
        context.write(wrapOutboundOut(HTTP2Frame(streamID: stream.id, payload: payload)), promise: promise)
        let loopBound = NIOLoopBound(stream, eventLoop: context.eventLoop)
        promise.futureResult.whenSuccess {
            // Closed already when the peer had ended its side: the frame closed the stream.
            loopBound.value.reset(.noError)
        }
    }

    fileprivate func flush() {
        context?.flush()
    }

    private func sent(_ size: Int, on stream: HTTP2FrameStream) {
        stream.buffered -= size
        if stream.waitsForWritable, stream.buffered <= Self.lowWatermark, isConnectionWritable {
            stream.waitsForWritable = false
            stream.owner?.streamWritable()
        }
    }

    /// `count` bytes of the stream's DATA were taken: the credit is returned at the end of the
    /// read, or at once outside one.
    fileprivate func taken(_ count: Int, on stream: HTTP2FrameStream) {
        stream.taken += count
        guard stream.taken >= Self.windowSize / 2 else { return }
        pendingCredit.append((stream.id, stream.taken))
        stream.taken = 0
        if !inRead { writePendingCredit() }
    }

    private func writePendingCredit() {
        if connectionWindow <= Self.windowSize / 2 {
            pendingCredit.append((.rootStream, Self.windowSize - connectionWindow))
            connectionWindow = Self.windowSize
        }
        guard !pendingCredit.isEmpty, let context else { return }
        for (id, credit) in pendingCredit where id == .rootStream || streams[id] != nil {
            context.write(
                wrapOutboundOut(HTTP2Frame(streamID: id, payload: .windowUpdate(windowSizeIncrement: credit))),
                promise: nil)
        }
        pendingCredit.removeAll(keepingCapacity: true)
        context.flush()
    }

    // MARK: - Connection events

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        if frame.streamID == .rootStream {
            if case .goAway = frame.payload, accept == nil { isExhausted = true }
            context.fireChannelRead(data)
            return
        }
        inRead = true
        let stream: HTTP2FrameStream
        var payload = frame.payload
        if let known = streams[frame.streamID] {
            stream = known
        } else {
            // NIOHTTP2 has checked the stream's state: a frame for an unknown stream is a new
            // stream's HEADERS (server side) or a late frame for one already gone.
            guard let accept, frame.streamID > streamIDs, case .headers(let headers) = payload else { return }
            streamIDs = frame.streamID
            stream = HTTP2FrameStream(id: frame.streamID, dispatcher: self, eventLoop: context.eventLoop)
            streams[frame.streamID] = stream
            observer?.streamOpened(frame.streamID)
            let (owner, first) = accept(stream, headers)
            stream.owner = owner
            payload = first
        }
        switch payload {
        case .data(let data):
            // The flow-controlled length counts padding and the pad length octet. After
            // END_STREAM nothing more comes: the stream needs no credit back.
            let length = data.data.readableBytes + (data.paddingBytes.map { $0 + 1 } ?? 0)
            if data.endStream {
                stream.peerEnded = true
            } else if length > 0 {
                if stream.isReceiving {
                    taken(length, on: stream)
                } else {
                    stream.withheld += length
                }
            }
        case .headers(let headers):
            if headers.endStream { stream.peerEnded = true }
        default:
            break
        }
        switch payload {
        case .headers, .data:
            if !stream.readTouched {
                stream.readTouched = true
                readTouched.append(stream)
            }
            stream.owner?.streamReceived(payload)
        default:
            // RST_STREAM arrives as the stream's close; WINDOW_UPDATE, PRIORITY: NIOHTTP2's.
            break
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        inRead = false
        if !readTouched.isEmpty {
            let touched = readTouched
            readTouched.removeAll(keepingCapacity: true)
            for stream in touched {
                stream.readTouched = false
                stream.owner?.streamReadComplete()
            }
        }
        writePendingCredit()
        context.fireChannelReadComplete()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let closed = event as? StreamClosedEvent {
            streamEnded(closed.streamID, reason: closed.reason)
            return
        }
        if let window = event as? NIOHTTP2WindowUpdatedEvent, window.streamID == .rootStream,
            let inbound = window.inboundWindowSize
        {
            connectionWindow = inbound
        }
        context.fireUserInboundEventTriggered(event)
    }

    fileprivate func streamEnded(_ id: HTTP2StreamID, reason: HTTP2ErrorCode?) {
        guard let stream = streams.removeValue(forKey: id) else { return }
        observer?.streamClosed(id)
        disarm(stream)
        stream.closed(reason: reason)
    }

    // MARK: - Deadlines

    // A response timeout per request as a timer each (NIO's `scheduleTask`) costs a task, a
    // closure, a promise and a heap entry, and its cancel a search of the heap, on every request,
    // though it almost never fires. The streams' deadlines are kept here instead: arming and
    // disarming store the deadline (no allocation); one timer per connection fires at the
    // earliest deadline known when it was set, and a check that finds nothing due re-arms itself
    // at the earliest one left (as ``DeadlineCheck`` does for one deadline).

    fileprivate func arm(_ stream: HTTP2FrameStream, at deadline: NIODeadline) {
        if stream.deadlineIndex == nil {
            stream.deadlineIndex = timed.count
            timed.append(stream)
        }
        stream.deadline = deadline
        if let sweepAt, sweepAt <= deadline { return }
        scheduleSweep(at: deadline)
    }

    fileprivate func disarm(_ stream: HTTP2FrameStream) {
        guard let index = stream.deadlineIndex else { return }
        let last = timed.removeLast()
        if last !== stream {
            timed[index] = last
            last.deadlineIndex = index
        }
        stream.deadlineIndex = nil
        stream.deadline = nil
    }

    /// The connection is gone: no deadline is checked any more.
    private func dropDeadlines() {
        sweep?.cancel()
        sweep = nil
        sweepAt = nil
        for stream in timed {
            stream.deadlineIndex = nil
            stream.deadline = nil
        }
        timed = []
    }

    private func scheduleSweep(at when: NIODeadline) {
        guard let context else { return }
        sweep?.cancel()
        sweepAt = when
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        sweep = context.eventLoop.scheduleTask(deadline: when) { bound.value.sweepNow() }
    }

    private func sweepNow() {
        sweep = nil
        sweepAt = nil
        guard let now = context?.eventLoop.now else { return }
        var due: [HTTP2FrameStream] = []
        for stream in timed {
            if let deadline = stream.deadline, deadline <= now { due.append(stream) }
        }
        for stream in due {
            // An owner told before may have moved or dropped this deadline.
            guard let deadline = stream.deadline, deadline <= now else { continue }
            disarm(stream)
            stream.owner?.streamDeadlinePassed()
        }
        // Owners may have armed deadlines meanwhile, which scheduled a check that may be later
        // than the earliest one left.
        guard let next = timed.lazy.compactMap(\.deadline).min() else { return }
        if let sweepAt, sweepAt <= next { return }
        scheduleSweep(at: next)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // An error NIOHTTP2 wraps as a stream error has already reset its stream (the close
        // event follows).
        if error is NIOHTTP2Errors.StreamError { return }
        // NIOHTTP2's other errors end the connection only when NIOHTTP2 failed it, and then it
        // wrote GOAWAY with an error code first (`wroteFrame`). The rest concern one stream (some
        // it fires unwrapped, such as a forbidden header field, after resetting the stream) or
        // one frame it refused to send (HEADERS for a stream it closed a moment before this
        // handler heard): the connection and its other streams go on. What goes on, and every
        // error from below (TLS, the socket), reaches the connection's handler, which closes.
        if error is any NIOHTTP2Error, !connectionFailed { return }
        context.fireErrorCaught(error)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            for stream in streams.values where stream.waitsForWritable && stream.buffered <= Self.lowWatermark {
                stream.waitsForWritable = false
                stream.owner?.streamWritable()
            }
        }
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        isExhausted = true
        dropDeadlines()
        let open = streams
        streams = [:]
        for (id, stream) in open {
            observer?.streamClosed(id)
            stream.closed(reason: .cancel)
        }
        context.fireChannelInactive()
    }
}

extension HTTP2StreamDispatcher: NIOHTTP2FrameDelegate {
    func wroteFrame(_ frame: HTTP2Frame) {
        if case .goAway(_, let code, _) = frame.payload, code != .noError { connectionFailed = true }
    }
}

@available(*, unavailable)
extension HTTP2StreamDispatcher: Sendable {}

/// One stream of an ``HTTP2StreamDispatcher`` connection: what a stream channel offered its
/// handler, without the channel.
package final class HTTP2FrameStream {
    let id: HTTP2StreamID
    let eventLoop: any EventLoop
    private let dispatcher: HTTP2StreamDispatcher
    /// Cleared when the stream closes (the owner usually holds the stream: the cycle ends there).
    fileprivate(set) var owner: (any HTTP2FrameStreamOwner)?
    private(set) var isClosed = false

    fileprivate var taken = 0
    fileprivate var withheld = 0
    fileprivate var buffered = 0
    fileprivate var waitsForWritable = false
    fileprivate var readTouched = false
    /// The peer's last frame (END_STREAM) has arrived.
    fileprivate var peerEnded = false
    /// Set by ``armDeadline(in:)``; its place in the dispatcher's list of armed streams.
    fileprivate var deadline: NIODeadline?
    fileprivate var deadlineIndex: Int?
    /// Set by ``resetUnlessClosed(after:)``; cancelled when the stream closes first.
    private var closeDeadline: Scheduled<Void>?

    fileprivate init(id: HTTP2StreamID, dispatcher: HTTP2StreamDispatcher, eventLoop: any EventLoop) {
        self.id = id
        self.dispatcher = dispatcher
        self.eventLoop = eventLoop
    }

    /// Whether the owner takes more DATA now; while false the stream's credit is withheld, and
    /// setting it again returns what was withheld.
    var isReceiving = true {
        didSet {
            guard isReceiving, !oldValue, withheld > 0, !isClosed else { return }
            let credit = withheld
            withheld = 0
            dispatcher.taken(credit, on: self)
        }
    }

    /// False while the connection cannot take writes or too much of this stream's DATA waits for
    /// the peer's window; ``HTTP2FrameStreamOwner/streamWritable()`` follows when that changes.
    var isWritable: Bool {
        guard !isClosed else { return false }
        if buffered < HTTP2StreamDispatcher.highWatermark, dispatcher.isConnectionWritable { return true }
        waitsForWritable = true
        return false
    }

    func write(_ payload: HTTP2Frame.FramePayload) {
        guard !isClosed else { return }
        dispatcher.write(payload, on: self)
    }

    /// Writes the last frame of a response (END_STREAM) the peer may not have finished its
    /// request for: once the frame has gone out, a stream the peer has not ended is reset with
    /// NO_ERROR, which tells it to stop sending a request nobody reads (RFC 9113 §8.1). Resetting
    /// any earlier would drop the response's frames still waiting for the peer's window.
    func writeLast(_ payload: HTTP2Frame.FramePayload) {
        guard !isClosed else { return }
        if peerEnded {
            // The frame closes the stream as it goes out.
            dispatcher.write(payload, on: self)
        } else {
            dispatcher.writeLast(payload, on: self)
        }
    }

    func flush() {
        dispatcher.flush()
    }

    /// Resets the stream (RST_STREAM) unless it has already closed, flushes, and closes it: the
    /// owner is told (``HTTP2FrameStreamOwner/streamClosed(reason:)``) before this returns.
    func reset(_ code: HTTP2ErrorCode = .cancel) {
        guard !isClosed else { return }
        dispatcher.write(.rstStream(code), on: self)
        dispatcher.flush()
        dispatcher.streamEnded(id, reason: code)
    }

    /// Stops telling the owner anything (it has finished with the stream); whatever still arrives
    /// is taken and dropped.
    func detach() {
        owner = nil
        dispatcher.disarm(self)
        isReceiving = true
    }

    /// Tells the owner (``HTTP2FrameStreamOwner/streamDeadlinePassed()``) if `amount` passes
    /// before ``disarmDeadline()`` or the stream's close; arming again moves the deadline.
    func armDeadline(in amount: TimeAmount) {
        guard !isClosed else { return }
        dispatcher.arm(self, at: eventLoop.now + amount)
    }

    func disarmDeadline() {
        dispatcher.disarm(self)
    }

    /// Resets the stream if it has not closed within `limit` (a detached stream left to end by
    /// itself: a peer that never ends it must not hold it).
    func resetUnlessClosed(after limit: TimeAmount) {
        guard !isClosed, closeDeadline == nil else { return }
        let bound = NIOLoopBound(self, eventLoop: eventLoop)
        closeDeadline = eventLoop.scheduleTask(in: limit) { bound.value.reset() }
    }

    fileprivate func closed(reason: HTTP2ErrorCode?) {
        guard !isClosed else { return }
        isClosed = true
        // The deadline's task holds the stream: without the cancel every such stream would stay
        // in memory until its deadline.
        closeDeadline?.cancel()
        closeDeadline = nil
        let owner = self.owner
        self.owner = nil
        owner?.streamClosed(reason: reason)
    }
}

@available(*, unavailable)
extension HTTP2FrameStream: Sendable {}

extension ChannelPipeline.SynchronousOperations {
    /// The handlers of every frame-mode HTTP/2 connection, in order: flushes coalesced per tick
    /// (``FlushCoalescingHandler``), NIOHTTP2 in `mode`, then `dispatcher`.
    func addFrameModeHTTP2(
        mode: NIOHTTP2Handler.ParserMode, connection: NIOHTTP2Handler.ConnectionConfiguration,
        streams: NIOHTTP2Handler.StreamConfiguration, dispatcher: HTTP2StreamDispatcher
    ) throws {
        try addHandler(FlushCoalescingHandler())
        try addHandler(
            NIOHTTP2Handler(
                mode: mode, frameDelegate: dispatcher, connectionConfiguration: connection, streamConfiguration: streams))
        try addHandler(dispatcher)
    }
}

extension HTTP2Frame.FramePayload {
    /// The frame that ends a request: its trailers, or an empty DATA frame with END_STREAM.
    static func requestEnd(_ trailers: HPACKHeaders?) -> Self {
        if let trailers, !trailers.isEmpty {
            return .headers(.init(headers: trailers, endStream: true))
        }
        return .data(.init(data: .byteBuffer(ByteBuffer()), endStream: true))
    }
}
