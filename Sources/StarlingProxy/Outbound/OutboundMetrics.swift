import Metrics
import NIOCore
import StarlingCore

/// The outbound proxy's metrics (swift-metrics; the starting command bootstraps Prometheus).
/// Every name and dimension the outbound side emits is here.
enum OutboundMetrics {
    static let requestsTotal = "starling_proxy_requests_total"
    static let responseLatency = "starling_proxy_response_latency_seconds"
    static let tcpOpenTotal = "starling_proxy_tcp_open_total"
    static let tcpCloseTotal = "starling_proxy_tcp_close_total"
    static let tcpBytesTotal = "starling_proxy_tcp_bytes_total"

    static let direction = ("direction", "outbound")

    /// One request's outcome, counted when its response head went out (or its error response).
    struct Request: Hashable, Sendable {
        var authority: String
        var targetService: String
        var backend: String?
        var statusCode: Int
        var tls: Bool
        /// Spelled out (`dnsName`) only when the counter is made.
        var peerIdentity: MeshIdentity?
    }

    private struct LatencyKey: Hashable, Sendable {
        var targetService: String
        var statusCode: Int
    }

    private static let requestCounters = MetricHandleCache<Request, Counter>()
    private static let latencyTimers = MetricHandleCache<LatencyKey, Metrics.Timer>()

    static func record(_ request: Request, latency: Duration?) {
        requestCounters.handle(request) {
            var dimensions = [
                direction,
                ("authority", request.authority),
                ("target_service", request.targetService),
                ("status_code", String(request.statusCode)),
                ("tls", request.tls ? "true" : "false"),
                ("peer_identity", request.peerIdentity?.dnsName ?? ""),
            ]
            if let backend = request.backend { dimensions.append(("backend", backend)) }
            return Counter(label: requestsTotal, dimensions: dimensions)
        }.increment()
        if let latency {
            let key = LatencyKey(targetService: request.targetService, statusCode: request.statusCode)
            latencyTimers.handle(key) {
                Metrics.Timer(
                    label: responseLatency,
                    dimensions: [direction, ("target_service", key.targetService), ("status_code", String(key.statusCode))])
            }.record(duration: latency)
        }
    }

    static func connectionOpened() {
        Counter(label: tcpOpenTotal, dimensions: [direction]).increment()
    }

    static func connectionClosed(kind: String, bytesRead: Int, bytesWritten: Int) {
        // The protocol is known only after detection, so it labels closes, not opens.
        Counter(label: tcpCloseTotal, dimensions: [direction, ("protocol", kind)]).increment()
        Counter(label: tcpBytesTotal, dimensions: [direction, ("io", "read")]).increment(by: bytesRead)
        Counter(label: tcpBytesTotal, dimensions: [direction, ("io", "write")]).increment(by: bytesWritten)
    }
}

/// Counts a client connection's bytes and reports them, with the open and close, to
/// ``OutboundMetrics``. First handler of every accepted outbound connection.
final class ConnectionMetricsHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = IOData
    typealias OutboundOut = IOData

    private var bytesRead = 0
    private var bytesWritten = 0
    private var open = false
    /// The detected protocol, set once known (`http1`, `http2`, `opaque`, `unknown`).
    var kind = "unknown"

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { opened() }
    }

    func channelActive(context: ChannelHandlerContext) {
        opened()
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        if open {
            open = false
            OutboundMetrics.connectionClosed(kind: kind, bytesRead: bytesRead, bytesWritten: bytesWritten)
        }
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        bytesRead += unwrapInboundIn(data).readableBytes
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        bytesWritten += unwrapOutboundIn(data).readableBytes
        context.write(data, promise: promise)
    }

    private func opened() {
        guard !open else { return }
        open = true
        OutboundMetrics.connectionOpened()
    }
}

@available(*, unavailable)
extension ConnectionMetricsHandler: Sendable {}
