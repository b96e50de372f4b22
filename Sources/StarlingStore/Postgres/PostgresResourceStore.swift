import Foundation
public import Logging
import NIOSSL
import PostgresNIO
public import StarlingCore
import Synchronization

/// The `ResourceStore` of a cluster that spans hosts: one PostgreSQL database shared by every
/// controller replica (postgres-nio, a pool of connections per replica).
///
/// Same contract as `SQLiteResourceStore`: an apply is stored whole or not at all, each change
/// takes the next store version and writes one row of the `starling_events` history in the same
/// transaction, and watches replay that history before live changes.
///
/// Versions are commit-ordered: every write first locks the one `starling_meta` row, so writers
/// take versions one after another and the row lock is released only by the commit. A reader that
/// sees version V committed therefore sees every version below V too.
///
/// Live changes reach every replica the same way, whichever replica wrote them: writers `NOTIFY`
/// on commit, and each replica's change feed (one task, one `LISTEN` connection) reads the history
/// after the last version it published, as a wake-up on each notification and at least every
/// `Configuration.pollInterval`. Versions are the truth; a lost notification only delays a change.
public final class PostgresResourceStore: ResourceStore {
    public struct Configuration: Sendable {
        /// How many changes the history keeps for watches to resume from.
        public var maxRetainedEvents: Int
        /// How many changes a watch buffers for a slow consumer before it is ended (it lists again).
        public var watchBufferLimit: Int
        /// How long one operation may wait for the database before it fails.
        public var operationTimeout: Duration
        /// How often the change feed reads the history when no notification arrives.
        public var pollInterval: Duration
        /// The most connections this replica opens.
        public var maxConnections: Int

        public init(
            maxRetainedEvents: Int = 10_000, watchBufferLimit: Int = 50_000, operationTimeout: Duration = .seconds(10),
            pollInterval: Duration = .seconds(1), maxConnections: Int = 16
        ) {
            self.maxRetainedEvents = maxRetainedEvents
            self.watchBufferLimit = watchBufferLimit
            self.operationTimeout = operationTimeout
            self.pollInterval = pollInterval
            self.maxConnections = maxConnections
        }
    }

    public let url: PostgresStoreURL
    public let configuration: Configuration
    /// The cluster this database belongs to.
    public let clusterID: String
    /// The schema version after opening.
    public let schemaVersion: Int
    let client: PostgresClient
    let hub = WatchHub()
    let logger: Logger
    /// "PostgreSQL store postgres://user@host:port/db", for messages.
    let name: String
    let form: StoredForm
    private let runner: Task<Void, Never>
    let feed: Mutex<Task<Void, Never>?> = Mutex(nil)
    /// The last version the change feed published to this replica's watches.
    let published: PublishedVersion
    /// Set while the database does not answer: calls then fail at once instead of each waiting
    /// for its timeout, so clients move to a replica that reaches the database.
    let outage = PostgresOutage()

    /// Connects, migrates the schema, claims the database for `clusterID` (or checks it belongs to
    /// it) and starts the change feed.
    /// - Throws: `StoreError.unavailable` saying why: unreachable, wrong password, missing database,
    ///   a newer schema, another cluster's database.
    public static func open(
        url: PostgresStoreURL, clusterID: String, configuration: Configuration = Configuration(),
        sealer: SecretSealer? = nil,
        logger: Logger = Logger(label: "starling.store", factory: { _ in SwiftLogNoOpLogHandler() })
    ) async throws -> PostgresResourceStore {
        guard configuration.maxRetainedEvents >= 1 else {
            throw StoreError(.invalid, "maxRetainedEvents is \(configuration.maxRetainedEvents); it must be at least 1")
        }
        let name = "PostgreSQL store \(url)"
        let form = StoredForm(store: name, sealer: sealer)
        if let failure = await PostgresAccess.probe(url) {
            throw StoreError(failure.code, "\(name): opening failed: \(failure.message)")
        }
        // The pool logs each failed connection attempt; the store reports an outage itself, once.
        var poolLogger = logger
        poolLogger.logLevel = max(logger.logLevel, .error)
        let client = PostgresClient(configuration: try clientConfiguration(url, configuration), backgroundLogger: poolLogger)
        let runner = Task { await client.run() }
        do {
            let (schema, version) = try await PostgresAccess.bounded(
                name: name, url: url, timeout: configuration.operationTimeout, what: "opening"
            ) {
                let schema = try await PostgresSchema.prepare(client, clusterID: clusterID, form: form, logger: logger)
                return (schema, try await Self.version(client))
            }
            let store = PostgresResourceStore(
                url: url, configuration: configuration, clusterID: clusterID, schemaVersion: schema, client: client,
                runner: runner, logger: logger, version: version, form: form)
            store.startFeed()
            return store
        } catch {
            runner.cancel()
            throw error
        }
    }

