import GRPCCore
import GRPCNIOTransportHTTP2Posix
import StarlingMulticluster


/// One or more gRPC clients of a controller, made the way `starling` and the proxies make theirs:
/// TLS with the controller's certificate pinned as the only root, the context's bearer token on
/// every call, and round robin over every replica the context lists. Each `GRPCClient` owns one
/// transport: `count` clients give `count` connections per replica.
enum ControllerConnections {
    /// Connects `count` clients to the controller of `context`, runs `body` with them, then shuts
    /// them down (after `body` returns or throws; in-flight calls should be finished or cancelled
    /// by then, since graceful shutdown waits for them).
    static func with<T: Sendable>(
        _ context: ControllerContext,
        count: Int,
        _ body: ([GRPCClient<HTTP2ClientTransport.Posix>]) async throws -> T
    ) async throws -> T {
        try await with(Array(repeating: context, count: count), body)
    }

    /// One client per context in `contexts`, in that order (with ``ControllerContext/eachReplica``:
    /// one client per replica, each connected to its replica alone), run like ``with(_:count:_:)``.
    static func with<T: Sendable>(
        _ contexts: [ControllerContext],
        _ body: ([GRPCClient<HTTP2ClientTransport.Posix>]) async throws -> T
    ) async throws -> T {
        var clients: [GRPCClient<HTTP2ClientTransport.Posix>] = []
        for context in contexts {
            let transport = try ControllerTransport.make(
                replicas: context.replicas, certificatePEM: context.caPEM, maximumBackoff: .seconds(1))
            clients.append(GRPCClient(transport: transport, interceptors: [BearerTokenInterceptor(token: context.token)]))
        }
        return try await withThrowingTaskGroup(of: Void.self) { group in
            for client in clients {
                group.addTask { try await client.runConnections() }
            }
            let outcome: Result<T, any Error>
            do {
                outcome = .success(try await body(clients))
            } catch {
                outcome = .failure(error)
            }
            for client in clients { client.beginGracefulShutdown() }
            try await group.waitForAll()
            return try outcome.get()
        }
    }

    /// Call options for unary calls: a deadline, so a dead controller fails the run instead of
    /// hanging it.
    static func unary(timeout: Duration = .seconds(30)) -> CallOptions {
        var options = CallOptions.defaults
        options.timeout = timeout
        return options
    }
}
