import StarlingCore
import StarlingStore
import Testing

struct ReadDeleteTests {
    @Test func listFiltersByNamespaceAndSelectorAndSortsByNamespaceThenName() async throws {
        try await withStore { store, _ in
            _ = try await store.apply([
                service("zeta", namespace: "b", labels: ["tier": "front"]),
                service("alpha", namespace: "b", labels: ["tier": "back"]),
                service("mid", namespace: "a", labels: ["tier": "front", "exported": "true"]),
                service("solo", namespace: "c"),
                namespaceResource("a"),
            ])
            let all = try await store.list(kind: "Service", namespace: nil, selector: nil)
            #expect(all.map { "\($0.metadata.namespace ?? "")/\($0.metadata.name)" } == ["a/mid", "b/alpha", "b/zeta", "c/solo"])

            let inB = try await store.list(kind: "Service", namespace: "b", selector: nil)
            #expect(inB.map(\.metadata.name) == ["alpha", "zeta"])

            let front = try await store.list(kind: "Service", namespace: nil, selector: LabelSelector(matchLabels: ["tier": "front"]))
            #expect(front.map(\.metadata.name) == ["mid", "zeta"])

            let frontInB = try await store.list(
                kind: "Service", namespace: "b", selector: LabelSelector(requirements: [.equals("tier", "front")])
            )
            #expect(frontInB.map(\.metadata.name) == ["zeta"])

            let notExported = try await store.list(
                kind: "Service", namespace: nil, selector: LabelSelector(requirements: [.doesNotExist("exported")])
            )
            #expect(notExported.map(\.metadata.name) == ["alpha", "zeta", "solo"])

            #expect(try await store.list(kind: "Service", namespace: "none", selector: nil).isEmpty)
            #expect(try await store.list(kind: "Link", namespace: nil, selector: nil).isEmpty)
        }
    }

    @Test func getReturnsNilForAMissingResource() async throws {
        try await withStore { store, _ in
            _ = try await store.apply([service("web", namespace: "a")])
            #expect(try await store.get(ResourceKey(kind: "Service", namespace: "b", name: "web")) == nil)
            #expect(try await store.get(ResourceKey(kind: "Secret", namespace: "a", name: "web")) == nil)
            #expect(try await store.get(ResourceKey(kind: "Service", namespace: "a", name: "web")) != nil)
        }
    }

    @Test func deleteRemovesTheResourceAndReturnsItsLastStateAtTheNewVersion() async throws {
        try await withStore { store, _ in
            let created = try #require(try await store.apply([service("web"), service("api")]).first?.resource)
            let deleted = try #require(try await store.delete(created.key))
            #expect(deleted.metadata.resourceVersion == 3)
            #expect(deleted.metadata.uid == created.metadata.uid)
            #expect(deleted.body == created.body)
            #expect(try await store.currentVersion() == 3)
            #expect(try await store.get(created.key) == nil)
            #expect(try await store.list(kind: "Service", namespace: nil, selector: nil).map(\.metadata.name) == ["api"])

            let events = try await collect(store.watch(kinds: nil, fromVersion: 2), count: 1)
            #expect(events == [WatchEvent(kind: .deleted, resource: deleted, version: 3)])
        }
    }

    @Test func deletingAMissingResourceReturnsNilAndCostsNoVersion() async throws {
        try await withStore { store, _ in
            let deleted = try await store.delete(service("ghost").key)
            #expect(deleted == nil)
            #expect(try await store.currentVersion() == 0)
        }
    }

    @Test func recreatingADeletedResourceGivesANewUID() async throws {
        try await withStore { store, _ in
            let first = try #require(try await store.apply([service("web")]).first?.resource)
            _ = try await store.delete(first.key)
            let second = try #require(try await store.apply([service("web")]).first)
            #expect(second.outcome == .created)
            #expect(second.resource.metadata.uid != first.metadata.uid)
            #expect(second.resource.metadata.resourceVersion == 3)
        }
    }
}
