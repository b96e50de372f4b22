/// The one error type of `StarlingTLS` (STYLE.md §5): building TLS material from a workload's
/// certificate, or a handshake that did not produce a verified mesh peer.
///
/// Equality compares the code only.
public struct MeshTLSError: Error, Sendable, Hashable, CustomStringConvertible {
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        public let name: String
        private init(_ name: String) { self.name = name }
        public var description: String { name }

        /// The chain given to ``MeshTLS`` is empty, or its leaf names no mesh identity of the trust
        /// domain.
        public static let invalidCertificate = Code("invalidCertificate")
        /// The private key does not belong to the leaf certificate.
        public static let keyMismatch = Code("keyMismatch")
        /// A rotation tried to change the workload's identity.
        public static let identityChanged = Code("identityChanged")
        /// NIOSSL refused to build a context from the material (unexpected; see `cause`).
        public static let contextFailed = Code("contextFailed")
        /// The connection closed or failed before the TLS handshake completed.
        public static let handshakeIncomplete = Code("handshakeIncomplete")

        // Why a mesh listener refused a client's certificate or hello (``ClientCertificateRules``,
        // the listener's server-name check); the listener's metric label is named after each.

        /// A certificate of the client's chain expired.
        public static let certificateExpired = Code("certificateExpired")
        /// A certificate of the client's chain is not valid yet.
        public static let certificateNotYetValid = Code("certificateNotYetValid")
        /// The client's chain does not lead to the trust anchors (another root, a broken chain).
        public static let unknownAuthority = Code("unknownAuthority")
        /// The client's leaf does not allow TLS client authentication (extendedKeyUsage).
        public static let noClientAuthUsage = Code("noClientAuthUsage")
        /// The client's leaf is a CA certificate.
        public static let caCertificateAsLeaf = Code("caCertificateAsLeaf")
        /// The client's leaf names something besides its mesh identity (an IP address, another name).
        public static let nonMeshName = Code("nonMeshName")
        /// The client's verified chain has more certificates than allowed.
        public static let chainTooLong = Code("chainTooLong")
        /// The client asked (SNI) for a server name that is not this listener's identity.
        public static let serverNameMismatch = Code("serverNameMismatch")
    }

    public var code: Code
    public var message: String
    public var cause: (any Error & Sendable)?

    public init(_ code: Code, _ message: String, cause: (any Error & Sendable)? = nil) {
        self.code = code
        self.message = message
        self.cause = cause
    }

    public var description: String {
        cause.map { "\(code): \(message) (\($0))" } ?? "\(code): \(message)"
    }

    public static func == (a: MeshTLSError, b: MeshTLSError) -> Bool { a.code == b.code }
    public func hash(into hasher: inout Hasher) { hasher.combine(code) }
}
