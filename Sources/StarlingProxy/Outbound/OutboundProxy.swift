public import Logging
import NIOCore
import NIOHTTP1
import NIOHTTP2
import NIOPosix
import StarlingCore
import StarlingTLS
import Synchronization

/// The outbound side of the sidecar: everything the workload sends goes through it.
///
/// - The outbound listener accepts forward-proxy HTTP/1 (`http_proxy=`), HTTP/2 prior knowledge
///   (h2c, gRPC) and transparently captured connections (iptables `REDIRECT`, routed by
///   `SO_ORIGINAL_DST`). Protocol detection waits at most `detectionTimeout`; undetectable
///   traffic is closed, unless it was captured transparently, in which case it is forwarded opaque.
/// - Each opaque binding has its own listener and skips detection (server-speaks-first protocols).
///
/// HTTP requests to meshed endpoints travel over one pooled HTTP/2 mTLS connection per endpoint.
public struct OutboundProxy: Sendable {
    public var configuration: Configuration
    public var runtime: Runtime

    public init(configuration: Configuration, runtime: Runtime) {
        self.configuration = configuration
        self.runtime = runtime
    }

    /// An accepted connection and, once detection finished, what it turned out to be.
    struct AcceptedConnection: Sendable {
        var channel: any Channel
        var outcome: EventLoopFuture<Accepted>
    }

    /// What the listener made of an accepted connection.
    enum Accepted: Sendable {
        /// HTTP/1 or HTTP/2: served by channel handlers until it closes.
        case served(any Channel)
        case opaque(any Channel, originalDestination: String)
        case rejected(any Channel, reason: String)
    }

