import Foundation
import StarlingCore
import StarlingIdentity
import StarlingProxy
import StarlingTLS
import Testing
import X509

/// The identity client against a fake Identity service on a real gRPC server.
@Suite(.timeLimit(.minutes(1)))
struct IdentityClientTests {
    let ca: FakeMeshCA
    let credentials: FakeControllerCredentials
    let web = MeshIdentity(namespace: "test", serviceAccount: "web")

    init() throws {
        ca = try FakeMeshCA()
        credentials = try FakeControllerCredentials()
    }

    private func client(
        port: Int, token: String = "web-token", renewal: RenewalSchedule.Configuration = .init()
    ) -> IdentityClient {
        IdentityClient(
            configuration: .init(
                controller: credentials.api(port: port, token: token), identity: web, renewal: renewal,
                requestTimeout: .seconds(2)),
            logger: controlPlaneTestLogger)
    }

    @Test func certifiesTheRequestedIdentityWithAKeyMadeInMemory() async throws {
        let service = FakeIdentityService(ca: ca, tokens: ["web-token": web])
        let controller = try await FakeController.start([service], credentials: credentials)
        let identity = client(port: controller.port)
        let running = Task { try await identity.run() }
        defer { running.cancel() }

        let tls = try await identity.waitUntilReady(timeout: .seconds(5))
        #expect(tls.identity == web)
        #expect(tls.trust.anchors == [ca.root])
        #expect(tls.certificateChain.count == 2)
        #expect(tls.certificateChain[1] == ca.issuer.certificate)
        #expect(identity.tls === tls)
        #expect(service.certifyCalls == 1)
        await controller.stop()
    }

    @Test func renewsBeforeExpiryAndKeepsTheSameMeshTLS() async throws {
        // Certificates live 60 s plus the issuer's 60 s backdating; renewing at 52 % of that comes
        // about 2.4 s after issue.
        let service = FakeIdentityService(ca: ca, tokens: ["web-token": web], lifetime: 60)
        let controller = try await FakeController.start([service], credentials: credentials)
        let identity = client(port: controller.port, renewal: .init(lifetimeFraction: 0.52))
        let running = Task { try await identity.run() }
        defer { running.cancel() }

        let tls = try await identity.waitUntilReady(timeout: .seconds(5))
        let first = tls.certificateChain[0]
        try await eventually(within: .seconds(6), "a renewed certificate") { tls.certificateChain[0] != first }
        #expect(identity.tls === tls)
        #expect(service.certifyCalls >= 2)
        #expect(tls.certificateChain[0].publicKey == first.publicKey, "the key stays in memory, one per proxy")
        await controller.stop()
    }

    @Test func keepsServingTheCurrentCertificateWhileTheControllerIsDown() async throws {
        let service = FakeIdentityService(ca: ca, tokens: ["web-token": web], lifetime: 60)
        let controller = try await FakeController.start([service], credentials: credentials)
        let identity = client(
            port: controller.port,
            renewal: .init(lifetimeFraction: 0.52, initialBackoff: .milliseconds(100), maximumBackoff: .milliseconds(200)))
        let running = Task { try await identity.run() }
        defer { running.cancel() }

        let tls = try await identity.waitUntilReady(timeout: .seconds(5))
        let first = tls.certificateChain[0]
        await controller.stop()
        // Renewal comes due while the controller is down: attempts fail, the certificate stays.
        try await Task.sleep(for: .seconds(3.5))
        #expect(identity.tls === tls)
        #expect(tls.certificateChain[0] == first)
        #expect(try tls.serverContext() === (try tls.serverContext()))

        // Back on the same port: the next retry renews.
        let restarted = try await FakeController.start([service], credentials: credentials, port: controller.port)
        try await eventually(within: .seconds(5), "renewal after the controller returns") {
            tls.certificateChain[0] != first
        }
        await restarted.stop()
    }

    @Test func waitingForACertificateNamesTheRefusal() async throws {
        let service = FakeIdentityService(ca: ca, tokens: ["web-token": web])
        let controller = try await FakeController.start([service], credentials: credentials)
        let identity = client(port: controller.port, token: "forged")
        let running = Task { try await identity.run() }
        defer { running.cancel() }

        let error = await #expect(throws: ProxyError.self) { try await identity.waitUntilReady(timeout: .seconds(4)) }
        #expect(error?.code == .identityUnavailable)
        #expect(error?.message.contains("unknown join token") == true)
        #expect(identity.tls == nil)
        await controller.stop()
    }

    @Test func anUnreachableControllerTimesOutTheWait() async throws {
        // A port that was just free: nothing listens there.
        let controller = try await FakeController.start([], credentials: credentials)
        await controller.stop()
        let identity = client(port: controller.port)
        let running = Task { try await identity.run() }
        defer { running.cancel() }
        let error = await #expect(throws: ProxyError.self) {
            try await identity.waitUntilReady(timeout: .milliseconds(500))
        }
        #expect(error?.message.contains("127.0.0.1:\(controller.port)") == true)
    }

    @Test func runReturnsWhenCancelled() async throws {
        let service = FakeIdentityService(ca: ca, tokens: ["web-token": web])
        let controller = try await FakeController.start([service], credentials: credentials)
        let identity = client(port: controller.port)
        let running = Task { try await identity.run() }
        _ = try await identity.waitUntilReady(timeout: .seconds(5))
        running.cancel()
        try await running.value
        await controller.stop()
    }
}
