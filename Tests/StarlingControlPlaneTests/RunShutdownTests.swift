#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
@testable import StarlingCLI
import Testing

/// `starling run` on SIGTERM: the workload is deregistered first and its command gets the signal
/// after the shutdown delay (``RunShutdown``), so that no caller is routed to an application that
/// has already gone. A rolling restart in CI lost one request (502 connect-failed) when the signal
/// went to the command at once. These drive the real handler with a real child (`sleep`).
@Suite(.serialized)
struct RunShutdownTests {
    @Test func theFirstSignalIsHeldUntilRoutingHasStopped() async throws {
        try await withSleepingChild { child in
            let shutdown = RunShutdown(delay: .seconds(5))
            shutdown.handle(child, SIGTERM)
            var requests = shutdown.requests.makeAsyncIterator()
            #expect(await requests.next() != nil, "the held signal asks the run to stop routing")
            try await Task.sleep(for: .milliseconds(200))
            #expect(Self.running(child), "the command got the signal before routing stopped")
            shutdown.forwardHeld()
            #expect(await child.waitForExit() == 128 + SIGTERM)
        }
    }

    @Test func aSecondSignalGoesThroughAtOnce() async throws {
        try await withSleepingChild { child in
            let shutdown = RunShutdown(delay: .seconds(5))
            shutdown.handle(child, SIGTERM)
            shutdown.handle(child, SIGINT)
            #expect(await child.waitForExit() == 128 + SIGINT)
            shutdown.forwardHeld()  // nothing left to pass on
        }
    }

    /// A Ctrl-C in a terminal reaches the command too (one process group): SIGINT is not held,
    /// so the command does not get it a second time a second later.
    @Test func sigintGoesThroughAtOnce() async throws {
        try await withSleepingChild { child in
            let shutdown = RunShutdown(delay: .seconds(5))
            shutdown.handle(child, SIGINT)
            #expect(await child.waitForExit() == 128 + SIGINT)
        }
    }

    @Test func withoutADelayTheSignalGoesThroughAtOnce() async throws {
        try await withSleepingChild { child in
            let shutdown = RunShutdown(delay: .zero)
            shutdown.handle(child, SIGTERM)
            #expect(await child.waitForExit() == 128 + SIGTERM)
        }
    }

    private static func running(_ child: ChildProcess) -> Bool {
        var status: Int32 = 0
        return waitpid(child.pid, &status, WNOHANG) == 0
    }

    /// Starts `sleep 30` through ``ChildProcess/start(_:environment:onSignal:)`` and kills it at
    /// the end.
    private func withSleepingChild(_ body: (ChildProcess) async throws -> Void) async throws {
        try await withSignalDispositionsKept {
            let sleep = try ChildProcess.resolve("sleep", path: "/usr/bin:/bin")
            let child = try ChildProcess.start([sleep, "30"], environment: ["PATH": "/usr/bin:/bin"], onSignal: { _, _ in })
            defer { kill(child.pid, SIGKILL) }
            try await body(child)
        }
    }
}
