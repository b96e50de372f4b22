import Foundation
import PostgresNIO
import StarlingCore
import Testing

@testable import StarlingStore

@Suite(.enabled(if: PostgresTestServer.available, PostgresTestServer.skipReason))
struct PostgresStoreTests {
    @Test func applyGetListDeleteFollowTheStoreContract() async throws {
        try await PostgresTestServer.withDatabase { url in
            try await withPostgresStore(url) { store in
                let created = try await store.apply([service("web", labels: ["tier": "front"]), service("db")])
                #expect(created.map(\.outcome) == [.created, .created])
                #expect(created.map(\.resource.metadata.resourceVersion) == [1, 2])
                let web = try #require(created.first?.resource)
                #expect(try await store.get(web.key) == web)
                #expect(UUID(uuidString: try #require(web.metadata.uid)) != nil)

                let again = try await store.apply([service("web", labels: ["tier": "front"])])
                #expect(again.map(\.outcome) == [.unchanged])
                let changed = try await store.apply([service("web", labels: ["tier": "front"], port: 8080)])
                #expect(changed.map(\.outcome) == [.configured])
                #expect(changed.first?.resource.metadata.uid == web.metadata.uid)
                #expect(changed.first?.resource.metadata.creationTimestamp == web.metadata.creationTimestamp)
                #expect(try await store.currentVersion() == 3)

                let fronts = try await store.list(kind: "Service", namespace: nil, selector: LabelSelector(matchLabels: ["tier": "front"]))
                #expect(fronts.map(\.metadata.name) == ["web"])
                #expect(try await store.list(kind: "Service", namespace: "default", selector: nil).map(\.metadata.name) == ["db", "web"])
                #expect(try await store.list(kind: "Service", namespace: "other", selector: nil).isEmpty)

                let deleted = try await store.delete(web.key)
                #expect(deleted?.metadata.resourceVersion == 4)
                #expect(try await store.get(web.key) == nil)
                #expect(try await store.delete(web.key) == nil)
                #expect(try await store.currentVersion() == 4)
            }
        }
    }

    @Test func aBatchWithOneBadResourceStoresNothing() async throws {
        try await PostgresTestServer.withDatabase { url in
            try await withPostgresStore(url) { store async throws in
                var nameless = service("x")
                nameless.metadata.name = ""
                await #expect(throws: StoreError.self) { try await store.apply([service("a"), nameless]) }
                #expect(try await store.currentVersion() == 0)
                #expect(try await store.list(kind: "Service", namespace: nil, selector: nil).isEmpty)
            }
        }
    }

    @Test func aKeyTwiceInOneBatchIsTwoChangesAndTheLastIsStored() async throws {
        try await PostgresTestServer.withDatabase { url in
            try await withPostgresStore(url) { store in
                let results = try await store.apply([service("a", port: 1), service("a", port: 2)])
                #expect(results.map(\.outcome) == [.created, .configured])
                #expect(try await store.get(service("a").key)?.spec["ports"] == service("a", port: 2).spec["ports"])
                let events = try await collect(store.watch(kinds: nil, fromVersion: 0), count: 2)
                #expect(events.map(\.kind) == [.added, .modified])
            }
        }
    }

    @Test func watchReplaysThenDeliversLiveChangesAndResumesFromAVersion() async throws {
        try await PostgresTestServer.withDatabase { url in
            try await withPostgresStore(url) { store in
                _ = try await store.apply([service("a"), service("b")])
                let watch = store.watch(kinds: nil, fromVersion: 0)
                #expect(try await collect(watch, count: 2).map(\.version) == [1, 2])
                _ = try await store.delete(service("b").key)
                _ = try await store.apply([service("c"), namespaceResource("n")])
                let live = try await collect(watch, count: 3)
                #expect(live.map(\.version) == [3, 4, 5])
                #expect(live.map(\.kind) == [.deleted, .added, .added])

                let resumed = try await collect(store.watch(kinds: ["Namespace"], fromVersion: 3), count: 1)
                #expect(resumed.map(\.resource.kind) == ["Namespace"])
                let ahead = try await drain(store.watch(kinds: nil, fromVersion: 99))
                #expect((ahead.error as? StoreError)?.code == .versionTooOld)
            }
        }
    }

