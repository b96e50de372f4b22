// Shared fixtures of the inbound tests (no tests of its own): a test PKI (mesh roots, a foreign
// root, expired leaves), a running InboundProxy, in-test applications (HTTP/1.1 echo, h2c with
// gRPC-style trailers, TCP echo), an mTLS HTTP/2 test client, raw clients and a log capture.
@preconcurrency import Crypto
import Foundation
import Logging
import NIOCore
import NIOHPACK
import NIOHTTP1
import NIOHTTP2
import NIOPosix
import NIOSSL
import StarlingCore
import StarlingIdentity
import StarlingProxy
import StarlingTLS
import Synchronization
import Testing
import X509

struct InboundTestError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

// MARK: - PKI

/// A root and issuer that certify workload identities.
struct InboundTestPKI: Sendable {
    let root: Certificate
    let issuer: Issuer

    init(subject: String = "identity.starling.cluster.local") throws {
        let root = try CertificateFactory.create(CertificateFactory.Request(subject: subject, profile: .rootCA))
        let intermediate = try CertificateFactory.create(
            CertificateFactory.Request(subject: subject, profile: .intermediateCA, issuer: (root.certificate, root.key)))
        self.root = root.certificate
        self.issuer = try Issuer(
            certificate: intermediate.certificate, key: intermediate.key,
            trust: TrustBundle(anchors: [root.certificate]), trustDomain: "cluster.local")
    }

    /// A leaf chain and key for `identity`; `now` in the past makes an already expired leaf.
    func workload(_ identity: MeshIdentity, now: Date = Date(), lifetime: TimeInterval = 3600) throws
        -> (chain: [Certificate], key: WorkloadKey)
    {
        let key = WorkloadKey()
        let chain = try issuer.certify(csrDER: key.csr(for: identity).der, granted: identity, lifetime: lifetime, now: now)
        return (chain, key)
    }

    func tls(_ identity: MeshIdentity) throws -> MeshTLS {
        let (chain, key) = try workload(identity)
        return try MeshTLS(chain: chain, key: key.privateKey, trustAnchors: [root])
    }

    var rootPEM: String { PEMFile.pem(root) }
}

extension MeshIdentity {
    static let inboundServer = MeshIdentity(namespace: "test", serviceAccount: "podinfo")
    static let inboundClient = MeshIdentity(namespace: "test", serviceAccount: "frontend")
}

/// A client TLS context presenting `chain`/`key` (or no certificate) and trusting `trustRoot`.
func inboundClientContext(
    chain: [Certificate]?, key: WorkloadKey?, trustRoot: Certificate, alpn: [String] = ["h2"]
) throws -> NIOSSLContext {
    var configuration = TLSConfiguration.makeClientConfiguration()
    configuration.minimumTLSVersion = .tlsv13
    configuration.maximumTLSVersion = .tlsv13
    configuration.certificateVerification = .noHostnameVerification
    configuration.trustRoots = .certificates([try NIOSSLCertificate(bytes: Array(PEMFile.pem(trustRoot).utf8), format: .pem)])
    if let chain, let key {
        configuration.certificateChain = try chain.map {
            .certificate(try NIOSSLCertificate(bytes: Array(PEMFile.pem($0).utf8), format: .pem))
        }
        configuration.privateKey = .privateKey(try NIOSSLPrivateKey(bytes: Array(key.pem.utf8), format: .pem))
    }
    configuration.applicationProtocols = alpn
    return try NIOSSLContext(configuration: configuration)
}

// MARK: - Logs

/// Collects log lines for assertions.
final class InboundLogCapture: Sendable {
    struct Entry: Sendable {
        var level: Logger.Level
        var message: String
        var metadata: [String: String]
    }

    private let entries = Mutex<[Entry]>([])

    var logger: Logger {
        var logger = Logger(label: "starling.inbound.test") { _ in InboundCapturingLogHandler(capture: self) }
        logger.logLevel = .debug
        return logger
    }

