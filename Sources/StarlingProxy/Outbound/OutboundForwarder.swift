import Logging
import NIOCore
import NIOHPACK
import NIOHTTP1
import NIOPosix
import StarlingCore

/// The routing core of the outbound proxy, shared by the HTTP/1 and HTTP/2 front ends: picks an
/// endpoint for each request, connects (pooled HTTP/2 over mTLS for meshed endpoints, a plain
/// HTTP/1.1 connection otherwise), adds the mesh headers, runs the exchange, and answers
/// failures with `ProxyError.httpStatus` + `starling-error`.
///
/// Order of stages: pick → connect (a connect that fails is tried again on another endpoint or
/// backend, see ``ConnectAttempts``) → rewrite headers → exchange with the pick's timeout →
/// report the outcome to the balancer and metrics.
struct OutboundForwarder: Sendable {
    /// What the client's connection must do after a forwarded request.
    enum Disposition: Sendable {
        /// A complete response (the upstream's or an error) went out.
        case responded
        /// The response broke off after its head; the client connection or stream must be closed.
        case aborted
    }

    let picker: any EndpointPicker
    let pool: PeerConnectionPool
    let dialer: PeerDialer
    let logger: Logger
    /// This cluster's name, sent to remote gateways as `starling-client-cluster` when configured.
    var clusterName: String? = nil
    /// Where finished requests are shown to open taps, and this workload's identity for them.
    var tap: TapHub = TapHub()
    var localIdentity: String = ""

    func forward(
        _ request: OutboundRequest, sink: some OutboundResponseSink,
        sendBody: (any UpstreamBodyWriter) async throws -> Void
    ) async -> Disposition {
        let pick: Pick
        let upstream: Upstream
        let started: ContinuousClock.Instant
        do throws(PickFailure) {
            (pick, upstream, started) = try await picker.connect(request.routingAuthority, logger: logger) {
                pick, timeout throws(ProxyError) in try await connect(pick, timeout: timeout)
            }
        } catch {
            return await respond(error.error, to: request, pick: error.pick, sink: sink)
        }
        let headers = meshHeaders(for: request, pick: pick)
        let result = await runExchange(
            upstream: upstream, headers: headers, hasBody: request.hasBody, timeout: pick.timeout, sink: sink,
            sendBody: sendBody)
        switch result {
        case .responded(let status, _, let latency):
            // A 5xx from the peer proxy itself (it names its error) counts against the endpoint.
            pick.complete(status >= 500 ? .failure(latency: latency) : .success(latency: latency))
            record(request, pick: pick, status: status, latency: latency)
            logger.debug(
                "forwarded",
                metadata: [
                    "authority": "\(request.authority)", "endpoint": "\(pick.endpoint)", "status": "\(status)",
                    "latency": "\(latency)",
                ])
            return .responded
        case .failed(let error, let headSent, let errorResponded):
            pick.complete(.failure(latency: ContinuousClock.now - started))
            if headSent {
                logger.warning(
                    "response broke off",
                    metadata: ["authority": "\(request.authority)", "endpoint": "\(pick.endpoint)", "error": "\(error)"])
                return .aborted
            }
            if errorResponded {
                record(request, pick: pick, status: error.httpStatus, latency: nil)
                logger.warning(
                    "request failed",
                    metadata: ["authority": "\(request.authority)", "endpoint": "\(pick.endpoint)", "error": "\(error)"])
                return .responded
            }
            return await respond(error, to: request, pick: pick, sink: sink)
        }
    }

    /// The request headers as the upstream gets them. Meshed: the client's own mesh headers are
    /// replaced by `starling-target` (and `starling-orig-proto` for HTTP/1 clients). Plain
    /// endpoints get no mesh headers at all.
    func meshHeaders(for request: OutboundRequest, pick: Pick) -> HPACKHeaders {
        var headers = request.headers
        headers.remove(name: MeshHeaders.target)
        headers.remove(name: MeshHeaders.originalProtocol)
        guard pick.endpoint.identity != nil else { return headers }
        headers.add(name: MeshHeaders.target, value: pick.endpoint.authorityOverride ?? pick.backend)
        headers.remove(name: GatewayHeaders.clientCluster)
        // Only a remote gateway (a mirror's endpoint) is told this cluster's name: an in-cluster
        // peer needs no such header, and each one costs HPACK work on both proxies.
        if let clusterName, pick.endpoint.authorityOverride != nil {
            headers.add(name: GatewayHeaders.clientCluster, value: clusterName)
        }
        if let original = request.originalProtocol {
            headers.add(name: MeshHeaders.originalProtocol, value: original)
        }
        return headers
    }