    private init(
        url: PostgresStoreURL, configuration: Configuration, clusterID: String, schemaVersion: Int,
        client: PostgresClient, runner: Task<Void, Never>, logger: Logger, version: Int64, form: StoredForm
    ) {
        self.form = form
        self.url = url
        self.configuration = configuration
        self.clusterID = clusterID
        self.schemaVersion = schemaVersion
        self.client = client
        self.runner = runner
        self.logger = logger
        self.name = "PostgreSQL store \(url)"
        self.published = PublishedVersion(version)
    }

    deinit {
        close()
    }

    /// Finishes every watch with `StoreError.unavailable`, stops the change feed and closes the
    /// connections. Later operations throw `StoreError.unavailable`.
    public func close() {
        guard !hub.isClosed else { return }
        hub.close(finishingWith: closedError)
        feed.withLock { $0?.cancel() }
        runner.cancel()
    }

    var closedError: StoreError { StoreError(.unavailable, "\(name) is closed; open it again to use it") }

    static func clientConfiguration(_ url: PostgresStoreURL, _ configuration: Configuration) throws -> PostgresClient.Configuration {
        let tls: PostgresClient.Configuration.TLS = url.tlsConfiguration.map { .require($0) } ?? .disable
        var client = PostgresClient.Configuration(
            host: url.host, port: url.port, username: url.user, password: url.password, database: url.database, tls: tls)
        client.options.maximumConnections = max(2, configuration.maxConnections)
        client.options.connectTimeout = .seconds(5)
        return client
    }

    // MARK: - Reads

    public func get(_ key: ResourceKey) async throws -> Resource? {
        let form = form
        return try await access("reading \(key)") { client in
            let rows = try await client.query(
                "SELECT json FROM starling_resources WHERE kind = \(key.kind) AND namespace = \(key.namespace ?? "") AND name = \(key.name)"
            )
            for try await json in rows.decode(String.self) {
                return try form.resource(from: json, key: key)
            }
            return nil
        }
    }

    /// Resources of one kind, sorted by namespace then name; `selector` is matched against labels.
    public func list(kind: String, namespace: String?, selector: LabelSelector?) async throws -> [Resource] {
        let form = form
        let scope = namespace.map { "\(kind) in namespace \($0)" } ?? "\(kind) in all namespaces"
        return try await access("listing \(scope)") { client in
            let rows =
                if let namespace {
                    try await client.query(
                        "SELECT namespace, name, json FROM starling_resources WHERE kind = \(kind) AND namespace = \(namespace) ORDER BY namespace, name"
                    )
                } else {
                    try await client.query(
                        "SELECT namespace, name, json FROM starling_resources WHERE kind = \(kind) ORDER BY namespace, name")
                }
            var resources: [Resource] = []
            for try await (ns, resourceName, json) in rows.decode((String, String, String).self) {
                let key = ResourceKey(kind: kind, namespace: ns.isEmpty ? nil : ns, name: resourceName)
                let resource = try form.resource(from: json, key: key)
                if selector?.matches(resource.metadata.labels) ?? true { resources.append(resource) }
            }
            return resources
        }
    }

    public func currentVersion() async throws -> Int64 {
        try await access("reading the version") { client in try await Self.version(client) }
    }

    static func version(_ client: PostgresClient) async throws -> Int64 {
        for try await version in try await client.query("SELECT version FROM starling_meta WHERE id = 1").decode(Int64.self) {
            return version
        }
        return 0
    }

