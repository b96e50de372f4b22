public import Crypto
public import Foundation
public import StarlingCore

/// Join tokens (universal mode): compact JWTs, HMAC-SHA256 signed by the controller's token key,
/// naming the namespace and service account a workload may join as (`starling token create`).
///
/// The same format carries other grants with a different audience, e.g. ``Audience/link`` for
/// multicluster link credentials; a token is only accepted for the audience it was made for.
public enum JoinToken {
    /// Well-known audiences.
    public enum Audience {
        /// Workloads joining the mesh.
        public static let join = "starling-join"
        /// Remote clusters reading this cluster's API (multicluster links).
        public static let link = "starling-link"
    }

    /// The token's claims.
    public struct Claims: Codable, Sendable, Hashable {
        /// Namespace (`ns`).
        public var namespace: String
        /// Service account (`sa`).
        public var serviceAccount: String
        /// Issued at, Unix seconds (`iat`).
        public var issuedAt: Int64
        /// Expires at, Unix seconds (`exp`).
        public var expiresAt: Int64
        /// Unique token id (`jti`).
        public var id: String
        /// Audience (`aud`).
        public var audience: String
        /// The cluster that issued it (`cluster`), optional.
        public var cluster: String?
        /// The one service of the namespace a join token is bound to (`svc`), optional: its holder
        /// may register only workloads that no other service's selector picks.
        public var service: String?

        enum CodingKeys: String, CodingKey {
            case namespace = "ns", serviceAccount = "sa", issuedAt = "iat", expiresAt = "exp", id = "jti"
            case audience = "aud", cluster, service = "svc"
        }

        public init(
            namespace: String,
            serviceAccount: String,
            issuedAt: Int64,
            expiresAt: Int64,
            id: String = UUID().uuidString.lowercased(),
            audience: String = Audience.join,
            cluster: String? = nil,
            service: String? = nil
        ) {
            self.namespace = namespace
            self.serviceAccount = serviceAccount
            self.issuedAt = issuedAt
            self.expiresAt = expiresAt
            self.id = id
            self.audience = audience
            self.cluster = cluster
            self.service = service
        }

        /// Claims valid from `now` for `lifetime` seconds.
        public init(
            namespace: String,
            serviceAccount: String,
            lifetime: TimeInterval,
            now: Date = Date(),
            audience: String = Audience.join,
            cluster: String? = nil,
            service: String? = nil
        ) {
            let issued = Int64(now.timeIntervalSince1970.rounded(.down))
            self.init(
                namespace: namespace,
                serviceAccount: serviceAccount,
                issuedAt: issued,
                expiresAt: issued + Int64(lifetime.rounded(.up)),
                audience: audience,
                cluster: cluster,
                service: service
            )
        }

        /// Seconds from `iat` to `exp`.
        public var lifetime: Int64 { expiresAt - issuedAt }

        /// The mesh identity these claims grant in `trustDomain`.
        public func identity(trustDomain: String = "cluster.local") -> MeshIdentity {
            MeshIdentity(namespace: namespace, serviceAccount: serviceAccount, trustDomain: trustDomain)
        }

        /// `exp` as a date.
        public var expiry: Date { Date(timeIntervalSince1970: TimeInterval(expiresAt)) }
    }

    private struct Header: Codable {
        var alg: String
        var typ: String?
    }

