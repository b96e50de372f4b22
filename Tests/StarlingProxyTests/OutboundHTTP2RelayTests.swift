import NIOCore
import NIOHPACK
import NIOHTTP2
import NIOPosix
import StarlingCore
import StarlingProxy
import StarlingTLS
import Synchronization
import Testing

/// The outbound's h2c (prior knowledge, gRPC) front end on the event loop
/// (`HTTP2StreamRelay`): a real NIOHTTP2 client through a running `OutboundProxy`,
/// what a gRPC user relies on — routing failures answered with `starling-error`, timeouts,
/// concurrent streams, trailers both ways, trailers-only answers, resets either way, and plain
/// endpoints (outside the mesh) reached over HTTP/1.1.
struct OutboundHTTP2RelayTests {
    let pki: OutboundTestPKI
    let clientTLS: MeshTLS

    init() throws {
        pki = try OutboundTestPKI()
        clientTLS = try pki.tls(clientIdentity)
    }

    private func picker(
        port: Int, identity: MeshIdentity? = serverIdentity, timeout: Duration = .seconds(5), answersNow: Bool = false
    ) -> FixedPicker {
        FixedPicker(
            endpoints: ["podinfo.test:9898": Endpoint(host: "127.0.0.1", port: port, identity: identity)],
            timeout: timeout, answersNow: answersNow)
    }

    // MARK: - Plain endpoints

    /// An endpoint outside the mesh (no identity) gets the request as HTTP/1.1: its head, and the
    /// body received while routing, then the rest. The large body is more than the 64 KiB window
    /// the client may send while its stream is being routed.
    @Test(arguments: [false, true], [5, 200_000])
    func aPlainEndpointIsStillServedToAnH2CClient(answersNow: Bool, size: Int) async throws {
        let app = try await startInboundHTTP1App()
        defer { Task { await app.close() } }
        let fixed = FixedPicker(
            endpoints: ["plain.test:80": Endpoint(host: "127.0.0.1", port: app.port)], answersNow: answersNow)
        let payload = String(String(repeating: "0123456789abcdef", count: size / 16 + 1).prefix(size))
        let response = try await withOutboundProxy(picker: fixed, tls: clientTLS) { port in
            let connection = try await H2CTestConnection.open(port: port)
            defer { connection.close() }
            return try await connection.exchange(
                [":method": "POST", ":scheme": "http", ":authority": "plain.test", ":path": "/submit?x=1"],
                body: chunks(of: payload, size: 16_000))
        }
        #expect(response.ended, "\(response)")
        #expect(response.failure == nil, "\(response)")
        #expect(response.status == "200", "\(response)")
        #expect(response.head?.first(name: "echo-path") == "/submit?x=1")
        #expect(response.head?.first(name: "echo-method") == "POST")
        // Plain endpoints get no mesh headers.
        #expect(response.head?.first(name: "echo-target") == "none")
        #expect(response.body.count == size)
        #expect(response.body == payload)
        #expect(fixed.outcomes.failures == 0)
    }

    // MARK: - Answers of the proxy's own

    @Test(arguments: [false, true])
    func unknownServiceGets503WithTheErrorHeader(answersNow: Bool) async throws {
        let peer = try await TestPeer.start(tls: try pki.tls(serverIdentity))
        defer { Task { await peer.close() } }
        let response = try await withOutboundProxy(
            picker: picker(port: peer.port, answersNow: answersNow), tls: clientTLS
        ) { port in
            let connection = try await H2CTestConnection.open(port: port)
            defer { connection.close() }
            return try await connection.exchange(grpcHeaders(authority: "nothing.here:80"), body: [ByteBuffer(string: "ping")])
        }
        #expect(response.status == "503", "\(response)")
        #expect(response.head?.first(name: ProxyError.headerName) == ProxyError.Code.unknownService.name)
        #expect(response.ended, "\(response)")
        #expect(!response.body.isEmpty)
        #expect(peer.seen.received.isEmpty)
    }

    @Test func aRequestWithoutAnAuthorityGets400() async throws {
        let peer = try await TestPeer.start(tls: try pki.tls(serverIdentity))
        defer { Task { await peer.close() } }
        let response = try await withOutboundProxy(picker: picker(port: peer.port), tls: clientTLS) { port in
            let connection = try await H2CTestConnection.open(port: port)
            defer { connection.close() }
            return try await connection.exchange([":method": "GET", ":scheme": "http", ":path": "/"])
        }
        #expect(response.status == "400", "\(response)")
        #expect(response.head?.first(name: ProxyError.headerName) == ProxyError.Code.badRequest.name)
        #expect(peer.seen.received.isEmpty)
    }

    @Test func aPeerThatNeverAnswersGets504TimeoutWithinThePicksTimeout() async throws {
        // The timeout leaves room for a handshake on a loaded machine; the peer answers far later.
        let peer = try await TestPeer.start(tls: try pki.tls(serverIdentity), delay: .seconds(8))
        defer { Task { await peer.close() } }
        let fixed = picker(port: peer.port, timeout: .milliseconds(1500))
        let (response, elapsed) = try await withOutboundProxy(picker: fixed, tls: clientTLS) { port in
            let connection = try await H2CTestConnection.open(port: port)
            defer { connection.close() }
            let started = ContinuousClock.now
            let response = try await connection.exchange(grpcHeaders(), body: [ByteBuffer(string: "slow")])
            return (response, ContinuousClock.now - started)
        }
        #expect(response.status == "504", "\(response)")
        #expect(response.head?.first(name: ProxyError.headerName) == ProxyError.Code.timeout.name)
        #expect(response.ended, "\(response)")
        #expect(elapsed >= .milliseconds(1400), "answered after \(elapsed), before the pick's timeout")
        #expect(elapsed < .seconds(5), "answered after \(elapsed), not at the pick's timeout (1.5 s)")
        #expect(fixed.outcomes.failures == 1)
    }

