import Foundation
import GRPCCore
import StarlingAPI
import StarlingCore
import SwiftProtobuf
import Testing

@Suite(.timeLimit(.minutes(1)))
struct ResourcesAPITests {
    @Test func applyCreatesThenReportsUnchangedThenConfiguredWithAHigherVersion() async throws {
        try await withController { controller in
            try await controller.withClients { api in
                let service = TestResources.service("web", labels: ["tier": "front"])

                let first = try await api.apply([service])
                let created = try #require(first.first { $0.kind == "Service" })
                #expect(created.outcome == "created")
                #expect(created.namespace == "test")
                #expect(created.name == "web")
                #expect(created.resourceVersion > 0)
                // The namespace the service names did not exist: the apply made it.
                #expect(first.contains { $0.kind == "Namespace" && $0.name == "test" && $0.outcome == "created" })

                let again = try await api.apply([service])
                #expect(again.map(\.outcome) == ["unchanged"])
                #expect(again.first?.resourceVersion == created.resourceVersion)

                var changed = service
                changed.metadata.labels["tier"] = "back"
                let third = try await api.apply([changed])
                #expect(third.map(\.outcome) == ["configured"])
                #expect((third.first?.resourceVersion ?? 0) > created.resourceVersion)

                let stored = try #require(try await api.get("Service", "web", namespace: "test"))
                #expect(stored.metadata.labels["tier"] == "back")
                #expect(stored.metadata.resourceVersion == third.first?.resourceVersion)
            }
        }
    }

    @Test func getAndListFilterByNamespaceAndLabelSelector() async throws {
        try await withController { controller in
            try await controller.withClients { api in
                try await api.apply([
                    TestResources.service("web", namespace: "alpha", labels: ["tier": "front"]),
                    TestResources.service("db", namespace: "alpha", labels: ["tier": "back"]),
                    TestResources.service("web", namespace: "beta", labels: ["tier": "front"]),
                    TestResources.service("api", labels: [:]).inNamespace(nil),  // defaults to `default`
                ])

                let alpha = try await api.list("Service", namespace: "alpha")
                #expect(alpha.resources.map(\.metadata.name).sorted() == ["db", "web"])
                #expect(alpha.resources.allSatisfy { $0.metadata.namespace == "alpha" })
                #expect(alpha.version > 0)

                let fronts = try await api.list("svc", allNamespaces: true, selector: "tier=front")
                #expect(fronts.resources.map { "\($0.metadata.namespace ?? "")/\($0.metadata.name)" }.sorted() == ["alpha/web", "beta/web"])

                let backInAlpha = try await api.list("services", namespace: "alpha", selector: "tier!=front")
                #expect(backInAlpha.resources.map(\.metadata.name) == ["db"])

                // No namespace means `default`, as with kubectl.
                let defaults = try await api.list("Service")
                #expect(defaults.resources.map(\.metadata.name) == ["api"])

                let web = try #require(try await api.get("Service", "web", namespace: "beta"))
                #expect(web.metadata.namespace == "beta")
                #expect(web.metadata.labels == ["tier": "front"])
                #expect(try ServiceSpec(web).ports.first?.port == 80)

                // Cluster-scoped kinds ignore the namespace.
                #expect(try await api.get("Namespace", "alpha") != nil)
            }
        }
    }

