import GRPCCore
import GRPCNIOTransportHTTP2Posix
public import Logging
import StarlingCore
import StarlingMulticluster
import StarlingAPI
import Synchronization

/// Service discovery over the controller's destination API: one `Get` and one `GetProfile`
/// stream per authority, opened on first use and kept while the authority is used.
///
/// Reads (``endpoints(_:)``, ``profile(_:)``) never do I/O once an authority's first answer has
/// arrived: they read a mutex-protected cache that the streams keep current. The first read of an
/// authority waits up to ``Configuration/firstAnswerTimeout`` for that first answer.
///
/// When a stream fails (the controller restarts or is overloaded) it is re-opened with backoff and
/// the last known state keeps being served meanwhile: requests to known destinations do not fail
/// because the control plane is away. The first message of a re-opened stream replaces the cached
/// state. Authorities unused for ``Configuration/idleTimeout`` (and not observed through
/// ``changes(of:)``) are dropped and their streams closed.
///
/// ``run()`` owns the gRPC connection and every stream (structured concurrency); run it for the
/// life of the proxy.
public final class DestinationClient: DiscoverySource {
    public struct Configuration: Sendable {
        /// The controller to ask.
        public var controller: ControllerAPI
        /// The cluster domain in service names (`svc.ns.svc.CLUSTER_DOMAIN`).
        public var clusterDomain: String
        /// How long the first read of an authority waits for the destination API's first answer.
        public var firstAnswerTimeout: Duration
        /// Authorities unread for this long are dropped and their streams closed.
        public var idleTimeout: Duration
        /// Waits between attempts to re-open a failed stream.
        public var backoff: ReconnectBackoff

        public init(
            controller: ControllerAPI, clusterDomain: String = "cluster.local",
            firstAnswerTimeout: Duration = .seconds(2), idleTimeout: Duration = .seconds(600),
            backoff: ReconnectBackoff = ReconnectBackoff()
        ) {
            self.controller = controller
            self.clusterDomain = clusterDomain
            self.firstAnswerTimeout = firstAnswerTimeout
            self.idleTimeout = idleTimeout
            self.backoff = backoff
        }
    }

    /// A request to `run()` to start streams for a new cache entry.
    struct WatchRequest: Sendable {
        var key: String
        var id: UInt64
        /// Finishes when the entry is evicted.
        var stop: AsyncStream<Void>
    }

    struct Entry {
        let id: UInt64
        var record = DestinationRecord()
        /// Bumped on every change of `record`.
        var version: UInt64 = 0
        var lastUsed: ContinuousClock.Instant
        var lastError: String?
        let stop: AsyncStream<Void>.Continuation
        var subscribers: [UInt64: AsyncStream<Void>.Continuation] = [:]
    }

    struct State {
        var entries: [String: Entry] = [:]
        var nextID: UInt64 = 0
        /// Authorities as applications spell them → their cache keys (normalizing costs more
        /// than the lookup; the hot path asks for the same few spellings on every request).
        var keys: [String: String] = [:]
    }

    public let configuration: Configuration
    let logger: Logger
    let state = Mutex(State())
    private let requests: AsyncStream<WatchRequest>
    private let requestSink: AsyncStream<WatchRequest>.Continuation

    public init(configuration: Configuration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
        (requests, requestSink) = AsyncStream.makeStream(of: WatchRequest.self)
    }

    // MARK: - DiscoverySource

    public func endpoints(_ authority: String) async throws(ProxyError) -> EndpointSet {
        try await read(authority, what: "endpoints") { $0.endpoints }
    }

    public func profile(_ authority: String) async throws(ProxyError) -> ServiceProfile {
        try await read(authority, what: "profile") { $0.profile }
    }

    public func cachedProfile(_ authority: String) -> ServiceProfile? {
        cachedLookup(authority) { $0.profile }
    }

    public func cachedEndpoints(_ authority: String) -> EndpointSet? {
        cachedLookup(authority) { $0.endpoints }
    }

    public func cachedProfileAndEndpoints(_ authority: String) -> (profile: ServiceProfile, endpoints: EndpointSet?)? {
        cachedLookup(authority) { record in record.profile.map { ($0, record.endpoints) } }
    }

    /// `lookup` for an authority as the application spelled it, normalized through a memo. One
    /// hash of each key per call: this runs on every request.
    private func cachedLookup<T: Sendable>(_ authority: String, _ extract: (DestinationRecord) -> T?) -> T? {
        let now = ContinuousClock.now
        let clusterDomain = configuration.clusterDomain
        return state.withLock { state in
            let key: String
            if let known = state.keys[authority] {
                key = known
            } else {
                key = ServiceAuthority.key(authority, clusterDomain: clusterDomain)
                // Bounded: spellings come from applications.
                if state.keys.count >= 4096 { state.keys.removeAll(keepingCapacity: true) }
                state.keys[authority] = key
            }
            return touch(key, in: &state, now: now, extract)
        }
    }

    // MARK: - Observing

    /// Yields each time the cached answer for `authority` changes (endpoints or profile). Starts
    /// the authority's streams if needed; an observed authority is never evicted.
    public func changes(of authority: String) -> AsyncStream<Void> {
        subscribe(ServiceAuthority.key(authority, clusterDomain: configuration.clusterDomain)).updates
    }

    /// A counter bumped on every change of `authority`'s cached answer; 0 when nothing is known.
    public func version(of authority: String) -> UInt64 {
        let key = ServiceAuthority.key(authority, clusterDomain: configuration.clusterDomain)
        return state.withLock { $0.entries[key]?.version ?? 0 }
    }

    // MARK: - Running

