import Foundation
import Logging
import PostgresNIO
import StarlingCore
import Testing

@testable import StarlingStore

/// The PostgreSQL server the PostgreSQL store tests use: `STARLING_TEST_POSTGRES_URL`, which
/// `scripts/test.sh` sets after starting one with `scripts/postgres-test-server.sh`. Without it the
/// tests are skipped, and Swift Testing says so.
enum PostgresTestServer {
    static let urlText = ProcessInfo.processInfo.environment["STARLING_TEST_POSTGRES_URL"]
    static var available: Bool { urlText != nil }
    static let skipReason: Comment =
        "needs a PostgreSQL server: set STARLING_TEST_POSTGRES_URL (scripts/test.sh starts one with scripts/postgres-test-server.sh)"

    static func url() throws -> PostgresStoreURL {
        try PostgresStoreURL(try #require(urlText, "STARLING_TEST_POSTGRES_URL is not set"))
    }

    /// A fresh, empty database on the test server, dropped after `body`.
    static func withDatabase<T>(_ body: (PostgresStoreURL) async throws -> T) async throws -> T {
        let server = try url()
        let database = "starling_t_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "")
        try await admin(server) { client in
            try await client.query(PostgresQuery(unsafeSQL: "CREATE DATABASE \(database)"))
        }
        var url = server
        url.database = database
        do {
            let result = try await body(url)
            try? await drop(database, server: server)
            return result
        } catch {
            try? await drop(database, server: server)
            throw error
        }
    }

    private static func drop(_ database: String, server: PostgresStoreURL) async throws {
        try await admin(server) { client in
            try await client.query(PostgresQuery(unsafeSQL: "DROP DATABASE IF EXISTS \(database) WITH (FORCE)"))
        }
    }

    /// Runs `body` with a client of the test server's own database.
    static func admin<T: Sendable>(_ url: PostgresStoreURL, _ body: @Sendable (PostgresClient) async throws -> T) async throws -> T {
        let client = PostgresClient(
            configuration: .init(
                host: url.host, port: url.port, username: url.user, password: url.password, database: url.database,
                tls: .disable),
            backgroundLogger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await client.run() }
            defer { group.cancelAll() }
            return try await body(client)
        }
    }
}

/// A PostgreSQL store (replica) on `url` for cluster `cluster`, closed after `body`.
func withPostgresStore<T>(
    _ url: PostgresStoreURL, cluster: String = "test",
    configuration: PostgresResourceStore.Configuration = .init(pollInterval: .milliseconds(500)),
    sealer: SecretSealer? = nil,
    _ body: (PostgresResourceStore) async throws -> T
) async throws -> T {
    let store = try await PostgresResourceStore.open(url: url, clusterID: cluster, configuration: configuration, sealer: sealer)
    defer { store.close() }
    return try await body(store)
}
