import Logging
import NIOCore
import NIOHPACK
import NIOHTTP2
import StarlingCore
import StarlingProxy

/// The gateway's `h2` side: every stream a calling proxy opens is admitted
/// (``GatewayAdmission``) and relayed on the event loop (``HTTP2StreamRelay`` with
/// ``GatewayHTTP2Front``) to a stream on the pooled mTLS HTTP/2 connection to a local workload,
/// with the caller's verified identity passed on.
///
/// Order of stages per stream: target and hop check → profile (exported, not a mirror) → pick →
/// connect → rewrite headers (``forwardedHeaders(_:peer:)``) → relay with the pick's timeout
/// for the response head (bodies both ways with flow control, trailers kept) → report the
/// outcome to the balancer and metrics.
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
    /// The gateway's own inbound policy (an AuthorizationPolicy targeting a Server that picks
    /// the gateway): which callers, from which clusters, may cross.
    var authorizer = InboundAuthorizer.allowAll()
    /// The port the gateway's Server names (its configured listen port).
    var policyPort = 4143

    /// Adds the HTTP/2 server handlers to an established `h2` connection from `peer` (call on its
    /// event loop).
    func configure(
        _ channel: any Channel, configuration: GatewayProxy.Configuration, peer: MeshIdentity, logger: Logger
    ) throws {
        // Rapid reset and CONTINUATION floods: NIOHTTP2's limits stay on (HTTP2Limits).
        let http2 = HTTP2Limits.configuration(settings: [
            HTTP2Setting(parameter: .maxConcurrentStreams, value: configuration.maxConcurrentStreams),
            HTTP2Setting(parameter: .maxHeaderListSize, value: configuration.maxHeaderListSize),
            HTTP2Setting(parameter: .enablePush, value: 0),
        ], bufferedControlFrames: HTTP2Limits.bufferedControlFramesFromPeers)
        let environment = HTTP2StreamRelay.Environment(
            front: GatewayHTTP2Front(server: self, peer: peer, logger: logger),
            connector: UpstreamConnector(picker: picker, pool: pool, plainConnections: nil), idleTimeout: idleTimeout)
        try HTTP2ServerStreams.configure(
            channel, configuration: http2, idleTimeout: TimeAmount(configuration.idleTimeout), logger: logger
        ) { stream, _ in
            HTTP2StreamRelay(client: stream, environment: environment)
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

    /// One request's outcome, to the metrics and to the open taps. A target refused or unknown
    /// was named by the caller alone: the metrics count it as `unknown` (a bounded label), the
    /// tap shows it as sent.
    fileprivate func record(
        target: String, status: Int, caller: GatewayCaller, pick: Pick?, latency: Duration? = nil, grpcStatus: Int? = nil,
        nameUnknown: Bool = false
    ) {
        GatewayMetrics.request(
            target: nameUnknown ? OutboundMetrics.unknown : target, status: status, grpcStatus: grpcStatus, caller: caller,
            latency: latency)
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

/// The gateway's streams: admitted by target, hop and profile (exported, not a mirror), sent to a
/// meshed local endpoint with the caller's identity, counted as gateway requests.
struct GatewayHTTP2Front: HTTP2RelayFront {
    struct Request: Sendable {
        var target: String
        var caller: GatewayCaller
        /// The caller's headers (hop-by-hop fields removed), for the forwarded ones.
        var headers: HPACKHeaders
    }

    let server: GatewayHTTP2Server
    /// The calling proxy's verified identity.
    let peer: MeshIdentity
    let logger: Logger

    func admit(
        _ headers: HPACKHeaders, hasBody: Bool, eventLoop: any EventLoop,
        _ done: @escaping (Result<(Request, authority: String), HTTP2RelayAnswer>) -> Void
    ) {
        var caller = GatewayCaller(identity: peer, claimedCluster: headers.first(name: GatewayHeaders.clientCluster))
        if server.tap.isActive {
            caller.tapped = (headers.first(name: ":method") ?? "", headers.first(name: ":path") ?? "")
        }
        let target = headers.first(name: MeshHeaders.target)
        let admitted: String
        switch GatewayAdmission.check(target: target, hops: headers.first(name: GatewayHeaders.hops)) {
        case .failure(let refusal):
            done(.failure(refuse(refusal, target: target ?? "-", caller: caller)))
            return
        case .success(let target):
            admitted = target
        }
        // The gateway's own policy: who, from which cluster (as the calling proxy names it), may cross.
        var headers = headers
        let requestHeaders = headers
        let (decision, normalizedPath) = server.authorizer.authorizeHTTP(
            port: server.policyPort,
            caller: PolicyCaller(identity: peer.dnsName, cluster: caller.cluster, address: nil, viaGateway: true),
            method: requestHeaders.first(name: ":method") ?? "", path: requestHeaders.first(name: ":path") ?? "/",
            header: { requestHeaders.first(name: $0) })
        // Forwarded in the form the gateway's routes matched.
        if let normalizedPath { headers = requestHeaders.replacingPath(with: normalizedPath) }
        guard decision.allowed else {
            // Counted as it goes out: a gRPC call gets a trailers-only PERMISSION_DENIED.
            let grpcStatus = GRPCStatus.isCall(headers) ? ErrorResponse.grpcPermissionDenied : nil
            server.record(target: admitted, status: grpcStatus == nil ? 403 : 200, caller: caller, pick: nil, grpcStatus: grpcStatus)
            done(.failure(HTTP2RelayAnswer(ProxyError(.forbidden, decision.reason), grpcStatus: grpcStatus)))
            return
        }
        let request = Request(target: admitted, caller: caller, headers: headers)
        if let profile = server.discovery.cachedProfile(admitted) {
            done(profiled(request, profile))
            return
        }
        // The target's first request waits for discovery, off the event loop.
        let discovery = server.discovery
        let bound = NIOLoopBound(done, eventLoop: eventLoop)
        let promise = eventLoop.makePromise(of: ServiceProfile.self)
        promise.completeWithTask { try await discovery.profile(admitted) }
        promise.futureResult.whenComplete { result in
            switch result {
            case .success(let profile):
                bound.value(profiled(request, profile))
            case .failure(let error):
                let error = (error as? ProxyError) ?? ProxyError(.discoveryUnavailable, "\(error)")
                failed(request, error: error, pick: nil)
                bound.value(.failure(HTTP2RelayAnswer(error)))
            }
        }
    }

    private func profiled(_ request: Request, _ profile: ServiceProfile) -> Result<(Request, authority: String), HTTP2RelayAnswer> {
        if let refusal = GatewayAdmission.check(target: request.target, profile: profile) {
            return .failure(refuse(refusal, target: request.target, caller: request.caller))
        }
        return .success((request, request.target))
    }

    private func refuse(_ refusal: GatewayRefusal, target: String, caller: GatewayCaller) -> HTTP2RelayAnswer {
        GatewayMetrics.refused(reason: refusal.reason)
        server.record(target: target, status: refusal.status, caller: caller, pick: nil, nameUnknown: true)
        logger.notice(
            "gateway refused a request",
            metadata: ["target": "\(target)", "reason": "\(refusal.reason)", "error": "\(refusal.message)"])
        return HTTP2RelayAnswer(status: refusal.status, code: refusal.code, message: refusal.message)
    }

    func peerHeaders(for request: Request, pick: Pick) -> HPACKHeaders {
        GatewayHTTP2Server.forwardedHeaders(request.headers, peer: request.caller.identity)
    }

    func responded(_ request: Request, pick: Pick, status: Int, latency: Duration, grpcStatus: Int?) {
        server.record(
            target: request.target, status: status, caller: request.caller, pick: pick, latency: latency, grpcStatus: grpcStatus)
        if logger.logLevel <= .debug {
            logger.debug(
                "forwarded through the gateway",
                metadata: [
                    "target": "\(request.target)", "endpoint": "\(pick.endpoint)", "status": "\(status)",
                    "latency": "\(latency)",
                ])
        }
    }

    func failed(_ request: Request, error: ProxyError, pick: Pick?) {
        let metadata: Logger.Metadata = [
            "target": "\(request.target)", "endpoint": "\(pick.map { "\($0.endpoint)" } ?? "-")", "error": "\(error)",
        ]
        let unknown = error.code == .unknownService || error.code == .badRequest
        if unknown {
            logger.debug("gateway request refused", metadata: metadata)
        } else {
            logger.warning("gateway request failed", metadata: metadata)
        }
        server.record(target: request.target, status: error.httpStatus, caller: request.caller, pick: pick, nameUnknown: unknown)
    }

    func brokeOff(_ request: Request, pick: Pick, error: ProxyError) {
        logger.warning(
            "response broke off", metadata: ["target": "\(request.target)", "endpoint": "\(pick.endpoint)", "error": "\(error)"])
    }
}
