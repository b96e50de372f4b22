import NIOCore

/// Sits under the HTTP/2 handler of a multiplexed connection (between it and TLS) and turns the
/// flushes of one event-loop tick into one: the first flush is deferred to a task that runs after
/// the tick's I/O, and later flushes in the same tick join it.
///
/// Every request stream flushes on its own (its HEADERS, then each response), and NIO's
/// multiplexer passes each straight to the connection when it is not itself reading. Fifty
/// client connections read in one tick then became fifty TLS records and fifty `write`
/// calls; coalesced they are one of each. The delay is the rest of the current tick.
final class FlushCoalescingHandler: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = NIOAny
    typealias OutboundOut = NIOAny

    private var flushScheduled = false
    private var context: ChannelHandlerContext?

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        if flushScheduled {
            flushScheduled = false
            context.flush()
        }
    }

    func flush(context: ChannelHandlerContext) {
        guard !flushScheduled else { return }
        flushScheduled = true
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        context.eventLoop.execute {
            loopBound.value.flushNow()
        }
    }

    private func flushNow() {
        guard flushScheduled else { return }
        flushScheduled = false
        context?.flush()
    }

    func close(context: ChannelHandlerContext, mode: CloseMode, promise: EventLoopPromise<Void>?) {
        // What was written before the close goes out first (a GOAWAY, the last response).
        if flushScheduled {
            flushScheduled = false
            context.flush()
        }
        context.close(mode: mode, promise: promise)
    }
}

@available(*, unavailable)
extension FlushCoalescingHandler: Sendable {}
