public import GRPCCore
public import GRPCNIOTransportHTTP2Posix
public import StarlingCore

/// The one way a Starling process reaches a controller API, its own cluster's or a linked
/// cluster's: the CLI, proxies and gateways, the service mirror and `multicluster check`, the
/// bench. The target comes from ``ReplicaTarget``: a list of IPv4 or of IPv6 literals is every
/// replica; a DNS name (the first entry, when the list holds one) is every address it resolves
/// to. Calls are balanced round robin over those that answer, TLS trusts only the given
/// certificate, and the connection comes back by itself with backoff.
public enum ControllerTransport {
    /// - Parameters:
    ///   - replicas: the API's replicas; at least one.
    ///   - certificatePEM: the certificate (or CA) the API's TLS certificate must chain to.
    ///   - maximumBackoff: the longest wait between reconnection attempts.
    ///   - methods: per-method deadlines and retries (``ReplicaTarget/failover``).
    public static func make(
        replicas: [HostPort], certificatePEM: String, maximumBackoff: Duration = .seconds(2),
        methods: [MethodConfig] = []
    ) throws -> HTTP2ClientTransport.Posix {
        try HTTP2ClientTransport.Posix(
            target: ReplicaTarget.resolve(replicas),
            transportSecurity: .tls {
                $0.trustRoots = .certificates([.bytes(Array(certificatePEM.utf8), format: .pem)])
            },
            config: .defaults {
                $0.backoff = .init(initial: .milliseconds(100), max: maximumBackoff, multiplier: 1.6, jitter: 0.2)
            },
            serviceConfig: ServiceConfig(methodConfig: methods, loadBalancingConfig: [.roundRobin]))
    }
}

/// Sends `authorization: Bearer TOKEN` with every call to a controller: the admin token of a
/// context (CLI, bench) or a workload's join token (proxies, gateways).
public struct BearerTokenInterceptor: ClientInterceptor {
    let token: String

    public init(token: String) { self.token = token }

    public func intercept<Input: Sendable, Output: Sendable>(
        request: StreamingClientRequest<Input>, context: ClientContext,
        next: (StreamingClientRequest<Input>, ClientContext) async throws -> StreamingClientResponse<Output>
    ) async throws -> StreamingClientResponse<Output> {
        var request = request
        request.metadata.replaceOrAddString("Bearer \(token)", forKey: "authorization")
        return try await next(request, context)
    }
}
