import StarlingCore
import Testing

@testable import StarlingStore

struct WatchTests {
    @Test func watchFromZeroReplaysTheHistoryThenDeliversLiveChanges() async throws {
        try await withStore { store, _ in
            _ = try await store.apply([service("a"), service("b")])
            _ = try await store.apply([service("a", port: 81)])
            let watch = store.watch(kinds: nil, fromVersion: 0)
            let replayed = try await collect(watch, count: 3)
            #expect(replayed.map(\.version) == [1, 2, 3])
            #expect(replayed.map(\.kind) == [.added, .added, .modified])
            #expect(replayed.last?.resource.metadata.resourceVersion == 3)

            _ = try await store.delete(service("b").key)
            _ = try await store.apply([service("c")])
            let live = try await collect(watch, count: 2)
            #expect(live.map(\.version) == [4, 5])
            #expect(live.map(\.kind) == [.deleted, .added])
        }
    }

    @Test func watchOnAnEmptyStoreDeliversTheFirstChange() async throws {
        try await withStore { store, _ in
            let watch = store.watch(kinds: nil, fromVersion: 0)
            _ = try await store.apply([service("a")])
            #expect(try await collect(watch, count: 1).map(\.version) == [1])
        }
    }

    @Test func watchDeliversOnlyTheRequestedKinds() async throws {
        try await withStore { store, _ in
            _ = try await store.apply([service("a"), namespaceResource("a")])
            let watch = store.watch(kinds: ["Namespace"], fromVersion: 0)
            _ = try await store.apply([service("b"), namespaceResource("b")])
            let events = try await collect(watch, count: 2)
            #expect(events.map(\.resource.kind) == ["Namespace", "Namespace"])
            #expect(events.map(\.version) == [2, 4])
        }
    }

    @Test func resumingFromAVersionReplaysOnlyLaterChanges() async throws {
        try await withStore { store, _ in
            for port in 1...5 { _ = try await store.apply([service("a", port: Int64(port))]) }
            let events = try await collect(store.watch(kinds: nil, fromVersion: 3), count: 2)
            #expect(events.map(\.version) == [4, 5])
            #expect(events.last?.resource.spec["ports"] == service("a", port: 5).spec["ports"])
        }
    }

    @Test func resumingFromTheCurrentVersionDeliversOnlyNewChanges() async throws {
        try await withStore { store, _ in
            _ = try await store.apply([service("a"), service("b")])
            let watch = store.watch(kinds: nil, fromVersion: try await store.currentVersion())
            _ = try await store.apply([service("c")])
            #expect(try await collect(watch, count: 1).map(\.version) == [3])
        }
    }

    @Test func resumingFromACompactedVersionEndsWithVersionTooOld() async throws {
        try await withStore(configuration: .init(maxRetainedEvents: 5)) { store, _ in
            for port in 1...20 { _ = try await store.apply([service("a", port: Int64(port))]) }
            // Versions 16...20 are kept, so 15 is the oldest version a watch can resume from.
            let tooOld = try await drain(store.watch(kinds: nil, fromVersion: 14))
            #expect(tooOld.events.isEmpty)
            let error = try #require(tooOld.error as? StoreError)
            #expect(error.code == .versionTooOld)
            #expect(error.message.contains("version 14"))

            let resumed = try await collect(store.watch(kinds: nil, fromVersion: 15), count: 5)
            #expect(resumed.map(\.version) == [16, 17, 18, 19, 20])
            #expect(try await store.compact() == 0)
        }
    }

    @Test func compactOnReopenTrimsAHistoryKeptUnderALargerLimit() async throws {
        try await withTemporaryDirectory { directory in
            let path = directory + "/store.sqlite"
            let large = try SQLiteResourceStore(path: path, configuration: .init(maxRetainedEvents: 100))
            for port in 1...10 { _ = try await large.apply([service("a", port: Int64(port))]) }
            try large.close()

            let small = try SQLiteResourceStore(path: path, configuration: .init(maxRetainedEvents: 3))
            defer { try? small.close() }
            #expect(try await small.compact() == 7)
            let error = try await drain(small.watch(kinds: nil, fromVersion: 0)).error
            #expect(error as? StoreError == StoreError(.versionTooOld, ""))
            #expect(try await collect(small.watch(kinds: nil, fromVersion: 7), count: 3).map(\.version) == [8, 9, 10])
        }
    }

    @Test func watchingFromAVersionNewerThanTheStoreEndsWithVersionTooOld() async throws {
        try await withStore { store, _ in
            _ = try await store.apply([service("a")])
            let error = try await drain(store.watch(kinds: nil, fromVersion: 50)).error
            #expect(error as? StoreError == StoreError(.versionTooOld, ""))
        }
    }

