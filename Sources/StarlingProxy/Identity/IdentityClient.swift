import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2Posix
public import Logging
import StarlingAPI
public import StarlingCore
import StarlingIdentity
public import StarlingTLS
import SwiftASN1
import Synchronization
import X509

extension ProxyError.Code {
    /// The proxy has no workload certificate yet (the controller refused or could not be reached).
    public static let identityUnavailable = ProxyError.Code("identity-unavailable")
}

/// The proxy's workload identity: a key made in memory, a certificate for it from the controller's
/// Identity API, and the ``MeshTLS`` built from them, renewed at 70 % of the certificate's life.
///
/// The key never leaves the process and is kept for the life of the proxy (each renewal sends a new
/// CSR for the same key). When the controller is unreachable the current certificate keeps being
/// served while attempts back off (``RenewalSchedule``); a failed renewal never drops the last good
/// certificate.
public final class IdentityClient: Sendable {
    public struct Configuration: Sendable {
        /// The controller to ask.
        public var controller: ControllerAPI
        /// The identity to request; the join token must grant it.
        public var identity: MeshIdentity
        /// The mesh's trust anchors (PEM). When nil, the anchors the controller returns with the
        /// first certificate are used (they arrive over the pinned controller connection).
        public var trustAnchorsPEM: String?
        /// Renewal timing and retry backoff.
        public var renewal: RenewalSchedule.Configuration
        /// Deadline of one Certify call.
        public var requestTimeout: Duration

        public init(
            controller: ControllerAPI, identity: MeshIdentity, trustAnchorsPEM: String? = nil,
            renewal: RenewalSchedule.Configuration = .init(), requestTimeout: Duration = .seconds(10)
        ) {
            self.controller = controller
            self.identity = identity
            self.trustAnchorsPEM = trustAnchorsPEM
            self.renewal = renewal
            self.requestTimeout = requestTimeout
        }
    }

    private struct State: Sendable {
        var tls: MeshTLS?
        /// The anchors the current `MeshTLS` was built with (PEM), to notice a change.
        var anchorsPEM: String?
        /// Why the last attempt failed, for `waitUntilReady`'s message.
        var lastFailure: String?
    }

    public let configuration: Configuration
    private let logger: Logger
    private let key = WorkloadKey()
    private let state = Mutex(State())

    public init(configuration: Configuration, logger: Logger) {
        self.configuration = configuration
        var logger = logger
        logger[metadataKey: "identity"] = "\(configuration.identity)"
        self.logger = logger
    }

    /// The workload's TLS material; nil until the first certificate arrived.
    public var tls: MeshTLS? { state.withLock { $0.tls } }