    // MARK: - Writes

    /// Creates or replaces each resource in one transaction: all are stored or none is (outcomes,
    /// versions, timestamps and uids as in `SQLiteResourceStore.apply`).
    public func apply(_ resources: [Resource]) async throws -> [ApplyResult] {
        try await apply(resources, fencedBy: nil)
    }

    func apply(_ resources: [Resource], fencedBy fence: DutyFence?) async throws -> [ApplyResult] {
        guard !resources.isEmpty else { return [] }
        let keys = try ApplyPlan.validatedKeys(of: resources)
        let (form, logger, keep) = (form, logger, Int64(configuration.maxRetainedEvents))
        let now = Date.now.formatted(.iso8601)
        return try await access("applying \(resources.count) resource(s)") { client in
            try await client.withTransaction(logger: logger) { connection in
                let current = try await Self.lockVersion(connection, logger: logger)
                if let fence { try await Self.check(fence, connection, logger: logger) }
                let stored = try await Self.fetchStored(connection, keys: keys, form: form, logger: logger)
                let plan = try ApplyPlan(
                    resources: resources, keys: keys, stored: stored, currentVersion: current, now: now, form: form)
                guard !plan.changes.isEmpty else { return plan.results }
                let rows = plan.finalRows
                try await connection.query(
                    """
                    INSERT INTO starling_resources (kind, namespace, name, version, created, uid, json)
                    SELECT * FROM unnest(\(rows.map(\.key.kind))::text[], \(rows.map { $0.key.namespace ?? "" })::text[],
                        \(rows.map(\.key.name))::text[], \(rows.map(\.version))::bigint[],
                        \(rows.map { $0.resource.metadata.creationTimestamp ?? now })::text[],
                        \(rows.map { $0.resource.metadata.uid ?? "" })::text[], \(rows.map(\.json))::text[])
                    ON CONFLICT (kind, namespace, name) DO UPDATE SET version = excluded.version, json = excluded.json
                    """, logger: logger)
                let changes = plan.changes
                try await connection.query(
                    """
                    INSERT INTO starling_events (version, type, kind, namespace, name, json)
                    SELECT * FROM unnest(\(changes.map(\.version))::bigint[], \(changes.map(\.kind.rawValue))::text[],
                        \(changes.map(\.key.kind))::text[], \(changes.map { $0.key.namespace ?? "" })::text[],
                        \(changes.map(\.key.name))::text[], \(changes.map(\.json))::text[])
                    """, logger: logger)
                try await Self.finishWrite(connection, version: plan.finalVersion, keep: keep, logger: logger)
                return plan.results
            }
        }
    }

    /// Removes the resource and returns its last state, carrying the version of the deletion; nil
    /// when it did not exist.
    public func delete(_ key: ResourceKey) async throws -> Resource? {
        try await delete(key, fencedBy: nil)
    }

    func delete(_ key: ResourceKey, fencedBy fence: DutyFence?) async throws -> Resource? {
        let (form, logger, keep) = (form, logger, Int64(configuration.maxRetainedEvents))
        let namespace = key.namespace ?? ""
        return try await access("deleting \(key)") { client in
            try await client.withTransaction(logger: logger) { connection -> Resource? in
                let current = try await Self.lockVersion(connection, logger: logger)
                if let fence { try await Self.check(fence, connection, logger: logger) }
                var found: String?
                for try await json in try await connection.query(
                    "DELETE FROM starling_resources WHERE kind = \(key.kind) AND namespace = \(namespace) AND name = \(key.name) RETURNING json",
                    logger: logger
                ).decode(String.self) {
                    found = json
                }
                guard let found else { return nil }
                var resource = try form.resource(from: found, key: key)
                let version = current + 1
                resource.metadata.resourceVersion = version
                let json = try form.text(of: resource)
                try await connection.query(
                    """
                    INSERT INTO starling_events (version, type, kind, namespace, name, json)
                    VALUES (\(version), \(WatchEvent.Kind.deleted.rawValue), \(key.kind), \(namespace), \(key.name), \(json))
                    """, logger: logger)
                try await Self.finishWrite(connection, version: version, keep: keep, logger: logger)
                return resource
            }
        }
    }

