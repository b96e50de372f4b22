public import Crypto
public import Foundation
public import X509

/// What `starling certs create SUBJECT CRT KEY` asks for, with the same meaning as the `step`
/// CLI's `certificate create` flags.
public struct CertificateRequest {
    /// The kind of certificate (`--profile`).
    public struct Profile: Sendable, Hashable, CustomStringConvertible {
        /// The name used on the command line: `root-ca`, `intermediate-ca`, `leaf`.
        public let name: String
        /// The validity used when no `--not-after` is given.
        public let defaultValidity: TimeInterval

        private init(name: String, defaultValidity: TimeInterval) {
            self.name = name
            self.defaultValidity = defaultValidity
        }

        public var description: String { name }

        /// A self-signed trust anchor: CA:TRUE, keyCertSign + cRLSign, 10 years.
        public static let rootCA = Profile(name: "root-ca", defaultValidity: 10 * 365 * 86400)
        /// An issuer signed by `--ca`: CA:TRUE pathlen 0, 1 year.
        public static let intermediateCA = Profile(name: "intermediate-ca", defaultValidity: 365 * 86400)
        /// An end-entity certificate signed by `--ca`: serverAuth + clientAuth, 24 hours.
        public static let leaf = Profile(name: "leaf", defaultValidity: 86400)

        /// All profiles, in `--help` order.
        public static let all: [Profile] = [.rootCA, .intermediateCA, .leaf]

        /// Looks a profile up by its command-line name; nil when unknown.
        public init?(name: String) {
            guard let found = Profile.all.first(where: { $0.name == name }) else { return nil }
            self = found
        }
    }

    /// The subject common name (`SUBJECT`).
    public var subject: String
    /// `--profile`.
    public var profile: Profile
    /// `--not-before`; now when nil.
    public var notBefore: Date?
    /// `--not-after`; `notBefore` + the profile's default validity when nil.
    public var notAfter: Date?
    /// `--san` values: DNS names, IP addresses, or URIs (containing `://`).
    public var sans: [String]
    /// `--ca` / `--ca-key`: required for intermediate CAs and leaves, refused for roots.
    public var issuer: (certificate: Certificate, key: P256.Signing.PrivateKey)?

    public init(
        subject: String,
        profile: Profile,
        notBefore: Date? = nil,
        notAfter: Date? = nil,
        sans: [String] = [],
        issuer: (certificate: Certificate, key: P256.Signing.PrivateKey)? = nil
    ) {
        self.subject = subject
        self.profile = profile
        self.notBefore = notBefore
        self.notAfter = notAfter
        self.sans = sans
        self.issuer = issuer
    }
}