    /// Waits until the first certificate arrived.
    ///
    /// - Throws: `ProxyError(.identityUnavailable)` naming the last failure when none arrived
    ///   within `timeout`.
    @discardableResult
    public func waitUntilReady(timeout: Duration) async throws -> MeshTLS {
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: timeout)
        while true {
            if let tls { return tls }
            guard clock.now < deadline else {
                let reason = state.withLock { $0.lastFailure } ?? "no answer yet"
                throw ProxyError(
                    .identityUnavailable,
                    "no certificate for \(configuration.identity) from the controller at \(configuration.controller) within \(timeout): \(reason)"
                )
            }
            try await Task.sleep(for: .milliseconds(10))
        }
    }

    /// Obtains the certificate and keeps renewing it until the task is cancelled.
    public func run() async throws {
        let transport = try configuration.controller.makeTransport(unaryTimeout: configuration.requestTimeout)
        try await withGRPCClient(transport: transport) { client in
            try await renewLoop(Starling_V1_Identity.Client(wrapping: client))
        }
    }

    private func renewLoop(_ client: Starling_V1_Identity.Client<some ClientTransport>) async throws {
        var schedule = RenewalSchedule(configuration: configuration.renewal)
        while !Task.isCancelled {
            let delay: Duration
            do {
                let tls = try await certify(client)
                let leaf = tls.certificateChain[0]
                delay = schedule.certified(notBefore: leaf.notValidBefore, notAfter: leaf.notValidAfter, now: Date())
                logger.info(
                    "workload certificate renewed",
                    metadata: [
                        "not_after": "\(ISO8601DateFormatter().string(from: leaf.notValidAfter))",
                        "next_renewal_in": "\(delay)",
                    ])
            } catch {
                if Task.isCancelled { return }
                delay = schedule.failed(now: Date())
                let reason = Self.describe(error)
                state.withLock { $0.lastFailure = reason }
                logger.warning(
                    "workload certificate request failed; keeping the current certificate",
                    metadata: [
                        "controller": "\(configuration.controller)", "error": "\(reason)",
                        "attempt": "\(schedule.consecutiveFailures)", "retry_in": "\(delay)",
                        "has_certificate": "\(tls != nil)",
                    ])
            }
            do {
                try await Task.sleep(for: delay)
            } catch {
                return
            }
        }
    }

    /// One Certify round trip: CSR out, chain back, checked, installed.
    func certify(_ client: Starling_V1_Identity.Client<some ClientTransport>) async throws -> MeshTLS {
        let identity = configuration.identity
        var request = Starling_V1_CertifyRequest()
        request.identity = identity.dnsName
        request.token = configuration.controller.token
        request.certificateSigningRequest = Data(try key.csr(for: identity).der)
        var metadata = Metadata()
        metadata.addString("Bearer \(configuration.controller.token)", forKey: "authorization")
        let response = try await client.certify(request, metadata: metadata)

        let chain: [Certificate]
        do {
            chain = try response.chain.map { try Certificate(derEncoded: Array($0)) }
        } catch {
            throw ProxyError(.identityUnavailable, "the controller returned an unparsable certificate chain: \(error)")
        }
        guard let leaf = chain.first, key.matches(leaf) else {
            throw ProxyError(.identityUnavailable, "the controller returned a certificate that is not for this proxy's key")
        }
        let anchorsPEM = configuration.trustAnchorsPEM ?? response.trustAnchorsPem
        let trust = try TrustBundle(
            pem: anchorsPEM,
            source: configuration.trustAnchorsPEM == nil ? "the controller's trust anchors" : "the configured trust anchors",
            trustDomain: identity.trustDomain)
        if case .failure(let failure) = await trust.verify(chain: chain, expecting: identity) {
            throw ProxyError(.identityUnavailable, "the certificate from the controller does not verify: \(failure.message)")
        }
        return try install(chain: chain, trust: trust, anchorsPEM: anchorsPEM)
    }

    private func install(chain: [Certificate], trust: TrustBundle, anchorsPEM: String) throws -> MeshTLS {
        let (current, currentAnchors) = state.withLock { ($0.tls, $0.anchorsPEM) }
        if let current {
            // A trust anchor rollover: new handshakes verify peers against the new roots.
            let anchorsChanged = currentAnchors != anchorsPEM
            try current.update(chain: chain, key: key.privateKey, trustAnchors: anchorsChanged ? trust.anchors : nil)
            state.withLock {
                $0.anchorsPEM = anchorsPEM
                $0.lastFailure = nil
            }
            if anchorsChanged {
                logger.notice("trust anchors updated", metadata: [
                    "roots": "\(trust.anchors.count)", "fingerprints": "\(trust.fingerprint)",
                ])
            }
            return current
        }
        let logger = self.logger
        let tls = try MeshTLS(
            chain: chain, key: key.privateKey, trustAnchors: trust.anchors, trustDomain: trust.trustDomain,
            onRejected: { reason in logger.notice("peer failed mTLS verification", metadata: ["reason": "\(reason.message)"]) })
        state.withLock {
            $0.tls = tls
            $0.anchorsPEM = anchorsPEM
            $0.lastFailure = nil
        }
        return tls
    }

    private static func describe(_ error: any Error) -> String {
        switch error {
        case let error as RPCError: "\(error.code): \(error.message)"
        case let error as ProxyError: error.message
        case let error as IdentityError: error.message
        case let error as MeshTLSError: error.description
        default: "\(error)"
        }
    }
}
