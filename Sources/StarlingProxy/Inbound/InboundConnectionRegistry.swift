import NIOCore
import Synchronization

/// The listener's open connections, for graceful shutdown: once draining starts, new connections
/// are refused, open ones are told to finish (``InboundDrainEvent``), and ``drained`` completes
/// when the last one has closed.
final class InboundConnectionRegistry: Sendable {
    private struct State {
        var channels: [ObjectIdentifier: any Channel] = [:]
        var draining = false
        var waiters: [EventLoopPromise<Void>] = []
    }

    private let state = Mutex(State())

    /// Tracks `channel` until it closes; false (and the caller must close it) when draining.
    func register(_ channel: any Channel) -> Bool {
        let id = ObjectIdentifier(channel)
        let accepted = state.withLock { state -> Bool in
            guard !state.draining else { return false }
            state.channels[id] = channel
            return true
        }
        guard accepted else { return false }
        channel.closeFuture.whenComplete { _ in
            let waiters = self.state.withLock { state -> [EventLoopPromise<Void>] in
                state.channels[id] = nil
                guard state.draining, state.channels.isEmpty else { return [] }
                defer { state.waiters = [] }
                return state.waiters
            }
            for waiter in waiters { waiter.succeed(()) }
        }
        return true
    }

    /// The number of open connections.
    var count: Int { state.withLock { $0.channels.count } }

    /// Starts draining: refuses new connections and tells the open ones to finish. The future
    /// completes when every connection has closed.
    func drain(on eventLoop: any EventLoop) -> EventLoopFuture<Void> {
        let promise = eventLoop.makePromise(of: Void.self)
        let channels = state.withLock { state -> [any Channel] in
            state.draining = true
            if state.channels.isEmpty {
                return []
            }
            state.waiters.append(promise)
            return Array(state.channels.values)
        }
        if channels.isEmpty {
            promise.succeed(())
        }
        for channel in channels {
            channel.pipeline.fireUserInboundEventTriggered(InboundDrainEvent())
        }
        return promise.futureResult
    }

    /// Closes every connection still open (after the drain timeout).
    func closeAll() {
        let channels = state.withLock { Array($0.channels.values) }
        for channel in channels {
            // Opaque connections read on demand and allow half-closure; the TLS handler needs
            // reads, and half-closure off, to finish closing promptly.
            channel.setOption(ChannelOptions.allowRemoteHalfClosure, value: false)
                .flatMap { channel.setOption(ChannelOptions.autoRead, value: true) }
                .whenComplete { _ in channel.close(promise: nil) }
        }
    }
}
