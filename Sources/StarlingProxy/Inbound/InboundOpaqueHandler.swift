import Foundation
import Logging
import StarlingCore
import NIOCore
import NIOPosix
import NIOSSL

/// Serves one opaque-TCP connection (ALPN `starling-opaque`), after the TLS handler: reads the
/// transport header within the configured time, connects to the application port it maps to, and
/// splices bytes both ways with backpressure and half-close until both sides are done.
///
/// The connection runs with auto-read off: it is read only while the application connection is
/// writable (and the application only while this one is writable).
final class InboundOpaqueHandler: ChannelInboundHandler, InboundOpaqueAppOwner {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private enum State {
        case awaitingHeader(ByteBuffer?)
        case connecting(pending: ByteBuffer?, inputClosed: Bool)
        case relaying(InboundOpaqueAppHandler)
        case closed
    }

    private let configuration: InboundProxy.Configuration
    private var logger: Logger
    private var state: State = .awaitingHeader(nil)
    private var context: ChannelHandlerContext?
    private var headerTimer: Scheduled<Void>?
    private var readWaiting = false
    private var appReadWaiting = false
    private let authorizer: InboundAuthorizer
    private let caller: PolicyCaller
    /// The application port, once the transport header named it (policy is checked against it).
    private var appPort: Int?
    private var policyWatch: UUID?

    init(configuration: InboundProxy.Configuration, logger: Logger, authorizer: InboundAuthorizer, caller: PolicyCaller) {
        self.configuration = configuration
        self.logger = logger
        self.authorizer = authorizer
        self.caller = caller
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        let timeout = configuration.transportHeaderTimeout
        headerTimer = context.eventLoop.scheduleTask(in: TimeAmount(timeout)) {
            loopBound.value.refuse("no transport header within \(timeout)")
        }
        context.read()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        headerTimer?.cancel()
        stopWatchingPolicy()
        self.context = nil
    }