    @Test func aWatchFromBeforeTheRetainedHistoryIsTooOld() async throws {
        try await PostgresTestServer.withDatabase { url in
            try await withPostgresStore(url, configuration: .init(maxRetainedEvents: 3, pollInterval: .milliseconds(200))) { store in
                for port in 1...6 { _ = try await store.apply([service("a", port: Int64(port))]) }
                let old = try await drain(store.watch(kinds: nil, fromVersion: 1))
                #expect((old.error as? StoreError)?.code == .versionTooOld)
                #expect(try await collect(store.watch(kinds: nil, fromVersion: 3), count: 3).map(\.version) == [4, 5, 6])
            }
        }
    }

    /// Two replicas, eight concurrent writers on each: every version from 1 to the last reaches a
    /// watcher on either replica exactly once and in order, and versions never skip — a resume from
    /// any version read while writers run misses nothing committed after it.
    @Test func versionsAreCommitOrderedUnderConcurrentWritersOnTwoReplicas() async throws {
        try await PostgresTestServer.withDatabase { url in
            try await withPostgresStore(url) { a in
                try await withPostgresStore(url) { b in
                    let writers = 8
                    let writesEach = 25
                    let total = Int64(writers * 2 * writesEach)
                    let watchA = a.watch(kinds: nil, fromVersion: 0)
                    let watchB = b.watch(kinds: nil, fromVersion: 0)
                    let resumePoints = Locked<[Int64]>([])
                    try await withThrowingTaskGroup(of: Void.self) { group in
                        for writer in 0..<writers {
                            for (replica, store) in [("a", a), ("b", b)] {
                                group.addTask {
                                    for write in 0..<writesEach {
                                        _ = try await store.apply([service("\(replica)-\(writer)", port: Int64(write + 1))])
                                        if write == writesEach / 2 {
                                            let version = try await store.currentVersion()
                                            resumePoints.withLock { $0.append(version) }
                                        }
                                    }
                                }
                            }
                        }
                        try await group.waitForAll()
                    }
                    #expect(try await a.currentVersion() == total)
                    for watch in [watchA, watchB] {
                        let versions = try await collect(watch, count: Int(total)).map(\.version)
                        #expect(versions == Array(1...total))
                    }
                    for point in resumePoints.withLock({ $0 }) {
                        let resumed = try await collect(b.watch(kinds: nil, fromVersion: point), count: Int(total - point))
                        #expect(resumed.map(\.version) == Array((point + 1)...total))
                    }
                }
            }
        }
    }

    @Test func aChangeWrittenOnOneReplicaReachesWatchersOnTheOther() async throws {
        try await PostgresTestServer.withDatabase { url in
            // A long poll interval: the notification, not the poll, must carry the change.
            let slowPoll = PostgresResourceStore.Configuration(pollInterval: .seconds(30))
            try await withPostgresStore(url, configuration: slowPoll) { a in
                try await withPostgresStore(url, configuration: slowPoll) { b in
                    let watch = b.watch(kinds: ["Service"], fromVersion: 0)
                    for index in 1...20 {
                        _ = try await a.apply([service("s\(index)")])
                    }
                    let events = try await collect(watch, count: 20, timeout: .seconds(10))
                    #expect(events.map(\.resource.metadata.name) == (1...20).map { "s\($0)" })
                }
            }
        }
    }

