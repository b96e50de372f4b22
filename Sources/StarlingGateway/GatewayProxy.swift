package import Logging
package import NIOCore
import NIOHTTP2
import NIOPosix
import NIOSSL
import StarlingCore
package import StarlingTLS
package import StarlingProxy

/// The multicluster gateway: the proxy in gateway mode (`starling gateway`, or hosted by the
/// controller). Calling proxies of linked clusters reach the services this cluster exports
/// through it.
///
/// Stages of a connection, in order:
/// 1. accept: track for drain, attach the peer address to the logger;
/// 2. TLS 1.3 with a required client certificate chaining to the mesh's anchors, checked as the
///    inbound checks it (``ClientVerification``, the SNI rule); the peer must carry a mesh
///    identity of our trust domain (refusals logged once each, counted in
///    `starling_gateway_refused_total{reason}` with the inbound's reasons);
/// 3. by ALPN: `h2` → each stream names its target in `starling-target` and is admitted and
///    forwarded on its own (``GatewayHTTP2Server``); `starling-opaque` → the transport header
///    names the target, then the connection is admitted and spliced (``GatewayOpaque``).
///
/// Admission (``GatewayAdmission``): a target must be named, must not have passed a gateway
/// already, and must be an exported service that is not itself a mirror. Admitted traffic goes
/// over mTLS to a local endpoint (requiring its identity), with the caller's verified identity
/// and cluster passed on in `starling-forwarded-client-*` headers.
package struct GatewayProxy: Sendable {
    package var configuration: Configuration
    /// The gateway's own TLS material
    /// (`starling-gateway.starling-multicluster.serviceaccount.identity.starling.TRUST_DOMAIN`).
    package var tls: any MeshTLSSource
    /// Profiles (exported, mirrored) of the targets callers name.
    package var discovery: any DiscoverySource
    /// Chooses the local endpoint of each request or connection.
    package var picker: any EndpointPicker
    /// This cluster's name (for logs).
    package var clusterName: String
    package var logger: Logger
    /// The event loops connections run on (NIO's shared singleton group unless given).
    package var eventLoopGroup: any EventLoopGroup
    /// Where answered requests are shown to open taps (served on the gateway's probe port).
    package var tap: TapHub
    /// The gateway's own inbound policy.
    package var authorizer: InboundAuthorizer

    package init(
        configuration: Configuration,
        tls: any MeshTLSSource,
        discovery: any DiscoverySource,
        picker: any EndpointPicker,
        clusterName: String,
        logger: Logger,
        eventLoopGroup: (any EventLoopGroup)? = nil,
        tap: TapHub = TapHub(),
        authorizer: InboundAuthorizer = .allowAll()
    ) {
        self.tap = tap
        self.authorizer = authorizer
        self.configuration = configuration
        self.tls = tls
        self.discovery = discovery
        self.picker = picker
        self.clusterName = clusterName
        self.logger = logger
        self.eventLoopGroup = eventLoopGroup ?? MultiThreadedEventLoopGroup.singleton
    }

    /// Listens until the task is cancelled, then drains: stops accepting, sends HTTP/2 callers
    /// GOAWAY and lets requests in flight finish for up to ``Configuration/drainTimeout``, closes
    /// whatever is left, and returns.
    ///
    /// - Parameter onBound: called once with the bound port when the listener is ready.
    /// - Throws: when the listener cannot bind.
    package func run(onBound: @Sendable (Int) -> Void = { _ in }) async throws {
        let configuration = configuration
        var logger = logger
        logger[metadataKey: "cluster"] = "\(clusterName)"
        let dialer = PeerDialer(tls: tls, connectTimeout: configuration.connectTimeout)
        let pool = PeerConnectionPool(dialer: dialer, group: eventLoopGroup, idleTimeout: configuration.peerIdleTimeout)
        let http2 = GatewayHTTP2Server(
            discovery: discovery, picker: picker, pool: pool, idleTimeout: TimeAmount(configuration.idleTimeout), tap: tap,
            clusterName: clusterName, localIdentity: tls.identity.dnsName, authorizer: authorizer,
            policyPort: configuration.listenPort)
        let opaque = GatewayOpaque(
            discovery: discovery, picker: picker, dialer: dialer, authorizer: authorizer, policyPort: configuration.listenPort)
        let registry = ConnectionRegistry()
        let setup = ConnectionSetup(configuration: configuration, tls: tls, http2: http2, logger: logger)

        let listener: NIOAsyncChannel<Accepted, Never>
        do {
            listener = try await ServerBootstrap(group: eventLoopGroup)
                .serverChannelOption(.backlog, value: 256)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
                .bind(host: configuration.listenHost, port: configuration.listenPort) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        Accepted(channel: channel, outcome: setup.accept(channel))
                    }
                }
        } catch {
            throw ListenError("gateway", host: configuration.listenHost, port: configuration.listenPort, cause: error)
        }
        let port = listener.channel.localAddress?.port ?? configuration.listenPort
        logger.info(
            "gateway listening", metadata: ["address": "\(configuration.listenHost):\(port)", "identity": "\(tls.identity)"])
        onBound(port)

        let serverChannel = listener.channel
        let grace = TimeAmount(configuration.drainTimeout)
        do {
            try await withTaskCancellationHandler {
                try await listener.executeThenClose { inbound in
                    try await registry.serveEach(
                        inbound, channel: { $0.channel }, grace: grace, on: serverChannel.eventLoop,
                        draining: { [logger] in logger.info("gateway draining", metadata: ["connections": "\(registry.count)"]) },
                        work: { Self.opaqueWork($0) }
                    ) { work in
                        await opaque.serve(work.channel, target: work.target, peer: work.peer, logger: work.logger)
                    }
                }
            } onCancel: {
                serverChannel.close(promise: nil)
            }
        } catch is CancellationError {
            // Shutdown requested.
        } catch where Task.isCancelled {
            // The listener closed because of the shutdown.
        }
        try? await registry.drain(grace: grace, on: serverChannel.eventLoop).get()
        pool.close()
        logger.info("gateway stopped")
    }

    /// An accepted connection and, once its handshake (and for opaque TCP its transport header)
    /// is done, what it carries.
    struct Accepted: Sendable {
        var channel: any Channel
        var outcome: EventLoopFuture<Established>
    }

    /// What an admitted-for-handshake connection turned out to be.
    enum Established: Sendable {
        /// Served by channel handlers until it closes.
        case http2
        case opaque(target: String, peer: MeshIdentity, logger: Logger)
    }

    /// An opaque connection to serve in a task of its own.
    struct OpaqueWork: Sendable {
        var channel: any Channel
        var target: String
        var peer: MeshIdentity
        var logger: Logger
    }

    /// What an accepted connection turned out to be: an opaque one needs a task; an HTTP/2 one is
    /// served by its handlers; a refused handshake or transport header closed the connection and
    /// logged why.
    static func opaqueWork(_ accepted: Accepted) -> EventLoopFuture<OpaqueWork?> {
        accepted.outcome.map { established -> OpaqueWork? in
            switch established {
            case .http2:
                return nil
            case .opaque(let target, let peer, let logger):
                return OpaqueWork(channel: accepted.channel, target: target, peer: peer, logger: logger)
            }
        }
        .recover { _ in nil }
    }
}

