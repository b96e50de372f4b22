import NIOCore
import NIOHTTP2
import NIOPosix
import Synchronization

/// HTTP/2 prior-knowledge (h2c) connections to the application, one per app port and event loop,
/// each multiplexing every stream forwarded from that loop.
///
/// A connection is made on first use and forgotten when it closes or refuses a stream, so the
/// next request reconnects.
final class InboundHTTP2AppConnections: Sendable {
    private struct Key: Hashable {
        var port: Int
        var loop: ObjectIdentifier
    }

    private struct Entry {
        var id: Int
        var multiplexer: EventLoopFuture<NIOHTTP2Handler.StreamMultiplexer>
    }

    private struct State {
        var entries: [Key: Entry] = [:]
        var nextID = 0
        var channels: [Int: any Channel] = [:]
    }

    private let host: String
    private let connectTimeout: TimeAmount
    private let maxHeaderListSize: Int
    private let state = Mutex(State())

    init(host: String, connectTimeout: TimeAmount, maxHeaderListSize: Int) {
        self.host = host
        self.connectTimeout = connectTimeout
        self.maxHeaderListSize = maxHeaderListSize
    }

    /// Opens a stream to the application's `port` from `eventLoop`, set up by `initializer`.
    func openStream(
        port: Int, on eventLoop: any EventLoop, initializer: @escaping NIOChannelInitializer
    ) -> EventLoopFuture<any Channel> {
        let key = Key(port: port, loop: ObjectIdentifier(eventLoop))
        // Only `eventLoop` itself opens streams for its keys, so look-up and insert do not race.
        var current: Entry
        if let existing = state.withLock({ $0.entries[key] }) {
            current = existing
        } else {
            let id = state.withLock { state -> Int in
                state.nextID += 1
                return state.nextID
            }
            current = Entry(id: id, multiplexer: connect(port: port, on: eventLoop, key: key, id: id))
            let entry = current
            state.withLock { $0.entries[key] = entry }
        }
        let id = current.id
        return current.multiplexer.flatMap { multiplexer in
            let promise = eventLoop.makePromise(of: (any Channel).self)
            multiplexer.createStreamChannel(promise: promise, initializer)
            return promise.futureResult
        }.flatMapErrorThrowing { error in
            self.forget(key: key, id: id, close: true)
            throw error
        }
    }

    private func connect(
        port: Int, on eventLoop: any EventLoop, key: Key, id: Int
    ) -> EventLoopFuture<NIOHTTP2Handler.StreamMultiplexer> {
        let http2 = HTTP2Limits.configuration(settings: [
            HTTP2Setting(parameter: .maxHeaderListSize, value: maxHeaderListSize),
            HTTP2Setting(parameter: .enablePush, value: 0),
        ])
        return ClientBootstrap(group: eventLoop)
            .connectTimeout(connectTimeout)
            .channelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    _ = try channel.pipeline.syncOperations.configureHTTP2Pipeline(
                        mode: .client, connectionConfiguration: http2.connection, streamConfiguration: http2.stream,
                        inboundStreamInitializer: { stream in stream.close() }
                    )
                    try channel.pipeline.syncOperations.addHandler(InboundAppConnectionErrorHandler())
                }
            }
            .connect(host: host, port: port)
            .flatMapThrowing { channel in
                self.state.withLock { $0.channels[id] = channel }
                channel.closeFuture.whenComplete { _ in self.forget(key: key, id: id, close: false) }
                return try channel.pipeline.syncOperations.handler(type: NIOHTTP2Handler.self).syncMultiplexer()
            }
            .flatMapErrorThrowing { error in
                self.forget(key: key, id: id, close: false)
                throw error
            }
    }

    /// Drops connection `id` (only if it is still the current one for `key`).
    private func forget(key: Key, id: Int, close: Bool) {
        let channel = state.withLock { state -> (any Channel)? in
            if state.entries[key]?.id == id { state.entries[key] = nil }
            return state.channels.removeValue(forKey: id)
        }
        if close { channel?.close(promise: nil) }
    }

    /// Closes every connection (at shutdown).
    func closeAll() {
        let channels = state.withLock { state -> [any Channel] in
            defer {
                state.entries = [:]
                state.channels = [:]
            }
            return Array(state.channels.values)
        }
        for channel in channels { channel.close(promise: nil) }
    }
}

/// The tail of an application connection: a connection error closes it (its streams see the
/// closure and answer their callers).
final class InboundAppConnectionErrorHandler: ChannelInboundHandler {
    typealias InboundIn = NIOAny

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }
}

@available(*, unavailable)
extension InboundAppConnectionErrorHandler: Sendable {}
