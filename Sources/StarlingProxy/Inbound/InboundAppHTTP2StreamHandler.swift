import NIOCore
import NIOHTTP2

/// What a stream on the application's h2c connection reports to the inbound stream it serves.
protocol InboundHTTP2AppOwner: AnyObject {
    func appReceived(_ payload: HTTP2Frame.FramePayload)
    func appReadComplete()
    func appWritabilityChanged(isWritable: Bool)
    /// The application stream closed (normally after the response, or reset before it).
    func appClosed(_ error: (any Error)?)
}

/// The one handler of a stream on the application's h2c connection: relays what the application
/// sends to the inbound stream that opened it, and carries out that stream's writes and reads.
final class InboundAppHTTP2StreamHandler: ChannelInboundHandler {
    typealias InboundIn = HTTP2Frame.FramePayload
    typealias OutboundOut = HTTP2Frame.FramePayload

    private var owner: (any InboundHTTP2AppOwner)?
    private var context: ChannelHandlerContext?
    private var error: (any Error)?

    init(owner: any InboundHTTP2AppOwner) {
        self.owner = owner
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    func send(_ payload: HTTP2Frame.FramePayload) {
        context?.write(wrapOutboundOut(payload), promise: nil)
    }

    func flush() {
        context?.flush()
    }

    func read() {
        context?.read()
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
        owner?.appReadComplete()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        owner?.appWritabilityChanged(isWritable: context.channel.isWritable)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A reset from the application arrives as an error, then the stream closes.
        self.error = error
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        let owner = self.owner
        self.owner = nil
        owner?.appClosed(error)
    }
}

@available(*, unavailable)
extension InboundAppHTTP2StreamHandler: Sendable {}
