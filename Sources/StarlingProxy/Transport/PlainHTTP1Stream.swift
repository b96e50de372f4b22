import NIOCore
import NIOHPACK
import NIOHTTP1
import NIOHTTP2

/// One request to a plain endpoint (outside the mesh, no identity), as an ``UpstreamStream``: the
/// front end writes it in HTTP/2 frames, and it goes out as HTTP/1.1 on a leased connection of the
/// ``HTTP1AppConnectionPool`` (the pool and handler the inbound uses for its application); the
/// response comes back to the owner as HTTP/2 frames. So a plain endpoint takes the same
/// event-loop path as a meshed one: same routing, retries, timeouts, metrics.
///
/// The connection goes back to the pool when the response has ended after the whole request went
/// out and the response allows keep-alive; otherwise it is closed. A response frame is held until
/// the next part or the end of the read, so the last one carries END_STREAM (a body-less response
/// is one HEADERS frame, as ``InboundHTTP1Forwarder`` does it).
final class PlainHTTP1Stream: UpstreamStream, HTTP1AppConnectionOwner {
    private let pool: HTTP1AppConnectionPool
    private let host: String
    private let port: Int
    private let eventLoop: any EventLoop
    private var owner: (any HTTP2FrameStreamOwner)?
    /// The leased connection; nil once the exchange ended (released or closed).
    private var connection: (channel: any Channel, handler: HTTP1AppConnectionHandler)?
    private var requestHeadSent = false
    private var requestEnded = false
    private var responseKeepAlive = true
    /// A read is owed to the connection once the owner takes the response again.
    private var readWaiting = false
    private var framer = HTTP1ResponseFramer()
    /// Set by ``resetUnlessClosed(after:)``.
    private var closeDeadline: Scheduled<Void>?

    /// Takes a leased connection of `pool` to `host:port` (its last handler is an
    /// ``HTTP1AppConnectionHandler``); nil, with the connection closed, when it has none.
    init?(
        leased channel: any Channel, pool: HTTP1AppConnectionPool, host: String, port: Int,
        owner: any HTTP2FrameStreamOwner
    ) {
        guard let handler = try? channel.pipeline.syncOperations.handler(type: HTTP1AppConnectionHandler.self) else {
            channel.close(promise: nil)
            return nil
        }
        self.pool = pool
        self.host = host
        self.port = port
        self.eventLoop = channel.eventLoop
        self.owner = owner
        self.connection = (channel, handler)
        handler.lease(to: self)
    }

    // MARK: - UpstreamStream (the front end's side)

    var isReceiving = true {
        didSet {
            guard isReceiving, readWaiting, let connection else { return }
            readWaiting = false
            connection.handler.read()
        }
    }

    var isWritable: Bool { connection?.handler.isWritable ?? false }

    func write(_ payload: HTTP2Frame.FramePayload) {
        guard let connection, !requestEnded else { return }
        switch payload {
        case .headers(let headers) where !requestHeadSent:
            requestHeadSent = true
            let head: HTTPRequestHead
            do {
                head = try HTTPHeadConversion.http1RequestHead(from: headers.headers, hasBody: !headers.endStream)
            } catch {
                // The front ends refuse such requests first; this keeps a pooled connection clean.
                failLater(ProxyError(.badRequest, "\(error)"))
                return
            }
            connection.handler.send(.head(head))
            if headers.endStream { endRequest(nil) }
            // The response is read from now on (the connection is read only when asked).
            connection.handler.read()
        case .headers(let trailers):
            endRequest(HTTPHeadConversion.http1Trailers(from: trailers.headers))
        case .data(let data):
            if case .byteBuffer(let body) = data.data, body.readableBytes > 0 {
                connection.handler.send(.body(.byteBuffer(body)))
            }
            if data.endStream { endRequest(nil) }
        default:
            break
        }
    }

    private func endRequest(_ trailers: HTTPHeaders?) {
        requestEnded = true
        connection?.handler.send(.end(trailers))
    }

    func flush() {
        connection?.handler.flush()
    }

    func reset(_ code: HTTP2ErrorCode) {
        closeConnection()
        let owner = self.owner
        self.owner = nil
        owner?.streamClosed(reason: code)
    }

    /// Whatever still arrives is read and dropped, up to the response's end (which releases or
    /// closes the connection).
    func detach() {
        owner = nil
        _ = framer.release()
        isReceiving = true
    }

    func resetUnlessClosed(after limit: TimeAmount) {
        guard connection != nil, closeDeadline == nil else { return }
        let bound = NIOLoopBound(self, eventLoop: eventLoop)
        closeDeadline = eventLoop.scheduleTask(in: limit) { bound.value.reset(.cancel) }
    }

    // MARK: - HTTP1AppConnectionOwner (the connection's side)

    func appReceived(_ part: HTTPClientResponsePart) {
        guard connection != nil else { return }
        switch part {
        case .head(let head) where head.status.code < 200:
            // Interim answers are not relayed (NIO's decoder drops them already); the final one follows.
            break
        case .head(let head):
            responseKeepAlive = head.isKeepAlive
            if let released = framer.push(part).released { owner?.streamReceived(released) }
        case .body:
            if let released = framer.push(part).released { owner?.streamReceived(released) }
        case .end:
            let (released, last) = framer.push(part)
            if let released { owner?.streamReceived(released) }
            // The exchange is over before the owner hears of its end: whatever it does next
            // (detach, reset) no longer touches the connection.
            finishExchange()
            if let last { owner?.streamReceived(last) }
            owner?.streamReadComplete()
            owner = nil
        }
    }

    func appReadComplete() {
        deliverHeld()
        owner?.streamReadComplete()
        guard let connection else { return }
        if isReceiving {
            connection.handler.read()
        } else {
            readWaiting = true
        }
    }

    func appWritabilityChanged(isWritable: Bool) {
        if isWritable { owner?.streamWritable() }
    }

    func appFailed(_ error: (any Error)?) {
        guard let connection else { return }
        self.connection = nil
        closeDeadline?.cancel()
        connection.channel.close(promise: nil)
        _ = framer.release()
        let owner = self.owner
        self.owner = nil
        owner?.streamClosed(reason: nil)
    }

    // MARK: - Helpers

    private func deliverHeld() {
        if let held = framer.release() { owner?.streamReceived(held) }
    }

    /// The response ended: the connection goes back to the pool if the whole request went out
    /// and the response allows it, else it is closed.
    private func finishExchange() {
        guard let connection else { return }
        self.connection = nil
        closeDeadline?.cancel()
        connection.handler.endLease()
        if requestEnded && responseKeepAlive {
            pool.release(connection.channel, host: host, port: port)
        } else {
            connection.channel.close(promise: nil)
        }
    }

    private func closeConnection() {
        guard let connection else { return }
        self.connection = nil
        closeDeadline?.cancel()
        connection.handler.endLease()
        connection.channel.close(promise: nil)
    }

    /// A failure found while the owner writes: told on the next tick, not inside its call.
    private func failLater(_ error: ProxyError) {
        closeConnection()
        let bound = NIOLoopBound(self, eventLoop: eventLoop)
        eventLoop.execute {
            let stream = bound.value
            let owner = stream.owner
            stream.owner = nil
            owner?.streamClosed(reason: .protocolError)
        }
    }
}

@available(*, unavailable)
extension PlainHTTP1Stream: Sendable {}
