public import Crypto
import NIOCore
public import Foundation
public import NIOSSL
public import StarlingCore
public import StarlingIdentity
import SwiftASN1
import Synchronization
public import X509

/// A workload's mTLS material: its certificate chain and key, the mesh's trust anchors, and the
/// NIOSSL contexts made from them.
///
/// Every handshake is TLS 1.3 with ECDSA P-256 signatures. Peers are verified against the trust
/// anchors and must carry a mesh identity of the trust domain:
///
/// - dialers (``makeClientHandler(expecting:alpn:)``) verify inside the handshake with a custom
///   verification callback (X509's `Verifier`: RFC 5280 + ``MeshIdentityPolicy`` +
///   ``ExpectedIdentityPolicy``), so a wrong peer fails the handshake itself;
/// - ``makeServerHandler()`` does the same for listeners;
/// - a handler made from the bare ``serverContext()`` (the ``MeshTLSSource`` contract) gets
///   BoringSSL's chain verification to the anchors (signatures, CA rules, expiry, client
///   certificate required); NIOSSL has no context-level custom callback, so the mesh-identity rule
///   is then enforced by ``peerIdentity(of:)`` / ``MeshHandshakeHandler``, which report nil for a
///   leaf without exactly one mesh identity — the listener must close such connections. Mesh
///   listeners make that handler through ``ClientVerification``, which adds
///   ``ClientCertificateRules`` (client usage, no CA leaf, mesh names only, path length) to
///   BoringSSL's verification;
/// - every server context refuses a ClientHello whose SNI names anyone but this workload
///   (``serverNameProblem(_:identity:)``).
///
/// Contexts are built once per certificate (eagerly for the server, lazily per ALPN list for
/// clients) and cached. ``update(chain:key:)`` swaps the certificate: later calls return contexts
/// for the new one; connections already open keep theirs.
public final class MeshTLS: MeshTLSSource {
    /// The ALPN protocols a mesh listener offers, in preference order (HTTP/2, opaque TCP).
    public static let serverALPN = ["h2", "starling-opaque"]

    /// Called with the reason whenever a peer fails verification in a handshake made by this
    /// instance's handlers (for logging; the handshake fails regardless).
    public typealias RejectionHandler = @Sendable (IdentityError) -> Void

    public let identity: MeshIdentity
    /// The trust anchors and trust domain peers are verified against now (they change with a
    /// trust anchor rollover, through ``update(chain:key:trustAnchors:)``).
    public var trust: TrustBundle { state.withLock { $0.trust } }

    private let onRejected: RejectionHandler?
    private let state: Mutex<State>

    /// One certificate's worth of TLS material.
    private struct Material: Sendable {
        var chain: [Certificate]
        var nioChain: [NIOSSLCertificate]
        var key: NIOSSLPrivateKey
        var generation: Int
    }

    private struct State: Sendable {
        var material: Material
        var trust: TrustBundle
        var anchors: [NIOSSLCertificate]
        var server: NIOSSLContext
        /// Client contexts of the current material, by offered ALPN list.
        var clients: [[String]: NIOSSLContext]
    }

    /// Makes the TLS material for a workload.
    ///
    /// - Parameters:
    ///   - chain: the workload certificate first, then the issuer (and any further intermediates).
    ///   - key: the private key of the leaf.
    ///   - trustAnchors: the mesh's roots.
    ///   - trustDomain: the trust domain of this workload and every peer.
    ///   - onRejected: told why a peer failed verification.
    /// - Throws: ``MeshTLSError`` when the chain is empty, the leaf names no single mesh identity of
    ///   `trustDomain`, or the key does not belong to the leaf.
    public init(
        chain: [Certificate], key: P256.Signing.PrivateKey, trustAnchors: [Certificate],
        trustDomain: String = "cluster.local", onRejected: RejectionHandler? = nil
    ) throws(MeshTLSError) {
        let trust = TrustBundle(anchors: trustAnchors, trustDomain: trustDomain)
        let identity = try Self.identity(of: chain, trust: trust)
        let anchors = try Self.nioCertificates(trustAnchors, what: "trust anchor")
        let material = try Self.material(chain: chain, key: key, generation: 0)
        let server = try Self.serverContext(material, anchors: anchors, identity: identity)
        self.identity = identity
        self.onRejected = onRejected
        self.state = Mutex(State(material: material, trust: trust, anchors: anchors, server: server, clients: [:]))
    }

