import GRDB
public import StarlingCore

extension SQLiteResourceStore {
    /// Changes after `fromVersion`, oldest first: first the retained history, then live changes, with
    /// no gap and no duplicate between the two.
    ///
    /// The subscriber is registered before the history is read, and both sources are merged by
    /// version. Live changes are published right after their transaction commits, in version order.
    /// The stream ends with `StoreError.versionTooOld` when `fromVersion` is older than the retained
    /// history (or newer than the store: a different or replaced file), or when the consumer falls
    /// more than `Configuration.watchBufferLimit` changes behind; the caller lists again and watches
    /// from the listed version. It ends with `StoreError.unavailable` when the store is closed.
    /// Cancelling the consuming task (or dropping the stream) unregisters the watch. The history is
    /// read by a task that belongs to the stream: it is cancelled when the stream terminates.
    ///
    /// Delivery is cheap for many watchers: a change is yielded to each stream's continuation right after
    /// its commit (no polling, no database access per watcher).
    public func watch(kinds: Set<String>?, fromVersion: Int64) -> AsyncThrowingStream<WatchEvent, any Error> {
        let bufferLimit = max(configuration.watchBufferLimit, configuration.maxRetainedEvents + 1_000)
        let (stream, continuation) = AsyncThrowingStream.makeStream(
            of: WatchEvent.self, throwing: (any Error).self, bufferingPolicy: .bufferingOldest(bufferLimit)
        )
        guard fromVersion >= 0 else {
            continuation.finish(throwing: StoreError(.invalid, "cannot watch from version \(fromVersion); versions start at 0"))
            return stream
        }
        let subscriber = hub.add { id in
            WatchSubscriber(
                id: id, kinds: kinds, fromVersion: fromVersion, bufferLimit: bufferLimit, continuation: continuation
            )
        }
        guard let subscriber else {
            continuation.finish(throwing: StoreError.closed(path: path))
            return stream
        }
        let hub = hub
        let replay = Task { [pool, path, form] in
            do {
                try await Self.replay(pool: pool, path: path, form: form, kinds: kinds, fromVersion: fromVersion, to: subscriber)
                subscriber.goLive()
            } catch {
                hub.remove(subscriber.id)
                let closed = hub.isClosed
                subscriber.finish(
                    throwing: closed ? StoreError.closed(path: path)
                        : StoreError.wrapping(error, path: path, doing: "replaying the history from version \(fromVersion)")
                )
            }
        }
        continuation.onTermination = { _ in
            replay.cancel()
            hub.remove(subscriber.id)
        }
        return stream
    }

    /// Sends the retained changes after `fromVersion` to `subscriber`, from one read snapshot, in
    /// pages so that no lock is held during database reads.
    private static func replay(
        pool: DatabasePool, path: String, form: StoredForm, kinds: Set<String>?, fromVersion: Int64, to subscriber: WatchSubscriber
    ) async throws {
        try await pool.read { db in
            let current = try StoreSchema.version(db)
            if fromVersion > current {
                throw StoreError(
                    .versionTooOld,
                    "cannot watch SQLite store \(path) from version \(fromVersion): the store is at version "
                        + "\(current) (was it replaced?); list again and watch from the listed version"
                )
            }
            guard fromVersion < current else { return }
            let oldest = try Int64.fetchOne(db, sql: StoreSchema.oldestEvent)
            if let oldest, fromVersion >= oldest - 1 {
                // The history from fromVersion + 1 on is complete.
            } else {
                let kept = oldest.map { "changes after version \($0 - 1)" } ?? "no changes"
                throw StoreError(
                    .versionTooOld,
                    "cannot watch SQLite store \(path) from version \(fromVersion): the history keeps only "
                        + "\(kept); list again and watch from the listed version"
                )
            }
            if let kinds, kinds.isEmpty { return }
            var sql = "SELECT version, type, kind, namespace, name, json FROM events WHERE version > ?"
            var arguments: StatementArguments = [fromVersion]
            if let kinds {
                sql += " AND kind IN (" + Array(repeating: "?", count: kinds.count).joined(separator: ", ") + ")"
                arguments += StatementArguments(kinds.sorted())
            }
            sql += " ORDER BY version"
            let rows = try Row.fetchCursor(db, sql: sql, arguments: arguments)
            var page: [WatchEvent] = []
            page.reserveCapacity(256)
            while let row = try rows.next() {
                try Task.checkCancellation()
                let namespace: String = row["namespace"]
                let key = ResourceKey(kind: row["kind"], namespace: namespace.isEmpty ? nil : namespace, name: row["name"])
                let type: String = row["type"]
                guard let kind = WatchEvent.Kind(rawValue: type) else {
                    throw StoreError(
                        .unavailable,
                        "SQLite store \(path): the history has an unknown change type '\(type)' for \(key)"
                    )
                }
                let resource = try form.resource(from: row["json"], key: key)
                page.append(WatchEvent(kind: kind, resource: resource, version: row["version"]))
                if page.count == 256 {
                    guard subscriber.deliverHistory(page) else { return }
                    page.removeAll(keepingCapacity: true)
                }
            }
            _ = subscriber.deliverHistory(page)
        }
    }
}
