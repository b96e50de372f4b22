import Logging
import NIOCore
import NIOHTTP2

/// The first handler of every inbound HTTP/2 stream: reads the request's HEADERS, decides where
/// the request goes (``InboundRequestRewrite``), installs the forwarding stage for that protocol
/// behind itself, and from then on passes frames through unchanged.
///
/// The stream channel runs with auto-read off; this handler asks for the first read, and the
/// forwarding stage drives reads after that (so flow control, not buffering, holds a fast caller).
final class InboundStreamRouterHandler: ChannelInboundHandler {
    typealias InboundIn = HTTP2Frame.FramePayload
    typealias InboundOut = HTTP2Frame.FramePayload

    private let environment: InboundStreamEnvironment
    private var routed = false

    init(environment: InboundStreamEnvironment) {
        self.environment = environment
    }

    func channelActive(context: ChannelHandlerContext) {
        context.fireChannelActive()
        context.read()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if routed {
            context.fireChannelRead(data)
            return
        }
        guard case .headers(var headers) = unwrapInboundIn(data) else {
            // A stream starts with HEADERS; NIOHTTP2 enforces it, so this is only a safety net.
            context.close(promise: nil)
            return
        }
        routed = true
        let rewrite = InboundRequestRewrite(
            headers.headers, client: environment.client, clientName: environment.clientName,
            configuration: environment.configuration)
        headers.headers = rewrite.headers
        var logger = environment.logger
        // Only debug lines read these; setting metadata re-renders the handler's metadata, which
        // costs more than the rest of the routing on every request.
        if logger.logLevel <= .debug {
            logger[metadataKey: "authority"] = "\(rewrite.authority)"
            logger[metadataKey: "app_port"] = "\(rewrite.appPort)"
        }
        do {
            let stage: any ChannelHandler
            switch rewrite.appProtocol {
            case .http1:
                stage = InboundHTTP1ForwardHandler(
                    environment: environment, appPort: rewrite.appPort, authority: rewrite.authority, logger: logger)
            case .http2:
                stage = InboundHTTP2ForwardHandler(
                    environment: environment, appPort: rewrite.appPort, authority: rewrite.authority, logger: logger)
            }
            // Named: an unnamed handler gets a generated name, a string formatted per stream.
            try context.pipeline.syncOperations.addHandler(stage, name: "forward", position: .after(self))
        } catch {
            logger.debug("could not set up the inbound stream", metadata: ["error": "\(error)"])
            context.close(promise: nil)
            return
        }
        context.fireChannelRead(wrapInboundOut(.headers(headers)))
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        // The connection's drain notice reaches every stream too; the connection handles it.
        if event is InboundDrainEvent { return }
        context.fireUserInboundEventTriggered(event)
    }
}

@available(*, unavailable)
extension InboundStreamRouterHandler: Sendable {}
