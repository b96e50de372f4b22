import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL
import StarlingCore
import StarlingGateway
import StarlingProxy
import StarlingTLS
import Synchronization
import Testing

/// The gateway end to end on loopback: a calling proxy (the test's mTLS client, as `frontend`
/// of cluster `west`) → the real GatewayProxy → the real InboundProxy of the workload → an
/// in-test application.
struct GatewayProxyTests {
    static let target = "podinfo.test.svc.cluster.local:9898"
    static let caller = MeshIdentity(namespace: "test", serviceAccount: "frontend")
    static let workload = MeshIdentity(namespace: "test", serviceAccount: "podinfo")

    // MARK: - HTTP

    @Test func forwardsAnExportedServiceAndTheAppSeesTheOriginalCaller() async throws {
        try await withGatewayStack(app: .http) { stack in
            let client = try await stack.callerClient()
            defer { Task { await client.close() } }
            let response = try await client.send(
                method: "POST", path: "/echo", authority: "podinfo.test:9898",
                headers: [
                    ("starling-target", Self.target), ("starling-orig-proto", "HTTP/1.1"),
                    ("starling-client-cluster", "west"),
                    ("starling-forwarded-client-id", "admin.kube-system.serviceaccount.identity.starling.cluster.local"),
                ],
                body: "hello through the gateway")
            #expect(response.status == 200)
            #expect(response.header("echo-body") == "hello through the gateway")
            #expect(response.header("echo-starling-client-id") == Self.caller.dnsName)
            #expect(response.header("echo-starling-client-cluster") == "west")
            #expect(response.header("echo-starling-forwarded-client-id") == "none")
            #expect(response.header("echo-starling-gateway-hops") == "none")
            #expect(response.header("echo-starling-target") == "none")
            #expect(response.header("echo-version") == "HTTP/1.1")
            #expect(stack.app.requests == 1)
            // The outcome is reported right after the response went out.
            let deadline = ContinuousClock.now + .seconds(2)
            while stack.picker.outcomes.count == 0, ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(10))
            }
            #expect(stack.picker.outcomes.count == 1)
        }
    }

    /// The gateway forwards over mTLS only: an endpoint outside the mesh is passed over for a
    /// meshed one, as a refused connect would be, and the request arrives through the inbound.
    @Test func aPlainEndpointIsPassedOverForAMeshedOne() async throws {
        try await withGatewayStack(app: .http, plainEndpointFirst: true) { stack in
            let client = try await stack.callerClient()
            defer { Task { await client.close() } }
            let response = try await client.send(
                method: "GET", path: "/echo", authority: "podinfo.test:9898",
                headers: [("starling-target", Self.target), ("starling-orig-proto", "HTTP/1.1")], body: nil)
            #expect(response.status == 200)
            // The inbound named the caller: the request did not go to the application directly.
            #expect(response.header("echo-starling-client-id") == Self.caller.dnsName)
            #expect(stack.app.requests == 1)
            let deadline = ContinuousClock.now + .seconds(2)
            while stack.picker.outcomes.count < 2, ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(10))
            }
            #expect(stack.picker.outcomes.failures == 1)
            #expect(stack.picker.outcomes.successes == 1)
        }
    }

    @Test func aCallerWithoutClusterReachesTheAppAsUnknown() async throws {
        try await withGatewayStack(app: .http) { stack in
            let client = try await stack.callerClient()
            defer { Task { await client.close() } }
            let response = try await client.send(
                authority: "podinfo.test:9898",
                headers: [("starling-target", Self.target), ("starling-orig-proto", "HTTP/1.1")])
            #expect(response.status == 200)
            #expect(response.header("echo-starling-client-cluster") == "unknown")
        }
    }

    @Test func aServiceThatIsNotExportedIsRefusedWith403() async throws {
        try await withGatewayStack(app: .http, profile: .init(fullyQualifiedName: "podinfo.test.svc.cluster.local")) { stack in
            let client = try await stack.callerClient()
            defer { Task { await client.close() } }
            let response = try await client.send(
                authority: "podinfo.test:9898",
                headers: [("starling-target", Self.target), ("starling-orig-proto", "HTTP/1.1")])
            #expect(response.status == 403)
            #expect(response.header("starling-error") == "not-exported")
            #expect(stack.app.requests == 0)
        }
    }

    @Test func aMirroredTargetIsRefusedAsALoop() async throws {
        let mirror = ServiceProfile(fullyQualifiedName: "podinfo.test.svc.cluster.local", exported: true, mirrored: true)
        try await withGatewayStack(app: .http, profile: mirror) { stack in
            let client = try await stack.callerClient()
            defer { Task { await client.close() } }
            let response = try await client.send(authority: "podinfo.test:9898", headers: [("starling-target", Self.target)])
            #expect(response.status == 508)
            #expect(response.header("starling-error") == "loop")
            #expect(stack.app.requests == 0)
        }
    }

    @Test func aRequestThatAlreadyPassedAGatewayIsRefusedAsALoop() async throws {
        try await withGatewayStack(app: .http) { stack in
            let client = try await stack.callerClient()
            defer { Task { await client.close() } }
            let response = try await client.send(
                authority: "podinfo.test:9898", headers: [("starling-target", Self.target), ("starling-gateway-hops", "1")])
            #expect(response.status == 508)
            #expect(response.header("starling-error") == "loop")
            #expect(stack.app.requests == 0)
        }
    }

    @Test func aRequestWithoutTargetIsABadRequest() async throws {
        try await withGatewayStack(app: .http) { stack in
            let client = try await stack.callerClient()
            defer { Task { await client.close() } }
            let response = try await client.send(authority: "podinfo.test:9898")
            #expect(response.status == 400)
            #expect(response.header("starling-error") == "bad-request")
        }
    }

    @Test func anUnknownTargetAnswers503() async throws {
        try await withGatewayStack(app: .http) { stack in
            let client = try await stack.callerClient()
            defer { Task { await client.close() } }
            let response = try await client.send(
                authority: "other.test:80", headers: [("starling-target", "other.test.svc.cluster.local:80")])
            #expect(response.status == 503)
            #expect(response.header("starling-error") == "unknown-service")
        }
    }

    @Test func aCallerWithoutCertificateIsRefused() async throws {
        try await withGatewayStack(app: .http) { stack in
            let context = try inboundClientContext(chain: nil, key: nil, trustRoot: stack.pki.root)
            let send = ByteBuffer(string: "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
            // TLS 1.3 clients finish their side before the gateway checks their certificate, so
            // the write may go out or fail; either way nothing comes back and the connection closes.
            if let (bytes, closed) = try? await inboundRawExchange(
                port: stack.gatewayPort, tls: { try NIOSSLClientHandler(context: context, serverHostname: nil) }, send: send)
            {
                #expect(bytes.readableBytes == 0)
                #expect(closed)
            }
            let refused = try await stack.logs.waitFor {
                $0.message == "refused inbound connection" && $0.metadata["reason"] == "no-client-certificate"
            }
            #expect(refused.count == 1)
            #expect(stack.app.requests == 0)
        }
    }

    // MARK: - Opaque TCP

    @Test func opaqueConnectionsAreSplicedToTheWorkload() async throws {
        try await withGatewayStack(app: .tcpEcho) { stack in
            var send = inboundTransportHeader(Self.target)
            send.writeString("ping over opaque")
            let (bytes, closed) = try await inboundRawExchange(
                port: stack.gatewayPort, tls: stack.callerTLSHandler(alpn: [MeshHeaders.opaqueALPN]), send: send,
                halfClose: true)
            #expect(String(buffer: bytes) == "ping over opaque")
            #expect(closed)
        }
    }

    @Test func opaqueConnectionsToAServiceThatIsNotExportedAreClosed() async throws {
        try await withGatewayStack(app: .tcpEcho, profile: .init(fullyQualifiedName: "podinfo.test.svc.cluster.local")) { stack in
            var send = inboundTransportHeader(Self.target)
            send.writeString("ping over opaque")
            let (bytes, closed) = try await inboundRawExchange(
                port: stack.gatewayPort, tls: stack.callerTLSHandler(alpn: [MeshHeaders.opaqueALPN]), send: send)
            #expect(bytes.readableBytes == 0)
            #expect(closed)
            let refused = try await stack.logs.waitFor {
                $0.message == "gateway refused an opaque connection" && $0.metadata["reason"] == "not-exported"
            }
            #expect(refused.count == 1)
        }
    }
}

