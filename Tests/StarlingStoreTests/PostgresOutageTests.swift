import StarlingCore
@testable import StarlingStore
import Testing

/// A replica whose database does not answer fails calls at once (clients then retry on another
/// replica), trying the database again every few seconds until it answers.
struct PostgresOutageTests {
    @Test func callsFailFastDuringAnOutageExceptOneProbeEveryPeriod() {
        let outage = PostgresOutage(trialEvery: .seconds(2))
        let start = ContinuousClock.now
        #expect(outage.failFast(doing: "listing", now: start) == nil, "no outage: every call goes to the database")
        outage.unanswered(StoreError(.unavailable, "no answer within 10 s"), now: start)
        let refused = outage.failFast(doing: "applying", now: start + .milliseconds(500))
        #expect(refused?.code == .unavailable)
        #expect(refused?.message.contains("no answer within 10 s") == true, "it says why: \(String(describing: refused))")
        #expect(outage.failFast(doing: "applying", now: start + .seconds(3)) != nil, "a client call is never the trial")
        #expect(outage.failFast(doing: "heartbeat", probe: true, now: start + .seconds(2)) == nil, "the probe goes through")
        #expect(outage.failFast(doing: "heartbeat", probe: true, now: start + .milliseconds(2500)) != nil, "one probe per period")
        outage.answered()
        #expect(outage.failFast(doing: "listing", now: start + .milliseconds(2600)) == nil, "an answer ends the outage")
        #expect(!outage.isOngoing)
    }
}
