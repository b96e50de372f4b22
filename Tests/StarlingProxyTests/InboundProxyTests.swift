import Foundation
import Logging
import NIOCore
import NIOHPACK
import NIOSSL
import StarlingCore
import StarlingIdentity
import StarlingProxy
import StarlingTLS
import Testing

/// The inbound proxy end to end on loopback: real mTLS callers, real application servers.
@Suite(.timeLimit(.minutes(1)))
struct InboundProxyTests {
    let pki: InboundTestPKI
    let serverTLS: MeshTLS
    let clientTLS: MeshTLS

    init() throws {
        pki = try InboundTestPKI()
        serverTLS = try pki.tls(.inboundServer)
        clientTLS = try pki.tls(.inboundClient)
    }

    private func meshClient(port: Int, alpn: [String] = ["h2"]) async throws -> InboundTestClient {
        let tls = clientTLS
        return try await InboundTestClient.connect(port: port) {
            try tls.makeClientHandler(expecting: .inboundServer, alpn: alpn)
        }
    }

    // MARK: - HTTP/1 origin

    @Test func anHTTP1RequestReachesTheAppWithTheCallerIdentityAndWithoutMeshHeaders() async throws {
        let app = try await startInboundHTTP1App()
        defer { Task { await app.close() } }
        let configuration = InboundProxy.Configuration(appPorts: [app.port], defaultAppPort: 1)
        try await withInboundProxy(configuration: configuration, tls: serverTLS) { port in
            let client = try await meshClient(port: port)
            defer { Task { await client.close() } }
            let response = try await client.send(
                method: "POST", path: "/echo?x=1", authority: "podinfo.test:9898",
                headers: [
                    ("starling-target", "podinfo.test.svc.cluster.local:\(app.port)"),
                    ("starling-orig-proto", "HTTP/1.1"),
                    ("starling-client-id", "forged.identity"),
                ],
                body: "hello app")
            #expect(response.status == 200)
            #expect(response.body == "hello app")
            #expect(response.header("echo-client-id") == MeshIdentity.inboundClient.dnsName)
            #expect(response.header("echo-target") == "none")
            #expect(response.header("echo-orig-proto") == "none")
            #expect(response.header("echo-host") == "podinfo.test:9898")
            #expect(response.header("echo-version") == "HTTP/1.1")
            #expect(response.header("echo-path") == "/echo?x=1")
        }
    }

    @Test func manyHTTP1RequestsShareKeptAliveAppConnections() async throws {
        let app = try await startInboundHTTP1App()
        defer { Task { await app.close() } }
        let configuration = InboundProxy.Configuration(appPorts: [app.port], defaultAppPort: app.port)
        try await withInboundProxy(configuration: configuration, tls: serverTLS) { port in
            let client = try await meshClient(port: port)
            defer { Task { await client.close() } }
            try await withThrowingTaskGroup(of: InboundTestResponse.self) { group in
                for index in 0..<20 {
                    group.addTask {
                        try await client.send(
                            method: index % 2 == 0 ? "GET" : "PUT", path: "/item/\(index)", authority: "podinfo.test",
                            headers: [("starling-orig-proto", "HTTP/1.1")], body: index % 2 == 0 ? nil : "body-\(index)")
                    }
                }
                var count = 0
                for try await response in group {
                    #expect(response.status == 200)
                    count += 1
                }
                #expect(count == 20)
            }
            // And a large body streams through without being refused.
            let big = String(repeating: "x", count: 300_000)
            let response = try await client.send(
                method: "POST", authority: "podinfo.test", headers: [("starling-orig-proto", "HTTP/1.0")], body: big)
            #expect(response.status == 200)
            #expect(response.body.count == big.count)
        }
    }

