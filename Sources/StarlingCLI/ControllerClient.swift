import Foundation
import GRPCCore
import StarlingMulticluster
import StarlingProxy
import GRPCNIOTransportHTTP2Posix
import StarlingAPI

/// The CLI's connection to the controller of a context: TLS pinned to the controller's own
/// certificate, the admin token sent on every call, and failures turned into CLI errors that say
/// what to do.
struct ControllerClient {
    let resources: Starling_V1_Resources.Client<HTTP2ClientTransport.Posix>
    let mesh: Starling_V1_Mesh.Client<HTTP2ClientTransport.Posix>
    let destination: Starling_V1_Destination.Client<HTTP2ClientTransport.Posix>
    let identity: Starling_V1_Identity.Client<HTTP2ClientTransport.Posix>
    let policy: Starling_V1_Policy.Client<HTTP2ClientTransport.Posix>
    let context: ResolvedContext

    /// Connects, runs `body`, and disconnects.
    static func with<T: Sendable>(
        _ context: ResolvedContext, timeout: Duration = .seconds(15),
        _ body: (ControllerClient) async throws -> T
    ) async throws -> T {
        let transport = try ControllerTransport.make(
            replicas: context.replicas, certificatePEM: context.caPEM, maximumBackoff: .seconds(1),
            methods: [
                // Unary calls get a deadline, so that a dead controller fails a command instead
                // of hanging it; streams (watch, destination) run as long as they are read.
                MethodConfig(
                    names: [
                        .init(service: "starling.v1.Mesh"), .init(service: "starling.v1.Identity"),
                        .init(service: "starling.v1.Resources", method: "Apply"),
                        .init(service: "starling.v1.Resources", method: "Get"),
                        .init(service: "starling.v1.Resources", method: "List"),
                        .init(service: "starling.v1.Resources", method: "Delete"),
                    ],
                    timeout: timeout, maxRequestMessageBytes: 64 * 1024 * 1024, maxResponseMessageBytes: 64 * 1024 * 1024,
                    executionPolicy: ReplicaTarget.failover)
            ])
        do {
            return try await withGRPCClient(
                transport: transport,
                interceptors: [BearerTokenInterceptor(token: context.token)]
            ) { client in
                try await body(
                    ControllerClient(
                        resources: .init(wrapping: client), mesh: .init(wrapping: client),
                        destination: .init(wrapping: client), identity: .init(wrapping: client), policy: .init(wrapping: client),
                        context: context))
            }
        } catch let error as RPCError {
            throw CLIError.from(error, context: context)
        }
    }
}

extension CLIError {
    /// One place that maps API failures to operator messages.
    static func from(_ error: RPCError, context: ResolvedContext) -> CLIError {
        let address = "\(context.serverHost):\(context.serverPort)"
        switch error.code {
        case .unavailable, .deadlineExceeded:
            return CLIError(
                "cannot reach the controller of context \(context.name) at \(address): \(error.message)",
                hint: "is the cluster running? `starling cluster list` shows it; `starling cluster create \(context.clusterName)` starts one")
        case .unauthenticated, .permissionDenied:
            return CLIError(
                "the controller at \(address) refused the credential of context \(context.name): \(error.message)",
                hint: "export fresh credentials with `starling cluster credentials \(context.clusterName) --export-file FILE`")
        default:
            return CLIError(error.message)
        }
    }
}