// MARK: - The gateway's own policy

/// An AuthorizationPolicy targeting the gateway's Server decides which callers, from which
/// clusters, may cross; the exported set is still enforced on top.
struct GatewayAuthorizationTests {
    /// The gateway listens on port 0 in these tests, so its Server names port 0.
    static func policy(clusters: [String]) -> InboundPolicy {
        InboundPolicy(
            workload: "starling-multicluster/starling-gateway", cluster: "east",
            servers: [
                .init(
                    name: "starling-multicluster/gateway", ports: [0],
                    authorizations: [
                        .init(
                            policy: "starling-multicluster/from-west",
                            requirements: [.init(name: "m", identities: [GatewayProxyTests.caller.dnsName], clusters: clusters)])
                    ])
            ])
    }

    @Test func onlyTheNamedClustersMayCross() async throws {
        let authorizer = InboundAuthorizer(initial: Self.policy(clusters: ["west"]), logger: Logger(label: "t"))
        try await withGatewayStack(app: .http, authorizer: authorizer) { stack in
            let client = try await stack.callerClient()
            defer { Task { await client.close() } }
            func call(from cluster: String, grpc: Bool = false) async throws -> InboundTestResponse {
                var headers = [("starling-target", GatewayProxyTests.target), ("starling-client-cluster", cluster)]
                headers.append(grpc ? ("content-type", "application/grpc") : ("starling-orig-proto", "HTTP/1.1"))
                return try await client.send(method: "GET", path: "/echo", authority: "podinfo.test:9898", headers: headers)
            }
            #expect(try await call(from: "west").status == 200)
            let denied = try await call(from: "north")
            #expect(denied.status == 403)
            #expect(denied.header("starling-error")?.hasPrefix("forbidden: no authorization of server starling-multicluster/gateway") == true)
            let grpc = try await call(from: "north", grpc: true)
            #expect(grpc.status == 200 && grpc.header("grpc-status") == "7")
            #expect(stack.app.requests == 1)
        }
    }

