public import Logging
public import NIOCore
import NIOHTTP2
import NIOPosix
import NIOSSL
import StarlingCore
public import StarlingTLS

/// The proxy's inbound listener: terminates mTLS from other proxies, records the caller's
/// verified identity, and forwards to the application.
///
/// Stages of a connection, in order (each set up in ``makeConnectionPipeline``):
/// 1. accept: register for drain, count, attach the peer address to the logger;
/// 2. TLS 1.3 with a required client certificate from `tls`: BoringSSL verifies the chain to the
///    anchors synchronously inside the handshake, with ``ClientVerification``'s rules (client
///    usage, no CA leaf, mesh names only, path length) in its verify callback; the listener's SNI
///    rule runs on the ClientHello. Refusals are logged once each with the reason and counted in
///    `starling_proxy_tls_handshake_failures_total{reason}`. (`MeshTLS.makeServerHandler()`'s
///    asynchronous verification is not used: a TLS 1.3 caller may send data and FIN right after
///    its Finished, and NIOSSL drops a connection whose EOF arrives while that callback runs.)
/// 3. identity: the verified peer's mesh identity (connections without one are closed);
/// 4. protocol by ALPN: `h2` → one HTTP/2 server connection whose streams are routed per request
///    (HTTP/1.1 to the application when the caller's app spoke HTTP/1, h2c otherwise);
///    `starling-opaque` → transport header, then bytes spliced to the application port.
public struct InboundProxy: Sendable {
    public var configuration: Configuration
    /// The workload's TLS material (renewed certificates apply to new connections).
    public var tls: any MeshTLSSource
    public var logger: Logger
    /// The event loops connections run on (NIO's shared singleton group unless given).
    public var eventLoopGroup: any EventLoopGroup
    /// Where answered requests are shown to open taps.
    public var tap: TapHub
    /// The workload's inbound policy, asked on every request and opaque connection.
    public var authorizer: InboundAuthorizer

    public init(
        configuration: Configuration,
        tls: any MeshTLSSource,
        logger: Logger,
        eventLoopGroup: (any EventLoopGroup)? = nil,
        tap: TapHub = TapHub(),
        authorizer: InboundAuthorizer = .allowAll()
    ) {
        self.tap = tap
        self.authorizer = authorizer
        self.configuration = configuration
        self.tls = tls
        self.logger = logger
        self.eventLoopGroup = eventLoopGroup ?? MultiThreadedEventLoopGroup.singleton
    }

    /// Listens until the task is cancelled, then drains: stops accepting, lets open connections
    /// finish their requests (HTTP/2 callers get GOAWAY) for up to
    /// ``Configuration/drainTimeout``, closes whatever is left, and returns.
    ///
    /// - Parameter onBound: called once with the bound port when the listener is ready.
    /// - Throws: when the listener cannot bind.
    public func run(onBound: (Int) -> Void) async throws {
        let configuration = configuration
        let registry = ConnectionRegistry()
        let http1Pool = HTTP1AppConnectionPool(
            connectTimeout: TimeAmount(configuration.appConnectTimeout),
            idleTimeout: TimeAmount(configuration.appConnectionIdleTimeout),
            maxIdlePerKey: configuration.maxIdleAppConnectionsPerPort
        )
        let http2Connections = InboundHTTP2AppConnections(
            host: configuration.appHost,
            connectTimeout: TimeAmount(configuration.appConnectTimeout),
            maxHeaderListSize: configuration.maxHeaderListSize
        )
        let setup = ConnectionSetup(
            configuration: configuration, tls: tls, logger: logger, registry: registry, http1Pool: http1Pool,
            http2Connections: http2Connections, tap: tap, authorizer: authorizer)

        let server: any Channel
        do {
            server = try await ServerBootstrap(group: eventLoopGroup)
                .serverChannelOption(ChannelOptions.backlog, value: 256)
                .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
                .childChannelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
                .childChannelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture { setup.accept(channel) }
                }
                .bind(host: configuration.listenHost, port: configuration.listenPort)
                .get()
        } catch {
            throw ListenError("inbound", host: configuration.listenHost, port: configuration.listenPort, cause: error)
        }
        let port = server.localAddress?.port ?? configuration.listenPort
        logger.info(
            "inbound proxy listening",
            metadata: ["address": "\(configuration.listenHost):\(port)", "identity": "\(tls.identity)"])
        onBound(port)

        await withTaskCancellationHandler {
            try? await server.closeFuture.get()
        } onCancel: {
            server.close(promise: nil)
        }

