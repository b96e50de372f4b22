import Foundation
import GRDB
public import StarlingCore

/// The `ResourceStore` of universal mode: one SQLite file (GRDB, WAL journal) in the controller's
/// data directory.
///
/// Every change (a resource created, configured or deleted) increments the store version by one and
/// writes one row of the `events` history in the same transaction, so the file is consistent after a
/// crash at any point: an `apply` of N resources is stored whole or not at all. `synchronous=NORMAL` is
/// used: a power loss may lose the last transactions, never half of one.
///
/// Watches first replay the history after the version they resume from, then receive live changes;
/// the last `Configuration.maxRetainedEvents` changes are kept for that.
public final class SQLiteResourceStore: ResourceStore {
    public struct Configuration: Sendable {
        /// How many changes the history keeps for watches to resume from. A watch that resumes from
        /// an older version ends with `StoreError.versionTooOld` and lists again. At least 1.
        public var maxRetainedEvents: Int
        /// How many changes a watch buffers for a consumer that reads slower than changes arrive.
        /// A consumer that falls further behind is ended with `StoreError.versionTooOld` (after the
        /// changes it already has) rather than silently skipped. Raised to `maxRetainedEvents + 1,000`
        /// when lower, so that a full replay of the history always fits.
        public var watchBufferLimit: Int
        /// How long a write waits for a lock held by another process before it fails.
        public var busyTimeout: Duration

        public init(maxRetainedEvents: Int = 10_000, watchBufferLimit: Int = 50_000, busyTimeout: Duration = .seconds(5)) {
            self.maxRetainedEvents = maxRetainedEvents
            self.watchBufferLimit = watchBufferLimit
            self.busyTimeout = busyTimeout
        }
    }

    /// The store file.
    public let path: String
    public let configuration: Configuration
    let pool: DatabasePool
    let hub = WatchHub()
    let form: StoredForm

