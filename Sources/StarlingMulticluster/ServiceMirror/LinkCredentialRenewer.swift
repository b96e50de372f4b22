import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2Posix
import Logging
import StarlingAPI
import StarlingCore
import StarlingIdentity

/// Renews one Link's credential before it expires: at two thirds of its lifetime it asks the
/// remote cluster for a fresh one (`RenewLinkCredential`, authenticated by the credential it
/// replaces) and writes it into the link's Secret. The Secret's change restarts the link's loops
/// with the new credential, and this renewer with them. A failure is kept in the registry for
/// `check --multicluster` and retried with a backoff until the credential expires; after that
/// only a new `multicluster link` helps, since the remote refuses an expired credential.
struct LinkCredentialRenewer: Sendable {
    var link: LinkSpec
    var secretKey: ResourceKey
    var token: String
    var remoteCertificatePEM: String
    var store: any ResourceStore
    var registry: MulticlusterRegistry
    var logger: Logger

    /// When a credential valid from `issuedAt` to `expiresAt` (Unix seconds) is renewed.
    static func renewalTime(issuedAt: Int64, expiresAt: Int64) -> Date {
        Date(timeIntervalSince1970: TimeInterval(issuedAt) + TimeInterval(expiresAt - issuedAt) * 2 / 3)
    }

    func run() async {
        let cluster = link.targetClusterName
        guard let claims = JoinToken.unverifiedClaims(token) else {
            registry.update(cluster) { $0.credentialRenewalError = "the link credential is not a token; link again" }
            logger.error("link credential is not a token; it cannot be renewed", metadata: ["cluster": "\(cluster)"])
            return
        }
        let due = Self.renewalTime(issuedAt: claims.issuedAt, expiresAt: claims.expiresAt)
        registry.update(cluster) { $0.credentialRenewsAt = due }
        let wait = due.timeIntervalSinceNow
        if wait > 0 {
            do { try await Task.sleep(for: .seconds(wait)) } catch { return }
        }
        var backoff = Duration.seconds(2)
        while !Task.isCancelled {
            do {
                try await renewOnce()
                registry.update(cluster) { $0.credentialRenewalError = nil }
                return
            } catch is CancellationError {
                return
            } catch {
                if Task.isCancelled { return }
                let message = ClusterWatcher.describe(error)
                registry.update(cluster) { $0.credentialRenewalError = message }
                logger.warning("link credential renewal failed; retrying", metadata: [
                    "cluster": "\(cluster)", "error": "\(message)", "expires-at": "\(claims.expiry.formatted(.iso8601))",
                ])
                try? await Task.sleep(for: backoff)
                backoff = min(backoff * 2, .seconds(60))
            }
        }
    }

    private func renewOnce() async throws {
        let transport = try RemoteAPI.transport(link, certificatePEM: remoteCertificatePEM)
        let renewed = try await withGRPCClient(transport: transport) { client in
            var metadata = Metadata()
            metadata.addString("Bearer \(token)", forKey: "authorization")
            var options = CallOptions.defaults
            options.timeout = .seconds(10)
            options.executionPolicy = ReplicaTarget.failover
            return try await Starling_V1_Mesh.Client(wrapping: client).renewLinkCredential(
                .init(), metadata: metadata, options: options)
        }
        // Keep everything else the Secret holds (the remote CA, its trust anchors).
        guard let current = try await store.get(secretKey) else {
            throw MirrorError("the credentials secret \(secretKey) is gone")
        }
        var spec = try SecretSpec(current)
        spec.data["token"] = Array(renewed.token.utf8)
        spec.data["expires-at"] = Array("\(renewed.expiresAt)".utf8)
        let updated = Resource(
            name: current.metadata.name, namespace: current.metadata.namespace, labels: current.metadata.labels,
            annotations: current.metadata.annotations, spec: spec)
        _ = try await store.apply([updated])
        logger.notice("link credential renewed", metadata: [
            "cluster": "\(link.targetClusterName)",
            "expires-at": "\(Date(timeIntervalSince1970: TimeInterval(renewed.expiresAt)).formatted(.iso8601))",
        ])
    }
}