    /// The encoded header, `{"alg":"HS256","typ":"JWT"}`.
    private static let headerSegment = base64URL(Array(#"{"alg":"HS256","typ":"JWT"}"#.utf8))

    /// A new random 256-bit token key.
    public static func makeKey() -> SymmetricKey {
        SymmetricKey(size: .bits256)
    }

    /// Signs `claims`, returning `header.payload.signature`.
    public static func sign(_ claims: Claims, key: SymmetricKey) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        // Encoding a struct of strings and integers cannot fail.
        let payload = (try? encoder.encode(claims)) ?? Data("{}".utf8)
        let signingInput = headerSegment + "." + base64URL(Array(payload))
        let mac = HMAC<SHA256>.authenticationCode(for: Data(signingInput.utf8), using: key)
        return signingInput + "." + base64URL(Array(mac))
    }

    /// Verifies `token` for `audience` at `now` and returns its claims.
    ///
    /// Refuses garbage, any `alg` but HS256, a MAC that does not verify (compared in constant time),
    /// another audience (`.tokenInvalid`) and expiry (`.tokenExpired`, saying when).
    public static func verify(
        _ token: String,
        key: SymmetricKey,
        audience: String,
        now: Date = Date()
    ) throws(IdentityError) -> Claims {
        try verify(token, key: key, audiences: [audience], now: now)
    }

    /// Verifies `token` for any of `audiences`; the caller reads which from `Claims.audience`.
    public static func verify(
        _ token: String,
        key: SymmetricKey,
        audiences: Set<String>,
        now: Date = Date()
    ) throws(IdentityError) -> Claims {
        let trimmed = token.trimmingCharacters(in: .whitespacesAndNewlines)
        let parts = trimmed.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, !parts[0].isEmpty, !parts[1].isEmpty, !parts[2].isEmpty else {
            throw invalid("the token is not a JWT (expected three dot-separated parts)")
        }
        guard let headerBytes = decodeBase64URL(parts[0]),
            let header = try? JSONDecoder().decode(Header.self, from: Data(headerBytes))
        else {
            throw invalid("the token header is not valid base64url JSON")
        }
        guard header.alg == "HS256" else {
            throw invalid("the token uses algorithm '\(header.alg)'; only HS256 is accepted")
        }
        guard let mac = decodeBase64URL(parts[2]) else {
            throw invalid("the token signature is not valid base64url")
        }
        let signingInput = Data(trimmed.utf8.prefix(parts[0].utf8.count + 1 + parts[1].utf8.count))
        guard HMAC<SHA256>.isValidAuthenticationCode(mac, authenticating: signingInput, using: key) else {
            throw invalid("the token signature does not verify (forged, corrupted, or made with another key)")
        }
        guard let payload = decodeBase64URL(parts[1]),
            let claims = try? JSONDecoder().decode(Claims.self, from: Data(payload))
        else {
            throw invalid("the token claims are not valid (need ns, sa, iat, exp, jti, aud)")
        }
        guard audiences.contains(claims.audience) else {
            throw invalid("the token is for audience '\(claims.audience)', not '\(audiences.sorted().joined(separator: "' or '"))'")
        }
        let nowSeconds = now.timeIntervalSince1970
        guard TimeInterval(claims.expiresAt) > nowSeconds else {
            throw IdentityError(
                code: .tokenExpired,
                message:
                    "the token for \(claims.namespace)/\(claims.serviceAccount) expired at \(RFC3339.format(claims.expiry)); "
                    + "make a new one with `starling token create`"
            )
        }
        guard TimeInterval(claims.issuedAt) <= nowSeconds + 300 else {
            throw invalid(
                "the token is issued in the future (\(RFC3339.format(Date(timeIntervalSince1970: TimeInterval(claims.issuedAt)))))"
            )
        }
        guard !claims.namespace.isEmpty, !claims.serviceAccount.isEmpty else {
            throw invalid("the token names an empty namespace or service account")
        }
        return claims
    }

    /// The claims of a token its holder keeps, read without the key: when to renew it. Nothing
    /// here is verified, so nothing may be granted on it; `nil` for a token that is not a JWT.
    public static func unverifiedClaims(_ token: String) -> Claims? {
        let parts = token.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, let payload = decodeBase64URL(parts[1]) else { return nil }
        return try? JSONDecoder().decode(Claims.self, from: Data(payload))
    }

    private static func invalid(_ message: String) -> IdentityError {
        IdentityError(code: .tokenInvalid, message: "invalid join token: " + message)
    }

    static func base64URL(_ bytes: [UInt8]) -> String {
        Data(bytes).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-")
            .replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    static func decodeBase64URL(_ text: Substring) -> [UInt8]? {
        guard text.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") }) else {
            return nil
        }
        var base64 = text.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        switch base64.count % 4 {
        case 2: base64 += "=="
        case 3: base64 += "="
        case 1: return nil
        default: break
        }
        return Data(base64Encoded: base64).map { [UInt8]($0) }
    }
}
