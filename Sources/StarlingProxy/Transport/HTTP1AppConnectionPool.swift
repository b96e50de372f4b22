import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// Kept-alive HTTP/1.1 connections to applications, per address and event loop: the inbound's to
/// its workload, the outbound's to plain endpoints (outside the mesh, ``PlainHTTP1Stream``).
///
/// A connection lives on the event loop of the stream that uses it, so the stream and the
/// connection hand bytes to each other without hopping threads. A connection serves one exchange
/// at a time: it is leased by ``idleConnection(host:port:on:)`` or ``connect(host:port:on:timeout:)``
/// and comes back with ``release(_:host:port:)`` only after a complete exchange whose response
/// allowed keep-alive.
package final class HTTP1AppConnectionPool: Sendable {
    private struct Key: Hashable {
        var host: String
        var port: Int
        var loop: ObjectIdentifier
    }

    private let connectTimeout: TimeAmount
    private let idleTimeout: TimeAmount
    private let maxIdlePerKey: Int
    /// One key's idle connections. A reference: taking one out is then a plain look-up (an
    /// in-place edit of an array inside the dictionary cost an allocation per request).
    private final class IdleList {
        var channels: [any Channel] = []
    }

    private let idle = Mutex<[Key: IdleList]>([:])

    init(connectTimeout: TimeAmount, idleTimeout: TimeAmount, maxIdlePerKey: Int) {
        self.connectTimeout = connectTimeout
        self.idleTimeout = idleTimeout
        self.maxIdlePerKey = maxIdlePerKey
    }

    /// A new connection to `host:port` on `eventLoop` (for when ``idleConnection(host:port:on:)``
    /// had none), leased. The future fails when connecting fails, or takes longer than `timeout`
    /// (when shorter than the pool's connect timeout).
    func connect(host: String, port: Int, on eventLoop: any EventLoop, timeout: TimeAmount? = nil) -> EventLoopFuture<any Channel> {
        let idleTimeout = idleTimeout
        return ClientBootstrap(group: eventLoop)
            .connectTimeout(min(timeout ?? connectTimeout, connectTimeout))
            .channelOption(ChannelOptions.autoRead, value: false)
            .channelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(HTTP1AppConnectionHandler(idleTimeout: idleTimeout))
                }
            }
            .connect(host: host, port: port)
    }

    /// An idle connection to `host:port` on `eventLoop`, leased, if there is one (the per-request
    /// path: no future, no callback).
    func idleConnection(host: String, port: Int, on eventLoop: any EventLoop) -> (any Channel)? {
        let key = Key(host: host, port: port, loop: ObjectIdentifier(eventLoop))
        while let channel = idle.withLock({ $0[key]?.channels.popLast() }) {
            if channel.isActive { return channel }
        }
        return nil
    }

    /// Returns a connection after a complete exchange; it is closed instead when too many are idle.
    func release(_ channel: any Channel, host: String, port: Int) {
        let key = Key(host: host, port: port, loop: ObjectIdentifier(channel.eventLoop))
        guard channel.isActive else {
            channel.close(promise: nil)
            return
        }
        let kept = idle.withLock { idle -> Bool in
            // Connections the app closed while idle are dropped in `acquire`, and here only when
            // the list is full (a scan on every release would cost more than the exchange); no
            // per-release close callback, which would pile up on a long-lived connection.
            let list: IdleList
            if let existing = idle[key] {
                list = existing
            } else {
                list = IdleList()
                idle[key] = list
            }
            if list.channels.count >= maxIdlePerKey { list.channels.removeAll { !$0.isActive } }
            guard list.channels.count < maxIdlePerKey else { return false }
            list.channels.append(channel)
            return true
        }
        if !kept { channel.close(promise: nil) }
    }

    /// Closes every idle connection (at shutdown).
    func closeAll() {
        let channels = idle.withLock { idle -> [any Channel] in
            defer { idle = [:] }
            return idle.values.flatMap { $0.channels }
        }
        for channel in channels { channel.close(promise: nil) }
    }
}
