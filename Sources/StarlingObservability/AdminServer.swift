import Foundation
public import Logging
public import NIOCore
import NIOHTTP1
public import NIOPosix

/// The admin HTTP endpoint of a component: `GET /ready`, `GET /live`, `GET /metrics`
/// (Prometheus text), the component's own documents (the controller's Prometheus targets), and
/// streams (a proxy's tap). Small on purpose: one handler, no body parsing.
public final class AdminServer: Sendable {
    /// What a stream route sees of its request.
    public struct Request: Sendable {
        public var path: String
        /// Query parameters, percent-decoded; the last of a repeated name wins.
        public var query: [String: String]
        /// The `authorization` field, if sent.
        public var authorization: String?

        public init(path: String, query: [String: String] = [:], authorization: String? = nil) {
            self.path = path
            self.query = query
            self.authorization = authorization
        }
    }

    /// A stream route's answer: a refusal, or chunks sent as `produce` yields them until it
    /// returns (then the response ends), the client goes away or the server stops (both cancel
    /// it). At most `buffer` chunks wait for a slow client; the oldest go first.
    public enum StreamAnswer: Sendable {
        case refused(status: Int, message: String)
        case stream(contentType: String, buffer: Int, produce: @Sendable (AsyncStream<String>.Continuation) async -> Void)
    }

    /// The work of one open stream, run by ``runStreams()``.
    typealias StreamJob = @Sendable () async -> Void

    public struct Routes: Sendable {
        /// nil: ready; otherwise why not.
        public var readiness: @Sendable () -> String?
        /// Prometheus text exposition.
        public var metrics: @Sendable () -> String
        /// Further `GET` paths: each answers with its content type and body, made on each request.
        public var documents: [String: @Sendable () -> (contentType: String, body: String)]
        /// Further `GET` paths answered with a stream.
        public var streams: [String: @Sendable (Request) -> StreamAnswer]

        public init(
            readiness: @escaping @Sendable () -> String?, metrics: @escaping @Sendable () -> String,
            documents: [String: @Sendable () -> (contentType: String, body: String)] = [:],
            streams: [String: @Sendable (Request) -> StreamAnswer] = [:]
        ) {
            self.readiness = readiness
            self.metrics = metrics
            self.documents = documents
            self.streams = streams
        }
    }

    private let channel: any Channel
    private let jobs: AsyncStream<StreamJob>
    private let submit: AsyncStream<StreamJob>.Continuation

    /// Binds `host:port` (port 0 picks one) and starts serving. Streams are served while
    /// ``runStreams()`` runs (``AdminServerService`` runs it).
    public init(host: String, port: Int, routes: Routes, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton) async throws {
        let (jobs, submit) = AsyncStream.makeStream(of: StreamJob.self)
        self.jobs = jobs
        self.submit = submit
        channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 64)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(AdminHandler(routes: routes, submit: { submit.yield($0) }))
                }
            }
            .bind(host: host, port: port).get()
    }

    public var port: Int { channel.localAddress?.port ?? 0 }

    /// Runs each open stream as a child task until cancelled (which ends them all) or closed.
    public func runStreams() async {
        await withDiscardingTaskGroup { group in
            for await job in jobs {
                group.addTask { await job() }
            }
        }
    }

    public func close() async {
        submit.finish()
        try? await channel.close()
    }
}