    func append(_ entry: Entry) { entries.withLock { $0.append(entry) } }

    var all: [Entry] { entries.withLock { $0 } }

    /// Waits (up to `timeout`) until a line matching `predicate` was logged; returns the matches.
    func waitFor(
        timeout: Duration = .seconds(3), _ predicate: @Sendable (Entry) -> Bool
    ) async throws -> [Entry] {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            let found = all.filter(predicate)
            if !found.isEmpty { return found }
            try await Task.sleep(for: .milliseconds(20))
        }
        return []
    }
}

struct InboundCapturingLogHandler: LogHandler {
    let capture: InboundLogCapture
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .debug

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var merged = self.metadata
        if let metadata = event.metadata { merged.merge(metadata) { $1 } }
        capture.append(.init(level: event.level, message: "\(event.message)", metadata: merged.mapValues { "\($0)" }))
    }
}

// MARK: - Running the proxy

/// Runs an InboundProxy on a free loopback port for the duration of `body`, then cancels it and
/// waits for it to drain.
func withInboundProxy<T: Sendable>(
    configuration: InboundProxy.Configuration,
    tls: any MeshTLSSource,
    logger: Logger = Logger(label: "starling.inbound.test"),
    authorizer: InboundAuthorizer = .allowAll(),
    _ body: @Sendable (Int) async throws -> T
) async throws -> T {
    var configuration = configuration
    configuration.listenHost = "127.0.0.1"
    configuration.listenPort = 0
    configuration.drainTimeout = .seconds(1)
    let proxy = InboundProxy(configuration: configuration, tls: tls, logger: logger, authorizer: authorizer)
    let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
    return try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask {
            defer { continuation.finish() }
            try await proxy.run { port in continuation.yield(port) }
        }
        var iterator = ports.makeAsyncIterator()
        guard let port = await iterator.next() else {
            try await group.waitForAll()
            throw InboundTestError("the inbound proxy stopped before binding")
        }
        do {
            let result = try await body(port)
            group.cancelAll()
            try await group.waitForAll()
            return result
        } catch {
            group.cancelAll()
            try? await group.waitForAll()
            throw error
        }
    }
}

/// A loopback port nothing listens on.
func inboundUnusedPort() async throws -> Int {
    let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
        .bind(host: "127.0.0.1", port: 0).get()
    let port = channel.localAddress?.port ?? 1
    try await channel.close()
    return port
}

// MARK: - Applications

/// A running in-test server; `close()` when done.
struct InboundTestServer: Sendable {
    let channel: any Channel
    /// The TCP connections the server accepted so far.
    var accepted = SharedCount()
    var port: Int { channel.localAddress?.port ?? 0 }
    func close() async { try? await channel.close() }
}

/// A counter shared between a test and its servers.
final class SharedCount: Sendable {
    private let value = Atomic<Int>(0)
    var count: Int { value.load(ordering: .relaxed) }
    func increment() { value.add(1, ordering: .relaxed) }
}

/// An HTTP/1.1 application that answers every request with 200, the request body echoed, and
/// what it saw of the request in `echo-*` headers.
func startInboundHTTP1App() async throws -> InboundTestServer {
    try await startHTTP1TestApp { [InboundHTTP1EchoHandler()] }
}

/// An HTTP/1.1 application on 127.0.0.1: NIO's server pipeline, then the handlers `handlers`
/// makes for each connection (on its event loop). Counts the connections it accepts.
func startHTTP1TestApp(_ handlers: @escaping @Sendable () -> [any ChannelHandler]) async throws -> InboundTestServer {
    let accepted = SharedCount()
    let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
        .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
        .childChannelInitializer { channel in
            accepted.increment()
            return channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                try channel.pipeline.syncOperations.addHandlers(handlers())
            }
        }
        .bind(host: "127.0.0.1", port: 0).get()
    return InboundTestServer(channel: channel, accepted: accepted)
}

