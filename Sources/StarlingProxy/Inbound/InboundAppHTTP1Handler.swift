import NIOCore
import NIOHTTP1

/// What an HTTP/1.1 application connection reports to the stream that has leased it.
protocol InboundHTTP1AppOwner: AnyObject {
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
final class InboundAppHTTP1Handler: ChannelDuplexHandler {
    typealias InboundIn = HTTPClientResponsePart
    typealias OutboundIn = HTTPClientRequestPart
    typealias OutboundOut = HTTPClientRequestPart

    private let idleTimeout: TimeAmount
    private var context: ChannelHandlerContext?
    private var owner: (any InboundHTTP1AppOwner)?
    /// Since when the connection is idle in the pool; nil while leased.
    private var idleSince: NIODeadline?
    /// One check at a time, re-armed from `idleSince` (a timer scheduled and cancelled per
    /// exchange cost more than the exchange's own bookkeeping).
    private var idleCheck: Scheduled<Void>?

    init(idleTimeout: TimeAmount) {
        self.idleTimeout = idleTimeout
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        idleCheck?.cancel()
    }

    // MARK: - Lease

    func lease(to owner: any InboundHTTP1AppOwner) {
        idleSince = nil
        self.owner = owner
    }

    /// Back to idle: the exchange is complete.
    func endLease() {
        owner = nil
        guard let context else { return }
        let now = NIODeadline.now()
        idleSince = now
        if idleCheck == nil { scheduleIdleCheck(context: context, at: now + idleTimeout) }
        context.read()
    }

    private func scheduleIdleCheck(context: ChannelHandlerContext, at deadline: NIODeadline) {
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        idleCheck = context.eventLoop.scheduleTask(deadline: deadline) {
            let (handler, context) = loopBound.value
            handler.idleCheck = nil
            guard let since = handler.idleSince else { return }
            let due = since + handler.idleTimeout
            if NIODeadline.now() >= due {
                context.close(promise: nil)
            } else {
                handler.scheduleIdleCheck(context: context, at: due)
            }
        }
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
extension InboundAppHTTP1Handler: Sendable {}
