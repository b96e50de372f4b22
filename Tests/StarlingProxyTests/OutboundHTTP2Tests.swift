import NIOCore
import NIOHPACK
import NIOHTTP2
import NIOPosix
import StarlingCore
import StarlingProxy
import StarlingTLS
import Testing

/// HTTP/2 prior knowledge (h2c) from the application, e.g. a gRPC client.
struct OutboundHTTP2Tests {
    @Test func h2cRequestIsRoutedByAuthorityAndTrailersComeBack() async throws {
        let pki = try OutboundTestPKI()
        let peer = try await TestPeer.start(tls: try pki.tls(serverIdentity))
        defer { Task { await peer.close() } }
        let frames = try await h2cExchange(body: ByteBuffer(string: "ping"), peer: peer, pki: pki)
        guard case .headers(let head)? = frames.first else {
            Issue.record("no response head: \(frames)")
            return
        }
        #expect(head.headers.first(name: ":status") == "200")
        guard case .headers(let trailers)? = frames.last else {
            Issue.record("no trailers: \(frames)")
            return
        }
        #expect(trailers.headers.first(name: "grpc-status") == "0")
        let body = frames.compactMap { frame -> String? in
            guard case .data(let d) = frame, case .byteBuffer(let b) = d.data else { return nil }
            return String(buffer: b)
        }.joined()
        #expect(body == "echo:ping")
        let seen = try #require(peer.seen.received.first)
        #expect(seen.headers.first(name: "starling-target") == "podinfo.test.svc.cluster.local:9898")
        #expect(seen.headers.first(name: "starling-orig-proto") == nil)
        #expect(seen.headers.first(name: "te") == "trailers")
    }

    /// A body far larger than HTTP/2's 64 KiB windows, both ways, through the event-loop relay
    /// (`HTTP2StreamRelay`): the upload waits for the peer stream's writability, the
    /// echoed download's credit follows the client's reading.
    @Test func largeH2CBodiesStreamBothWaysThroughFlowControl() async throws {
        let pki = try OutboundTestPKI()
        let peer = try await TestPeer.start(tls: try pki.tls(serverIdentity))
        defer { Task { await peer.close() } }
        let size = 2 * 1024 * 1024
        let payload = String(repeating: "0123456789abcdef", count: size / 16)
        let frames = try await h2cExchange(body: ByteBuffer(string: payload), peer: peer, pki: pki)
        #expect(peer.seen.received.first?.body.count == size)
        let body = frames.compactMap { frame -> Int? in
            guard case .data(let d) = frame else { return nil }
            return d.data.readableBytes
        }.reduce(0, +)
        #expect(body == size + "echo:".count)
        guard case .headers(let trailers)? = frames.last else {
            Issue.record("no trailers after \(frames.count) frames")
            return
        }
        #expect(trailers.headers.first(name: "grpc-status") == "0")
    }

    /// One gRPC-shaped call over h2c prior knowledge through an outbound proxy in front of `peer`.
    /// The gRPC path: a refused connect is tried again on the next endpoint.
    @Test func aRefusedConnectIsTriedAgainOnAnotherEndpoint() async throws {
        let pki = try OutboundTestPKI()
        let peer = try await TestPeer.start(tls: try pki.tls(serverIdentity))
        defer { Task { await peer.close() } }
        let picker = FixedPicker(
            endpoints: ["podinfo.test:9898": Endpoint(host: "127.0.0.1", port: try closedPort(), identity: serverIdentity)],
            fallbacks: ["podinfo.test:9898": [Endpoint(host: "127.0.0.1", port: peer.port, identity: serverIdentity)]])
        let frames = try await h2cExchange(body: ByteBuffer(string: "ping"), peer: peer, pki: pki, picker: picker)
        guard case .headers(let head)? = frames.first else {
            Issue.record("no response head: \(frames)")
            return
        }
        #expect(head.headers.first(name: ":status") == "200")
        #expect(picker.outcomes.failures == 1)
        #expect(peer.seen.received.count == 1)
    }

    /// An h2c client that closes its side (as curl does after its answer) gets the connection
    /// closed at once, not kept half-open until the idle timeout.
    @Test func anH2CClientsFinClosesTheConnectionAtOnce() async throws {
        let pki = try OutboundTestPKI()
        let peer = try await TestPeer.start(tls: try pki.tls(serverIdentity))
        defer { Task { await peer.close() } }
        let configuration = OutboundProxy.Configuration(
            listenHost: "127.0.0.1", listenPort: 0, idleTimeout: .seconds(30), drainGracePeriod: .milliseconds(200))
        let picker = FixedPicker(endpoints: ["podinfo.test:9898": Endpoint(host: "127.0.0.1", port: peer.port, identity: serverIdentity)])
        let (answer, elapsed) = try await withOutboundProxy(configuration: configuration, picker: picker, tls: try pki.tls(clientIdentity)) { port in
            let started = ContinuousClock.now
            // The connection preface and an empty SETTINGS frame, then FIN.
            let preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + String(decoding: [0, 0, 0, 4, 0, 0, 0, 0, 0], as: UTF8.self)
            let answer = try await rawExchange(
                port: port, send: preface, halfClose: true, awaitBeforeHalfClose: 9, timeout: .seconds(8))
            return (answer, ContinuousClock.now - started)
        }
        #expect(answer.utf8.count >= 9, "no SETTINGS from the proxy")
        #expect(elapsed < Duration.seconds(2), "closed after \(elapsed), not at the client's FIN")
    }

    private func h2cExchange(
        body: ByteBuffer, peer: TestPeer, pki: OutboundTestPKI, picker: FixedPicker? = nil
    ) async throws -> [HTTP2Frame.FramePayload] {
        let picker = picker ?? FixedPicker(
            endpoints: ["podinfo.test:9898": Endpoint(host: "127.0.0.1", port: peer.port, identity: serverIdentity)])
        return try await withOutboundProxy(picker: picker, tls: try pki.tls(clientIdentity)) { port in
            let (connection, multiplexer) = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connect(host: "127.0.0.1", port: port) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        let multiplexer = try channel.pipeline.syncOperations.configureAsyncHTTP2Pipeline(mode: .client) {
                            stream in stream.eventLoop.makeSucceededVoidFuture()
                        }
                        return (channel as any Channel, multiplexer)
                    }
                }
            defer { connection.close(promise: nil) }
            let stream = try await multiplexer.openStream { stream in
                stream.eventLoop.makeCompletedFuture {
                    try NIOAsyncChannel<HTTP2Frame.FramePayload, HTTP2Frame.FramePayload>(wrappingChannelSynchronously: stream)
                }
            }
            return try await stream.executeThenClose { inbound, outbound in
                let headers: HPACKHeaders = [
                    ":method": "POST", ":scheme": "http", ":authority": "podinfo.test:9898",
                    ":path": "/grpc.Echo/Say", "content-type": "application/grpc", "te": "trailers",
                ]
                try await outbound.write(.headers(.init(headers: headers)))
                try await outbound.write(.data(.init(data: .byteBuffer(body), endStream: true)))
                var received: [HTTP2Frame.FramePayload] = []
                for try await frame in inbound {
                    received.append(frame)
                    if case .headers(let h) = frame, h.endStream { break }
                    if case .data(let d) = frame, d.endStream { break }
                }
                return received
            }
        }
    }
}
