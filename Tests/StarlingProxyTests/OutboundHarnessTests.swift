// Shared fixtures of the outbound tests (no tests of its own): a test PKI issuing real mesh
// certificates, a fixed picker, an in-test peer proxy (h2 over mTLS that echoes, and an opaque
// echo behind the transport header), a running OutboundProxy, and small raw clients.
import Foundation
import Logging
import NIOCore
import NIOHPACK
import NIOHTTP2
import NIOPosix
import NIOSSL
import NIOTLS
import StarlingCore
import StarlingIdentity
import StarlingProxy
import StarlingTLS
import Synchronization
import Testing
import X509

struct OutboundTestError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// A root and issuer, and mesh TLS material for any identity they certify.
struct OutboundTestPKI: Sendable {
    let root: Certificate
    let issuer: Issuer

    init() throws {
        let root = try CertificateFactory.create(
            CertificateFactory.Request(subject: "identity.starling.cluster.local", profile: .rootCA))
        let intermediate = try CertificateFactory.create(
            CertificateFactory.Request(
                subject: "identity.starling.cluster.local", profile: .intermediateCA,
                issuer: (root.certificate, root.key)))
        self.root = root.certificate
        self.issuer = try Issuer(
            certificate: intermediate.certificate, key: intermediate.key,
            trust: TrustBundle(anchors: [root.certificate]), trustDomain: "cluster.local")
    }

    func tls(_ identity: MeshIdentity) throws -> MeshTLS {
        let key = WorkloadKey()
        let chain = try issuer.certify(csrDER: key.csr(for: identity).der, granted: identity)
        return try MeshTLS(chain: chain, key: key.privateKey, trustAnchors: [root])
    }
}

/// Answers every authority in `endpoints` with its fixed endpoint; anything else is unknown.
struct FixedPicker: EndpointPicker {
    var endpoints: [String: Endpoint]
    /// Further endpoints of an authority, chosen in order once a request avoids the ones before.
    var fallbacks: [String: [Endpoint]] = [:]
    var backend: String = "podinfo.test.svc.cluster.local:9898"
    var timeout: Duration = .seconds(5)
    /// Timeouts of particular authorities (others get `timeout`).
    var timeouts: [String: Duration] = [:]
    /// Answers `pickNow` too (as `MeshPicker` does once discovery has answered), so the channel
    /// handlers route without a task; otherwise only the async `pick`.
    var answersNow = false
    let outcomes = OutcomeLog()

    func pickNow(_ authority: String, avoiding: [Endpoint]) -> Result<Pick, ProxyError>? {
        guard answersNow else { return nil }
        do throws(ProxyError) {
            return .success(try choose(authority, avoiding: avoiding))
        } catch {
            return .failure(error)
        }
    }

    func pick(_ authority: String, avoiding: [Endpoint]) async throws(ProxyError) -> Pick {
        try choose(authority, avoiding: avoiding)
    }

    private func choose(_ authority: String, avoiding: [Endpoint]) throws(ProxyError) -> Pick {
        guard let first = endpoints[authority] else {
            throw ProxyError(.unknownService, "\(authority) is not a known service")
        }
        guard let endpoint = ([first] + fallbacks[authority, default: []]).first(where: { !avoiding.contains($0) }) else {
            throw ProxyError(.noEndpoints, "\(authority) has no endpoints left to try")
        }
        let outcomes = self.outcomes
        return Pick(
            endpoint: endpoint, backend: backend, timeout: timeouts[authority] ?? timeout, mayRetry: { true },
            complete: { outcomes.append($0) })
    }
}

final class OutcomeLog: Sendable {
    private let items = Mutex<[PickOutcome]>([])
    func append(_ outcome: PickOutcome) { items.withLock { $0.append(outcome) } }
    var count: Int { items.withLock { $0.count } }
    var failures: Int {
        items.withLock { $0.count { if case .failure = $0 { true } else { false } } }
    }
    var successes: Int {
        items.withLock { $0.count { if case .success = $0 { true } else { false } } }
    }
}

/// What the test peer saw.
final class PeerRecorder: Sendable {
    struct Request: Sendable {
        var headers: HPACKHeaders
        var body: String
        var trailers: HPACKHeaders?
    }

    private let requests = Mutex<[Request]>([])
    private let authorities = Mutex<[String]>([])
    func record(_ request: Request) { requests.withLock { $0.append(request) } }
    func recordOpaque(_ authority: String) { authorities.withLock { $0.append(authority) } }
    var received: [Request] { requests.withLock { $0 } }
    var opaqueAuthorities: [String] { authorities.withLock { $0 } }
}

