/// The balancer of one backend service: power of two choices over peak-EWMA cost, with failure
/// accrual per endpoint. Keeps one entry per endpoint discovery currently reports; entries of
/// endpoints that disappear are dropped, entries of those that stay keep their history.
///
/// A plain value owned by `MeshPicker` under its lock; time and randomness are passed in.
struct EndpointBalancer {
    struct Entry {
        var endpoint: Endpoint
        var load: PeakEWMA
        var accrual: FailureAccrual
        /// Tells a late `complete` for a removed-then-re-added endpoint from one for this entry.
        var generation: UInt64
    }

    /// What one choice produced.
    struct Choice {
        var endpoint: Endpoint
        var generation: UInt64
        var dispatch: FailureAccrual.Dispatch
        /// Where the entry was when chosen (found again without hashing the endpoint, unless the
        /// entries were rebuilt meanwhile).
        var index: Int
    }

    struct Settings {
        var initialRTT: Duration
        var decay: Duration
        var failureAccrual: FailureAccrual.Configuration
    }

    private(set) var entries: [Entry] = []
    private var positions: [Endpoint: Int] = [:]
    /// The endpoint set `entries` was built from; equal sets usually share storage, which makes
    /// the comparison on every pick cheap.
    private var source: Set<Endpoint> = []
    private(set) var lastUsed: ContinuousClock.Instant

    init(now: ContinuousClock.Instant) {
        lastUsed = now
    }

    var isEmpty: Bool { entries.isEmpty }

    var pending: Int { entries.reduce(0) { $0 + $1.load.pending } }

    /// Brings the entries in line with discovery's current `endpoints`.
    mutating func update(
        _ endpoints: Set<Endpoint>, settings: Settings, now: ContinuousClock.Instant, nextGeneration: inout UInt64
    ) {
        guard endpoints != source else { return }
        var rebuilt: [Entry] = []
        rebuilt.reserveCapacity(endpoints.count)
        var rebuiltPositions: [Endpoint: Int] = [:]
        rebuiltPositions.reserveCapacity(endpoints.count)
        for endpoint in endpoints {
            if let position = positions[endpoint] {
                rebuilt.append(entries[position])
            } else {
                nextGeneration &+= 1
                rebuilt.append(
                    Entry(
                        endpoint: endpoint,
                        load: PeakEWMA(initialRTT: settings.initialRTT, decay: settings.decay, now: now),
                        accrual: FailureAccrual(configuration: settings.failureAccrual),
                        generation: nextGeneration))
            }
            rebuiltPositions[endpoint] = rebuilt.count - 1
        }
        entries = rebuilt
        positions = rebuiltPositions
        source = endpoints
    }

    /// True when at least one endpoint not in `avoiding` takes traffic (live, or due for its probe).
    func hasLiveEndpoints(at now: ContinuousClock.Instant, avoiding: [Endpoint] = []) -> Bool {
        entries.contains { $0.accrual.availability(at: now) != .unavailable && !avoiding.contains($0.endpoint) }
    }

    /// True when at least one endpoint is not in `avoiding`, live or not.
    func hasEndpoints(avoiding: [Endpoint]) -> Bool {
        avoiding.isEmpty ? !entries.isEmpty : entries.contains { !avoiding.contains($0.endpoint) }
    }

    /// Chooses the endpoint for one request and counts it as pending. An endpoint due for its probe
    /// gets the request; otherwise two distinct random live endpoints are compared and the cheaper
    /// wins. When every endpoint is ejected the choice is made among all of them: a request to a
    /// doubtful endpoint beats failing it here. Endpoints in `avoiding` are never chosen.
    mutating func choose(
        at now: ContinuousClock.Instant, avoiding: [Endpoint] = [], using random: inout some RandomNumberGenerator
    ) -> Choice? {
        guard !entries.isEmpty else { return nil }
        lastUsed = now
        guard avoiding.isEmpty else { return chooseAvoiding(avoiding, at: now, using: &random) }
        var live = 0
        var probe: Int?
        for index in entries.indices {
            switch entries[index].accrual.availability(at: now) {
            case .live: live += 1
            case .probeReady:
                live += 1
                if probe == nil { probe = index }
            case .unavailable: break
            }
        }
        let index: Int
        if let probe {
            index = probe
        } else if live == 0 || live == entries.count {
            index = powerOfTwoChoices(among: entries.count, onlyLive: false, at: now, using: &random)
        } else {
            index = powerOfTwoChoices(among: live, onlyLive: true, at: now, using: &random)
        }
        return take(index, at: now)
    }

