import StarlingCore
import Synchronization

/// The live watchers of one store.
///
/// Changes are published from the database writer's queue right after their transaction commits, so
/// `publish` is called in version order and never concurrently with itself. The registry lock is held
/// only to add, remove or copy the subscriber list; each subscriber has its own lock for its replay
/// state, and no lock is ever held during database I/O or while finishing a stream (finishing runs
/// `onTermination`, which takes the registry lock).
final class WatchHub: Sendable {
    private struct Registry {
        var subscribers: [UInt64: WatchSubscriber] = [:]
        var nextID: UInt64 = 0
        var closed = false
    }

    private let registry = Mutex(Registry())

    var isClosed: Bool { registry.withLock { $0.closed } }
    var count: Int { registry.withLock { $0.subscribers.count } }

    /// Registers a subscriber made by `make`; nil when the store is closed.
    func add(_ make: (UInt64) -> WatchSubscriber) -> WatchSubscriber? {
        registry.withLock { r in
            guard !r.closed else { return nil }
            r.nextID += 1
            let subscriber = make(r.nextID)
            r.subscribers[subscriber.id] = subscriber
            return subscriber
        }
    }

    func remove(_ id: UInt64) {
        _ = registry.withLock { $0.subscribers.removeValue(forKey: id) }
    }

    /// Delivers committed changes, oldest first, to every subscriber.
    func publish(_ events: [WatchEvent]) {
        guard !events.isEmpty else { return }
        let subscribers = registry.withLock { Array($0.subscribers.values) }
        for subscriber in subscribers {
            subscriber.deliverLive(events)
        }
    }

    /// Finishes the current subscribers with `error` and keeps accepting new ones: their changes
    /// can no longer be delivered without a gap (they list again and watch from the listed version).
    func finishAll(with error: StoreError) {
        let subscribers = registry.withLock { r in
            defer { r.subscribers.removeAll() }
            return Array(r.subscribers.values)
        }
        for subscriber in subscribers {
            subscriber.finish(throwing: error)
        }
    }

    /// Refuses new subscribers and finishes the current ones with `error`.
    func close(finishingWith error: StoreError) {
        registry.withLock { $0.closed = true }
        finishAll(with: error)
    }
}

/// One watch: merges the replayed history with live changes without gap or duplicate.
///
/// While the history is being read, live changes are kept in `pending`; after the history, the pending
/// changes newer than the last one delivered are sent and the subscriber goes live. Every change is
/// delivered at most once because only versions above `lastDelivered` are ever yielded.
///
/// The stream buffers at most `bufferLimit` undelivered changes. A consumer that falls further behind
/// is not silently skipped: after the changes it already has, its stream finishes with
/// `StoreError.versionTooOld`, and it lists again and watches from the listed version, exactly as after
/// a compaction.
final class WatchSubscriber: Sendable {
    private struct State {
        var replaying = true
        var pending: [WatchEvent] = []
        var lastDelivered: Int64
        var finished = false
    }

    let id: UInt64
    let kinds: Set<String>?
    private let continuation: AsyncThrowingStream<WatchEvent, any Error>.Continuation
    private let bufferLimit: Int
    private let state: Mutex<State>

    init(
        id: UInt64, kinds: Set<String>?, fromVersion: Int64, bufferLimit: Int,
        continuation: AsyncThrowingStream<WatchEvent, any Error>.Continuation
    ) {
        self.id = id
        self.kinds = kinds
        self.bufferLimit = bufferLimit
        self.continuation = continuation
        self.state = Mutex(State(lastDelivered: fromVersion))
    }

    /// Live changes from the hub, in version order.
    func deliverLive(_ events: [WatchEvent]) {
        let overflow: Int64? = state.withLock { s in
            guard !s.finished else { return nil }
            for event in events where kinds?.contains(event.resource.kind) ?? true {
                if s.finished { break }
                if s.replaying {
                    s.pending.append(event)
                } else if let overflow = yieldLocked(event, &s) {
                    return overflow
                }
            }
            return nil
        }
        if let overflow { finishFellBehind(at: overflow) }
    }

    /// A page of replayed history, in version order. Returns false when the watch has ended.
    func deliverHistory(_ events: [WatchEvent]) -> Bool {
        let (open, overflow): (Bool, Int64?) = state.withLock { s in
            for event in events {
                guard !s.finished else { return (false, nil) }
                if let overflow = yieldLocked(event, &s) { return (false, overflow) }
            }
            return (!s.finished, nil)
        }
        if let overflow { finishFellBehind(at: overflow) }
        return open
    }

    /// Ends the replay: sends the live changes that arrived meanwhile and delivers later ones directly.
    func goLive() {
        let overflow: Int64? = state.withLock { s in
            s.replaying = false
            let pending = s.pending
            s.pending = []
            for event in pending where !s.finished {
                if let overflow = yieldLocked(event, &s) { return overflow }
            }
            return nil
        }
        if let overflow { finishFellBehind(at: overflow) }
    }

    func finish(throwing error: (any Error)?) {
        let first = state.withLock { s in
            defer { s.finished = true; s.pending = [] }
            return !s.finished
        }
        guard first else { return }
        if let error { continuation.finish(throwing: error) } else { continuation.finish() }
    }

    /// Yields one change unless it was already delivered. Returns the version that did not fit in the
    /// buffer, if any; the caller then finishes the stream outside the lock.
    private func yieldLocked(_ event: WatchEvent, _ s: inout State) -> Int64? {
        guard event.version > s.lastDelivered else { return nil }
        switch continuation.yield(event) {
        case .enqueued:
            s.lastDelivered = event.version
            return nil
        case .dropped:
            s.finished = true
            s.pending = []
            return event.version
        case .terminated:
            s.finished = true
            return nil
        @unknown default:
            s.finished = true
            return nil
        }
    }

    /// Ends a stream already marked finished by `yieldLocked`, after the changes it has buffered.
    private func finishFellBehind(at version: Int64) {
        continuation.finish(
            throwing: StoreError(
                .versionTooOld,
                "the watch fell more than \(bufferLimit) changes behind at version \(version) and was ended; "
                    + "list again and watch from the listed version"
            )
        )
    }
}