/// A stand-in for the inbound proxy: mTLS with `tls`, ALPN `h2` serving an echo (status 200,
/// body `echo:<request body>` without content-length, trailer `grpc-status: 0` when the request
/// asked for trailers, after `delay`), or ALPN `starling-opaque` echoing bytes after the header.
final class TestPeer: Sendable {
    let channel: any Channel
    let recorder = PeerRecorder()
    var port: Int { channel.localAddress?.port ?? 0 }

    private init(channel: any Channel) { self.channel = channel }

    /// Listens on `port` (0: any free port).
    static func start(tls: MeshTLS, delay: Duration = .zero, port: Int = 0) async throws -> TestPeer {
        let recorder = PeerRecorder()
        let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    try sync.addHandler(try tls.makeServerHandler())
                    try sync.addHandler(TestPeerALPNHandler(recorder: recorder, delay: delay))
                }
            }
            .bind(host: "127.0.0.1", port: port).get()
        let peer = TestPeer(channel: channel)
        peer.recorderBox.withLock { $0 = recorder }
        return peer
    }

    private let recorderBox = Mutex<PeerRecorder?>(nil)
    var seen: PeerRecorder { recorderBox.withLock { $0! } }

    func close() async { try? await channel.close() }
}

/// Chooses the peer's protocol from the negotiated ALPN.
final class TestPeerALPNHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    let recorder: PeerRecorder
    let delay: Duration
    private var buffered: [NIOAny] = []
    private var decided = false

    init(recorder: PeerRecorder, delay: Duration) {
        self.recorder = recorder
        self.delay = delay
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if decided { context.fireChannelRead(data) } else { buffered.append(data) }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard case .handshakeCompleted(let alpn)? = event as? TLSUserEvent else {
            context.fireUserInboundEventTriggered(event)
            return
        }
        decided = true
        let channel = context.channel
        do {
            if alpn == "h2" {
                let recorder = self.recorder
                let delay = self.delay
                _ = try channel.pipeline.syncOperations.configureHTTP2Pipeline(
                    mode: .server, connectionConfiguration: .init(), streamConfiguration: .init()
                ) { stream in
                    stream.eventLoop.makeCompletedFuture {
                        try stream.pipeline.syncOperations.addHandler(TestPeerEchoStreamHandler(recorder: recorder, delay: delay))
                    }
                }
            } else {
                try channel.pipeline.syncOperations.addHandler(TestPeerOpaqueEchoHandler(recorder: recorder))
            }
        } catch {
            context.close(promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
        for data in buffered { context.fireChannelRead(data) }
        buffered = []
        context.fireChannelReadComplete()
    }
}

/// Echo stream of the test peer (HTTP/2 frames).
final class TestPeerEchoStreamHandler: ChannelInboundHandler {
    typealias InboundIn = HTTP2Frame.FramePayload
    typealias OutboundOut = HTTP2Frame.FramePayload
    let recorder: PeerRecorder
    let delay: Duration
    private var headers = HPACKHeaders()
    private var body = ""

    init(recorder: PeerRecorder, delay: Duration) {
        self.recorder = recorder
        self.delay = delay
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .headers(let frame):
            if headers.isEmpty {
                headers = frame.headers
                if frame.endStream { respond(context: context, trailers: nil) }
            } else {
                respond(context: context, trailers: frame.headers)
            }
        case .data(let frame):
            if case .byteBuffer(let buffer) = frame.data { body += String(buffer: buffer) }
            if frame.endStream { respond(context: context, trailers: nil) }
        default:
            break
        }
    }

    private func respond(context: ChannelHandlerContext, trailers: HPACKHeaders?) {
        recorder.record(PeerRecorder.Request(headers: headers, body: body, trailers: trailers))
        let wantsTrailers = headers["te"].contains("trailers")
        // `x-test-body-on-head` makes a misbehaving peer that sends a body with a HEAD response.
        let isHead = headers.first(name: ":method") == "HEAD" && !headers.contains(name: "x-test-body-on-head")
        let body = "echo:\(self.body)"
        let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
        let (seconds, attos) = delay.components
        let wait = TimeAmount.nanoseconds(seconds * 1_000_000_000 + attos / 1_000_000_000)
        context.eventLoop.scheduleTask(in: wait) {
            let context = loopBound.value
            context.write(Self.wrapOutboundOut(.headers(.init(headers: [":status": "200", "content-type": "text/plain"]))), promise: nil)
            if isHead {
                // A HEAD response has no body (RFC 9110 §9.3.2); the headers end the stream.
                context.write(Self.wrapOutboundOut(.data(.init(data: .byteBuffer(ByteBuffer()), endStream: true))), promise: nil)
                context.flush()
                return
            }
            context.write(Self.wrapOutboundOut(.data(.init(data: .byteBuffer(ByteBuffer(string: body)), endStream: !wantsTrailers))), promise: nil)
            if wantsTrailers {
                context.write(Self.wrapOutboundOut(.headers(.init(headers: ["grpc-status": "0"], endStream: true))), promise: nil)
            }
            context.flush()
        }
    }
}

