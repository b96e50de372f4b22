import NIOCore

/// Counts an accepted connection's bytes and reports them, with its open and its close (by the
/// protocol it turned out to speak), to its ``Sink``. First handler of every connection the
/// outbound, the inbound and the gateway accept: the bytes are the wire's (TLS records included
/// on the inbound and the gateway).
package final class ConnectionMetricsHandler: ChannelDuplexHandler {
    /// Where a connection's open and close are counted.
    package struct Sink: Sendable {
        var opened: @Sendable () -> Void
        var closed: @Sendable (_ kind: String, _ bytesRead: Int, _ bytesWritten: Int) -> Void

        package init(
            opened: @escaping @Sendable () -> Void,
            closed: @escaping @Sendable (_ kind: String, _ bytesRead: Int, _ bytesWritten: Int) -> Void
        ) {
            self.opened = opened
            self.closed = closed
        }

        static let outbound = Sink(
            opened: { OutboundMetrics.connectionOpened() },
            closed: { OutboundMetrics.connectionClosed(kind: $0, bytesRead: $1, bytesWritten: $2) })
        static let inbound = Sink(
            opened: { InboundMetrics.connectionOpened() },
            closed: { InboundMetrics.connectionClosed(kind: $0, bytesRead: $1, bytesWritten: $2) })
    }

    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = IOData
    typealias OutboundOut = IOData

    private let sink: Sink
    private var bytesRead = 0
    private var bytesWritten = 0
    private var open = false
    /// The detected protocol, set once known (`http1`, `http2`, `opaque`, `h2`, `unknown`).
    package var kind = "unknown"

    package init(_ sink: Sink) {
        self.sink = sink
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { opened() }
    }

    func channelActive(context: ChannelHandlerContext) {
        opened()
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        if open {
            open = false
            sink.closed(kind, bytesRead, bytesWritten)
        }
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        bytesRead += unwrapInboundIn(data).readableBytes
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        bytesWritten += unwrapOutboundIn(data).readableBytes
        context.write(data, promise: promise)
    }

    private func opened() {
        guard !open else { return }
        open = true
        sink.opened()
    }
}

@available(*, unavailable)
extension ConnectionMetricsHandler: Sendable {}
