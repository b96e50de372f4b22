import Foundation
import GRPCCore
import StarlingAPI
@testable import StarlingControlPlane
import StarlingCore
import StarlingIdentity
import SwiftProtobuf
import Testing

@Suite(.timeLimit(.minutes(1)))
struct AuthTests {
    @Test func callWithoutACredentialIsUnauthenticated() async throws {
        try await withController { controller in
            try await controller.withClients(.none) { api in
                let error = await #expect(throws: RPCError.self) { _ = try await api.list("Service") }
                #expect(error?.code == .unauthenticated)
                #expect(error?.message.contains("Bearer") == true)

                let destination = await #expect(throws: RPCError.self) {
                    try await api.destination.get(.with { $0.path = "web.test:80" }) { response in
                        for try await _ in response.messages {}
                    }
                }
                #expect(destination?.code == .unauthenticated)
            }
        }
    }

    @Test func wrongTokenIsUnauthenticated() async throws {
        try await withController { controller in
            // Same length and prefix as the real admin token, different bytes.
            let wrong = String(controller.adminToken.dropLast()) + (controller.adminToken.hasSuffix("A") ? "B" : "A")
            try await controller.withClients(.token(wrong)) { api in
                let error = await #expect(throws: RPCError.self) { _ = try await api.list("Service") }
                #expect(error?.code == .unauthenticated)
                let apply = await #expect(throws: RPCError.self) {
                    try await api.apply([TestResources.service("web")])
                }
                #expect(apply?.code == .unauthenticated)
            }
            try await controller.withClients(.token("garbage")) { api in
                let error = await #expect(throws: RPCError.self) { _ = try await api.list("Service") }
                #expect(error?.code == .unauthenticated)
            }
            try await controller.withClients { api in
                let found = try await api.get("Service", "web", namespace: "test")
                #expect(found == nil)
            }
        }
    }

    @Test func joinTokenCannotApplyListGetOrCreateTokens() async throws {
        try await withController { controller in
            let token = try await controller.joinToken(namespace: "test", serviceAccount: "web")
            try await controller.withClients(.token(token)) { api in
                let apply = await #expect(throws: RPCError.self) {
                    try await api.apply([TestResources.service("web")])
                }
                #expect(apply?.code == .permissionDenied)
                #expect(apply?.message.contains("admin") == true)

                let list = await #expect(throws: RPCError.self) { _ = try await api.list("Service", namespace: "test") }
                #expect(list?.code == .permissionDenied)

                let get = await #expect(throws: RPCError.self) {
                    _ = try await api.resources.get(.with {
                        $0.kind = "Namespace"
                        $0.name = "test"
                    })
                }
                #expect(get?.code == .permissionDenied)

                let mint = await #expect(throws: RPCError.self) {
                    _ = try await api.mesh.createToken(.with {
                        $0.namespace = "test"
                        $0.serviceAccount = "admin"
                    })
                }
                #expect(mint?.code == .permissionDenied)
            }
            try await controller.withClients { api in
                let found = try await api.get("Service", "web", namespace: "test")
                #expect(found == nil)
            }
        }
    }

    @Test func expiredJoinTokenIsUnauthenticated() async throws {
        try await withController { controller in
            let key = try controller.credentials().tokenKey
            let past = Date().addingTimeInterval(-7200)
            let expired = JoinToken.sign(
                JoinToken.Claims(namespace: "test", serviceAccount: "web", lifetime: 3600, now: past), key: key)
            try await controller.withClients(.token(expired)) { api in
                let error = await #expect(throws: RPCError.self) {
                    _ = try await api.mesh.register(.with {
                        $0.name = "web-1"
                        $0.address = "127.0.0.9"
                    })
                }
                #expect(error?.code == .unauthenticated)
                #expect(error?.message.contains("expired") == true, "message: \(error?.message ?? "")")
            }
        }
    }

    @Test func tokenSignedWithAnotherKeyIsUnauthenticated() async throws {
        try await withController { controller in
            let forged = JoinToken.sign(
                JoinToken.Claims(namespace: "test", serviceAccount: "web", lifetime: 3600), key: JoinToken.makeKey())
            try await controller.withClients(.token(forged)) { api in
                let error = await #expect(throws: RPCError.self) {
                    _ = try await api.mesh.register(.with {
                        $0.name = "web-1"
                        $0.address = "127.0.0.9"
                    })
                }
                #expect(error?.code == .unauthenticated)
            }
        }
    }

    @Test func linkCredentialCannotRegisterAWorkload() async throws {
        try await withController { controller in
            let key = try controller.credentials().tokenKey
            let link = JoinToken.sign(
                JoinToken.Claims(namespace: "test", serviceAccount: "web", lifetime: 3600, audience: JoinToken.Audience.link),
                key: key)
            try await controller.withClients(.token(link)) { api in
                let error = await #expect(throws: RPCError.self) {
                    _ = try await api.mesh.register(.with {
                        $0.name = "web-1"
                        $0.address = "127.0.0.9"
                    })
                }
                #expect(error?.code == .unauthenticated || error?.code == .permissionDenied)
            }
        }
    }
}