    /// A stream NIOHTTP2 refuses (a connection-specific header field, which it reports unwrapped
    /// after resetting that stream) is that stream's end, not the connection's: a call in flight
    /// on the same connection still gets its answer.
    @Test func aForbiddenHeaderOnOneStreamLeavesTheOtherCallsOfItsConnection() async throws {
        let peer = try await TestPeer.start(tls: try pki.tls(serverIdentity), delay: .milliseconds(800))
        defer { Task { await peer.close() } }
        let fixed = picker(port: peer.port, answersNow: true)
        let (inFlight, bad, after) = try await withOutboundProxy(picker: fixed, tls: clientTLS) { port in
            let connection = try await H2CTestConnection.open(port: port, validatesHeaders: false)
            defer { connection.close() }
            async let inFlight = connection.exchange(grpcHeaders(), body: [ByteBuffer(string: "in flight")])
            try await Task.sleep(for: .milliseconds(200))
            var forbidden = grpcHeaders()
            forbidden.add(name: "connection", value: "keep-alive")
            let bad = try await connection.exchange(forbidden, body: [ByteBuffer(string: "bad")])
            let after = try await connection.exchange(grpcHeaders(), body: [ByteBuffer(string: "after")])
            return (try await inFlight, bad, after)
        }
        #expect(bad.status != "200", "\(bad)")
        #expect(inFlight.status == "200", "\(inFlight)")
        #expect(inFlight.body == "echo:in flight", "\(inFlight)")
        #expect(after.status == "200", "\(after)")
    }

    /// Response timeouts are deadlines of the client connection, checked by one timer at the
    /// earliest: a call with a short timeout made after one with a long timeout, on the same
    /// connection, still gets its 504 at its own timeout.
    @Test func aShortTimeoutAfterALongOneOnTheSameConnectionFiresAtItsOwnTime() async throws {
        let peer = try await TestPeer.start(tls: try pki.tls(serverIdentity), delay: .seconds(8))
        defer { Task { await peer.close() } }
        var fixed = picker(port: peer.port, timeout: .seconds(6))
        fixed.endpoints["short.test:9898"] = fixed.endpoints["podinfo.test:9898"]
        fixed.timeouts["short.test:9898"] = .milliseconds(1500)
        let (long, short, shortElapsed) = try await withOutboundProxy(picker: fixed, tls: clientTLS) { port in
            let connection = try await H2CTestConnection.open(port: port)
            defer { connection.close() }
            async let long = connection.exchange(grpcHeaders(), body: [ByteBuffer(string: "long")])
            try await Task.sleep(for: .milliseconds(300))
            let started = ContinuousClock.now
            let short = try await connection.exchange(grpcHeaders(authority: "short.test:9898"), body: [ByteBuffer(string: "short")])
            let shortElapsed = ContinuousClock.now - started
            return (try await long, short, shortElapsed)
        }
        #expect(short.status == "504", "\(short)")
        #expect(shortElapsed >= .milliseconds(1400), "answered after \(shortElapsed), before its timeout")
        #expect(shortElapsed < .seconds(4), "answered after \(shortElapsed), not at its own timeout (1.5 s)")
        #expect(long.status == "504", "\(long)")
        #expect(fixed.outcomes.failures == 2)
    }

    @Test func aPeerWithAnotherIdentityGets502PeerIdentityRejected() async throws {
        let impostor = try await TestPeer.start(tls: try pki.tls(MeshIdentity(namespace: "evil", serviceAccount: "impostor")))
        defer { Task { await impostor.close() } }
        let response = try await withOutboundProxy(picker: picker(port: impostor.port), tls: clientTLS) { port in
            let connection = try await H2CTestConnection.open(port: port)
            defer { connection.close() }
            return try await connection.exchange(grpcHeaders(), body: [ByteBuffer(string: "secret")])
        }
        #expect(response.status == "502", "\(response)")
        #expect(response.head?.first(name: ProxyError.headerName) == ProxyError.Code.peerIdentityRejected.name)
        #expect(response.ended, "\(response)")
        #expect(impostor.seen.received.isEmpty)
    }

    @Test func whenEveryEndpointRefusesTheConnectFailureIsAnswered() async throws {
        let fixed = FixedPicker(
            endpoints: ["podinfo.test:9898": Endpoint(host: "127.0.0.1", port: try closedPort(), identity: serverIdentity)],
            fallbacks: ["podinfo.test:9898": [Endpoint(host: "127.0.0.1", port: try closedPort(), identity: serverIdentity)]])
        let response = try await withOutboundProxy(picker: fixed, tls: clientTLS) { port in
            let connection = try await H2CTestConnection.open(port: port)
            defer { connection.close() }
            return try await connection.exchange(grpcHeaders(), body: [ByteBuffer(string: "ping")])
        }
        let connectFailed = ProxyError(.connectFailed, "")
        #expect(response.status == String(connectFailed.httpStatus), "\(response)")
        #expect(response.status == "502")
        #expect(response.head?.first(name: ProxyError.headerName) == ProxyError.Code.connectFailed.name)
        #expect(response.ended, "\(response)")
        // Both endpoints, then (none left) a 100 ms backoff and both again: three attempts and
        // one more for the backoff taken.
        #expect(fixed.outcomes.failures == ConnectAttempts.maximum + 1)
    }

    // MARK: - Streams

