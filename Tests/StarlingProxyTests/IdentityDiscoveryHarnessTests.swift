import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2Posix
import Logging
import StarlingAPI
import StarlingCore
import StarlingIdentity
import StarlingProxy
import SwiftProtobuf
import SwiftASN1
import Synchronization
import Testing
import X509

// A fake controller for the identity and discovery clients: a real gRPC server over TLS on
// 127.0.0.1 with a self-signed API certificate that the clients pin, serving in-test
// implementations of the Identity and Destination services.

struct ControlPlaneFakeError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// The controller's API certificate, shared by restarts of the fake controller.
struct FakeControllerCredentials: Sendable {
    let certificatePEM: String
    let keyPEM: String

    init() throws {
        let (certificate, key) = try ServingCertificate.selfSigned(commonName: "127.0.0.1", ipAddresses: ["127.0.0.1"])
        certificatePEM = PEMFile.pem(certificate)
        keyPEM = PEMFile.pem(key)
    }

    func api(port: Int, token: String) -> ControllerAPI {
        ControllerAPI(host: "127.0.0.1", port: port, certificatePEM: certificatePEM, token: token)
    }
}

/// A running fake controller; `stop()` cancels the server, closing every connection and stream.
final class FakeController: Sendable {
    let port: Int
    private let task: Task<Void, any Error>
    private let shutdown: @Sendable () -> Void

    private init(port: Int, task: Task<Void, any Error>, shutdown: @escaping @Sendable () -> Void) {
        self.port = port
        self.task = task
        self.shutdown = shutdown
    }

    /// Starts the services on `port` (0: any free port).
    static func start(
        _ services: [any RegistrableRPCService], credentials: FakeControllerCredentials, port: Int = 0
    ) async throws -> FakeController {
        let transport = HTTP2ServerTransport.Posix(
            address: .ipv4(host: "127.0.0.1", port: port),
            transportSecurity: .tls(
                certificateChain: [.bytes(Array(credentials.certificatePEM.utf8), format: .pem)],
                privateKey: .bytes(Array(credentials.keyPEM.utf8), format: .pem)))
        let server = GRPCServer(transport: transport, services: services)
        let task = Task { try await server.serve() }
        do {
            guard let bound = try await transport.listeningAddress.ipv4?.port else {
                throw ControlPlaneFakeError("the fake controller bound no IPv4 address")
            }
            return FakeController(port: bound, task: task, shutdown: { server.beginGracefulShutdown() })
        } catch {
            task.cancel()
            throw error
        }
    }

    /// Stops gracefully first (the listener closes), then cancels what is left: cancelling
    /// `serve()` outright can catch a just-accepted connection and trip NIO's async-writer
    /// assertion (apple/swift-nio#3481).
    func stop() async {
        shutdown()
        try? await Task.sleep(for: .milliseconds(200))
        task.cancel()
        _ = await task.result
    }
}

let controlPlaneTestLogger: Logger = {
    var logger = Logger(label: "starling.proxy.test") { label in StreamLogHandler.standardError(label: label) }
    logger.logLevel = .critical
    return logger
}()

/// A root and an issuer for signing workload certificates in the fake Identity service.
struct FakeMeshCA: Sendable {
    let root: Certificate
    let issuer: Issuer

    init(trustDomain: String = "cluster.local") throws {
        let root = try CertificateFactory.create(.init(subject: "root.identity.starling", profile: .rootCA))
        let ca = try CertificateFactory.create(
            .init(subject: "issuer.identity.starling", profile: .intermediateCA, issuer: (root.certificate, root.key)))
        self.root = root.certificate
        self.issuer = try Issuer(
            certificate: ca.certificate, key: ca.key, trust: TrustBundle(anchors: [root.certificate]),
            trustDomain: trustDomain)
    }

    var anchorsPEM: String { PEMFile.pem([root]) }
}

// MARK: - Identity

/// Signs a CSR for the identity a token grants (`tokens`: token → identity), with `lifetime`.
final class FakeIdentityService: Starling_V1_Identity.SimpleServiceProtocol, Sendable {
    let ca: FakeMeshCA
    let tokens: [String: MeshIdentity]
    let lifetime: TimeInterval
    private let calls = Mutex(0)

    init(ca: FakeMeshCA, tokens: [String: MeshIdentity], lifetime: TimeInterval = 3600) {
        self.ca = ca
        self.tokens = tokens
        self.lifetime = lifetime
    }

    var certifyCalls: Int { calls.withLock { $0 } }

    func certify(
        request: Starling_V1_CertifyRequest, context: ServerContext
    ) async throws -> Starling_V1_CertifyResponse {
        calls.withLock { $0 += 1 }
        guard let granted = tokens[request.token] else {
            throw RPCError(code: .unauthenticated, message: "unknown join token")
        }
        guard request.identity == granted.dnsName else {
            throw RPCError(code: .permissionDenied, message: "the token grants \(granted.dnsName)")
        }
        let chain: [Certificate]
        do {
            chain = try ca.issuer.certify(
                csrDER: Array(request.certificateSigningRequest), granted: granted, lifetime: lifetime)
        } catch {
            throw RPCError(code: .invalidArgument, message: error.message)
        }
        var response = Starling_V1_CertifyResponse()
        response.chain = try chain.map { Data(try $0.derBytesForTest()) }
        response.validUntil = Int64(chain[0].notValidAfter.timeIntervalSince1970)
        response.trustAnchorsPem = ca.anchorsPEM
        return response
    }
}