final class InboundHTTP1EchoHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private var head: HTTPRequestHead?
    private var body = ByteBuffer()

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
            body.clear()
        case .body(var chunk):
            body.writeBuffer(&chunk)
        case .end:
            guard let head else { return }
            func seen(_ name: String) -> String {
                let values = head.headers[name]
                return values.isEmpty ? "none" : values.joined(separator: ",")
            }
            var headers = HTTPHeaders()
            headers.add(name: "echo-client-id", value: seen("starling-client-id"))
            headers.add(name: "echo-target", value: seen("starling-target"))
            headers.add(name: "echo-orig-proto", value: seen("starling-orig-proto"))
            headers.add(name: "echo-host", value: seen("host"))
            headers.add(name: "echo-version", value: "\(head.version)")
            headers.add(name: "echo-path", value: head.uri)
            headers.add(name: "echo-method", value: head.method.rawValue)
            headers.add(name: "content-length", value: String(body.readableBytes))
            let response = HTTPResponseHead(version: .http1_1, status: .ok, headers: headers)
            let body = self.body
            self.head = nil
            // `echo-delay-ms` makes a slow application.
            let delay = head.headers.first(name: "echo-delay-ms").flatMap(Int64.init) ?? 0
            let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            context.eventLoop.scheduleTask(in: .milliseconds(delay)) {
                let (handler, context) = loopBound.value
                context.write(handler.wrapOutboundOut(.head(response)), promise: nil)
                context.write(handler.wrapOutboundOut(.body(.byteBuffer(body))), promise: nil)
                context.writeAndFlush(handler.wrapOutboundOut(.end(nil)), promise: nil)
            }
        }
    }
}

/// An h2c (prior knowledge) application that answers like a gRPC server: 200 with
/// `content-type: application/grpc`, the request body echoed, then `grpc-status: 0` trailers.
func startInboundH2CApp() async throws -> InboundTestServer {
    let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
        .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
        .childChannelInitializer { channel in
            channel.eventLoop.makeCompletedFuture {
                _ = try channel.pipeline.syncOperations.configureHTTP2Pipeline(
                    mode: .server, connectionConfiguration: .init(), streamConfiguration: .init()
                ) { stream in
                    stream.eventLoop.makeCompletedFuture {
                        try stream.pipeline.syncOperations.addHandler(InboundGRPCLikeStreamHandler())
                    }
                }
            }
        }
        .bind(host: "127.0.0.1", port: 0).get()
    return InboundTestServer(channel: channel)
}

final class InboundGRPCLikeStreamHandler: ChannelInboundHandler {
    typealias InboundIn = HTTP2Frame.FramePayload
    typealias OutboundOut = HTTP2Frame.FramePayload

    private var requestHeaders = HPACKHeaders()
    private var body = ByteBuffer()

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let payload = unwrapInboundIn(data)
        var ended = false
        switch payload {
        case .headers(let headers):
            if requestHeaders.isEmpty { requestHeaders = headers.headers }
            ended = headers.endStream
        case .data(let data):
            if case .byteBuffer(var buffer) = data.data { body.writeBuffer(&buffer) }
            ended = data.endStream
        default:
            break
        }
        guard ended else { return }
        func seen(_ name: String) -> String {
            let values = requestHeaders[name]
            return values.isEmpty ? "none" : values.joined(separator: ",")
        }
        if requestHeaders.first(name: ":path")?.hasSuffix("/Missing") ?? false {
            // A trailers-only response, as gRPC servers send an error: one HEADERS frame.
            let only: HPACKHeaders = [
                ":status": "200", "content-type": "application/grpc", "grpc-status": "5", "grpc-message": "not here",
            ]
            context.writeAndFlush(wrapOutboundOut(.headers(.init(headers: only, endStream: true))), promise: nil)
            return
        }
        let head: HPACKHeaders = [
            ":status": "200", "content-type": "application/grpc", "echo-client-id": seen("starling-client-id"),
            "echo-target": seen("starling-target"), "echo-orig-proto": seen("starling-orig-proto"),
        ]
        context.write(wrapOutboundOut(.headers(.init(headers: head))), promise: nil)
        context.write(wrapOutboundOut(.data(.init(data: .byteBuffer(body)))), promise: nil)
        let trailers: HPACKHeaders = ["grpc-status": "0", "grpc-message": "ok"]
        context.writeAndFlush(wrapOutboundOut(.headers(.init(headers: trailers, endStream: true))), promise: nil)
    }
}

