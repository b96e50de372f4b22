import Foundation
import GRPCCore
import StarlingAPI
@testable import StarlingControlPlane
import StarlingCore
import StarlingIdentity
import SwiftProtobuf
import Testing

@testable import StarlingCLI

/// What each credential can do, attempt by attempt, with the gRPC status each refusal gets:
/// a link credential reads exported services and renews itself, nothing else; a join token
/// heartbeats and deregisters only workloads its identity registered; a join token bound to a
/// service registers, keeps or removes no workload another service selects; one identity's CSR
/// flood is rate limited.
@Suite(.timeLimit(.minutes(1)))
struct CredentialScopeTests {
    /// A link credential made the way `multicluster link` makes it.
    private func linkCredential(_ controller: TestController, ttl: Int64 = 3600) async throws -> Starling_V1_CreateTokenResponse {
        try await controller.withClients(.admin) { api in
            try await api.mesh.createToken(.with {
                $0.namespace = "starling-multicluster"
                $0.serviceAccount = "west"
                $0.audience = "link"
                $0.ttlSeconds = ttl
            })
        }
    }

    @Test func aLinkCredentialReadsExportedServicesAndNothingElse() async throws {
        let pki = try TestPKI()
        try await withController { controller in
            try await controller.install(pki)
            _ = try await controller.withClients { api in
                try await api.apply([
                    TestResources.namespace("test"),
                    TestResources.service("exported", labels: ["mirror.starling.io/exported": "true"]),
                    TestResources.service("internal"),
                    Resource(name: "db-password", namespace: "test", spec: SecretSpec(strings: ["password": "hunter2"])),
                ])
            }
            let link = try await linkCredential(controller).token
            try await controller.withClients(.token(link)) { api in
                let services = try await api.list("Service", allNamespaces: true)
                #expect(services.resources.map(\.metadata.name) == ["exported"])

                let secrets = await #expect(throws: RPCError.self) { _ = try await api.list("Secret", allNamespaces: true) }
                #expect(secrets?.code == .permissionDenied)
                let get = await #expect(throws: RPCError.self) {
                    _ = try await api.resources.get(.with { $0.kind = "Service"; $0.namespace = "test"; $0.name = "internal" })
                }
                #expect(get?.code == .permissionDenied)
                let getSecret = await #expect(throws: RPCError.self) {
                    _ = try await api.resources.get(.with { $0.kind = "Secret"; $0.namespace = "test"; $0.name = "db-password" })
                }
                #expect(getSecret?.code == .permissionDenied)
                let watchSecrets = await #expect(throws: RPCError.self) {
                    try await api.resources.watch(.with { $0.kinds = ["Secret"] }) { response in
                        for try await _ in response.messages {}
                    }
                }
                #expect(watchSecrets?.code == .permissionDenied)

