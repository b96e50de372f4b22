import Foundation
import GRPCCore
import StarlingAPI
import StarlingCore
import SwiftProtobuf
import Testing

private func policyWatch(
    _ api: APIClients, namespace: String, name: String, labels: [String: String] = [:],
    ports: [Starling_V1_WorkloadPort] = []
) -> StreamInbox<Starling_V1_InboundPolicyUpdate> {
    StreamInbox { handler in
        try await api.policy.watchInbound(.with {
            $0.namespace = namespace
            $0.name = name
            $0.labels = labels
            $0.ports = ports
        }, onResponse: handler)
    }
}

/// The Policy API: a workload's inbound policy, streamed whole and again after each change that
/// alters it; who may read it.
@Suite(.timeLimit(.minutes(1)))
struct PolicyAPITests {
    static let server = #"{"apiVersion":"policy.starling.io/v1beta1","kind":"Server","metadata":{"name":"podinfo-http","namespace":"test"},"spec":{"podSelector":{"matchLabels":{"app":"podinfo"}},"port":"http"}}"#
    static let authn = #"{"apiVersion":"policy.starling.io/v1beta1","kind":"MeshTLSAuthentication","metadata":{"name":"frontend","namespace":"test"},"spec":{"identityRefs":[{"kind":"ServiceAccount","name":"frontend"}],"clusters":["workload1"]}}"#
    static let policy = #"{"apiVersion":"policy.starling.io/v1beta1","kind":"AuthorizationPolicy","metadata":{"name":"podinfo-from-frontend","namespace":"test"},"spec":{"targetRef":{"group":"policy.starling.io","kind":"Server","name":"podinfo-http"},"requiredAuthenticationRefs":[{"group":"policy.starling.io","kind":"MeshTLSAuthentication","name":"frontend"}]}}"#

    @Test func theStreamSendsThePolicyAndEachChangeOfIt() async throws {
        try await withController { controller in
            try await controller.withClients { api in
                try await api.apply([TestResources.namespace("test"), TestResources.workload("podinfo-1", app: "podinfo", address: "127.0.0.10")])
                let inbox = policyWatch(api, namespace: "test", name: "podinfo-1")
                defer { inbox.cancel() }
                let first = try await inbox.next()
                #expect(first.workloadKnown)
                let initial = try InboundPolicyJSON.decode(first.policyJson)
                #expect(initial.servers.isEmpty && initial.defaultPolicy == .allUnauthenticated)

                try await api.apply([Self.server])
                let withServer = try InboundPolicyJSON.decode(try await inbox.next().policyJson)
                #expect(withServer.servers.map(\.name) == ["test/podinfo-http"])
                #expect(withServer.servers.first?.ports == [4143, 8080])

                try await api.apply([Self.authn, Self.policy])
                var latest = withServer
                #expect(try await eventually {
                    latest = try InboundPolicyJSON.decode(try await inbox.next().policyJson)
                    return latest.servers.first?.authorizations.count == 1
                })
                let requirement = try #require(latest.servers.first?.authorizations.first?.requirements.first)
                #expect(requirement.identities == ["frontend.test.serviceaccount.identity.starling.cluster.local"])
                #expect(requirement.clusters == ["workload1"])

                // A change elsewhere does not resend it.
                try await api.apply([TestResources.service("other")])
                #expect(await inbox.staysQuiet(for: .milliseconds(300)))
            }
        }
    }

    @Test func aWorkloadMayReadOnlyItsOwnNamespacesPolicy() async throws {
        try await withController { controller in
            let token = try await controller.joinToken(namespace: "test", serviceAccount: "frontend")
            try await controller.withClients(.token(token)) { api in
                let own = policyWatch(api, namespace: "test", name: "")
                defer { own.cancel() }
                let answer = try await own.next()
                #expect(answer.workloadKnown == false)
                let other = policyWatch(api, namespace: "prod", name: "db-1")
                defer { other.cancel() }
                await #expect(throws: RPCError.self) { _ = try await other.next() }
            }
        }
    }

    @Test func aProxyGetsItsServersBeforeItsWorkloadRegisters() async throws {
        try await withController { controller in
            try await controller.withClients { api in
                try await api.apply([TestResources.namespace("test")])
                try await api.apply([Self.server])
                let inbox = policyWatch(
                    api, namespace: "test", name: "podinfo-abcde", labels: ["app": "podinfo"],
                    ports: [.with { $0.name = "http"; $0.port = 4143; $0.appPort = 9898 }])
                defer { inbox.cancel() }
                let first = try await inbox.next()
                #expect(!first.workloadKnown)
                let policy = try InboundPolicyJSON.decode(first.policyJson)
                #expect(policy.servers.map(\.name) == ["test/podinfo-http"])
                #expect(policy.servers.first?.ports == [4143, 9898])
            }
        }
    }

    @Test func aWorkloadNameAnotherIdentityRegisteredIsNeitherTakenOverNorFollowed() async throws {
        try await withController { controller in
            try await controller.withClients { api in
                try await api.apply([
                    TestResources.namespace("test"),
                    TestResources.workload("podinfo-1", app: "podinfo", address: "127.0.0.10", serviceAccount: "podinfo"),
                ])
                try await api.apply([Self.server])
            }
            let token = try await controller.joinToken(namespace: "test", serviceAccount: "mallory")
            try await controller.withClients(.token(token)) { api in
                // Mallory's proxy asking by podinfo's name gets what its own labels select.
                let inbox = policyWatch(api, namespace: "test", name: "podinfo-1", labels: ["app": "mallory"])
                defer { inbox.cancel() }
                let first = try await inbox.next()
                #expect(!first.workloadKnown)
                #expect(try InboundPolicyJSON.decode(first.policyJson).servers.isEmpty)
                // And cannot register under podinfo's name.
                do {
                    _ = try await api.mesh.register(.with {
                        $0.name = "podinfo-1"
                        $0.address = "127.0.0.66"
                        $0.labels = ["app": "mallory"]
                    })
                    Issue.record("mallory registered under podinfo's name")
                } catch let error as RPCError {
                    #expect(error.code == .permissionDenied)
                    #expect(error.message.contains("is registered by podinfo.test.serviceaccount"), "\(error.message)")
                }
            }
        }
    }
}