    /// Many calls multiplexed on one client connection, each routed and relayed on its own peer
    /// stream: no answer goes to another call, each keeps its trailers.
    @Test(arguments: [false, true])
    func concurrentStreamsOnOneConnectionEachGetTheirOwnAnswerAndTrailers(answersNow: Bool) async throws {
        let peer = try await TestPeer.start(tls: try pki.tls(serverIdentity))
        defer { Task { await peer.close() } }
        let fixed = picker(port: peer.port, answersNow: answersNow)
        let count = 20
        let responses = try await withOutboundProxy(picker: fixed, tls: clientTLS) { port in
            let connection = try await H2CTestConnection.open(port: port)
            defer { connection.close() }
            return try await withThrowingTaskGroup(of: (Int, H2CResponse).self) { group in
                for index in 0..<count {
                    group.addTask {
                        let body = callBody(index)
                        let response = try await connection.exchange(
                            grpcHeaders(path: "/grpc.Echo/Say\(index)"), body: chunks(of: body, size: 700))
                        return (index, response)
                    }
                }
                var responses: [Int: H2CResponse] = [:]
                for try await (index, response) in group { responses[index] = response }
                return responses
            }
        }
        #expect(responses.count == count)
        for index in 0..<count {
            let response = try #require(responses[index])
            #expect(response.status == "200", "call \(index): \(response)")
            #expect(response.body == "echo:" + callBody(index), "call \(index): \(response)")
            #expect(response.trailers?.first(name: "grpc-status") == "0", "call \(index): \(response)")
            #expect(response.ended && response.failure == nil, "call \(index): \(response)")
        }
        let seen = peer.seen.received
        #expect(seen.count == count)
        #expect(Set(seen.map(\.body)) == Set((0..<count).map(callBody)))
        // Each call reports one outcome, a success: the client's stream closing as the response's
        // last frame goes out is not the client going away (it was counted as abandoned too).
        let deadline = ContinuousClock.now + .seconds(2)
        while fixed.outcomes.count < count, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(10))
        }
        #expect(fixed.outcomes.count == count)
        #expect(fixed.outcomes.successes == count)
        // Each peer stream got its own call's path with its own body.
        for request in seen {
            let path = request.headers.first(name: ":path") ?? ""
            let index = Int(path.dropFirst("/grpc.Echo/Say".count)) ?? -1
            #expect(request.body == callBody(index), "\(path)")
        }
    }

    /// A client's trailers (HEADERS with END_STREAM after the body) reach the peer as trailers.
    @Test func requestTrailersReachThePeer() async throws {
        let peer = try await TestPeer.start(tls: try pki.tls(serverIdentity))
        defer { Task { await peer.close() } }
        let response = try await withOutboundProxy(picker: picker(port: peer.port), tls: clientTLS) { port in
            let connection = try await H2CTestConnection.open(port: port)
            defer { connection.close() }
            return try await connection.exchange(
                grpcHeaders(), body: [ByteBuffer(string: "with"), ByteBuffer(string: "-trailers")],
                trailers: ["x-checksum": "abc123"])
        }
        #expect(response.status == "200", "\(response)")
        #expect(response.body == "echo:with-trailers")
        #expect(response.trailers?.first(name: "grpc-status") == "0")
        let seen = try #require(peer.seen.received.first)
        #expect(seen.body == "with-trailers")
        #expect(seen.trailers?.first(name: "x-checksum") == "abc123")
    }

    /// gRPC's trailers-only answer (an error status without a body) is one HEADERS frame with
    /// END_STREAM: it must reach the client the same, or the client sees no grpc-status.
    @Test func aTrailersOnlyResponseReachesTheClientAsOneHeadersFrame() async throws {
        let peer = try await ScriptedPeer.start(tls: try pki.tls(serverIdentity))
        defer { Task { await peer.close() } }
        let fixed = picker(port: peer.port)
        let response = try await withOutboundProxy(picker: fixed, tls: clientTLS) { port in
            let connection = try await H2CTestConnection.open(port: port)
            defer { connection.close() }
            var headers = grpcHeaders()
            headers.add(name: ScriptedPeer.answerHeader, value: "trailers-only")
            return try await connection.exchange(headers, body: [ByteBuffer(string: "missing")])
        }
        #expect(response.frames.count == 1, "\(response)")
        guard case .headers(let only)? = response.frames.first else {
            Issue.record("no HEADERS: \(response)")
            return
        }
        #expect(only.endStream)
        #expect(only.headers.first(name: ":status") == "200")
        #expect(only.headers.first(name: "grpc-status") == "5")
        #expect(only.headers.first(name: "grpc-message") == "not found")
        #expect(only.headers.first(name: "content-type") == "application/grpc")
        #expect(response.failure == nil, "\(response)")
        #expect(peer.seen.received.first?.body == "missing")
        #expect(fixed.outcomes.successes == 1)
    }

    /// A client-streaming call whose upload takes longer than the pick's timeout: the timeout
    /// for the response head counts from the end of the request, so the answer still comes.
    @Test func aClientStreamingUploadMayTakeLongerThanTheResponseTimeout() async throws {
        let peer = try await TestPeer.start(tls: try pki.tls(serverIdentity))
        defer { Task { await peer.close() } }
        let fixed = picker(port: peer.port, timeout: .milliseconds(600))
        let (head, body, trailers) = try await withOutboundProxy(picker: fixed, tls: clientTLS) { port in
            let connection = try await H2CTestConnection.open(port: port, limit: .seconds(5))
            defer { connection.close() }
            let stream = try await connection.multiplexer.openStream { stream in
                stream.eventLoop.makeCompletedFuture {
                    try NIOAsyncChannel<HTTP2Frame.FramePayload, HTTP2Frame.FramePayload>(wrappingChannelSynchronously: stream)
                }
            }
            return try await stream.executeThenClose { inbound, outbound in
                try await outbound.write(.headers(.init(headers: grpcHeaders(path: "/grpc.Echo/Upload"))))
                // Four messages 400 ms apart: 1.6 s of upload against a 600 ms timeout.
                for index in 1...4 {
                    try await outbound.write(.data(.init(data: .byteBuffer(ByteBuffer(string: "m\(index)")))))
                    try await Task.sleep(for: .milliseconds(400))
                }
                try await outbound.write(.data(.init(data: .byteBuffer(ByteBuffer()), endStream: true)))
                var head: HPACKHeaders?
                var body = ""
                var trailers: HPACKHeaders?
                for try await frame in inbound {
                    switch frame {
                    case .headers(let block) where head == nil: head = block.headers
                    case .headers(let block): trailers = block.headers
                    case .data(let data): if case .byteBuffer(let buffer) = data.data { body += String(buffer: buffer) }
                    default: break
                    }
                }
                return (head, body, trailers)
            }
        }
        #expect(head?.first(name: ":status") == "200", "\(String(describing: head))")
        #expect(body == "echo:m1m2m3m4")
        #expect(trailers?.first(name: "grpc-status") == "0")
        #expect(fixed.outcomes.successes == 1)
        #expect(fixed.outcomes.failures == 0)
    }

    /// A bidirectional gRPC stream: each message is relayed as it comes, in both directions, while
    /// the request is still open (a proxy that waited for the request's end would hang the call).
    @Test(arguments: [false, true])
    func aBidirectionalStreamRelaysEachMessageBeforeTheRequestEnds(answersNow: Bool) async throws {
        let peer = try await ScriptedPeer.start(tls: try pki.tls(serverIdentity))
        defer { Task { await peer.close() } }
        let fixed = picker(port: peer.port, answersNow: answersNow)
        let (head, pongs, trailers) = try await withOutboundProxy(picker: fixed, tls: clientTLS) { port in
            let connection = try await H2CTestConnection.open(port: port, limit: .seconds(5))
            defer { connection.close() }
            let stream = try await connection.multiplexer.openStream { stream in
                stream.eventLoop.makeCompletedFuture {
                    try NIOAsyncChannel<HTTP2Frame.FramePayload, HTTP2Frame.FramePayload>(wrappingChannelSynchronously: stream)
                }
            }
            return try await stream.executeThenClose { inbound, outbound in
                var frames = inbound.makeAsyncIterator()
                var head: HPACKHeaders?
                var pongs: [String] = []
                var headers = grpcHeaders(path: "/grpc.Echo/Chat")
                headers.add(name: ScriptedPeer.answerHeader, value: "bidi")
                try await outbound.write(.headers(.init(headers: headers)))
                for index in 1...5 {
                    try await outbound.write(.data(.init(data: .byteBuffer(ByteBuffer(string: "m\(index)")))))
                    // The answer to this message must come before the next one is sent.
                    waiting: while let frame = try await frames.next() {
                        switch frame {
                        case .headers(let block) where head == nil: head = block.headers
                        case .data(let data):
                            if case .byteBuffer(let buffer) = data.data { pongs.append(String(buffer: buffer)) }
                            break waiting
                        default: throw OutboundTestError("unexpected \(frame) after \(pongs)")
                        }
                    }
                }
                try await outbound.write(.data(.init(data: .byteBuffer(ByteBuffer()), endStream: true)))
                var trailers: HPACKHeaders?
                while let frame = try await frames.next() {
                    if case .headers(let block) = frame, block.endStream {
                        trailers = block.headers
                        break
                    }
                }
                return (head, pongs, trailers)
            }
        }
        #expect(head?.first(name: ":status") == "200")
        #expect(pongs == (1...5).map { "pong:m\($0)" })
        #expect(trailers?.first(name: "grpc-status") == "0")
        #expect(peer.seen.received.first?.body == "m1m2m3m4m5")
        #expect(fixed.outcomes.successes == 1)
    }

    /// The pick's timeout bounds the wait for the response head only: a streaming answer whose
    /// messages come later than that is not cut off.
    @Test func aStreamingAnswerSlowerThanThePicksTimeoutAfterItsHeadIsNotCutOff() async throws {
        let peer = try await ScriptedPeer.start(tls: try pki.tls(serverIdentity))
        defer { Task { await peer.close() } }
        let fixed = picker(port: peer.port, timeout: .milliseconds(800))
        let response = try await withOutboundProxy(picker: fixed, tls: clientTLS) { port in
            let connection = try await H2CTestConnection.open(port: port)
            defer { connection.close() }
            var headers = grpcHeaders(path: "/grpc.Echo/Stream")
            headers.add(name: ScriptedPeer.answerHeader, value: "slow-stream")
            return try await connection.exchange(headers, body: [ByteBuffer(string: "go")])
        }
        #expect(response.status == "200", "\(response)")
        #expect(response.body == "firstsecond", "\(response)")
        #expect(response.trailers?.first(name: "grpc-status") == "0", "\(response)")
        #expect(response.ended && response.failure == nil, "\(response)")
        #expect(fixed.outcomes.successes == 1)
    }

    /// More calls at once than the peer takes streams (NIOHTTP2's default limit, 100): the ones
    /// beyond wait for a free stream and are then served; none is lost or answered twice.
    @Test func moreConcurrentCallsThanThePeersStreamLimitAreAllServed() async throws {
        let peer = try await TestPeer.start(tls: try pki.tls(serverIdentity))
        defer { Task { await peer.close() } }
        let fixed = picker(port: peer.port, answersNow: true)
        let count = 150
        let responses = try await withOutboundProxy(picker: fixed, tls: clientTLS) { port in
            let connection = try await H2CTestConnection.open(port: port)
            defer { connection.close() }
            return try await withThrowingTaskGroup(of: (Int, H2CResponse).self) { group in
                for index in 0..<count {
                    group.addTask {
                        let response = try await connection.exchange(
                            grpcHeaders(path: "/grpc.Echo/Say\(index)"), body: [ByteBuffer(string: "n\(index)")])
                        return (index, response)
                    }
                }
                var responses: [Int: H2CResponse] = [:]
                for try await (index, response) in group { responses[index] = response }
                return responses
            }
        }
        let answered = (0..<count).filter { index in
            guard let response = responses[index] else { return false }
            return response.status == "200" && response.body == "echo:n\(index)"
                && response.trailers?.first(name: "grpc-status") == "0" && response.failure == nil
        }
        #expect(answered.count == count, "unanswered: \((0..<count).filter { !answered.contains($0) }.prefix(10).map { "\($0): \(responses[$0].map { "\($0)" } ?? "none")" })")
        #expect(peer.seen.received.count == count)
        #expect(fixed.outcomes.successes == count)
    }

    /// A client connection that goes away mid-call (its streams close with it) leaves the pooled
    /// peer connection usable for the next client.
    @Test func aClientConnectionClosedMidCallLeavesThePeerConnectionUsable() async throws {
        let peer = try await ScriptedPeer.start(tls: try pki.tls(serverIdentity))
        defer { Task { await peer.close() } }
        let fixed = picker(port: peer.port, answersNow: true)
        let (head, next) = try await withOutboundProxy(picker: fixed, tls: clientTLS) { port in
            let first = try await H2CTestConnection.open(port: port)
            let stream = try await first.multiplexer.openStream { stream in
                stream.eventLoop.makeCompletedFuture {
                    try NIOAsyncChannel<HTTP2Frame.FramePayload, HTTP2Frame.FramePayload>(wrappingChannelSynchronously: stream)
                }
            }
            let head = try await stream.executeThenClose { inbound, outbound in
                var headers = grpcHeaders(path: "/grpc.Echo/Chat")
                headers.add(name: ScriptedPeer.answerHeader, value: "bidi")
                try await outbound.write(.headers(.init(headers: headers)))
                var frames = inbound.makeAsyncIterator()
                guard case .headers(let head)? = try await frames.next() else { return HPACKHeaders() }
                // The call is under way (its head came back): the client's connection goes away.
                try await first.channel.close()
                return head.headers
            }
            try await Task.sleep(for: .milliseconds(100))
            let second = try await H2CTestConnection.open(port: port)
            defer { second.close() }
            return (head, try await second.exchange(grpcHeaders(), body: [ByteBuffer(string: "after")]))
        }
        #expect(head.first(name: ":status") == "200")
        #expect(next.status == "200", "\(next)")
        #expect(next.body == "echo:after", "\(next)")
        #expect(next.trailers?.first(name: "grpc-status") == "0")
        // The abandoned call is not held against the endpoint.
        #expect(fixed.outcomes.failures == 0)
        #expect(fixed.outcomes.count == 2)
    }

    /// Issue #14's h2load stalls: a client that leaves with many calls in flight makes the relay
    /// reset as many peer streams at once, while the peer's answers to them are on their way.
    /// NIOHTTP2 recognised late frames only for the last 32 streams reset; a frame for an older
    /// one was a connection error, after which the pooled connection read nothing more and every
    /// later call on it waited for its timeout. Now the connection stays, and the next call on it
    /// is answered at once.
    @Test func lateAnswersToManyResetStreamsLeaveThePeerConnectionUsable() async throws {
        let peer = try await ScriptedPeer.start(tls: try pki.tls(serverIdentity))
        defer { Task { await peer.close() } }
        let fixed = picker(port: peer.port, answersNow: true)
        let calls = 60
        let (warm, next, elapsed) = try await withOutboundProxy(picker: fixed, tls: clientTLS) { port in
            let client = try await H2CTestConnection.open(port: port)
            defer { client.close() }
            let warm = try await client.exchange(grpcHeaders(), body: [ByteBuffer(string: "warm")])
            var streams: [any Channel] = []
            for _ in 0..<calls {
                let stream = try await client.multiplexer.openStream { stream in
                    stream.eventLoop.makeSucceededFuture(stream as any Channel)
                }
                var headers = grpcHeaders()
                headers.add(name: ScriptedPeer.answerHeader, value: "held")
                try await stream.writeAndFlush(HTTP2Frame.FramePayload.headers(.init(headers: headers, endStream: true))).get()
                streams.append(stream)
            }
            try await eventually("the peer holds \(calls) calls") { peer.held.count == calls }
            // The client gives up on every call at once (RST_STREAM each).
            try await client.channel.eventLoop.submit { for stream in streams { stream.close(promise: nil) } }.get()
            try await eventually("the peer answered the other held calls") { peer.held.lateAnswers == calls - 1 }
            try await Task.sleep(for: .milliseconds(200))
            let start = ContinuousClock.now
            let next = try await client.exchange(grpcHeaders(), body: [ByteBuffer(string: "after")])
            return (warm, next, ContinuousClock.now - start)
        }
        #expect(warm.status == "200")
        #expect(next.status == "200", "\(next)")
        #expect(next.body == "echo:after", "\(next)")
        #expect(elapsed < .seconds(2), "the call after the resets took \(elapsed)")
        #expect(peer.connections == 1, "the pooled peer connection was replaced (\(peer.connections) connections)")
    }

    // MARK: - Resets

    /// A client that gives up on a call (HEADERS and some DATA, then RST_STREAM) neither breaks
    /// its connection nor counts against the endpoint; the request never completes at the peer.
    /// `peerStreamOpen`: the reset comes once the peer stream is open (a warm pool connection and
    /// a picker that answers at once), or while the stream is still being routed.
    @Test(arguments: [false, true])
    func aClientThatResetsMidRequestLeavesTheConnectionUsable(peerStreamOpen: Bool) async throws {
        let peer = try await TestPeer.start(tls: try pki.tls(serverIdentity))
        defer { Task { await peer.close() } }
        let fixed = picker(port: peer.port, answersNow: peerStreamOpen)
        let (warm, second, active) = try await withOutboundProxy(picker: fixed, tls: clientTLS) { port in
            let connection = try await H2CTestConnection.open(port: port)
            defer { connection.close() }
            var warm: H2CResponse?
            if peerStreamOpen {
                warm = try await connection.exchange(grpcHeaders(), body: [ByteBuffer(string: "warm")])
            }
            let doomed = try await connection.multiplexer.openStream { stream in
                stream.eventLoop.makeSucceededFuture(stream as any Channel)
            }
            try await doomed.writeAndFlush(HTTP2Frame.FramePayload.headers(.init(headers: grpcHeaders()))).get()
            try await doomed.writeAndFlush(
                HTTP2Frame.FramePayload.data(.init(data: .byteBuffer(ByteBuffer(string: "partial"))))
            ).get()
            if peerStreamOpen { try await Task.sleep(for: .milliseconds(200)) }
            // Closing an open stream channel sends RST_STREAM(CANCEL) (its close then reports
            // the stream closed by that reset).
            doomed.close(promise: nil)
            try await doomed.closeFuture.get()
            try await Task.sleep(for: .milliseconds(100))
            let second = try await connection.exchange(grpcHeaders(), body: [ByteBuffer(string: "second")])
            return (warm, second, connection.channel.isActive)
        }
        if peerStreamOpen {
            #expect(warm?.status == "200", "\(String(describing: warm))")
        }
        #expect(second.status == "200", "\(second)")
        #expect(second.body == "echo:second", "\(second)")
        #expect(second.trailers?.first(name: "grpc-status") == "0", "\(second)")
        #expect(active, "the client's connection closed")
        #expect(!peer.seen.received.map(\.body).contains("partial"))
        #expect(peer.seen.received.map(\.body).last == "second")
        // The reset call's pick is reported once, as abandoned: not against the endpoint.
        #expect(fixed.outcomes.failures == 0)
        #expect(fixed.outcomes.successes == (peerStreamOpen ? 2 : 1))
        #expect(fixed.outcomes.count == fixed.outcomes.successes + 1)
    }

    /// A response that breaks off after its head (the peer resets its stream) resets the client's
    /// stream: the client must not take the partial answer for a complete one. The connection
    /// stays usable.
    @Test func aResponseThatBreaksOffAfterItsHeadResetsTheClientsStream() async throws {
        let peer = try await ScriptedPeer.start(tls: try pki.tls(serverIdentity))
        defer { Task { await peer.close() } }
        let fixed = picker(port: peer.port)
        let (broken, next) = try await withOutboundProxy(picker: fixed, tls: clientTLS) { port in
            let connection = try await H2CTestConnection.open(port: port)
            defer { connection.close() }
            var headers = grpcHeaders()
            headers.add(name: ScriptedPeer.answerHeader, value: "reset-after-head")
            let broken = try await connection.exchange(headers, body: [ByteBuffer(string: "doomed")])
            let next = try await connection.exchange(grpcHeaders(), body: [ByteBuffer(string: "next")])
            return (broken, next)
        }
        #expect(broken.status == "200", "\(broken)")
        #expect(!broken.ended, "a broken response ended cleanly: \(broken)")
        #expect(broken.failure != nil, "\(broken)")
        #expect(broken.trailers == nil, "\(broken)")
        #expect(next.status == "200", "\(next)")
        #expect(next.body == "echo:next", "\(next)")
        #expect(next.trailers?.first(name: "grpc-status") == "0")
        #expect(fixed.outcomes.failures == 1)
    }

    /// A peer stream reset before any answer: a POST (its body is gone) gets 502, a GET (no body,
    /// safe to repeat) is sent again to another endpoint.
    @Test func aStreamResetBeforeAnyAnswerIsRetriedOnlyWhenTheRequestCanBeRepeated() async throws {
        let resetting = try await ScriptedPeer.start(tls: try pki.tls(serverIdentity))
        defer { Task { await resetting.close() } }
        let fallback = try await TestPeer.start(tls: try pki.tls(serverIdentity))
        defer { Task { await fallback.close() } }
        let fixed = FixedPicker(
            endpoints: ["podinfo.test:9898": Endpoint(host: "127.0.0.1", port: resetting.port, identity: serverIdentity)],
            fallbacks: ["podinfo.test:9898": [Endpoint(host: "127.0.0.1", port: fallback.port, identity: serverIdentity)]])
        let (post, get) = try await withOutboundProxy(picker: fixed, tls: clientTLS) { port in
            let connection = try await H2CTestConnection.open(port: port)
            defer { connection.close() }
            var postHeaders = grpcHeaders()
            postHeaders.add(name: ScriptedPeer.answerHeader, value: "reset")
            let post = try await connection.exchange(postHeaders, body: [ByteBuffer(string: "once")])
            let get = try await connection.exchange([
                ":method": "GET", ":scheme": "http", ":authority": "podinfo.test:9898", ":path": "/again",
                ScriptedPeer.answerHeader: "reset",
            ])
            return (post, get)
        }
        #expect(post.status == "502", "\(post)")
        #expect(post.head?.first(name: ProxyError.headerName) == ProxyError.Code.upstreamProtocol.name)
        #expect(get.status == "200", "\(get)")
        #expect(get.body == "echo:", "\(get)")
        // The POST reached the resetting peer only; the GET reached both.
        #expect(resetting.seen.received.map { $0.headers.first(name: ":method") } == ["POST", "GET"])
        #expect(fallback.seen.received.map { $0.headers.first(name: ":path") } == ["/again"])
        #expect(fixed.outcomes.failures == 2)
        #expect(fixed.outcomes.successes == 1)
    }
}

