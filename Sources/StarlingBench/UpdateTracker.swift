import Synchronization

/// Collects what the open destination streams receive, so the benchmark can tell when the last of
/// them has seen a change and at what instant.
///
/// Streams call ``record(_:at:)`` with the events of each message (`add IP`, `remove IP`, `none`)
/// and the instant it was read; the driver calls ``wait(for:count:timeout:)`` for one event at a
/// time. Only one wait is active at once; each gets a generation number, so a timeout that fires
/// late can never cut short a later wait.
final class UpdateTracker: Sendable {
    typealias Instant = ContinuousClock.Instant

    private struct Waiter {
        var generation: Int
        var event: String
        var target: Int
        var continuation: CheckedContinuation<Bool, Never>
    }

    private struct State {
        var counts: [String: Int] = [:]
        var last: [String: Instant] = [:]
        var waiter: Waiter?
        var generation = 0
        var expiredGeneration = -1
        var failures: [String] = []
    }

    private let state = Mutex(State())

    /// Counts each of `events` once more and stamps it with `instant`.
    func record(_ events: [String], at instant: Instant) {
        let ready: CheckedContinuation<Bool, Never>? = state.withLock { state in
            for event in events {
                state.counts[event, default: 0] += 1
                state.last[event] = instant
            }
            guard let waiter = state.waiter, state.counts[waiter.event, default: 0] >= waiter.target else { return nil }
            state.waiter = nil
            return waiter.continuation
        }
        ready?.resume(returning: true)
    }

    /// A stream ended or failed while the benchmark still needed it; any wait fails at once.
    func streamFailed(_ description: String) {
        let waiting: CheckedContinuation<Bool, Never>? = state.withLock { state in
            state.failures.append(description)
            defer { state.waiter = nil }
            return state.waiter?.continuation
        }
        waiting?.resume(returning: false)
    }

    /// The streams that ended early, with why.
    var failures: [String] { state.withLock { $0.failures } }

    /// How many times `event` was seen, and the instant of the latest.
    func seen(_ event: String) -> (count: Int, last: Instant?) {
        state.withLock { ($0.counts[event, default: 0], $0.last[event]) }
    }

    /// Waits until `event` has been seen `count` times (true), or `timeout` passes or a stream
    /// fails (false).
    func wait(for event: String, count: Int, timeout: Duration) async -> Bool {
        let generation = state.withLock { state in
            state.generation += 1
            return state.generation
        }
        return await withTaskGroup(of: Bool.self) { group in
            group.addTask { await self.waitUntilSeen(event, count: count, generation: generation) }
            group.addTask {
                try? await Task.sleep(for: timeout)
                if !Task.isCancelled { self.expire(generation) }
                return false
            }
            let first = await group.next() ?? false
            group.cancelAll()
            return first
        }
    }

    private func waitUntilSeen(_ event: String, count: Int, generation: Int) async -> Bool {
        await withCheckedContinuation { continuation in
            let answer: Bool? = state.withLock { state in
                if state.counts[event, default: 0] >= count { return true }
                if !state.failures.isEmpty || state.expiredGeneration == generation { return false }
                state.waiter = Waiter(generation: generation, event: event, target: count, continuation: continuation)
                return nil
            }
            if let answer { continuation.resume(returning: answer) }
        }
    }

    private func expire(_ generation: Int) {
        let waiting: CheckedContinuation<Bool, Never>? = state.withLock { state in
            state.expiredGeneration = generation
            guard let waiter = state.waiter, waiter.generation == generation else { return nil }
            state.waiter = nil
            return waiter.continuation
        }
        waiting?.resume(returning: false)
    }
}
