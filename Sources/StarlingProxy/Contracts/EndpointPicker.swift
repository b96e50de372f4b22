/// Chooses where one request (or one opaque connection) goes: applies the service's traffic
/// split to choose a backend, then balances across that backend's endpoints.
public protocol EndpointPicker: Sendable {
    /// - Parameter avoiding: endpoints this request already failed to connect to; they are not
    ///   chosen again, and a backend left with none of its endpoints gives its share to the others
    ///   (see ``ConnectAttempts``).
    func pick(_ authority: String, avoiding: [Endpoint]) async throws(ProxyError) -> Pick
    /// The same choice without waiting, from what discovery already knows; nil when `pick` would
    /// have to wait for discovery (the caller then uses `pick`). Channel handlers use this on
    /// every request and `pick` only for an authority's first.
    func pickNow(_ authority: String, avoiding: [Endpoint]) -> Result<Pick, ProxyError>?
}

extension EndpointPicker {
    public func pickNow(_ authority: String, avoiding: [Endpoint]) -> Result<Pick, ProxyError>? { nil }

    /// A request's first pick.
    public func pick(_ authority: String) async throws(ProxyError) -> Pick {
        try await pick(authority, avoiding: [])
    }
}

/// The outcome of one request, reported back so the balancer learns latency and failures.
public enum PickOutcome: Sendable {
    case success(latency: Duration)
    /// The endpoint failed (connect refused, reset, 5xx from the peer proxy itself).
    case failure(latency: Duration)
    /// The request ended without saying anything about the endpoint (cancelled by the client).
    case abandoned
}

/// A chosen endpoint for one request, with the routing facts the data path needs.
///
/// A class: a request's pick travels through several closures and states, and each copy of a
/// struct retained every field (strings, identity, two closures) on every request.
public final class Pick: Sendable {
    public let endpoint: Endpoint
    /// The backend service authority the split chose (for metrics and the gateway header).
    public let backend: String
    /// The service the caller asked for, as discovery names it (the split's apex), for metrics.
    public let service: String
    /// True when a traffic split chose `backend`; otherwise `backend` is `service` as the caller
    /// spelled it.
    public let split: Bool
    /// The request timeout from the service's profile.
    public let timeout: Duration
    /// The service's HTTPRoute matches, naming the request's route in the metrics.
    public let routes: RouteTable
    /// True when the retry budget allows retrying this request once more.
    public let mayRetry: @Sendable () -> Bool
    /// Report how the request went; call exactly once.
    public let complete: @Sendable (PickOutcome) -> Void

    public init(
        endpoint: Endpoint, backend: String, service: String? = nil, split: Bool = false, timeout: Duration,
        routes: RouteTable = RouteTable(), mayRetry: @escaping @Sendable () -> Bool = { false },
        complete: @escaping @Sendable (PickOutcome) -> Void = { _ in }
    ) {
        self.endpoint = endpoint
        self.backend = backend
        self.service = service ?? backend
        self.split = split
        self.timeout = timeout
        self.routes = routes
        self.mayRetry = mayRetry
        self.complete = complete
    }
}