                let apply = await #expect(throws: RPCError.self) { try await api.apply([TestResources.service("planted")]) }
                #expect(apply?.code == .permissionDenied)
                let delete = await #expect(throws: RPCError.self) {
                    _ = try await api.resources.delete(.with { $0.kind = "Service"; $0.namespace = "test"; $0.name = "exported" })
                }
                #expect(delete?.code == .permissionDenied)
                let mint = await #expect(throws: RPCError.self) {
                    _ = try await api.mesh.createToken(.with { $0.namespace = "test"; $0.serviceAccount = "default" })
                }
                #expect(mint?.code == .permissionDenied)

                let identity = MeshIdentity(namespace: "test", serviceAccount: "default")
                let certify = await #expect(throws: RPCError.self) {
                    _ = try await api.identity.certify(.with {
                        $0.identity = identity.dnsName
                        $0.certificateSigningRequest = Data(try WorkloadKey().csr(for: identity).der)
                    })
                }
                #expect(certify?.code == .permissionDenied)
                let destination = await #expect(throws: RPCError.self) {
                    try await api.destination.get(.with { $0.path = "exported.test:80" }) { response in
                        for try await _ in response.messages {}
                    }
                }
                #expect(destination?.code == .permissionDenied)
            }
            // Nothing the link credential tried changed the store.
            let (planted, exported) = try await controller.withClients { api in
                (try await api.get("Service", "planted", namespace: "test"), try await api.get("Service", "exported", namespace: "test"))
            }
            #expect(planted == nil)
            #expect(exported != nil)
        }
    }

    @Test func aLinkCredentialRenewsItselfWithTheSameGrantAndLifetime() async throws {
        try await withController { controller in
            let held = try await linkCredential(controller, ttl: 7200)
            let renewed = try await controller.withClients(.token(held.token)) { api in
                try await api.mesh.renewLinkCredential(.init())
            }
            #expect(renewed.token != held.token)
            let key = try controller.credentials().tokenKey
            let claims = try JoinToken.verify(renewed.token, key: key, audience: JoinToken.Audience.link)
            #expect(claims.serviceAccount == "west")
            #expect(claims.namespace == "starling-multicluster")
            #expect(claims.lifetime == 7200)
            #expect(renewed.expiresAt == claims.expiresAt)
            #expect(renewed.expiresAt >= held.expiresAt)
            // The renewed credential works, and is still only a link credential.
            try await controller.withClients(.token(renewed.token)) { api in
                _ = try await api.list("Service", allNamespaces: true)
                let apply = await #expect(throws: RPCError.self) { try await api.apply([TestResources.service("planted")]) }
                #expect(apply?.code == .permissionDenied)
            }
        }
    }

    @Test func onlyAValidLinkCredentialCanBeRenewed() async throws {
        try await withController { controller in
            let key = try controller.credentials().tokenKey
            let expired = JoinToken.sign(
                JoinToken.Claims(
                    namespace: "starling-multicluster", serviceAccount: "west", lifetime: 3600,
                    now: Date().addingTimeInterval(-7200), audience: JoinToken.Audience.link),
                key: key)
            let refused = await #expect(throws: RPCError.self) {
                try await controller.withClients(.token(expired)) { api in _ = try await api.mesh.renewLinkCredential(.init()) }
            }
            #expect(refused?.code == .unauthenticated)
            #expect(refused?.message.contains("expired") == true)

            let join = try await controller.joinToken(namespace: "test", serviceAccount: "web")
            let notLink = await #expect(throws: RPCError.self) {
                try await controller.withClients(.token(join)) { api in _ = try await api.mesh.renewLinkCredential(.init()) }
            }
            #expect(notLink?.code == .permissionDenied)
            let admin = await #expect(throws: RPCError.self) {
                try await controller.withClients(.admin) { api in _ = try await api.mesh.renewLinkCredential(.init()) }
            }
            #expect(admin?.code == .permissionDenied)
        }
    }

    private func register(_ controller: TestController, token: String, name: String, app: String) async throws {
        try await controller.withClients(.token(token)) { api in
            _ = try await api.mesh.register(.with {
                $0.name = name
                $0.address = "127.0.0.9"
                $0.labels = ["app": app]
                $0.ports = [.with { $0.name = "http"; $0.port = 4143; $0.appPort = 8080 }]
            })
        }
    }

    @Test func aTokenBoundToAServiceCannotRegisterAWorkloadAnotherServiceSelects() async throws {
        try await withController { controller in
            _ = try await controller.withClients { api in
                try await api.apply([TestResources.namespace("test"), TestResources.service("podinfo"), TestResources.service("web")])
            }
            let bound = try await controller.withClients(.admin) { api in
                try await api.mesh.createToken(.with { $0.namespace = "test"; $0.serviceAccount = "default"; $0.service = "web" })
            }.token
            // Labelled to receive podinfo's traffic: refused, naming the service that selects it.
            let refused = await #expect(throws: RPCError.self) {
                try await register(controller, token: bound, name: "web-1", app: "podinfo")
            }
            #expect(refused?.code == .permissionDenied)
            #expect(refused?.message.contains("podinfo") == true, "message: \(refused?.message ?? "")")
            let web1 = try await controller.withClients { api in try await api.get("Workload", "web-1", namespace: "test") }
            #expect(web1 == nil)

            // Its own service, or no service at all, is fine; so is an alias whose selector is
            // part of web's (it routes to every web workload anyway).
            _ = try await controller.withClients { api in
                try await api.apply([TestResources.service("web-canary", selector: ["app": "web"])])
            }
            try await register(controller, token: bound, name: "web-2", app: "web")
            try await register(controller, token: bound, name: "web-3", app: "batch")
            let web2 = try await controller.withClients { api in try await api.get("Workload", "web-2", namespace: "test") }
            #expect(web2 != nil)

            // A token without a service keeps the namespace/service-account scope of before.
            let unbound = try await controller.joinToken(namespace: "test", serviceAccount: "default")
            try await register(controller, token: unbound, name: "any-1", app: "podinfo")
            let any1 = try await controller.withClients { api in try await api.get("Workload", "any-1", namespace: "test") }
            #expect(any1 != nil)
        }
    }

    /// Heartbeat and deregister with `token`; each must be refused with PERMISSION_DENIED and a
    /// message naming `reason`.
    private func expectRefusedToTouch(
        _ controller: TestController, token: String, name: String, reason: String
    ) async throws {
        try await controller.withClients(.token(token)) { api in
            let beat = await #expect(throws: RPCError.self) {
                _ = try await api.mesh.heartbeat(.with { $0.namespace = "test"; $0.name = name })
            }
            #expect(beat?.code == .permissionDenied)
            #expect(beat?.message.contains(reason) == true, "heartbeat: \(beat?.message ?? "")")
            let gone = await #expect(throws: RPCError.self) {
                _ = try await api.mesh.deregister(.with { $0.namespace = "test"; $0.name = name })
            }
            #expect(gone?.code == .permissionDenied)
            #expect(gone?.message.contains(reason) == true, "deregister: \(gone?.message ?? "")")
        }
    }

    @Test func aJoinTokenHeartbeatsAndDeregistersOnlyWorkloadsOfItsOwnIdentity() async throws {
        try await withController { controller in
            _ = try await controller.withClients { api in
                try await api.apply([
                    TestResources.namespace("test"),
                    // Applied by an administrator: no identity claimed.
                    Resource(
                        name: "applied-1", namespace: "test", labels: ["app": "batch"],
                        spec: WorkloadSpec(address: "127.0.0.11", ports: [WorkloadPort(name: "http", port: 4143, appPort: 8080)])),
                ])
            }
            let podinfo = try await controller.joinToken(namespace: "test", serviceAccount: "podinfo")
            let mallory = try await controller.joinToken(namespace: "test", serviceAccount: "mallory")
            try await register(controller, token: podinfo, name: "podinfo-1", app: "podinfo")

            // Another service account of the namespace can neither keep it alive nor take it away.
            try await expectRefusedToTouch(controller, token: mallory, name: "podinfo-1", reason: "is registered by podinfo.test.serviceaccount")
            // Nor a workload an administrator applied, not even by registering over it first.
            try await expectRefusedToTouch(controller, token: mallory, name: "applied-1", reason: "starling delete workload applied-1")
            let takeover = await #expect(throws: RPCError.self) {
                try await register(controller, token: mallory, name: "applied-1", app: "batch")
            }
            #expect(takeover?.code == .permissionDenied)
            #expect(takeover?.message.contains("was applied by an administrator") == true, "\(takeover?.message ?? "")")
            let (kept, applied) = try await controller.withClients { api in
                (try await api.get("Workload", "podinfo-1", namespace: "test"), try await api.get("Workload", "applied-1", namespace: "test"))
            }
            #expect(kept != nil)
            #expect(applied != nil)

            // A name nobody registered is unknown, so its proxy registers again.
            let nobody = try await controller.withClients(.token(mallory)) { api in
                try await api.mesh.heartbeat(.with { $0.namespace = "test"; $0.name = "nobody-1" })
            }
            #expect(!nobody.known)
            // The owner's token does both.
            let known = try await controller.withClients(.token(podinfo)) { api in
                let answer = try await api.mesh.heartbeat(.with { $0.namespace = "test"; $0.name = "podinfo-1" })
                _ = try await api.mesh.deregister(.with { $0.namespace = "test"; $0.name = "podinfo-1" })
                return answer.known
            }
            #expect(known)
            let removed = try await controller.withClients { api in try await api.get("Workload", "podinfo-1", namespace: "test") }
            #expect(removed == nil)
        }
    }

    @Test func aTokenBoundToAServiceCannotTouchOrRelabelAWorkloadOfAnotherService() async throws {
        try await withController { controller in
            _ = try await controller.withClients { api in
                try await api.apply([TestResources.namespace("test"), TestResources.service("podinfo"), TestResources.service("web")])
            }
            // One service account runs both services; each proxy has a token bound to its service.
            let (podinfo, web) = try await controller.withClients(.admin) { api in
                let podinfo = try await api.mesh.createToken(.with { $0.namespace = "test"; $0.serviceAccount = "default"; $0.service = "podinfo" })
                let web = try await api.mesh.createToken(.with { $0.namespace = "test"; $0.serviceAccount = "default"; $0.service = "web" })
                return (podinfo.token, web.token)
            }
            try await register(controller, token: podinfo, name: "podinfo-1", app: "podinfo")

            try await expectRefusedToTouch(controller, token: web, name: "podinfo-1", reason: "picked by service podinfo")
            // Re-registering the name with web's labels would take podinfo's endpoint away.
            let relabel = await #expect(throws: RPCError.self) {
                try await register(controller, token: web, name: "podinfo-1", app: "web")
            }
            #expect(relabel?.code == .permissionDenied)
            #expect(relabel?.message.contains("cannot re-register that workload") == true, "\(relabel?.message ?? "")")
            let kept = try await controller.withClients { api in try await api.get("Workload", "podinfo-1", namespace: "test") }
            #expect(kept?.metadata.labels["app"] == "podinfo")

            // Its own workloads are its to keep and remove.
            try await register(controller, token: web, name: "web-1", app: "web")
            let webKnown = try await controller.withClients(.token(web)) { api in
                let answer = try await api.mesh.heartbeat(.with { $0.namespace = "test"; $0.name = "web-1" })
                _ = try await api.mesh.deregister(.with { $0.namespace = "test"; $0.name = "web-1" })
                return answer.known
            }
            #expect(webKnown)
        }
    }

    @Test func aServiceBindingIsForJoinTokensAndMustBeAName() async throws {
        try await withController { controller in
            try await controller.withClients(.admin) { api in
                let link = await #expect(throws: RPCError.self) {
                    _ = try await api.mesh.createToken(.with {
                        $0.namespace = "starling-multicluster"; $0.serviceAccount = "west"; $0.audience = "link"; $0.service = "web"
                    })
                }
                #expect(link?.code == .invalidArgument)
                let bad = await #expect(throws: RPCError.self) {
                    _ = try await api.mesh.createToken(.with { $0.namespace = "test"; $0.serviceAccount = "default"; $0.service = "Web_1" })
                }
                #expect(bad?.code == .invalidArgument)
            }
        }
    }

    @Test func oneIdentitysCSRFloodIsRateLimitedAndOthersAreServed() async throws {
        let pki = try TestPKI()
        try await withController(certifyRateLimit: CertifyRateLimit(perSecond: 1, burst: 3)) { controller in
            try await controller.install(pki)
            let flooder = try await controller.joinToken(namespace: "test", serviceAccount: "flood")
            let other = try await controller.joinToken(namespace: "test", serviceAccount: "web")
            func certify(_ token: String, _ sa: String) async throws -> Starling_V1_CertifyResponse {
                let identity = MeshIdentity(namespace: "test", serviceAccount: sa)
                let csr = try WorkloadKey().csr(for: identity)
                return try await controller.withClients(.none) { api in
                    try await api.identity.certify(.with {
                        $0.identity = identity.dnsName
                        $0.token = token
                        $0.certificateSigningRequest = Data(csr.der)
                    })
                }
            }
            var granted = 0
            var limited: RPCError?
            for _ in 0..<6 {
                do {
                    _ = try await certify(flooder, "flood")
                    granted += 1
                } catch let error as RPCError where error.code == .resourceExhausted {
                    limited = error
                }
            }
            // The burst (3), perhaps one more refilled while the calls ran; the rest refused.
            #expect(granted >= 3 && granted <= 4, "granted \(granted)")
            #expect(limited?.message.contains("retry in") == true, "message: \(limited?.message ?? "none")")
            // Another identity is not affected.
            let answer = try await certify(other, "web")
            #expect(!answer.chain.isEmpty)
        }
    }

    @Test func theRateLimiterRefillsAtItsRateAndLogsAFloodOncePerWindow() {
        let limiter = CertifyRateLimiter(CertifyRateLimit(perSecond: 2, burst: 2))
        let start = ContinuousClock.now
        #expect(limiter.acquire("a", now: start) == nil)
        #expect(limiter.acquire("a", now: start) == nil)
        let first = limiter.acquire("a", now: start)
        #expect(first?.retryAfter == .milliseconds(500))
        #expect(first?.toLog == 1)
        #expect(limiter.acquire("a", now: start + .milliseconds(100))?.toLog == nil)
        #expect(limiter.acquire("b", now: start) == nil)
        // Half a second later one certificate is back.
        #expect(limiter.acquire("a", now: start + .milliseconds(500)) == nil)
        #expect(limiter.acquire("a", now: start + .milliseconds(500)) != nil)
        // 10 s on the bucket is full again; the next refusal is logged, counting those in between.
        #expect(limiter.acquire("a", now: start + .seconds(10)) == nil)
        #expect(limiter.acquire("a", now: start + .seconds(10)) == nil)
        #expect(limiter.acquire("a", now: start + .seconds(10))?.toLog == 3)
    }
}

