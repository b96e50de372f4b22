/// What the balancer needs from service discovery: the current profile and endpoints of an
/// authority. Implemented over the destination API's streams (`DestinationClient`), which keeps
/// serving the last known answers while the controller is unreachable.
public protocol DiscoverySource: Sendable {
    /// The current profile of `authority`; the first call for an authority waits (bounded) for the
    /// destination API's first answer.
    func profile(_ authority: String) async throws(ProxyError) -> ServiceProfile
    /// The current endpoints of `authority`, same waiting rule.
    func endpoints(_ authority: String) async throws(ProxyError) -> EndpointSet
    /// The profile of `authority` if discovery has answered for it, without waiting.
    func cachedProfile(_ authority: String) -> ServiceProfile?
    /// The endpoints of `authority` if discovery has answered for it, without waiting.
    func cachedEndpoints(_ authority: String) -> EndpointSet?
    /// Both, in one look-up (the per-request path of a service without a split): the profile if
    /// discovery has answered for `authority`, with its endpoints if those are known too.
    func cachedProfileAndEndpoints(_ authority: String) -> (profile: ServiceProfile, endpoints: EndpointSet?)?
}

extension DiscoverySource {
    public func cachedProfile(_ authority: String) -> ServiceProfile? { nil }
    public func cachedEndpoints(_ authority: String) -> EndpointSet? { nil }
    public func cachedProfileAndEndpoints(_ authority: String) -> (profile: ServiceProfile, endpoints: EndpointSet?)? {
        cachedProfile(authority).map { ($0, cachedEndpoints(authority)) }
    }
}
