package import Logging
package import NIOCore
import NIOSSL
package import StarlingCore
package import StarlingTLS

/// Stages 1–3 of every connection a mesh listener accepts (the inbound and the gateway): the
/// peer's address in the connection's logger, its bytes counted (``ConnectionMetricsHandler``),
/// TLS 1.3 with a required mesh client certificate (``ClientVerification``), and the handshake's
/// outcome (``InboundHandshakeHandler``). What the connection carries is built by the listener
/// once the handshake succeeded; a refused handshake is counted with `refused`, logged and closed.
package struct MeshAcceptStage: Sendable {
    /// A connection whose handshake succeeded.
    package struct Established {
        package var channel: any Channel
        /// The agreed ALPN protocol: `h2` or ``MeshHeaders/opaqueALPN``.
        package var alpn: String
        /// The caller's verified identity.
        package var peer: MeshIdentity
        /// The connection's logger, with `peer` (its address) and `client_identity`.
        package var logger: Logger
        /// Whether the caller asked for opaque TCP (else HTTP/2).
        package var isOpaque: Bool { alpn == MeshHeaders.opaqueALPN }
    }

    package var tls: any MeshTLSSource
    package var handshakeTimeout: Duration
    package var logger: Logger
    package var metrics: ConnectionMetricsHandler.Sink
    /// Counts a refused connection by its reason.
    package var refused: @Sendable (InboundHandshakeFailure.Reason) -> Void

    package init(
        tls: any MeshTLSSource, handshakeTimeout: Duration, logger: Logger, metrics: ConnectionMetricsHandler.Sink,
        refused: @escaping @Sendable (InboundHandshakeFailure.Reason) -> Void
    ) {
        self.tls = tls
        self.handshakeTimeout = handshakeTimeout
        self.logger = logger
        self.metrics = metrics
        self.refused = refused
    }

    /// The connection's logger: the stage's, with the peer's address.
    package func logger(for channel: any Channel) -> Logger {
        var logger = logger
        logger[metadataKey: "peer"] = "\(channel.remoteAddress.map { "\($0)" } ?? "unknown")"
        return logger
    }

    /// Adds the stages to `channel` (call on its event loop); `established` builds the rest of
    /// the pipeline once the handshake succeeded (throwing closes the connection). A connection
    /// that cannot be set up (no TLS server context) is counted, logged and closed.
    package func configure(_ channel: any Channel, established: @escaping (Established) throws -> Void) {
        let logger = logger(for: channel)
        do {
            let counter = ConnectionMetricsHandler(metrics)
            try channel.pipeline.syncOperations.addHandler(counter)
            let verification = ClientVerification()
            let ssl = try verification.makeServerHandler(context: tls.serverContext())
            let handshake = InboundHandshakeHandler(
                timeout: TimeAmount(handshakeTimeout), trustDomain: tls.identity.trustDomain, logger: logger,
                verification: verification, onRefused: refused
            ) { channel, alpn, peer in
                var connectionLogger = logger
                connectionLogger[metadataKey: "client_identity"] = "\(peer)"
                let connection = Established(channel: channel, alpn: alpn, peer: peer, logger: connectionLogger)
                counter.kind = connection.isOpaque ? "opaque" : "h2"
                try established(connection)
            }
            try channel.pipeline.syncOperations.addHandler(ssl)
            try channel.pipeline.syncOperations.addHandler(handshake)
        } catch {
            refused(.localConfiguration)
            logger.error("could not set up a mesh connection; refusing it", metadata: ["error": "\(error)"])
            channel.close(promise: nil)
        }
    }
}
