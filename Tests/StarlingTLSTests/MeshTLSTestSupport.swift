import Crypto
import Foundation
import NIOCore
import NIOPosix
import NIOSSL
import StarlingCore
import StarlingIdentity
import StarlingTLS
import SwiftASN1
import Synchronization
import Testing
import X509

/// A root, an issuer under it, and workload certificates from the issuer.
struct TestPKI: Sendable {
    let root: Certificate
    let issuer: Issuer
    /// The issuer's key, for signing certificates the issuer would never certify.
    let issuerKey: WorkloadKey
    var trustDomain: String { issuer.trustDomain }

    init(name: String = "root", trustDomain: String = "cluster.local") throws {
        let root = try CertificateFactory.create(.init(subject: "\(name).identity.starling", profile: .rootCA))
        let ca = try CertificateFactory.create(
            .init(
                subject: "issuer.\(name).identity.starling", profile: .intermediateCA,
                issuer: (root.certificate, root.key)))
        self.root = root.certificate
        self.issuerKey = WorkloadKey(privateKey: ca.key)
        self.issuer = try Issuer(
            certificate: ca.certificate, key: ca.key, trust: TrustBundle(anchors: [root.certificate]),
            trustDomain: trustDomain)
    }

    /// A workload certificate chain `[leaf, issuer]` and its key.
    func workload(
        _ identity: MeshIdentity, lifetime: TimeInterval = 3600, now: Date = Date()
    ) throws -> (chain: [Certificate], key: WorkloadKey) {
        let key = WorkloadKey()
        let chain = try issuer.certify(
            csrDER: key.csr(for: identity).der, granted: identity, lifetime: lifetime, now: now)
        return (chain, key)
    }

    /// A `MeshTLS` for `identity` with this PKI's root as the only anchor.
    func meshTLS(
        _ identity: MeshIdentity, lifetime: TimeInterval = 3600, now: Date = Date(),
        onRejected: MeshTLS.RejectionHandler? = nil
    ) throws -> MeshTLS {
        let (chain, key) = try workload(identity, lifetime: lifetime, now: now)
        return try MeshTLS(
            chain: chain, key: key.privateKey, trustAnchors: [root], trustDomain: trustDomain,
            onRejected: onRejected)
    }
}

extension MeshIdentity {
    static func test(_ sa: String, _ ns: String = "test") -> MeshIdentity {
        MeshIdentity(namespace: ns, serviceAccount: sa)
    }
}

/// Collects values from any thread.
final class Recorder<Value: Sendable>: Sendable {
    private let values = Mutex<[Value]>([])
    func append(_ value: Value) { values.withLock { $0.append(value) } }
    var all: [Value] { values.withLock { $0 } }

    /// Waits (polling) until at least `count` values arrived.
    func wait(for count: Int, within limit: Duration = .seconds(5)) async throws -> [Value] {
        let deadline = ContinuousClock.now.advanced(by: limit)
        while ContinuousClock.now < deadline {
            let current = all
            if current.count >= count { return current }
            try await Task.sleep(for: .milliseconds(10))
        }
        throw TLSTestError("only \(all.count) of \(count) expected values arrived within \(limit)")
    }
}

struct TLSTestError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// What the test server saw of one connection's handshake.
enum ServerOutcome: Sendable, Equatable {
    case accepted(MeshHandshake)
    case failed
}

/// Echoes every byte back.
final class EchoHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        context.writeAndFlush(data, promise: nil)
    }
}

/// A TLS echo server on 127.0.0.1 (port 0) using either `makeServerHandler()` (mesh verification
/// in the handshake) or a plain `NIOSSLServerHandler` over `serverContext()`.
struct TestServer: Sendable {
    enum Mode: Sendable { case meshHandler, bareContext }

    let channel: any Channel
    let outcomes = Recorder<ServerOutcome>()
    var port: Int { channel.localAddress?.port ?? 0 }

    init(tls: MeshTLS, mode: Mode = .meshHandler) async throws {
        let outcomes = self.outcomes
        channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let ssl: NIOSSLServerHandler =
                        switch mode {
                        case .meshHandler: try tls.makeServerHandler()
                        case .bareContext: NIOSSLServerHandler(context: try tls.serverContext())
                        }
                    let observer = MeshHandshakeHandler(eventLoop: channel.eventLoop)
                    observer.handshake.whenComplete { result in
                        switch result {
                        case .success(let handshake): outcomes.append(.accepted(handshake))
                        case .failure: outcomes.append(.failed)
                        }
                    }
                    try channel.pipeline.syncOperations.addHandlers(ssl, observer, EchoHandler())
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
    }

    func close() async {
        try? await channel.close()
    }
}

/// A client connection: the async channel and its handshake outcome. Every connection must end
/// with `echo` or `close()` (an async channel must be finished before it is released).
final class TestConnection: Sendable {
    let channel: NIOAsyncChannel<ByteBuffer, ByteBuffer>
    let handshake: EventLoopFuture<MeshHandshake>
    private let finished = Mutex(false)

    init(channel: NIOAsyncChannel<ByteBuffer, ByteBuffer>, handshake: EventLoopFuture<MeshHandshake>) {
        self.channel = channel
        self.handshake = handshake
    }

    /// Runs `body` with the channel's streams, then closes it; at most once per connection.
    func use<T: Sendable>(
        _ body: (NIOAsyncChannelInboundStream<ByteBuffer>, NIOAsyncChannelOutboundWriter<ByteBuffer>) async throws -> T
    ) async throws -> T {
        guard !finished.withLock({ was in defer { was = true }; return was }) else {
            throw TLSTestError("connection already closed")
        }
        return try await channel.executeThenClose(body)
    }

    func close() async {
        _ = try? await use { _, _ in }
    }

    /// Connects to `port` with the handler `makeHandler` builds (nil: plaintext).
    static func connect(
        port: Int, _ makeHandler: @escaping @Sendable () throws -> (any ChannelHandler)?
    ) async throws -> TestConnection {
        try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: "127.0.0.1", port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    let observer = MeshHandshakeHandler(eventLoop: channel.eventLoop)
                    if let handler = try makeHandler() {
                        try channel.pipeline.syncOperations.addHandler(handler)
                    }
                    try channel.pipeline.syncOperations.addHandler(observer)
                    let async = try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                    return TestConnection(channel: async, handshake: observer.handshake)
                }
            }
    }

    /// Connects through `tls` as a dialer.
    static func connect(port: Int, tls: MeshTLS, expecting: MeshIdentity?, alpn: [String] = ["h2"]) async throws
        -> TestConnection
    {
        try await connect(port: port) { try tls.makeClientHandler(expecting: expecting, alpn: alpn) }
    }

    /// Sends `text` and reads until as many bytes came back; nil when the connection closed first.
    func echo(_ text: String) async throws -> String? {
        try await use { inbound, outbound in
            try await outbound.write(ByteBuffer(string: text))
            var received = ""
            for try await buffer in inbound {
                received += String(buffer: buffer)
                if received.utf8.count >= text.utf8.count { return received }
            }
            return nil
        }
    }

    /// The peer certificate's DER, once the handshake completed.
    func peerCertificateDER() async throws -> [UInt8]? {
        try await channel.channel.nioSSL_peerCertificate().get()?.toDERBytes()
    }
}

extension Certificate {
    var derBytes: [UInt8] {
        get throws {
            var serializer = DER.Serializer()
            try serializer.serialize(self)
            return serializer.serializedBytes
        }
    }
}
