public import NIOCore
import NIOSSL
import NIOTLS
public import StarlingCore

/// What a completed mesh handshake established.
public struct MeshHandshake: Sendable, Hashable {
    /// The peer's verified mesh identity; nil when its certificate names none (a listener built on
    /// the bare server context must then close the connection).
    public var peer: MeshIdentity?
    /// The negotiated ALPN protocol (`h2`, `starling-opaque`), nil when none was agreed.
    public var alpn: String?

    public init(peer: MeshIdentity?, alpn: String?) {
        self.peer = peer
        self.alpn = alpn
    }
}

/// Sits right after the `NIOSSLHandler` and reports the handshake's outcome through ``handshake``:
/// the peer identity and ALPN on success; a failure when the channel errors or closes first.
///
/// Its one job is observing; every event and read is passed on unchanged.
public final class MeshHandshakeHandler: ChannelInboundHandler, RemovableChannelHandler {
    public typealias InboundIn = NIOAny

    private let promise: EventLoopPromise<MeshHandshake>
    private var completed = false

    /// Resolves once, when the handshake completes or fails.
    public var handshake: EventLoopFuture<MeshHandshake> { promise.futureResult }

    public init(eventLoop: any EventLoop) {
        self.promise = eventLoop.makePromise(of: MeshHandshake.self)
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        context.fireChannelRead(data)
    }

    public func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if !completed, case .handshakeCompleted(let alpn)? = event as? TLSUserEvent {
            completed = true
            promise.succeed(
                MeshHandshake(peer: MeshTLS.peerIdentity(in: context.pipeline.syncOperations), alpn: alpn))
        }
        context.fireUserInboundEventTriggered(event)
    }

    public func errorCaught(context: ChannelHandlerContext, error: any Error) {
        fail(error)
        context.fireErrorCaught(error)
    }

    public func channelInactive(context: ChannelHandlerContext) {
        fail(MeshTLSError(.handshakeIncomplete, "the connection closed before the TLS handshake completed"))
        context.fireChannelInactive()
    }

    public func handlerRemoved(context: ChannelHandlerContext) {
        fail(MeshTLSError(.handshakeIncomplete, "the handshake observer was removed before the handshake completed"))
    }

    private func fail(_ error: any Error) {
        guard !completed else { return }
        completed = true
        promise.fail(error)
    }
}

@available(*, unavailable)
extension MeshHandshakeHandler: Sendable {}
