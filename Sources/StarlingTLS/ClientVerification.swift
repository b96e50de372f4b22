public import NIOSSL
import SwiftASN1
import X509

/// One listener connection's check of its client's certificate: BoringSSL verifies the chain to
/// the trust anchors inside the handshake, and its verify callback applies
/// ``ClientCertificateRules`` and keeps the reason for a refusal (``refusal``), which the listener
/// logs and counts.
///
/// The callback is synchronous on purpose. NIOSSL's custom verification callbacks (what
/// ``MeshTLS/makeServerHandler()`` uses) complete on a later event-loop tick, and a TLS 1.3 caller
/// whose data and FIN arrive in that window is dropped; this one runs inside BoringSSL's own
/// verification, adds rules to it and never replaces it.
///
/// Lives on the connection's event loop; not thread-safe.
public final class ClientVerification {
    private var rules: ClientCertificateRules

    /// Why the client's certificate was refused, once it was; nil while it has not been.
    public var refusal: MeshTLSError? { rules.refusal }

    public init(rules: ClientCertificateRules = ClientCertificateRules()) {
        self.rules = rules
    }

    /// A server handler on `context` (a mesh listener's ``MeshTLSSource/serverContext()``) whose
    /// verification applies the rules.
    public func makeServerHandler(context: NIOSSLContext) throws -> NIOSSLServerHandler {
        // NIOSSL deprecates this initializer in favour of the asynchronous custom callbacks, which
        // take over BoringSSL's verification and cannot be used here (see the type's comment). This
        // one keeps BoringSSL's verification and only observes and tightens it.
        try NIOSSLServerHandler(context: context, verificationCallback: { [self] result, certificate in
            verify(result, certificate)
        })
    }

    private func verify(_ result: NIOSSLVerificationResult, _ certificate: NIOSSLCertificate) -> NIOSSLVerificationResult {
        let parsed: Certificate
        do {
            parsed = try Certificate(derEncoded: certificate.toDERBytes())
        } catch {
            // BoringSSL parsed it; swift-certificates did not. Fail closed either way.
            _ = rules.evaluateUnparsable(error)
            return .failed
        }
        return rules.evaluate(parsed, preverified: result == .certificateVerified) ? .certificateVerified : .failed
    }
}

extension ClientCertificateRules {
    /// A certificate of the chain could not be parsed: the chain is refused.
    mutating func evaluateUnparsable(_ error: any Error) -> Bool {
        refuse(MeshTLSError(.unknownAuthority, "the client sent a certificate that cannot be parsed: \(error)"))
        return false
    }
}

@available(*, unavailable)
extension ClientVerification: Sendable {}
