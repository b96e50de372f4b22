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
