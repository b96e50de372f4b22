public import Logging
import Synchronization

/// The balancer of the proxy: for each request it applies the service's traffic split (weighted,
/// per request; a backend without live endpoints gives its share to the others), then balances
/// over the chosen backend's endpoints with power of two choices over peak-EWMA latency, with
/// failure accrual per endpoint and a retry budget per service.
///
/// All state sits behind one lock and is touched once per pick and once per completion; nothing
/// in there waits. Discovery is asked on every pick, which costs no I/O once it has answered
/// (`DiscoverySource` serves its cached answers).
public final class MeshPicker: EndpointPicker {
    public struct Configuration: Sendable {
        /// When to eject endpoints and for how long.
        public var failureAccrual: FailureAccrual.Configuration
        /// The time constant of the peak-EWMA latency.
        public var latencyDecay: Duration
        /// The latency assumed of an endpoint before its first response.
        public var initialLatency: Duration
        /// How long deposits and withdrawals count in a retry budget.
        public var retryWindow: Duration
        /// The balancing state of an authority that has not been picked for this long (and has
        /// nothing in flight) is dropped.
        public var idleExpiry: Duration

        public init(
            failureAccrual: FailureAccrual.Configuration = .init(), latencyDecay: Duration = .seconds(10),
            initialLatency: Duration = .milliseconds(30), retryWindow: Duration = .seconds(10),
            idleExpiry: Duration = .seconds(300)
        ) {
            self.failureAccrual = failureAccrual
            self.latencyDecay = latencyDecay
            self.initialLatency = initialLatency
            self.retryWindow = retryWindow
            self.idleExpiry = idleExpiry
        }
    }

    private struct Budget {
        var budget: RetryBudget
        var lastUsed: ContinuousClock.Instant
    }

    private struct State {
        var backends: [String: EndpointBalancer] = [:]
        var budgets: [String: Budget] = [:]
        var random: any RandomNumberGenerator
        var nextGeneration: UInt64 = 0
        var lastSweep: ContinuousClock.Instant
    }

    private let discovery: any DiscoverySource
    private let configuration: Configuration
    private let settings: EndpointBalancer.Settings
    private let logger: Logger
    private let now: @Sendable () -> ContinuousClock.Instant
    private let state: Mutex<State>

    /// - Parameters:
    ///   - discovery: where profiles and endpoints come from.
    ///   - configuration: balancing settings.
    ///   - logger: ejections and restorations are logged here.
    ///   - now: the clock (tests pass a manual one).
    ///   - random: the random source (tests pass a seeded one).
    public init(
        discovery: any DiscoverySource, configuration: Configuration = .init(), logger: Logger,
        now: @escaping @Sendable () -> ContinuousClock.Instant = { .now },
        random: some RandomNumberGenerator & Sendable = SystemRandomNumberGenerator()
    ) {
        self.discovery = discovery
        self.configuration = configuration
        self.settings = EndpointBalancer.Settings(
            initialRTT: configuration.initialLatency, decay: configuration.latencyDecay,
            failureAccrual: configuration.failureAccrual)
        self.logger = logger
        self.now = now
        self.state = Mutex(State(random: random, lastSweep: now()))
    }

    public func pick(_ authority: String) async throws(ProxyError) -> Pick {
        let profile = try await discovery.profile(authority)
        if profile.backends.isEmpty {
            let set = try await discovery.endpoints(authority)
            return try pick(authority: authority, profile: profile, single: set)
        }
        var sets: [(String, Set<Endpoint>)] = []
        sets.reserveCapacity(profile.backends.count)
        var failures = 0
        var firstError: ProxyError?
        for backend in profile.backends {
            do {
                let set = try await discovery.endpoints(backend.authority)
                sets.append((backend.authority, set.exists ? set.endpoints : []))
            } catch {
                // A backend discovery cannot answer for is treated as empty: its share goes to
                // the others.
                failures += 1
                if firstError == nil { firstError = error }
                sets.append((backend.authority, []))
            }
        }
        if failures == profile.backends.count, let firstError { throw firstError }
        let (backend, choice) = try choose(authority: authority, profile: profile, sets: sets)
        return makePick(authority: authority, profile: profile, backend: backend, choice: choice)
    }

    public func pickNow(_ authority: String) -> Result<Pick, ProxyError>? {
        guard let profile = discovery.cachedProfile(authority) else { return nil }
        do throws(ProxyError) {
            if profile.backends.isEmpty {
                guard let set = discovery.cachedEndpoints(authority) else { return nil }
                return .success(try pick(authority: authority, profile: profile, single: set))
            }
            var sets: [(String, Set<Endpoint>)] = []
            sets.reserveCapacity(profile.backends.count)
            for backend in profile.backends {
                // A backend not answered for yet: `pick` waits for it (or treats it as empty).
                guard let set = discovery.cachedEndpoints(backend.authority) else { return nil }
                sets.append((backend.authority, set.exists ? set.endpoints : []))
            }
            let (backend, choice) = try choose(authority: authority, profile: profile, sets: sets)
            return .success(makePick(authority: authority, profile: profile, backend: backend, choice: choice))
        } catch {
            return .failure(error)
        }
    }

