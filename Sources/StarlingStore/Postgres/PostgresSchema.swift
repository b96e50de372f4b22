import Logging
import PostgresNIO
import StarlingCore

/// The tables of the PostgreSQL store, their versioned migrations, and the cluster that owns them.
///
/// - `starling_schema`: one row per migration applied (`version`, `description`, `applied_at`).
/// - `starling_meta`: one row: the cluster that owns the database and the current store version.
///   Every write locks this row (`SELECT … FOR UPDATE`) before it reads the version, so writers
///   take versions one after another and commit in version order (docs/postgres-store.md).
/// - `starling_resources`: the current state, one row per resource; `namespace` is `''` for
///   cluster-scoped kinds.
/// - `starling_events`: the change history that watches resume from, one row per store version.
/// - `starling_duties`: the lease of each duty that one replica runs (holder, fencing token, expiry).
/// - `starling_heartbeats`: when each registered workload last sent a heartbeat, to any replica.
/// - `starling_replicas`: when each controller replica last said it was alive (for `check`).
/// - `starling_gateway_certificates`: what any replica issued to each gateway host, for `check`'s
///   rollover steps (workloads' proxies report theirs in their heartbeats' rows).
enum PostgresSchema {
    struct Migration {
        var version: Int
        var description: String
        var statements: [PostgresQuery]
    }

    /// Every migration this build knows, oldest first. A database with a migration above the last
    /// is refused: it was upgraded by a newer Starling.
    static let migrations: [Migration] = [
        Migration(
            version: 1, description: "meta, resources, events",
            statements: [
                """
                CREATE TABLE starling_meta (
                    id integer PRIMARY KEY CHECK (id = 1),
                    cluster_id text NOT NULL,
                    version bigint NOT NULL
                )
                """,
                """
                CREATE TABLE starling_resources (
                    kind text NOT NULL,
                    namespace text NOT NULL,
                    name text NOT NULL,
                    version bigint NOT NULL,
                    created text NOT NULL,
                    uid text NOT NULL,
                    json text NOT NULL,
                    PRIMARY KEY (kind, namespace, name)
                )
                """,
                """
                CREATE TABLE starling_events (
                    version bigint PRIMARY KEY,
                    type text NOT NULL CHECK (type IN ('added', 'modified', 'deleted')),
                    kind text NOT NULL,
                    namespace text NOT NULL,
                    name text NOT NULL,
                    json text NOT NULL
                )
                """,
            ]),
        Migration(
            version: 2, description: "duty leases, workload heartbeats",
            statements: [
                """
                CREATE TABLE starling_duties (
                    duty text PRIMARY KEY,
                    holder text NOT NULL,
                    token bigint NOT NULL,
                    expires_at timestamptz NOT NULL
                )
                """,
                """
                CREATE TABLE starling_heartbeats (
                    namespace text NOT NULL,
                    name text NOT NULL,
                    seen_at timestamptz NOT NULL,
                    PRIMARY KEY (namespace, name)
                )
                """,
            ]),
        Migration(
            version: 3, description: "secrets key check",
            statements: ["ALTER TABLE starling_meta ADD COLUMN secrets_check text"]),
        Migration(
            version: 4, description: "replicas",
            statements: ["CREATE TABLE starling_replicas (replica text PRIMARY KEY, seen_at timestamptz NOT NULL)"]),
        Migration(
            version: 5, description: "replica clock skew",
            statements: ["ALTER TABLE starling_replicas ADD COLUMN clock_skew float8 NOT NULL DEFAULT 0"]),
        Migration(
            version: 6, description: "replica admin addresses",
            statements: ["ALTER TABLE starling_replicas ADD COLUMN admin_address text NOT NULL DEFAULT ''"]),
        Migration(
            version: 7, description: "certificate reports",
            statements: [
                """
                ALTER TABLE starling_heartbeats ADD COLUMN issuer text NOT NULL DEFAULT '',
                    ADD COLUMN trust_anchors text NOT NULL DEFAULT '', ADD COLUMN reported_at timestamptz
                """,
                """
                CREATE TABLE starling_gateway_certificates (
                    holder text PRIMARY KEY,
                    issuer text NOT NULL,
                    trust_anchors text NOT NULL,
                    valid_until timestamptz NOT NULL,
                    forget_at timestamptz NOT NULL
                )
                """,
            ]),
    ]

    static var latestVersion: Int { migrations.last?.version ?? 0 }

    /// The channel writers notify after each commit; the payload is the new store version.
    static let changesChannel = "starling_changes"

