import Foundation
import GRPCCore
import StarlingAPI
import StarlingCore
import SwiftProtobuf
import Testing

private func registration(_ name: String, address: String) -> Starling_V1_RegisterRequest {
    .with {
        $0.name = name
        $0.address = address
        $0.ports = [.with {
            $0.name = "http"
            $0.port = 4143
            $0.appPort = 8080
        }]
        $0.labels = ["app": "web"]
    }
}

@Suite(.timeLimit(.minutes(1)))
struct WorkloadLeaseTests {
    @Test func registerWithAJoinTokenCreatesAWorkloadWithTheTokensIdentity() async throws {
        try await withController { controller in
            let token = try await controller.joinToken(namespace: "shop", serviceAccount: "web")
            let response = try await controller.withClients(.token(token)) { api in
                try await api.mesh.register(registration("web-1", address: "127.0.0.51"))
            }
            #expect(response.namespace == "shop")
            #expect(response.name == "web-1")
            #expect(response.leaseMs == 15_000)
            #expect(response.heartbeatIntervalMs == 3_000)

            try await controller.withClients { api in
                let workload = try #require(try await api.get("Workload", "web-1", namespace: "shop"))
                let spec = try WorkloadSpec(workload)
                #expect(spec.identity == "web.shop.serviceaccount.identity.starling.cluster.local")
                #expect(spec.serviceAccount == "web")
                #expect(spec.address == "127.0.0.51")
                #expect(spec.ports.map(\.port) == [4143])
                #expect(spec.ports.map(\.appPort) == [8080])
                #expect(workload.metadata.labels == ["app": "web"])
                // The namespace the token names was created with it.
                #expect(try await api.get("Namespace", "shop") != nil)
            }
        }
    }

    @Test func registerReportsSubSecondLeaseAndHeartbeatIntervalsExactly() async throws {
        try await withController(workloadLease: .milliseconds(1500), heartbeatInterval: .milliseconds(500)) { controller in
            let token = try await controller.joinToken(namespace: "shop", serviceAccount: "web")
            let response = try await controller.withClients(.token(token)) { api in
                try await api.mesh.register(registration("web-1", address: "127.0.0.56"))
            }
            #expect(response.leaseMs == 1_500)
            #expect(response.heartbeatIntervalMs == 500)
        }
    }

