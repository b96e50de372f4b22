import NIOCore
import NIOPosix
import Testing

@testable import StarlingProxy

@Suite struct LoopSleepTests {
    @Test func aSleepEndsAfterItsDuration() async throws {
        let started = ContinuousClock.now
        try await sleep(for: .milliseconds(50), on: MultiThreadedEventLoopGroup.singleton.any())
        #expect(ContinuousClock.now - started >= .milliseconds(45))
    }

    /// The watchdog of every exchange is cancelled when its response ends: the sleep must end
    /// at once (and its timer go with it), not at its deadline.
    @Test func aCancelledSleepEndsAtOnceWithCancellation() async throws {
        let sleeper = Task { try await sleep(for: .seconds(3600), on: MultiThreadedEventLoopGroup.singleton.any()) }
        try await Task.sleep(for: .milliseconds(20))
        let started = ContinuousClock.now
        sleeper.cancel()
        await #expect(throws: CancellationError.self) { try await sleeper.value }
        #expect(ContinuousClock.now - started < .seconds(1))
    }
}
