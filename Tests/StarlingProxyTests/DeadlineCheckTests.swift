import NIOCore
import NIOEmbedded
import Testing

@testable import StarlingProxy

/// The one-timer deadline behind the HTTP/1 header timeout and the idle app-connection close.
struct DeadlineCheckTests {
    @Test func expiresAtTheLatestDeadlineAndNotWhenDisarmed() {
        let loop = EmbeddedEventLoop()
        var expired = 0
        let check = DeadlineCheck(eventLoop: loop) { expired += 1 }
        // Armed, then moved later before it fires: it fires at the later deadline only.
        check.arm(in: .seconds(1))
        loop.advanceTime(by: .milliseconds(500))
        check.arm(in: .milliseconds(1500))
        loop.advanceTime(by: .milliseconds(700))  // 1.2 s: the first check fires and re-arms
        #expect(expired == 0)
        loop.advanceTime(by: .milliseconds(900))  // 2.1 s
        #expect(expired == 1)

        // Disarmed before its deadline: nothing fires, however long it waits.
        check.arm(in: .seconds(1))
        check.disarm()
        loop.advanceTime(by: .seconds(5))
        #expect(expired == 1)

        // Armed again after firing; cancel() stops it for good.
        check.arm(in: .seconds(1))
        check.cancel()
        loop.advanceTime(by: .seconds(5))
        #expect(expired == 1)
        try? loop.syncShutdownGracefully()
    }

    @Test func aShorterDeadlineAfterALongerOneFiresOnTime() {
        let loop = EmbeddedEventLoop()
        var expired = 0
        let check = DeadlineCheck(eventLoop: loop) { expired += 1 }
        // One request with a 10 s timeout answered, the next with 100 ms: the next one's timeout
        // is not held back to the first one's check.
        check.arm(in: .seconds(10))
        check.disarm()
        check.arm(in: .milliseconds(100))
        loop.advanceTime(by: .milliseconds(150))
        #expect(expired == 1)
        try? loop.syncShutdownGracefully()
    }

    @Test func reArmingEveryRequestSchedulesOneTimerAtATime() {
        let loop = EmbeddedEventLoop()
        var expired = 0
        let check = DeadlineCheck(eventLoop: loop) { expired += 1 }
        // A thousand requests, each arming and disarming: the check only fires for the last one
        // left armed.
        for _ in 0..<1000 {
            check.arm(in: .milliseconds(100))
            loop.advanceTime(by: .milliseconds(1))
            check.disarm()
        }
        check.arm(in: .milliseconds(100))
        loop.advanceTime(by: .milliseconds(150))
        #expect(expired == 1)
        try? loop.syncShutdownGracefully()
    }
}
