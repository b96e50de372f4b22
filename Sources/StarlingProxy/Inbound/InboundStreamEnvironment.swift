import Logging
import StarlingCore

/// What every stage of one inbound connection's streams needs: the listener's configuration,
/// the caller's verified identity, the connection's logger and the shared application
/// connections.
struct InboundStreamEnvironment: Sendable {
    var configuration: InboundProxy.Configuration
    /// The verified identity of the calling workload.
    var client: MeshIdentity
    /// `client.dnsName`, spelled once per connection (every request carries it to the app).
    var clientName: String
    /// Carries the connection's metadata (peer address, client identity).
    var logger: Logger
    var http1Pool: HTTP1AppConnectionPool
    var http2Connections: InboundHTTP2AppConnections
    /// Open taps, and this workload's identity as their events' destination.
    var tap: TapHub
    var localIdentity: String
    /// The inbound policy in force.
    var authorizer: InboundAuthorizer
    /// The address the caller connected from (4 or 16 bytes), for NetworkAuthentication.
    var clientAddress: [UInt8]?
}
