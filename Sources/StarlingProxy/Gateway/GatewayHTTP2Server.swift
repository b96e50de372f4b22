import Logging
import NIOCore
import NIOHPACK
import NIOHTTP2
import StarlingCore

/// The gateway's `h2` side: every stream a calling proxy opens is admitted
/// (``GatewayAdmission``) and forwarded as a stream on the pooled mTLS HTTP/2 connection to a
/// local workload, with the caller's verified identity passed on.
///
/// Order of stages per stream: target and hop check → profile (exported, not a mirror) → pick →
/// connect → rewrite headers (``forwardedHeaders(_:peer:)``) → exchange with the pick's timeout
/// (bodies streamed both ways with backpressure, trailers kept) → report the outcome to the
/// balancer and metrics.
struct GatewayHTTP2Server: Sendable {
    let discovery: any DiscoverySource
    let picker: any EndpointPicker
    let pool: PeerConnectionPool
    /// How long a finished response may wait for the caller to take its last frames.
    let idleTimeout: TimeAmount
    /// Open taps; this cluster's name and the gateway's identity for their events.
    var tap = TapHub()
    var clusterName = ""
    var localIdentity = ""

    /// Adds the HTTP/2 server handlers to an established `h2` connection (call on its event loop).
    static func configure(_ channel: any Channel, configuration: GatewayProxy.Configuration) throws -> HTTP2ServerStreams {
        var http2 = NIOHTTP2Handler.Configuration()
        http2.connection.initialSettings = [
            HTTP2Setting(parameter: .maxConcurrentStreams, value: configuration.maxConcurrentStreams),
            HTTP2Setting(parameter: .maxHeaderListSize, value: configuration.maxHeaderListSize),
            HTTP2Setting(parameter: .enablePush, value: 0),
        ]
        // Rapid reset and CONTINUATION floods: NIOHTTP2's limits stay on, the reset and error
        // rate limits are set explicitly (as on the inbound side).
        http2.connection.maximumBufferedControlFrames = 1000
        http2.stream.streamResetFrameRateLimit.maximumCount = 200
        http2.stream.streamResetFrameRateLimit.windowLength = .seconds(30)
        http2.stream.streamErrorRateLimit.maximumCount = 200
        http2.stream.streamErrorRateLimit.windowLength = .seconds(30)
        let activity = HTTP2ConnectionActivity()
        let server = try HTTP2ServerStreams.configure(channel, configuration: http2, activity: activity)
        try channel.pipeline.syncOperations.addHandler(
            HTTP2ConnectionLivenessHandler(activity: activity, idleTimeout: TimeAmount(configuration.idleTimeout)))
        try channel.pipeline.syncOperations.addHandler(GatewayHTTP2DrainHandler(activity: activity))
        return server
    }

    /// Serves the connection's streams until it closes.
    func serve(_ server: HTTP2ServerStreams, peer: MeshIdentity, logger: Logger) async {
        await server.serveEach { stream in await serveStream(stream, peer: peer, logger: logger) }
    }

    private func serveStream(_ stream: PeerStream, peer: MeshIdentity, logger: Logger) async {
        // A refusal, an error or a response that broke off resets the stream unless it closed.
        defer { stream.close() }
        do {
            var frames = stream.inbound.makeAsyncIterator()
            guard case .headers(let first)? = try await frames.next() else { return }
            let sink = HTTP2ResponseSink(stream: stream)
            var caller = GatewayCaller(identity: peer, claimedCluster: first.headers.first(name: GatewayHeaders.clientCluster))
            if tap.isActive {
                caller.tapped = (first.headers.first(name: ":method") ?? "", first.headers.first(name: ":path") ?? "")
            }
            let target = first.headers.first(name: MeshHeaders.target)
            var logger = logger
            logger[metadataKey: "target"] = "\(target ?? "-")"
            let admitted: String
            switch GatewayAdmission.check(target: target, hops: first.headers.first(name: GatewayHeaders.hops)) {
            case .failure(let refusal):
                try await refuse(refusal, target: target ?? "-", peer: caller, sink: sink, logger: logger)
                return
            case .success(let target):
                admitted = target
            }
            let profile: ServiceProfile
            do throws(ProxyError) {
                profile = try await discovery.profile(admitted)
            } catch {
                try await fail(error, target: admitted, peer: caller, pick: nil, sink: sink, logger: logger)
                return
            }
            if let refusal = GatewayAdmission.check(target: admitted, profile: profile) {
                try await refuse(refusal, target: admitted, peer: caller, sink: sink, logger: logger)
                return
            }
            var requestEnded = first.endStream
            try await forward(
                first, target: admitted, peer: caller, sink: sink, logger: logger,
                sendBody: { writer in
                    try await Self.relayRequestBody(from: &frames, to: writer)
                    requestEnded = true
                })
            // A response that broke off has thrown: its stream is reset on the way out.
            if requestEnded { await stream.awaitClose(within: idleTimeout) }
        } catch {
            logger.debug("gateway stream ended", metadata: ["error": "\(error)"])
        }
    }

