import Logging
import PostgresNIO
public import StarlingCore
import Synchronization

extension PostgresResourceStore {
    /// Changes after `fromVersion`, oldest first: the retained history, then live changes from
    /// this replica's change feed (which carries every replica's writes), with no gap and no
    /// duplicate. Ends as `SQLiteResourceStore.watch` does: `versionTooOld` when the history no
    /// longer reaches back to `fromVersion` or the consumer falls too far behind, `unavailable`
    /// when the store is closed.
    public func watch(kinds: Set<String>?, fromVersion: Int64) -> AsyncThrowingStream<WatchEvent, any Error> {
        let bufferLimit = max(configuration.watchBufferLimit, configuration.maxRetainedEvents + 1_000)
        let (stream, continuation) = AsyncThrowingStream.makeStream(
            of: WatchEvent.self, throwing: (any Error).self, bufferingPolicy: .bufferingOldest(bufferLimit))
        guard fromVersion >= 0 else {
            continuation.finish(throwing: StoreError(.invalid, "cannot watch from version \(fromVersion); versions start at 0"))
            return stream
        }
        let subscriber = hub.add { id in
            WatchSubscriber(id: id, kinds: kinds, fromVersion: fromVersion, bufferLimit: bufferLimit, continuation: continuation)
        }
        guard let subscriber else {
            continuation.finish(throwing: closedError)
            return stream
        }
        let (hub, client, name, url, timeout, form) = (hub, client, name, url, configuration.operationTimeout, form)
        let closed = closedError
        let replay = Task {
            do {
                try await PostgresAccess.bounded(
                    name: name, url: url, timeout: timeout, what: "replaying the history from version \(fromVersion)"
                ) {
                    try await Self.replay(client: client, form: form, fromVersion: fromVersion) { page in
                        let wanted = kinds.map { kinds in page.filter { kinds.contains($0.resource.kind) } } ?? page
                        return subscriber.deliverHistory(wanted)
                    }
                }
                subscriber.goLive()
            } catch {
                hub.remove(subscriber.id)
                subscriber.finish(throwing: hub.isClosed ? closed : error)
            }
        }
        continuation.onTermination = { _ in
            replay.cancel()
            hub.remove(subscriber.id)
        }
        return stream
    }

    /// Reads the history after `fromVersion` in pages of 500 and hands each to `deliver` until it
    /// returns false. Throws `versionTooOld` when a version in between is no longer kept.
    static func replay(
        client: PostgresClient, form: StoredForm, fromVersion: Int64, deliver: @Sendable ([WatchEvent]) -> Bool
    ) async throws {
        let name = form.store
        let (current, oldest) = try await bounds(client)
        if fromVersion > current {
            throw StoreError(
                .versionTooOld,
                "cannot watch \(name) from version \(fromVersion): the store is at version \(current) (was the "
                    + "database replaced?); list again and watch from the listed version")
        }
        var after = fromVersion
        while after < current {
            if let oldest, after < oldest - 1 {
                throw tooOld(name, fromVersion, oldest: oldest)
            }
            let page = try await events(client, after: after, limit: 500, form: form)
            guard let first = page.first else { break }
            // Contiguous or nothing: a compaction between two pages shows as a gap.
            guard first.version == after + 1 else { throw tooOld(name, fromVersion, oldest: first.version) }
            after = page[page.count - 1].version
            guard deliver(page) else { return }
            if page.count < 500 { break }
        }
    }

    private static func tooOld(_ name: String, _ fromVersion: Int64, oldest: Int64) -> StoreError {
        StoreError(
            .versionTooOld,
            "cannot watch \(name) from version \(fromVersion): the history keeps only changes after version "
                + "\(oldest - 1); list again and watch from the listed version")
    }

    /// The store version and the oldest version the history keeps (nil: empty history).
    static func bounds(_ client: PostgresClient) async throws -> (current: Int64, oldest: Int64?) {
        for try await (current, oldest) in try await client.query(
            "SELECT version, (SELECT MIN(version) FROM starling_events) FROM starling_meta WHERE id = 1"
        ).decode((Int64, Int64?).self) {
            return (current, oldest)
        }
        return (0, nil)
    }

