public import Foundation
import NIOSSL
public import StarlingCore

/// Where a PostgreSQL store is: `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=MODE&sslrootcert=FILE]`.
///
/// The password may instead come from the environment (`PGPASSWORD`), so that it stays out of
/// command lines and process listings. `description` never shows it.
public struct PostgresStoreURL: Sendable, Hashable, CustomStringConvertible {
    /// How the connection is protected, after libpq's `sslmode` values.
    public enum TLSMode: String, Sendable, Hashable {
        /// Plain TCP (a database on loopback or a private link).
        case disable
        /// TLS without verifying the server's certificate.
        case require
        /// TLS, the server's certificate verified against `sslrootcert` and its name against the host.
        case verifyFull = "verify-full"
    }

    public var user: String
    public var password: String?
    public var host: String
    public var port: Int
    public var database: String
    public var tlsMode: TLSMode
    /// The CA bundle (PEM) that verifies the server with `verify-full`.
    public var rootCertificatePath: String?

    /// Parses `text`; `environment` supplies `PGPASSWORD` when the URL carries no password.
    /// - Throws: `StoreError.invalid` saying which part is wrong and what the URL looks like.
    public init(_ text: String, environment: [String: String] = ProcessInfo.processInfo.environment) throws(StoreError) {
        let shape = "postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE"
        var rest = Substring(text)
        if rest.hasPrefix("postgres://") {
            rest = rest.dropFirst("postgres://".count)
        } else if rest.hasPrefix("postgresql://") {
            rest = rest.dropFirst("postgresql://".count)
        } else {
            throw StoreError(.invalid, "the store URL must start with postgres:// (\(shape)); got '\(Self.redacted(text))'")
        }
        var query: Substring = ""
        if let mark = rest.firstIndex(of: "?") {
            query = rest[rest.index(after: mark)...]
            rest = rest[..<mark]
        }
        guard let at = rest.lastIndex(of: "@") else {
            throw StoreError(.invalid, "the store URL names no user (\(shape)); got '\(Self.redacted(text))'")
        }
        let credentials = rest[..<at]
        let location = rest[rest.index(after: at)...]
        if let colon = credentials.firstIndex(of: ":") {
            user = Self.decoded(credentials[..<colon])
            password = Self.decoded(credentials[credentials.index(after: colon)...])
        } else {
            user = Self.decoded(credentials)
            password = environment["PGPASSWORD"]
        }
        guard !user.isEmpty else {
            throw StoreError(.invalid, "the store URL names no user (\(shape)); got '\(Self.redacted(text))'")
        }
        guard let slash = location.firstIndex(of: "/") else {
            throw StoreError(.invalid, "the store URL names no database (\(shape)); got '\(Self.redacted(text))'")
        }
        database = Self.decoded(location[location.index(after: slash)...])
        guard !database.isEmpty else {
            throw StoreError(.invalid, "the store URL names no database (\(shape)); got '\(Self.redacted(text))'")
        }
        let hostText = String(location[..<slash])
        // A host without a port (a name, an IPv4 address, [IPv6] or a bare IPv6 address) takes 5432.
        let hostPort =
            hostText.hasSuffix("]") ? NetworkAddress.splitHostPort(hostText + ":5432")
            : NetworkAddress.splitHostPort(hostText) ?? NetworkAddress.splitHostPort(NetworkAddress.joinHostPort(hostText, 5432))
        guard !hostText.isEmpty, let hostPort
        else {
            throw StoreError(
                .invalid, "the store URL's host '\(location[..<slash])' is not HOST or HOST:PORT (\(shape))")
        }
        host = hostPort.host
        port = hostPort.port
        tlsMode = .disable
        rootCertificatePath = nil
        for pair in query.split(separator: "&") where !pair.isEmpty {
            let parts = pair.split(separator: "=", maxSplits: 1)
            let name = String(parts[0])
            let value = parts.count > 1 ? Self.decoded(parts[1]) : ""
            switch name {
            case "sslmode":
                guard let mode = TLSMode(rawValue: value) else {
                    throw StoreError(
                        .invalid, "the store URL's sslmode '\(value)' is not one of disable, require, verify-full")
                }
                tlsMode = mode
            case "sslrootcert":
                rootCertificatePath = value
            default:
                throw StoreError(
                    .invalid, "the store URL has an unknown parameter '\(name)'; known: sslmode, sslrootcert")
            }
        }
        if tlsMode == .verifyFull, rootCertificatePath == nil {
            throw StoreError(
                .invalid, "sslmode=verify-full needs sslrootcert=FILE, the CA bundle that signed the server's certificate")
        }
    }

    /// The TLS settings of `tlsMode` (nil: plain TCP), for the pool and the probe connection alike.
    var tlsConfiguration: TLSConfiguration? {
        guard tlsMode != .disable else { return nil }
        var settings = TLSConfiguration.makeClientConfiguration()
        if tlsMode == .require {
            settings.certificateVerification = .none
        } else {
            settings.trustRoots = .file(rootCertificatePath ?? "")
            settings.certificateVerification = .fullVerification
        }
        return settings
    }

    /// `postgres://user@host:port/db`, without the password.
    public var description: String {
        "postgres://\(user)@\(NetworkAddress.joinHostPort(host, port))/\(database)"
    }

    private static func decoded(_ part: Substring) -> String {
        String(part).removingPercentEncoding ?? String(part)
    }

    /// `text` with any password replaced by `***`, for error messages.
    static func redacted(_ text: String) -> String {
        guard let scheme = text.range(of: "://"), let at = text[scheme.upperBound...].lastIndex(of: "@") else { return text }
        let credentials = text[scheme.upperBound..<at]
        guard let colon = credentials.firstIndex(of: ":") else { return text }
        return String(text[..<colon]) + ":***" + String(text[at...])
    }
}
