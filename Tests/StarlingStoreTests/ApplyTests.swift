import Foundation
import StarlingCore
import StarlingStore
import Testing

struct ApplyTests {
    @Test func applyingANewResourceCreatesItWithVersionTimestampAndUID() async throws {
        try await withStore { store, _ in
            let results = try await store.apply([service("web")])
            #expect(results.map(\.outcome) == [.created])
            let created = try #require(results.first?.resource)
            #expect(created.metadata.resourceVersion == 1)
            let timestamp = try #require(created.metadata.creationTimestamp)
            #expect(timestamp.hasSuffix("Z"))
            #expect(try Date(timestamp, strategy: .iso8601) <= Date.now)
            let uid = try #require(created.metadata.uid)
            #expect(UUID(uuidString: uid) != nil)
            #expect(try await store.currentVersion() == 1)
            #expect(try await store.get(created.key) == created)
        }
    }

    @Test func reapplyingAnIdenticalResourceIsUnchangedAndCostsNoVersion() async throws {
        try await withStore { store, _ in
            let first = try await store.apply([service("web", labels: ["app": "web"])])
            let again = try await store.apply([service("web", labels: ["app": "web"])])
            #expect(again.map(\.outcome) == [.unchanged])
            #expect(again.first?.resource == first.first?.resource)
            #expect(try await store.currentVersion() == 1)
        }
    }

    @Test func changingTheSpecConfiguresAndKeepsCreationTimestampAndUID() async throws {
        try await withStore { store, _ in
            let created = try #require(try await store.apply([service("web", port: 80)]).first?.resource)
            let results = try await store.apply([service("web", port: 8080)])
            #expect(results.map(\.outcome) == [.configured])
            let configured = try #require(results.first?.resource)
            #expect(configured.metadata.resourceVersion == 2)
            #expect(configured.metadata.creationTimestamp == created.metadata.creationTimestamp)
            #expect(configured.metadata.uid == created.metadata.uid)
            #expect(configured.body == service("web", port: 8080).body)
            #expect(try await store.get(configured.key) == configured)
        }
    }

    @Test func changingOnlyLabelsAnnotationsOrAPIVersionConfigures() async throws {
        try await withStore { store, _ in
            _ = try await store.apply([service("web")])
            #expect(try await store.apply([service("web", labels: ["tier": "front"])]).map(\.outcome) == [.configured])
            var annotated = service("web", labels: ["tier": "front"])
            annotated.metadata.annotations = ["note": "x"]
            #expect(try await store.apply([annotated]).map(\.outcome) == [.configured])
            annotated.apiVersion = "v2"
            #expect(try await store.apply([annotated]).map(\.outcome) == [.configured])
            #expect(try await store.currentVersion() == 4)
        }
    }

    @Test func storeManagedFieldsInTheInputAreIgnored() async throws {
        try await withStore { store, _ in
            var input = service("web")
            input.metadata.resourceVersion = 99
            input.metadata.creationTimestamp = "2001-01-01T00:00:00Z"
            input.metadata.uid = "not-a-uid"
            let created = try #require(try await store.apply([input]).first)
            #expect(created.outcome == .created)
            #expect(created.resource.metadata.resourceVersion == 1)
            #expect(created.resource.metadata.creationTimestamp != "2001-01-01T00:00:00Z")
            #expect(created.resource.metadata.uid != "not-a-uid")

            input.metadata.resourceVersion = 7
            input.metadata.uid = "other"
            #expect(try await store.apply([input]).map(\.outcome) == [.unchanged])
        }
    }

    @Test func resultsComeInInputOrderAndEachChangeTakesTheNextVersion() async throws {
        try await withStore { store, _ in
            _ = try await store.apply([service("b")])
            let results = try await store.apply([service("c"), service("b"), service("a"), service("b", port: 81)])
            #expect(results.map(\.resource.metadata.name) == ["c", "b", "a", "b"])
            #expect(results.map(\.outcome) == [.created, .unchanged, .created, .configured])
            #expect(results.map(\.resource.metadata.resourceVersion) == [2, 1, 3, 4])
            #expect(try await store.currentVersion() == 4)
        }
    }

    @Test func applyingNothingChangesNothing() async throws {
        try await withStore { store, _ throws in
            #expect(try await store.apply([]).isEmpty)
            #expect(try await store.currentVersion() == 0)
        }
    }

    @Test func clusterScopedResourcesAreStoredWithoutNamespace() async throws {
        try await withStore { store, _ in
            let created = try #require(try await store.apply([namespaceResource("test")]).first?.resource)
            #expect(created.metadata.namespace == nil)
            #expect(try await store.get(ResourceKey(kind: "Namespace", namespace: nil, name: "test")) == created)
            #expect(try await store.list(kind: "Namespace", namespace: nil, selector: nil) == [created])
        }
    }

    @Test func aBatchWithOneInvalidResourceStoresNothing() async throws {
        try await withStore { store, _ in
            _ = try await store.apply([service("existing")])
            let before = try await store.list(kind: "Service", namespace: nil, selector: nil)
            let watch = store.watch(kinds: nil, fromVersion: 1)

            var noNamespace = service("broken")
            noNamespace.metadata.namespace = nil
            let batch = [service("a"), service("existing", port: 1), noNamespace, service("z")]
            let error = await #expect(throws: StoreError.self) { try await store.apply(batch) }
            #expect(error?.code == .invalid)
            #expect(error?.message.contains("Service broken") == true)
            #expect(error?.message.contains("resource 3 of 4") == true)

            #expect(try await store.currentVersion() == 1)
            #expect(try await store.list(kind: "Service", namespace: nil, selector: nil) == before)
            #expect(try await store.get(service("a").key) == nil)

            // The watch sees no change from the failed batch: the next change it gets is version 2.
            _ = try await store.apply([service("after")])
            let events = try await collect(watch, count: 1)
            #expect(events.map(\.version) == [2])
            #expect(events.map(\.resource.metadata.name) == ["after"])
        }
    }

    @Test func namespacedKindWithoutNamespaceAndClusterScopedKindWithNamespaceAreInvalid() async throws {
        try await withStore { store, _ throws in
            var noNamespace = service("web")
            noNamespace.metadata.namespace = ""
            await #expect(throws: StoreError(.invalid, "")) { try await store.apply([noNamespace]) }

            var namespaced = namespaceResource("test")
            namespaced.metadata.namespace = "default"
            await #expect(throws: StoreError(.invalid, "")) { try await store.apply([namespaced]) }

            await #expect(throws: StoreError(.invalid, "")) { try await store.apply([service("")]) }
            #expect(try await store.currentVersion() == 0)
        }
    }

    @Test func unknownKindsAreStoredVerbatim() async throws {
        try await withStore { store, _ in
            let custom = Resource(
                apiVersion: "example.com/v1", kind: "Widget", metadata: ObjectMeta(name: "w", namespace: "ns"),
                body: JSONObject([("data", .object(JSONObject([("size", .double(1.5)), ("on", .bool(true))])))])
            )
            let stored = try #require(try await store.apply([custom]).first?.resource)
            #expect(stored.body == custom.body)
            #expect(try await store.apply([custom]).map(\.outcome) == [.unchanged])
        }
    }
}