        let open = registry.count
        logger.info("inbound proxy draining", metadata: ["connections": "\(open)"])
        try? await registry.drain(grace: TimeAmount(configuration.drainTimeout), on: eventLoopGroup.any()).get()
        http1Pool.closeAll()
        http2Connections.closeAll()
        logger.info("inbound proxy stopped")
    }
}

// MARK: - Connection pipeline

extension InboundProxy {
    /// Everything a new connection's pipeline is built from.
    struct ConnectionSetup: Sendable {
        let configuration: Configuration
        let tls: any MeshTLSSource
        let logger: Logger
        let registry: ConnectionRegistry
        let http1Pool: HTTP1AppConnectionPool
        let http2Connections: InboundHTTP2AppConnections
        let tap: TapHub
        let authorizer: InboundAuthorizer

        /// Stages 1–3 (``MeshAcceptStage``), once the connection is tracked for the drain.
        func accept(_ channel: any Channel) {
            let stage = MeshAcceptStage(
                tls: tls, handshakeTimeout: configuration.handshakeTimeout, logger: logger, metrics: .inbound,
                refused: InboundMetrics.handshakeFailed)
            guard registry.register(channel) else {
                stage.logger(for: channel).debug("refused a connection while draining")
                channel.close(promise: nil)
                return
            }
            let clientAddress = channel.remoteAddress?.ipAddress.flatMap(IPNetwork.parseAddress)
            stage.configure(channel) { [configuration] connection in
                let peer = connection.peer
                if connection.isOpaque {
                    // Through a gateway, an opaque connection names no original caller: it is the
                    // gateway's, from a cluster nobody vouched for.
                    let caller =
                        peer.isGateway
                        ? PolicyCaller(identity: peer.dnsName, cluster: GatewayHeaders.unknownCluster, address: clientAddress, viaGateway: true)
                        : PolicyCaller(identity: peer.dnsName, cluster: configuration.clusterName, address: clientAddress)
                    try configureOpaque(connection.channel, caller: caller, logger: connection.logger)
                } else {
                    try configureHTTP2(connection.channel, peer: peer, address: clientAddress, logger: connection.logger)
                }
            }
        }

        /// Stage 4, `h2`.
        private func configureHTTP2(_ channel: any Channel, peer: MeshIdentity, address: [UInt8]?, logger: Logger) throws {
            // Rapid reset (CVE-2023-44487) and CONTINUATION floods: NIOHTTP2's protections stay
            // on, at the limits every connection of the proxy uses (HTTP2Limits).
            let http2 = HTTP2Limits.configuration(settings: [
                HTTP2Setting(parameter: .maxConcurrentStreams, value: configuration.maxConcurrentStreams),
                HTTP2Setting(parameter: .maxHeaderListSize, value: configuration.maxHeaderListSize),
                HTTP2Setting(parameter: .initialWindowSize, value: 65_535),
                HTTP2Setting(parameter: .enablePush, value: 0),
            ], bufferedControlFrames: HTTP2Limits.bufferedControlFramesFromPeers)

            let environment = InboundStreamEnvironment(
                configuration: configuration, client: peer, clientName: peer.dnsName, logger: logger, http1Pool: http1Pool,
                http2Connections: http2Connections, tap: tap, localIdentity: tls.identity.dnsName, authorizer: authorizer,
                clientAddress: address)
            let connectionHandler = HTTP2ServerConnectionHandler(
                idleTimeout: TimeAmount(configuration.idleTimeout), logger: logger)
            let router = InboundStreamRouter(environment: environment)
            let sync = channel.pipeline.syncOperations
            try sync.addFrameModeHTTP2(
                mode: .server, connection: http2.connection, streams: http2.stream,
                dispatcher: HTTP2StreamDispatcher(observer: connectionHandler, accept: router.accept))
            try sync.addHandler(connectionHandler)
            logger.debug("inbound HTTP/2 connection established")
        }

        /// Stage 4, `starling-opaque`.
        private func configureOpaque(_ channel: any Channel, caller: PolicyCaller, logger: Logger) throws {
            // Opaque TCP respects half-close (an HTTP/2 connection has no use for it): the TLS
            // handler then reports the caller's close_notify or FIN as input closed.
            try channel.syncOptions?.setOption(ChannelOptions.allowRemoteHalfClosure, value: true)
            try channel.syncOptions?.setOption(ChannelOptions.autoRead, value: false)
            try channel.pipeline.syncOperations.addHandler(
                InboundOpaqueHandler(configuration: configuration, logger: logger, authorizer: authorizer, caller: caller))
            logger.debug("inbound opaque connection established")
        }
    }
}
