import Foundation
import Logging
import NIOCore
import NIOHPACK
import NIOPosix
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
            // And a body far larger than a stream's 64 KiB window streams through both ways:
            // the stream's credit follows the application connection, and back.
            let big = String(repeating: "x", count: 3 * 1024 * 1024)
            let response = try await client.send(
                method: "POST", authority: "podinfo.test", headers: [("starling-orig-proto", "HTTP/1.0")], body: big)
            #expect(response.status == 200)
            #expect(response.body.count == big.count)
        }
    }

    @Test func anUnreachableAppAnswers502ConnectFailed() async throws {
        let closedPort = try await inboundUnusedPort()
        let configuration = InboundProxy.Configuration(appPorts: [], defaultAppPort: closedPort)
        try await withInboundProxy(configuration: configuration, tls: serverTLS) { port in
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
        try await withH2CAppBehindInbound { client, app in
            for round in 0..<3 {
                let response = try await grpcCall(client, app: app, body: "message \(round)")
                #expect(response.status == 200)
                #expect(response.body == "message \(round)")
                #expect(response.header("echo-client-id") == MeshIdentity.inboundClient.dnsName)
                #expect(response.header("echo-target") == "none")
                #expect(response.trailers?.first(name: "grpc-status") == "0")
                #expect(response.trailers?.first(name: "grpc-message") == "ok")
            }
            // A message far larger than a stream's window: credit flows as the app stream takes it.
            let big = String(repeating: "g", count: 2 * 1024 * 1024)
            let response = try await grpcCall(client, app: app, body: big)
            #expect(response.body.count == big.count)
            #expect(response.trailers?.first(name: "grpc-status") == "0")
        }
    }

    @Test func aTrailersOnlyResponseComesBackAsOneHeadersFrame() async throws {
        try await withH2CAppBehindInbound { client, app in
            for _ in 0..<3 {
                let response = try await grpcCall(client, app: app, method: "Missing", body: "message")
                #expect(response.status == 200, "\(response.header(ProxyError.headerName) ?? "")")
                #expect(response.header("grpc-status") == "5")
                #expect(response.header("grpc-message") == "not here")
            }
        }
    }

    /// Runs `body` with a client of an inbound proxy in front of the h2c test app.
    private func withH2CAppBehindInbound(
        _ body: @escaping @Sendable (InboundTestClient, InboundTestServer) async throws -> Void
    ) async throws {
        let app = try await startInboundH2CApp()
        defer { Task { await app.close() } }
        let configuration = InboundProxy.Configuration(appPorts: [app.port], defaultAppPort: 1)
        try await withInboundProxy(configuration: configuration, tls: serverTLS) { port in
            let client = try await meshClient(port: port)
            defer { Task { await client.close() } }
            try await body(client, app)
        }
    }

    /// A gRPC-shaped call through the inbound to the h2c test app.
    private func grpcCall(
        _ client: InboundTestClient, app: InboundTestServer, method: String = "Method", body: String
    ) async throws -> InboundTestResponse {
        try await client.send(
            method: "POST", path: "/pkg.Service/\(method)", authority: "grpc.test:\(app.port)",
            headers: [
                ("content-type", "application/grpc"), ("te", "trailers"),
                ("starling-target", "grpc.test.svc.cluster.local:\(app.port)"),
            ],
            body: body)
    }

    // MARK: - Refused callers

    @Test func aClientCertificateFromAnotherRootIsRefusedInTheHandshake() async throws {
        let foreign = try InboundTestPKI(subject: "someone.else")
        let (chain, key) = try foreign.workload(.inboundClient)
        let context = try inboundClientContext(chain: chain, key: key, trustRoot: pki.root)
        try await expectRefused(reason: "unknown-authority") { port in
            try await InboundTestClient.connect(port: port) { try NIOSSLClientHandler(context: context, serverHostname: nil) }
        }
    }

    @Test func anExpiredClientCertificateIsRefusedInTheHandshake() async throws {
        let (chain, key) = try pki.workload(.inboundClient, now: Date().addingTimeInterval(-7200), lifetime: 600)
        let context = try inboundClientContext(chain: chain, key: key, trustRoot: pki.root)
        try await expectRefused(reason: "expired") { port in
            try await InboundTestClient.connect(port: port) { try NIOSSLClientHandler(context: context, serverHostname: nil) }
        }
    }

    @Test func aClientAskingForAnotherWorkloadBySNIIsRefusedInTheHandshake() async throws {
        let (chain, key) = try pki.workload(.inboundClient)
        let context = try inboundClientContext(chain: chain, key: key, trustRoot: pki.root)
        try await expectRefused(reason: "sni-mismatch") { port in
            try await InboundTestClient.connect(port: port) {
                try NIOSSLClientHandler(context: context, serverHostname: MeshIdentity.inboundClient.dnsName)
            }
        }
    }

    @Test func aClientNamingThisWorkloadBySNIIsServed() async throws {
        let (chain, key) = try pki.workload(.inboundClient)
        let context = try inboundClientContext(chain: chain, key: key, trustRoot: pki.root)
        let logs = InboundLogCapture()
        let configuration = InboundProxy.Configuration(appPorts: [], defaultAppPort: 1)
        try await withInboundProxy(configuration: configuration, tls: serverTLS, logger: logs.logger) { port in
            let client = try await InboundTestClient.connect(port: port) {
                try NIOSSLClientHandler(context: context, serverHostname: MeshIdentity.inboundServer.dnsName)
            }
            defer { Task { await client.close() } }
            // No app listens on port 1: the inbound answers with an error status, which is enough
            // to show the connection was served, not refused.
            let response = try await client.send(authority: "podinfo.test", headers: [("starling-orig-proto", "HTTP/1.1")])
            #expect(response.status != nil)
            #expect(logs.all.filter { $0.message == "refused inbound connection" }.isEmpty)
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
            #expect(bytes.readableBytes == data.utf8.count)
            #expect(String(buffer: bytes).hasPrefix("opaque bytes opaque"))
            #expect(String(buffer: bytes).hasSuffix("opaque bytes "))
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
            let (bytes, closed) = try await inboundRawExchange(
                port: port, tls: { try tls.makeClientHandler(expecting: .inboundServer, alpn: [MeshHeaders.opaqueALPN]) },
                send: payload)
            #expect(closed)
            #expect(bytes.readableBytes == 0)
            let refusals = try await logs.waitFor { $0.message == "refused opaque connection" }
            #expect(refusals.count == 1)
        }
    }

    // MARK: - Shutdown

    @Test func drainingLetsAnInFlightRequestFinishAndRefusesNewConnections() async throws {
        let app = try await startInboundHTTP1App()
        defer { Task { await app.close() } }
        var configuration = InboundProxy.Configuration(appPorts: [app.port], defaultAppPort: app.port)
        configuration.listenHost = "127.0.0.1"
        configuration.listenPort = 0
        configuration.drainTimeout = .seconds(5)
        let proxy = InboundProxy(configuration: configuration, tls: serverTLS, logger: Logger(label: "starling.inbound.test"))
        let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await proxy.run { continuation.yield($0) } }
            var iterator = ports.makeAsyncIterator()
            let port = try #require(await iterator.next())
            let client = try await meshClient(port: port)
            defer { Task { await client.close() } }
            async let slow = client.send(
                authority: "podinfo.test", headers: [("starling-orig-proto", "HTTP/1.1"), ("echo-delay-ms", "400")])
            try await Task.sleep(for: .milliseconds(150))
            let start = ContinuousClock.now
            group.cancelAll()
            let response = try await slow
            #expect(response.status == 200)
            try await group.waitForAll()
            // The proxy waited for the request, not for the drain timeout.
            #expect(ContinuousClock.now - start < .seconds(3))
            await #expect(throws: (any Error).self) {
                _ = try await inboundRawExchange(port: port, send: ByteBuffer(string: "x"))
            }
        }
    }

    /// A peer proxy's pooled HTTP/2 connection with nothing in flight closes as soon as the drain
    /// sends GOAWAY: the pool's side answers the close_notify. It did not (its dialer allowed
    /// half-closure), so every drain with a linked cluster's connection open waited out TLS's 5 s
    /// shutdown timeout, the listener closed all the while (the soak's SIGTERM-restart outage).
    @Test func drainingClosesAnIdlePeerConnectionAtOnce() async throws {
        var configuration = InboundProxy.Configuration(appPorts: [], defaultAppPort: 1)
        configuration.listenHost = "127.0.0.1"
        configuration.listenPort = 0
        configuration.drainTimeout = .seconds(20)
        let proxy = InboundProxy(configuration: configuration, tls: serverTLS, logger: Logger(label: "starling.inbound.test"))
        let pool = PeerConnectionPool(dialer: PeerDialer(tls: clientTLS))
        defer { pool.close() }
        let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await proxy.run { continuation.yield($0) } }
            var iterator = ports.makeAsyncIterator()
            let port = try #require(await iterator.next())
            let connection = try await pool.connection(
                to: Endpoint(host: "127.0.0.1", port: port, identity: .inboundServer))
            // Past the handshake stage: the drain finds an HTTP/2 connection with no stream open.
            try await Task.sleep(for: .milliseconds(200))
            #expect(connection.channel.isActive)
            let start = ContinuousClock.now
            group.cancelAll()
            try await group.waitForAll()
            let drained = ContinuousClock.now - start
            #expect(drained < .seconds(2), "the drain took \(drained)")
            try await connection.channel.closeFuture.get()
        }
    }

    /// An opaque connection has no request boundary to stop at: the drain lets it relay until
    /// the grace period ends, then closes it (Linkerd and Envoy do the same), and the drain ends
    /// with it rather than at once or never.
    @Test func drainingKeepsAnOpaqueConnectionRelayingUntilTheGracePeriodEnds() async throws {
        let app = try await startInboundTCPEchoApp()
        defer { Task { await app.close() } }
        var configuration = InboundProxy.Configuration(appPorts: [app.port], defaultAppPort: 1)
        configuration.listenHost = "127.0.0.1"
        configuration.listenPort = 0
        configuration.drainTimeout = .milliseconds(1_500)
        let proxy = InboundProxy(configuration: configuration, tls: serverTLS, logger: Logger(label: "starling.inbound.test"))
        let tls = clientTLS
        let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await proxy.run { continuation.yield($0) } }
            var iterator = ports.makeAsyncIterator()
            let port = try #require(await iterator.next())
            let collector = InboundByteCollector()
            let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(
                            try tls.makeClientHandler(expecting: .inboundServer, alpn: [MeshHeaders.opaqueALPN]))
                        try channel.pipeline.syncOperations.addHandler(InboundByteCollectorHandler(collector))
                    }
                }
                .connect(host: "127.0.0.1", port: port).get()
            defer { channel.close(promise: nil) }
            func echoed(_ text: String) async throws -> Bool {
                for _ in 0..<200 where !String(buffer: collector.bytes).hasSuffix(text) {
                    try await Task.sleep(for: .milliseconds(10))
                }
                return String(buffer: collector.bytes).hasSuffix(text)
            }
            var first = inboundTransportHeader("db.test.svc.cluster.local:\(app.port)")
            first.writeString("before")
            try await channel.writeAndFlush(first)
            #expect(try await echoed("before"))

            let start = ContinuousClock.now
            group.cancelAll()
            try await Task.sleep(for: .milliseconds(500))
            try await channel.writeAndFlush(ByteBuffer(string: "during"))
            #expect(try await echoed("during"), "the opaque connection stopped relaying when the drain began")
            #expect(!collector.closed)

            try await group.waitForAll()
            let drained = ContinuousClock.now - start
            #expect(drained >= .milliseconds(1_400), "closed before the grace period ended: \(drained)")
            #expect(drained < .seconds(4), "the drain took \(drained)")
            try await channel.closeFuture.get()
        }
    }

    @Test func cancellingTheProxyStopsItListening() async throws {
        let configuration = InboundProxy.Configuration(appPorts: [], defaultAppPort: 1)
        let port = try await withInboundProxy(configuration: configuration, tls: serverTLS) { port in port }
        await #expect(throws: (any Error).self) {
            _ = try await inboundRawExchange(port: port, send: ByteBuffer(string: "x"))
        }
    }
}