    // MARK: - Rotation

    /// Swaps in a renewed certificate and key, and new trust anchors when given (a trust anchor
    /// rollover: the controller serves a bundle of old and new roots, later the new alone). New
    /// handlers and contexts use them; connections already open are not touched.
    ///
    /// - Throws: ``MeshTLSError`` (and keeps the current material) when the new leaf names
    ///   another identity, its key does not match, or NIOSSL refuses the material or anchors.
    public func update(chain: [Certificate], key: P256.Signing.PrivateKey, trustAnchors: [Certificate]? = nil)
        throws(MeshTLSError)
    {
        let (current, currentAnchors, generation) = state.withLock { ($0.trust, $0.anchors, $0.material.generation + 1) }
        let trust = trustAnchors.map { TrustBundle(anchors: $0, trustDomain: current.trustDomain) } ?? current
        let anchors = try trustAnchors.map { anchors throws(MeshTLSError) in
            try Self.nioCertificates(anchors, what: "trust anchor")
        } ?? currentAnchors
        let renewed = try Self.identity(of: chain, trust: trust)
        guard renewed == identity else {
            throw MeshTLSError(
                .identityChanged, "the renewed certificate names \(renewed), but this workload is \(identity)")
        }
        let material = try Self.material(chain: chain, key: key, generation: generation)
        let server = try Self.serverContext(material, anchors: anchors, identity: identity)
        state.withLock { state in
            state.material = material
            state.trust = trust
            state.anchors = anchors
            state.server = server
            state.clients = [:]
        }
    }

    /// The chain currently presented, leaf first.
    public var certificateChain: [Certificate] { state.withLock { $0.material.chain } }

    /// When the current leaf expires.
    public var notAfter: Date { certificateChain[0].notValidAfter }

    // MARK: - MeshTLSSource

    public func serverContext() throws -> NIOSSLContext {
        state.withLock { $0.server }
    }

    public func makeClientHandler(expecting: MeshIdentity?, alpn: [String]) throws -> NIOSSLClientHandler {
        let verifier = PeerVerifier(trust: trust, expecting: expecting, onRejected: onRejected)
        return try NIOSSLClientHandler(
            context: clientContext(alpn: alpn), serverHostname: nil,
            customVerificationCallbackWithMetadata: verifier.verify)
    }

    /// A server handler that verifies the client inside the handshake (anchors, expiry and a mesh
    /// identity of the trust domain); prefer it to wrapping ``serverContext()`` yourself.
    public func makeServerHandler() throws -> NIOSSLServerHandler {
        let verifier = PeerVerifier(trust: trust, expecting: nil, onRejected: onRejected)
        return NIOSSLServerHandler(context: try serverContext(), customVerificationCallbackWithMetadata: verifier.verify)
    }

    /// The cached client context for `alpn`, built on first use after each rotation.
    func clientContext(alpn: [String]) throws(MeshTLSError) -> NIOSSLContext {
        let (material, anchors, cached) = state.withLock { ($0.material, $0.anchors, $0.clients[alpn]) }
        if let cached { return cached }
        var configuration = Self.baseConfiguration(material, anchors: anchors)
        configuration.applicationProtocols = alpn
        let context = try Self.context(configuration, for: "client (ALPN \(alpn))")
        return state.withLock { state in
            guard state.material.generation == material.generation else { return context }
            if let raced = state.clients[alpn] { return raced }
            state.clients[alpn] = context
            return context
        }
    }

    // MARK: - Building