    /// Opens the store at `path`, creating the file and its directory when missing.
    /// - Throws: `StoreError.unavailable` naming the path and the reason (permissions, not a
    ///   database, disk full, locked) when the file cannot be opened or prepared.
    /// - Parameter sealer: seals Secrets at rest; the store records which key sealed them and
    ///   refuses another (`StoreError.misconfigured`).
    public init(path: String, configuration: Configuration = Configuration(), sealer: SecretSealer? = nil) throws {
        self.path = path
        self.configuration = configuration
        self.form = StoredForm(store: "SQLite store \(path)", sealer: sealer)
        guard configuration.maxRetainedEvents >= 1 else {
            throw StoreError(
                .invalid,
                "SQLite store \(path): maxRetainedEvents is \(configuration.maxRetainedEvents); it must be at least 1"
            )
        }
        guard !path.isEmpty else {
            throw StoreError(.unavailable, "the SQLite store path is empty; give a file path such as DATA_DIR/store.sqlite")
        }
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue {
            throw StoreError(.unavailable, "SQLite store \(path) is a directory; give the path of a file in it")
        }
        let directory = URL(fileURLWithPath: path).deletingLastPathComponent().path
        do {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        } catch {
            let posix = Self.posixError(underlying: error)
            let reason = posix.map { ": \(String(cString: strerror($0.code.rawValue)))" } ?? ""
            throw StoreError(
                .unavailable,
                "cannot create the directory \(directory) for the SQLite store \(path)\(reason); "
                    + "check that its parent exists, is a directory and is writable by this user",
                cause: posix ?? error
            )
        }

        var grdb = GRDB.Configuration()
        grdb.label = "StarlingStore"
        let timeout = configuration.busyTimeout.components
        grdb.busyMode = .timeout(Double(timeout.seconds) + Double(timeout.attoseconds) / 1e18)
        grdb.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = NORMAL")
        }
        do {
            pool = try DatabasePool(path: path, configuration: grdb)
        } catch {
            throw StoreError.wrapping(error, path: path, doing: "opening the file")
        }
        do {
            try StoreSchema.migrator.migrate(pool)
            let form = form
            var resealed = 0
            try pool.write { db in
                let recorded = try String.fetchOne(db, sql: StoreSchema.selectSecretsCheck) ?? nil
                if let check = try form.verify(recordedCheck: recorded) {
                    try db.execute(sql: StoreSchema.updateSecretsCheck, arguments: [check])
                }
                resealed = try Self.resealPlainSecrets(db, form: form)
            }
            if resealed > 0 {
                // The sealing zeroed what it freed (secure_delete); rebuilding the file also
                // clears what an earlier deletion left in free pages, and the WAL is emptied.
                // Best effort: a store that cannot be vacuumed now (a full disk) still opens.
                try? pool.writeWithoutTransaction { db in
                    try db.execute(sql: "VACUUM")
                    try db.execute(sql: "PRAGMA wal_checkpoint(TRUNCATE)")
                }
            }
        } catch {
            try? pool.close()
            throw StoreError.wrapping(error, path: path, doing: "preparing the tables")
        }
    }

    /// Seals the Secrets, current and in the history, that were stored in plain text (before
    /// the store had a key). Their versions stay: what they hold is unchanged. Returns how many
    /// rows it sealed.
    private static func resealPlainSecrets(_ db: Database, form: StoredForm) throws -> Int {
        guard form.sealer != nil else { return 0 }
        // What an update frees (the plain row) is overwritten with zeros, not left in the page.
        try db.execute(sql: "PRAGMA secure_delete = ON")
        defer { try? db.execute(sql: "PRAGMA secure_delete = OFF") }
        var count = 0
        let plain = "kind = 'Secret' AND substr(json, 1, \(SecretSealer.prefix.count)) != '\(SecretSealer.prefix)'"
        for row in try Row.fetchAll(db, sql: "SELECT namespace, name, json FROM resources WHERE \(plain)") {
            let (namespace, name): (String, String) = (row["namespace"], row["name"])
            let key = ResourceKey(kind: "Secret", namespace: namespace.isEmpty ? nil : namespace, name: name)
            guard let sealed = try form.resealed(row["json"], key: key) else { continue }
            try db.execute(
                sql: "UPDATE resources SET json = ? WHERE kind = 'Secret' AND namespace = ? AND name = ?",
                arguments: [sealed, namespace, name])
            count += 1
        }
        for row in try Row.fetchAll(db, sql: "SELECT version, namespace, name, json FROM events WHERE \(plain)") {
            let (namespace, name): (String, String) = (row["namespace"], row["name"])
            let key = ResourceKey(kind: "Secret", namespace: namespace.isEmpty ? nil : namespace, name: name)
            guard let sealed = try form.resealed(row["json"], key: key) else { continue }
            try db.execute(sql: "UPDATE events SET json = ? WHERE version = ?", arguments: [sealed, row["version"] as Int64])
            count += 1
        }
        return count
    }

    deinit {
        hub.close(finishingWith: .closed(path: path))
    }

    /// Finishes every watch with `StoreError.unavailable` and closes the file. Later calls do nothing;
    /// later operations throw `StoreError.unavailable`.
    public func close() throws {
        guard !hub.isClosed else { return }
        hub.close(finishingWith: .closed(path: path))
        do {
            try pool.close()
        } catch {
            throw StoreError.wrapping(error, path: path, doing: "closing")
        }
    }

    // MARK: - Reads

    public func get(_ key: ResourceKey) async throws -> Resource? {
        let form = form
        return try await access("reading \(key)") { pool in
            try await pool.read { db in
                let row = try Row.fetchOne(
                    db, sql: StoreSchema.selectOne,
                    arguments: [key.kind, key.namespace ?? "", key.name]
                )
                guard let row else { return nil }
                return try form.resource(from: row["json"], key: key)
            }
        }
    }

    /// Resources of one kind, sorted by namespace then name; `selector` is matched against labels.
    public func list(kind: String, namespace: String?, selector: LabelSelector?) async throws -> [Resource] {
        let form = form
        let scope = namespace.map { "\(kind) in namespace \($0)" } ?? "\(kind) in all namespaces"
        return try await access("listing \(scope)") { pool in
            try await pool.read { db in
                var sql = "SELECT namespace, name, json FROM resources WHERE kind = ?"
                var arguments: StatementArguments = [kind]
                if let namespace {
                    sql += " AND namespace = ?"
                    arguments += [namespace]
                }
                sql += " ORDER BY namespace, name"
                var resources: [Resource] = []
                let rows = try Row.fetchCursor(db, sql: sql, arguments: arguments)
                while let row = try rows.next() {
                    let ns: String = row["namespace"]
                    let key = ResourceKey(kind: kind, namespace: ns.isEmpty ? nil : ns, name: row["name"])
                    let resource = try form.resource(from: row["json"], key: key)
                    if selector?.matches(resource.metadata.labels) ?? true {
                        resources.append(resource)
                    }
                }
                return resources
            }
        }
    }

    public func currentVersion() async throws -> Int64 {
        try await access("reading the version") { pool in
            try await pool.read { db in try StoreSchema.version(db) }
        }
    }

    // MARK: - Writes

    /// Creates or replaces each resource in one transaction: all are stored or none is.
    ///
    /// A resource whose apiVersion, labels, annotations and body equal the stored ones is `.unchanged`
    /// and costs no version. Others get the next version; `creationTimestamp` (RFC 3339, UTC) and `uid`
    /// are set on creation and kept afterwards. The `resourceVersion`, `creationTimestamp` and `uid`
    /// given in the input are ignored. Results are in input order.
    /// - Throws: `StoreError.invalid` naming the resource when one has no name or kind, or when its
    ///   namespace does not fit its kind's scope; nothing is stored then.
    public func apply(_ resources: [Resource]) async throws -> [ApplyResult] {
        guard !resources.isEmpty else { return [] }
        let form = form
        let hub = hub
        let keep = configuration.maxRetainedEvents
        let now = Date.now.formatted(.iso8601)
        return try await access("applying \(resources.count) resource(s)") { pool in
            try await pool.write { db in
                let keys = try ApplyPlan.validatedKeys(of: resources)
                let plan = try ApplyPlan(
                    resources: resources, keys: keys, stored: try Self.fetchStored(db, keys: keys, form: form),
                    currentVersion: try StoreSchema.version(db), now: now, form: form)
                guard !plan.changes.isEmpty else { return plan.results }
                let upsert = try db.cachedStatement(sql: StoreSchema.upsert)
                for row in plan.finalRows {
                    let metadata = row.resource.metadata
                    upsert.setUncheckedArguments([
                        row.key.kind, row.key.namespace ?? "", row.key.name, row.version,
                        metadata.creationTimestamp ?? now, metadata.uid ?? "", row.json,
                    ])
                    try upsert.execute()
                }
                let insertEvent = try db.cachedStatement(sql: StoreSchema.insertEvent)
                for change in plan.changes {
                    insertEvent.setUncheckedArguments([
                        change.version, change.kind.rawValue, change.key.kind, change.key.namespace ?? "",
                        change.key.name, change.json,
                    ])
                    try insertEvent.execute()
                }
                try db.execute(sql: StoreSchema.updateVersion, arguments: [plan.finalVersion])
                try StoreSchema.compact(db, currentVersion: plan.finalVersion, keep: keep)
                let committed = plan.events
                db.afterNextTransaction(onCommit: { _ in hub.publish(committed) })
                return plan.results
            }
        }
    }

    /// Removes the resource and returns its last state, carrying the version of the deletion (as the
    /// `.deleted` watch event does); nil when it did not exist.
    public func delete(_ key: ResourceKey) async throws -> Resource? {
        let form = form
        let hub = hub
        let keep = configuration.maxRetainedEvents
        return try await access("deleting \(key)") { pool in
            try await pool.write { db in
                let namespace = key.namespace ?? ""
                let arguments: StatementArguments = [key.kind, namespace, key.name]
                guard let row = try Row.fetchOne(db, sql: StoreSchema.selectOne, arguments: arguments) else {
                    return nil
                }
                var resource = try form.resource(from: row["json"], key: key)
                let version = try StoreSchema.version(db) + 1
                resource.metadata.resourceVersion = version
                try db.execute(sql: StoreSchema.deleteOne, arguments: arguments)
                try db.execute(
                    sql: StoreSchema.insertEvent,
                    arguments: [
                        version, WatchEvent.Kind.deleted.rawValue, key.kind, namespace, key.name,
                        try form.text(of: resource),
                    ]
                )
                try db.execute(sql: StoreSchema.updateVersion, arguments: [version])
                try StoreSchema.compact(db, currentVersion: version, keep: keep)
                let event = WatchEvent(kind: .deleted, resource: resource, version: version)
                db.afterNextTransaction(onCommit: { _ in hub.publish([event]) })
                return resource
            }
        }
    }

    /// Drops the history beyond the last `maxRetainedEvents` changes and returns how many were
    /// dropped. Applies and deletes already do this in their own transaction, so this is needed only
    /// to trim a history kept under an earlier, larger `maxRetainedEvents`.
    @discardableResult
    public func compact() async throws -> Int {
        let keep = configuration.maxRetainedEvents
        return try await access("compacting the history") { pool in
            try await pool.write { db in
                try StoreSchema.compact(db, currentVersion: try StoreSchema.version(db), keep: keep)
            }
        }
    }

    // MARK: - Helpers

    /// Runs one database access, mapping its errors to `StoreError`s that name the file.
    func access<T>(_ what: String, _ body: (DatabasePool) async throws -> T) async throws -> T {
        guard !hub.isClosed else { throw StoreError.closed(path: path) }
        do {
            return try await body(pool)
        } catch {
            if hub.isClosed { throw StoreError.closed(path: path) }
            throw StoreError.wrapping(error, path: path, doing: what)
        }
    }

    /// The POSIX error under a Foundation file error (`ENOTDIR`, `EACCES`, ...), for messages.
    private static func posixError(underlying error: any Error) -> POSIXError? {
        if let posix = error as? POSIXError { return posix }
        guard let underlying = (error as NSError).userInfo[NSUnderlyingErrorKey] as? any Error else { return nil }
        if let posix = underlying as? POSIXError { return posix }
        let ns = underlying as NSError
        guard ns.domain == NSPOSIXErrorDomain, let code = POSIXErrorCode(rawValue: Int32(ns.code)) else { return nil }
        return POSIXError(code)
    }

    /// The stored resources among `keys`, by key, read with one query per kind and 400 keys.
    static func fetchStored(_ db: Database, keys: [ResourceKey], form: StoredForm) throws -> [ResourceKey: Resource] {
        var stored: [ResourceKey: Resource] = [:]
        let byKind = Dictionary(grouping: Set(keys), by: \.kind)
        for (kind, kindKeys) in byKind {
            for chunkStart in stride(from: 0, to: kindKeys.count, by: 400) {
                let chunk = kindKeys[chunkStart..<min(chunkStart + 400, kindKeys.count)]
                var arguments: StatementArguments = [kind]
                for key in chunk { arguments += [key.namespace ?? "", key.name] }
                let values = Array(repeating: "(?, ?)", count: chunk.count).joined(separator: ", ")
                let rows = try Row.fetchCursor(
                    db,
                    sql: "SELECT namespace, name, json FROM resources WHERE kind = ? AND (namespace, name) IN (VALUES \(values))",
                    arguments: arguments
                )
                while let row = try rows.next() {
                    let namespace: String = row["namespace"]
                    let key = ResourceKey(kind: kind, namespace: namespace.isEmpty ? nil : namespace, name: row["name"])
                    stored[key] = try form.resource(from: row["json"], key: key)
                }
            }
        }
        return stored
    }
}
