import Logging
import NIOCore
import NIOSSL
import StarlingCore
import StarlingProxy

/// The gateway's `starling-opaque` side: the caller's transport header names the target; the
/// same admission rules as for HTTP apply (a refusal just closes the connection, logged once);
/// then a local endpoint is picked, dialed with ALPN `starling-opaque`, sent a transport header
/// naming the same target, and the two connections are spliced.
struct GatewayOpaque: Sendable {
    let discovery: any DiscoverySource
    let picker: any EndpointPicker
    let dialer: PeerDialer
    /// The gateway's own policy, checked per connection (the caller's cluster is not known on
    /// an opaque connection: it counts as `unknown`).
    var authorizer = InboundAuthorizer.allowAll()
    var policyPort = 4143

    /// Adds the transport-header reader and the (not yet linked) splice to an established
    /// `starling-opaque` connection; `header` is completed with the target authority.
    static func configure(
        _ channel: any Channel, timeout: Duration, logger: Logger, header: EventLoopPromise<String>
    ) throws {
        // Opaque TCP respects half-close; the TLS handler reports close_notify or FIN as input closed.
        try channel.syncOptions?.setOption(ChannelOptions.allowRemoteHalfClosure, value: true)
        try channel.pipeline.syncOperations.addHandler(
            GatewayTransportHeaderHandler(timeout: TimeAmount(timeout), logger: logger, header: header))
        // Holds bytes after the header (and a half-close) until the workload is linked.
        try channel.pipeline.syncOperations.addHandler(SpliceHandler())
    }

    /// Admits, picks, dials and splices; returns when both connections have closed.
    func serve(_ client: any Channel, target: String, peer: MeshIdentity, logger: Logger) async {
        var logger = logger
        logger[metadataKey: "target"] = "\(target)"
        // The gateway's own policy, watched before deciding: a policy change closes the
        // connection if it no longer allows it, however long it has been open.
        let caller = PolicyCaller(identity: peer.dnsName, cluster: GatewayHeaders.unknownCluster, address: nil, viaGateway: true)
        let (authorizer, port) = (self.authorizer, policyPort)
        let watch = authorizer.watch {
            guard !authorizer.authorizeTCP(port: port, caller: caller, count: false).allowed else { return }
            // Closed the way `close(_:)` does, at once: with half-closure on, the TLS handler
            // would wait for the caller's close_notify and keep passing its bytes on meanwhile.
            client.eventLoop.execute {
                try? client.syncOptions?.setOption(ChannelOptions.allowRemoteHalfClosure, value: false)
                try? client.syncOptions?.setOption(ChannelOptions.autoRead, value: true)
                client.read()
                client.close(promise: nil)
            }
        }
        defer { authorizer.cancelWatch(watch) }
        do {
            let profile = try await discovery.profile(target)
            if let refusal = GatewayAdmission.check(target: target, profile: profile) {
                GatewayMetrics.refused(reason: refusal.reason)
                logger.notice(
                    "gateway refused an opaque connection", metadata: ["reason": "\(refusal.reason)", "error": "\(refusal.message)"])
                await Self.close(client)
                return
            }
            guard authorizer.authorizeTCP(port: policyPort, caller: caller).allowed else {
                await Self.close(client)
                return
            }
        } catch {
            logger.warning("gateway opaque connection failed", metadata: ["error": "\(error)"])
            await Self.close(client)
            return
        }
        let pick: Pick
        let upstream: PeerDialer.Connection
        let started: ContinuousClock.Instant
        do throws(PickFailure) {
            (pick, upstream, started) = try await picker.connect(target, logger: logger) { pick, timeout throws(ProxyError) in
                guard pick.endpoint.identity != nil else {
                    throw ProxyError(.connectFailed, "\(pick.endpoint) of \(target) is not meshed; the gateway forwards over mTLS only")
                }
                return try await dialer.dial(pick.endpoint, alpn: [MeshHeaders.opaqueALPN], group: client.eventLoop, timeout: timeout,
                    halfClosure: true
                ) {
                    channel in try channel.pipeline.syncOperations.addHandler(SpliceHandler())
                }
            }
        } catch {
            logger.warning(
                "gateway opaque connect failed",
                metadata: ["endpoint": "\(error.pick.map { "\($0.endpoint)" } ?? "-")", "error": "\(error.error)"])
            await Self.close(client)
            return
        }
        pick.complete(.success(latency: ContinuousClock.now - started))
        do {
            try await upstream.channel.writeAndFlush(try OpaqueTransportHeader(authority: target).encoded())
            let upstreamChannel = upstream.channel
            try await client.eventLoop.submit {
                let clientSplice = try client.pipeline.syncOperations.handler(type: SpliceHandler.self)
                let upstreamSplice = try upstreamChannel.pipeline.syncOperations.handler(type: SpliceHandler.self)
                SpliceHandler.link(clientSplice, upstreamSplice)
            }.get()
        } catch {
            logger.warning(
                "gateway opaque splice failed", metadata: ["endpoint": "\(pick.endpoint)", "error": "\(error)"])
            upstream.channel.close(promise: nil)
            await Self.close(client)
            return
        }
        logger.debug("gateway opaque connection spliced", metadata: ["endpoint": "\(pick.endpoint)"])
        try? await client.closeFuture.get()
        try? await upstream.channel.closeFuture.get()
    }