// MARK: - Fixtures

private func grpcHeaders(authority: String = "podinfo.test:9898", path: String = "/grpc.Echo/Say") -> HPACKHeaders {
    [
        ":method": "POST", ":scheme": "http", ":authority": authority, ":path": path,
        "content-type": "application/grpc", "te": "trailers",
    ]
}

private func callBody(_ index: Int) -> String {
    "call-\(index):" + String(repeating: Character(UnicodeScalar(UInt8(97 + index % 26))), count: 100 + index * 97)
}

private func chunks(of text: String, size: Int) -> [ByteBuffer] {
    var buffer = ByteBuffer(string: text)
    var chunks: [ByteBuffer] = []
    while buffer.readableBytes > 0 {
        chunks.append(buffer.readSlice(length: min(size, buffer.readableBytes))!)
    }
    return chunks
}

/// What a client stream received: its frames, whether the last one ended the stream, and how
/// the exchange failed if it did (a reset stream, a failed write).
struct H2CResponse: Sendable, CustomStringConvertible {
    var frames: [HTTP2Frame.FramePayload] = []
    var ended = false
    var failure: String?

    var headerBlocks: [HPACKHeaders] {
        frames.compactMap { if case .headers(let headers) = $0 { headers.headers } else { nil } }
    }
    var head: HPACKHeaders? { headerBlocks.first }
    var status: String? { head?.first(name: ":status") }
    /// The last header block, when there is one after the head.
    var trailers: HPACKHeaders? { headerBlocks.count > 1 ? headerBlocks.last : nil }
    var body: String {
        frames.compactMap { frame -> String? in
            guard case .data(let data) = frame, case .byteBuffer(let buffer) = data.data else { return nil }
            return String(buffer: buffer)
        }.joined()
    }

