import Foundation
import Logging
import NIOCore
import NIOSSL
import PostgresNIO
import StarlingCore
import Synchronization

/// One bounded access to PostgreSQL and the errors it ends with, in words an operator can act on.
enum PostgresAccess {
    /// Runs `body` and gives up after `timeout` (a database that does not answer must not hang an
    /// `apply`); errors become `StoreError`s naming the store, what was being done and what to do.
    static func bounded<T: Sendable>(
        name: String, url: PostgresStoreURL, timeout: Duration, what: String, outage: PostgresOutage? = nil,
        _ body: @escaping @Sendable () async throws -> T
    ) async throws -> T {
        let work = Task { try await body() }
        let expired = Mutex(false)
        let watchdog = Task {
            guard (try? await Task.sleep(for: timeout)) != nil else { return }
            expired.withLock { $0 = true }
            // Other calls fail fast from now on, while this one finds out why.
            outage?.unanswered(
                StoreError(.unavailable, "\(name): \(what) got no answer within \(timeout)"))
            work.cancel()
        }
        defer { watchdog.cancel() }
        do {
            let value = try await withTaskCancellationHandler {
                try await work.value
            } onCancel: {
                work.cancel()
            }
            outage?.answered()
            return value
        } catch {
            if expired.withLock({ $0 }) {
                // Say why when a fresh connection shows it (refused, a wrong password, no such
                // database); briefly, since the caller has waited the whole timeout already.
                let failure = await probe(url, timeout: .seconds(2))
                let error = StoreError(
                    failure?.code == .misconfigured ? .misconfigured : .noAnswer,
                    "\(name): \(what) got no answer within \(timeout): "
                        + (failure?.message ?? "PostgreSQL at \(NetworkAddress.joinHostPort(url.host, url.port)) "
                            + "accepts connections but does not answer; check its load and locks"))
                outage?.unanswered(error)
                throw error
            }
            let wrapped = wrapping(error, name: name, url: url, doing: what)
            if let psql = error as? PSQLError {
                if isUnreachable(psql), let wrapped = wrapped as? StoreError {
                    outage?.unanswered(wrapped)
                } else if psql.code == .server {
                    // The database answered (with an error): it is reachable.
                    outage?.answered()
                }
            }
            throw wrapped
        }
    }

    /// Opens one connection outside the pool and closes it: nil when that works, otherwise what
    /// went wrong. The pool retries failed connections quietly, so this is how a caller learns that
    /// the password is wrong or the server refuses connections.
    static func probe(_ url: PostgresStoreURL, timeout: Duration = .seconds(5)) async -> StoreError? {
        let work = Task { () -> StoreError? in
            do {
                let tls: PostgresConnection.Configuration.TLS =
                    try url.tlsConfiguration.map { .require(try NIOSSLContext(configuration: $0)) } ?? .disable
                var configuration = PostgresConnection.Configuration(
                    host: url.host, port: url.port, username: url.user, password: url.password, database: url.database,
                    tls: tls)
                configuration.options.connectTimeout = .init(timeout)
                let connection = try await PostgresConnection.connect(
                    configuration: configuration, id: 0,
                    logger: Logger(label: "starling.store.probe", factory: { _ in SwiftLogNoOpLogHandler() }))
                try? await connection.close()
                return nil
            } catch let error as PSQLError {
                return StoreError(isMisconfiguration(error) ? .misconfigured : .unavailable, explain(error, url: url))
            } catch {
                return StoreError(.misconfigured, "\(error)")
            }
        }
        let watchdog = Task {
            try await Task.sleep(for: timeout + .seconds(1))
            work.cancel()
        }
        defer { watchdog.cancel() }
        return await work.value
    }

