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
        #expect(error?.message.contains("the admin listener could not listen on 127.0.0.1:\(port)") == true, "\(String(describing: error))")
    }

    /// A listener whose port is taken says which listener and where, with the system's reason:
    /// the outbound's own port, and an opaque binding's.
    @Test func aTakenPortNamesTheListenerThatCouldNotBind() async throws {
        let holder = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .bind(host: "127.0.0.1", port: 0).get()
        defer { holder.close(promise: nil) }
        let port = try #require(holder.localAddress?.port)
        let pki = try OutboundTestPKI()
        let runtime = OutboundProxy.Runtime(
            picker: FixedPicker(endpoints: [:]), tls: try pki.tls(clientIdentity), logger: Logger(label: "test"))

        let outbound = OutboundProxy(configuration: .init(listenHost: "127.0.0.1", listenPort: port), runtime: runtime)
        let taken = await #expect(throws: ListenError.self) { try await outbound.run() }
        #expect(taken?.listener == "outbound")
        #expect(taken?.description.hasPrefix("the outbound listener could not listen on 127.0.0.1:\(port): ") == true)

        let binding = OutboundProxy.OpaqueBinding(service: "postgres.db:5432", listenHost: "127.0.0.1", listenPort: port)
        let withBinding = OutboundProxy(
            configuration: .init(listenHost: "127.0.0.1", listenPort: 0, opaqueBindings: [binding]), runtime: runtime)
        let bindingTaken = await #expect(throws: ListenError.self) { try await withBinding.run() }
        #expect(bindingTaken?.listener == "opaque binding postgres.db:5432")
        #expect(bindingTaken?.port == port)
    }
}