    /// Binds the listeners, reports the outbound listener's port through `onBound`, and serves
    /// until the task is cancelled. Shutdown is graceful: the listeners close at once, requests in
    /// flight get up to `drainGracePeriod` to finish, then the remaining connections are closed.
    public func run(onBound: @Sendable (Int) -> Void = { _ in }) async throws {
        let group = MultiThreadedEventLoopGroup.singleton
        let configuration = self.configuration
        let logger = runtime.logger
        let dialer = PeerDialer(tls: runtime.tls, connectTimeout: configuration.connectTimeout)
        let pool = PeerConnectionPool(dialer: dialer, group: group, idleTimeout: configuration.peerIdleTimeout)
        // Plain endpoints (outside the mesh) get pooled HTTP/1.1 connections, kept as the
        // inbound keeps its application's. An idle one closes after 4 s, before the 5 s after
        // which common servers (Node.js, Apache) close theirs: a request written on a connection
        // the server is closing fails, and only a request safe to repeat is sent again.
        let plainConnections = HTTP1AppConnectionPool(
            connectTimeout: TimeAmount(configuration.connectTimeout), idleTimeout: .seconds(4), maxIdlePerKey: 64)
        let forwarder = OutboundForwarder(
            logger: logger, clusterName: configuration.clusterName, tap: runtime.tap,
            localIdentity: runtime.tls.identity.dnsName)
        let connector = UpstreamConnector(picker: runtime.picker, pool: pool, plainConnections: plainConnections)
        let registry = ConnectionRegistry()
        let opaque = OutboundOpaque(picker: runtime.picker, dialer: dialer)
        let http1Environment = OutboundHTTP1ForwardHandler.Environment(
            forwarder: forwarder, connector: connector, maximumHeaderBytes: configuration.maximumHeaderBytes,
            registry: registry)
        let http2Environment = HTTP2StreamRelay.Environment(
            front: OutboundHTTP2Front(forwarder: forwarder, logger: logger), connector: connector,
            idleTimeout: TimeAmount(configuration.idleTimeout))
        let listener: NIOAsyncChannel<AcceptedConnection, Never>
        do {
            listener = try await ServerBootstrap(group: group)
                .serverChannelOption(.backlog, value: 256)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
                .childChannelOption(.allowRemoteHalfClosure, value: true)
                .bind(host: configuration.listenHost, port: configuration.listenPort) { channel in
                    channel.eventLoop.makeSucceededFuture(
                        AcceptedConnection(
                            channel: channel,
                            outcome: Self.accept(
                                channel, configuration: configuration, http1: http1Environment, http2: http2Environment,
                                logger: logger)))
                }
        } catch {
            throw ListenError("outbound", host: configuration.listenHost, port: configuration.listenPort, cause: error)
        }
        var opaqueListeners: [(OpaqueBinding, NIOAsyncChannel<any Channel, Never>)] = []
        do {
            for binding in configuration.opaqueBindings {
                let channel = try await Self.listen(binding, group: group)
                opaqueListeners.append((binding, channel))
                logger.info(
                    "opaque binding listening",
                    metadata: ["service": "\(binding.service)", "address": "\(channel.channel.localAddress.map { "\($0)" } ?? "?")"])
            }
        } catch {
            try? await listener.channel.close()
            for (_, channel) in opaqueListeners { try? await channel.channel.close() }
            throw error
        }
        let port = listener.channel.localAddress?.port ?? configuration.listenPort
        logger.info("outbound proxy listening", metadata: ["address": "\(configuration.listenHost):\(port)"])
        onBound(port)

        let serverChannels: [any Channel] = [listener.channel] + opaqueListeners.map { $0.1.channel }
        let grace = TimeAmount(configuration.drainGracePeriod)
        let drainLoop = listener.channel.eventLoop
        let draining: @Sendable () -> Void = {
            logger.info("outbound proxy draining", metadata: ["connections": "\(registry.count)"])
        }
        do {
            try await withTaskCancellationHandler {
                try await withThrowingDiscardingTaskGroup { tasks in
                    tasks.addTask {
                        try await listener.executeThenClose { inbound in
                            try await registry.serveEach(
                                inbound, channel: { $0.channel }, grace: grace, on: drainLoop, draining: draining,
                                work: { Self.opaqueWork($0.outcome, logger: logger) }
                            ) { work in
                                await opaque.serve(work.channel, authority: work.originalDestination, logger: work.logger)
                            }
                        }
                    }
                    for (binding, server) in opaqueListeners {
                        tasks.addTask {
                            try await server.executeThenClose { inbound in
                                try await registry.serveEach(
                                    inbound, channel: { $0 }, grace: grace, on: drainLoop, draining: draining,
                                    work: { $0.eventLoop.makeSucceededFuture($0) }
                                ) { client in
                                    var connectionLogger = logger
                                    connectionLogger[metadataKey: "client"] = "\(client.remoteAddress.map { "\($0)" } ?? "?")"
                                    await opaque.serve(client, authority: binding.service, logger: connectionLogger)
                                }
                            }
                        }
                    }
                }
            } onCancel: {
                for channel in serverChannels { channel.close(promise: nil) }
            }
        } catch is CancellationError {
            // Shutdown requested.
        } catch where Task.isCancelled {
            // The listeners closed because of the shutdown.
        }
        try? await registry.drain(grace: grace, on: drainLoop).get()
        pool.close()
        plainConnections.closeAll()
        logger.info("outbound proxy stopped")
    }

    /// The pipeline of a newly accepted outbound connection: metrics, then protocol detection;
    /// the returned future resolves once the protocol handlers are in place.
    static func accept(
        _ channel: any Channel, configuration: Configuration, http1: OutboundHTTP1ForwardHandler.Environment,
        http2: HTTP2StreamRelay<OutboundHTTP2Front>.Environment, logger: Logger
    ) -> EventLoopFuture<Accepted> {
        let metrics = ConnectionMetricsHandler(.outbound)
        let detector = ProtocolDetectionHandler(
            eventLoop: channel.eventLoop, timeout: TimeAmount(configuration.detectionTimeout))
        do {
            try channel.pipeline.syncOperations.addHandler(metrics)
            try channel.pipeline.syncOperations.addHandler(detector)
        } catch {
            channel.close(promise: nil)
            return channel.eventLoop.makeSucceededFuture(.rejected(channel, reason: "pipeline setup failed: \(error)"))
        }
        let metricsBound = NIOLoopBound(metrics, eventLoop: channel.eventLoop)
        let detectorBound = NIOLoopBound(detector, eventLoop: channel.eventLoop)
        let original = OriginalDestination.of(channel).map { $0.flatMap(OriginalDestination.authority(of:)) }
        return original.and(detector.outcome).flatMap { originalDestination, outcome in
            channel.eventLoop.makeCompletedFuture {
                try configureDetected(
                    outcome, channel: channel, originalDestination: originalDestination, configuration: configuration,
                    http1: http1, http2: http2, logger: logger, metrics: metricsBound.value, detector: detectorBound.value)
            }.flatMap { $0 }
        }.flatMapErrorThrowing { error in
            channel.close(promise: nil)
            return .rejected(channel, reason: "protocol setup failed: \(error)")
        }
    }