/// The linked cluster's controller renews a Link's credential at two thirds of its lifetime,
/// against the remote cluster's API, and writes it into the Link's Secret.
@Suite(.timeLimit(.minutes(1)))
struct LinkCredentialRenewalTests {
    /// A Link from `local` to cluster east (its API at 127.0.0.1:`apiPort`) with `credential`,
    /// as `multicluster link` writes it.
    private func linkToEast(
        _ local: TestController, credential: Starling_V1_CreateTokenResponse, certificatePEM: String, apiPort: Int
    ) async throws {
        let secret = Resource(
            name: "cluster-credentials-east", namespace: "starling-multicluster",
            spec: SecretSpec(type: "multicluster.starling.io/link-credential", strings: [
                "token": credential.token, "ca.crt": certificatePEM, "expires-at": "\(credential.expiresAt)",
            ]))
        let link = Resource(
            name: "east", namespace: "starling-multicluster",
            spec: LinkSpec(
                targetClusterName: "east", apiAddress: "127.0.0.1:\(apiPort)",
                credentialsSecret: "cluster-credentials-east", gatewayAddresses: ["127.0.0.1"], gatewayPort: 1,
                gatewayIdentity: MeshIdentity(namespace: "starling-multicluster", serviceAccount: "starling-gateway").dnsName))
        _ = try await local.withClients { api in try await api.apply([secret, link]) }
    }

