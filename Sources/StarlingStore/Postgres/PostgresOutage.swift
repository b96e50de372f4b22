import Foundation
import StarlingCore
import Synchronization

/// Whether the database answers, as this replica last saw it. After an operation fails for want
/// of the database (it timed out, or no connection could be made), further operations fail at once
/// with that error, except one probe every ``trialEvery`` (the replica's heartbeat, which runs
/// every second): a replica cut off from the database answers "unavailable" in milliseconds, and
/// clients retry on another replica instead of waiting out a timeout here. No client call is ever
/// the probe, so none waits for one. The first answer ends the outage.
final class PostgresOutage: Sendable {
    let trialEvery: Duration
    private struct State {
        var failure: StoreError?
        var since: ContinuousClock.Instant = .now
        var lastTrial: ContinuousClock.Instant = .now
    }
    private let state = Mutex(State())

    init(trialEvery: Duration = .seconds(2)) {
        self.trialEvery = trialEvery
    }

    /// The error to fail with now; nil when the operation may go to the database (no outage, or
    /// it is a probe and this moment's trial).
    func failFast(doing what: String, probe: Bool = false, now: ContinuousClock.Instant = .now) -> StoreError? {
        state.withLock { state in
            guard let failure = state.failure else { return nil }
            if probe, now - state.lastTrial >= trialEvery {
                state.lastTrial = now
                return nil
            }
            let seconds = Int((now - state.since).components.seconds)
            return StoreError(
                .unavailable,
                "\(what): not tried, the database has not answered this replica for \(seconds) s "
                    + "(it is tried again every \(trialEvery)); last error: \(failure.message)")
        }
    }

    func unanswered(_ error: StoreError, now: ContinuousClock.Instant = .now) {
        state.withLock { state in
            if state.failure == nil { state.since = now }
            state.failure = error
            state.lastTrial = now
        }
    }

    func answered() {
        state.withLock { $0.failure = nil }
    }

    var isOngoing: Bool { state.withLock { $0.failure != nil } }
}
