import NIOCore
import NIOPosix
import StarlingCore
import StarlingTLS
import Testing

@testable import StarlingProxy

/// The peer connection pool: one HTTP/2 connection per endpoint and event loop, shared, and
/// replaced once closed.
struct TransportPoolTests {
    let pki: OutboundTestPKI

    init() throws {
        pki = try OutboundTestPKI()
    }

    @Test func oneConnectionPerEndpointAndEventLoopSharedByConcurrentFirstRequests() async throws {
        let peer = try await TestPeer.start(tls: try pki.tls(serverIdentity))
        defer { Task { await peer.close() } }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        defer { Task { try? await group.shutdownGracefully() } }
        let loops = Array(group.makeIterator())
        try #require(loops.count == 2)
        let pool = PeerConnectionPool(dialer: PeerDialer(tls: try pki.tls(clientIdentity)), group: group)
        defer { pool.close() }
        let endpoint = Endpoint(host: "127.0.0.1", port: peer.port, identity: serverIdentity)

        // Two first requests on one loop at once: one dial, one connection.
        let first = pool.connection(to: endpoint, on: loops[0])
        let second = pool.connection(to: endpoint, on: loops[0])
        let (a, b) = (try await first.get(), try await second.get())
        #expect(a.channel === b.channel)
        #expect(a.channel.eventLoop === loops[0])
        // Ready now: the fast path finds it without a future.
        #expect(pool.readyConnection(to: endpoint, on: loops[0])?.channel === a.channel)

        // Another loop gets its own connection, living on that loop.
        #expect(pool.readyConnection(to: endpoint, on: loops[1]) == nil)
        let c = try await pool.connection(to: endpoint, on: loops[1]).get()
        #expect(c.channel !== a.channel)
        #expect(c.channel.eventLoop === loops[1])
        #expect(pool.count == 2)

        // A connection the peer is going away on (GOAWAY) is replaced by a new dial.
        a.activity.markGoingAway()
        #expect(pool.readyConnection(to: endpoint, on: loops[0]) == nil)
        let d = try await pool.connection(to: endpoint, on: loops[0]).get()
        #expect(d.channel !== a.channel)
        #expect(d.channel.isActive)
    }

    @Test func aFailedDialIsNotCachedAndAClosedPoolRefuses() async throws {
        let pool = PeerConnectionPool(dialer: PeerDialer(tls: try pki.tls(clientIdentity), connectTimeout: .seconds(2)))
        let nobody = Endpoint(host: "127.0.0.1", port: try await inboundUnusedPort(), identity: serverIdentity)
        let loop = MultiThreadedEventLoopGroup.singleton.next()
        await #expect(throws: ProxyError.self) { try await pool.connection(to: nobody, on: loop).get() }
        #expect(pool.count == 0)
        // A second attempt dials again (the failure was not kept as the endpoint's connection).
        await #expect(throws: ProxyError.self) { try await pool.connection(to: nobody, on: loop).get() }
        pool.close()
        let peer = try await TestPeer.start(tls: try pki.tls(serverIdentity))
        defer { Task { await peer.close() } }
        let live = Endpoint(host: "127.0.0.1", port: peer.port, identity: serverIdentity)
        do {
            _ = try await pool.connection(to: live, on: loop).get()
            Issue.record("a closed pool dialed")
        } catch let error as ProxyError {
            #expect(error.code == .connectFailed)
            #expect(error.message.contains("shutting down"))
        }
    }
}