    // MARK: - Caller side

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let bytes = unwrapInboundIn(data)
        switch state {
        case .awaitingHeader(let accumulated):
            var buffer = bytes
            if var accumulated {
                accumulated.writeImmutableBuffer(bytes)
                buffer = accumulated
            }
            let header: OpaqueTransportHeader?
            do {
                header = try OpaqueTransportHeader.decode(from: &buffer)
            } catch {
                refuse(error.message)
                return
            }
            guard let authority = header?.authority else {
                state = .awaitingHeader(buffer)
                return
            }
            headerTimer?.cancel()
            headerTimer = nil
            // Inbound policy decides before anything reaches the application: a refused
            // connection is closed with the bytes it sent unread.
            let port = configuration.appPort(forTarget: authority)
            // Watched before deciding: a change between the two is not missed.
            appPort = port
            watchPolicy(context: context)
            guard authorizer.authorizeTCP(port: port, caller: caller).allowed else {
                close(context: context)
                return
            }
            state = .connecting(pending: buffer.readableBytes > 0 ? buffer : nil, inputClosed: false)
            connect(context: context, authority: authority)
        case .connecting(var pending, let inputClosed):
            if pending == nil {
                pending = bytes
            } else {
                var more = bytes
                pending?.writeBuffer(&more)
            }
            state = .connecting(pending: pending, inputClosed: inputClosed)
        case .relaying(let app):
            app.send(bytes)
        case .closed:
            break
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        switch state {
        case .awaitingHeader:
            context.read()
        case .relaying(let app):
            app.flush()
            readIfPossible(context: context, app: app)
        case .connecting, .closed:
            break
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable, appReadWaiting, case .relaying(let app) = state {
            appReadWaiting = false
            app.read()
        }
        context.fireChannelWritabilityChanged()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard case ChannelEvent.inputClosed = event else {
            // Opaque connections are not interrupted by a drain; the drain timeout ends them.
            if !(event is DrainEvent) { context.fireUserInboundEventTriggered(event) }
            return
        }
        switch state {
        case .awaitingHeader:
            logger.debug("the caller closed before sending a transport header")
            close(context: context)
        case .connecting(let pending, _):
            state = .connecting(pending: pending, inputClosed: true)
        case .relaying(let app):
            app.closeOutput()
        case .closed:
            break
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A FIN without TLS close_notify is still a half-close; keep the other direction open.
        if let sslError = error as? NIOSSLError, sslError == .uncleanShutdown { return }
        logger.debug("opaque inbound connection failed", metadata: ["error": "\(error)"])
        close(context: context)
    }

    func channelInactive(context: ChannelHandlerContext) {
        stopWatchingPolicy()
        if case .relaying(let app) = state {
            app.close()
        }
        state = .closed
        headerTimer?.cancel()
        context.fireChannelInactive()
    }

    /// A policy change checks the open connection again, on its event loop; one no longer
    /// allowed is closed.
    private func watchPolicy(context: ChannelHandlerContext) {
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        let eventLoop = context.eventLoop
        policyWatch = authorizer.watch {
            eventLoop.execute { loopBound.value.recheckPolicy() }
        }
    }

    private func stopWatchingPolicy() {
        if let policyWatch { authorizer.cancelWatch(policyWatch) }
        policyWatch = nil
    }

    private func recheckPolicy() {
        guard let appPort, let context, !isClosed else { return }
        guard !authorizer.authorizeTCP(port: appPort, caller: caller, count: false).allowed else { return }
        logger.info("closing an open connection the new inbound policy denies")
        close(context: context)
    }

    private var isClosed: Bool {
        if case .closed = state { return true }
        return false
    }

    private func readIfPossible(context: ChannelHandlerContext, app: InboundOpaqueAppHandler) {
        if app.isWritable {
            context.read()
        } else {
            readWaiting = true
        }
    }

    private func refuse(_ reason: String) {
        headerTimer?.cancel()
        headerTimer = nil
        guard let context, !isClosed else { return }
        logger.notice("refused opaque connection", metadata: ["reason": "\(reason)"])
        close(context: context)
    }

    private func close(context: ChannelHandlerContext) {
        if case .relaying(let app) = state { app.close() }
        state = .closed
        Self.closeConnection(context)
    }

    /// Closes the caller's connection. The TLS handler waits for the caller's close_notify before
    /// it lets the socket go; it only treats that as the end with half-closure off, and only sees
    /// it with reads on — otherwise it would hold the connection until its shutdown timeout.
    static func closeConnection(_ context: ChannelHandlerContext) {
        try? context.channel.syncOptions?.setOption(ChannelOptions.allowRemoteHalfClosure, value: false)
        try? context.channel.syncOptions?.setOption(ChannelOptions.autoRead, value: true)
        context.read()
        context.close(promise: nil)
    }

    // MARK: - Connecting

    private func connect(context: ChannelHandlerContext, authority: String) {
        let port = configuration.appPort(forTarget: authority)
        logger[metadataKey: "authority"] = "\(authority)"
        logger[metadataKey: "app_port"] = "\(port)"
        let loopBound = NIOLoopBound(self, eventLoop: context.eventLoop)
        ClientBootstrap(group: context.eventLoop)
            .connectTimeout(TimeAmount(configuration.appConnectTimeout))
            .channelOption(ChannelOptions.autoRead, value: false)
            .channelOption(ChannelOptions.allowRemoteHalfClosure, value: true)
            .channelOption(ChannelOptions.socketOption(.tcp_nodelay), value: 1)
            .connect(host: configuration.appHost, port: port)
            .whenComplete { result in
                let handler = loopBound.value
                switch result {
                case .success(let channel): handler.connected(channel)
                case .failure(let error): handler.connectFailed(error, port: port)
                }
            }
    }

    private func connected(_ channel: any Channel) {
        guard case .connecting(let pending, let inputClosed) = state, let context else {
            channel.close(promise: nil)
            return
        }
        let app = InboundOpaqueAppHandler(owner: self)
        do {
            try channel.pipeline.syncOperations.addHandler(app)
        } catch {
            channel.close(promise: nil)
            close(context: context)
            return
        }
        state = .relaying(app)
        if let pending { app.send(pending) }
        app.flush()
        app.read()
        if inputClosed {
            app.closeOutput()
        } else {
            readIfPossible(context: context, app: app)
        }
    }

    private func connectFailed(_ error: any Error, port: Int) {
        guard case .connecting = state, let context else { return }
        logger.info(
            "connecting to the application failed",
            metadata: ["error": "\(error)", "app": "\(configuration.appHost):\(port)"]
        )
        close(context: context)
    }

    // MARK: - Application side

    func appReceived(_ bytes: ByteBuffer) {
        context?.write(wrapOutboundOut(bytes), promise: nil)
    }

    func appReadComplete(_ app: InboundOpaqueAppHandler) {
        guard let context else { return }
        context.flush()
        if context.channel.isWritable {
            app.read()
        } else {
            appReadWaiting = true
        }
    }

    func appWritabilityChanged(isWritable: Bool) {
        guard isWritable, readWaiting, let context, case .relaying(let app) = state else { return }
        readWaiting = false
        readIfPossible(context: context, app: app)
    }

    func appInputClosed() {
        // The application finished sending: pass the half-close on (TLS close_notify).
        context?.close(mode: .output, promise: nil)
    }

    func appClosed() {
        guard let context, case .relaying = state else { return }
        state = .closed
        Self.closeConnection(context)
    }
}

@available(*, unavailable)
extension InboundOpaqueHandler: Sendable {}
