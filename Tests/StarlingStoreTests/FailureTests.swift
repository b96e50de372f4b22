import GRDB
import StarlingCore
import Testing

@testable import StarlingStore

/// Failures inside the database, staged on the store's own writer connection.
struct FailureTests {
    /// `max_page_count` makes SQLite report a full disk part-way through a large apply: the
    /// transaction rolls back whole, the error says what happened and where, and the store goes on.
    @Test func aDiskFullMidwayThroughAnApplyStoresNothingAndSaysSo() async throws {
        try await withStore { store, path in
            let first = try await store.apply([service("existing")])
            let watch = store.watch(kinds: nil, fromVersion: 1)
            let pages = try await store.pool.writeWithoutTransaction { db in
                let pages = try Int.fetchOne(db, sql: "PRAGMA page_count") ?? 0
                try db.execute(sql: "PRAGMA max_page_count = \(pages + 8)")
                return pages
            }
            #expect(pages > 0)

            let batch = (0..<3_000).map { service("svc-\($0)") } + [service("existing", port: 9)]
            let error = await #expect(throws: StoreError.self) { try await store.apply(batch) }
            #expect(error?.code == .unavailable)
            #expect(error?.message.contains(path) == true)
            #expect(error?.message.contains("disk is full") == true)

            #expect(try await store.currentVersion() == 1)
            #expect(try await store.list(kind: "Service", namespace: nil, selector: nil) == [first[0].resource])

            try await store.pool.writeWithoutTransaction { db in
                try db.execute(sql: "PRAGMA max_page_count = 1073741823")
            }
            let after = try await store.apply([service("after")])
            #expect(after.first?.resource.metadata.resourceVersion == 2)
            #expect(try await collect(watch, count: 1).map(\.version) == [2])
        }
    }
}
