import Logging
public import NIOCore
import NIOPosix
import NIOSSL
public import StarlingCore
public import StarlingTLS

/// Connects to an endpoint: TCP, then — for a meshed endpoint (one with an identity) — mTLS with
/// the workload's certificate, requiring the endpoint's identity and the given ALPN.
///
/// Failures come back as `ProxyError`: `connect-failed` when TCP fails or times out,
/// `peer-identity-rejected` when the TLS handshake fails (wrong identity, untrusted chain) or the
/// peer agrees on no offered ALPN protocol.
public struct PeerDialer: Sendable {
    /// What a successful dial established.
    public struct Connection: Sendable {
        public var channel: any Channel
        /// The verified peer identity; nil for a plain (not meshed) endpoint.
        public var peer: MeshIdentity?
        /// The ALPN protocol agreed; nil for plain endpoints.
        public var alpn: String?
    }

    public var tls: any MeshTLSSource
    /// Bound on TCP connect plus TLS handshake.
    public var connectTimeout: Duration

    public init(tls: any MeshTLSSource, connectTimeout: Duration = .seconds(5)) {
        self.tls = tls
        self.connectTimeout = connectTimeout
    }

    /// Dials `endpoint`. For meshed endpoints the TLS handler and a (pass-through) handshake
    /// observer are the only handlers in the pipeline when this returns; plain endpoints have an empty pipeline.
    ///
    /// - Parameters:
    ///   - alpn: the ALPN protocols to offer a meshed endpoint (`["h2"]`, `["starling-opaque"]`).
    ///   - group: where the connection lives; pass the accepted channel's event loop to splice.
    ///   - halfClosure: for opaque TCP, which respects half-close: the peer's close_notify or FIN
    ///     is then reported as input closed. Off for HTTP/2, which has no use for a half-open
    ///     connection: a peer that closes (after GOAWAY, draining) gets our close_notify back at
    ///     once. With it on, the TLS handler answered nothing and the peer waited out its TLS
    ///     shutdown timeout (5 s) before the connection closed, holding its drain that long.
    ///   - initialize: adds handlers after TLS when the channel is created (so that nothing the
    ///     peer sends right after the handshake is lost).
    public func dial(
        _ endpoint: Endpoint, alpn: [String], group: any EventLoopGroup, timeout: Duration? = nil,
        halfClosure: Bool = false, initialize: @escaping @Sendable (any Channel) throws -> Void = { _ in }
    ) async throws(ProxyError) -> Connection {
        let limit = min(timeout ?? connectTimeout, connectTimeout)
        let tls = self.tls
        let identity = endpoint.identity
        let channel: any Channel
        do {
            channel = try await ClientBootstrap(group: group)
                .connectTimeout(TimeAmount(limit))
                .channelOption(.socketOption(.tcp_nodelay), value: 1)
                .channelOption(.allowRemoteHalfClosure, value: halfClosure)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        if identity != nil {
                            let handler = try tls.makeClientHandler(expecting: identity, alpn: alpn)
                            try channel.pipeline.syncOperations.addHandler(handler)
                            try channel.pipeline.syncOperations.addHandler(
                                MeshHandshakeHandler(eventLoop: channel.eventLoop))
                        }
                        try initialize(channel)
                    }
                }
                .connect(host: endpoint.host, port: endpoint.port).get()
        } catch {
            throw ProxyError.unreachable(endpoint, error)
        }
        guard let identity else { return Connection(channel: channel, peer: nil, alpn: nil) }

        // The handshake is bounded too: a peer that accepts TCP and then stalls must not hold the
        // request past its deadline.
        let deadline = channel.eventLoop.scheduleTask(in: TimeAmount(limit)) { channel.close(promise: nil) }
        do {
            let handshake = try await channel.eventLoop.flatSubmit {
                do {
                    return try channel.pipeline.syncOperations.handler(type: MeshHandshakeHandler.self).handshake
                } catch {
                    return channel.eventLoop.makeFailedFuture(error)
                }
            }.get()
            deadline.cancel()
            guard let negotiated = handshake.alpn, alpn.contains(negotiated) else {
                channel.close(promise: nil)
                throw ProxyError(
                    .peerIdentityRejected,
                    "\(endpoint) (\(identity)) agreed on no ALPN protocol of \(alpn.joined(separator: ","))")
            }
            return Connection(channel: channel, peer: handshake.peer ?? identity, alpn: negotiated)
        } catch let error as ProxyError {
            throw error
        } catch let error as NIOSSLError {
            deadline.cancel()
            channel.close(promise: nil)
            throw ProxyError(.peerIdentityRejected, "mTLS with \(endpoint) expecting \(identity) failed: \(error)")
        } catch let error as BoringSSLError {
            deadline.cancel()
            channel.close(promise: nil)
            throw ProxyError(.peerIdentityRejected, "mTLS with \(endpoint) expecting \(identity) failed: \(error)")
        } catch {
            deadline.cancel()
            channel.close(promise: nil)
            throw ProxyError(.connectFailed, "the TLS handshake with \(endpoint) did not complete: \(error)")
        }
    }
}

extension TimeAmount {
    /// A NIO time amount for a Swift duration (nanosecond precision, saturating).
    init(_ duration: Duration) {
        let (seconds, attoseconds) = duration.components
        let nanos = seconds.multipliedReportingOverflow(by: 1_000_000_000)
        self = nanos.overflow ? .nanoseconds(.max) : .nanoseconds(nanos.partialValue + attoseconds / 1_000_000_000)
    }
}
