public import Foundation
public import X509

/// The result of ``TrustBundle/validateIssuer(certificate:chain:key:now:)``: the issuer is usable;
/// this says for how long.
public struct IssuerStatus: Sendable, Hashable {
    /// The issuer's subject, RFC 4514.
    public var subject: String
    /// When the issuer expires.
    public var notAfter: Date
    /// The time the check was made at.
    public var checkedAt: Date
    /// The path from the issuer to the anchor that trusts it, issuer first.
    public var path: [Certificate]

    public init(subject: String, notAfter: Date, checkedAt: Date, path: [Certificate]) {
        self.subject = subject
        self.notAfter = notAfter
        self.checkedAt = checkedAt
        self.path = path
    }

    /// Time left before expiry, from `checkedAt`.
    public var remaining: TimeInterval { notAfter.timeIntervalSince(checkedAt) }

    /// True when the issuer expires within `days` days of `checkedAt` (`starling check` warns then).
    public func expiresWithin(days: Double) -> Bool {
        remaining <= days * 86400
    }

    /// True when the issuer expires within `days` whole days of `checkedAt`.
    public func expiresWithin(days: Int) -> Bool {
        expiresWithin(days: Double(days))
    }
}