    /// Up to `limit` changes after version `after`, oldest first, versions contiguous.
    static func events(_ client: PostgresClient, after: Int64, limit: Int, form: StoredForm) async throws -> [WatchEvent] {
        let name = form.store
        var page: [WatchEvent] = []
        var expected = after + 1
        for try await (version, type, kind, namespace, resourceName, json) in try await client.query(
            "SELECT version, type, kind, namespace, name, json FROM starling_events WHERE version > \(after) ORDER BY version LIMIT \(limit)"
        ).decode((Int64, String, String, String, String, String).self) {
            guard version == expected else { break }
            expected += 1
            let key = ResourceKey(kind: kind, namespace: namespace.isEmpty ? nil : namespace, name: resourceName)
            guard let change = WatchEvent.Kind(rawValue: type) else {
                throw StoreError(.unavailable, "\(name): the history has an unknown change type '\(type)' for \(key)")
            }
            page.append(WatchEvent(kind: change, resource: try form.resource(from: json, key: key), version: version))
        }
        return page
    }

    // MARK: - The change feed

    /// Starts the task that publishes every committed change, from any replica, to this replica's
    /// watches, in version order.
    func startFeed() {
        let (client, hub, name, url, logger, form) = (client, hub, name, url, logger, form)
        let (poll, timeout, published) = (configuration.pollInterval, configuration.operationTimeout, published)
        let task = Task {
            var failing = false
            while !Task.isCancelled, !hub.isClosed {
                do {
                    try await client.withConnection { connection in
                        try await connection.listen(on: PostgresSchema.changesChannel) { notifications in
                            try await Self.follow(
                                notifications: notifications, poll: poll
                            ) {
                                try await PostgresAccess.bounded(name: name, url: url, timeout: timeout, what: "reading new changes") {
                                    try await Self.catchUp(client: client, hub: hub, published: published, form: form, logger: logger)
                                }
                                if failing {
                                    failing = false
                                    logger.info("store change feed resumed", metadata: ["store": "\(url)"])
                                }
                            }
                        }
                    }
                } catch {
                    if Task.isCancelled || hub.isClosed { return }
                    if !failing {
                        failing = true
                        logger.warning(
                            "store change feed interrupted; retrying every second",
                            metadata: ["store": "\(url)", "error": "\(PostgresAccess.wrapping(error, name: name, url: url, doing: "following changes"))"])
                    }
                    try? await Task.sleep(for: .seconds(1))
                }
            }
        }
        feed.withLock { $0 = task }
    }

    /// Calls `catchUp` once, then on each notification and at least every `poll`.
    private static func follow(
        notifications: PostgresNotificationSequence, poll: Duration, catchUp: () async throws -> Void
    ) async throws {
        let (wakes, wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                for try await _ in notifications { wake.yield() }
                throw StoreError(.unavailable, "the LISTEN connection ended")
            }
            group.addTask {
                while true {
                    try await Task.sleep(for: poll)
                    wake.yield()
                }
            }
            defer { group.cancelAll() }
            try await catchUp()
            for await _ in wakes {
                try await catchUp()
            }
        }
    }

    /// Publishes the changes after the last published version. When the history no longer has
    /// them (this replica was cut off longer than the history reaches), every watch is ended with
    /// `versionTooOld` so that its consumer lists again.
    static func catchUp(
        client: PostgresClient, hub: WatchHub, published: PublishedVersion, form: StoredForm, logger: Logger
    ) async throws {
        let name = form.store
        var last = published.value
        let (current, oldest) = try await bounds(client)
        if current < last || (current > last && (oldest ?? .max) > last + 1) {
            logger.warning(
                "store history does not reach back to this replica's last change; watches list again",
                metadata: ["last": "\(last)", "current": "\(current)", "oldest": "\(oldest.map(String.init) ?? "none")"])
            hub.finishAll(
                with: StoreError(
                    .versionTooOld,
                    "\(name): this replica missed changes after version \(last) that the history no longer keeps; "
                        + "list again and watch from the listed version"))
            published.value = current
            return
        }
        while last < current {
            let page = try await events(client, after: last, limit: 1_000, form: form)
            guard let end = page.last else { break }
            hub.publish(page)
            last = end.version
            published.value = last
        }
    }
}
