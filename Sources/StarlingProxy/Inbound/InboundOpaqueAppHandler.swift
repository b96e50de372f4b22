import NIOCore

/// What the application side of an opaque connection reports to the caller side.
protocol InboundOpaqueAppOwner: AnyObject {
    func appReceived(_ bytes: ByteBuffer)
    func appReadComplete(_ app: InboundOpaqueAppHandler)
    func appWritabilityChanged(isWritable: Bool)
    /// The application closed its sending side.
    func appInputClosed()
    /// The application connection is gone.
    func appClosed()
}

/// The one handler of an opaque connection's application side: relays bytes to the caller side
/// and carries out its writes, reads and half-close.
final class InboundOpaqueAppHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private var owner: (any InboundOpaqueAppOwner)?
    private var context: ChannelHandlerContext?

    init(owner: any InboundOpaqueAppOwner) {
        self.owner = owner
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    func send(_ bytes: ByteBuffer) {
        context?.write(wrapOutboundOut(bytes), promise: nil)
    }

    func flush() {
        context?.flush()
    }

    func read() {
        context?.read()
    }

    func closeOutput() {
        context?.close(mode: .output, promise: nil)
    }

    func close() {
        owner = nil
        context?.close(promise: nil)
    }

    var isWritable: Bool { context?.channel.isWritable ?? false }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        owner?.appReceived(unwrapInboundIn(data))
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        owner?.appReadComplete(self)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        owner?.appWritabilityChanged(isWritable: context.channel.isWritable)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case ChannelEvent.inputClosed = event {
            owner?.appInputClosed()
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        let owner = self.owner
        self.owner = nil
        owner?.appClosed()
    }
}

@available(*, unavailable)
extension InboundOpaqueAppHandler: Sendable {}
