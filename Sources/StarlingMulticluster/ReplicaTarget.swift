public import GRPCCore
public import GRPCNIOTransportHTTP2Posix
public import StarlingCore

/// The gRPC target for the replicas of a controller API: IP literals of one family are given as a
/// list (the channel balances over them and leaves one that fails); a DNS name resolves to all its
/// addresses. Proxies, gateways and the service mirror (a Link's `apiAddress` may list every
/// replica of the remote cluster) reach a controller this way.
public enum ReplicaTarget {
    /// A call a replica refused as unavailable (it is stopping, its database is away, its clock
    /// is off) goes again, and round robin sends it to the next replica.
    public static let failover = RPCExecutionPolicy.retry(
        RetryPolicy(
            maxAttempts: 3, initialBackoff: .milliseconds(50), maxBackoff: .milliseconds(500), backoffMultiplier: 2,
            retryableStatusCodes: [.unavailable]))

    public static func resolve(_ replicas: [HostPort]) -> any ResolvableTarget {
        if replicas.count > 1, replicas.allSatisfy({ NetworkAddress.isIPv4($0.host) }) {
            return .ipv4(pairs: replicas.map { (host: $0.host, port: $0.port) })
        }
        if replicas.count > 1, replicas.allSatisfy({ NetworkAddress.isIPv6($0.host) }) {
            return .ipv6(pairs: replicas.map { (host: $0.host, port: $0.port) })
        }
        let first = replicas.first ?? HostPort(host: "127.0.0.1", port: 8086)
        if NetworkAddress.isIPv6(first.host) { return .ipv6(address: first.host, port: first.port) }
        if NetworkAddress.isIPv4(first.host) { return .ipv4(address: first.host, port: first.port) }
        return .dns(host: first.host, port: first.port)
    }
}
