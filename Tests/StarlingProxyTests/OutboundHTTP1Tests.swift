import Foundation
import Logging
import NIOCore
import NIOHPACK
import NIOPosix
import StarlingCore
import StarlingProxy
import StarlingTLS
import Testing

/// The outbound listener as an HTTP/1 forward proxy, against a real mTLS HTTP/2 peer.
struct OutboundHTTP1Tests {
    let pki: OutboundTestPKI
    let clientTLS: MeshTLS

    init() throws {
        pki = try OutboundTestPKI()
        clientTLS = try pki.tls(clientIdentity)
    }

    private func picker(peer: TestPeer, identity: MeshIdentity = serverIdentity, timeout: Duration = .seconds(5))
        -> FixedPicker
    {
        FixedPicker(
            endpoints: ["podinfo.test:9898": Endpoint(host: "127.0.0.1", port: peer.port, identity: identity)],
            timeout: timeout)
    }

    @Test func absoluteFormRequestReachesThePeerAsHTTP2WithMeshHeaders() async throws {
        let peer = try await TestPeer.start(tls: try pki.tls(serverIdentity))
        defer { Task { await peer.close() } }
        let response = try await withOutboundProxy(picker: picker(peer: peer), tls: clientTLS) { port in
            try await rawExchange(
                port: port,
                send: "GET http://podinfo.test:9898/hello?x=1 HTTP/1.1\r\nHost: podinfo.test:9898\r\nConnection: close\r\nX-Custom: yes\r\n\r\n")
        }
        #expect(response.hasPrefix("HTTP/1.1 200 OK\r\n"))
        #expect(response.lowercased().contains("transfer-encoding: chunked"))
        #expect(response.contains("echo:"))
        let seen = try #require(peer.seen.received.first)
        #expect(seen.headers.first(name: ":path") == "/hello?x=1")
        #expect(seen.headers.first(name: ":authority") == "podinfo.test:9898")
        #expect(seen.headers.first(name: ":method") == "GET")
        #expect(seen.headers.first(name: "starling-target") == "podinfo.test.svc.cluster.local:9898")
        #expect(seen.headers.first(name: "starling-orig-proto") == "HTTP/1.1")
        #expect(seen.headers.first(name: "x-custom") == "yes")
        #expect(seen.headers.first(name: "connection") == nil)
    }

