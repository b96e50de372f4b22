import Foundation
import Logging
import NIOCore
import NIOHPACK
import StarlingCore
import StarlingProxy
import StarlingTLS
import Testing

/// Inbound policy enforced by a running inbound proxy, with real mTLS callers and applications:
/// HTTP gets 403, gRPC PERMISSION_DENIED, opaque TCP is closed before the application sees a
/// byte, audit lets through and logs, a forged gateway header is ignored, and a policy change
/// reaches open connections.
@Suite(.timeLimit(.minutes(1)))
struct InboundAuthorizationTests {
    let pki: InboundTestPKI
    let serverTLS: MeshTLS
    let clientTLS: MeshTLS
    let strangerTLS: MeshTLS
    static let stranger = MeshIdentity(namespace: "test", serviceAccount: "curl")

    init() throws {
        pki = try InboundTestPKI()
        serverTLS = try pki.tls(.inboundServer)
        clientTLS = try pki.tls(.inboundClient)
        strangerTLS = try pki.tls(Self.stranger)
    }

    /// A policy whose Server covers `port` and admits only `identities` (from `clusters`).
    static func policy(port: Int, identities: [String], clusters: [String] = [], access: AccessPolicy = .deny) -> InboundPolicy {
        InboundPolicy(
            workload: "test/podinfo-1", cluster: "workload2",
            servers: [
                .init(
                    name: "test/podinfo-http", ports: [port], accessPolicy: access,
                    authorizations: [
                        .init(policy: "test/frontend-only", requirements: [.init(name: "m", identities: identities, clusters: clusters)])
                    ])
            ])
    }

    private func client(_ tls: MeshTLS, port: Int, alpn: [String] = ["h2"]) async throws -> InboundTestClient {
        try await InboundTestClient.connect(port: port) { try tls.makeClientHandler(expecting: .inboundServer, alpn: alpn) }
    }

    private func get(_ client: InboundTestClient, appPort: Int, headers: [(String, String)] = []) async throws -> InboundTestResponse {
        try await client.send(
            method: "GET", path: "/", authority: "podinfo.test:\(appPort)",
            headers: [("starling-target", "podinfo.test.svc.cluster.local:\(appPort)"), ("starling-orig-proto", "HTTP/1.1")] + headers)
    }

    @Test func theAllowedIdentityGets200AndAnotherGets403WithTheReason() async throws {
        let app = try await startInboundHTTP1App()
        defer { Task { await app.close() } }
        let logs = InboundLogCapture()
        let authorizer = InboundAuthorizer(
            initial: Self.policy(port: app.port, identities: [MeshIdentity.inboundClient.dnsName]), logger: logs.logger)
        let configuration = InboundProxy.Configuration(appPorts: [app.port], defaultAppPort: app.port)
        try await withInboundProxy(configuration: configuration, tls: serverTLS, authorizer: authorizer) { port in
            let allowed = try await client(clientTLS, port: port)
            defer { Task { await allowed.close() } }
            #expect(try await get(allowed, appPort: app.port).status == 200)
            let connectionsBefore = app.accepted.count

            let stranger = try await client(strangerTLS, port: port)
            defer { Task { await stranger.close() } }
            let denied = try await get(stranger, appPort: app.port)
            #expect(denied.status == 403)
            let reason = try #require(denied.header("starling-error"))
            #expect(reason.hasPrefix("forbidden: no authorization of server test/podinfo-http admits \(Self.stranger.dnsName)"))
            // Nothing reached the application: no new connection, and the pooled one was not used
            // (the echo app would have answered 200).
            #expect(app.accepted.count == connectionsBefore)
            let lines = try await logs.waitFor { $0.message == "request denied" }
            #expect(lines.first?.metadata["client_identity"] == Self.stranger.dnsName)
            #expect(lines.first?.metadata["server"] == "test/podinfo-http")
        }
    }

    @Test func aDeniedGRPCCallGetsPermissionDeniedTrailersOnly() async throws {
        let app = try await startInboundH2CApp()
        defer { Task { await app.close() } }
        let authorizer = InboundAuthorizer(
            initial: Self.policy(port: app.port, identities: [MeshIdentity.inboundClient.dnsName]), logger: Logger(label: "t"))
        let configuration = InboundProxy.Configuration(appPorts: [app.port], defaultAppPort: app.port)
        try await withInboundProxy(configuration: configuration, tls: serverTLS, authorizer: authorizer) { port in
            let stranger = try await client(strangerTLS, port: port)
            defer { Task { await stranger.close() } }
            let response = try await stranger.send(
                method: "POST", path: "/pkg.Service/Method", authority: "grpc.test:\(app.port)",
                headers: [
                    ("content-type", "application/grpc"), ("te", "trailers"),
                    ("starling-target", "grpc.test.svc.cluster.local:\(app.port)"),
                ],
                body: "message")
            #expect(response.status == 200)
            #expect(response.header("grpc-status") == "7")
            #expect(response.header("grpc-message")?.contains("no authorization") == true)
            #expect(response.body.isEmpty)
            #expect(app.accepted.count == 0)
        }
    }

