import Foundation
import X509

/// A small synchronous path builder for the places that cannot await X509's `Verifier`:
/// `starling certs inspect`, `install` and `check`. It finds a path from a certificate through
/// the given intermediates to one of the anchors, checking every signature, that every issuer is
/// a CA, and that every certificate is valid at the given time.
///
/// Peer verification on connections uses ``TrustBundle/verify(chain:at:expecting:)`` (X509's
/// `Verifier` with RFC 5280 and the mesh policies) instead.
struct ChainBuilder {
    var anchors: [Certificate]
    var intermediates: [Certificate]
    /// Longest path tried, counting the certificate and the anchor.
    var maxDepth = 8

    enum Failure: Error {
        case expired(Certificate)
        case notYetValid(Certificate)
        case issuerNotCA(Certificate)
        case noPathToAnchor(Certificate)
    }

    /// The path `[certificate, …, anchor]`, or why there is none.
    func build(from certificate: Certificate, at time: Date) -> Result<[Certificate], Failure> {
        if let failure = validity(of: certificate, at: time) { return .failure(failure) }
        var path = [certificate]
        return extend(&path, at: time)
    }

    private func extend(_ path: inout [Certificate], at time: Date) -> Result<[Certificate], Failure> {
        let tip = path[path.count - 1]
        if anchors.contains(tip) { return .success(path) }
        // A root given as its own anchor, or the tip signed directly by an anchor.
        var firstFailure: Failure?
        for anchor in anchors where anchor.subject == tip.issuer && tip.isSigned(by: anchor) {
            if let failure = validity(of: anchor, at: time) ?? caCheck(anchor) {
                firstFailure = firstFailure ?? failure
                continue
            }
            return .success(path + [anchor])
        }
        if path.count < maxDepth {
            for candidate in intermediates
            where candidate.subject == tip.issuer && !path.contains(candidate) && tip.isSigned(by: candidate) {
                if let failure = validity(of: candidate, at: time) ?? caCheck(candidate) {
                    firstFailure = firstFailure ?? failure
                    continue
                }
                path.append(candidate)
                switch extend(&path, at: time) {
                case .success(let complete): return .success(complete)
                case .failure(let failure):
                    if case .noPathToAnchor = failure {} else { firstFailure = firstFailure ?? failure }
                    path.removeLast()
                }
            }
        }
        return .failure(firstFailure ?? .noPathToAnchor(path[0]))
    }

    private func validity(of certificate: Certificate, at time: Date) -> Failure? {
        if time > certificate.notValidAfter { return .expired(certificate) }
        if time < certificate.notValidBefore { return .notYetValid(certificate) }
        return nil
    }

    private func caCheck(_ certificate: Certificate) -> Failure? {
        certificate.isCertificateAuthority ? nil : .issuerNotCA(certificate)
    }
}

extension ChainBuilder.Failure {
    /// A one-line explanation naming the certificate concerned.
    func describe(anchors: [Certificate]) -> String {
        switch self {
        case .expired(let cert):
            return "'\(cert.subject)' expired at \(RFC3339.format(cert.notValidAfter))"
        case .notYetValid(let cert):
            return "'\(cert.subject)' is not valid before \(RFC3339.format(cert.notValidBefore))"
        case .issuerNotCA(let cert):
            return "'\(cert.subject)' signs the chain but is not a CA"
        case .noPathToAnchor(let cert):
            let subjects = anchors.map { "'\($0.subject)'" }.joined(separator: ", ")
            return
                "'\(cert.subject)' is not signed by any of the trust anchors (\(subjects.isEmpty ? "none given" : subjects))"
        }
    }

    var code: IdentityError.Code {
        switch self {
        case .expired: return .expired
        case .notYetValid: return .notYetValid
        case .issuerNotCA: return .notACA
        case .noPathToAnchor: return .chainInvalid
        }
    }
}