    /// Connects to the controller and serves stream requests until cancelled.
    public func run() async throws {
        let transport = try configuration.controller.makeTransport()
        try await withGRPCClient(
            transport: transport, interceptors: [BearerTokenInterceptor(token: configuration.controller.token)]
        ) { grpc in
            let client = Starling_V1_Destination.Client(wrapping: grpc)
            await withDiscardingTaskGroup { group in
                group.addTask { await self.evictIdleEntries() }
                for await request in requests {
                    group.addTask { await self.watch(request, client) }
                }
                group.cancelAll()
            }
        }
    }

    // MARK: - Cache

    private func read<T: Sendable>(
        _ authority: String, what: String, _ extract: @escaping @Sendable (DestinationRecord) -> T?
    ) async throws(ProxyError) -> T {
        let key = ServiceAuthority.key(authority, clusterDomain: configuration.clusterDomain)
        if let value = lookup(key, extract) { return value }
        let (updates, endUpdates) = subscribe(key)
        defer { endUpdates() }
        if let value = lookup(key, extract) { return value }
        let timeout = configuration.firstAnswerTimeout
        let value: T? = await withTaskGroup(of: T?.self) { group in
            group.addTask {
                for await _ in updates {
                    if let value = self.lookup(key, extract) { return value }
                }
                return nil
            }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return nil
            }
            let first = await group.next() ?? nil
            group.cancelAll()
            return first
        }
        if let value { return value }
        let reason = state.withLock { $0.entries[key]?.lastError }.map { ": \($0)" } ?? ""
        throw ProxyError(
            .discoveryUnavailable,
            "the destination API at \(configuration.controller) sent no \(what) for \(key) within \(timeout)\(reason)")
    }

    /// The cached value for `key`, touching the entry; creates the entry (and asks `run()` for its
    /// streams) when there is none.
    private func lookup<T: Sendable>(_ key: String, _ extract: (DestinationRecord) -> T?) -> T? {
        let now = ContinuousClock.now
        return state.withLock { state in touch(key, in: &state, now: now, extract) }
    }

    /// Under the lock: the cached value for `key`, touching the entry (one hash of the key: this
    /// runs on every request); creates the entry when there is none.
    private func touch<T: Sendable>(
        _ key: String, in state: inout State, now: ContinuousClock.Instant, _ extract: (DestinationRecord) -> T?
    ) -> T? {
        guard let index = state.entries.index(forKey: key) else {
            createEntry(key, in: &state, now: now)
            return extract(DestinationRecord())
        }
        state.entries.values[index].lastUsed = now
        return extract(state.entries.values[index].record)
    }

    /// A stream of change notices for `key`, and a function that ends it early.
    private func subscribe(_ key: String) -> (updates: AsyncStream<Void>, end: @Sendable () -> Void) {
        let (stream, continuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        let now = ContinuousClock.now
        let (entryID, subscriberID) = state.withLock { state in
            if state.entries[key] == nil { createEntry(key, in: &state, now: now) }
            state.nextID += 1
            state.entries[key]!.subscribers[state.nextID] = continuation
            state.entries[key]!.lastUsed = now
            return (state.entries[key]!.id, state.nextID)
        }
        let remove: @Sendable () -> Void = { [weak self] in
            self?.state.withLock { state in
                guard state.entries[key]?.id == entryID else { return }
                state.entries[key]!.subscribers[subscriberID] = nil
            }
        }
        continuation.onTermination = { _ in remove() }
        return (stream, { continuation.finish() })
    }

    private func createEntry(_ key: String, in state: inout State, now: ContinuousClock.Instant) {
        state.nextID += 1
        let (stop, stopSink) = AsyncStream.makeStream(of: Void.self)
        state.entries[key] = Entry(id: state.nextID, lastUsed: now, stop: stopSink)
        requestSink.yield(WatchRequest(key: key, id: state.nextID, stop: stop))
    }

    /// Applies `change` to the record of entry `id` (ignored when that entry was evicted) and wakes
    /// the observers when something changed.
    func updateRecord(_ key: String, id: UInt64, _ change: (inout DestinationRecord) -> Void) {
        let observers = state.withLock { state -> [AsyncStream<Void>.Continuation] in
            guard var entry = state.entries[key], entry.id == id else { return [] }
            let before = entry.record
            change(&entry.record)
            entry.lastError = nil
            guard entry.record != before else {
                state.entries[key] = entry
                return []
            }
            entry.version += 1
            state.entries[key] = entry
            return Array(entry.subscribers.values)
        }
        for observer in observers { observer.yield() }
    }

    func recordFailure(_ key: String, id: UInt64, _ reason: String) {
        state.withLock { state in
            guard state.entries[key]?.id == id else { return }
            state.entries[key]!.lastError = reason
        }
    }

    /// Drops entries unread for `idleTimeout` that nobody observes, closing their streams.
    func evictIdle(now: ContinuousClock.Instant) {
        let idle = configuration.idleTimeout
        let evicted = state.withLock { state -> [(String, AsyncStream<Void>.Continuation)] in
            let stale = state.entries.filter { $0.value.subscribers.isEmpty && now - $0.value.lastUsed >= idle }
            for key in stale.keys { state.entries[key] = nil }
            return stale.map { ($0.key, $0.value.stop) }
        }
        // Finished outside the lock: finishing runs termination handlers synchronously.
        for (key, stop) in evicted {
            stop.finish()
            logger.debug("destination streams closed after idle period", metadata: ["authority": "\(key)"])
        }
    }

    private func evictIdleEntries() async {
        let period = min(configuration.idleTimeout / 4, .seconds(60))
        while true {
            do {
                try await Task.sleep(for: period)
            } catch {
                return
            }
            evictIdle(now: .now)
        }
    }
}
