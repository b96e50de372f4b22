public import Crypto
public import Foundation

/// Tap tickets: short-lived compact JWTs (ES256) that the controller signs with its API key for
/// an admin caller, one per proxy, and that that proxy's admin server accepts on `GET /tap`.
/// Every proxy already pins the controller's API certificate, so it verifies a ticket without
/// holding any secret; a ticket from another cluster's controller does not verify, and a ticket
/// made for one proxy (its identity and admin address) is refused by every other.
public enum TapTicket {
    public static let audience = "starling-tap"
    /// How long a ticket lasts; a tap longer than this asks for a new one.
    public static let lifetime: TimeInterval = 300

    public struct Claims: Codable, Sendable, Hashable {
        /// Audience (`aud`): always ``TapTicket/audience``.
        public var audience: String
        /// The cluster whose controller signed it (`cluster`).
        public var cluster: String
        /// The proxy it is for: its mesh identity (`sub`) and admin address (`addr`).
        public var subject: String
        public var address: String
        /// Issued at and expires at, Unix seconds (`iat`, `exp`).
        public var issuedAt: Int64
        public var expiresAt: Int64
        /// Unique ticket id (`jti`), for logs.
        public var id: String

        enum CodingKeys: String, CodingKey {
            case audience = "aud", cluster, issuedAt = "iat", expiresAt = "exp", id = "jti", subject = "sub", address = "addr"
        }

        public init(
            cluster: String, subject: String, address: String, now: Date = Date(), lifetime: TimeInterval = TapTicket.lifetime
        ) {
            let issued = Int64(now.timeIntervalSince1970.rounded(.down))
            self.audience = TapTicket.audience
            self.cluster = cluster
            self.subject = subject
            self.address = address
            self.issuedAt = issued
            self.expiresAt = issued + Int64(lifetime.rounded(.up))
            self.id = UUID().uuidString.lowercased()
        }

        public var expiry: Date { Date(timeIntervalSince1970: TimeInterval(expiresAt)) }
    }

    private struct Header: Codable {
        var alg: String
    }

    private static let headerSegment = JoinToken.base64URL(Array(#"{"alg":"ES256","typ":"JWT"}"#.utf8))

    /// `header.payload.signature`, the signature in JWS's raw `r‖s` form.
    public static func sign(_ claims: Claims, key: P256.Signing.PrivateKey) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let signingInput = headerSegment + "." + JoinToken.base64URL(Array(try encoder.encode(claims)))
        let signature = try key.signature(for: Data(signingInput.utf8))
        return signingInput + "." + JoinToken.base64URL(Array(signature.rawRepresentation))
    }

    /// Verifies `ticket` with the controller's public key at `now`, for the proxy with mesh
    /// identity `subject` and admin address `address` (nil: not checked, a proxy that does not
    /// know the address it is reached at); refuses anything else with a reason that says what
    /// was wrong (`.tokenInvalid`, or `.tokenExpired` saying when).
    public static func verify(
        _ ticket: String, key: P256.Signing.PublicKey, subject: String, address: String?, now: Date = Date()
    ) throws(IdentityError) -> Claims {
        let parts = ticket.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3 else { throw invalid("the ticket is not a JWT (expected three dot-separated parts)") }
        guard let headerBytes = JoinToken.decodeBase64URL(parts[0]),
            let header = try? JSONDecoder().decode(Header.self, from: Data(headerBytes))
        else { throw invalid("the ticket header is not valid base64url JSON") }
        guard header.alg == "ES256" else { throw invalid("the ticket uses algorithm '\(header.alg)'; only ES256 is accepted") }
        guard let raw = JoinToken.decodeBase64URL(parts[2]),
            let signature = try? P256.Signing.ECDSASignature(rawRepresentation: raw)
        else { throw invalid("the ticket signature is not a P-256 signature") }
        let signingInput = Data(ticket.utf8.prefix(parts[0].utf8.count + 1 + parts[1].utf8.count))
        guard key.isValidSignature(signature, for: signingInput) else {
            throw invalid("the ticket signature does not verify (made by another cluster's controller, or altered)")
        }
        guard let payload = JoinToken.decodeBase64URL(parts[1]),
            let claims = try? JSONDecoder().decode(Claims.self, from: Data(payload))
        else { throw invalid("the ticket claims are not valid (need aud, cluster, sub, addr, iat, exp, jti)") }
        guard claims.audience == audience else {
            throw invalid("the ticket is for audience '\(claims.audience)', not '\(audience)'")
        }
        guard claims.subject == subject, address == nil || claims.address == address else {
            throw invalid("the ticket is for the proxy \(claims.subject) at \(claims.address), not this one (\(subject) at \(address ?? "?"))")
        }
        guard TimeInterval(claims.expiresAt) > now.timeIntervalSince1970 else {
            throw IdentityError(
                code: .tokenExpired,
                message: "the tap ticket expired at \(RFC3339.format(claims.expiry)); ask the controller for a new one")
        }
        return claims
    }

    private static func invalid(_ message: String) -> IdentityError {
        IdentityError(code: .tokenInvalid, message: "invalid tap ticket: " + message)
    }
}