/// Opaque side of the test peer: records the transport header, then echoes.
final class TestPeerOpaqueEchoHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    let recorder: PeerRecorder
    private var pending = ByteBuffer()
    private var headerRead = false

    init(recorder: PeerRecorder) { self.recorder = recorder }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        if headerRead {
            context.writeAndFlush(wrapOutboundOut(bytes), promise: nil)
            return
        }
        pending.writeBuffer(&bytes)
        do {
            guard let header = try OpaqueTransportHeader.decode(from: &pending) else { return }
            recorder.recordOpaque(header.authority)
            headerRead = true
            if pending.readableBytes > 0 { context.writeAndFlush(wrapOutboundOut(pending), promise: nil) }
        } catch {
            context.close(promise: nil)
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .inputClosed? = event as? ChannelEvent { context.close(mode: .output, promise: nil) }
        context.fireUserInboundEventTriggered(event)
    }
}

/// Runs an outbound proxy for the duration of `body`, which gets its listener port.
func withOutboundProxy<T: Sendable>(
    configuration: OutboundProxy.Configuration = OutboundProxy.Configuration(
        listenHost: "127.0.0.1", listenPort: 0, drainGracePeriod: .milliseconds(200)),
    picker: some EndpointPicker, tls: any MeshTLSSource,
    _ body: @Sendable (Int) async throws -> T
) async throws -> T {
    var logger = Logger(label: "outbound-test")
    logger.logLevel = ProcessInfo.processInfo.environment["OUTBOUND_TEST_LOG"].flatMap(Logger.Level.init(rawValue:)) ?? .critical
    let proxy = OutboundProxy(
        configuration: configuration, runtime: OutboundProxy.Runtime(picker: picker, tls: tls, logger: logger))
    let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
    return try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask {
            try await proxy.run { continuation.yield($0) }
            return nil
        }
        var iterator = ports.makeAsyncIterator()
        guard let port = await iterator.next() else { throw OutboundTestError("the proxy did not bind") }
        let result = try await body(port)
        group.cancelAll()
        while try await group.next() != nil {}
        return result
    }
}

/// Sends raw bytes to 127.0.0.1:`port` and returns everything received until the server closes
/// (or `timeout`).
///
/// `halfClose`: shut down the sending side once `awaitBeforeHalfClose` bytes came back (a FIN
/// sent while the peer still verifies our certificate aborts its TLS handshake in NIOSSL).
func rawExchange(
    port: Int, send: String, halfClose: Bool = false, awaitBeforeHalfClose: Int = 0, timeout: Duration = .seconds(5)
) async throws -> String {
    let collector = ByteCollector()
    let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
        .channelOption(.allowRemoteHalfClosure, value: true)
        .channelInitializer { channel in
            channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(collector.handler()) }
        }
        .connect(host: "127.0.0.1", port: port).get()
    try await channel.writeAndFlush(ByteBuffer(string: send))
    if halfClose {
        let deadline = ContinuousClock.now + timeout
        while collector.count < awaitBeforeHalfClose, ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(5))
        }
        try await channel.close(mode: .output)
    }
    let closed = channel.closeFuture
    let deadline = channel.eventLoop.scheduleTask(in: TimeAmount.nanoseconds(Int64(timeout.components.seconds) * 1_000_000_000)) {
        channel.close(promise: nil)
    }
    try? await closed.get()
    deadline.cancel()
    return collector.text
}

final class ByteCollector: Sendable {
    private let bytes = Mutex(ByteBuffer())
    var text: String { bytes.withLock { String(buffer: $0) } }
    var count: Int { bytes.withLock { $0.readableBytes } }
    func append(_ buffer: ByteBuffer) {
        var buffer = buffer
        bytes.withLock { $0.writeBuffer(&buffer) }
    }
    func handler() -> Handler { Handler(collector: self) }

    final class Handler: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        let collector: ByteCollector
        init(collector: ByteCollector) { self.collector = collector }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) { collector.append(unwrapInboundIn(data)) }
        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            if case .inputClosed? = event as? ChannelEvent { context.close(promise: nil) }
        }
    }
}

let clientIdentity = MeshIdentity(namespace: "test", serviceAccount: "client")
let serverIdentity = MeshIdentity(namespace: "test", serviceAccount: "podinfo")

/// A loopback port nothing listens on (bound once to get a free one, then closed): connects to it
/// are refused.
func closedPort() throws -> Int {
    let channel = try ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
        .bind(host: "127.0.0.1", port: 0).wait()
    let port = channel.localAddress?.port ?? 0
    try channel.close().wait()
    return port
}