    var description: String {
        let kinds = frames.map { frame -> String in
            switch frame {
            case .headers(let headers): "HEADERS\(headers.endStream ? "+END" : "")"
            case .data(let data): "DATA(\(data.data.readableBytes))\(data.endStream ? "+END" : "")"
            default: "\(frame)"
            }
        }
        return "frames \(kinds), ended \(ended), failure \(failure ?? "none"), head \(head.map { "\($0)" } ?? "none"), body \(body.prefix(80))"
    }
}

/// An h2c (prior knowledge) client connection to the outbound listener; it closes itself after
/// `limit` so that a test never hangs.
struct H2CTestConnection: Sendable {
    let channel: any Channel
    let multiplexer: NIOHTTP2Handler.AsyncStreamMultiplexer<Void>

    /// `validatesHeaders: false` lets the client send header blocks HTTP/2 forbids.
    static func open(port: Int, limit: TimeAmount = .seconds(9), validatesHeaders: Bool = true) async throws
        -> H2CTestConnection
    {
        var configuration = NIOHTTP2Handler.Configuration()
        if !validatesHeaders { configuration.connection.headerBlockValidation = .disabled }
        let (channel, multiplexer) = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: "127.0.0.1", port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    let multiplexer = try channel.pipeline.syncOperations.configureAsyncHTTP2Pipeline(
                        mode: .client, configuration: configuration
                    ) {
                        stream in stream.eventLoop.makeSucceededVoidFuture()
                    }
                    return (channel as any Channel, multiplexer)
                }
            }
        channel.eventLoop.scheduleTask(in: limit) { channel.close(promise: nil) }
        return H2CTestConnection(channel: channel, multiplexer: multiplexer)
    }

    func close() { channel.close(promise: nil) }

    /// One call on a new stream: `headers`, the body's DATA frames, then `trailers`; the last of
    /// them ends the client's side. Returns what came back until the stream ended.
    func exchange(_ headers: HPACKHeaders, body: [ByteBuffer] = [], trailers: HPACKHeaders? = nil) async throws
        -> H2CResponse
    {
        let stream = try await multiplexer.openStream { stream in
            stream.eventLoop.makeCompletedFuture {
                try NIOAsyncChannel<HTTP2Frame.FramePayload, HTTP2Frame.FramePayload>(wrappingChannelSynchronously: stream)
            }
        }
        return try await stream.executeThenClose { inbound, outbound in
            var response = H2CResponse()
            do {
                try await outbound.write(.headers(.init(headers: headers, endStream: body.isEmpty && trailers == nil)))
                for (index, chunk) in body.enumerated() {
                    let last = index == body.count - 1 && trailers == nil
                    try await outbound.write(.data(.init(data: .byteBuffer(chunk), endStream: last)))
                }
                if let trailers { try await outbound.write(.headers(.init(headers: trailers, endStream: true))) }
            } catch {
                response.failure = "write: \(error)"
            }
            do {
                for try await frame in inbound {
                    response.frames.append(frame)
                    if case .headers(let headers) = frame, headers.endStream { response.ended = true }
                    if case .data(let data) = frame, data.endStream { response.ended = true }
                    if response.ended { break }
                }
            } catch {
                response.failure = (response.failure.map { $0 + "; " } ?? "") + "read: \(error)"
            }
            return response
        }
    }
}

