package import NIOCore
import Synchronization

/// Fired down the pipeline of every connection a listener serves when the proxy begins a
/// graceful shutdown: take nothing new, finish what is in flight. HTTP/2 connections send GOAWAY
/// (``HTTP2ServerConnectionHandler``), an HTTP/1 connection closes once its current response is
/// out, a handshake in progress is refused; opaque connections go on until the grace period ends.
struct DrainEvent: Sendable {}

/// The open connections of a listener (the inbound, the outbound, the gateway), for graceful
/// shutdown: once ``drain(grace:on:)`` starts, new connections are refused, open ones are told to
/// finish (``DrainEvent``), whatever is still open when the grace period ends is closed, and the
/// returned future completes when the last one has closed. Connections are tracked by their
/// channels, not by tasks: most are served by channel handlers alone.
package final class ConnectionRegistry: Sendable {
    private struct State {
        var channels: [ObjectIdentifier: any Channel] = [:]
        /// Set once draining began: completed when the last connection closed.
        var drained: EventLoopPromise<Void>?
        var deadline: Scheduled<Void>?
    }

    private let state = Mutex(State())
    /// Read on every HTTP/1 response: an atomic, not the lock.
    private let draining = Atomic(false)

    package init() {}

    /// Tracks `channel` until it closes; false (and the caller must close it) when draining.
    func register(_ channel: any Channel) -> Bool {
        let id = ObjectIdentifier(channel)
        let accepted = state.withLock { state -> Bool in
            guard state.drained == nil else { return false }
            state.channels[id] = channel
            return true
        }
        guard accepted else { return false }
        channel.closeFuture.whenComplete { _ in
            let finished = self.state.withLock { state -> (EventLoopPromise<Void>, Scheduled<Void>?)? in
                state.channels[id] = nil
                guard let drained = state.drained, state.channels.isEmpty else { return nil }
                defer { state.deadline = nil }
                return (drained, state.deadline)
            }
            guard let (drained, deadline) = finished else { return }
            deadline?.cancel()
            drained.succeed(())
        }
        return true
    }

    /// The number of open connections.
    package var count: Int { state.withLock { $0.channels.count } }

    /// True once draining began: HTTP/1 connections close after their current response.
    var isDraining: Bool { draining.load(ordering: .relaxed) }

    /// Starts draining (a second call only returns the same future): refuses new connections,
    /// tells the open ones to finish, and closes those still open after `grace`. The future
    /// completes once every connection has closed.
    @discardableResult
    package func drain(grace: TimeAmount, on eventLoop: any EventLoop) -> EventLoopFuture<Void> {
        let (drained, channels, first) = state.withLock { state -> (EventLoopPromise<Void>, [any Channel], Bool) in
            if let drained = state.drained { return (drained, [], false) }
            let promise = eventLoop.makePromise(of: Void.self)
            state.drained = promise
            draining.store(true, ordering: .relaxed)
            if !state.channels.isEmpty {
                state.deadline = eventLoop.scheduleTask(in: grace) { self.closeAll() }
            }
            return (promise, Array(state.channels.values), true)
        }
        if first {
            if channels.isEmpty { drained.succeed(()) }
            for channel in channels {
                channel.pipeline.fireUserInboundEventTriggered(DrainEvent())
            }
        }
        return drained.futureResult
    }

    /// Serves a listener's connections until it closes: each one is registered, and `work` says
    /// (once its handshake or protocol detection is done) whether it needs a task of its own —
    /// an opaque connection does (`serve` runs for it, in one group); an HTTP one does not, its
    /// channel handlers serve it. Once the listener has closed (the shutdown), draining begins
    /// (`draining` is told first) and this returns when the last connection has closed.
    package func serveEach<Client: Sendable, Work: Sendable>(
        _ inbound: NIOAsyncChannelInboundStream<Client>, channel: @escaping @Sendable (Client) -> any Channel,
        grace: TimeAmount, on eventLoop: any EventLoop, draining: @escaping @Sendable () -> Void,
        work: @escaping @Sendable (Client) -> EventLoopFuture<Work?>,
        _ serve: @escaping @Sendable (Work) async -> Void
    ) async throws {
        let (tasks, taskSink) = AsyncStream.makeStream(of: Work.self)
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask {
                await withDiscardingTaskGroup { connections in
                    for await work in tasks {
                        connections.addTask { await serve(work) }
                    }
                }
            }
            defer {
                if !isDraining { draining() }
                drain(grace: grace, on: eventLoop)
                taskSink.finish()
            }
            for try await client in inbound {
                guard register(channel(client)) else {
                    channel(client).close(promise: nil)
                    continue
                }
                let accepted = channel(client)
                work(client).whenSuccess { work in
                    // One that turns opaque after the listener stopped taking work is closed at
                    // once, not left to the end of the grace period.
                    if let work, case .terminated = taskSink.yield(work) { accepted.close(promise: nil) }
                }
            }
        }
    }

    /// Closes every connection still open (when the grace period ends).
    private func closeAll() {
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