extension Certificate {
    func derBytesForTest() throws -> [UInt8] {
        var serializer = DER.Serializer()
        try serializer.serialize(self)
        return serializer.serializedBytes
    }
}

// MARK: - Destination

/// Replays, per authority path, a log of `Get` updates and `GetProfile` profiles: a new stream
/// gets the whole log, then every later append. Requests are recorded.
final class FakeDestinationService: Starling_V1_Destination.SimpleServiceProtocol, Sendable {
    private struct State {
        var updates: [String: [Starling_V1_Update]] = [:]
        var profiles: [String: [Starling_V1_DestinationProfile]] = [:]
        var requests: [String] = []
        var resumes: [Starling_V1_GetDestination] = []
        var profileResumes: [Starling_V1_GetDestination] = []
        var watchers: [UUID: AsyncStream<Void>.Continuation] = [:]
    }

    private let state = Mutex(State())
    /// Paths answered with `invalidArgument`.
    let invalid: Set<String>

    init(invalid: Set<String> = []) {
        self.invalid = invalid
    }

    func append(_ path: String, _ update: Starling_V1_Update) {
        let watchers = state.withLock { state in
            state.updates[path, default: []].append(update)
            return Array(state.watchers.values)
        }
        for watcher in watchers { watcher.yield() }
    }

    func append(_ path: String, _ profile: Starling_V1_DestinationProfile) {
        let watchers = state.withLock { state in
            state.profiles[path, default: []].append(profile)
            return Array(state.watchers.values)
        }
        for watcher in watchers { watcher.yield() }
    }

    /// Every `Get`/`GetProfile` request so far, as `METHOD path`.
    var requests: [String] { state.withLock { $0.requests } }

    /// The `Get` requests that resumed a stream (a resume version set).
    var resumes: [Starling_V1_GetDestination] { state.withLock { $0.resumes } }

    /// The `GetProfile` requests that resumed a stream.
    var profileResumes: [Starling_V1_GetDestination] { state.withLock { $0.profileResumes } }

    func get(
        request: Starling_V1_GetDestination, response: RPCWriter<Starling_V1_Update>, context: ServerContext
    ) async throws {
        if request.resumeVersion > 0 { state.withLock { $0.resumes.append(request) } }
        try await replay("Get", request.path, context: context, response: response) { $0.updates[request.path] ?? [] }
    }

    func getProfile(
        request: Starling_V1_GetDestination, response: RPCWriter<Starling_V1_DestinationProfile>,
        context: ServerContext
    ) async throws {
        if request.resumeVersion > 0 { state.withLock { $0.profileResumes.append(request) } }
        try await replay("GetProfile", request.path, context: context, response: response) {
            $0.profiles[request.path] ?? []
        }
    }

    private func replay<Message: Sendable>(
        _ method: String, _ path: String, context: ServerContext, response: RPCWriter<Message>,
        log: @escaping @Sendable (State) -> [Message]
    ) async throws {
        let id = UUID()
        let (changes, sink) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        state.withLock { state in
            state.requests.append("\(method) \(path)")
            state.watchers[id] = sink
        }
        defer { _ = state.withLock { $0.watchers.removeValue(forKey: id) } }
        if invalid.contains(path) {
            throw RPCError(code: .invalidArgument, message: "\"\(path)\" is not a service authority")
        }
        var sent = 0
        sink.yield()
        for await _ in changes {
            let pending = state.withLock { Array(log($0).dropFirst(sent)) }
            for message in pending {
                try await response.write(message)
                sent += 1
            }
        }
    }
}

extension Starling_V1_WeightedAddr {
    static func test(
        _ ip: String, _ port: UInt32, identity: MeshIdentity? = nil, opaque: Bool = false,
        labels: [String: String] = [:], authorityOverride: String = ""
    ) -> Self {
        .with {
            $0.ip = ip
            $0.port = port
            $0.weight = 10_000
            $0.identity = identity?.dnsName ?? ""
            $0.protocolHint = opaque ? .opaque : (identity == nil ? .unknown : .h2)
            $0.metricLabels = labels
            $0.authorityOverride = authorityOverride
        }
    }
}

extension Starling_V1_Update {
    static func add(_ addrs: [Starling_V1_WeightedAddr]) -> Self { .with { $0.add = .with { $0.addrs = addrs } } }
    static func remove(_ addrs: [Starling_V1_WeightedAddr]) -> Self {
        .with { $0.remove = .with { $0.addrs = addrs } }
    }
    static func noEndpoints(exists: Bool) -> Self { .with { $0.noEndpoints = .with { $0.exists = exists } } }
}

/// Polls `condition` until it holds or `limit` passes.
func eventually(
    within limit: Duration = .seconds(5), _ what: String, _ condition: @Sendable () async throws -> Bool
) async throws {
    let deadline = ContinuousClock.now.advanced(by: limit)
    while ContinuousClock.now < deadline {
        if try await condition() { return }
        try await Task.sleep(for: .milliseconds(20))
    }
    throw ControlPlaneFakeError("not within \(limit): \(what)")
}
