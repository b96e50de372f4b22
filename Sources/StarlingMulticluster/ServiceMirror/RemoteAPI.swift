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
        return try ControllerTransport.make(replicas: replicas, certificatePEM: certificatePEM)
    }
}