    /// Closes a caller's TLS connection promptly: the TLS handler waits for the caller's
    /// close_notify, which it only sees with reads on and half-closure off.
    static func close(_ channel: any Channel) async {
        try? await channel.setOption(ChannelOptions.allowRemoteHalfClosure, value: false).get()
        try? await channel.setOption(ChannelOptions.autoRead, value: true).get()
        try? await channel.close()
    }
}

/// Reads the transport header at the start of a gateway's opaque connection, within `timeout`:
/// completes `header` with the target authority, passes any bytes after it on (to the splice,
/// which holds them until linked) and removes itself. A malformed or missing header is logged
/// once and closes the connection.
final class GatewayTransportHeaderHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private let timeout: TimeAmount
    private let logger: Logger
    private let header: EventLoopPromise<String>
    private var buffer: ByteBuffer?
    private var timer: Scheduled<Void>?
    private var done = false

    init(timeout: TimeAmount, logger: Logger, header: EventLoopPromise<String>) {
        self.timeout = timeout
        self.logger = logger
        self.header = header
    }

    func handlerAdded(context: ChannelHandlerContext) {
        let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        let timeout = self.timeout
        timer = context.eventLoop.scheduleTask(in: timeout) {
            let (handler, context) = loopBound.value
            handler.refuse(context: context, reason: "timeout", "no transport header within \(timeout)")
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        timer?.cancel()
        timer = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard !done else { return }
        var bytes = unwrapInboundIn(data)
        if var held = buffer {
            held.writeBuffer(&bytes)
            bytes = held
        }
        let decoded: OpaqueTransportHeader?
        do {
            decoded = try OpaqueTransportHeader.decode(from: &bytes)
        } catch {
            refuse(context: context, reason: "bad-transport-header", error.message)
            return
        }
        guard let decoded else {
            buffer = bytes
            return
        }
        done = true
        timer?.cancel()
        timer = nil
        buffer = nil
        if bytes.readableBytes > 0 { context.fireChannelRead(wrapInboundOut(bytes)) }
        header.succeed(decoded.authority)
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if !done, case ChannelEvent.inputClosed = event {
            done = true
            logger.debug("the caller closed before sending a transport header")
            header.fail(ChannelError.eof)
            context.close(promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard !done else {
            context.fireErrorCaught(error)
            return
        }
        if let sslError = error as? NIOSSLError, sslError == .uncleanShutdown { return }
        done = true
        logger.debug("the opaque connection failed before its transport header", metadata: ["error": "\(error)"])
        header.fail(error)
        context.close(promise: nil)
    }

    private func refuse(context: ChannelHandlerContext, reason: String, _ detail: String) {
        guard !done else { return }
        done = true
        timer?.cancel()
        timer = nil
        GatewayMetrics.refused(reason: reason)
        logger.notice("gateway refused an opaque connection", metadata: ["reason": "\(reason)", "error": "\(detail)"])
        header.fail(GatewayRefusal(.badRequest, detail))
        try? context.channel.syncOptions?.setOption(ChannelOptions.allowRemoteHalfClosure, value: false)
        context.close(promise: nil)
    }
}

@available(*, unavailable)
extension GatewayTransportHeaderHandler: Sendable {}