    @Test func anOpaqueConnectionTheGatewayPolicyDeniesIsClosed() async throws {
        let authorizer = InboundAuthorizer(
            initial: InboundPolicy(workload: "starling-multicluster/starling-gateway", cluster: "east", defaultPolicy: .deny),
            logger: Logger(label: "t"))
        try await withGatewayStack(app: .tcpEcho, authorizer: authorizer) { stack in
            var send = inboundTransportHeader(GatewayProxyTests.target)
            send.writeString("ping over opaque")
            let (bytes, closed) = try await inboundRawExchange(
                port: stack.gatewayPort, tls: stack.callerTLSHandler(alpn: [MeshHeaders.opaqueALPN]), send: send)
            #expect(bytes.readableBytes == 0)
            #expect(closed)
        }
    }
}

// MARK: - Harness

/// Everything one gateway test runs against.
struct GatewayStack: Sendable {
    let pki: InboundTestPKI
    let callerTLS: MeshTLS
    let gatewayPort: Int
    let app: GatewayTestApp
    let picker: FixedPicker
    let logs: InboundLogCapture

    /// The calling proxy's TLS: its own certificate, requiring the gateway's identity.
    func callerTLSHandler(alpn: [String]) -> @Sendable () throws -> NIOSSLClientHandler {
        let tls = callerTLS
        return { try tls.makeClientHandler(expecting: .gateway(), alpn: alpn) }
    }

    func callerClient() async throws -> InboundTestClient {
        try await InboundTestClient.connect(port: gatewayPort, callerTLSHandler(alpn: ["h2"]))
    }
}

enum GatewayTestAppKind {
    case http
    case tcpEcho
}

/// The workload's application: an HTTP/1.1 server echoing the body and the mesh headers it saw
/// (`echo-<name>`, `none` when absent), or a TCP echo; counts the requests it got.
final class GatewayTestApp: Sendable {
    let server: InboundTestServer
    private let count = Mutex(0)

    var requests: Int { count.withLock { $0 } }
    func received() { count.withLock { $0 += 1 } }

    private init(server: InboundTestServer) {
        self.server = server
    }

    static func start(_ kind: GatewayTestAppKind) async throws -> GatewayTestApp {
        switch kind {
        case .tcpEcho:
            return GatewayTestApp(server: try await startInboundTCPEchoApp())
        case .http:
            let recorder = GatewayRequestCount()
            let app = GatewayTestApp(server: try await startHTTP1TestApp { [GatewayHeaderEchoHandler(count: recorder)] })
            recorder.app.withLock { $0 = app }
            return app
        }
    }
}

/// Lets the app's handlers count into the `GatewayTestApp` made after the server bound.
final class GatewayRequestCount: Sendable {
    let app = Mutex<GatewayTestApp?>(nil)
    func received() { app.withLock { $0?.received() } }
}

