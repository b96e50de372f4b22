public import NIOCore
import NIOSSL
import NIOTLS
public import StarlingCore
import SwiftASN1
import X509

/// Reading the mesh identity a certificate names.
enum PeerIdentity {
    /// The one mesh identity `certificate` names (its SPIFFE URI SAN and/or identity DNS SAN); nil
    /// when it names none or two different ones.
    static func of(_ certificate: Certificate) -> MeshIdentity? {
        guard let names = try? certificate.extensions.subjectAlternativeNames else { return nil }
        var found: MeshIdentity?
        for name in names {
            let identity: MeshIdentity?
            switch name {
            case .uniformResourceIdentifier(let uri): identity = MeshIdentity(spiffeURI: uri)
            case .dnsName(let dns): identity = MeshIdentity(dnsName: dns)
            default: identity = nil
            }
            guard let identity else { continue }
            if let found, found != identity { return nil }
            found = identity
        }
        return found
    }

    /// The mesh identity of an NIOSSL certificate; nil when it cannot be parsed or names none.
    static func of(_ certificate: NIOSSLCertificate) -> MeshIdentity? {
        guard let bytes = try? certificate.toDERBytes(), let parsed = try? Certificate(derEncoded: bytes) else {
            return nil
        }
        return of(parsed)
    }
}

extension MeshTLS {
    /// The mesh identity of the peer of a channel whose TLS handshake has completed: read from the
    /// chain the mesh verifier validated when there is one, else from the peer certificate BoringSSL
    /// verified. Nil when the handshake has not completed, the pipeline has no `NIOSSLHandler`, or
    /// the certificate names no single mesh identity.
    public static func peerIdentity(of channel: any Channel) -> EventLoopFuture<MeshIdentity?> {
        if channel.eventLoop.inEventLoop {
            return channel.eventLoop.makeSucceededFuture(peerIdentity(in: channel.pipeline.syncOperations))
        }
        return channel.eventLoop.submit { peerIdentity(in: channel.pipeline.syncOperations) }
    }

    /// ``peerIdentity(of:)`` from inside the channel's event loop (a handler).
    public static func peerIdentity(in pipeline: ChannelPipeline.SynchronousOperations) -> MeshIdentity? {
        if let validated = try? pipeline.nioSSL_peerValidatedCertificateChain() {
            return PeerIdentity.of(validated.leaf)
        }
        guard let certificate = (try? pipeline.nioSSL_peerCertificate()) ?? nil else { return nil }
        return PeerIdentity.of(certificate)
    }

    /// The subject alternative names of the peer's leaf, for a refusal message ("SANs: IP
    /// 127.0.0.1"); "no peer certificate" when there is none.
    public static func peerNames(in pipeline: ChannelPipeline.SynchronousOperations) -> String {
        guard let certificate = (try? pipeline.nioSSL_peerCertificate()) ?? nil,
            let bytes = try? certificate.toDERBytes(), let parsed = try? Certificate(derEncoded: bytes)
        else { return "no peer certificate" }
        return ClientCertificateRules.describeNames(parsed)
    }

    /// The ALPN protocol a `TLSUserEvent.handshakeCompleted` event carries; nil for other events
    /// (and for handshakes where no protocol was agreed).
    public static func negotiatedALPN(_ event: Any) -> String? {
        guard case .handshakeCompleted(let negotiated)? = event as? TLSUserEvent else { return nil }
        return negotiated
    }
}