    @Test func requestBodyStreamsToThePeerAndKeepAliveServesASecondRequest() async throws {
        let peer = try await TestPeer.start(tls: try pki.tls(serverIdentity))
        defer { Task { await peer.close() } }
        let response = try await withOutboundProxy(picker: picker(peer: peer), tls: clientTLS) { port in
            try await rawExchange(
                port: port,
                send: "POST /submit HTTP/1.1\r\nHost: podinfo.test:9898\r\nContent-Length: 5\r\n\r\nhello"
                    + "POST /chunked HTTP/1.1\r\nHost: podinfo.test:9898\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
        }
        #expect(response.components(separatedBy: "HTTP/1.1 200 OK").count == 3)
        #expect(response.contains("echo:hello"))
        #expect(response.contains("echo:abc"))
        #expect(peer.seen.received.map(\.body).sorted() == ["abc", "hello"])
    }

    @Test(arguments: [false, true])
    func keepAliveRequestsRouteWithOrWithoutWaitingForThePicker(answersNow: Bool) async throws {
        let peer = try await TestPeer.start(tls: try pki.tls(serverIdentity))
        defer { Task { await peer.close() } }
        var fixed = picker(peer: peer)
        fixed.answersNow = answersNow
        let outcomes = fixed.outcomes
        let response = try await withOutboundProxy(picker: fixed, tls: clientTLS) { port in
            try await rawExchange(
                port: port,
                send: "GET /one HTTP/1.1\r\nHost: podinfo.test:9898\r\n\r\n"
                    + "HEAD /two HTTP/1.1\r\nHost: podinfo.test:9898\r\n\r\n"
                    + "POST /three HTTP/1.1\r\nHost: podinfo.test:9898\r\nContent-Length: 3\r\nConnection: close\r\n\r\nxyz")
        }
        #expect(response.components(separatedBy: "HTTP/1.1 200 OK").count == 4)
        // The HEAD response carries no body; GET and POST get theirs, in order.
        #expect(response.components(separatedBy: "echo:").count == 3)
        #expect(response.hasSuffix("echo:xyz\r\n0\r\n\r\n"))
        #expect(peer.seen.received.map { $0.headers.first(name: ":path") ?? "" } == ["/one", "/two", "/three"])
        #expect(outcomes.successes == 3)
    }

    /// Bodies far larger than HTTP/2's 64 KiB windows stream both ways: the upload is read only
    /// as the stream takes it, the echoed download only as the client takes it.
    @Test func largeBodiesStreamBothWaysThroughFlowControl() async throws {
        let peer = try await TestPeer.start(tls: try pki.tls(serverIdentity))
        defer { Task { await peer.close() } }
        let size = 2 * 1024 * 1024
        let payload = String(repeating: "0123456789abcdef", count: size / 16)
        let response = try await withOutboundProxy(picker: picker(peer: peer), tls: clientTLS) { port in
            try await rawExchange(
                port: port,
                send: "POST /upload HTTP/1.1\r\nHost: podinfo.test:9898\r\nContent-Length: \(size)\r\nConnection: close\r\n\r\n"
                    + payload,
                timeout: .seconds(20))
        }
        #expect(response.hasPrefix("HTTP/1.1 200 OK\r\n"))
        #expect(peer.seen.received.first?.body.count == size)
        // The echo comes back chunked: strip the framing and compare the bytes.
        let body = response.components(separatedBy: "\r\n\r\n").dropFirst().joined(separator: "\r\n\r\n")
        let unchunked = body.split(separator: "\r\n").enumerated().filter { $0.offset % 2 == 1 }.map(\.element).joined()
        #expect(unchunked.count == size + "echo:".count)
        #expect(unchunked.hasSuffix(String(payload.suffix(64))))
    }

    /// A HEAD response is complete at its head: a peer that sends a body anyway (a protocol
    /// error NIO refuses on the stream) neither hangs the client nor leaks into the next response.
    @Test func aHeadResponseEndsWithItsHeadEvenIfThePeerSendsABody() async throws {
        let peer = try await TestPeer.start(tls: try pki.tls(serverIdentity))
        defer { Task { await peer.close() } }
        let started = ContinuousClock.now
        let response = try await withOutboundProxy(picker: picker(peer: peer), tls: clientTLS) { port in
            try await rawExchange(
                port: port,
                send: "HEAD /h HTTP/1.1\r\nHost: podinfo.test:9898\r\nX-Test-Body-On-Head: 1\r\n\r\n"
                    + "GET /g HTTP/1.1\r\nHost: podinfo.test:9898\r\nConnection: close\r\n\r\n")
        }
        let elapsed = ContinuousClock.now - started
        #expect(response.components(separatedBy: "HTTP/1.1 200 OK").count == 3, "\(response)")
        #expect(response.components(separatedBy: "echo:").count == 2)
        #expect(elapsed < Duration.seconds(3), "took \(elapsed)")
    }

    @Test func expectContinueGets100BeforeTheBodyIsSent() async throws {
        let peer = try await TestPeer.start(tls: try pki.tls(serverIdentity))
        defer { Task { await peer.close() } }
        let response = try await withOutboundProxy(picker: picker(peer: peer), tls: clientTLS) { port in
            try await rawExchange(
                port: port,
                send: "PUT /upload HTTP/1.1\r\nHost: podinfo.test:9898\r\nContent-Length: 4\r\nExpect: 100-continue\r\nConnection: close\r\n\r\ndata")
        }
        #expect(response.hasPrefix("HTTP/1.1 100 Continue\r\n"))
        #expect(response.contains("HTTP/1.1 200 OK\r\n"))
        #expect(response.contains("echo:data"))
        #expect(peer.seen.received.first?.headers.first(name: "expect") == nil)
    }

    @Test func aPlainEndpointIsServedOverHTTP1() async throws {
        // An endpoint outside the mesh (no identity) gets plain HTTP/1.1, on the same event-loop
        // path as a meshed one; pipelined requests go one after the other.
        let app = try await startInboundHTTP1App()
        defer { Task { await app.close() } }
        let fixed = FixedPicker(
            endpoints: ["plain.test:80": Endpoint(host: "127.0.0.1", port: app.port)], answersNow: true)
        let response = try await withOutboundProxy(picker: fixed, tls: clientTLS) { port in
            try await rawExchange(
                port: port,
                send: "POST /a HTTP/1.1\r\nHost: plain.test\r\nContent-Length: 5\r\n\r\nhello"
                    + "GET /b HTTP/1.1\r\nHost: plain.test\r\nConnection: close\r\n\r\n")
        }
        #expect(response.components(separatedBy: "HTTP/1.1 200 OK").count == 3)
        #expect(response.contains("echo-path: /a"))
        #expect(response.contains("echo-path: /b"))
        #expect(response.contains("hello"))
        // Plain endpoints get no mesh headers.
        #expect(response.contains("echo-target: none"))
    }

    /// Plain endpoints get pooled connections, as the inbound's application does: requests of
    /// several client connections, one after the other, reach the application on one connection.
    @Test func aPlainEndpointsConnectionIsKeptAndReused() async throws {
        let app = try await startInboundHTTP1App()
        defer { Task { await app.close() } }
        let fixed = FixedPicker(
            endpoints: ["plain.test:80": Endpoint(host: "127.0.0.1", port: app.port)], answersNow: true)
        let responses = try await withOutboundProxy(picker: fixed, tls: clientTLS) { port in
            var responses: [String] = []
            for index in 0..<4 {
                responses.append(
                    try await rawExchange(
                        port: port,
                        send: "GET /n\(index) HTTP/1.1\r\nHost: plain.test\r\nConnection: close\r\n\r\n"))
            }
            return responses
        }
        for (index, response) in responses.enumerated() {
            #expect(response.hasPrefix("HTTP/1.1 200 OK\r\n"), "\(response.prefix(200))")
            #expect(response.contains("echo-path: /n\(index)"))
        }
        // Client connections land on either of the proxy's loops; each loop keeps its own.
        #expect(app.accepted.count <= 2, "the application saw \(app.accepted.count) connections for 4 requests")
        #expect(fixed.outcomes.successes == 4)
    }

    /// A plain endpoint that refuses the connect is tried again elsewhere, as a meshed one is.
    @Test func aRefusedPlainEndpointIsTriedAgainOnAnotherEndpoint() async throws {
        let app = try await startInboundHTTP1App()
        defer { Task { await app.close() } }
        let picker = FixedPicker(
            endpoints: ["plain.test:80": Endpoint(host: "127.0.0.1", port: try closedPort())],
            fallbacks: ["plain.test:80": [Endpoint(host: "127.0.0.1", port: app.port)]])
        let response = try await withOutboundProxy(picker: picker, tls: clientTLS) { port in
            try await rawExchange(
                port: port,
                send: "POST /submit HTTP/1.1\r\nHost: plain.test\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello")
        }
        #expect(response.hasPrefix("HTTP/1.1 200 OK\r\n"), "\(response.prefix(200))")
        #expect(response.hasSuffix("hello"))
        #expect(picker.outcomes.failures >= 1)
        #expect(picker.outcomes.successes == 1)
    }

    /// A chunked upload of unknown length reaches a plain endpoint chunked, and a HEAD request's
    /// answer ends with its head.
    @Test func aPlainEndpointGetsChunkedBodiesAndHeadRequests() async throws {
        let app = try await startInboundHTTP1App()
        defer { Task { await app.close() } }
        let fixed = FixedPicker(
            endpoints: ["plain.test:80": Endpoint(host: "127.0.0.1", port: app.port)], answersNow: true)
        let response = try await withOutboundProxy(picker: fixed, tls: clientTLS) { port in
            try await rawExchange(
                port: port,
                send: "PUT /up HTTP/1.1\r\nHost: plain.test\r\nTransfer-Encoding: chunked\r\n\r\n"
                    + "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
                    + "HEAD /h HTTP/1.1\r\nHost: plain.test\r\nConnection: close\r\n\r\n")
        }
        let answers = response.components(separatedBy: "HTTP/1.1 200 OK")
        #expect(answers.count == 3, "\(response)")
        #expect(response.contains("hello world"))
        #expect(response.contains("echo-method: HEAD"))
        // The HEAD answer has no body after its head.
        #expect(answers.last?.hasSuffix("\r\n\r\n") == true, "\(response)")
    }

    @Test func smugglingAttemptIsRefusedAndNeverForwarded() async throws {
        let peer = try await TestPeer.start(tls: try pki.tls(serverIdentity))
        defer { Task { await peer.close() } }
        let responses = try await withOutboundProxy(picker: picker(peer: peer), tls: clientTLS) { port in
            [
                try await rawExchange(
                    port: port,
                    send: "POST / HTTP/1.1\r\nHost: podinfo.test:9898\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /admin HTTP/1.1\r\nHost: podinfo.test:9898\r\n\r\n"),
                try await rawExchange(
                    port: port,
                    send: "POST / HTTP/1.1\r\nHost: podinfo.test:9898\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde"),
            ]
        }
        for response in responses {
            #expect(response.hasPrefix("HTTP/1.1 400"), "\(response)")
        }
        #expect(peer.seen.received.isEmpty)
    }

    @Test func oversizedHeadersGet431() async throws {
        let peer = try await TestPeer.start(tls: try pki.tls(serverIdentity))
        defer { Task { await peer.close() } }
        let big = String(repeating: "a", count: 65 * 1024)
        let response = try await withOutboundProxy(picker: picker(peer: peer), tls: clientTLS) { port in
            try await rawExchange(port: port, send: "GET / HTTP/1.1\r\nHost: podinfo.test:9898\r\nX-Big: \(big)\r\n\r\n")
        }
        #expect(response.hasPrefix("HTTP/1.1 431"), "\(response.prefix(200))")
        #expect(response.contains("starling-error: headers-too-large"))
        #expect(peer.seen.received.isEmpty)
    }

    /// Slowloris: a head that never completes is cut off after the header timeout, also when it
    /// is the second request of a kept-alive connection; an idle connection between requests is
    /// governed by the (longer) idle timeout only.
    @Test func aHeadThatNeverCompletesIsCutOffAfterTheHeaderTimeout() async throws {
        let peer = try await TestPeer.start(tls: try pki.tls(serverIdentity))
        defer { Task { await peer.close() } }
        let configuration = OutboundProxy.Configuration(
            listenHost: "127.0.0.1", listenPort: 0, headerReadTimeout: .milliseconds(400), idleTimeout: .seconds(30),
            drainGracePeriod: .milliseconds(200))
        let (first, second, elapsed) = try await withOutboundProxy(
            configuration: configuration, picker: picker(peer: peer), tls: clientTLS
        ) { port in
            let started = ContinuousClock.now
            let first = try await rawExchange(
                port: port, send: "GET / HTTP/1.1\r\nHost: podinfo.test:9898\r\nX-Slow: a", timeout: .seconds(5))
            let firstElapsed = ContinuousClock.now - started
            // A complete request, then a second head that stalls.
            let second = try await rawExchange(
                port: port,
                send: "GET /ok HTTP/1.1\r\nHost: podinfo.test:9898\r\n\r\nGET /stall HTTP/1.1\r\nHost: podi",
                timeout: .seconds(5))
            return (first, second, firstElapsed)
        }
        #expect(first.isEmpty, "\(first.prefix(200))")
        #expect(elapsed >= Duration.milliseconds(350) && elapsed < Duration.seconds(3), "closed after \(elapsed)")
        #expect(second.hasPrefix("HTTP/1.1 200 OK"))
        #expect(second.components(separatedBy: "HTTP/1.1 ").count == 2)
        #expect(peer.seen.received.map { $0.headers.first(name: ":path") ?? "" } == ["/ok"])
    }

    @Test func anIdleKeptAliveConnectionOutlivesTheHeaderTimeout() async throws {
        let peer = try await TestPeer.start(tls: try pki.tls(serverIdentity))
        defer { Task { await peer.close() } }
        let configuration = OutboundProxy.Configuration(
            listenHost: "127.0.0.1", listenPort: 0, headerReadTimeout: .milliseconds(200),
            idleTimeout: .milliseconds(1500), drainGracePeriod: .milliseconds(200))
        let (response, elapsed) = try await withOutboundProxy(
            configuration: configuration, picker: picker(peer: peer), tls: clientTLS
        ) { port in
            let started = ContinuousClock.now
            let response = try await rawExchange(
                port: port, send: "GET / HTTP/1.1\r\nHost: podinfo.test:9898\r\n\r\n", timeout: .seconds(8))
            return (response, ContinuousClock.now - started)
        }
        #expect(response.hasPrefix("HTTP/1.1 200 OK"))
        // Closed by the idle timeout (1.5 s), not by the header timeout (0.2 s).
        #expect(elapsed >= Duration.milliseconds(1400) && elapsed < Duration.seconds(6), "closed after \(elapsed)")
    }

    /// A client that closed its sending side wants no more: the answer still comes, then the
    /// connection closes at once (it is not kept half-open until the idle timeout, which would hold
    /// a proxy's shutdown for its whole drain period).
    @Test func aClientThatHalfClosesGetsItsAnswerThenTheConnectionCloses() async throws {
        let peer = try await TestPeer.start(tls: try pki.tls(serverIdentity))
        defer { Task { await peer.close() } }
        let configuration = OutboundProxy.Configuration(
            listenHost: "127.0.0.1", listenPort: 0, idleTimeout: .seconds(30), drainGracePeriod: .milliseconds(200))
        let (response, elapsed) = try await withOutboundProxy(
            configuration: configuration, picker: picker(peer: peer), tls: clientTLS
        ) { port in
            let started = ContinuousClock.now
            let response = try await rawExchange(
                port: port, send: "GET / HTTP/1.1\r\nHost: podinfo.test:9898\r\n\r\n", halfClose: true, timeout: .seconds(8))
            return (response, ContinuousClock.now - started)
        }
        #expect(response.hasPrefix("HTTP/1.1 200 OK"), "\(response.prefix(200))")
        #expect(elapsed < Duration.seconds(2), "closed after \(elapsed), not right after the answer")
    }

    /// A client that leaves while its authority's first pick still waits for discovery: the pick
    /// that arrives afterwards is reported to the balancer as abandoned (not left in flight), and
    /// nothing is sent to the peer.
    @Test func aPickThatArrivesAfterTheClientLeftIsReportedAbandoned() async throws {
        let peer = try await TestPeer.start(tls: try pki.tls(serverIdentity))
        defer { Task { await peer.close() } }
        let slow = SlowPicker(inner: picker(peer: peer), delay: .milliseconds(300))
        try await withOutboundProxy(picker: slow, tls: clientTLS) { port in
            // A reset, not a FIN: a FIN is a half-close, and a half-closed client still gets its answer.
            let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .connect(host: "127.0.0.1", port: port).get()
            let options = try #require(channel as? any SocketOptionProvider)
            try await options.setSoLinger(linger(l_onoff: 1, l_linger: 0)).get()
            try await channel.writeAndFlush(ByteBuffer(string: "GET / HTTP/1.1\r\nHost: podinfo.test:9898\r\n\r\n"))
            try await Task.sleep(for: .milliseconds(50))
            try await channel.close()
            let deadline = ContinuousClock.now + .seconds(3)
            while slow.inner.outcomes.count == 0, ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(20))
            }
        }
        #expect(slow.inner.outcomes.count == 1)
        #expect(slow.inner.outcomes.failures == 0 && slow.inner.outcomes.successes == 0, "the pick was not reported abandoned")
        #expect(peer.recorder.received.isEmpty)
    }

    /// A shutdown closes a kept-alive client connection that is between requests at once (the
    /// drain event), instead of holding the proxy for its whole grace period.
    @Test func aShutdownClosesAnIdleKeptAliveConnectionAtOnce() async throws {
        let peer = try await TestPeer.start(tls: try pki.tls(serverIdentity))
        defer { Task { await peer.close() } }
        var logger = Logger(label: "outbound-test")
        logger.logLevel = .critical
        let proxy = OutboundProxy(
            configuration: OutboundProxy.Configuration(
                listenHost: "127.0.0.1", listenPort: 0, idleTimeout: .seconds(30), drainGracePeriod: .seconds(8)),
            runtime: OutboundProxy.Runtime(picker: picker(peer: peer), tls: clientTLS, logger: logger))
        let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
        let running = Task { try await proxy.run { continuation.yield($0) } }
        var iterator = ports.makeAsyncIterator()
        let port = try #require(await iterator.next())
        let collector = ByteCollector()
        let client = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(collector.handler()) }
            }
            .connect(host: "127.0.0.1", port: port).get()
        try await client.writeAndFlush(ByteBuffer(string: "GET / HTTP/1.1\r\nHost: podinfo.test:9898\r\n\r\n"))
        let answered = ContinuousClock.now + .seconds(5)
        while !collector.text.contains("echo:"), ContinuousClock.now < answered { try await Task.sleep(for: .milliseconds(10)) }
        #expect(collector.text.hasPrefix("HTTP/1.1 200 OK"), "\(collector.text.prefix(200))")
        let started = ContinuousClock.now
        running.cancel()
        _ = try? await running.value
        let stopped = ContinuousClock.now - started
        try? await client.closeFuture.get()
        #expect(stopped < .seconds(3), "the proxy stopped \(stopped) after the shutdown began, not at once")
        #expect(!client.isActive)
    }

    /// Nothing reached the refusing endpoint, so even a POST with a body goes to the next one.
    @Test func aRefusedConnectIsTriedAgainOnAnotherEndpoint() async throws {
        let peer = try await TestPeer.start(tls: try pki.tls(serverIdentity))
        defer { Task { await peer.close() } }
        let refusing = Endpoint(host: "127.0.0.1", port: try closedPort(), identity: serverIdentity)
        let picker = FixedPicker(
            endpoints: ["podinfo.test:9898": refusing],
            fallbacks: ["podinfo.test:9898": [Endpoint(host: "127.0.0.1", port: peer.port, identity: serverIdentity)]])
        let response = try await withOutboundProxy(picker: picker, tls: clientTLS) { port in
            try await rawExchange(
                port: port,
                send: "POST /submit HTTP/1.1\r\nHost: podinfo.test:9898\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello")
        }
        #expect(response.hasPrefix("HTTP/1.1 200 OK\r\n"))
        #expect(response.contains("echo:hello"))
        #expect(picker.outcomes.failures >= 1)
        #expect(picker.outcomes.successes == 1)
    }

    /// A lone endpoint that refuses and listens again within the backoff (a process restarting,
    /// a gateway whose controller restarts) serves the request: no 502 for the gap.
    @Test func aLoneEndpointBackWithinTheBackoffServesTheRequest() async throws {
        let port = try closedPort()
        let picker = FixedPicker(endpoints: ["podinfo.test:9898": Endpoint(host: "127.0.0.1", port: port, identity: serverIdentity)])
        let tls = try pki.tls(serverIdentity)
        // The peer listens once the first connect was refused (the proxy may start slowly on a
        // loaded machine), well within the 100 ms backoff.
        let late = Task {
            let end = ContinuousClock.now + .seconds(5)
            while picker.outcomes.failures == 0, ContinuousClock.now < end { try await Task.sleep(for: .milliseconds(2)) }
            return try await TestPeer.start(tls: tls, port: port)
        }
        let response = try await withOutboundProxy(picker: picker, tls: clientTLS) { proxyPort in
            try await rawExchange(port: proxyPort, send: "GET / HTTP/1.1\r\nHost: podinfo.test:9898\r\nConnection: close\r\n\r\n")
        }
        let peer = try await late.value
        await peer.close()
        #expect(response.hasPrefix("HTTP/1.1 200 OK\r\n"), "\(response)")
        #expect(picker.outcomes.failures >= 1)
        #expect(picker.outcomes.successes == 1)
    }

    @Test func whenEveryEndpointRefusesTheConnectFailureIsAnswered() async throws {
        let picker = FixedPicker(
            endpoints: ["podinfo.test:9898": Endpoint(host: "127.0.0.1", port: try closedPort(), identity: serverIdentity)],
            fallbacks: ["podinfo.test:9898": [Endpoint(host: "127.0.0.1", port: try closedPort(), identity: serverIdentity)]])
        let response = try await withOutboundProxy(picker: picker, tls: clientTLS) { port in
            try await rawExchange(port: port, send: "GET / HTTP/1.1\r\nHost: podinfo.test:9898\r\nConnection: close\r\n\r\n")
        }
        #expect(response.hasPrefix("HTTP/1.1 502 "))
        #expect(response.lowercased().contains("starling-error: connect-failed"))
        // Both endpoints, then (none left) a 100 ms backoff and both again: three attempts and
        // one more for the backoff taken.
        #expect(picker.outcomes.failures == ConnectAttempts.maximum + 1)
    }

    @Test func unknownServiceGets503WithTheErrorHeader() async throws {
        let peer = try await TestPeer.start(tls: try pki.tls(serverIdentity))
        defer { Task { await peer.close() } }
        let response = try await withOutboundProxy(picker: picker(peer: peer), tls: clientTLS) { port in
            try await rawExchange(port: port, send: "GET http://nothing.here:80/ HTTP/1.1\r\nHost: nothing.here\r\nConnection: close\r\n\r\n")
        }
        #expect(response.hasPrefix("HTTP/1.1 503"))
        #expect(response.contains("starling-error: unknown-service"))
    }

    @Test func peerWithAnotherIdentityGets502PeerIdentityRejected() async throws {
        let impostor = try await TestPeer.start(tls: try pki.tls(MeshIdentity(namespace: "evil", serviceAccount: "impostor")))
        defer { Task { await impostor.close() } }
        let response = try await withOutboundProxy(picker: picker(peer: impostor), tls: clientTLS) { port in
            try await rawExchange(port: port, send: "GET / HTTP/1.1\r\nHost: podinfo.test:9898\r\nConnection: close\r\n\r\n")
        }
        #expect(response.hasPrefix("HTTP/1.1 502"), "\(response)")
        #expect(response.contains("starling-error: peer-identity-rejected"))
        #expect(impostor.seen.received.isEmpty)
    }

    @Test func slowPeerGets504Timeout() async throws {
        // The timeout leaves room for a handshake on a loaded machine; the peer answers far later.
        let peer = try await TestPeer.start(tls: try pki.tls(serverIdentity), delay: .seconds(8))
        defer { Task { await peer.close() } }
        let started = ContinuousClock.now
        let response = try await withOutboundProxy(
            picker: picker(peer: peer, timeout: .milliseconds(1500)), tls: clientTLS
        ) { port in
            try await rawExchange(port: port, send: "GET / HTTP/1.1\r\nHost: podinfo.test:9898\r\nConnection: close\r\n\r\n")
        }
        #expect(response.hasPrefix("HTTP/1.1 504"), "\(response)")
        #expect(response.contains("starling-error: timeout"))
        #expect(ContinuousClock.now - started < .seconds(7))
    }

    /// An upload that takes longer than the pick's timeout: the response head is awaited from
    /// the end of the request, so the answer still comes.
    @Test func anUploadMayTakeLongerThanTheResponseTimeout() async throws {
        let peer = try await TestPeer.start(tls: try pki.tls(serverIdentity))
        defer { Task { await peer.close() } }
        let response = try await withOutboundProxy(
            picker: picker(peer: peer, timeout: .milliseconds(600)), tls: clientTLS
        ) { port in
            let collector = ByteCollector()
            let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(collector.handler()) }
                }
                .connect(host: "127.0.0.1", port: port).get()
            try await channel.writeAndFlush(
                ByteBuffer(string: "POST /upload HTTP/1.1\r\nHost: podinfo.test:9898\r\nContent-Length: 8\r\nConnection: close\r\n\r\n"))
            // Four parts 400 ms apart: 1.6 s of upload against a 600 ms timeout.
            for index in 1...4 {
                try await Task.sleep(for: .milliseconds(400))
                try await channel.writeAndFlush(ByteBuffer(string: "m\(index)"))
            }
            let deadline = channel.eventLoop.scheduleTask(in: .seconds(5)) { channel.close(promise: nil) }
            try? await channel.closeFuture.get()
            deadline.cancel()
            return collector.text
        }
        #expect(response.hasPrefix("HTTP/1.1 200"), "\(response)")
        #expect(response.contains("echo:m1m2m3m4"), "\(response)")
    }

    @Test func malformedRequestLineGets400() async throws {
        let peer = try await TestPeer.start(tls: try pki.tls(serverIdentity))
        defer { Task { await peer.close() } }
        let response = try await withOutboundProxy(picker: picker(peer: peer), tls: clientTLS) { port in
            try await rawExchange(port: port, send: "GET /\u{01}bad HTTP/1.1 junk\r\n\r\n")
        }
        #expect(response.hasPrefix("HTTP/1.1 400"), "\(response)")
    }

    @Test func realCurlThroughTheForwardProxy() async throws {
        guard let curl = ["/usr/bin/curl", "/bin/curl", "/usr/local/bin/curl"].first(where: {
            FileManager.default.isExecutableFile(atPath: $0)
        }) else {
            print("skipping: curl is not installed")
            return
        }
        let peer = try await TestPeer.start(tls: try pki.tls(serverIdentity))
        defer { Task { await peer.close() } }
        let output = try await withOutboundProxy(picker: picker(peer: peer), tls: clientTLS) { port in
            try await Task.detached {
                let process = Process()
                process.executableURL = URL(fileURLWithPath: curl)
                process.arguments = ["-sS", "-i", "--max-time", "5", "-x", "http://127.0.0.1:\(port)", "http://podinfo.test:9898/"]
                let pipe = Pipe()
                process.standardOutput = pipe
                process.standardError = pipe
                try process.run()
                let data = pipe.fileHandleForReading.readDataToEndOfFile()
                process.waitUntilExit()
                return String(decoding: data, as: UTF8.self)
            }.value
        }
        #expect(output.hasPrefix("HTTP/1.1 200"), "\(output)")
        #expect(output.contains("echo:"))
        #expect(peer.seen.received.first?.headers.first(name: "starling-orig-proto") == "HTTP/1.1")
    }
}

/// A picker whose answers come only after `delay` (discovery's first answer for an authority).
struct SlowPicker: EndpointPicker {
    var inner: FixedPicker
    var delay: Duration

    func pickNow(_ authority: String, avoiding: [Endpoint]) -> Result<Pick, ProxyError>? { nil }

    func pick(_ authority: String, avoiding: [Endpoint]) async throws(ProxyError) -> Pick {
        try? await Task.sleep(for: delay)
        return try await inner.pick(authority, avoiding: avoiding)
    }
}