    /// Drops the history beyond the last `maxRetainedEvents` changes; returns how many were dropped.
    @discardableResult
    public func compact() async throws -> Int {
        let (logger, keep) = (logger, Int64(configuration.maxRetainedEvents))
        return try await access("compacting the history") { client in
            try await client.withTransaction(logger: logger) { connection in
                let current = try await Self.lockVersion(connection, logger: logger)
                var dropped = 0
                for try await _ in try await connection.query(
                    "DELETE FROM starling_events WHERE version <= \(current - keep) RETURNING version", logger: logger
                ).decode(Int64.self) {
                    dropped += 1
                }
                return dropped
            }
        }
    }

    /// Locks the version row until the transaction ends and returns the version: the step that
    /// orders writers (and so versions) by commit.
    static func lockVersion(_ connection: PostgresConnection, logger: Logger) async throws -> Int64 {
        for try await version in try await connection.query(
            "SELECT version FROM starling_meta WHERE id = 1 FOR UPDATE", logger: logger
        ).decode(Int64.self) {
            return version
        }
        throw StoreError(.unavailable, "the starling_meta row is missing; the database was changed by hand")
    }

    /// Sets the new version, drops history beyond the retained changes, and notifies every
    /// replica's change feed (PostgreSQL delivers the notification at commit).
    static func finishWrite(_ connection: PostgresConnection, version: Int64, keep: Int64, logger: Logger) async throws {
        try await connection.query("UPDATE starling_meta SET version = \(version) WHERE id = 1", logger: logger)
        if version > keep {
            try await connection.query("DELETE FROM starling_events WHERE version <= \(version - keep)", logger: logger)
        }
        try await connection.query(
            "SELECT pg_notify(\(PostgresSchema.changesChannel), \(String(version)))", logger: logger)
    }

    /// The stored resources among `keys`, by key, in one query.
    static func fetchStored(
        _ connection: PostgresConnection, keys: [ResourceKey], form: StoredForm, logger: Logger
    ) async throws -> [ResourceKey: Resource] {
        let unique = Array(Set(keys))
        var stored: [ResourceKey: Resource] = [:]
        let rows = try await connection.query(
            """
            SELECT r.kind, r.namespace, r.name, r.json FROM starling_resources r
            JOIN unnest(\(unique.map(\.kind))::text[], \(unique.map { $0.namespace ?? "" })::text[], \(unique.map(\.name))::text[])
                AS k(kind, namespace, name)
            ON r.kind = k.kind AND r.namespace = k.namespace AND r.name = k.name
            """, logger: logger)
        for try await (kind, namespace, name, json) in rows.decode((String, String, String, String).self) {
            let key = ResourceKey(kind: kind, namespace: namespace.isEmpty ? nil : namespace, name: name)
            stored[key] = try form.resource(from: json, key: key)
        }
        return stored
    }

    // MARK: - Helpers

    /// Runs one database access within `operationTimeout`, mapping its errors to `StoreError`s
    /// that name the store and say what to do.
    /// One bounded operation. During an outage only a `probe` (the replica's heartbeat) goes to
    /// the database, once per ``PostgresOutage/trialEvery``; everything else fails at once.
    func access<T: Sendable>(
        _ what: String, probe: Bool = false, _ body: @escaping @Sendable (PostgresClient) async throws -> T
    ) async throws -> T {
        guard !hub.isClosed else { throw closedError }
        if let failure = outage.failFast(doing: what, probe: probe) { throw failure }
        let client = client
        do {
            return try await PostgresAccess.bounded(
                name: name, url: url, timeout: configuration.operationTimeout, what: what, outage: outage
            ) {
                try await body(client)
            }
        } catch {
            if hub.isClosed { throw closedError }
            throw error
        }
    }
}

/// The last version a replica's change feed published.
final class PublishedVersion: Sendable {
    private let version: Mutex<Int64>
    init(_ version: Int64) { self.version = Mutex(version) }
    var value: Int64 {
        get { version.withLock { $0 } }
        set { version.withLock { $0 = newValue } }
    }
}