    private static func baseConfiguration(_ material: Material, anchors: [NIOSSLCertificate]) -> TLSConfiguration {
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: material.nioChain.map { .certificate($0) }, privateKey: .privateKey(material.key))
        configuration.minimumTLSVersion = .tlsv13
        configuration.maximumTLSVersion = .tlsv13
        configuration.signingSignatureAlgorithms = [.ecdsaSecp256R1Sha256]
        configuration.verifySignatureAlgorithms = [.ecdsaSecp256R1Sha256]
        // Peers are named by mesh identity, never by host name or IP address: `.fullVerification`
        // would make NIOSSL match the peer's IP against the certificate, which workload
        // certificates do not carry.
        configuration.certificateVerification = .noHostnameVerification
        configuration.trustRoots = .certificates(anchors)
        configuration.additionalTrustRoots = []
        configuration.applicationProtocols = []
        return configuration
    }

    private static func serverContext(_ material: Material, anchors: [NIOSSLCertificate], identity: MeshIdentity)
        throws(MeshTLSError) -> NIOSSLContext
    {
        var configuration = baseConfiguration(material, anchors: anchors)
        configuration.applicationProtocols = serverALPN
        configuration.sslContextCallback = serverNameCheck(identity)
        return try context(configuration, for: "server")
    }

    /// The listener's server-name rule, run on each ClientHello: mesh clients send no SNI; a client
    /// that sends one must name this workload's identity (its DNS form), or the handshake fails
    /// with a ``MeshTLSError/Code/serverNameMismatch`` error (the listener logs it; the client gets
    /// an alert). A listener serves one identity, so an SNI naming another workload is a caller
    /// that meant to reach someone else.
    static func serverNameCheck(_ identity: MeshIdentity) -> NIOSSLContextCallback {
        { values, promise in
            if let problem = serverNameProblem(values.serverHostname, identity: identity) {
                promise.fail(problem)
            } else {
                promise.succeed(.noChanges)
            }
        }
    }

    /// Why `serverName` (a ClientHello's SNI) is refused by a listener serving `identity`; nil
    /// when there is none or it names `identity` (case-insensitive, a trailing dot allowed).
    public static func serverNameProblem(_ serverName: String?, identity: MeshIdentity) -> MeshTLSError? {
        guard let serverName else { return nil }
        var name = serverName.lowercased()
        if name.hasSuffix(".") { name.removeLast() }
        guard name != identity.dnsName.lowercased() else { return nil }
        let named = MeshIdentity(dnsName: name).map { "identity \($0)" } ?? "'\(serverName)'"
        return MeshTLSError(
            .serverNameMismatch,
            "the client asked (SNI) for \(named), but this listener serves identity \(identity)")
    }

    private static func context(_ configuration: TLSConfiguration, for role: String) throws(MeshTLSError)
        -> NIOSSLContext
    {
        do {
            return try NIOSSLContext(configuration: configuration)
        } catch {
            throw MeshTLSError(.contextFailed, "NIOSSL refused the \(role) TLS configuration", cause: error)
        }
    }

    private static func identity(of chain: [Certificate], trust: TrustBundle) throws(MeshTLSError) -> MeshIdentity {
        guard let leaf = chain.first else {
            throw MeshTLSError(.invalidCertificate, "the workload certificate chain is empty")
        }
        if case .failsToMeetPolicy(let reason) = MeshIdentityPolicy(trustDomain: trust.trustDomain).evaluate(
            leaf: leaf)
        {
            throw MeshTLSError(.invalidCertificate, "the workload certificate is unusable: \(reason)")
        }
        guard let identity = PeerIdentity.of(leaf) else {
            throw MeshTLSError(.invalidCertificate, "the workload certificate '\(leaf.subject)' names no mesh identity")
        }
        return identity
    }

    private static func material(chain: [Certificate], key: P256.Signing.PrivateKey, generation: Int)
        throws(MeshTLSError) -> Material
    {
        let leaf = chain[0]
        guard let leafKey = P256.Signing.PublicKey(leaf.publicKey),
            leafKey.rawRepresentation == key.publicKey.rawRepresentation
        else {
            throw MeshTLSError(.keyMismatch, "the private key does not belong to certificate '\(leaf.subject)'")
        }
        let nioKey: NIOSSLPrivateKey
        do {
            nioKey = try NIOSSLPrivateKey(bytes: Array(key.derRepresentation), format: .der)
        } catch {
            throw MeshTLSError(.contextFailed, "NIOSSL refused the workload private key", cause: error)
        }
        return Material(
            chain: chain, nioChain: try nioCertificates(chain, what: "workload certificate"), key: nioKey,
            generation: generation)
    }

    static func nioCertificates(_ certificates: [Certificate], what: String) throws(MeshTLSError)
        -> [NIOSSLCertificate]
    {
        var result: [NIOSSLCertificate] = []
        for certificate in certificates {
            do {
                var serializer = DER.Serializer()
                try serializer.serialize(certificate)
                result.append(try NIOSSLCertificate(bytes: serializer.serializedBytes, format: .der))
            } catch {
                throw MeshTLSError(.contextFailed, "NIOSSL refused \(what) '\(certificate.subject)'", cause: error)
            }
        }
        return result
    }
}
