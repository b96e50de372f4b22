import NIOCore
import NIOEmbedded
import Testing

@testable import StarlingProxy

/// The handler under a multiplexed connection's HTTP/2 handler that makes one flush of a tick's
/// many (one TLS record and one `write` instead of one per request stream).
struct FlushCoalescingTests {
    /// Counts the flushes that get past the coalescing handler (it sits nearer the socket).
    private final class FlushCounter: ChannelOutboundHandler {
        typealias OutboundIn = NIOAny
        var flushes = 0
        func flush(context: ChannelHandlerContext) {
            flushes += 1
            context.flush()
        }
    }

    private func makeChannel() throws -> (EmbeddedChannel, FlushCounter) {
        let counter = FlushCounter()
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(counter)
        try channel.pipeline.syncOperations.addHandler(FlushCoalescingHandler())
        return (channel, counter)
    }

    @Test func flushesOfOneTickGoOutAsOneAfterTheTick() throws {
        let (channel, counter) = try makeChannel()
        for index in 0..<50 {
            channel.write(ByteBuffer(string: "frame \(index)\n"), promise: nil)
            channel.flush()
        }
        // Nothing has gone out yet: the flush waits for the end of the tick.
        #expect(counter.flushes == 0)
        #expect(try channel.readOutbound(as: ByteBuffer.self) == nil)

        channel.embeddedEventLoop.run()
        #expect(counter.flushes == 1)
        var received: [String] = []
        while let buffer = try channel.readOutbound(as: ByteBuffer.self) {
            received.append(String(buffer: buffer))
        }
        #expect(received == (0..<50).map { "frame \($0)\n" })

        // The next tick's flush is its own.
        channel.writeAndFlush(ByteBuffer(string: "later"), promise: nil)
        channel.embeddedEventLoop.run()
        #expect(counter.flushes == 2)
        #expect(try channel.readOutbound(as: ByteBuffer.self).map { String(buffer: $0) } == "later")
        _ = try channel.finish()
    }

    @Test func closeSendsWhatWasWrittenFirst() throws {
        let (channel, counter) = try makeChannel()
        channel.write(ByteBuffer(string: "goaway"), promise: nil)
        channel.flush()
        channel.close(promise: nil)
        // The pending flush went out with the close, not after it.
        #expect(counter.flushes == 1)
        #expect(try channel.readOutbound(as: ByteBuffer.self).map { String(buffer: $0) } == "goaway")
        channel.embeddedEventLoop.run()
        #expect(counter.flushes == 1)
    }
}
