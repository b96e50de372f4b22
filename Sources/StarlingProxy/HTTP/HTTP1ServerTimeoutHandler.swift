public import NIOCore

/// Events an HTTP/1 server sends down its pipeline (`triggerUserOutboundEvent`) so that
/// ``HTTP1ServerTimeoutHandler`` knows where in the request cycle the connection is.
public enum HTTP1ServerTimeoutEvent: Sendable {
    /// A complete request head was decoded.
    case requestHeadReceived
    /// The response to the current request was fully written.
    case responseCompleted
}

/// Where an HTTP/1 server connection is, for its timeouts (pure; the handler carries out actions).
public struct HTTP1ServerTimeoutStateMachine: Sendable, Hashable {
    public enum State: Sendable, Hashable {
        /// Between requests, nothing read yet.
        case idle
        /// Bytes of a request head arrived; the head must complete before the header timeout.
        case readingHead
        /// A request is being served.
        case inRequest
    }

    public enum Action: Sendable, Hashable {
        case none
        case armHeaderTimer
        case cancelHeaderTimer
    }

    public private(set) var state: State = .idle

    public init() {}

    public mutating func bytesRead() -> Action {
        guard state == .idle else { return .none }
        state = .readingHead
        return .armHeaderTimer
    }

    public mutating func headReceived() -> Action {
        let wasReading = state == .readingHead
        state = .inRequest
        return wasReading ? .cancelHeaderTimer : .none
    }

    public mutating func responseCompleted() -> Action {
        let wasReading = state == .readingHead
        state = .idle
        return wasReading ? .cancelHeaderTimer : .none
    }
}

/// Slowloris protection for an HTTP/1 server connection, placed before the HTTP decoder:
///
/// - once the first byte of a request head arrives, the head must be complete within
///   `headerTimeout` (the server reports completion with ``HTTP1ServerTimeoutEvent``);
/// - a connection with no reads or writes for `idleTimeout` is closed.
public final class HTTP1ServerTimeoutHandler: ChannelDuplexHandler {
    public typealias InboundIn = ByteBuffer
    public typealias InboundOut = ByteBuffer
    public typealias OutboundIn = IOData
    public typealias OutboundOut = IOData

    private let headerTimeout: TimeAmount
    private let idleTimeout: TimeAmount
    private var machine = HTTP1ServerTimeoutStateMachine()
    /// The head being read must be complete by its deadline (armed and disarmed every request).
    private var headerCheck: DeadlineCheck?
    private var idleTimer: Scheduled<Void>?
    private var lastActivity = NIODeadline.now()

    public init(headerTimeout: TimeAmount, idleTimeout: TimeAmount) {
        self.headerTimeout = headerTimeout
        self.idleTimeout = idleTimeout
    }

    public func handlerAdded(context: ChannelHandlerContext) {
        let channel = context.channel
        headerCheck = DeadlineCheck(eventLoop: context.eventLoop) { channel.close(promise: nil) }
        scheduleIdleCheck(context: context, after: idleTimeout)
    }

    public func handlerRemoved(context: ChannelHandlerContext) {
        headerCheck?.cancel()
        headerCheck = nil
        idleTimer?.cancel()
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        lastActivity = .now()
        perform(machine.bytesRead(), context: context)
        context.fireChannelRead(data)
    }

    public func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        lastActivity = .now()
        context.write(data, promise: promise)
    }

    public func triggerUserOutboundEvent(context: ChannelHandlerContext, event: Any, promise: EventLoopPromise<Void>?) {
        switch event as? HTTP1ServerTimeoutEvent {
        case .requestHeadReceived:
            perform(machine.headReceived(), context: context)
            promise?.succeed()
        case .responseCompleted:
            perform(machine.responseCompleted(), context: context)
            promise?.succeed()
        case nil:
            context.triggerUserOutboundEvent(event, promise: promise)
        }
    }

    private func perform(_ action: HTTP1ServerTimeoutStateMachine.Action, context: ChannelHandlerContext) {
        switch action {
        case .none:
            break
        case .armHeaderTimer:
            headerCheck?.arm(in: headerTimeout)
        case .cancelHeaderTimer:
            headerCheck?.disarm()
        }
    }

    private func scheduleIdleCheck(context: ChannelHandlerContext, after delay: TimeAmount) {
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        idleTimer = context.eventLoop.scheduleTask(in: delay) {
            let (handler, context) = loopBound.value
            let quiet = NIODeadline.now() - handler.lastActivity
            if quiet >= handler.idleTimeout {
                context.close(promise: nil)
            } else {
                handler.scheduleIdleCheck(context: context, after: handler.idleTimeout - quiet)
            }
        }
    }
}

@available(*, unavailable)
extension HTTP1ServerTimeoutHandler: Sendable {}