    /// A `StoreError` for a failed PostgreSQL operation; store errors and cancellation stay as they are.
    static func wrapping(_ error: any Error, name: String, url: PostgresStoreURL, doing what: String) -> any Error {
        switch error {
        case let error as StoreError: return error
        case is CancellationError: return error
        case let error as PostgresTransactionError:
            let inner: (any Error)? = error.closureError ?? error.commitError ?? error.beginError
            return inner.map { wrapping($0, name: name, url: url, doing: what) }
                ?? StoreError(.unavailable, "\(name): \(what) failed in its transaction")
        case let error as PSQLError:
            return StoreError(
                isMisconfiguration(error) ? .misconfigured : .unavailable, "\(name): \(what) failed: \(explain(error, url: url))")
        default: return StoreError(.unavailable, "\(name): \(what) failed", cause: error)
        }
    }

    /// True for errors that say the database cannot be reached (as opposed to answering no). One
    /// terminated backend (57P01, `pg_terminate_backend`) is not: the pool opens another.
    static func isUnreachable(_ error: PSQLError) -> Bool {
        switch error.code {
        case .connectionError: return true
        case .server: return ["57P02", "57P03"].contains(error.serverInfo?[.sqlState] ?? "")
        default: return false
        }
    }

    /// True for errors that retrying will not mend: authentication, a missing database, permissions, TLS set-up.
    static func isMisconfiguration(_ error: PSQLError) -> Bool {
        switch error.code {
        case .server:
            let state = error.serverInfo?[.sqlState] ?? ""
            return ["28P01", "28000", "3D000", "42501"].contains(state)
        case .sslUnsupported, .failedToAddSSLHandler, .authMechanismRequiresPassword, .unsupportedAuthMechanism:
            return true
        default:
            return false
        }
    }

    /// What went wrong, from PostgreSQL's own message and SQLSTATE, with what to do about it.
    /// (`PSQLError`'s description hides both to avoid leaking data into logs; the server message of
    /// a failed statement names no values here, since every value is a bind parameter.)
    static func explain(_ error: PSQLError, url: PostgresStoreURL) -> String {
        let address = NetworkAddress.joinHostPort(url.host, url.port)
        switch error.code {
        case .server:
            let state = error.serverInfo?[.sqlState] ?? ""
            let message = error.serverInfo?[.message] ?? "an error"
            switch state {
            case "28P01":
                return "PostgreSQL at \(address) refused the password of user '\(url.user)' "
                    + "(fix the password in the URL or in PGPASSWORD)"
            case "28000":
                return "PostgreSQL at \(address) refused user '\(url.user)': \(message) (check pg_hba.conf and the user)"
            case "3D000":
                return "PostgreSQL at \(address) has no database '\(url.database)' (create it: createdb -h \(url.host) "
                    + "-p \(url.port) -U \(url.user) \(url.database))"
            case "57P01", "57P02", "57P03":
                return "PostgreSQL at \(address) is shutting down or starting up: \(message); retry when it is up"
            case "53300":
                return "PostgreSQL at \(address) has no connection slot left: \(message) (raise max_connections)"
            case "42501":
                return "user '\(url.user)' may not do this in '\(url.database)': \(message) (grant it the database)"
            default:
                return "PostgreSQL answered \(state): \(message)"
            }
        case .connectionError:
            let cause = error.underlying.map { "\($0)" } ?? "no detail"
            return "cannot connect to PostgreSQL at \(address) (\(cause)); check that it runs and listens there"
        case .serverClosedConnection, .uncleanShutdown:
            return "the connection to PostgreSQL at \(address) was lost; it is retried on the next operation"
        case .clientClosedConnection, .poolClosed:
            return "the store's connections are closed"
        case .sslUnsupported:
            return "PostgreSQL at \(address) does not accept TLS, and the URL asks for it (sslmode)"
        case .failedToAddSSLHandler:
            return "TLS to PostgreSQL at \(address) could not be set up (check sslrootcert)"
        case .authMechanismRequiresPassword:
            return "PostgreSQL at \(address) asks for a password and none was given (put it in the URL or in PGPASSWORD)"
        default:
            let cause = error.underlying.map { ": \($0)" } ?? ""
            return "PostgreSQL at \(address): \(error.code)\(cause)"
        }
    }
}