    private func connect(_ pick: Pick, timeout: Duration) async throws(ProxyError) -> Upstream {
        if pick.endpoint.identity != nil {
            let connection = try await pool.connection(to: pick.endpoint, timeout: timeout)
            return .http2(try await connection.openStream())
        }
        let dialed = try await dialer.dial(
            pick.endpoint, alpn: [], group: MultiThreadedEventLoopGroup.singleton, timeout: timeout
        ) { channel in
            try channel.pipeline.syncOperations.addHTTPClientHandlers()
        }
        do {
            let channel = dialed.channel
            return .http1(
                try await channel.eventLoop.submit {
                    try NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>(
                        wrappingChannelSynchronously: channel)
                }.get())
        } catch {
            dialed.channel.close(promise: nil)
            throw ProxyError(.connectFailed, "setting up HTTP/1.1 to \(pick.endpoint) failed: \(error)")
        }
    }

    private func respond(
        _ error: ProxyError, to request: OutboundRequest, pick: Pick?, sink: some OutboundResponseSink
    ) async -> Disposition {
        failed(request, error: error, pick: pick, logger: logger)
        do {
            try await sink.error(error, abortRequest: false)
            return .responded
        } catch {
            return .aborted
        }
    }

    /// A request the proxy answers with `error` itself: logged once (refusals of bad or unknown
    /// requests at debug level, failures as warnings) and counted.
    func failed(_ request: OutboundRequest, error: ProxyError, pick: Pick?, logger: Logger) {
        let metadata: Logger.Metadata = [
            "authority": "\(request.authority)", "error": "\(error)",
            "endpoint": "\(pick.map { "\($0.endpoint)" } ?? "-")",
        ]
        switch error.code {
        case .unknownService, .badRequest, .headersTooLarge:
            logger.debug("request refused", metadata: metadata)
            // The name came from the client and means nothing to the mesh: as a label it would
            // let a client grow the series without bound, so it is counted as `unknown`.
            record(request, pick: pick, status: error.httpStatus, latency: nil, nameUnknown: true)
        default:
            logger.warning("request failed", metadata: metadata)
            record(request, pick: pick, status: error.httpStatus, latency: nil)
        }
    }

    func record(_ request: OutboundRequest, pick: Pick?, status: Int, latency: Duration?, nameUnknown: Bool = false) {
        OutboundMetrics.record(
            OutboundMetrics.Request(
                authority: nameUnknown ? OutboundMetrics.unknown : request.authority,
                targetService: pick?.backend ?? (nameUnknown ? OutboundMetrics.unknown : request.routingAuthority),
                backend: pick?.backend, service: pick?.service, split: pick?.split ?? false,
                route: RequestMetricsSwitch.isEnabled ? pick.flatMap { Self.route(of: request, in: $0.routes) } : nil,
                statusCode: status,
                tls: pick?.endpoint.identity != nil, peerIdentity: pick?.endpoint.identity),
            latency: latency)
        tap.publish {
            TapEvent(
                direction: "outbound", method: request.method, authority: request.authority,
                path: request.headers.first(name: ":path") ?? "", status: status, latency: latency,
                sourceIdentity: localIdentity, destinationIdentity: pick?.endpoint.identity?.dnsName ?? "",
                sourceCluster: clusterName, destinationCluster: pick?.endpoint.labels["cluster"] ?? clusterName,
                destinationWorkload: pick?.endpoint.labels["workload"], tls: pick?.endpoint.identity != nil)
        }
    }

    /// The HTTPRoute `request` belongs to; nil when its service has none or none matches.
    static func route(of request: OutboundRequest, in routes: RouteTable) -> String? {
        guard !routes.isEmpty else { return nil }
        return routes.route(
            method: request.method, path: request.headers.first(name: ":path") ?? "/", header: { request.headers.first(name: $0) })
    }
}
