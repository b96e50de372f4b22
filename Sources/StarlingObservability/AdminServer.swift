public import Logging
public import NIOCore
import NIOHTTP1
public import NIOPosix

/// The admin HTTP endpoint of a component: `GET /ready`, `GET /live`, `GET /metrics`
/// (Prometheus text), and the component's own documents (the controller's Prometheus targets).
/// Small on purpose: one handler, no body parsing.
public final class AdminServer: Sendable {
    public struct Routes: Sendable {
        /// nil: ready; otherwise why not.
        public var readiness: @Sendable () -> String?
        /// Prometheus text exposition.
        public var metrics: @Sendable () -> String
        /// Further `GET` paths: each answers with its content type and body, made on each request.
        public var documents: [String: @Sendable () -> (contentType: String, body: String)]

        public init(
            readiness: @escaping @Sendable () -> String?, metrics: @escaping @Sendable () -> String,
            documents: [String: @Sendable () -> (contentType: String, body: String)] = [:]
        ) {
            self.readiness = readiness
            self.metrics = metrics
            self.documents = documents
        }
    }

    private let channel: any Channel

    /// Binds `host:port` (port 0 picks one) and starts serving.
    public init(host: String, port: Int, routes: Routes, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) async throws {
        channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 64)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(AdminHandler(routes: routes))
                }
            }
            .bind(host: host, port: port).get()
    }

    public var port: Int { channel.localAddress?.port ?? 0 }

    public func close() async {
        try? await channel.close()
    }
}

final class AdminHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let routes: AdminServer.Routes
    private var head: HTTPRequestHead?

    init(routes: AdminServer.Routes) { self.routes = routes }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head): self.head = head
        case .body: break
        case .end:
            guard let head else { return }
            self.head = nil
            let (status, contentType, body) = respond(head)
            var headers = HTTPHeaders()
            headers.add(name: "content-type", value: contentType)
            headers.add(name: "content-length", value: "\(body.utf8.count)")
            if !head.isKeepAlive { headers.add(name: "connection", value: "close") }
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: status, headers: headers))), promise: nil)
            context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: body)))), promise: nil)
            let keepAlive = head.isKeepAlive
            context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in
                if !keepAlive { context.close(promise: nil) }
            }
        }
    }

    private func respond(_ head: HTTPRequestHead) -> (HTTPResponseStatus, String, String) {
        guard head.method == .GET || head.method == .HEAD else {
            return (.methodNotAllowed, "text/plain", "only GET is served here\n")
        }
        let path = head.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? head.uri
        switch path {
        case "/live": return (.ok, "text/plain", "live\n")
        case "/ready":
            if let reason = routes.readiness() { return (.serviceUnavailable, "text/plain", "not ready: \(reason)\n") }
            return (.ok, "text/plain", "ready\n")
        case "/metrics": return (.ok, "text/plain; version=0.0.4", routes.metrics())
        default:
            if let document = routes.documents[path] {
                let (contentType, body) = document()
                return (.ok, contentType, body)
            }
            let paths = (["/ready", "/live", "/metrics"] + routes.documents.keys.sorted()).joined(separator: ", ")
            return (.notFound, "text/plain", "not found: try \(paths)\n")
        }
    }
}
