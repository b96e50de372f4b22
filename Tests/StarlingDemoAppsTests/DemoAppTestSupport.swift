import Logging
import Testing

@testable import StarlingDemoApps

/// Runs a demo app in a child task, hands `body` its bound port, then cancels the app.
func withRunningDemoApp<Result: Sendable>(
    _ run: @escaping @Sendable (_ onBound: @escaping @Sendable (Int) async -> Void) async throws -> Void,
    body: (Int) async throws -> Result
) async throws -> Result {
    try await withThrowingTaskGroup(of: Void.self) { group in
        let (ports, continuation) = AsyncStream<Int>.makeStream()
        group.addTask {
            defer { continuation.finish() }
            try await run { port in continuation.yield(port) }
        }
        var iterator = ports.makeAsyncIterator()
        guard let port = await iterator.next() else {
            try await group.next()
            throw DemoHTTPClient.Failure(message: "the app stopped before binding")
        }
        defer { group.cancelAll() }
        return try await body(port)
    }
}

let demoTestLogger = Logger(label: "demo-app-test", factory: { _ in SwiftLogNoOpLogHandler() })

func podinfo(cluster: String = "workload1", instance: String = "podinfo-1", message: String = "hello from workload1") -> PodinfoApp {
    PodinfoApp(
        configuration: .init(host: "127.0.0.1", port: 0, message: message, cluster: cluster, instance: instance),
        logger: demoTestLogger)
}