    /// Builds the pipeline for the detected protocol (on the event loop). The detector is removed
    /// (replaying what it held) for HTTP; for opaque traffic it stays until the splice is in place.
    private static func configureDetected(
        _ outcome: ProtocolDetectionHandler.Outcome, channel: any Channel, originalDestination: String?,
        configuration: Configuration, http1: OutboundHTTP1ForwardHandler.Environment,
        http2: HTTP2StreamRelay<OutboundHTTP2Front>.Environment, logger: Logger, metrics: ConnectionMetricsHandler,
        detector: ProtocolDetectionHandler
    ) throws -> EventLoopFuture<Accepted> {
        let accepted: Accepted
        switch outcome {
        case .detected(.http1):
            metrics.kind = "http1"
            var connectionLogger = logger
            connectionLogger[metadataKey: "client"] = "\(channel.remoteAddress.map { "\($0)" } ?? "?")"
            try OutboundHTTP1Request.configure(
                channel, configuration: configuration, environment: http1, originalDestination: originalDestination,
                logger: connectionLogger)
            accepted = .served(channel)
        case .detected(.http2):
            metrics.kind = "http2"
            try OutboundHTTP2Server.configure(
                channel, configuration: configuration, environment: http2, originalDestination: originalDestination)
            accepted = .served(channel)
        case .detected(.unknown), .timedOut:
            guard let originalDestination else {
                let reason =
                    outcome == .timedOut
                    ? "no request within \(configuration.detectionTimeout)" : "not HTTP/1 or HTTP/2"
                return channel.eventLoop.makeSucceededFuture(.rejected(channel, reason: reason))
            }
            metrics.kind = "opaque"
            try channel.syncOptions?.setOption(ChannelOptions.autoRead, value: false)
            return channel.eventLoop.makeSucceededFuture(.opaque(channel, originalDestination: originalDestination))
        case .closed:
            return channel.eventLoop.makeSucceededFuture(.rejected(channel, reason: "closed before sending a request"))
        }
        return channel.pipeline.syncOperations.removeHandler(detector).map { accepted }
    }

    /// An opaque connection to serve in a task of its own.
    struct OpaqueWork: Sendable {
        var channel: any Channel
        var originalDestination: String
        var logger: Logger
    }

    /// What an accepted connection turned out to be, once detected: an opaque one needs a task;
    /// an HTTP one is served by its handlers, and a rejected one is closed.
    static func opaqueWork(_ accepted: EventLoopFuture<Accepted>, logger: Logger) -> EventLoopFuture<OpaqueWork?> {
        accepted.map { accepted -> OpaqueWork? in
            switch accepted {
            case .served:
                return nil
            case .opaque(let channel, let originalDestination):
                var logger = logger
                logger[metadataKey: "client"] = "\(channel.remoteAddress.map { "\($0)" } ?? "?")"
                return OpaqueWork(channel: channel, originalDestination: originalDestination, logger: logger)
            case .rejected(let channel, let reason):
                logger.debug(
                    "closed an outbound connection",
                    metadata: ["client": "\(channel.remoteAddress.map { "\($0)" } ?? "?")", "reason": "\(reason)"])
                channel.close(promise: nil)
                return nil
            }
        }
    }
}


extension OutboundProxy {
    /// The listener of an opaque binding: every connection is relayed to the binding's service.
    fileprivate static func listen(
        _ binding: OpaqueBinding, group: any EventLoopGroup
    ) async throws -> NIOAsyncChannel<any Channel, Never> {
        do {
            return try await ServerBootstrap(group: group)
                .serverChannelOption(.backlog, value: 256)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
                .childChannelOption(.allowRemoteHalfClosure, value: true)
                .bind(host: binding.listenHost, port: binding.listenPort) { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(ConnectionMetricsHandler(.outbound))
                        // Holds the first bytes (and a half-close) until the upstream is linked.
                        try channel.pipeline.syncOperations.addHandler(SpliceHandler())
                        return channel as any Channel
                    }
                }
        } catch {
            throw ListenError(
                "opaque binding \(binding.service)", host: binding.listenHost, port: binding.listenPort, cause: error)
        }
    }
}