/// A TCP application that echoes bytes and closes once the client has half-closed.
func startInboundTCPEchoApp() async throws -> InboundTestServer {
    let channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
        .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
        .childChannelOption(ChannelOptions.allowRemoteHalfClosure, value: true)
        .childChannelInitializer { channel in
            channel.eventLoop.makeCompletedFuture {
                try channel.pipeline.syncOperations.addHandler(InboundTCPEchoHandler())
            }
        }
        .bind(host: "127.0.0.1", port: 0).get()
    return InboundTestServer(channel: channel)
}

final class InboundTCPEchoHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        context.writeAndFlush(data, promise: nil)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case ChannelEvent.inputClosed = event {
            context.close(promise: nil)
        }
    }
}

// MARK: - Clients

/// A response as the mTLS test client saw it.
struct InboundTestResponse: Sendable {
    var headers: HPACKHeaders
    var body: String
    var trailers: HPACKHeaders?

    var status: Int? { headers.first(name: ":status").flatMap(Int.init) }
    func header(_ name: String) -> String? { headers.first(name: name) }
}

/// An HTTP/2 client over mTLS to the inbound proxy.
struct InboundTestClient: Sendable {
    let channel: any Channel
    let multiplexer: NIOHTTP2Handler.StreamMultiplexer

    /// Connects with `makeTLS` building the client TLS handler.
    static func connect(
        port: Int, _ makeTLS: @escaping @Sendable () throws -> NIOSSLClientHandler
    ) async throws -> InboundTestClient {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(try makeTLS())
                    _ = try channel.pipeline.syncOperations.configureHTTP2Pipeline(
                        mode: .client, connectionConfiguration: .init(), streamConfiguration: .init(),
                        inboundStreamInitializer: { $0.close() })
                }
            }
            .connect(host: "127.0.0.1", port: port).get()
        let multiplexer = try await channel.eventLoop.submit {
            try channel.pipeline.syncOperations.handler(type: NIOHTTP2Handler.self).syncMultiplexer()
        }.get()
        return InboundTestClient(channel: channel, multiplexer: multiplexer)
    }

    /// Sends one request and waits (bounded) for the whole response.
    func send(
        method: String = "GET", path: String = "/", authority: String, headers extra: [(String, String)] = [],
        body: String? = nil, timeout: Duration = .seconds(5)
    ) async throws -> InboundTestResponse {
        let promise = channel.eventLoop.makePromise(of: InboundTestResponse.self)
        let stream: any Channel
        do {
            stream = try await multiplexer.createStreamChannel { stream in
                stream.eventLoop.makeCompletedFuture {
                    try stream.pipeline.syncOperations.addHandler(InboundResponseCollector(promise: promise))
                }
            }.get()
        } catch {
            // A refused connection fails stream creation: the promise must not leak.
            promise.fail(error)
            throw error
        }
        var headers: HPACKHeaders = [":method": method, ":path": path, ":scheme": "https", ":authority": authority]
        for (name, value) in extra { headers.add(name: name, value: value) }
        if let body {
            stream.write(HTTP2Frame.FramePayload.headers(.init(headers: headers)), promise: nil)
            let data = ByteBuffer(string: body)
            stream.writeAndFlush(HTTP2Frame.FramePayload.data(.init(data: .byteBuffer(data), endStream: true)), promise: nil)
        } else {
            stream.writeAndFlush(HTTP2Frame.FramePayload.headers(.init(headers: headers, endStream: true)), promise: nil)
        }
        let timer = channel.eventLoop.scheduleTask(in: TimeAmount(timeout)) {
            promise.fail(InboundTestError("no complete response within \(timeout)"))
        }
        defer { timer.cancel() }
        return try await promise.futureResult.get()
    }

    func close() async { try? await channel.close() }
}