    /// Picks a local endpoint, connects and runs the exchange.
    private func forward(
        _ first: HTTP2Frame.FramePayload.Headers, target: String, peer: GatewayCaller, sink: HTTP2ResponseSink,
        logger: Logger, sendBody: (any UpstreamBodyWriter) async throws -> Void
    ) async throws {
        let pick: Pick
        let stream: PeerStream
        let started: ContinuousClock.Instant
        do throws(PickFailure) {
            (pick, stream, started) = try await picker.connect(target, logger: logger) { pick, timeout throws(ProxyError) in
                guard pick.endpoint.identity != nil else {
                    throw ProxyError(.connectFailed, "\(pick.endpoint) of \(target) is not meshed; the gateway forwards over mTLS only")
                }
                return try await pool.connection(to: pick.endpoint, timeout: timeout).openStream()
            }
        } catch {
            try await fail(error.error, target: target, peer: peer, pick: error.pick, sink: sink, logger: logger)
            return
        }
        let result = await runExchange(
            upstream: .http2(stream), headers: Self.forwardedHeaders(first.headers, peer: peer.identity), hasBody: !first.endStream,
            timeout: pick.timeout, sink: sink, sendBody: sendBody)
        switch result {
        case .responded(let status, _, let latency):
            pick.complete(status >= 500 ? .failure(latency: latency) : .success(latency: latency))
            record(target: target, status: status, caller: peer, pick: pick, latency: latency)
            logger.debug(
                "forwarded through the gateway",
                metadata: ["endpoint": "\(pick.endpoint)", "status": "\(status)", "latency": "\(latency)"])
        case .failed(let error, let headSent, let errorResponded):
            pick.complete(.failure(latency: ContinuousClock.now - started))
            if headSent {
                logger.warning("response broke off", metadata: ["endpoint": "\(pick.endpoint)", "error": "\(error)"])
                throw error
            }
            if errorResponded {
                record(target: target, status: error.httpStatus, caller: peer, pick: pick)
                logger.warning("request failed", metadata: ["endpoint": "\(pick.endpoint)", "error": "\(error)"])
                return
            }
            try await fail(error, target: target, peer: peer, pick: pick, sink: sink, logger: logger)
        }
    }

    /// The request headers the local workload's inbound proxy gets: the caller's own headers
    /// (`starling-target` and `starling-orig-proto` kept), whatever the caller claimed about
    /// forwarding dropped, and the gateway's hop marker, the caller's verified identity and the
    /// caller's cluster (as it named it) added.
    static func forwardedHeaders(_ incoming: HPACKHeaders, peer: MeshIdentity) -> HPACKHeaders {
        var headers = incoming
        HopByHopHeaders.remove(from: &headers)
        let cluster = incoming.first(name: GatewayHeaders.clientCluster) ?? GatewayHeaders.unknownCluster
        for name in headers.map(\.name) where name.lowercased().hasPrefix(GatewayHeaders.forwardedPrefix) {
            headers.remove(name: name)
        }
        headers.remove(name: MeshHeaders.clientIdentity)
        headers.remove(name: GatewayHeaders.clientCluster)
        headers.remove(name: GatewayHeaders.hops)
        headers.add(name: GatewayHeaders.hops, value: "1")
        headers.add(name: GatewayHeaders.forwardedClientIdentity, value: peer.dnsName)
        headers.add(name: GatewayHeaders.forwardedClientCluster, value: cluster)
        return headers
    }

    /// Copies the caller's request body (and trailers) to the workload, one frame at a time.
    private static func relayRequestBody(
        from frames: inout PeerStream.Inbound.AsyncIterator,
        to writer: any UpstreamBodyWriter
    ) async throws {
        while let payload = try await frames.next() {
            switch payload {
            case .data(let data):
                if case .byteBuffer(let buffer) = data.data, buffer.readableBytes > 0 {
                    try await writer.body(buffer)
                }
                if data.endStream {
                    try await writer.end(nil)
                    return
                }
            case .headers(let trailers):
                try await writer.end(trailers.headers)
                return
            case .rstStream:
                throw ProxyError(.badRequest, "the caller reset the stream")
            default:
                continue
            }
        }
        throw ProxyError(.badRequest, "the caller's stream ended inside the request body")
    }