    /// The choice of a request's next connect attempt: the same rules as the first, among the
    /// entries not in `avoiding` (a rare path: a list of candidates is built).
    private mutating func chooseAvoiding(
        _ avoiding: [Endpoint], at now: ContinuousClock.Instant, using random: inout some RandomNumberGenerator
    ) -> Choice? {
        let allowed = entries.indices.filter { !avoiding.contains(entries[$0].endpoint) }
        let live = allowed.filter { entries[$0].accrual.availability(at: now) != .unavailable }
        let candidates = live.isEmpty ? allowed : live
        guard !candidates.isEmpty else { return nil }
        if let probe = candidates.first(where: { entries[$0].accrual.availability(at: now) == .probeReady }) {
            return take(probe, at: now)
        }
        guard candidates.count > 1 else { return take(candidates[0], at: now) }
        let first = Int.random(in: 0..<candidates.count, using: &random)
        var second = Int.random(in: 0..<(candidates.count - 1), using: &random)
        if second >= first { second += 1 }
        let (a, b) = (candidates[first], candidates[second])
        return take(entries[b].load.cost(at: now) < entries[a].load.cost(at: now) ? b : a, at: now)
    }

    /// Dispatches one request to the entry at `index` and counts it as pending.
    private mutating func take(_ index: Int, at now: ContinuousClock.Instant) -> Choice {
        let dispatch = entries[index].accrual.dispatch(at: now)
        entries[index].load.start()
        return Choice(
            endpoint: entries[index].endpoint, generation: entries[index].generation, dispatch: dispatch, index: index)
    }

    /// Records how a request chosen with `choice` went.
    mutating func complete(
        _ choice: Choice, outcome: PickOutcome, at now: ContinuousClock.Instant,
        using random: inout some RandomNumberGenerator
    ) -> FailureAccrual.Transition {
        let index: Int
        if choice.index < entries.count, entries[choice.index].generation == choice.generation {
            index = choice.index
        } else if let moved = positions[choice.endpoint], entries[moved].generation == choice.generation {
            index = moved
        } else {
            return .none
        }
        switch outcome {
        case .success(let latency):
            entries[index].load.finish(rtt: latency, at: now)
            return entries[index].accrual.record(success: true, dispatch: choice.dispatch, at: now, using: &random)
        case .failure(let latency):
            entries[index].load.finish(rtt: latency, onlyIfSlower: true, at: now)
            return entries[index].accrual.record(success: false, dispatch: choice.dispatch, at: now, using: &random)
        case .abandoned:
            entries[index].load.finish(rtt: nil, at: now)
            entries[index].accrual.abandon(dispatch: choice.dispatch, at: now)
            return .none
        }
    }

    /// Power of two choices among `count` candidates (the live entries when `onlyLive`, else all):
    /// two distinct ones at random, the lower cost wins (the first on a tie, which is itself random).
    private func powerOfTwoChoices(
        among count: Int, onlyLive: Bool, at now: ContinuousClock.Instant,
        using random: inout some RandomNumberGenerator
    ) -> Int {
        guard count > 1 else { return candidate(0, onlyLive: onlyLive, at: now) }
        let first = Int.random(in: 0..<count, using: &random)
        var second = Int.random(in: 0..<(count - 1), using: &random)
        if second >= first { second += 1 }
        let a = candidate(first, onlyLive: onlyLive, at: now)
        let b = candidate(second, onlyLive: onlyLive, at: now)
        return entries[b].load.cost(at: now) < entries[a].load.cost(at: now) ? b : a
    }

    /// The index of the `n`th candidate (0-based): the `n`th live entry when `onlyLive`, else
    /// simply the `n`th entry.
    private func candidate(_ n: Int, onlyLive: Bool, at now: ContinuousClock.Instant) -> Int {
        guard onlyLive else { return n }
        var remaining = n
        for index in entries.indices where entries[index].accrual.availability(at: now) != .unavailable {
            if remaining == 0 { return index }
            remaining -= 1
        }
        return entries.count - 1
    }
}
