import Crypto
import Foundation
import NIOCore
import NIOSSL
import StarlingCore
import StarlingIdentity
import StarlingTLS
import Testing
import X509

/// Real TLS handshakes on loopback between `MeshTLS` instances.
@Suite(.timeLimit(.minutes(1)))
struct MeshTLSHandshakeTests {
    let pki: TestPKI
    let server: MeshIdentity = .test("web")
    let client: MeshIdentity = .test("frontend")

    init() throws {
        pki = try TestPKI()
    }

    @Test func mutualHandshakeUsesTLS13AndNegotiatesEachALPN() async throws {
        let serverTLS = try pki.meshTLS(server)
        let clientTLS = try pki.meshTLS(client)
        let listener = try await TestServer(tls: serverTLS)
        defer { Task { await listener.close() } }

        for alpn in ["h2", "starling-opaque"] {
            let connection = try await TestConnection.connect(
                port: listener.port, tls: clientTLS, expecting: server, alpn: [alpn])
            let handshake = try await connection.handshake.get()
            #expect(handshake == MeshHandshake(peer: server, alpn: alpn))
            #expect(try await connection.channel.channel.nioSSL_tlsVersion().get() == .tlsv13)
            #expect(try await MeshTLS.peerIdentity(of: connection.channel.channel).get() == server)
            #expect(try await connection.echo("ping-\(alpn)") == "ping-\(alpn)")
        }
        let outcomes = try await listener.outcomes.wait(for: 2)
        #expect(outcomes == [
            .accepted(MeshHandshake(peer: client, alpn: "h2")),
            .accepted(MeshHandshake(peer: client, alpn: "starling-opaque")),
        ])
    }

    @Test func dialerWithoutExpectationAcceptsAnyMeshPeer() async throws {
        let listener = try await TestServer(tls: try pki.meshTLS(server))
        defer { Task { await listener.close() } }
        let connection = try await TestConnection.connect(
            port: listener.port, tls: try pki.meshTLS(client), expecting: nil)
        #expect(try await connection.handshake.get().peer == server)
        #expect(try await connection.echo("x") == "x")
    }

    @Test func dialerExpectingAnotherIdentityFailsTheHandshake() async throws {
        let rejections = Recorder<IdentityError>()
        let listener = try await TestServer(tls: try pki.meshTLS(server))
        defer { Task { await listener.close() } }
        let clientTLS = try pki.meshTLS(client, onRejected: { rejections.append($0) })
        let connection = try await TestConnection.connect(port: listener.port, tls: clientTLS, expecting: .test("api"))
        await #expect(throws: (any Error).self) { try await connection.handshake.get() }
        await connection.close()
        let reasons = try await rejections.wait(for: 1)
        #expect(reasons.first?.code == .identityMismatch)
        #expect(reasons.first?.message.contains("api.test.serviceaccount") == true)
    }

    @Test func dialerRejectsServerFromAnotherRoot() async throws {
        let foreign = try TestPKI(name: "other")
        let listener = try await TestServer(tls: try foreign.meshTLS(server))
        defer { Task { await listener.close() } }
        let connection = try await TestConnection.connect(
            port: listener.port, tls: try pki.meshTLS(client), expecting: server)
        await #expect(throws: (any Error).self) { try await connection.handshake.get() }
        await connection.close()
    }

    @Test(arguments: [TestServer.Mode.meshHandler, .bareContext])
    func serverRejectsClientFromAnotherRoot(mode: TestServer.Mode) async throws {
        let foreign = try TestPKI(name: "other")
        let listener = try await TestServer(tls: try pki.meshTLS(server), mode: mode)
        defer { Task { await listener.close() } }
        // A client certificate signed by the foreign root, while the client trusts both roots.
        let (chain, key) = try foreign.workload(client)
        let dialer = try MeshTLS(chain: chain, key: key.privateKey, trustAnchors: [pki.root, foreign.root])
        let connection = try await TestConnection.connect(port: listener.port, tls: dialer, expecting: server)
        _ = try? await connection.handshake.get()
        #expect(try await listener.outcomes.wait(for: 1) == [.failed])
        await connection.close()
    }

    @Test func dialerRejectsExpiredServerCertificate() async throws {
        let expired = try pki.meshTLS(server, lifetime: 600, now: Date().addingTimeInterval(-3600))
        let listener = try await TestServer(tls: expired)
        defer { Task { await listener.close() } }
        let rejections = Recorder<IdentityError>()
        let connection = try await TestConnection.connect(
            port: listener.port, tls: try pki.meshTLS(client, onRejected: { rejections.append($0) }), expecting: server)
        await #expect(throws: (any Error).self) { try await connection.handshake.get() }
        await connection.close()
        #expect(try await rejections.wait(for: 1).first?.code == .expired)
    }

    @Test(arguments: [TestServer.Mode.meshHandler, .bareContext])
    func serverRejectsExpiredClientCertificate(mode: TestServer.Mode) async throws {
        let listener = try await TestServer(tls: try pki.meshTLS(server), mode: mode)
        defer { Task { await listener.close() } }
        let expired = try pki.meshTLS(client, lifetime: 600, now: Date().addingTimeInterval(-3600))
        let connection = try await TestConnection.connect(port: listener.port, tls: expired, expecting: server)
        _ = try? await connection.handshake.get()
        #expect(try await listener.outcomes.wait(for: 1) == [.failed])
        await connection.close()
    }

    @Test func plaintextToTheServerFailsAndIsClosed() async throws {
        let listener = try await TestServer(tls: try pki.meshTLS(server))
        defer { Task { await listener.close() } }
        let connection = try await TestConnection.connect(port: listener.port) { nil }
        let answer = try await connection.use { inbound, outbound in
            try await outbound.write(ByteBuffer(string: "GET / HTTP/1.1\r\nHost: web\r\n\r\n"))
            var bytes = 0
            for try await buffer in inbound { bytes += buffer.readableBytes }
            return bytes
        }
        #expect(answer < 64, "at most a TLS alert comes back, then the server closes")
        #expect(try await listener.outcomes.wait(for: 1) == [.failed])
    }

    @Test(arguments: [TestServer.Mode.meshHandler, .bareContext])
    func clientWithoutCertificateIsRejected(mode: TestServer.Mode) async throws {
        let listener = try await TestServer(tls: try pki.meshTLS(server), mode: mode)
        defer { Task { await listener.close() } }
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.minimumTLSVersion = .tlsv13
        configuration.certificateVerification = .noHostnameVerification
        configuration.trustRoots = .certificates([try NIOSSLCertificate(bytes: try pki.root.derBytes, format: .der)])
        configuration.applicationProtocols = ["h2"]
        let context = try NIOSSLContext(configuration: configuration)
        let connection = try await TestConnection.connect(port: listener.port) {
            try NIOSSLClientHandler(context: context, serverHostname: nil)
        }
        _ = try? await connection.handshake.get()
        #expect(try await listener.outcomes.wait(for: 1) == [.failed])
        let echoed: String?? = try? await connection.echo("hello")
        #expect(echoed == nil || echoed! == nil, "the server closes the connection")
    }

    @Test func meshServerHandlerRejectsCertificateWithoutMeshIdentity() async throws {
        let listener = try await TestServer(tls: try pki.meshTLS(server), mode: .meshHandler)
        defer { Task { await listener.close() } }
        let dialer = try await plainLeafClient(port: listener.port)
        _ = try? await dialer.handshake.get()
        #expect(try await listener.outcomes.wait(for: 1) == [.failed])
        await dialer.close()
    }

    @Test func bareServerContextReportsNoIdentityForCertificateWithoutMeshIdentity() async throws {
        let listener = try await TestServer(tls: try pki.meshTLS(server), mode: .bareContext)
        defer { Task { await listener.close() } }
        let dialer = try await plainLeafClient(port: listener.port)
        _ = try? await dialer.handshake.get()
        #expect(try await listener.outcomes.wait(for: 1) == [.accepted(MeshHandshake(peer: nil, alpn: "h2"))])
        await dialer.close()
    }

    @Test func rotationServesNewCertificateToNewConnectionsAndKeepsOldOnesOpen() async throws {
        let serverTLS = try pki.meshTLS(server)
        let clientTLS = try pki.meshTLS(client)
        let first = serverTLS.certificateChain[0]
        let listener = try await TestServer(tls: serverTLS)
        defer { Task { await listener.close() } }

        let old = try await TestConnection.connect(port: listener.port, tls: clientTLS, expecting: server)
        _ = try await old.handshake.get()
        #expect(try await old.peerCertificateDER() == (try first.derBytes))

        let renewed = try pki.workload(server, lifetime: 7200)
        try serverTLS.update(chain: renewed.chain, key: renewed.key.privateKey)
        #expect(serverTLS.certificateChain[0] == renewed.chain[0])

        let new = try await TestConnection.connect(port: listener.port, tls: clientTLS, expecting: server)
        _ = try await new.handshake.get()
        #expect(try await new.peerCertificateDER() == (try renewed.chain[0].derBytes))
        #expect(try await new.echo("new") == "new")
        #expect(try await old.echo("still open") == "still open")
    }

    @Test func aTrustAnchorRolloverLetsPeersOfTheNewRootInWithoutARestart() async throws {
        let newPKI = try TestPKI(name: "new-root")
        let serverTLS = try pki.meshTLS(server)
        let listener = try await TestServer(tls: serverTLS)
        defer { Task { await listener.close() } }
        // A client with a certificate of the new root (trusting both): refused while the server
        // trusts the old root alone.
        let issued = try newPKI.workload(client)
        let newClient = try MeshTLS(chain: issued.chain, key: issued.key.privateKey, trustAnchors: [pki.root, newPKI.root])
        let refused = try await TestConnection.connect(port: listener.port, tls: newClient, expecting: nil)
        _ = try? await refused.handshake.get()
        #expect(try await listener.outcomes.wait(for: 1) == [.failed])
        await refused.close()

        // Phase 1: the server renews with both roots; clients of either root get in.
        let renewed = try pki.workload(server)
        try serverTLS.update(chain: renewed.chain, key: renewed.key.privateKey, trustAnchors: [pki.root, newPKI.root])
        #expect(serverTLS.trust.anchors.count == 2)
        let accepted = try await TestConnection.connect(port: listener.port, tls: newClient, expecting: nil)
        _ = try await accepted.handshake.get()
        let oldClient = try await TestConnection.connect(port: listener.port, tls: try pki.meshTLS(client), expecting: server)
        _ = try await oldClient.handshake.get()

        // Phase 3: the server's certificate now comes from the new root, which alone is trusted;
        // a client of the old root is refused again.
        let moved = try newPKI.workload(server)
        try serverTLS.update(chain: moved.chain, key: moved.key.privateKey, trustAnchors: [newPKI.root])
        let late = try await TestConnection.connect(port: listener.port, tls: try pki.meshTLS(client), expecting: nil)
        _ = try? await late.handshake.get()
        #expect(try await listener.outcomes.wait(for: 4).last == .failed)
        await late.close()
        // The connection made in phase 1 stays open and serves.
        #expect(try await accepted.echo("still open") == "still open")
        await oldClient.close()
    }

    // MARK: - Helpers

    /// A client presenting a leaf from the mesh issuer that carries no mesh identity.
    private func plainLeafClient(port: Int) async throws -> TestConnection {
        let issuerCertificate = pki.issuer.certificate
        let issuerKey = pki.issuerKey.privateKey
        let leaf = try CertificateFactory.create(
            .init(subject: "not-a-workload.example", profile: .leaf, issuer: (issuerCertificate, issuerKey)))
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.minimumTLSVersion = .tlsv13
        configuration.certificateVerification = .noHostnameVerification
        configuration.trustRoots = .certificates([try NIOSSLCertificate(bytes: try pki.root.derBytes, format: .der)])
        configuration.certificateChain = [
            .certificate(try NIOSSLCertificate(bytes: try leaf.certificate.derBytes, format: .der)),
            .certificate(try NIOSSLCertificate(bytes: try issuerCertificate.derBytes, format: .der)),
        ]
        configuration.privateKey = .privateKey(
            try NIOSSLPrivateKey(bytes: Array(leaf.key.derRepresentation), format: .der))
        configuration.applicationProtocols = ["h2"]
        let context = try NIOSSLContext(configuration: configuration)
        return try await TestConnection.connect(port: port) {
            try NIOSSLClientHandler(context: context, serverHostname: nil)
        }
    }
}