// MARK: - Connection pipeline

extension GatewayProxy {
    /// Everything a new connection's pipeline is built from.
    struct ConnectionSetup: Sendable {
        let configuration: Configuration
        let tls: any MeshTLSSource
        let http2: GatewayHTTP2Server
        let logger: Logger

        /// Stages 1–3, the inbound's (``MeshAcceptStage``); call on the channel's event loop.
        /// The future fails when the connection was refused or closed before it was established.
        func accept(_ channel: any Channel) -> EventLoopFuture<Established> {
            let promise = channel.eventLoop.makePromise(of: Established.self)
            channel.closeFuture.whenComplete { _ in promise.fail(ChannelError.alreadyClosed) }
            let stage = MeshAcceptStage(
                tls: tls, handshakeTimeout: configuration.handshakeTimeout, logger: logger, metrics: .gateway,
                refused: { GatewayMetrics.refused(reason: $0.rawValue) })
            let (configuration, http2) = (configuration, self.http2)
            stage.configure(channel) { connection in
                if connection.isOpaque {
                    GatewayMetrics.connection(protocol: "opaque")
                    let header = connection.channel.eventLoop.makePromise(of: String.self)
                    try GatewayOpaque.configure(
                        connection.channel, timeout: configuration.transportHeaderTimeout, logger: connection.logger, header: header)
                    header.futureResult.whenComplete { result in
                        switch result {
                        case .success(let target):
                            promise.succeed(.opaque(target: target, peer: connection.peer, logger: connection.logger))
                        case .failure(let error):
                            promise.fail(error)
                        }
                    }
                } else {
                    GatewayMetrics.connection(protocol: "h2")
                    try http2.configure(connection.channel, configuration: configuration, peer: connection.peer, logger: connection.logger)
                    promise.succeed(.http2)
                }
            }
            return promise.futureResult
        }
    }
}
