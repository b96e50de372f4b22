import GRDB

/// The tables of the SQLite store and the SQL that reads and writes them.
///
/// - `resources`: the current state, one row per resource; `namespace` is `''` for cluster-scoped kinds.
/// - `events`: the change history that watches resume from, one row per store version.
/// - `meta`: one row holding the current store version and the check value of the secrets key
///   that sealed the Secrets.
enum StoreSchema {
    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1: resources, events, meta") { db in
            try db.execute(
                sql: """
                    CREATE TABLE resources (
                        kind TEXT NOT NULL,
                        namespace TEXT NOT NULL,
                        name TEXT NOT NULL,
                        version INTEGER NOT NULL,
                        created TEXT NOT NULL,
                        uid TEXT NOT NULL,
                        json TEXT NOT NULL,
                        PRIMARY KEY (kind, namespace, name)
                    );
                    CREATE TABLE events (
                        version INTEGER PRIMARY KEY,
                        type TEXT NOT NULL CHECK (type IN ('added', 'modified', 'deleted')),
                        kind TEXT NOT NULL,
                        namespace TEXT NOT NULL,
                        name TEXT NOT NULL,
                        json TEXT NOT NULL
                    );
                    CREATE TABLE meta (
                        id INTEGER PRIMARY KEY CHECK (id = 1),
                        version INTEGER NOT NULL
                    );
                    INSERT INTO meta (id, version) VALUES (1, 0);
                    """
            )
        }
        migrator.registerMigration("v2: secrets key check") { db in
            try db.execute(sql: "ALTER TABLE meta ADD COLUMN secrets_check TEXT")
        }
        return migrator
    }

    static let selectSecretsCheck = "SELECT secrets_check FROM meta WHERE id = 1"
    static let updateSecretsCheck = "UPDATE meta SET secrets_check = ? WHERE id = 1"

    static let selectVersion = "SELECT version FROM meta WHERE id = 1"
    static let updateVersion = "UPDATE meta SET version = ? WHERE id = 1"
    static let selectOne = "SELECT created, uid, json FROM resources WHERE kind = ? AND namespace = ? AND name = ?"
    static let upsert = """
        INSERT INTO resources (kind, namespace, name, version, created, uid, json) VALUES (?, ?, ?, ?, ?, ?, ?)
        ON CONFLICT (kind, namespace, name) DO UPDATE SET version = excluded.version, json = excluded.json
        """
    static let deleteOne = "DELETE FROM resources WHERE kind = ? AND namespace = ? AND name = ?"
    static let insertEvent = "INSERT INTO events (version, type, kind, namespace, name, json) VALUES (?, ?, ?, ?, ?, ?)"
    static let deleteEventsUpTo = "DELETE FROM events WHERE version <= ?"
    static let oldestEvent = "SELECT MIN(version) FROM events"

    /// The current store version, inside a read or write.
    static func version(_ db: Database) throws -> Int64 {
        try Int64.fetchOne(db, sql: selectVersion) ?? 0
    }

    /// Drops the events older than the last `keep` ones. Versions are contiguous (each change writes
    /// one event), so this is one range delete on the primary key, and a no-op index seek when there
    /// is nothing to drop.
    @discardableResult
    static func compact(_ db: Database, currentVersion: Int64, keep: Int) throws -> Int {
        let cutoff = currentVersion - Int64(keep)
        guard cutoff > 0 else { return 0 }
        try db.execute(sql: deleteEventsUpTo, arguments: [cutoff])
        return db.changesCount
    }
}
