import Testing

@testable import StarlingProxy

struct FailureAccrualTests {
    let start = ContinuousClock.now

    func failing(_ accrual: inout FailureAccrual, times: Int, at now: ContinuousClock.Instant) -> FailureAccrual.Transition {
        var random = BalanceSeededRandom(seed: 1)
        var last = FailureAccrual.Transition.none
        for _ in 0..<times {
            let dispatch = accrual.dispatch(at: now)
            last = accrual.record(success: false, dispatch: dispatch, at: now, using: &random)
        }
        return last
    }

    @Test func ejectsAfterConsecutiveFailuresOnly() {
        var random = BalanceSeededRandom(seed: 1)
        var accrual = FailureAccrual(configuration: .init(consecutiveFailures: 3, jitter: 0))
        #expect(failing(&accrual, times: 2, at: start) == .none)
        _ = accrual.record(success: true, dispatch: .regular, at: start, using: &random)
        #expect(failing(&accrual, times: 2, at: start) == .none)
        #expect(accrual.availability(at: start) == .live)
        #expect(failing(&accrual, times: 1, at: start) == .ejected(backoff: .seconds(1)))
        #expect(accrual.availability(at: start) == .unavailable)
    }

    @Test func probesOnceAfterTheBackoffAndRestoresOnSuccess() {
        var random = BalanceSeededRandom(seed: 1)
        var accrual = FailureAccrual(configuration: .init(consecutiveFailures: 1, jitter: 0))
        _ = failing(&accrual, times: 1, at: start)
        #expect(accrual.availability(at: start + .milliseconds(999)) == .unavailable)
        let later = start + .seconds(1)
        #expect(accrual.availability(at: later) == .probeReady)
        #expect(accrual.dispatch(at: later) == .probe)
        #expect(accrual.availability(at: later) == .unavailable)
        #expect(accrual.dispatch(at: later) == .regular)
        // A late answer to a request sent before the ejection does not count as the probe.
        #expect(accrual.record(success: true, dispatch: .regular, at: later, using: &random) == .none)
        #expect(accrual.record(success: true, dispatch: .probe, at: later, using: &random) == .restored)
        #expect(accrual.availability(at: later) == .live)
    }

    @Test func failedProbesDoubleTheBackoffUpToTheMaximum() {
        var random = BalanceSeededRandom(seed: 1)
        var accrual = FailureAccrual(
            configuration: .init(consecutiveFailures: 1, minimumBackoff: .seconds(1), maximumBackoff: .seconds(60), jitter: 0))
        _ = failing(&accrual, times: 1, at: start)
        var now = start
        var backoffs: [Duration] = []
        for _ in 0..<8 {
            now += .seconds(60)
            #expect(accrual.dispatch(at: now) == .probe)
            if case .ejected(let backoff) = accrual.record(success: false, dispatch: .probe, at: now, using: &random) {
                backoffs.append(backoff)
            }
        }
        #expect(backoffs == [.seconds(2), .seconds(4), .seconds(8), .seconds(16), .seconds(32), .seconds(60), .seconds(60), .seconds(60)])
    }

    @Test func abandonedProbeIsOwedAgain() {
        var accrual = FailureAccrual(configuration: .init(consecutiveFailures: 1, jitter: 0))
        _ = failing(&accrual, times: 1, at: start)
        let later = start + .seconds(1)
        #expect(accrual.dispatch(at: later) == .probe)
        accrual.abandon(dispatch: .probe, at: later)
        #expect(accrual.availability(at: later) == .probeReady)
    }

    @Test func jitterOnlyShortensTheBackoff() {
        var random = BalanceSeededRandom(seed: 9)
        for _ in 0..<100 {
            var accrual = FailureAccrual(configuration: .init(consecutiveFailures: 1, minimumBackoff: .seconds(4), jitter: 0.25))
            let dispatch = accrual.dispatch(at: start)
            guard case .ejected(let backoff) = accrual.record(success: false, dispatch: dispatch, at: start, using: &random) else {
                Issue.record("not ejected")
                return
            }
            #expect(backoff <= .seconds(4))
            #expect(backoff >= .seconds(3))
        }
    }
}