final class InboundResponseCollector: ChannelInboundHandler {
    typealias InboundIn = HTTP2Frame.FramePayload

    private let promise: EventLoopPromise<InboundTestResponse>
    private var headers: HPACKHeaders?
    private var trailers: HPACKHeaders?
    private var body = ByteBuffer()
    private var done = false

    init(promise: EventLoopPromise<InboundTestResponse>) {
        self.promise = promise
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var ended = false
        switch unwrapInboundIn(data) {
        case .headers(let frame):
            if headers == nil { headers = frame.headers } else { trailers = frame.headers }
            ended = frame.endStream
        case .data(let frame):
            if case .byteBuffer(var buffer) = frame.data { body.writeBuffer(&buffer) }
            ended = frame.endStream
        default:
            break
        }
        if ended, let headers, !done {
            done = true
            promise.succeed(InboundTestResponse(headers: headers, body: String(buffer: body), trailers: trailers))
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        finish(error)
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        finish(InboundTestError("the stream closed before the response completed"))
    }

    private func finish(_ error: any Error) {
        guard !done else { return }
        done = true
        promise.fail(error)
    }
}

/// Connects over TCP (optionally TLS), sends `send`, half-closes when asked, and returns every
/// byte received until the server closed (or `timeout`, which throws).
func inboundRawExchange(
    port: Int, tls: (@Sendable () throws -> NIOSSLClientHandler)? = nil, send: ByteBuffer,
    halfClose: Bool = false, timeout: Duration = .seconds(5)
) async throws -> (bytes: ByteBuffer, closedByServer: Bool) {
    let collector = InboundByteCollector()
    let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
        .channelOption(ChannelOptions.allowRemoteHalfClosure, value: true)
        .channelInitializer { channel in
            channel.eventLoop.makeCompletedFuture {
                if let tls { try channel.pipeline.syncOperations.addHandler(try tls()) }
                try channel.pipeline.syncOperations.addHandler(InboundByteCollectorHandler(collector))
            }
        }
        .connect(host: "127.0.0.1", port: port).get()
    try await channel.writeAndFlush(send)
    if halfClose { try await channel.close(mode: .output) }
    let deadline = ContinuousClock.now + timeout
    while !collector.closed, ContinuousClock.now < deadline {
        try await Task.sleep(for: .milliseconds(10))
    }
    let closed = collector.closed
    try? await channel.close()
    return (collector.bytes, closed)
}

final class InboundByteCollector: Sendable {
    private let state = Mutex<(bytes: ByteBuffer, closed: Bool)>((ByteBuffer(), false))
    func append(_ buffer: ByteBuffer) {
        state.withLock { state in
            var buffer = buffer
            state.bytes.writeBuffer(&buffer)
        }
    }
    func markClosed() { state.withLock { $0.closed = true } }
    var bytes: ByteBuffer { state.withLock { $0.bytes } }
    var closed: Bool { state.withLock { $0.closed } }
}

final class InboundByteCollectorHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    private let collector: InboundByteCollector
    init(_ collector: InboundByteCollector) { self.collector = collector }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        collector.append(unwrapInboundIn(data))
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case ChannelEvent.inputClosed = event { collector.markClosed() }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        collector.markClosed()
    }
}

/// The opaque transport header for `authority`.
func inboundTransportHeader(_ authority: String) -> ByteBuffer {
    var buffer = ByteBuffer()
    buffer.writeString("SOT1")
    buffer.writeInteger(UInt16(authority.utf8.count), endianness: .big)
    buffer.writeString(authority)
    return buffer
}