    /// Brings the schema up to date and claims the database for `clusterID` (or checks that it
    /// belongs to it), in one transaction under an advisory lock, so replicas starting together
    /// migrate once. Returns the schema version.
    /// - Throws: `StoreError.unavailable` when the schema is newer than this build knows or the
    ///   database belongs to another cluster.
    static func prepare(_ client: PostgresClient, clusterID: String, form: StoredForm, logger: Logger) async throws -> Int {
        let store = form.store
        return try await client.withTransaction(logger: logger) { connection in
            // 0x5354524c = "STRL": one lock key for every Starling schema change.
            try await connection.query("SELECT pg_advisory_xact_lock(1398035020)", logger: logger)
            try await connection.query(
                """
                CREATE TABLE IF NOT EXISTS starling_schema (
                    version integer PRIMARY KEY,
                    description text NOT NULL,
                    applied_at timestamptz NOT NULL DEFAULT now()
                )
                """, logger: logger)
            var applied = 0
            for try await version in try await connection.query(
                "SELECT COALESCE(MAX(version), 0) FROM starling_schema", logger: logger
            ).decode(Int.self) {
                applied = version
            }
            if applied > latestVersion {
                throw StoreError(
                    .misconfigured,
                    "\(store): the database schema is at version \(applied), newer than this Starling knows "
                        + "(\(latestVersion)); run the newer starling that upgraded it, or point --store at another database"
                )
            }
            for migration in migrations where migration.version > applied {
                for statement in migration.statements {
                    try await connection.query(statement, logger: logger)
                }
                try await connection.query(
                    "INSERT INTO starling_schema (version, description) VALUES (\(migration.version), \(migration.description))",
                    logger: logger)
                logger.info(
                    "store schema migrated",
                    metadata: ["store": "\(store)", "version": "\(migration.version)", "migration": "\(migration.description)"])
            }
            try await connection.query(
                "INSERT INTO starling_meta (id, cluster_id, version) VALUES (1, \(clusterID), 0) ON CONFLICT (id) DO NOTHING",
                logger: logger)
            var owner = ""
            for try await id in try await connection.query("SELECT cluster_id FROM starling_meta WHERE id = 1", logger: logger)
                .decode(String.self)
            {
                owner = id
            }
            guard owner == clusterID else {
                throw StoreError(
                    .misconfigured,
                    "\(store) belongs to cluster '\(owner)', not '\(clusterID)'; each cluster needs its own database "
                        + "(or check --cluster-name)"
                )
            }
            var recorded: String?
            for try await check in try await connection.query("SELECT secrets_check FROM starling_meta WHERE id = 1", logger: logger)
                .decode(String?.self)
            {
                recorded = check
            }
            if let check = try form.verify(recordedCheck: recorded) {
                try await connection.query("UPDATE starling_meta SET secrets_check = \(check) WHERE id = 1", logger: logger)
            }
            try await resealPlainSecrets(connection, form: form, logger: logger)
            return latestVersion
        }
    }

    /// Seals the Secrets, current and in the history, that were stored in plain text (before
    /// the store had a key). Their versions stay: what they hold is unchanged.
    private static func resealPlainSecrets(_ connection: PostgresConnection, form: StoredForm, logger: Logger) async throws {
        guard form.sealer != nil else { return }
        let prefix = SecretSealer.prefix
        var current: [(String, String, String)] = []
        for try await row in try await connection.query(
            "SELECT namespace, name, json FROM starling_resources WHERE kind = 'Secret' AND NOT starts_with(json, \(prefix))",
            logger: logger
        ).decode((String, String, String).self) {
            current.append(row)
        }
        for (namespace, name, json) in current {
            let key = ResourceKey(kind: "Secret", namespace: namespace.isEmpty ? nil : namespace, name: name)
            guard let sealed = try form.resealed(json, key: key) else { continue }
            try await connection.query(
                "UPDATE starling_resources SET json = \(sealed) WHERE kind = 'Secret' AND namespace = \(namespace) AND name = \(name)",
                logger: logger)
        }
        var history: [(Int64, String, String, String)] = []
        for try await row in try await connection.query(
            "SELECT version, namespace, name, json FROM starling_events WHERE kind = 'Secret' AND NOT starts_with(json, \(prefix))",
            logger: logger
        ).decode((Int64, String, String, String).self) {
            history.append(row)
        }
        for (version, namespace, name, json) in history {
            let key = ResourceKey(kind: "Secret", namespace: namespace.isEmpty ? nil : namespace, name: name)
            guard let sealed = try form.resealed(json, key: key) else { continue }
            try await connection.query("UPDATE starling_events SET json = \(sealed) WHERE version = \(version)", logger: logger)
        }
        if !current.isEmpty || !history.isEmpty {
            logger.notice(
                "plain secrets sealed at rest", metadata: ["store": "\(form.store)", "current": "\(current.count)", "history": "\(history.count)"])
        }
    }
}
