/// The one error type of `StarlingIdentity` (STYLE.md §5).
///
/// `code` says what kind of failure it is and is what callers match on; `message` is for people and
/// names the value that was wrong and where it came from (a file, a peer, an identity). Two errors
/// are equal when their codes are equal, which keeps tests simple.
public struct IdentityError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The kind of failure. An open set of static constants rather than an enum, so new codes can
    /// be added without breaking anyone's `switch`.
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        /// A short stable name, e.g. `malformedPEM`.
        public let name: String

        private init(_ name: String) { self.name = name }

        public var description: String { name }

        /// The text is not PEM, holds no block of the expected kind, or the DER inside is broken.
        public static let malformedPEM = Code("malformedPEM")
        /// A key of a type or curve Starling does not use (Starling uses ECDSA P-256 only).
        public static let unsupportedKey = Code("unsupportedKey")
        /// A password-protected private key.
        public static let encryptedKey = Code("encryptedKey")
        /// A certificate used as an issuer is not a certificate authority.
        public static let notACA = Code("notACA")
        /// A certificate is past its not-after time.
        public static let expired = Code("expired")
        /// A certificate is before its not-before time.
        public static let notYetValid = Code("notYetValid")
        /// A chain does not lead to a trust anchor, or breaks a verification rule.
        public static let chainInvalid = Code("chainInvalid")
        /// A private key does not belong to the certificate it was given with.
        public static let keyMismatch = Code("keyMismatch")
        /// A certificate signing request is not signed by the key it carries.
        public static let csrSignatureInvalid = Code("csrSignatureInvalid")
        /// A certificate signing request asks for an identity that was not granted.
        public static let identityNotGranted = Code("identityNotGranted")
        /// A peer's certificate names another identity than the one expected.
        public static let identityMismatch = Code("identityMismatch")
        /// A join token is forged, garbled, or meant for another audience.
        public static let tokenInvalid = Code("tokenInvalid")
        /// A join token is past its expiry time.
        public static let tokenExpired = Code("tokenExpired")
        /// An argument is out of range or malformed (a duration, a SAN, a subject, a lifetime).
        public static let invalidArgument = Code("invalidArgument")
        /// Reading or writing a file failed (missing directory, permissions, full disk).
        public static let fileSystem = Code("fileSystem")
        /// The underlying crypto library failed to sign or encode something that should have worked.
        public static let internalError = Code("internalError")
    }

    /// What kind of failure this is.
    public var code: Code
    /// What went wrong, naming the value and where it came from.
    public var message: String
    /// The lower-level error, if any.
    public var cause: (any Error & Sendable)?

    public init(code: Code, message: String, cause: (any Error & Sendable)? = nil) {
        self.code = code
        self.message = message
        self.cause = cause
    }

    public var description: String {
        if let cause {
            return "\(message) (\(cause))"
        }
        return message
    }

    /// Compares codes only.
    public static func == (lhs: IdentityError, rhs: IdentityError) -> Bool {
        lhs.code == rhs.code
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(code)
    }
}

extension IdentityError {
    static func malformedPEM(_ message: String, cause: (any Error & Sendable)? = nil) -> IdentityError {
        IdentityError(code: .malformedPEM, message: message, cause: cause)
    }

    static func invalidArgument(_ message: String, cause: (any Error & Sendable)? = nil) -> IdentityError {
        IdentityError(code: .invalidArgument, message: message, cause: cause)
    }

    static func internalError(_ message: String, cause: (any Error & Sendable)? = nil) -> IdentityError {
        IdentityError(code: .internalError, message: message, cause: cause)
    }
}