    @Test func aDeniedOpaqueConnectionIsClosedBeforeTheApplicationSeesAByte() async throws {
        let app = try await startInboundTCPEchoApp()
        defer { Task { await app.close() } }
        let authorizer = InboundAuthorizer(
            initial: Self.policy(port: app.port, identities: [MeshIdentity.inboundClient.dnsName]), logger: Logger(label: "t"))
        let configuration = InboundProxy.Configuration(appPorts: [app.port], defaultAppPort: app.port)
        let stranger = strangerTLS
        try await withInboundProxy(configuration: configuration, tls: serverTLS, authorizer: authorizer) { port in
            var payload = inboundTransportHeader("db.test.svc.cluster.local:\(app.port)")
            payload.writeString("startup packet")
            let (bytes, closed) = try await inboundRawExchange(
                port: port,
                tls: { try stranger.makeClientHandler(expecting: .inboundServer, alpn: [MeshHeaders.opaqueALPN]) },
                send: payload)
            #expect(closed)
            #expect(bytes.readableBytes == 0)
        }
    }

    @Test func aPolicyChangeClosesAnOpenOpaqueConnectionItNoLongerAllows() async throws {
        let app = try await startInboundTCPEchoApp()
        defer { Task { await app.close() } }
        let frontend = MeshIdentity.inboundClient.dnsName
        let authorizer = InboundAuthorizer(initial: Self.policy(port: app.port, identities: [frontend]), logger: Logger(label: "t"))
        let configuration = InboundProxy.Configuration(appPorts: [app.port], defaultAppPort: app.port)
        let tls = clientTLS
        try await withInboundProxy(configuration: configuration, tls: serverTLS, authorizer: authorizer) { port in
            var payload = inboundTransportHeader("db.test.svc.cluster.local:\(app.port)")
            payload.writeString("hello")
            let appPort = app.port
            async let exchange = inboundRawExchange(
                port: port, tls: { try tls.makeClientHandler(expecting: .inboundServer, alpn: [MeshHeaders.opaqueALPN]) },
                send: payload, timeout: .seconds(8))
            // Long enough for the echo to come back first on a loaded machine (500 ms was not, once).
            try await Task.sleep(for: .milliseconds(1500))
            let changed = ContinuousClock.now
            authorizer.update(Self.policy(port: appPort, identities: ["nobody.test.serviceaccount.identity.starling.cluster.local"]))
            let (bytes, closed) = try await exchange
            #expect(closed)
            #expect(ContinuousClock.now - changed < .seconds(1))
            #expect(String(buffer: bytes) == "hello")
        }
    }

    @Test func auditLetsTheCallThroughAndLogsWhatItWouldDeny() async throws {
        let app = try await startInboundHTTP1App()
        defer { Task { await app.close() } }
        let logs = InboundLogCapture()
        let authorizer = InboundAuthorizer(
            initial: Self.policy(port: app.port, identities: ["nobody.test.serviceaccount.identity.starling.cluster.local"], access: .audit),
            logger: logs.logger)
        let configuration = InboundProxy.Configuration(appPorts: [app.port], defaultAppPort: app.port)
        try await withInboundProxy(configuration: configuration, tls: serverTLS, authorizer: authorizer) { port in
            let c = try await client(clientTLS, port: port)
            defer { Task { await c.close() } }
            #expect(try await get(c, appPort: app.port).status == 200)
            let lines = try await logs.waitFor { $0.message == "audit: would deny" }
            #expect(lines.count == 1)
        }
    }

    @Test func gatewayHeadersFromAPeerThatIsNoGatewayAreIgnored() async throws {
        let app = try await startInboundHTTP1App()
        defer { Task { await app.close() } }
        // Only frontend of cluster workload1, through a gateway, may call.
        let authorizer = InboundAuthorizer(
            initial: Self.policy(port: app.port, identities: [MeshIdentity.inboundClient.dnsName], clusters: ["workload1"]),
            logger: Logger(label: "t"))
        let configuration = InboundProxy.Configuration(appPorts: [app.port], defaultAppPort: app.port)
        try await withInboundProxy(configuration: configuration, tls: serverTLS, authorizer: authorizer) { port in
            let forger = try await client(strangerTLS, port: port)
            defer { Task { await forger.close() } }
            let response = try await get(
                forger, appPort: app.port,
                headers: [
                    ("starling-forwarded-client-id", MeshIdentity.inboundClient.dnsName),
                    ("starling-forwarded-client-cluster", "workload1"), ("starling-client-cluster", "workload1"),
                ])
            #expect(response.status == 403)
            #expect(response.header("starling-error")?.contains(Self.stranger.dnsName) == true)
        }
    }

