import NIOCore
import NIOSSL

/// Why an inbound connection was refused before it carried any traffic: the `reason` dimension
/// of `starling_proxy_tls_handshake_failures_total` and the `reason` of the log line.
enum InboundHandshakeFailure {
    enum Reason: String, Sendable, Hashable {
        /// The caller sent no client certificate.
        case noClientCertificate = "no-client-certificate"
        /// The caller's certificate did not verify: another root, expired, not a mesh identity.
        case certificateRejected = "certificate-rejected"
        /// The certificate verified but names no single mesh identity.
        case noMeshIdentity = "no-mesh-identity"
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
