import Foundation
import Logging
import StarlingCore
import StarlingIdentity
import Synchronization
import X509

/// The mesh's identity configuration as the controller currently sees it: trust anchors and the
/// issuer, loaded from the `MeshConfig` named `mesh` and the issuer `Secret` it points to.
struct MeshIdentityConfiguration: Sendable {
    var clusterName: String
    var trustDomain: String
    var trustAnchorsPEM: String
    var trust: TrustBundle
    var issuer: Issuer
    var issuerCertificate: Certificate
    /// How long the workload certificates it signs are valid.
    var issuanceLifetime: Duration
}

/// Follows the store and keeps the current `MeshIdentityConfiguration`. When a new configuration
/// fails to load, the last good one stays in force and the problem is kept for `starling check`.
final class MeshIdentityState: Sendable {
    private struct State {
        var configuration: MeshIdentityConfiguration?
        var problem: String? = "identity is not configured: no MeshConfig \"mesh\" (run `starling install ... | starling apply -f -`)"
    }
    private let state = Mutex(State())
    private let store: any ResourceStore
    private let logger: Logger

    public init(store: any ResourceStore, logger: Logger) {
        self.store = store
        self.logger = logger
    }

    var configuration: MeshIdentityConfiguration? { state.withLock { $0.configuration } }
    /// Why identity is not (or not freshly) configured; nil when all is well.
    var problem: String? { state.withLock { $0.problem } }

    /// Loads now, then reloads on every MeshConfig or Secret change until cancelled.
    func run() async throws {
        var version = try await store.currentVersion()
        await reload()
        while !Task.isCancelled {
            do {
                for try await event in store.watch(kinds: ["MeshConfig", "Secret"], fromVersion: version) {
                    version = event.version
                    await reload()
                }
            } catch let error as StoreError where error.code == .versionTooOld {
                version = try await store.currentVersion()
                await reload()
            }
        }
    }

    func reload() async {
        do {
            let loaded = try await Self.load(from: store)
            state.withLock {
                $0.configuration = loaded
                $0.problem = nil
            }
            if let loaded {
                logger.info("identity configured", metadata: [
                    "trust-domain": "\(loaded.trustDomain)",
                    "issuer": "\(loaded.issuerCertificate.subject)",
                    "issuer-expires": "\(loaded.issuerCertificate.notValidAfter)",
                ])
            } else {
                state.withLock { $0.problem = State().problem }
            }
        } catch {
            let message = "\(error)"
            state.withLock { $0.problem = message }
            logger.error("identity configuration refused; keeping the previous one", metadata: ["error": "\(message)"])
        }
    }

    static func load(from store: any ResourceStore, now: Date = Date()) async throws -> MeshIdentityConfiguration? {
        guard let resource = try await store.get(ResourceKey(kind: "MeshConfig", namespace: nil, name: "mesh")) else {
            return nil
        }
        let spec = try MeshConfigSpec(resource)
        let secretKey = ResourceKey(
            kind: "Secret", namespace: spec.identity.issuer.keySecret.namespace, name: spec.identity.issuer.keySecret.name)
        guard let secretResource = try await store.get(secretKey) else {
            throw IdentityStateError("MeshConfig mesh names the issuer key secret \(secretKey), which does not exist: apply the output of `starling install` again")
        }
        let secret = try SecretSpec(secretResource)
        guard let keyBytes = secret.value("tls.key"), let keyPEM = String(bytes: keyBytes, encoding: .utf8) else {
            throw IdentityStateError("secret \(secretKey) has no tls.key: apply the output of `starling install` again")
        }
        let trust = try TrustBundle(pem: spec.identity.trustAnchorsPEM, source: "MeshConfig mesh spec.identity.trustAnchorsPEM")
        let chain = try PEMFile.certificates(pem: spec.identity.issuer.certificatePEM, source: "MeshConfig mesh spec.identity.issuer.certificatePEM")
        let key = try PEMFile.privateKey(pem: keyPEM, source: "secret \(secretKey) tls.key")
        guard let issuerCertificate = chain.first else {
            throw IdentityStateError("MeshConfig mesh has an empty issuer certificate")
        }
        _ = try trust.validateIssuer(certificate: issuerCertificate, chain: Array(chain.dropFirst()), key: key, now: now)
        let issuer = try Issuer(
            certificate: issuerCertificate, chain: Array(chain.dropFirst()), key: key, trust: trust,
            trustDomain: spec.trustDomain)
        return MeshIdentityConfiguration(
            clusterName: spec.clusterName, trustDomain: spec.trustDomain, trustAnchorsPEM: spec.identity.trustAnchorsPEM,
            trust: trust, issuer: issuer, issuerCertificate: issuerCertificate,
            issuanceLifetime: spec.identity.issuanceLifetime)
    }
}

struct IdentityStateError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