/// A stand-in for the peer proxy (mTLS, h2) whose answer each request picks with
/// `x-test-answer`, once the request ended: `trailers-only` (one HEADERS frame with END_STREAM,
/// `grpc-status: 5`), `reset` (RST_STREAM before any answer), `reset-after-head` (a head and some
/// DATA, then RST_STREAM), `slow-stream` (a head and a message, the next message and the
/// trailers 1.5 s later); `bidi` answers its head at once and every DATA frame with
/// `pong:<data>` as it comes, then trailers; `held` is not answered until the caller resets one
/// held stream, and then every other held stream is answered at once (as a peer does whose
/// answers were on their way when the caller's resets came); otherwise it echoes as `TestPeer`
/// does.
final class ScriptedPeer: Sendable {
    static let answerHeader = "x-test-answer"
    let channel: any Channel
    let seen: PeerRecorder
    let held: HeldStreams
    private let accepted: Accepted
    var port: Int { channel.localAddress?.port ?? 0 }
    /// Connections accepted so far.
    var connections: Int { accepted.count.withLock { $0 } }

    private final class Accepted: Sendable {
        let count = Mutex(0)
    }

    private init(channel: any Channel, seen: PeerRecorder, held: HeldStreams, accepted: Accepted) {
        self.channel = channel
        self.seen = seen
        self.held = held
        self.accepted = accepted
    }

