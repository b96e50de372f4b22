import GRPCCore
import GRPCNIOTransportHTTP2Posix
import StarlingCore

/// The linked cluster's API as this cluster's service mirror and credential renewer reach it:
/// every replica of the Link's `apiAddress`, balanced, over TLS trusting only the remote API's
/// certificate.
enum RemoteAPI {
    static func transport(_ link: LinkSpec, certificatePEM: String) throws -> HTTP2ClientTransport.Posix {
        let replicas = link.apiEndpoints
        guard !replicas.isEmpty else {
            throw MirrorError("link \(link.targetClusterName): apiAddress \"\(link.apiAddress)\" is not HOST:PORT[,HOST:PORT…]")
        }
        return try HTTP2ClientTransport.Posix(
            target: ReplicaTarget.resolve(replicas),
            transportSecurity: .tls { $0.trustRoots = .certificates([.bytes(Array(certificatePEM.utf8), format: .pem)]) },
            config: .defaults { $0.backoff = .init(initial: .milliseconds(200), max: .seconds(2), multiplier: 1.6, jitter: 0.1) },
            serviceConfig: ServiceConfig(loadBalancingConfig: [.roundRobin]))
    }
}
