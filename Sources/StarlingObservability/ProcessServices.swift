public import ServiceLifecycle
import Synchronization

/// The admin endpoint as a service of a process's `ServiceGroup`: it serves until its turn to
/// stop (put it first in the group, so that it stops last), or until cancelled, then closes.
public struct AdminServerService: Service {
    public let server: AdminServer

    public init(server: AdminServer) {
        self.server = server
    }

    public func run() async throws {
        await withDiscardingTaskGroup { group in
            group.addTask { await server.runStreams() }
            // Thrown by a cancellation: the endpoint closes then too, and its streams end.
            try? await gracefulShutdown()
            await server.close()
            group.cancelAll()
        }
    }
}

/// A long-running piece that stops by cancellation (draining first, if it has anything to drain),
/// as a service: its graceful shutdown cancels it. What it throws once it is stopping is the stop
/// itself, not a failure of the group.
public struct StoppedOnShutdown: Service {
    private let onShutdown: @Sendable () -> Void
    private let body: @Sendable () async throws -> Void

    /// - Parameter onShutdown: called when its graceful shutdown begins (before the cancellation).
    public init(onShutdown: @escaping @Sendable () -> Void = {}, _ body: @escaping @Sendable () async throws -> Void) {
        self.onShutdown = onShutdown
        self.body = body
    }

    public func run() async throws {
        let stopping = Atomic(false)
        do {
            try await withGracefulShutdownHandler {
                try await cancelWhenGracefulShutdown(body)
            } onGracefulShutdown: {
                stopping.store(true, ordering: .releasing)
                onShutdown()
            }
        } catch where stopping.load(ordering: .acquiring) || Task.isCancelled {
        }
    }
}
