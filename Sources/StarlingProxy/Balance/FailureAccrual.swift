/// The failure-accrual state machine of one endpoint: after `consecutiveFailures` failures in a
/// row the endpoint is ejected for a backoff (exponential with jitter); when the backoff is over
/// it is half-open and gets exactly one probe request; a successful probe restores it, a failed
/// one ejects it again for a longer backoff (Finagle's `FailureAccrualFactory`, Linkerd's
/// consecutive-failures accrual).
///
/// A plain value: the current time and the random source are passed in, so tests step through
/// ejections without waiting.
public struct FailureAccrual: Sendable, Hashable {
    public struct Configuration: Sendable, Hashable {
        /// Consecutive failures that eject an endpoint.
        public var consecutiveFailures: Int
        /// The backoff of the first ejection; each further ejection in a row doubles it.
        public var minimumBackoff: Duration
        /// The longest backoff.
        public var maximumBackoff: Duration
        /// The fraction of a backoff that may be taken off at random (0 = none, 0.5 = up to half),
        /// so endpoints ejected together are not all probed at the same moment.
        public var jitter: Double

        public init(
            consecutiveFailures: Int = 7, minimumBackoff: Duration = .seconds(1),
            maximumBackoff: Duration = .seconds(60), jitter: Double = 0.25
        ) {
            self.consecutiveFailures = max(1, consecutiveFailures)
            self.minimumBackoff = minimumBackoff
            self.maximumBackoff = max(minimumBackoff, maximumBackoff)
            self.jitter = min(max(jitter, 0), 1)
        }
    }

    public enum State: Sendable, Hashable {
        /// Taking traffic; `failures` in a row so far.
        case live(failures: Int)
        /// Ejected until `until`; `ejections` in a row (1 for the first).
        case ejected(until: ContinuousClock.Instant, ejections: Int)
        /// The one probe request is in flight.
        case probing(ejections: Int)
    }

    /// Whether the balancer should send the endpoint traffic.
    public enum Availability: Sendable, Hashable {
        case live
        /// The backoff is over: the next request is the probe.
        case probeReady
        /// Ejected, or its probe is in flight.
        case unavailable
    }

    /// How a request was sent, so that its outcome is counted correctly.
    public enum Dispatch: Sendable, Hashable {
        case regular
        case probe
    }

    /// What an outcome changed, for logging.
    public enum Transition: Sendable, Hashable {
        case none
        case ejected(backoff: Duration)
        case restored
    }

    public let configuration: Configuration
    public private(set) var state: State

    public init(configuration: Configuration = .init()) {
        self.configuration = configuration
        self.state = .live(failures: 0)
    }

    public func availability(at now: ContinuousClock.Instant) -> Availability {
        switch state {
        case .live: .live
        case .ejected(let until, _): now >= until ? .probeReady : .unavailable
        case .probing: .unavailable
        }
    }

    /// A request is being sent to the endpoint. When its backoff is over this request becomes the
    /// probe; otherwise it is a regular request (also when the balancer sends to an ejected
    /// endpoint because nothing else is left, whose outcome then does not count).
    public mutating func dispatch(at now: ContinuousClock.Instant) -> Dispatch {
        if case .ejected(let until, let ejections) = state, now >= until {
            state = .probing(ejections: ejections)
            return .probe
        }
        return .regular
    }

    /// Records the outcome of a request sent with `dispatch`.
    public mutating func record(
        success: Bool, dispatch: Dispatch, at now: ContinuousClock.Instant,
        using random: inout some RandomNumberGenerator
    ) -> Transition {
        switch (state, dispatch) {
        case (.live, _) where success:
            state = .live(failures: 0)
            return .none
        case (.live(let failures), _):
            let failures = failures + 1
            guard failures >= configuration.consecutiveFailures else {
                state = .live(failures: failures)
                return .none
            }
            return eject(ejections: 1, at: now, using: &random)
        case (.probing, .probe) where success:
            state = .live(failures: 0)
            return .restored
        case (.probing(let ejections), .probe):
            return eject(ejections: ejections + 1, at: now, using: &random)
        case (.ejected, _), (.probing, .regular):
            // Requests sent before the ejection, or while nothing else was left, say nothing
            // the probe will not say better.
            return .none
        }
    }

    /// A request sent with `dispatch` ended without an outcome (cancelled): a probe is owed again.
    public mutating func abandon(dispatch: Dispatch, at now: ContinuousClock.Instant) {
        if dispatch == .probe, case .probing(let ejections) = state {
            state = .ejected(until: now, ejections: ejections)
        }
    }

    /// The backoff before the probe of ejection number `ejections` (1-based), before jitter.
    public func backoff(forEjection ejections: Int) -> Duration {
        var backoff = configuration.minimumBackoff
        var remaining = max(1, ejections) - 1
        while remaining > 0, backoff < configuration.maximumBackoff {
            backoff = backoff * 2
            remaining -= 1
        }
        return min(backoff, configuration.maximumBackoff)
    }

    private mutating func eject(
        ejections: Int, at now: ContinuousClock.Instant, using random: inout some RandomNumberGenerator
    ) -> Transition {
        let full = backoff(forEjection: ejections)
        let cut = configuration.jitter > 0 ? Double.random(in: 0..<configuration.jitter, using: &random) : 0
        let backoff = full * (1 - cut)
        state = .ejected(until: now + backoff, ejections: ejections)
        return .ejected(backoff: backoff)
    }
}
