import NIOCore
import NIOSSL
import StarlingTLS

/// Why an inbound connection was refused before it carried any traffic: the `reason` dimension
/// of `starling_proxy_tls_handshake_failures_total` and the `reason` of the log line.
package enum InboundHandshakeFailure {
    package enum Reason: String, Sendable, Hashable {
        /// The caller sent no client certificate.
        case noClientCertificate = "no-client-certificate"
        /// The caller's certificate did not verify, for a reason not named below.
        case certificateRejected = "certificate-rejected"
        /// A certificate of the caller's chain expired.
        case expired = "expired"
        /// A certificate of the caller's chain is not valid yet.
        case notYetValid = "not-yet-valid"
        /// The caller's chain does not lead to the trust anchors (another root).
        case unknownAuthority = "unknown-authority"
        /// The caller's leaf does not allow TLS client authentication (extendedKeyUsage).
        case noClientAuth = "no-client-auth"
        /// The caller's leaf is a CA certificate.
        case caAsLeaf = "ca-as-leaf"
        /// The caller's leaf names an IP address or another name besides its mesh identity.
        case nonMeshName = "non-mesh-san"
        /// The caller's chain is longer than ``ClientCertificateRules`` allows.
        case chainTooLong = "chain-too-long"
        /// The caller asked (SNI) for a server name that is not this listener's identity.
        case serverNameMismatch = "sni-mismatch"
        /// The certificate verified but names no single mesh identity.
        case noMeshIdentity = "no-mesh-identity"
        /// The caller's identity is not one this listener accepts (another trust domain).
        case identityNotAllowed = "identity-not-allowed"
        /// The bytes were not TLS (e.g. plaintext HTTP to the mTLS port).
        case notTLS = "not-tls"
        /// The caller offered no TLS version or cipher we accept (we speak TLS 1.3 only).
        case protocolMismatch = "protocol-mismatch"
        /// No ALPN protocol the listener serves (`h2`, `starling-opaque`) was agreed.
        case alpn = "no-alpn"
        /// The handshake did not finish within the handshake timeout.
        case timeout = "timeout"
        /// The caller closed the connection during the handshake.
        case closed = "closed"
        /// The proxy has no usable TLS material.
        case localConfiguration = "local-configuration"
        /// Anything else the TLS stack reported.
        case other = "handshake-error"
    }

    /// The reason for a refusal the mesh's own rules made (``ClientCertificateRules``, the
    /// listener's server-name check); nil for other codes.
    static func reason(for code: MeshTLSError.Code) -> Reason? {
        switch code {
        case .certificateExpired: .expired
        case .certificateNotYetValid: .notYetValid
        case .unknownAuthority: .unknownAuthority
        case .noClientAuthUsage: .noClientAuth
        case .caCertificateAsLeaf: .caAsLeaf
        case .nonMeshName: .nonMeshName
        case .chainTooLong: .chainTooLong
        case .serverNameMismatch: .serverNameMismatch
        default: nil
        }
    }

    /// The sentence a user reads for a refusal BoringSSL made (`reason` from ``classify(_:)``),
    /// with BoringSSL's own words after it.
    static func explain(_ reason: Reason, _ error: any Error) -> String {
        let said: String
        switch reason {
        case .noClientCertificate: said = "the client sent no certificate; this listener requires a mesh client certificate"
        case .notTLS: said = "the client did not speak TLS (plaintext to the mTLS port?)"
        case .protocolMismatch:
            // BoringSSL says UNSUPPORTED_PROTOCOL when the versions offered and accepted do not
            // meet: this listener accepts TLS 1.3 only.
            said =
                String(describing: error).contains("UNSUPPORTED_PROTOCOL")
                ? "the client offered TLS 1.2 or older; TLS 1.3 is required"
                : "the client offered no cipher or key-exchange group this listener accepts (TLS 1.3, ECDHE, P-256 signatures)"
        case .alpn: said = "no ALPN protocol this listener serves was agreed"
        case .certificateRejected: said = "the client's certificate failed verification"
        default: said = "the TLS handshake failed"
        }
        return "\(said) (\(error))"
    }

    /// Classifies an error raised during the handshake. BoringSSL reports its reasons as
    /// text inside `NIOSSLError.handshakeFailed`, so the match is on those reason names.
    static func classify(_ error: any Error) -> Reason {
        if let channelError = error as? ChannelError, channelError == .eof {
            return .closed
        }
        if let sslError = error as? NIOSSLError, sslError == .uncleanShutdown {
            return .closed
        }
        let text = String(describing: error).uppercased()
        if text.contains("EOFDURINGHANDSHAKE") || text.contains("EOFDURINGADDITIONAL") {
            return .closed
        }
        if text.contains("PEER_DID_NOT_RETURN_A_CERTIFICATE") || text.contains("CERTIFICATE_REQUIRED") {
            return .noClientCertificate
        }
        if text.contains("CERTIFICATE_VERIFY_FAILED") || text.contains("CERTIFICATE_EXPIRED")
            || text.contains("UNKNOWN_CA") || text.contains("BAD_CERTIFICATE")
        {
            return .certificateRejected
        }
        if text.contains("WRONG_VERSION_NUMBER") || text.contains("HTTP_REQUEST") || text.contains("UNKNOWN_PROTOCOL")
            || text.contains("PACKET_LENGTH_TOO_LONG") || text.contains("RECORD_LENGTH_MISMATCH")
            || text.contains("WRONG_SSL_VERSION") || text.contains("UNEXPECTED_RECORD")
        {
            return .notTLS
        }
        if text.contains("UNSUPPORTED_PROTOCOL") || text.contains("PROTOCOL_VERSION")
            || text.contains("NO_SHARED_CIPHER") || text.contains("NO_SHARED_GROUP")
        {
            return .protocolMismatch
        }
        if text.contains("APPLICATION_PROTOCOL") || text.contains("ALPN") {
            return .alpn
        }
        return .other
    }
}
