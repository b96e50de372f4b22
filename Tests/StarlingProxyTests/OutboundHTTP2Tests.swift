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
        let picker = FixedPicker(
            endpoints: ["podinfo.test:9898": Endpoint(host: "127.0.0.1", port: peer.port, identity: serverIdentity)])
        let frames = try await withOutboundProxy(picker: picker, tls: try pki.tls(clientIdentity)) { port in
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
                try await outbound.write(.data(.init(data: .byteBuffer(ByteBuffer(string: "ping")), endStream: true)))
                var received: [HTTP2Frame.FramePayload] = []
                for try await frame in inbound {
                    received.append(frame)
                    if case .headers(let h) = frame, h.endStream { break }
                    if case .data(let d) = frame, d.endStream { break }
                }
                return received
            }
        }
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
}