final class GatewayHeaderEchoHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    static let echoed = [
        "starling-client-id", "starling-client-cluster", "starling-forwarded-client-id",
        "starling-forwarded-client-cluster", "starling-gateway-hops", "starling-target",
    ]

    private let count: GatewayRequestCount
    private var head: HTTPRequestHead?
    private var body = ByteBuffer()

    init(count: GatewayRequestCount) {
        self.count = count
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
            body.clear()
        case .body(var chunk):
            body.writeBuffer(&chunk)
        case .end:
            guard let head else { return }
            count.received()
            var headers = HTTPHeaders()
            for name in Self.echoed {
                let values = head.headers[name]
                headers.add(name: "echo-\(name)", value: values.isEmpty ? "none" : values.joined(separator: ","))
            }
            headers.add(name: "echo-version", value: "\(head.version)")
            headers.add(name: "echo-body", value: String(buffer: body))
            headers.add(name: "content-length", value: "0")
            self.head = nil
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: .http1_1, status: .ok, headers: headers))), promise: nil)
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
        }
    }
}

/// Answers the profiles it was given; anything else is an unknown service.
struct GatewayFakeDiscovery: DiscoverySource {
    var profiles: [String: ServiceProfile]

    func profile(_ authority: String) async throws(ProxyError) -> ServiceProfile {
        guard let profile = profiles[authority] else {
            throw ProxyError(.unknownService, "\(authority) is not a known service")
        }
        return profile
    }

    func endpoints(_ authority: String) async throws(ProxyError) -> EndpointSet {
        EndpointSet(endpoints: [], exists: profiles[authority] != nil)
    }
}

/// Starts the workload's app and inbound proxy and a gateway in front of them (the gateway's
/// discovery knows `GatewayProxyTests.target` with `profile`, exported by default), runs `body`,
/// then shuts everything down.
func withGatewayStack(
    app kind: GatewayTestAppKind,
    profile: ServiceProfile = ServiceProfile(fullyQualifiedName: "podinfo.test.svc.cluster.local", exported: true),
    plainEndpointFirst: Bool = false,
    authorizer: InboundAuthorizer = .allowAll(),
    _ body: @Sendable (GatewayStack) async throws -> Void
) async throws {
    let pki = try InboundTestPKI()
    let callerTLS = try pki.tls(GatewayProxyTests.caller)
    let gatewayTLS = try pki.tls(.gateway())
    let workloadTLS = try pki.tls(GatewayProxyTests.workload)
    let app = try await GatewayTestApp.start(kind)
    defer { Task { await app.server.close() } }
    let logs = InboundLogCapture()
    try await withInboundProxy(
        configuration: .init(defaultAppPort: app.server.port), tls: workloadTLS, logger: logs.logger
    ) { inboundPort in
        let meshed = Endpoint(host: "127.0.0.1", port: inboundPort, identity: GatewayProxyTests.workload)
        // The application's own address, outside the mesh: reaching it would skip the inbound.
        let plain = Endpoint(host: "127.0.0.1", port: app.server.port)
        let picker = FixedPicker(
            endpoints: [GatewayProxyTests.target: plainEndpointFirst ? plain : meshed],
            fallbacks: plainEndpointFirst ? [GatewayProxyTests.target: [meshed]] : [:],
            backend: GatewayProxyTests.target)
        let gateway = GatewayProxy(
            configuration: .init(listenHost: "127.0.0.1", listenPort: 0, drainTimeout: .seconds(1)),
            tls: gatewayTLS, discovery: GatewayFakeDiscovery(profiles: [GatewayProxyTests.target: profile]),
            picker: picker, clusterName: "east", logger: logs.logger, authorizer: authorizer)
        let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                defer { continuation.finish() }
                try await gateway.run { port in continuation.yield(port) }
            }
            var iterator = ports.makeAsyncIterator()
            guard let port = await iterator.next() else {
                try await group.waitForAll()
                throw InboundTestError("the gateway stopped before binding")
            }
            let stack = GatewayStack(
                pki: pki, callerTLS: callerTLS, gatewayPort: port, app: app, picker: picker, logs: logs)
            do {
                try await body(stack)
                group.cancelAll()
                try await group.waitForAll()
            } catch {
                group.cancelAll()
                try? await group.waitForAll()
                throw error
            }
        }
    }
}
