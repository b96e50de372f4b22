import NIOCore
import Synchronization

/// The client connections the outbound proxy is serving, each in its own task, so that a
/// shutdown can stop accepting yet let requests in flight finish: cancelling the listener must
/// not cancel them. ``drain(grace:)`` waits for them, then closes what is left.
final class ConnectionRegistry: Sendable {
    private struct State {
        var connections: [Int: (task: Task<Void, Never>, channel: any Channel)] = [:]
        var nextID = 0
        var draining = false
    }

    private let state = Mutex(State())

    /// Serves one connection in its own task, tracked until it ends.
    func start(channel: any Channel, _ operation: @escaping @Sendable () async -> Void) {
        state.withLock { state in
            let id = state.nextID
            state.nextID += 1
            let task = Task {
                await operation()
                self.finished(id)
            }
            state.connections[id] = (task, channel)
        }
    }

    private func finished(_ id: Int) {
        _ = state.withLock { $0.connections.removeValue(forKey: id) }
    }

    /// True once a shutdown began: HTTP/1 connections close after their current request.
    var isDraining: Bool { state.withLock { $0.draining } }

    var count: Int { state.withLock { $0.connections.count } }

    /// The channels of the connections being served (e.g. to tell them a drain began).
    var channels: [any Channel] { state.withLock { $0.connections.values.map(\.channel) } }

    /// Waits up to `grace` for every connection to finish, then closes the rest and waits for
    /// their tasks.
    func drain(grace: Duration) async {
        state.withLock { $0.draining = true }
        let deadline = ContinuousClock.now + grace
        while count > 0, ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(20))
        }
        let remaining = state.withLock { Array($0.connections.values) }
        for connection in remaining {
            connection.channel.close(promise: nil)
        }
        for connection in remaining {
            await connection.task.value
        }
    }
}
