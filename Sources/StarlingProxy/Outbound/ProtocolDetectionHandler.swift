import NIOCore

/// The first handler of an outbound connection: holds the first bytes until
/// ``ProtocolDetector`` can classify them (or `timeout` passes), reports the result through
/// ``outcome``, and — once the caller has built the rest of the pipeline — removes itself,
/// replaying the held bytes so the protocol handlers see the connection from its first byte.
final class ProtocolDetectionHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    enum Outcome: Sendable, Hashable {
        case detected(ProtocolDetector.Detected)
        /// Nothing recognisable arrived within the timeout (a silent or server-speaks-first client).
        case timedOut
        /// The client closed before a decision.
        case closed
    }

    private let promise: EventLoopPromise<Outcome>
    private let timeout: TimeAmount
    private var buffered: ByteBuffer?
    private var timer: Scheduled<Void>?
    private var decided = false

    var outcome: EventLoopFuture<Outcome> { promise.futureResult }

    init(eventLoop: any EventLoop, timeout: TimeAmount) {
        self.promise = eventLoop.makePromise(of: Outcome.self)
        self.timeout = timeout
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        timer = context.eventLoop.scheduleTask(in: timeout) {
            loopBound.value.decide(.timedOut)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        guard !decided else {
            // Between the decision and this handler's removal: keep holding.
            buffered.setOrWriteBuffer(&bytes)
            return
        }
        buffered.setOrWriteBuffer(&bytes)
        if case .detected(let detected) = ProtocolDetector.decide(buffered!) {
            decide(.detected(detected))
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        decide(.closed)
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        decide(.closed)
    }

    func removeHandler(context: ChannelHandlerContext, removalToken: ChannelHandlerContext.RemovalToken) {
        if let bytes = buffered {
            buffered = nil
            context.fireChannelRead(wrapInboundOut(bytes))
            context.fireChannelReadComplete()
        }
        context.leavePipeline(removalToken: removalToken)
    }

    private func decide(_ outcome: Outcome) {
        guard !decided else { return }
        decided = true
        timer?.cancel()
        promise.succeed(outcome)
    }
}

@available(*, unavailable)
extension ProtocolDetectionHandler: Sendable {}