    @Test func anUnreachableAppAnswers502ConnectFailed() async throws {
        let closedPort = try await inboundUnusedPort()
        let configuration = InboundProxy.Configuration(appPorts: [], defaultAppPort: closedPort)
        var logger = Logger(label: "dbg") { StreamLogHandler.standardError(label: $0) }
        logger.logLevel = .trace
        try await withInboundProxy(configuration: configuration, tls: serverTLS, logger: logger) { port in
            let client = try await meshClient(port: port)
            defer { Task { await client.close() } }
            let http1 = try await client.send(
                authority: "podinfo.test", headers: [("starling-orig-proto", "HTTP/1.1")])
            #expect(http1.status == 502)
            #expect(http1.header(ProxyError.headerName) == "connect-failed")
            let http2 = try await client.send(method: "POST", authority: "grpc.test", body: "x")
            #expect(http2.status == 502)
            #expect(http2.header(ProxyError.headerName) == "connect-failed")
        }
    }

    // MARK: - HTTP/2 origin

    @Test func anHTTP2RequestIsForwardedAsH2CAndTrailersComeBack() async throws {
        let app = try await startInboundH2CApp()
        defer { Task { await app.close() } }
        let configuration = InboundProxy.Configuration(appPorts: [app.port], defaultAppPort: 1)
        try await withInboundProxy(configuration: configuration, tls: serverTLS) { port in
            let client = try await meshClient(port: port)
            defer { Task { await client.close() } }
            for round in 0..<3 {
                let response = try await client.send(
                    method: "POST", path: "/pkg.Service/Method", authority: "grpc.test:\(app.port)",
                    headers: [
                        ("content-type", "application/grpc"), ("te", "trailers"),
                        ("starling-target", "grpc.test.svc.cluster.local:\(app.port)"),
                    ],
                    body: "message \(round)")
                #expect(response.status == 200)
                #expect(response.body == "message \(round)")
                #expect(response.header("echo-client-id") == MeshIdentity.inboundClient.dnsName)
                #expect(response.header("echo-target") == "none")
                #expect(response.trailers?.first(name: "grpc-status") == "0")
                #expect(response.trailers?.first(name: "grpc-message") == "ok")
            }
        }
    }

    // MARK: - Refused callers

    @Test func aClientCertificateFromAnotherRootIsRefusedInTheHandshake() async throws {
        let foreign = try InboundTestPKI(subject: "someone.else")
        let (chain, key) = try foreign.workload(.inboundClient)
        let context = try inboundClientContext(chain: chain, key: key, trustRoot: pki.root)
        try await expectRefused(reason: "certificate-rejected") { port in
            try await InboundTestClient.connect(port: port) { try NIOSSLClientHandler(context: context, serverHostname: nil) }
        }
    }

    @Test func anExpiredClientCertificateIsRefusedInTheHandshake() async throws {
        let (chain, key) = try pki.workload(.inboundClient, now: Date().addingTimeInterval(-7200), lifetime: 600)
        let context = try inboundClientContext(chain: chain, key: key, trustRoot: pki.root)
        try await expectRefused(reason: "certificate-rejected") { port in
            try await InboundTestClient.connect(port: port) { try NIOSSLClientHandler(context: context, serverHostname: nil) }
        }
    }

    @Test func aCallerWithoutAClientCertificateIsRefused() async throws {
        let context = try inboundClientContext(chain: nil, key: nil, trustRoot: pki.root)
        try await expectRefused(reason: "no-client-certificate") { port in
            try await InboundTestClient.connect(port: port) { try NIOSSLClientHandler(context: context, serverHostname: nil) }
        }
    }