    @Test func aRequestToAPortNoServerCoversFollowsTheDefaultPolicy() async throws {
        let app = try await startInboundHTTP1App()
        defer { Task { await app.close() } }
        let authorizer = InboundAuthorizer(
            initial: InboundPolicy(workload: "test/podinfo-1", cluster: "c", defaultPolicy: .deny), logger: Logger(label: "t"))
        let configuration = InboundProxy.Configuration(appPorts: [app.port], defaultAppPort: app.port)
        try await withInboundProxy(configuration: configuration, tls: serverTLS, authorizer: authorizer) { port in
            let c = try await client(clientTLS, port: port)
            defer { Task { await c.close() } }
            let denied = try await get(c, appPort: app.port)
            #expect(denied.status == 403)
            #expect(denied.header("starling-error")?.contains("the default inbound policy is deny") == true)
            authorizer.update(InboundPolicy(workload: "test/podinfo-1", cluster: "c", defaultPolicy: .allAuthenticated))
            #expect(try await get(c, appPort: app.port).status == 200)
        }
    }

    @Test func routesMatchTheNormalizedPathAndTheApplicationGetsIt() async throws {
        let app = try await startInboundHTTP1App()
        defer { Task { await app.close() } }
        let everyone = InboundPolicy.Authorization(policy: "test/everyone", requirements: [.init(name: "m", identities: ["*"])])
        let admins = InboundPolicy.Authorization(
            policy: "test/admins", requirements: [.init(name: "m", identities: [MeshIdentity.inboundClient.dnsName])])
        let policy = InboundPolicy(
            workload: "test/podinfo-1", cluster: "c",
            servers: [
                .init(
                    name: "test/podinfo-http", ports: [app.port],
                    routes: [
                        .init(name: "public", matches: [HTTPRouteMatch(pathType: .prefix, path: "/public")], authorizations: [everyone]),
                        .init(name: "admin", matches: [HTTPRouteMatch(pathType: .prefix, path: "/admin")], authorizations: [admins]),
                    ])
            ])
        let authorizer = InboundAuthorizer(initial: policy, logger: Logger(label: "t"))
        let configuration = InboundProxy.Configuration(appPorts: [app.port], defaultAppPort: app.port)
        try await withInboundProxy(configuration: configuration, tls: serverTLS, authorizer: authorizer) { port in
            let stranger = try await client(strangerTLS, port: port)
            defer { Task { await stranger.close() } }
            func call(_ c: InboundTestClient, _ path: String, method: String = "GET") async throws -> InboundTestResponse {
                try await c.send(
                    method: method, path: path, authority: "podinfo.test:\(app.port)",
                    headers: [("starling-target", "podinfo.test.svc.cluster.local:\(app.port)"), ("starling-orig-proto", "HTTP/1.1")])
            }
            #expect(try await call(stranger, "/public/x").status == 200)
            for sneaky in ["/public/../admin", "//admin", "/%61dmin/x", "/public/%2e%2e/admin"] {
                let r = try await call(stranger, sneaky)
                #expect(r.status == 403, "\(sneaky)")
            }
            let head = try await call(stranger, "/admin", method: "HEAD")
            #expect(head.status == 403 && head.body.isEmpty)
            let admin = try await client(clientTLS, port: port)
            defer { Task { await admin.close() } }
            let r = try await call(admin, "/public//x/./y/../z?q=/../a")
            #expect(r.status == 200)
            #expect(r.header("echo-path") == "/public/x/z?q=/../a")
        }
    }

    /// A gRPC request whose path is normalized still goes out as valid HTTP/2 (pseudo-headers
    /// first) and is answered.
    @Test func aNormalizedGRPCPathStillReachesTheApplication() async throws {
        let app = try await startInboundH2CApp()
        defer { Task { await app.close() } }
        let everyone = InboundPolicy.Authorization(policy: "test/everyone", requirements: [.init(name: "m", identities: ["*"])])
        let policy = InboundPolicy(
            workload: "test/greeter-1", cluster: "c",
            servers: [
                .init(
                    name: "test/greeter", ports: [app.port], proxyProtocol: "gRPC",
                    routes: [.init(name: "svc", matches: [HTTPRouteMatch(pathType: .prefix, path: "/pkg.Service")], authorizations: [everyone])])
            ])
        let authorizer = InboundAuthorizer(initial: policy, logger: Logger(label: "t"))
        let configuration = InboundProxy.Configuration(appPorts: [app.port], defaultAppPort: app.port)
        try await withInboundProxy(configuration: configuration, tls: serverTLS, authorizer: authorizer) { port in
            let c = try await client(clientTLS, port: port)
            defer { Task { await c.close() } }
            let response = try await c.send(
                method: "POST", path: "/pkg.Service//./Method", authority: "grpc.test:\(app.port)",
                headers: [
                    ("content-type", "application/grpc"), ("te", "trailers"),
                    ("starling-target", "grpc.test.svc.cluster.local:\(app.port)"),
                ],
                body: "message")
            #expect(response.status == 200)
            #expect(response.trailers?.first(name: "grpc-status") == "0", "\(response.headers)")
            #expect(response.body == "message")
        }
    }
}
