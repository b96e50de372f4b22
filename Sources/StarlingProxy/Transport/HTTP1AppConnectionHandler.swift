import NIOCore
import NIOHTTP1

/// What an HTTP/1.1 application connection reports to the stream that has leased it.
protocol HTTP1AppConnectionOwner: AnyObject {
    func appReceived(_ part: HTTPClientResponsePart)
    func appReadComplete()
    func appWritabilityChanged(isWritable: Bool)
    /// The connection closed or failed; it is gone for good.
    func appFailed(_ error: (any Error)?)
}

/// The last handler of a pooled HTTP/1.1 connection to the application: relays response parts to
/// the stream that leased the connection, and carries out its writes and read requests.
///
/// While idle in the pool it keeps one read outstanding, so the application closing a kept-alive
/// connection is noticed at once, and closes the connection after `idleTimeout` unused (or when
/// the application sends anything unasked).
final class HTTP1AppConnectionHandler: ChannelDuplexHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundIn = HTTPClientRequestPart
    typealias OutboundOut = HTTPClientRequestPart

    private let idleTimeout: TimeAmount
    private var context: ChannelHandlerContext?
    private var owner: (any HTTP1AppConnectionOwner)?
    /// Closes the connection once idle in the pool for `idleTimeout` (re-armed every exchange).
    private var idleCheck: DeadlineCheck?

    init(idleTimeout: TimeAmount) {
        self.idleTimeout = idleTimeout
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        let channel = context.channel
        idleCheck = DeadlineCheck(eventLoop: context.eventLoop) { channel.close(promise: nil) }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        idleCheck?.cancel()
        idleCheck = nil
    }

    // MARK: - Lease

    func lease(to owner: any HTTP1AppConnectionOwner) {
        idleCheck?.disarm()
        self.owner = owner
    }

    /// Back to idle: the exchange is complete.
    func endLease() {
        owner = nil
        guard let context else { return }
        idleCheck?.arm(in: idleTimeout)
        context.read()
    }

    func send(_ part: HTTPClientRequestPart) {
        context?.write(wrapOutboundOut(part), promise: nil)
    }

    func flush() {
        context?.flush()
    }

    func read() {
        context?.read()
    }

    var isWritable: Bool { context?.channel.isWritable ?? false }

    // MARK: - Events

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard let owner else {
            // Nothing is owed to anyone on an idle connection.
            context.close(promise: nil)
            return
        }
        owner.appReceived(unwrapInboundIn(data))
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        owner?.appReadComplete()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        owner?.appWritabilityChanged(isWritable: context.channel.isWritable)
    }

    func channelInactive(context: ChannelHandlerContext) {
        idleCheck?.cancel()
        let owner = self.owner
        self.owner = nil
        owner?.appFailed(nil)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        let owner = self.owner
        self.owner = nil
        owner?.appFailed(error)
        context.close(promise: nil)
    }
}

@available(*, unavailable)
extension HTTP1AppConnectionHandler: Sendable {}
