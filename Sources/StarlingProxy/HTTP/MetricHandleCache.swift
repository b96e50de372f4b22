import Synchronization

/// Metric handles (`Counter`, `Timer`) by their dimensions. Creating a handle asks the metrics
/// backend's factory every time (Prometheus sanitizes the label and dimensions and takes its
/// registry lock); the data path records on every request, so it keeps the handles it made.
/// Bounded: when `limit` keys are held, the cache starts over (handles stay registered in the
/// backend either way; only the shortcut is dropped).
package final class MetricHandleCache<Key: Hashable & Sendable, Handle: AnyObject & Sendable>: Sendable {
    private struct State {
        var handles: [Key: Handle] = [:]
        /// The last key asked for: consecutive requests usually share their dimensions, and
        /// comparing keys costs less than hashing one (several strings each).
        var last: (key: Key, handle: Handle)?
    }

    private let state = Mutex(State())
    private let limit: Int

    package init(limit: Int = 4096) {
        self.limit = limit
    }

    package func handle(_ key: Key, make: () -> Handle) -> Handle {
        let found = state.withLock { state -> Handle? in
            if let last = state.last, last.key == key { return last.handle }
            guard let handle = state.handles[key] else { return nil }
            state.last = (key, handle)
            return handle
        }
        if let found { return found }
        let handle = make()
        state.withLock { state in
            if state.handles.count >= limit { state.handles.removeAll(keepingCapacity: true) }
            state.handles[key] = handle
            state.last = (key, handle)
        }
        return handle
    }
}
