import Dispatch
import Foundation
import Logging

/// Runs an operation until it ends or the process gets SIGTERM/SIGINT, which cancels it so that
/// it shuts down gracefully.
enum SignalScope {
    static func runUntilSignalled(logger: Logger, _ operation: @escaping @Sendable () async throws -> Void) async throws {
        signal(SIGTERM, SIG_IGN)
        signal(SIGINT, SIG_IGN)
        let task = Task { try await operation() }
        let sources = [SIGTERM, SIGINT].map { signo in
            let source = DispatchSource.makeSignalSource(signal: signo, queue: .global())
            source.setEventHandler {
                logger.info("signal received, shutting down", metadata: ["signal": "\(signo == SIGTERM ? "SIGTERM" : "SIGINT")"])
                task.cancel()
            }
            source.resume()
            return source
        }
        defer { sources.forEach { $0.cancel() } }
        try await task.value
    }
}
