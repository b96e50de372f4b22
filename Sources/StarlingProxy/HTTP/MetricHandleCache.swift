import Synchronization

/// Metric handles (`Counter`, `Timer`) by their dimensions. Creating a handle asks the metrics
/// backend's factory every time (Prometheus sanitizes the label and dimensions and takes its
/// registry lock); the data path records on every request, so it keeps the handles it made.
/// Bounded: when `limit` keys are held, the cache starts over (handles stay registered in the
/// backend either way; only the shortcut is dropped).
final class MetricHandleCache<Key: Hashable & Sendable, Handle: AnyObject & Sendable>: Sendable {
    private let handles = Mutex<[Key: Handle]>([:])
    private let limit: Int

    init(limit: Int = 4096) {
        self.limit = limit
    }

    func handle(_ key: Key, make: () -> Handle) -> Handle {
        if let handle = handles.withLock({ $0[key] }) { return handle }
        let handle = make()
        handles.withLock { handles in
            if handles.count >= limit { handles.removeAll(keepingCapacity: true) }
            handles[key] = handle
        }
        return handle
    }
}