    @Test func aDatabaseOfAnotherClusterIsRefused() async throws {
        try await PostgresTestServer.withDatabase { url in
            try await withPostgresStore(url, cluster: "east") { _ in }
            let error = await #expect(throws: StoreError.self) {
                try await withPostgresStore(url, cluster: "west") { _ in }
            }
            #expect(error?.message.contains("belongs to cluster 'east', not 'west'") == true)
        }
    }

    @Test func aSchemaNewerThanThisBuildIsRefused() async throws {
        try await PostgresTestServer.withDatabase { url in
            try await withPostgresStore(url) { _ in }
            try await PostgresTestServer.admin(url) { client in
                try await client.query("INSERT INTO starling_schema (version, description) VALUES (999, 'from the future')")
            }
            let error = await #expect(throws: StoreError.self) { try await withPostgresStore(url) { _ in } }
            #expect(error?.message.contains("schema is at version 999, newer than this Starling knows") == true)
        }
    }

    @Test func aWrongPasswordSaysSo() async throws {
        var url = try PostgresTestServer.url()
        url.password = "not-the-password"
        let error = await #expect(throws: StoreError.self) { try await withPostgresStore(url) { _ in } }
        #expect(error?.message.contains("refused the password of user") == true)
        #expect(error?.message.contains("not-the-password") == false)
    }

    @Test func aMissingDatabaseSaysHowToCreateIt() async throws {
        var url = try PostgresTestServer.url()
        url.database = "starling_no_such_db"
        let error = await #expect(throws: StoreError.self) { try await withPostgresStore(url) { _ in } }
        #expect(error?.message.contains("has no database 'starling_no_such_db' (create it: createdb") == true)
    }

    @Test func anUnreachableServerFailsWithinTheOperationTimeout() async throws {
        var url = try PostgresTestServer.url()
        url.port = 1  // nothing listens on port 1
        let started = ContinuousClock.now
        let error = await #expect(throws: StoreError.self) {
            try await withPostgresStore(url, configuration: .init(operationTimeout: .seconds(3))) { _ in }
        }
        #expect(ContinuousClock.now - started < .seconds(15))
        let message = error?.message ?? ""
        #expect(message.contains("127.0.0.1:1"))
        #expect(message.contains("cannot connect") || message.contains("no answer within"))
    }
}

struct PostgresStoreURLTests {
    @Test func parsesUserPasswordHostPortDatabaseAndTLS() throws {
        let url = try PostgresStoreURL(
            "postgres://mesh:s%40cret@db.example:6543/starling?sslmode=verify-full&sslrootcert=/etc/ca.pem", environment: [:])
        #expect(url.user == "mesh")
        #expect(url.password == "s@cret")
        #expect(url.host == "db.example")
        #expect(url.port == 6543)
        #expect(url.database == "starling")
        #expect(url.tlsMode == .verifyFull)
        #expect(url.rootCertificatePath == "/etc/ca.pem")
        #expect(url.description == "postgres://mesh@db.example:6543/starling")
    }

    @Test func takesThePasswordFromPGPASSWORDAndDefaultsThePort() throws {
        let url = try PostgresStoreURL("postgresql://mesh@[::1]/db", environment: ["PGPASSWORD": "pw"])
        #expect(url.password == "pw")
        #expect(url.host == "::1")
        #expect(url.port == 5432)
        #expect(url.tlsMode == .disable)
    }

    @Test func badURLsSayWhatIsWrongWithoutThePassword() {
        let cases: [(String, String)] = [
            ("mysql://u@h/db", "must start with postgres://"),
            ("postgres://h/db", "names no user"),
            ("postgres://u:secret@h", "names no database"),
            ("postgres://u@h:99999/db", "is not HOST or HOST:PORT"),
            ("postgres://u@h/db?sslmode=maybe", "sslmode 'maybe'"),
            ("postgres://u@h/db?sslmode=verify-full", "needs sslrootcert"),
            ("postgres://u@h/db?pool=3", "unknown parameter 'pool'"),
        ]
        for (text, expected) in cases {
            do {
                _ = try PostgresStoreURL(text, environment: [:])
                Issue.record("\(text) was accepted")
            } catch {
                #expect(error.message.contains(expected), "\(text): \(error.message)")
                #expect(!error.message.contains("secret"))
            }
        }
    }
}