    @Test func theMirroringControllerRenewsALinkCredentialAtTwoThirdsOfItsLifetime() async throws {
        try await withController { remote in
            let issued = try await remote.withClients(.admin) { api in
                try await api.mesh.createToken(.with {
                    $0.namespace = "starling-multicluster"; $0.serviceAccount = "test"; $0.audience = "link"; $0.ttlSeconds = 6
                })
            }
            try await withController { local in
                try await linkToEast(local, credential: issued, certificatePEM: remote.apiCertificatePEM, apiPort: remote.apiPort)

                // Renewed 4 s after issue (2/3 of 6 s), well before it expires.
                var found: SecretSpec?
                let deadline = ContinuousClock.now + .seconds(10)
                while found == nil, ContinuousClock.now < deadline {
                    let current = try await local.withClients { api in
                        try await api.get("Secret", "cluster-credentials-east", namespace: "starling-multicluster")
                    }
                    if let current, let spec = try? SecretSpec(current), spec.string("token") != issued.token { found = spec }
                    try await Task.sleep(for: .milliseconds(200))
                }
                let renewed = try #require(found, "the link credential was not renewed within 10 s")
                let claims = try JoinToken.verify(
                    renewed.string("token") ?? "", key: try remote.credentials().tokenKey, audience: JoinToken.Audience.link)
                #expect(claims.serviceAccount == "test")
                #expect(renewed.string("expires-at") == "\(claims.expiresAt)")
                #expect(claims.expiresAt > issued.expiresAt)
                #expect(renewed.string("ca.crt") == remote.apiCertificatePEM)
                // The next renewal is scheduled from the new credential, with no error.
                let status = try await local.withClients { api in try await api.mesh.gateways(.init()) }.gateways.first
                #expect(status?.credentialRenewalError == "")
            }
        }
    }