    @Test func deleteRemovesTheResourceAndGetThenSaysNotFound() async throws {
        try await withController { controller in
            try await controller.withClients { api in
                try await api.apply([TestResources.service("web")])
                let deleted = try await api.resources.delete(.with {
                    $0.kind = "Service"
                    $0.namespace = "test"
                    $0.name = "web"
                })
                let resource = try ResourceDecoder.decodeStored(deleted.resourceJson)
                #expect(resource.key == ResourceKey(kind: "Service", namespace: "test", name: "web"))

                let error = await #expect(throws: RPCError.self) {
                    _ = try await api.resources.get(.with {
                        $0.kind = "Service"
                        $0.namespace = "test"
                        $0.name = "web"
                    })
                }
                #expect(error?.code == .notFound)
                #expect(error?.message.contains("web") == true)

                let again = await #expect(throws: RPCError.self) {
                    _ = try await api.resources.delete(.with {
                        $0.kind = "Service"
                        $0.namespace = "test"
                        $0.name = "web"
                    })
                }
                #expect(again?.code == .notFound)
            }
        }
    }

    @Test func getOfAMissingResourceIsNotFound() async throws {
        try await withController { controller in
            try await controller.withClients { api in
                let error = await #expect(throws: RPCError.self) {
                    _ = try await api.resources.get(.with {
                        $0.kind = "Workload"
                        $0.namespace = "nowhere"
                        $0.name = "ghost"
                    })
                }
                #expect(error?.code == .notFound)
                #expect(error?.message.contains("ghost") == true)
            }
        }
    }

    @Test func unknownKindIsInvalidArgument() async throws {
        try await withController { controller in
            try await controller.withClients { api in
                let error = await #expect(throws: RPCError.self) {
                    _ = try await api.list("Gizmo")
                }
                #expect(error?.code == .invalidArgument)
                #expect(error?.message.contains("Gizmo") == true)
            }
        }
    }

    @Test func invalidDocumentIsRefusedNamingTheFieldPathAndNothingOfTheBatchIsStored() async throws {
        try await withController { controller in
            try await controller.withClients { api in
                let goodDocument = ResourceEncoder.compactJSON(TestResources.service("good"))
                let badDocument = #"{"apiVersion":"v1","kind":"Service","metadata":{"name":"bad","namespace":"test"},"spec":{"ports":[{"port":70000}]}}"#

                let error = await #expect(throws: RPCError.self) {
                    try await api.apply([goodDocument, badDocument])
                }
                #expect(error?.code == .invalidArgument)
                let message = error?.message ?? ""
                #expect(message.contains("spec.ports[0].port"), "message: \(message)")
                // The second document of the request is the bad one.
                #expect(message.contains("document 2"), "message: \(message)")

                let good = try await api.get("Service", "good", namespace: "test")
                let bad = try await api.get("Service", "bad", namespace: "test")
                let namespace = try await api.get("Namespace", "test")
                #expect(good == nil)
                #expect(bad == nil)
                #expect(namespace == nil)
            }
        }
    }

    @Test func watchFromAVersionReplaysLaterChangesThenFollowsLiveOnes() async throws {
        try await withController { controller in
            try await controller.withClients { api in
                try await api.apply([TestResources.service("before")])
                let start = try await api.list("Service", namespace: "test").version
                try await api.apply([TestResources.service("replayed")])
                try await api.apply([TestResources.service("other", namespace: "elsewhere")])

                let events = StreamInbox<Starling_V1_WatchEvent> { handler in
                    try await api.resources.watch(
                        .with {
                            $0.kinds = ["Service"]
                            $0.fromVersion = start
                            $0.namespace = "test"
                        }, onResponse: handler)
                }
                defer { events.cancel() }

                let replayed = try await events.next()
                #expect(replayed.type == "added")
                #expect(try ResourceDecoder.decodeStored(replayed.resourceJson).metadata.name == "replayed")
                #expect(replayed.version > start)

                // Nothing else happened in `test` yet: the watch is quiet (not repeating, not
                // leaking the other namespace).
                #expect(await events.staysQuiet(for: .milliseconds(200)))

                var live = TestResources.service("replayed")
                live.metadata.labels["changed"] = "yes"
                try await api.apply([live])
                let modified = try await events.next()
                #expect(modified.type == "modified")
                #expect(modified.version > replayed.version)
                #expect(try ResourceDecoder.decodeStored(modified.resourceJson).metadata.labels["changed"] == "yes")

                _ = try await api.resources.delete(.with {
                    $0.kind = "Service"
                    $0.namespace = "test"
                    $0.name = "before"
                })
                let deleted = try await events.next()
                #expect(deleted.type == "deleted")
                #expect(try ResourceDecoder.decodeStored(deleted.resourceJson).metadata.name == "before")
            }
        }
    }

    @Test func watchWithALabelSelectorSendsOnlyMatchingResources() async throws {
        try await withController { controller in
            try await controller.withClients { api in
                let start = try await api.list("Service", allNamespaces: true).version
                let events = StreamInbox<Starling_V1_WatchEvent> { handler in
                    try await api.resources.watch(
                        .with {
                            $0.fromVersion = start
                            $0.labelSelector = "watch=me"
                        }, onResponse: handler)
                }
                defer { events.cancel() }
                try await api.apply([TestResources.service("ignored", labels: ["watch": "not-me"])])
                try await api.apply([TestResources.service("seen", labels: ["watch": "me"])])
                let event = try await events.next()
                #expect(try ResourceDecoder.decodeStored(event.resourceJson).metadata.name == "seen")
            }
        }
    }
}

extension Resource {
    func inNamespace(_ namespace: String?) -> Resource {
        var copy = self
        copy.metadata.namespace = namespace
        return copy
    }
}
