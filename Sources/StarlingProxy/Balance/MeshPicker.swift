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

    /// One backend's balancer. A reference, so that a pick's completion reaches it without a
    /// look-up by name; only touched under the picker's lock (hence unchecked).
    private final class Backend: @unchecked Sendable {
        var balancer: EndpointBalancer
        init(now: ContinuousClock.Instant) { balancer = EndpointBalancer(now: now) }
    }

    /// One service's retry budget; same rules as ``Backend``.
    private final class Budget: @unchecked Sendable {
        var budget: RetryBudget
        var lastUsed: ContinuousClock.Instant
        init(budget: RetryBudget, lastUsed: ContinuousClock.Instant) {
            self.budget = budget
            self.lastUsed = lastUsed
        }
    }

    /// What one pick chose, for its completion.
    private struct Chosen {
        var name: String
        var backend: Backend
        var choice: EndpointBalancer.Choice
        var budget: Budget
    }

    private struct State {
        var backends: [String: Backend] = [:]
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

    public func pick(_ authority: String, avoiding: [Endpoint]) async throws(ProxyError) -> Pick {
        let profile = try await discovery.profile(authority)
        if profile.backends.isEmpty {
            let set = try await discovery.endpoints(authority)
            return try pick(authority: authority, profile: profile, single: set, avoiding: avoiding)
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
        return makePick(profile: profile, try choose(authority: authority, profile: profile, sets: sets, avoiding: avoiding))
    }

    public func pickNow(_ authority: String, avoiding: [Endpoint]) -> Result<Pick, ProxyError>? {
        guard let profile = discovery.cachedProfile(authority) else { return nil }
        do throws(ProxyError) {
            if profile.backends.isEmpty {
                guard let set = discovery.cachedEndpoints(authority) else { return nil }
                return .success(try pick(authority: authority, profile: profile, single: set, avoiding: avoiding))
            }
            var sets: [(String, Set<Endpoint>)] = []
            sets.reserveCapacity(profile.backends.count)
            for backend in profile.backends {
                // A backend not answered for yet: `pick` waits for it (or treats it as empty).
                guard let set = discovery.cachedEndpoints(backend.authority) else { return nil }
                sets.append((backend.authority, set.exists ? set.endpoints : []))
            }
            return .success(
                makePick(profile: profile, try choose(authority: authority, profile: profile, sets: sets, avoiding: avoiding)))
        } catch {
            return .failure(error)
        }
    }

    /// A pick for a service without a split.
    private func pick(
        authority: String, profile: ServiceProfile, single set: EndpointSet, avoiding: [Endpoint]
    ) throws(ProxyError) -> Pick {
        guard set.exists else {
            throw ProxyError(.unknownService, "\(authority) is not a known service")
        }
        guard !set.endpoints.isEmpty else {
            throw ProxyError(.noEndpoints, "\(authority) has no endpoints")
        }
        return makePick(
            profile: profile,
            try choose(authority: authority, profile: profile, sets: [(authority, set.endpoints)], avoiding: avoiding))
    }

    // MARK: - Choosing

    /// Under the lock: refreshes the balancers of the candidate backends, chooses a backend by
    /// weight among those with live endpoints (or, when none has any, among those with ejected
    /// ones), chooses its endpoint and deposits into the service's retry budget. Each name is
    /// looked up once (this runs on every request). Endpoints in `avoiding` (the request failed
    /// to connect to them) are never chosen; a backend with no others counts as empty.
    private func choose(
        authority: String, profile: ServiceProfile, sets: [(String, Set<Endpoint>)], avoiding: [Endpoint]
    ) throws(ProxyError) -> Chosen {
        let now = now()
        let settings = settings
        let result: Result<Chosen, ProxyError> = state.withLock { state in
            sweepIfDue(&state, now: now)
            var last: Backend?
            for (name, endpoints) in sets {
                let backend: Backend?
                if let existing = state.backends[name] {
                    backend = existing
                } else if endpoints.isEmpty {
                    backend = nil
                } else {
                    let created = Backend(now: now)
                    state.backends[name] = created
                    backend = created
                }
                backend?.balancer.update(endpoints, settings: settings, now: now, nextGeneration: &state.nextGeneration)
                last = backend
            }
            let name: String
            let backend: Backend
            if sets.count == 1 {
                guard let last else {
                    return .failure(ProxyError(.noEndpoints, "\(sets[0].0) has no endpoints"))
                }
                (name, backend) = (sets[0].0, last)
            } else {
                let weights = profile.backends.lazy.map(\.weight)
                let live = WeightedChoice.choose(
                    weights: weights,
                    isAvailable: {
                        state.backends[sets[$0].0]?.balancer.hasLiveEndpoints(at: now, avoiding: avoiding) ?? false
                    },
                    using: &state.random)
                let anyEndpoint = live ?? WeightedChoice.choose(
                    weights: weights,
                    isAvailable: { state.backends[sets[$0].0]?.balancer.hasEndpoints(avoiding: avoiding) ?? false },
                    using: &state.random)
                guard let index = anyEndpoint, let chosen = state.backends[sets[index].0] else {
                    let names = sets.map(\.0).joined(separator: ", ")
                    return .failure(ProxyError(.noEndpoints, "no backend of \(authority) has endpoints (\(names))"))
                }
                (name, backend) = (sets[index].0, chosen)
            }
            guard let choice = backend.balancer.choose(at: now, avoiding: avoiding, using: &state.random) else {
                let reason = avoiding.isEmpty ? "has no endpoints" : "has no endpoints left to try"
                return .failure(ProxyError(.noEndpoints, "\(name) \(reason)"))
            }
            let budget: Budget
            if let existing = state.budgets[authority] {
                budget = existing
                budget.budget.ratio = profile.retryRatio
                budget.budget.minRetriesPerSecond = profile.minRetriesPerSecond
            } else {
                budget = Budget(
                    budget: RetryBudget(
                        ratio: profile.retryRatio, minRetriesPerSecond: profile.minRetriesPerSecond,
                        window: configuration.retryWindow, now: now),
                    lastUsed: now)
                state.budgets[authority] = budget
            }
            budget.budget.deposit(at: now)
            budget.lastUsed = now
            return .success(Chosen(name: name, backend: backend, choice: choice, budget: budget))
        }
        return try result.get()
    }

    private func makePick(profile: ServiceProfile, _ chosen: Chosen) -> Pick {
        Pick(
            endpoint: chosen.choice.endpoint, backend: chosen.name, service: profile.fullyQualifiedName,
            split: !profile.backends.isEmpty, timeout: profile.timeout, routes: profile.routes,
            mayRetry: { [self] in withdrawRetry(chosen.budget) },
            complete: { [self] outcome in complete(chosen, outcome: outcome) })
    }

    // MARK: - Feedback

    private func withdrawRetry(_ budget: Budget) -> Bool {
        let now = now()
        return state.withLock { _ in budget.budget.withdraw(at: now) }
    }

    private func complete(_ chosen: Chosen, outcome: PickOutcome) {
        let now = now()
        let transition = state.withLock { state -> FailureAccrual.Transition in
            chosen.backend.balancer.complete(chosen.choice, outcome: outcome, at: now, using: &state.random)
        }
        switch transition {
        case .none: break
        case .ejected(let backoff):
            logger.warning(
                "endpoint ejected after failures",
                metadata: [
                    "backend": "\(chosen.name)", "endpoint": "\(chosen.choice.endpoint)",
                    "backoff_ms": "\(backoff.components.seconds * 1000 + backoff.components.attoseconds / 1_000_000_000_000_000)",
                ])
        case .restored:
            logger.info(
                "endpoint restored after a successful probe",
                metadata: ["backend": "\(chosen.name)", "endpoint": "\(chosen.choice.endpoint)"])
        }
    }

    // MARK: - Pruning

    /// Drops the state of authorities nobody asked for in `idleExpiry`, at most once a minute.
    private func sweepIfDue(_ state: inout State, now: ContinuousClock.Instant) {
        guard now - state.lastSweep >= .seconds(60) else { return }
        state.lastSweep = now
        let expiry = configuration.idleExpiry
        state.backends = state.backends.filter {
            now - $0.value.balancer.lastUsed < expiry || $0.value.balancer.pending > 0
        }
        state.budgets = state.budgets.filter { now - $0.value.lastUsed < expiry }
    }
}
