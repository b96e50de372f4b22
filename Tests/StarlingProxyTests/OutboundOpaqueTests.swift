import NIOCore
import NIOPosix
import StarlingCore
import StarlingProxy
import StarlingTLS
import Testing

/// Declared opaque-TCP bindings and transparent-capture facts.
struct OutboundOpaqueTests {
    @Test func opaqueBindingSendsTheTransportHeaderThenSplicesBytes() async throws {
        let pki = try OutboundTestPKI()
        let peer = try await TestPeer.start(tls: try pki.tls(serverIdentity))
        defer { Task { await peer.close() } }
        // Pick a free local port for the binding by binding and releasing one.
        let probe = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .bind(host: "127.0.0.1", port: 0).get()
        let bindingPort = probe.localAddress?.port ?? 0
        try await probe.close()
        let picker = FixedPicker(
            endpoints: ["db.test:5432": Endpoint(host: "127.0.0.1", port: peer.port, identity: serverIdentity, opaque: true)],
            backend: "db.test.svc.cluster.local:5432")
        var configuration = OutboundProxy.Configuration(
            listenHost: "127.0.0.1", listenPort: 0, drainGracePeriod: .milliseconds(200))
        configuration.opaqueBindings = [
            OutboundProxy.OpaqueBinding(service: "db.test:5432", listenHost: "127.0.0.1", listenPort: bindingPort)
        ]
        let started = ContinuousClock.now
        let echoed = try await withOutboundProxy(
            configuration: configuration, picker: picker, tls: try pki.tls(clientIdentity)
        ) { _ in
            // Half-close once the echo is back: the half-close travels to the peer, which closes its
            // side, and the connection ends (rawExchange returns on close, not on its timeout).
            try await rawExchange(
                port: bindingPort, send: "\u{0}\u{0}\u{0}\u{8}startup!", halfClose: true, awaitBeforeHalfClose: 12)
        }
        #expect(echoed == "\u{0}\u{0}\u{0}\u{8}startup!")
        #expect(ContinuousClock.now - started < .seconds(4))
        #expect(peer.seen.opaqueAuthorities == ["db.test.svc.cluster.local:5432"])
    }

    @Test func opaqueBindingFlagParses() throws {
        let binding = try #require(OutboundProxy.OpaqueBinding(flag: "db.test:5432=127.0.0.1:15432"))
        #expect(binding.service == "db.test:5432")
        #expect(binding.listenHost == "127.0.0.1")
        #expect(binding.listenPort == 15432)
        #expect(OutboundProxy.OpaqueBinding(flag: "db.test=127.0.0.1:1") == nil)
        #expect(OutboundProxy.OpaqueBinding(flag: "db.test:5432") == nil)
    }

    @Test func aDirectConnectionHasNoOriginalDestination() async throws {
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .bind(host: "127.0.0.1", port: 0) { channel in
                channel.eventLoop.makeCompletedFuture { channel }
            }
        let port = try #require(server.channel.localAddress?.port)
        let client = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: "127.0.0.1", port: port).get()
        let original = try await server.executeThenClose { inbound in
            var accepted = inbound.makeAsyncIterator()
            let channel = try #require(try await accepted.next())
            defer { channel.close(promise: nil) }
            return try await OriginalDestination.of(channel).get()
        }
        try? await client.close()
        #expect(original == nil)
    }
}