final class AdminHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let routes: AdminServer.Routes
    private let submit: @Sendable (@escaping AdminServer.StreamJob) -> Void
    private var head: HTTPRequestHead?
    /// A stream is being sent: the connection takes no further request.
    private var streaming = false

    init(routes: AdminServer.Routes, submit: @escaping @Sendable (@escaping AdminServer.StreamJob) -> Void) {
        self.routes = routes
        self.submit = submit
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head): self.head = head
        case .body: break
        case .end:
            guard let head, !streaming else { return }
            self.head = nil
            let (path, query) = Self.split(head.uri)
            if head.method == .GET, let stream = routes.streams[path] {
                let request = AdminServer.Request(path: path, query: query, authorization: head.headers.first(name: "authorization"))
                switch stream(request) {
                case .refused(let status, let message):
                    respond(context: context, head: head, status: HTTPResponseStatus(statusCode: status), contentType: "text/plain", body: message + "\n")
                case .stream(let contentType, let buffer, let produce):
                    startStream(context: context, head: head, contentType: contentType, buffer: buffer, produce: produce)
                }
                return
            }
            let (status, contentType, body) = respond(head)
            respond(context: context, head: head, status: status, contentType: contentType, body: body)
        }
    }

    private func respond(context: ChannelHandlerContext, head: HTTPRequestHead, status: HTTPResponseStatus, contentType: String, body: String) {
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

    /// How long one chunk may wait for the client to take it before the stream is closed.
    static let streamWriteTimeout: TimeAmount = .seconds(10)

    /// Sends the head, then has the server run the stream: the producer, the pump that writes
    /// each chunk as it comes (waiting for each write, so a slow client slows the stream rather
    /// than growing a buffer here; one that takes no write for ``streamWriteTimeout`` is closed),
    /// and a watch on the connection that cancels both when the client goes away.
    private func startStream(
        context: ChannelHandlerContext, head: HTTPRequestHead, contentType: String, buffer: Int,
        produce: @escaping @Sendable (AsyncStream<String>.Continuation) async -> Void
    ) {
        streaming = true
        var headers = HTTPHeaders()
        headers.add(name: "content-type", value: contentType)
        headers.add(name: "cache-control", value: "no-store")
        headers.add(name: "connection", value: "close")
        context.writeAndFlush(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: .ok, headers: headers))), promise: nil)
        let bound = NIOLoopBound(context, eventLoop: context.eventLoop)
        let closed = context.channel.closeFuture
        submit {
            let (chunks, sink) = AsyncStream.makeStream(of: String.self, bufferingPolicy: .bufferingNewest(max(1, buffer)))
            await withTaskGroup(of: Bool.self) { group in
                group.addTask {
                    await produce(sink)
                    sink.finish()
                    return false
                }
                // The pump ends the response and closes the connection, whatever ended it.
                group.addTask {
                    await Self.pump(chunks, to: bound)
                    return true
                }
                group.addTask {
                    try? await closed.get()
                    return true
                }
                // Until the response ended or the client went away (the producer's end is not
                // one: the pump still sends what it left).
                while let ended = await group.next(), !ended {}
                group.cancelAll()
                sink.finish()
            }
        }
    }

    /// Writes each chunk, then the end, then closes the connection (also when a write fails or
    /// stalls, or the pump is cancelled).
    private static func pump(_ chunks: AsyncStream<String>, to bound: NIOLoopBound<ChannelHandlerContext>) async {
        let eventLoop = bound.eventLoop
        for await chunk in chunks {
            let stalled = eventLoop.scheduleTask(in: streamWriteTimeout) { bound.value.close(promise: nil) }
            let written = eventLoop.flatSubmit {
                bound.value.writeAndFlush(NIOAny(HTTPServerResponsePart.body(.byteBuffer(ByteBuffer(string: chunk)))))
            }
            written.whenComplete { _ in stalled.cancel() }
            guard (try? await written.get()) != nil else { break }
        }
        eventLoop.execute {
            let context = bound.value
            context.writeAndFlush(NIOAny(HTTPServerResponsePart.end(nil))).whenComplete { _ in context.close(promise: nil) }
        }
    }

    /// The path and the percent-decoded query of a request target.
    static func split(_ uri: String) -> (path: String, query: [String: String]) {
        let parts = uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
        let path = parts.first.map(String.init) ?? uri
        var query: [String: String] = [:]
        if parts.count == 2 {
            for pair in parts[1].split(separator: "&") {
                let kv = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
                func decode(_ s: Substring) -> String {
                    let spaced = s.replacingOccurrences(of: "+", with: " ")
                    return spaced.removingPercentEncoding ?? spaced
                }
                guard let name = kv.first.map(decode), !name.isEmpty else { continue }
                query[name] = kv.count == 2 ? decode(kv[1]) : ""
            }
        }
        return (path, query)
    }

    private func respond(_ head: HTTPRequestHead) -> (HTTPResponseStatus, String, String) {
        guard head.method == .GET || head.method == .HEAD else {
            return (.methodNotAllowed, "text/plain", "only GET is served here\n")
        }
        let path = Self.split(head.uri).path
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
            let paths = (["/ready", "/live", "/metrics"] + (Array(routes.documents.keys) + Array(routes.streams.keys)).sorted())
                .joined(separator: ", ")
            return (.notFound, "text/plain", "not found: try \(paths)\n")
        }
    }
}