/// Real `openssl s_client` against the inbound listener.
@Suite(.timeLimit(.minutes(1)))
struct InboundOpenSSLInteropTests {
    static let openssl: String? = {
        let directories = (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":")
        return directories.map { "\($0)/openssl" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }()

    @Test(.enabled(if: openssl != nil, "openssl is not installed; skipping the s_client interop test"))
    func opensslWithAMeshCertificateNegotiatesTLS13AndH2AndWithoutOneIsRefused() async throws {
        let pki = try InboundTestPKI()
        let serverTLS = try pki.tls(.inboundServer)
        let (chain, key) = try pki.workload(.inboundClient)
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("starling-inbound-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        try PEMFile.pem(chain[0]).write(to: directory.appendingPathComponent("client.pem"), atomically: true, encoding: .utf8)
        try PEMFile.pem(Array(chain.dropFirst())).write(
            to: directory.appendingPathComponent("chain.pem"), atomically: true, encoding: .utf8)
        try key.pem.write(to: directory.appendingPathComponent("client.key"), atomically: true, encoding: .utf8)
        try pki.rootPEM.write(to: directory.appendingPathComponent("root.pem"), atomically: true, encoding: .utf8)

        let logs = InboundLogCapture()
        let configuration = InboundProxy.Configuration(appPorts: [], defaultAppPort: 1)
        try await withInboundProxy(configuration: configuration, tls: serverTLS, logger: logs.logger) { port in
            let common = ["s_client", "-connect", "127.0.0.1:\(port)", "-tls1_3", "-alpn", "h2", "-CAfile", "root.pem"]
            let meshed = try Self.run(
                common + ["-cert", "client.pem", "-cert_chain", "chain.pem", "-key", "client.key"], in: directory)
            #expect(meshed.status == 0, "s_client with a mesh certificate failed: \(meshed.output)")
            #expect(meshed.output.contains("TLSv1.3"))
            #expect(meshed.output.contains("ALPN protocol: h2"))
            #expect(meshed.output.contains("Verify return code: 0 (ok)"))
            // TLS 1.3 clients finish first; the server's verdict is in its log.
            let established = try await logs.waitFor { $0.message == "inbound HTTP/2 connection established" }
            #expect(established.first?.metadata["client_identity"] == MeshIdentity.inboundClient.dnsName)
            #expect(!logs.all.contains { $0.message == "refused inbound connection" })

            // Keep reading after stdin ends so the server's refusal (an alert after the client's
            // Finished, in TLS 1.3) is seen.
            let anonymous = try Self.run(common + ["-ign_eof"], in: directory)
            #expect(anonymous.status != 0, "s_client without a certificate was not refused: \(anonymous.output)")
            #expect(anonymous.output.lowercased().contains("alert"), "\(anonymous.output)")
            let refusals = try await logs.waitFor { $0.message == "refused inbound connection" }
            #expect(refusals.map { $0.metadata["reason"] } == ["no-client-certificate"])
        }
    }

    static func run(_ arguments: [String], in directory: URL) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: openssl ?? "/usr/bin/openssl")
        process.arguments = arguments
        process.currentDirectoryURL = directory
        process.standardInput = FileHandle.nullDevice
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let output = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: output, as: UTF8.self))
    }
}
