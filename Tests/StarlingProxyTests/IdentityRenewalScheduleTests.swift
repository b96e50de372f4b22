import Foundation
import StarlingProxy
import Testing

struct IdentityRenewalScheduleTests {
    let start = Date(timeIntervalSince1970: 1_700_000_000)

    @Test func renewalIsDueAtSeventyPercentOfTheCertificateLife() {
        let schedule = RenewalSchedule()
        let due = schedule.renewalDate(notBefore: start, notAfter: start.addingTimeInterval(86400))
        #expect(due == start.addingTimeInterval(86400 * 0.7))
    }

    @Test func certifiedReturnsTheWaitUntilRenewalAndResetsFailures() {
        var schedule = RenewalSchedule()
        _ = schedule.failed(now: start, random: 0.5)
        _ = schedule.failed(now: start, random: 0.5)
        #expect(schedule.consecutiveFailures == 2)
        let wait = schedule.certified(
            notBefore: start, notAfter: start.addingTimeInterval(1000), now: start.addingTimeInterval(100))
        #expect(wait == .seconds(600))
        #expect(schedule.consecutiveFailures == 0)
    }

    @Test func anOverdueCertificateIsRenewedImmediately() {
        var schedule = RenewalSchedule()
        let wait = schedule.certified(
            notBefore: start, notAfter: start.addingTimeInterval(100), now: start.addingTimeInterval(90))
        #expect(wait == .zero)
    }

    @Test func failuresBackOffExponentiallyUpToTheMaximum() {
        var schedule = RenewalSchedule(
            configuration: .init(initialBackoff: .seconds(1), maximumBackoff: .seconds(10), multiplier: 2, jitter: 0))
        let waits = (0..<6).map { _ in schedule.failed(now: start, random: 0.5) }
        #expect(waits == [.seconds(1), .seconds(2), .seconds(4), .seconds(8), .seconds(10), .seconds(10)])
        #expect(schedule.consecutiveFailures == 6)
    }

    @Test func jitterSpreadsEachWaitWithinItsBounds() {
        let schedule = RenewalSchedule(
            configuration: .init(initialBackoff: .seconds(10), maximumBackoff: .seconds(60), jitter: 0.2))
        #expect(schedule.backoff(afterFailures: 1, random: 0) == .seconds(8))
        #expect(schedule.backoff(afterFailures: 1, random: 0.5) == .seconds(10))
        #expect(schedule.backoff(afterFailures: 1, random: 0.999_999) > .milliseconds(11_999))
        for _ in 0..<100 {
            let wait = schedule.backoff(afterFailures: 2, random: Double.random(in: 0..<1))
            #expect(wait >= .seconds(16) && wait <= .seconds(24))
        }
    }

    @Test func retriesDoNotSleepPastTheExpiryOfTheCurrentCertificate() {
        var schedule = RenewalSchedule(
            configuration: .init(initialBackoff: .seconds(30), maximumBackoff: .seconds(60), jitter: 0))
        _ = schedule.certified(notBefore: start, notAfter: start.addingTimeInterval(100), now: start)
        let wait = schedule.failed(now: start.addingTimeInterval(90), random: 0.5)
        #expect(wait == .seconds(5), "half of the 10 s left, not the 30 s backoff")
    }
}
