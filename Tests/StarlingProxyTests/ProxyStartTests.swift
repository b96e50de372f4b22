import Foundation
import Logging
import NIOCore
import NIOPosix
import StarlingCore
import Testing

@testable import StarlingProxy

@Suite struct ProxyStartTests {
    /// A sidecar whose admin port is taken fails at once, naming the port, instead of waiting
    /// for a certificate and then blaming the controller.
    @Test func anAdminPortInUseFailsTheStartAtOnce() async throws {
        let holder = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .bind(host: "127.0.0.1", port: 0).get()
        defer { holder.close(promise: nil) }
        let port = try #require(holder.localAddress?.port)
        let proxy = Proxy(
            configuration: ProxyConfiguration(
                controllerHost: "127.0.0.1", controllerPort: 9, controllerCertificatePEM: "", token: "t",
                identity: MeshIdentity(namespace: "ns", serviceAccount: "sa", trustDomain: "cluster.local"),
                listenHost: "127.0.0.1", inboundPort: 0, outboundPort: 0, adminPort: port),
            logger: Logger(label: "test"))
        let run = Task { try await proxy.run() }
        defer { run.cancel() }
        let started = ContinuousClock.now
        let error = await #expect(throws: ProxyStartError.self) {
            try await proxy.waitUntilReady(timeout: .seconds(20))
        }
        #expect(ContinuousClock.now - started < .seconds(5))
        #expect(error?.message.contains("admin listener cannot use 127.0.0.1:\(port)") == true, "\(String(describing: error))")
    }
}