    // MARK: - Responses of the gateway itself

    private func refuse(
        _ refusal: GatewayRefusal, target: String, peer: GatewayCaller, sink: HTTP2ResponseSink, logger: Logger
    ) async throws {
        GatewayMetrics.refused(reason: refusal.reason)
        record(target: target, status: refusal.status, caller: peer, pick: nil, nameUnknown: true)
        logger.notice("gateway refused a request", metadata: ["reason": "\(refusal.reason)", "error": "\(refusal.message)"])
        let body = ByteBuffer(string: "\(refusal.message)\n")
        let headers: HPACKHeaders = [
            ":status": String(refusal.status), ProxyError.headerName: refusal.code.name,
            "content-type": "text/plain; charset=utf-8", "content-length": String(body.readableBytes),
        ]
        try await sink.stream.write(.headers(.init(headers: headers)))
        try await sink.stream.write(.data(.init(data: .byteBuffer(body), endStream: true)))
    }

    private func fail(
        _ error: ProxyError, target: String, peer: GatewayCaller, pick: Pick?, sink: HTTP2ResponseSink, logger: Logger
    ) async throws {
        let metadata: Logger.Metadata = ["endpoint": "\(pick.map { "\($0.endpoint)" } ?? "-")", "error": "\(error)"]
        switch error.code {
        case .unknownService, .badRequest:
            logger.debug("gateway request refused", metadata: metadata)
        default:
            logger.warning("gateway request failed", metadata: metadata)
        }
        record(
            target: target, status: error.httpStatus, caller: peer, pick: pick,
            nameUnknown: error.code == .unknownService || error.code == .badRequest)
        try await sink.error(error, abortRequest: false)
    }

    /// One request's outcome, to the metrics and to the open taps. A target refused or unknown
    /// was named by the caller alone: the metrics count it as `unknown` (a bounded label), the
    /// tap shows it as sent.
    private func record(
        target: String, status: Int, caller: GatewayCaller, pick: Pick?, latency: Duration? = nil, nameUnknown: Bool = false
    ) {
        GatewayMetrics.request(target: nameUnknown ? OutboundMetrics.unknown : target, status: status, caller: caller, latency: latency)
        guard let request = caller.tapped else { return }
        tap.publish {
            TapEvent(
                direction: "gateway", method: request.method, authority: target, path: request.path, status: status,
                latency: latency, sourceIdentity: caller.identity.dnsName,
                destinationIdentity: pick?.endpoint.identity?.dnsName ?? "", sourceCluster: caller.cluster,
                destinationCluster: clusterName, destinationWorkload: pick?.endpoint.labels["workload"], tls: true)
        }
    }
}

/// Sits after the HTTP/2 handler of a gateway connection: when the gateway drains
/// (``InboundDrainEvent``) it sends GOAWAY and closes the connection once its open streams
/// have finished.
final class GatewayHTTP2DrainHandler: ChannelInboundHandler {
    typealias InboundIn = HTTP2Frame
    typealias InboundOut = HTTP2Frame
    typealias OutboundOut = HTTP2Frame

    private let activity: HTTP2ConnectionActivity
    private var check: RepeatedTask?

    init(activity: HTTP2ConnectionActivity) {
        self.activity = activity
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        check?.cancel()
        check = nil
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard event is InboundDrainEvent else {
            context.fireUserInboundEventTriggered(event)
            return
        }
        guard check == nil else { return }
        let goAway = HTTP2Frame(
            streamID: .rootStream, payload: .goAway(lastStreamID: .maxID, errorCode: .noError, opaqueData: nil))
        context.writeAndFlush(wrapOutboundOut(goAway), promise: nil)
        let activity = self.activity
        let channel = context.channel
        check = context.eventLoop.scheduleRepeatedTask(initialDelay: .zero, delay: .milliseconds(50)) { task in
            if activity.openStreams == 0 {
                task.cancel()
                channel.close(promise: nil)
            }
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        check?.cancel()
        check = nil
        context.fireChannelInactive()
    }
}

@available(*, unavailable)
extension GatewayHTTP2DrainHandler: Sendable {}
