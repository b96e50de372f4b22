package import Logging
package import NIOCore
import NIOTLS
package import StarlingCore
package import StarlingTLS

/// Watches an inbound connection's TLS handshake, right after the `NIOSSLServerHandler`.
///
/// Its one job is the outcome: on success it reads the verified peer identity and the agreed
/// ALPN protocol, hands the channel to `established` (which builds the rest of the pipeline)
/// and removes itself; on failure — handshake error, no mesh identity, no ALPN, timeout, drain —
/// it logs one line with the peer address and the reason, counts it, and closes.
package final class InboundHandshakeHandler: ChannelInboundHandler, RemovableChannelHandler {
    package typealias InboundIn = NIOAny

    /// Builds the pipeline for an established connection; throwing closes it.
    package typealias Established = (_ channel: any Channel, _ alpn: String, _ peer: MeshIdentity) throws -> Void

    private let timeout: TimeAmount
    private let trustDomain: String
    private let logger: Logger
    private let established: Established
    private let onRefused: (InboundHandshakeFailure.Reason) -> Void
    private let verification: ClientVerification?
    private var timer: Scheduled<Void>?
    private var finished = false

    /// - Parameters:
    ///   - trustDomain: callers must be identities of this trust domain.
    ///   - verification: the connection's client-certificate check, whose recorded reason names a
    ///     refused certificate (nil: BoringSSL's error is classified instead).
    ///   - onRefused: counts a refusal (the inbound proxy's handshake-failure metric unless given).
    package init(
        timeout: TimeAmount, trustDomain: String, logger: Logger, verification: ClientVerification? = nil,
        onRefused: @escaping (InboundHandshakeFailure.Reason) -> Void = InboundMetrics.handshakeFailed,
        established: @escaping Established
    ) {
        self.verification = verification
        self.timeout = timeout
        self.trustDomain = trustDomain
        self.logger = logger
        self.onRefused = onRefused
        self.established = established
    }

    package func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { startTimer(context: context) }
    }

    package func channelActive(context: ChannelHandlerContext) {
        startTimer(context: context)
        context.fireChannelActive()
    }

    package func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
    }

    private func startTimer(context: ChannelHandlerContext) {
        guard timer == nil, !finished else { return }
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        timer = context.eventLoop.scheduleTask(in: timeout) {
            let (handler, context) = loopBound.value
            handler.refuse(context: context, .timeout, detail: "the TLS handshake did not finish within \(handler.timeout)")
        }
    }

    package func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        // Application data only flows after the handshake, when this handler is gone.
        context.fireChannelRead(data)
    }

    package func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is DrainEvent {
            refuse(context: context, .closed, detail: "the proxy is shutting down")
            return
        }
        guard !finished, case .handshakeCompleted(let negotiated)? = event as? TLSUserEvent else {
            context.fireUserInboundEventTriggered(event)
            return
        }
        guard let peer = MeshTLS.peerIdentity(in: context.pipeline.syncOperations) else {
            refuse(
                context: context, .noMeshIdentity,
                detail: "the client certificate names no single mesh identity "
                    + "(\(MeshTLS.peerNames(in: context.pipeline.syncOperations)))")
            return
        }
        guard peer.trustDomain == trustDomain else {
            refuse(
                context: context, .identityNotAllowed,
                detail: "identity \(peer) is not allowed: it is not in this mesh's trust domain \(trustDomain)")
            return
        }
        guard let alpn = negotiated, alpn == "h2" || alpn == MeshHeaders.opaqueALPN else {
            refuse(context: context, .alpn, detail: "ALPN \(negotiated ?? "none") is neither h2 nor \(MeshHeaders.opaqueALPN)")
            return
        }
        finished = true
        timer?.cancel()
        timer = nil
        do {
            try established(context.channel, alpn, peer)
            context.fireUserInboundEventTriggered(event)
            context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
        } catch {
            logger.error(
                "could not set up the inbound connection",
                metadata: ["client_identity": "\(peer)", "alpn": "\(alpn)", "error": "\(error)"]
            )
            context.close(promise: nil)
        }
    }

    package func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard !finished else {
            context.fireErrorCaught(error)
            return
        }
        if let refusal = verification?.refusal, let reason = InboundHandshakeFailure.reason(for: refusal.code) {
            refuse(context: context, reason, detail: refusal.message)
        } else if let tlsError = error as? MeshTLSError, let reason = InboundHandshakeFailure.reason(for: tlsError.code) {
            refuse(context: context, reason, detail: tlsError.message)
        } else {
            let reason = InboundHandshakeFailure.classify(error)
            refuse(context: context, reason, detail: InboundHandshakeFailure.explain(reason, error))
        }
    }

    package func channelInactive(context: ChannelHandlerContext) {
        if !finished {
            refuse(context: context, .closed, detail: "the caller closed the connection during the TLS handshake")
        }
        context.fireChannelInactive()
    }

    private func refuse(context: ChannelHandlerContext, _ reason: InboundHandshakeFailure.Reason, detail: String) {
        guard !finished else { return }
        finished = true
        timer?.cancel()
        timer = nil
        onRefused(reason)
        // A caller that just goes away is not worth a notice; a refused caller is.
        let level: Logger.Level = reason == .closed ? .debug : .notice
        logger.log(level: level, "refused inbound connection", metadata: ["reason": "\(reason.rawValue)", "error": "\(detail)"])
        context.close(promise: nil)
    }
}

@available(*, unavailable)
extension InboundHandshakeHandler: Sendable {}
