import NIOCore
import NIOSSL
import StarlingCore
import StarlingIdentity
import SwiftASN1
import X509

/// The custom verification callback of mesh handshakes: the peer's presented chain must verify to
/// the trust anchors (RFC 5280, expiry included), its leaf must carry one mesh identity of the
/// trust domain, and — when `expecting` is set — exactly that identity.
///
/// X509's `Verifier` is async, so each verification runs in a short task that completes NIOSSL's
/// promise; the handshake waits for it.
struct PeerVerifier: Sendable {
    let trust: TrustBundle
    let expecting: MeshIdentity?
    let onRejected: MeshTLS.RejectionHandler?

    func verify(_ presented: [NIOSSLCertificate], _ promise: EventLoopPromise<NIOSSLVerificationResultWithMetadata>) {
        let chain: [Certificate]
        do {
            chain = try presented.map { try Certificate(derEncoded: $0.toDERBytes()) }
        } catch {
            reject(IdentityError(code: .chainInvalid, message: "the peer sent a certificate that cannot be parsed: \(error)"), promise)
            return
        }
        let trust = trust
        let expecting = expecting
        Task {
            switch await trust.verify(chain: chain, expecting: expecting) {
            case .success(let peer):
                do throws(MeshTLSError) {
                    let validated = try MeshTLS.nioCertificates(peer.chain, what: "validated peer certificate")
                    promise.succeed(.certificateVerified(VerificationMetadata(ValidatedCertificateChain(validated))))
                } catch {
                    reject(IdentityError(code: .chainInvalid, message: error.message), promise)
                }
            case .failure(let failure):
                reject(failure, promise)
            }
        }
    }

    private func reject(_ reason: IdentityError, _ promise: EventLoopPromise<NIOSSLVerificationResultWithMetadata>) {
        onRejected?(reason)
        promise.succeed(.failed)
    }
}