    /// The streams a peer holds unanswered (`held`), all on one connection's event loop.
    final class HeldStreams: Sendable {
        private let streams = Mutex<[ObjectIdentifier: NIOLoopBound<ChannelHandlerContext>]>([:])
        private let answered = Mutex(0)
        var count: Int { streams.withLock { $0.count } }
        /// Streams answered after another held stream was reset.
        var lateAnswers: Int { answered.withLock { $0 } }

        func hold(_ context: ChannelHandlerContext) {
            streams.withLock { $0[ObjectIdentifier(context)] = NIOLoopBound(context, eventLoop: context.eventLoop) }
        }

        /// `context`'s stream was reset: every other held stream is answered now.
        func reset(_ context: ChannelHandlerContext) {
            let others = streams.withLock { streams -> [NIOLoopBound<ChannelHandlerContext>] in
                guard streams.removeValue(forKey: ObjectIdentifier(context)) != nil else { return [] }
                let others = Array(streams.values)
                streams.removeAll()
                return others
            }
            for other in others {
                let context = other.value
                context.write(NIOAny(HTTP2Frame.FramePayload.headers(.init(headers: [":status": "200"]))), promise: nil)
                context.writeAndFlush(
                    NIOAny(HTTP2Frame.FramePayload.headers(.init(headers: ["grpc-status": "0"], endStream: true))), promise: nil)
            }
            answered.withLock { $0 += others.count }
        }
    }

