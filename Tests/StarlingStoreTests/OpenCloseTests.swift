import Foundation
import StarlingCore
import StarlingStore
import Testing

struct OpenCloseTests {
    @Test func reopeningTheFileKeepsResourcesAndVersion() async throws {
        try await withTemporaryDirectory { directory in
            let path = directory + "/store.sqlite"
            let first = try SQLiteResourceStore(path: path)
            let applied = try await first.apply([service("web"), service("api"), namespaceResource("test")])
            _ = try await first.delete(service("api").key)
            try first.close()

            let reopened = try SQLiteResourceStore(path: path)
            defer { try? reopened.close() }
            #expect(try await reopened.currentVersion() == 4)
            #expect(try await reopened.get(service("web").key) == applied[0].resource)
            #expect(try await reopened.get(service("api").key) == nil)
            #expect(try await reopened.apply([service("web")]).map(\.outcome) == [.unchanged])
            #expect(try await reopened.apply([service("new")]).first?.resource.metadata.resourceVersion == 5)
            // The history survives too: a watch resumes across the restart.
            let events = try await collect(reopened.watch(kinds: nil, fromVersion: 2), count: 3)
            #expect(events.map(\.version) == [3, 4, 5])
            #expect(events.map(\.kind) == [.added, .deleted, .added])
        }
    }

    @Test func missingDirectoriesAreCreated() async throws {
        try await withTemporaryDirectory { directory in
            let path = directory + "/a/b/c/store.sqlite"
            let store = try SQLiteResourceStore(path: path)
            try store.close()
            #expect(FileManager.default.fileExists(atPath: path))
        }
    }

    @Test func aDirectoryThatCannotBeCreatedGivesAnErrorNamingThePath() async throws {
        try await withTemporaryDirectory { directory in
            // A regular file where a directory is needed: fails even for root.
            let blocker = directory + "/not-a-directory"
            try Data("x".utf8).write(to: URL(fileURLWithPath: blocker))
            let path = blocker + "/data/store.sqlite"
            let error = #expect(throws: StoreError.self) { try SQLiteResourceStore(path: path) }
            #expect(error?.code == .unavailable)
            #expect(error?.message.contains(path) == true)
            #expect(error?.message.contains("cannot create the directory") == true)
        }
    }

    @Test func anUnwritableLocationGivesAnErrorNamingThePath() throws {
        // /proc refuses new files and directories even for root.
        let path = "/proc/starling-store-test/store.sqlite"
        let error = #expect(throws: StoreError.self) { try SQLiteResourceStore(path: path) }
        #expect(error?.code == .unavailable)
        #expect(error?.message.contains(path) == true)
    }

    @Test func aFileThatIsNotSQLiteGivesAClearError() async throws {
        try await withTemporaryDirectory { directory in
            let path = directory + "/store.sqlite"
            let text = String(repeating: "this is not a database\n", count: 200)
            try Data(text.utf8).write(to: URL(fileURLWithPath: path))
            let error = #expect(throws: StoreError.self) { try SQLiteResourceStore(path: path) }
            #expect(error?.code == .unavailable)
            #expect(error?.message.contains(path) == true)
            #expect(error?.message.contains("not a SQLite database") == true)
            // The file is left as it was.
            #expect(try String(contentsOfFile: path, encoding: .utf8) == text)
        }
    }

    @Test func aPathThatIsADirectoryGivesAClearError() async throws {
        try await withTemporaryDirectory { directory in
            let error = #expect(throws: StoreError.self) { try SQLiteResourceStore(path: directory) }
            #expect(error?.code == .unavailable)
            #expect(error?.message.contains("is a directory") == true)
        }
    }

    @Test func operationsAfterCloseFailWithUnavailable() async throws {
        try await withStore { store, path in
            _ = try await store.apply([service("web")])
            try store.close()
            try store.close()
            let error = await #expect(throws: StoreError.self) { try await store.get(service("web").key) }
            #expect(error?.code == .unavailable)
            #expect(error?.message.contains(path) == true)
            await #expect(throws: StoreError(.unavailable, "")) { try await store.apply([service("api")]) }
            let ended = try await drain(store.watch(kinds: nil, fromVersion: 0))
            #expect(ended.error as? StoreError == StoreError(.unavailable, ""))
        }
    }

    @Test func closingEndsOpenWatches() async throws {
        try await withStore { store, _ in
            let watch = store.watch(kinds: nil, fromVersion: 0)
            _ = try await store.apply([service("web")])
            _ = try await collect(watch, count: 1)
            try store.close()
            let ended = try await drain(watch)
            #expect(ended.events.isEmpty)
            #expect(ended.error as? StoreError == StoreError(.unavailable, ""))
        }
    }

    /// A crash cannot be staged in-process, so atomicity is checked where it comes from: each apply is one
    /// SQLite transaction, and every reader (another connection of the WAL pool, as a second process would
    /// be) sees it all or not at all while it is written.
    @Test func readersSeeALargeApplyWholeOrNotAtAll() async throws {
        try await withStore { store, _ in
            let count = 3_000
            let batch = (0..<count).map { service("svc-\($0)", namespace: "ns-\($0 % 7)") }
            let writer = Task { try await store.apply(batch) }
            var observations: Set<Int> = []
            let deadline = ContinuousClock.now + .seconds(60)
            var finished = false
            while !finished && ContinuousClock.now < deadline {
                finished = try await store.currentVersion() == Int64(count)
                let listed = try await store.list(kind: "Service", namespace: nil, selector: nil)
                observations.insert(listed.count)
            }
            _ = try await writer.value
            #expect(observations.isSubset(of: [0, count]))
            #expect(observations.contains(count))
        }
    }

    /// Cancelling an apply mid-way (GRDB interrupts the statement and rolls back) leaves all or nothing.
    @Test func aCancelledApplyLeavesAllOrNothing() async throws {
        try await withStore { store, _ in
            let count = 5_000
            let batch = (0..<count).map { service("svc-\($0)") }
            let writer = Task { try await store.apply(batch) }
            try await Task.sleep(for: .milliseconds(30))
            writer.cancel()
            let outcome = await writer.result
            let version = try await store.currentVersion()
            let stored = try await store.list(kind: "Service", namespace: nil, selector: nil).count
            switch outcome {
            case .success: #expect(version == Int64(count) && stored == count)
            case .failure: #expect(version == 0 && stored == 0)
            }
            #expect(try await store.apply([service("after")]).first?.resource.metadata.resourceVersion == version + 1)
        }
    }
}
