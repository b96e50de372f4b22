import StarlingAPI
import StarlingCore

/// What the destination API last said about one authority: its endpoints (from `Get`) and its
/// profile (from `GetProfile`). A pure value; the client applies stream messages to it.
struct DestinationRecord: Sendable, Hashable {
    /// Nil until the first `Get` answer.
    private(set) var endpoints: EndpointSet?
    /// Nil until the first `GetProfile` answer.
    private(set) var profile: ServiceProfile?
    /// The current endpoints by `ip:port`, which is how removals name them.
    private var addresses: [String: Endpoint] = [:]

    /// Applies one `Get` update. `resync` marks the first message of a new stream, which carries
    /// the whole current state and so replaces what is known — unless it is `Resumed`: the stream
    /// was re-opened from this record's position and the record is still current.
    ///
    /// - Returns: the addresses skipped because they named an identity that does not parse (they
    ///   must not be dialed in plaintext).
    @discardableResult
    mutating func apply(_ update: Starling_V1_Update, resync: Bool) -> [String] {
        guard let kind = update.update else { return [] }
        if case .resumed = kind { return [] }
        if resync { addresses = [:] }
        var skipped: [String] = []
        var exists = true
        switch update.update {
        case .add(let set):
            for addr in set.addrs {
                if let endpoint = Self.endpoint(addr) {
                    addresses[Self.key(addr)] = endpoint
                } else {
                    skipped.append("\(Self.key(addr)) (identity '\(addr.identity)')")
                }
            }
        case .remove(let set):
            for addr in set.addrs { addresses[Self.key(addr)] = nil }
        case .noEndpoints(let notice):
            addresses = [:]
            exists = notice.exists
        case .resumed, nil:
            break
        }
        endpoints = EndpointSet(endpoints: Set(addresses.values), exists: exists || !addresses.isEmpty)
        return skipped
    }

    /// Replaces the profile.
    mutating func apply(_ message: Starling_V1_DestinationProfile) {
        profile = Self.profile(message)
    }

    /// Marks an authority the destination API refuses as a service name (`invalidArgument`): it
    /// does not exist, and its profile is the default one.
    mutating func markNotAService(_ authority: String) {
        addresses = [:]
        endpoints = EndpointSet(endpoints: [], exists: false)
        if profile == nil { profile = ServiceProfile(fullyQualifiedName: authority) }
    }

    // MARK: - Conversions

    static func key(_ addr: Starling_V1_WeightedAddr) -> String {
        addr.ip.contains(":") ? "[\(addr.ip)]:\(addr.port)" : "\(addr.ip):\(addr.port)"
    }

    /// The endpoint an address names; nil when its identity is set but not a mesh identity.
    static func endpoint(_ addr: Starling_V1_WeightedAddr) -> Endpoint? {
        var identity: MeshIdentity?
        if !addr.identity.isEmpty {
            guard let parsed = MeshIdentity(dnsName: addr.identity) ?? MeshIdentity(spiffeURI: addr.identity) else {
                return nil
            }
            identity = parsed
        }
        return Endpoint(
            host: addr.ip, port: Int(addr.port), identity: identity, opaque: addr.protocolHint == .opaque,
            authorityOverride: addr.authorityOverride.isEmpty ? nil : addr.authorityOverride,
            labels: addr.metricLabels)
    }

    static func profile(_ message: Starling_V1_DestinationProfile) -> ServiceProfile {
        let defaults = ServiceProfile(fullyQualifiedName: message.fullyQualifiedName)
        return ServiceProfile(
            fullyQualifiedName: message.fullyQualifiedName,
            backends: message.dstOverrides.map { .init(authority: $0.authority, weight: $0.weight) },
            timeout: message.timeoutMs > 0 ? .milliseconds(Int64(clamping: message.timeoutMs)) : defaults.timeout,
            retryRatio: message.hasRetryBudget ? Double(message.retryBudget.retryRatio) : defaults.retryRatio,
            minRetriesPerSecond: message.hasRetryBudget
                ? Int(message.retryBudget.minRetriesPerSecond) : defaults.minRetriesPerSecond,
            opaque: message.opaqueProtocol, exported: message.exported, mirrored: message.mirrored,
            routes: RouteTable(message.routes.compactMap(routeEntry)))
    }

    /// A route match from the destination API; nil for a path type this proxy does not know.
    static func routeEntry(_ m: Starling_V1_RouteMatch) -> RouteTable.Entry? {
        guard let type = HTTPRouteMatch.PathType(rawValue: m.pathType) else { return nil }
        return RouteTable.Entry(
            route: m.route,
            match: HTTPRouteMatch(pathType: type, path: m.path, method: m.method.isEmpty ? nil : m.method, headers: m.headers))
    }
}
