import GRPCCore
public import GRPCNIOTransportHTTP2Posix
public import StarlingCore
import StarlingMulticluster

/// Where and how the proxy reaches its controller's API: gRPC over TLS pinned to the controller's
/// own certificate, with the workload's join token.
public struct ControllerAPI: Sendable, CustomStringConvertible {
    /// The controller's API host (an IP address or a DNS name).
    public var host: String
    /// The controller's API port (8086 by default).
    public var port: Int
    /// The controller's API certificate (PEM), pinned as the only trust root.
    public var certificatePEM: String
    /// The workload's join token: sent in `CertifyRequest.token` and as `authorization: Bearer`.
    public var token: String

    /// Every replica of the controller (the first is `host:port`). Calls and streams go to the
    /// replicas that answer, spread round robin, and move when one goes away.
    public var replicas: [HostPort]

    public init(host: String, port: Int = 8086, certificatePEM: String, token: String, replicas: [HostPort] = []) {
        self.host = host
        self.port = port
        self.certificatePEM = certificatePEM
        self.token = token
        self.replicas = replicas.isEmpty ? [HostPort(host: host, port: port)] : replicas
    }

    public var description: String { replicas.map(\.description).joined(separator: ",") }

    /// A transport to the controller. Unary calls get `unaryTimeout` as their deadline so that an
    /// unreachable controller fails a call instead of hanging it; streams run as long as they are
    /// read. The transport reconnects by itself with the given backoff.
    func makeTransport(unaryTimeout: Duration = .seconds(10)) throws -> HTTP2ClientTransport.Posix {
        try ControllerTransport.make(
            replicas: replicas, certificatePEM: certificatePEM,
            methods: [
                MethodConfig(
                    names: [.init(service: "starling.v1.Identity")], timeout: unaryTimeout,
                    executionPolicy: ReplicaTarget.failover)
            ])
    }
}