    /// A pick for a service without a split.
    private func pick(authority: String, profile: ServiceProfile, single set: EndpointSet) throws(ProxyError) -> Pick {
        guard set.exists else {
            throw ProxyError(.unknownService, "\(authority) is not a known service")
        }
        guard !set.endpoints.isEmpty else {
            throw ProxyError(.noEndpoints, "\(authority) has no endpoints")
        }
        let (backend, choice) = try choose(authority: authority, profile: profile, sets: [(authority, set.endpoints)])
        return makePick(authority: authority, profile: profile, backend: backend, choice: choice)
    }

    // MARK: - Choosing

    /// Under the lock: refreshes the balancers of the candidate backends, chooses a backend by
    /// weight among those with live endpoints (or, when none has any, among those with ejected
    /// ones), chooses its endpoint and deposits into the service's retry budget.
    private func choose(
        authority: String, profile: ServiceProfile, sets: [(String, Set<Endpoint>)]
    ) throws(ProxyError) -> (String, EndpointBalancer.Choice) {
        let now = now()
        let settings = settings
        let result: Result<(String, EndpointBalancer.Choice), ProxyError> = state.withLock { state in
            sweepIfDue(&state, now: now)
            for (backend, endpoints) in sets {
                if endpoints.isEmpty {
                    state.backends[backend]?.update([], settings: settings, now: now, nextGeneration: &state.nextGeneration)
                } else {
                    state.backends[backend, default: EndpointBalancer(now: now)]
                        .update(endpoints, settings: settings, now: now, nextGeneration: &state.nextGeneration)
                }
            }
            let chosen: Int
            if sets.count == 1 {
                chosen = 0
            } else {
                let weights = profile.backends.lazy.map(\.weight)
                let live = WeightedChoice.choose(
                    weights: weights,
                    isAvailable: { state.backends[sets[$0].0]?.hasLiveEndpoints(at: now) ?? false },
                    using: &state.random)
                let anyEndpoint = live ?? WeightedChoice.choose(
                    weights: weights,
                    isAvailable: { !(state.backends[sets[$0].0]?.isEmpty ?? true) },
                    using: &state.random)
                guard let index = anyEndpoint else {
                    let names = sets.map(\.0).joined(separator: ", ")
                    return .failure(ProxyError(.noEndpoints, "no backend of \(authority) has endpoints (\(names))"))
                }
                chosen = index
            }
            let backend = sets[chosen].0
            guard let choice = state.backends[backend]?.choose(at: now, using: &state.random) else {
                return .failure(ProxyError(.noEndpoints, "\(backend) has no endpoints"))
            }
            let budget = state.budgets[authority]
            var updated = budget ?? Budget(
                budget: RetryBudget(
                    ratio: profile.retryRatio, minRetriesPerSecond: profile.minRetriesPerSecond,
                    window: configuration.retryWindow, now: now),
                lastUsed: now)
            updated.budget.ratio = profile.retryRatio
            updated.budget.minRetriesPerSecond = profile.minRetriesPerSecond
            updated.budget.deposit(at: now)
            updated.lastUsed = now
            state.budgets[authority] = updated
            return .success((backend, choice))
        }
        return try result.get()
    }

    private func makePick(
        authority: String, profile: ServiceProfile, backend: String, choice: EndpointBalancer.Choice
    ) -> Pick {
        Pick(
            endpoint: choice.endpoint, backend: backend, timeout: profile.timeout,
            mayRetry: { [self] in withdrawRetry(authority: authority) },
            complete: { [self] outcome in complete(backend: backend, choice: choice, outcome: outcome) })
    }

    // MARK: - Feedback

    private func withdrawRetry(authority: String) -> Bool {
        let now = now()
        return state.withLock { state in
            guard state.budgets[authority] != nil else { return false }
            return state.budgets[authority]!.budget.withdraw(at: now)
        }
    }

    private func complete(backend: String, choice: EndpointBalancer.Choice, outcome: PickOutcome) {
        let now = now()
        let transition = state.withLock { state -> FailureAccrual.Transition in
            guard state.backends[backend] != nil else { return .none }
            return state.backends[backend]!.complete(choice, outcome: outcome, at: now, using: &state.random)
        }
        switch transition {
        case .none: break
        case .ejected(let backoff):
            logger.warning(
                "endpoint ejected after failures",
                metadata: [
                    "backend": "\(backend)", "endpoint": "\(choice.endpoint)",
                    "backoff_ms": "\(backoff.components.seconds * 1000 + backoff.components.attoseconds / 1_000_000_000_000_000)",
                ])
        case .restored:
            logger.info(
                "endpoint restored after a successful probe",
                metadata: ["backend": "\(backend)", "endpoint": "\(choice.endpoint)"])
        }
    }

    // MARK: - Pruning

    /// Drops the state of authorities nobody asked for in `idleExpiry`, at most once a minute.
    private func sweepIfDue(_ state: inout State, now: ContinuousClock.Instant) {
        guard now - state.lastSweep >= .seconds(60) else { return }
        state.lastSweep = now
        let expiry = configuration.idleExpiry
        state.backends = state.backends.filter { now - $0.value.lastUsed < expiry || $0.value.pending > 0 }
        state.budgets = state.budgets.filter { now - $0.value.lastUsed < expiry }
    }
}