    static func start(tls: MeshTLS) async throws -> ScriptedPeer {
        let recorder = PeerRecorder()
        let held = HeldStreams()
        let accepted = Accepted()
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                accepted.count.withLock { $0 += 1 }
                return channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    // NIOSSL holds the server's preface until the handshake is done.
                    try sync.addHandler(try tls.makeServerHandler())
                    _ = try sync.configureHTTP2Pipeline(
                        mode: .server, connectionConfiguration: .init(), streamConfiguration: .init()
                    ) { stream in
                        stream.eventLoop.makeCompletedFuture {
                            try stream.pipeline.syncOperations.addHandler(
                                ScriptedPeerStreamHandler(recorder: recorder, held: held))
                        }
                    }
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        return ScriptedPeer(channel: channel, seen: recorder, held: held, accepted: accepted)
    }

    func close() async { try? await channel.close() }
}

private final class ScriptedPeerStreamHandler: ChannelInboundHandler {
    typealias InboundIn = HTTP2Frame.FramePayload
    typealias OutboundOut = HTTP2Frame.FramePayload
    let recorder: PeerRecorder
    let held: ScriptedPeer.HeldStreams
    private var headers = HPACKHeaders()
    private var body = ""
    private var mode: String { headers.first(name: ScriptedPeer.answerHeader) ?? "" }

    init(recorder: PeerRecorder, held: ScriptedPeer.HeldStreams) {
        self.recorder = recorder
        self.held = held
    }

    func channelInactive(context: ChannelHandlerContext) {
        if mode == "held" { held.reset(context) }
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .headers(let frame):
            if headers.isEmpty {
                headers = frame.headers
                if mode == "bidi" {
                    // A bidirectional stream answers its head at once, before the request ended.
                    context.writeAndFlush(wrapOutboundOut(.headers(.init(headers: [":status": "200"]))), promise: nil)
                }
                if frame.endStream { answer(context: context, trailers: nil) }
            } else {
                answer(context: context, trailers: frame.headers)
            }
        case .data(let frame):
            if case .byteBuffer(let buffer) = frame.data {
                body += String(buffer: buffer)
                if mode == "bidi", buffer.readableBytes > 0 {
                    let pong = ByteBuffer(string: "pong:" + String(buffer: buffer))
                    context.writeAndFlush(wrapOutboundOut(.data(.init(data: .byteBuffer(pong)))), promise: nil)
                }
            }
            if frame.endStream { answer(context: context, trailers: nil) }
        default:
            break
        }
    }

    private func answer(context: ChannelHandlerContext, trailers: HPACKHeaders?) {
        recorder.record(PeerRecorder.Request(headers: headers, body: body, trailers: trailers))
        let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
        switch mode {
        case "held":
            held.hold(context)
        case "trailers-only":
            let only: HPACKHeaders = [
                ":status": "200", "content-type": "application/grpc", "grpc-status": "5", "grpc-message": "not found",
            ]
            context.writeAndFlush(wrapOutboundOut(.headers(.init(headers: only, endStream: true))), promise: nil)
        case "reset":
            // Closing an open stream channel sends RST_STREAM(CANCEL).
            context.close(promise: nil)
        case "reset-after-head":
            context.write(wrapOutboundOut(.headers(.init(headers: [":status": "200", "content-type": "application/grpc"]))), promise: nil)
            context.writeAndFlush(wrapOutboundOut(.data(.init(data: .byteBuffer(ByteBuffer(string: "partial"))))), promise: nil)
            context.eventLoop.scheduleTask(in: .milliseconds(150)) { bound.value.close(promise: nil) }
        case "bidi":
            context.writeAndFlush(wrapOutboundOut(.headers(.init(headers: ["grpc-status": "0"], endStream: true))), promise: nil)
        case "slow-stream":
            // A streaming answer whose next message comes long after its head.
            context.write(wrapOutboundOut(.headers(.init(headers: [":status": "200"]))), promise: nil)
            context.writeAndFlush(wrapOutboundOut(.data(.init(data: .byteBuffer(ByteBuffer(string: "first"))))), promise: nil)
            context.eventLoop.scheduleTask(in: .milliseconds(1500)) {
                let context = bound.value
                context.write(Self.wrapOutboundOut(.data(.init(data: .byteBuffer(ByteBuffer(string: "second"))))), promise: nil)
                context.writeAndFlush(
                    Self.wrapOutboundOut(.headers(.init(headers: ["grpc-status": "0"], endStream: true))), promise: nil)
            }
        default:
            context.write(wrapOutboundOut(.headers(.init(headers: [":status": "200"]))), promise: nil)
            context.write(wrapOutboundOut(.data(.init(data: .byteBuffer(ByteBuffer(string: "echo:\(body)"))))), promise: nil)
            context.writeAndFlush(wrapOutboundOut(.headers(.init(headers: ["grpc-status": "0"], endStream: true))), promise: nil)
        }
    }
}
