import Logging
import StarlingCore
import StarlingStore

/// Opens the controller's store: SQLite in the data directory, or the PostgreSQL database its
/// replicas share, with Secrets sealed by the secrets key. A database that cannot be reached yet is retried (with a warning each time) for
/// `storeStartupWait`; settings it refuses (a wrong password, another cluster's database, a newer
/// schema) fail at once, since retrying cannot mend them.
struct StoreOpening: Sendable {
    var store: any ResourceStore
    var description: String
    var close: @Sendable () -> Void

    static func open(_ c: ControllerConfiguration, logger: Logger) async throws -> StoreOpening {
        let sealer = try SecretsKeyFile.loadOrCreate(path: c.secretsKeyPath)
        guard let url = c.postgres else {
            let store = try SQLiteResourceStore(path: c.storePath, sealer: sealer)
            return StoreOpening(store: store, description: "sqlite:\(c.storePath)", close: { try? store.close() })
        }
        let deadline = ContinuousClock.now + c.storeStartupWait
        var storeLogger = logger
        storeLogger[metadataKey: "store"] = "\(url)"
        while true {
            do {
                let store = try await PostgresResourceStore.open(
                    url: url, clusterID: c.clusterName, sealer: sealer, logger: storeLogger)
                return StoreOpening(store: store, description: url.description, close: { store.close() })
            } catch let error as StoreError
                where (error.code == .unavailable || error.code == .noAnswer) && ContinuousClock.now < deadline
            {
                logger.warning("store not reachable yet; retrying in 2 s", metadata: ["error": "\(error.message)"])
                try await Task.sleep(for: .seconds(2))
            }
        }
    }
}
