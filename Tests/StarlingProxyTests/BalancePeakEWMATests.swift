import Testing

@testable import StarlingProxy

struct BalancePeakEWMATests {
    let start = ContinuousClock.now

    @Test func slowerObservationBecomesTheEstimateAtOnce() {
        var ewma = PeakEWMA(initialRTT: .milliseconds(10), decay: .seconds(10), now: start)
        ewma.observe(.milliseconds(200), at: start + .milliseconds(1))
        #expect(abs(ewma.estimate(at: start + .milliseconds(1)) - 0.2) < 1e-9)
    }

    @Test func fasterObservationsPullTheEstimateDownGradually() {
        var ewma = PeakEWMA(initialRTT: .milliseconds(100), decay: .seconds(10), now: start)
        ewma.observe(.milliseconds(1), at: start + .seconds(1))
        let estimate = ewma.estimate(at: start + .seconds(1))
        #expect(estimate < 0.1)
        #expect(estimate > 0.08)
        var now = start + .seconds(1)
        for _ in 0..<100 {
            now += .seconds(1)
            ewma.observe(.milliseconds(1), at: now)
        }
        #expect(abs(ewma.estimate(at: now) - 0.001) < 0.000_1)
    }

    @Test func pendingRequestsMultiplyTheCost() {
        var ewma = PeakEWMA(initialRTT: .milliseconds(10), now: start)
        let idle = ewma.cost(at: start)
        ewma.start()
        ewma.start()
        #expect(abs(ewma.cost(at: start) - 3 * idle) < 1e-12)
        ewma.finish(rtt: nil, at: start)
        #expect(ewma.pending == 1)
    }

    @Test func failuresNeverLowerTheEstimate() {
        var ewma = PeakEWMA(initialRTT: .milliseconds(50), now: start)
        ewma.start()
        ewma.finish(rtt: .microseconds(10), onlyIfSlower: true, at: start + .milliseconds(1))
        #expect(ewma.estimate(at: start + .milliseconds(1)) > 0.049)
    }
}