    @Test func aFailedLinkCredentialRenewalIsAWarningInCheckWhileTheCredentialIsValid() async throws {
        // A credential of the remote cluster, which then goes away: the renewal cannot reach it.
        let (issued, remoteCA, remotePort) = try await withController { remote in
            let issued = try await remote.withClients(.admin) { api in
                try await api.mesh.createToken(.with {
                    $0.namespace = "starling-multicluster"; $0.serviceAccount = "test"; $0.audience = "link"; $0.ttlSeconds = 9
                })
            }
            return (issued, remote.apiCertificatePEM, remote.apiPort)
        }
        try await withController { local in
            try await linkToEast(local, credential: issued, certificatePEM: remoteCA, apiPort: remotePort)

            // Due at 6 s of 9 (two thirds): the first attempt fails, and the registry says why.
            var failed: Starling_V1_GatewayStatus?
            let deadline = ContinuousClock.now + .seconds(20)
            while failed == nil, ContinuousClock.now < deadline {
                let status = try await local.withClients { api in try await api.mesh.gateways(.init()) }.gateways.first
                if let status, !status.credentialRenewalError.isEmpty { failed = status }
                try await Task.sleep(for: .milliseconds(250))
            }
            let status = try #require(failed, "no renewal failure was reported within 20 s")
            // Nothing was written: the Secret still holds the credential it had.
            let kept = try await local.withClients { api in
                try await api.get("Secret", "cluster-credentials-east", namespace: "starling-multicluster")
            }
            #expect(try kept.map { try SecretSpec($0).string("token") } == issued.token)

            // `check --multicluster` turns it into a warning while the credential is valid (as at
            // its renewal time), with a hint.
            let results = MulticlusterChecks.credentialChecks(
                cluster: "east", expiresAt: Double(issued.expiresAt), now: Double(status.credentialRenewsAt),
                renewsAt: Double(status.credentialRenewsAt), renewalError: status.credentialRenewalError)
            #expect(results.first?.status == "ok")
            let warning = try #require(results.first { $0.name == "credential-renewal" })
            #expect(warning.status == "warning")
            #expect(warning.message.hasPrefix("cluster east: link credential renewal failed: "), "\(warning.message)")
            #expect(warning.hint?.contains("multicluster link") == true)
        }
    }
}
