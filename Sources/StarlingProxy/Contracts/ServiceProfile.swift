/// How to route to one service, from the destination API's `GetProfile`.
public struct ServiceProfile: Sendable, Hashable {
    public struct Backend: Sendable, Hashable {
        /// A service authority, e.g. `podinfo-workload2.test.svc.cluster.local:9898`.
        public var authority: String
        /// Milli-weight (SMI quantity): 50 → 50000.
        public var weight: UInt64
        public init(authority: String, weight: UInt64) {
            self.authority = authority
            self.weight = weight
        }
    }

    /// `svc.ns.svc.cluster.local`
    public var fullyQualifiedName: String
    /// Weighted backends (TrafficSplit / HTTPRoute); empty means the service itself.
    public var backends: [Backend]
    /// Per-request timeout.
    public var timeout: Duration
    /// Fraction of requests that may be retries (e.g. 0.2), plus a floor per second.
    public var retryRatio: Double
    public var minRetriesPerSecond: Int
    public var opaque: Bool
    /// The service is exported (a gateway may forward to it).
    public var exported: Bool
    /// The service is a mirror of another cluster's (a gateway never forwards to it).
    public var mirrored: Bool
    /// Its HTTPRoutes' matches, naming each request's route in the metrics.
    public var routes: RouteTable

    public init(
        fullyQualifiedName: String, backends: [Backend] = [], timeout: Duration = .seconds(10),
        retryRatio: Double = 0.2, minRetriesPerSecond: Int = 10, opaque: Bool = false,
        exported: Bool = false, mirrored: Bool = false, routes: RouteTable = RouteTable()
    ) {
        self.routes = routes
        self.exported = exported
        self.mirrored = mirrored
        self.fullyQualifiedName = fullyQualifiedName
        self.backends = backends
        self.timeout = timeout
        self.retryRatio = retryRatio
        self.minRetriesPerSecond = minRetriesPerSecond
        self.opaque = opaque
    }
}

/// The endpoints of one service as last reported.
public struct EndpointSet: Sendable, Hashable {
    public var endpoints: Set<Endpoint>
    /// False when the destination API says the service does not exist.
    public var exists: Bool
    public init(endpoints: Set<Endpoint> = [], exists: Bool = true) {
        self.endpoints = endpoints
        self.exists = exists
    }
}