    @Test func registerWithTheAdminCredentialIsRefused() async throws {
        try await withController { controller in
            try await controller.withClients { api in
                let error = await #expect(throws: RPCError.self) {
                    _ = try await api.mesh.register(registration("web-1", address: "127.0.0.51"))
                }
                #expect(error?.code == .permissionDenied)
            }
        }
    }

    @Test func registerRefusesAnInvalidAddress() async throws {
        try await withController { controller in
            let token = try await controller.joinToken(namespace: "shop", serviceAccount: "web")
            try await controller.withClients(.token(token)) { api in
                let error = await #expect(throws: RPCError.self) {
                    _ = try await api.mesh.register(registration("web-1", address: "not-an-ip"))
                }
                #expect(error?.code == .invalidArgument)
                #expect(error?.message.contains("address") == true)
            }
        }
    }

    @Test func heartbeatsKeepAWorkloadAndItExpiresWithinTheLeasePlusTwoSecondsAfterTheyStop() async throws {
        let lease: Duration = .seconds(2)
        try await withController(workloadLease: lease, heartbeatInterval: .milliseconds(500)) { controller in
            let token = try await controller.joinToken(namespace: "shop", serviceAccount: "web")
            try await controller.withClients(.token(token)) { workload in
                let registered = try await workload.mesh.register(registration("web-1", address: "127.0.0.52"))
                #expect(registered.leaseMs == 2_000)

                // Heartbeat for longer than one lease: the workload must stay.
                let clock = ContinuousClock()
                let keepUntil = clock.now.advanced(by: .seconds(3))
                var lastBeat = clock.now
                while clock.now < keepUntil {
                    try await Task.sleep(for: .milliseconds(500))
                    let beat = try await workload.mesh.heartbeat(.with {
                        $0.namespace = "shop"
                        $0.name = "web-1"
                    })
                    lastBeat = clock.now
                    #expect(beat.known)
                }
                try await controller.withClients { admin in
                    let found = try await admin.get("Workload", "web-1", namespace: "shop")
                    #expect(found != nil, "the workload expired although it sent heartbeats")
                }

                // Stop: the reaper removes it within the lease (+ 2 s) of the last heartbeat.
                let deadline = lastBeat.advanced(by: lease + .seconds(2))
                let gone = try await controller.withClients { admin in
                    try await eventually(within: deadline - clock.now) {
                        try await admin.get("Workload", "web-1", namespace: "shop") == nil
                    }
                }
                let elapsed = clock.now - lastBeat
                print("workload lease: removed \(elapsed.milliseconds) ms after the last heartbeat (lease \(lease))")
                #expect(gone, "the workload was still there \(elapsed) after its last heartbeat (lease \(lease))")

                // A late heartbeat is told the workload is unknown (so the proxy registers again).
                let late = try await workload.mesh.heartbeat(.with {
                    $0.namespace = "shop"
                    $0.name = "web-1"
                })
                #expect(!late.known)
            }
        }
    }

    @Test func deregisterRemovesTheWorkloadAtOnce() async throws {
        try await withController { controller in
            let token = try await controller.joinToken(namespace: "shop", serviceAccount: "web")
            try await controller.withClients(.token(token)) { workload in
                _ = try await workload.mesh.register(registration("web-1", address: "127.0.0.53"))
                _ = try await workload.mesh.deregister(.with {
                    $0.namespace = "shop"
                    $0.name = "web-1"
                })
                let beat = try await workload.mesh.heartbeat(.with {
                    $0.namespace = "shop"
                    $0.name = "web-1"
                })
                #expect(!beat.known)
            }
            try await controller.withClients { admin in
                let found = try await admin.get("Workload", "web-1", namespace: "shop")
                #expect(found == nil)
            }
        }
    }

    @Test func tokenForOneNamespaceCannotDeregisterOrHeartbeatInAnother() async throws {
        try await withController { controller in
            let tokenA = try await controller.joinToken(namespace: "alpha", serviceAccount: "web")
            let tokenB = try await controller.joinToken(namespace: "beta", serviceAccount: "web")
            try await controller.withClients(.token(tokenB)) { api in
                _ = try await api.mesh.register(registration("web-1", address: "127.0.0.54"))
            }
            try await controller.withClients(.token(tokenA)) { api in
                let error = await #expect(throws: RPCError.self) {
                    _ = try await api.mesh.deregister(.with {
                        $0.namespace = "beta"
                        $0.name = "web-1"
                    })
                }
                #expect(error?.code == .permissionDenied)
                let beat = await #expect(throws: RPCError.self) {
                    _ = try await api.mesh.heartbeat(.with {
                        $0.namespace = "beta"
                        $0.name = "web-1"
                    })
                }
                #expect(beat?.code == .permissionDenied)
            }
            try await controller.withClients { admin in
                let found = try await admin.get("Workload", "web-1", namespace: "beta")
                #expect(found != nil)
            }
        }
    }

    @Test func registeredWorkloadShowsUpInDestination() async throws {
        try await withController { controller in
            try await controller.withClients { admin in
                try await admin.apply([TestResources.service("web", namespace: "shop")])
            }
            let token = try await controller.joinToken(namespace: "shop", serviceAccount: "web")
            try await controller.withClients(.token(token)) { api in
                let updates = StreamInbox<Starling_V1_Update> { handler in
                    try await api.destination.get(.with { $0.path = "web.shop:80" }, onResponse: handler)
                }
                defer { updates.cancel() }
                _ = try await api.mesh.register(registration("web-1", address: "127.0.0.55"))
                let added = try await updates.nextChange()
                let add = try #require(added.addSet, "expected an add, got \(added)")
                #expect(add.addrs.map(\.ip) == ["127.0.0.55"])
                #expect(add.addrs.map(\.port) == [4143])
                #expect(add.addrs.first?.identity == "web.shop.serviceaccount.identity.starling.cluster.local")
            }
        }
    }
}