    @Test func replayAndLiveChangesHaveNoGapsOrDuplicatesUnderConcurrentApplies() async throws {
        try await withStore { store, _ in
            for i in 0..<50 { _ = try await store.apply([service("pre-\(i % 10)", port: Int64(i))]) }
            let writers = 4
            let appliesPerWriter = 60
            let finalVersion = Int64(50 + writers * appliesPerWriter)

            let writing = Task {
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for w in 0..<writers {
                        group.addTask {
                            for i in 0..<appliesPerWriter {
                                // Each apply changes one resource's port, so every apply is one change.
                                _ = try await store.apply([service("w\(w)-\(i % 5)", port: Int64(i))])
                            }
                        }
                    }
                    try await group.waitForAll()
                }
            }
            // Watchers start while the writers run: some from the beginning, some from the version
            // they read just before.
            try await withThrowingTaskGroup(of: (Int64, [Int64]).self) { group in
                for n in 0..<8 {
                    let from: Int64 = n.isMultiple(of: 2) ? 0 : try await store.currentVersion()
                    let watch = store.watch(kinds: nil, fromVersion: from)
                    group.addTask {
                        (from, try await collect(watch, through: finalVersion).map(\.version))
                    }
                    try await Task.sleep(for: .milliseconds(3))
                }
                for try await (from, versions) in group {
                    #expect(versions == Array((from + 1)...finalVersion), "watch from \(from)")
                }
            }
            try await writing.value
            #expect(try await store.currentVersion() == finalVersion)
        }
    }

    @Test func cancellingTheConsumerUnregistersTheWatch() async throws {
        try await withStore { store, _ in
            let consumer = Task {
                for try await _ in store.watch(kinds: nil, fromVersion: 0) {}
            }
            try await waitUntil("the watch to register") { store.hub.count == 1 }
            consumer.cancel()
            try await waitUntil("the watch to unregister") { store.hub.count == 0 }

            // A stream dropped without being iterated unregisters too.
            do { _ = store.watch(kinds: nil, fromVersion: 0) }
            try await waitUntil("the dropped watch to unregister") { store.hub.count == 0 }
        }
    }

    @Test func aWatcherThatFallsTooFarBehindEndsWithVersionTooOldAfterWhatItHas() async throws {
        // maxRetainedEvents 10 gives a buffer of 10 + 1,000 changes.
        try await withStore(configuration: .init(maxRetainedEvents: 10, watchBufferLimit: 1)) { store, _ in
            let watch = store.watch(kinds: nil, fromVersion: 0)
            // Consuming a first change shows the watch is live (its replay is over).
            _ = try await store.apply([service("first")])
            #expect(try await collect(watch, count: 1).map(\.version) == [1])
            _ = try await store.apply((0..<1_200).map { service("svc-\($0)") })
            let ended = try await drain(watch)
            #expect(ended.events.map(\.version) == Array(2...1_011))
            #expect(ended.error as? StoreError == StoreError(.versionTooOld, ""))
            try await waitUntil("the watch to unregister") { store.hub.count == 0 }
        }
    }

    @Test func aThousandWatchersAllReceiveAChange() async throws {
        try await withStore { store, _ in
            let watchers = 1_000
            let warmedUp = Locked(0)
            let start = Locked<ContinuousClock.Instant?>(nil)
            let latencies = try await withThrowingTaskGroup(of: Duration.self) { group in
                for _ in 0..<watchers {
                    let watch = store.watch(kinds: ["Service"], fromVersion: 0)
                    group.addTask {
                        var iterator = watch.makeAsyncIterator()
                        _ = try await iterator.next()  // the warm-up change: the watch is live
                        warmedUp.withLock { $0 += 1 }
                        guard let event = try await iterator.next() else { throw TimedOut(what: "the change") }
                        let arrived = ContinuousClock.now
                        #expect(event.version == 2)
                        let sent = try #require(start.withLock { $0 })
                        return arrived - sent
                    }
                }
                _ = try await store.apply([service("warm-up")])
                try await waitUntil("every watcher to see the warm-up change") { warmedUp.withLock { $0 } == watchers }
                start.withLock { $0 = .now }
                _ = try await store.apply([service("change")])
                var latencies: [Duration] = []
                for try await latency in group { latencies.append(latency) }
                return latencies
            }
            #expect(latencies.count == watchers)
            let sorted = latencies.sorted()
            let maxLatency = try #require(sorted.last)
            print("1,000 watchers: p50 \(sorted[sorted.count / 2]), max \(maxLatency) from apply call to delivery")
            #expect(maxLatency < .seconds(1))
        }
    }
}