    /// Connects with `connect`, expects no request to get through, and exactly one refusal log
    /// line with `reason` and the peer address.
    private func expectRefused(
        reason: String, _ connect: @escaping @Sendable (Int) async throws -> InboundTestClient
    ) async throws {
        let logs = InboundLogCapture()
        let configuration = InboundProxy.Configuration(appPorts: [], defaultAppPort: 1)
        try await withInboundProxy(configuration: configuration, tls: serverTLS, logger: logs.logger) { port in
            // TLS 1.3 clients finish their side before the server checks their certificate, so
            // connecting may succeed; no request ever does.
            await #expect(throws: (any Error).self) {
                let client = try await connect(port)
                defer { Task { await client.close() } }
                _ = try await client.send(authority: "podinfo.test", headers: [("starling-orig-proto", "HTTP/1.1")])
            }
            let refusals = try await logs.waitFor { $0.message == "refused inbound connection" }
            #expect(refusals.count == 1)
            #expect(refusals.first?.metadata["reason"] == reason)
            #expect(refusals.first?.metadata["peer"]?.contains("127.0.0.1") == true)
            #expect(refusals.first?.level == .notice)
        }
    }

    @Test func plaintextToTheMTLSPortIsClosed() async throws {
        let logs = InboundLogCapture()
        let configuration = InboundProxy.Configuration(appPorts: [], defaultAppPort: 1)
        try await withInboundProxy(configuration: configuration, tls: serverTLS, logger: logs.logger) { port in
            let (bytes, closed) = try await inboundRawExchange(
                port: port, send: ByteBuffer(string: "GET / HTTP/1.1\r\nHost: podinfo\r\n\r\n"))
            #expect(closed)
            #expect(!String(buffer: bytes).contains("HTTP/1.1"))
            let refusals = try await logs.waitFor { $0.message == "refused inbound connection" }
            #expect(refusals.count == 1)
            #expect(refusals.first?.metadata["reason"] == "not-tls")
        }
    }

    // MARK: - Opaque TCP

    @Test func opaqueBytesEchoThroughTheAppAfterTheTransportHeader() async throws {
        let app = try await startInboundTCPEchoApp()
        defer { Task { await app.close() } }
        let configuration = InboundProxy.Configuration(appPorts: [app.port], defaultAppPort: 1)
        let tls = clientTLS
        try await withInboundProxy(configuration: configuration, tls: serverTLS) { port in
            var payload = inboundTransportHeader("db.test.svc.cluster.local:\(app.port)")
            let data = String(repeating: "opaque bytes ", count: 5000)
            payload.writeString(data)
            let (bytes, closed) = try await inboundRawExchange(
                port: port, tls: { try tls.makeClientHandler(expecting: .inboundServer, alpn: [MeshHeaders.opaqueALPN]) },
                send: payload, halfClose: true)
            #expect(closed)
            #expect(String(buffer: bytes) == data)
        }
    }

    @Test func anOpaqueConnectionWithABadMagicIsClosed() async throws {
        let app = try await startInboundTCPEchoApp()
        defer { Task { await app.close() } }
        let logs = InboundLogCapture()
        let configuration = InboundProxy.Configuration(appPorts: [app.port], defaultAppPort: app.port)
        let tls = clientTLS
        try await withInboundProxy(configuration: configuration, tls: serverTLS, logger: logs.logger) { port in
            var payload = ByteBuffer(string: "SOT2")
            payload.writeInteger(UInt16(5), endianness: .big)
            payload.writeString("hello and more")
            let t0 = ContinuousClock.now
            let (bytes, closed) = try await inboundRawExchange(
                port: port, tls: { try tls.makeClientHandler(expecting: .inboundServer, alpn: [MeshHeaders.opaqueALPN]) },
                send: payload)
            print("DEBUG exchange took", ContinuousClock.now - t0)
            #expect(closed)
            #expect(bytes.readableBytes == 0)
            let refusals = try await logs.waitFor { $0.message == "refused opaque connection" }
            #expect(refusals.count == 1)
        }
    }

    // MARK: - Shutdown

    @Test func cancellingTheProxyStopsItListening() async throws {
        let configuration = InboundProxy.Configuration(appPorts: [], defaultAppPort: 1)
        let port = try await withInboundProxy(configuration: configuration, tls: serverTLS) { port in port }
        await #expect(throws: (any Error).self) {
            _ = try await inboundRawExchange(port: port, send: ByteBuffer(string: "x"))
        }
    }
}
