import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2Posix
import Logging
import StarlingAPI
@testable import StarlingControlPlane
import StarlingCore
import SwiftProtobuf
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

// In-process controller for integration tests: a real `Controller` on loopback (port 0 for the
// API and admin servers, a fresh data directory), real TLS, real gRPC clients.

struct HarnessError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// A running controller, as a test sees it.
struct TestController: Sendable {
    let apiPort: Int
    let adminPort: Int
    let dataDirectory: String
    /// The API's address (an IPv4 or IPv6 literal).
    var apiHost = "127.0.0.1"
    /// The admin credential, read from `admin-token` in the data directory.
    let adminToken: String
    /// The API's self-signed certificate, read from `api.crt`: the client's only trust root.
    let apiCertificatePEM: String
    let workloadLease: Duration

    /// What a client sends as `authorization: Bearer ...`.
    enum Credential: Sendable {
        case admin
        case none
        case token(String)
    }

    /// Connects with `credential`, runs `body`, and disconnects.
    func withClients<T: Sendable>(
        _ credential: Credential = .admin, _ body: @Sendable (APIClients) async throws -> T
    ) async throws -> T {
        let token: String? =
            switch credential {
            case .admin: adminToken
            case .none: nil
            case .token(let t): t
            }
        let transport = try HTTP2ClientTransport.Posix(
            target: NetworkAddress.isIPv6(apiHost) ? .ipv6(address: apiHost, port: apiPort) : .ipv4(address: apiHost, port: apiPort),
            transportSecurity: .tls {
                $0.trustRoots = .certificates([.bytes(Array(apiCertificatePEM.utf8), format: .pem)])
            },
            config: .defaults {
                $0.backoff = .init(initial: .milliseconds(50), max: .milliseconds(500), multiplier: 1.6, jitter: 0.1)
            },
            serviceConfig: ServiceConfig(methodConfig: [
                // Unary calls fail a test instead of hanging it; streams run while they are read.
                MethodConfig(
                    names: [
                        .init(service: "starling.v1.Mesh"), .init(service: "starling.v1.Identity"),
                        .init(service: "starling.v1.Resources", method: "Apply"),
                        .init(service: "starling.v1.Resources", method: "Get"),
                        .init(service: "starling.v1.Resources", method: "List"),
                        .init(service: "starling.v1.Resources", method: "Delete"),
                    ],
                    timeout: .seconds(10))
            ]))
        return try await withGRPCClient(transport: transport, interceptors: [TestBearerInterceptor(token: token)]) { client in
            try await body(APIClients(client))
        }
    }

    /// A join token for `namespace`/`serviceAccount`, made by the controller (Mesh.CreateToken).
    func joinToken(namespace: String, serviceAccount: String, ttlSeconds: Int64 = 3600) async throws -> String {
        try await withClients(.admin) { api in
            try await api.mesh.createToken(.with {
                $0.namespace = namespace
                $0.serviceAccount = serviceAccount
                $0.ttlSeconds = ttlSeconds
            }).token
        }
    }

    /// The controller's credentials as stored in its data directory (the token signing key, for
    /// forging expired tokens).
    func credentials() throws -> ControllerCredentials {
        try ControllerCredentials.loadOrCreate(directory: dataDirectory, apiHost: "127.0.0.1")
    }

    /// Waits until the admin endpoint says the controller is ready (the destination index loaded).
    func waitUntilReady(within limit: Duration = .seconds(5)) async throws {
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: limit)
        var last = "no answer"
        while clock.now < deadline {
            if let response = try? await httpGet(port: adminPort, path: "/ready") {
                if response.status == 200 { return }
                last = "\(response.status) \(response.body)"
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        throw HarnessError("controller not ready within \(limit): \(last)")
    }
}

/// The generated clients over one connection.
struct APIClients: Sendable {
    let resources: Starling_V1_Resources.Client<HTTP2ClientTransport.Posix>
    let identity: Starling_V1_Identity.Client<HTTP2ClientTransport.Posix>
    let destination: Starling_V1_Destination.Client<HTTP2ClientTransport.Posix>
    let mesh: Starling_V1_Mesh.Client<HTTP2ClientTransport.Posix>
    let policy: Starling_V1_Policy.Client<HTTP2ClientTransport.Posix>

    init(_ client: GRPCClient<HTTP2ClientTransport.Posix>) {
        policy = .init(wrapping: client)
        resources = .init(wrapping: client)
        identity = .init(wrapping: client)
        destination = .init(wrapping: client)
        mesh = .init(wrapping: client)
    }

    /// Applies resources (compact JSON each) in one request.
    @discardableResult
    func apply(_ documents: [String], source: String = "test") async throws -> [Starling_V1_ApplyResult] {
        try await resources.apply(.with {
            $0.resourcesJson = documents
            $0.source = source
        }).results
    }

    @discardableResult
    func apply(_ resources: [Resource]) async throws -> [Starling_V1_ApplyResult] {
        try await apply(resources.map(ResourceEncoder.compactJSON))
    }

    /// Gets one resource, nil when the API says notFound.
    func get(_ kind: String, _ name: String, namespace: String = "") async throws -> Resource? {
        do {
            let response = try await resources.get(.with {
                $0.kind = kind
                $0.namespace = namespace
                $0.name = name
            })
            return try ResourceDecoder.decodeStored(response.resourceJson)
        } catch let error as RPCError where error.code == .notFound {
            return nil
        }
    }

    func list(
        _ kind: String, namespace: String = "", allNamespaces: Bool = false, selector: String = ""
    ) async throws -> (resources: [Resource], version: Int64) {
        let response = try await resources.list(.with {
            $0.kind = kind
            $0.namespace = namespace
            $0.allNamespaces = allNamespaces
            $0.labelSelector = selector
        })
        return (try response.resourcesJson.map { try ResourceDecoder.decodeStored($0) }, response.version)
    }
}

/// Sends `authorization: Bearer TOKEN` (or nothing when the token is nil).
struct TestBearerInterceptor: ClientInterceptor {
    let token: String?

    func intercept<Input: Sendable, Output: Sendable>(
        request: StreamingClientRequest<Input>, context: ClientContext,
        next: (StreamingClientRequest<Input>, ClientContext) async throws -> StreamingClientResponse<Output>
    ) async throws -> StreamingClientResponse<Output> {
        var request = request
        if let token { request.metadata.replaceOrAddString("Bearer \(token)", forKey: "authorization") }
        return try await next(request, context)
    }
}

let harnessLogger: Logger = {
    var logger = Logger(label: "starling.controller.test") { label in StreamLogHandler.standardError(label: label) }
    logger.logLevel = .error
    return logger
}()

/// Starts a controller in a fresh temporary data directory, runs `body` against it, then stops
/// the controller (cancelling its task and waiting for it) and removes the directory.
///
/// A controller that does not stop within 5 s of cancellation always fails the test. An error
/// thrown by `run` once cancelled fails it only with `strictShutdown` (the lifecycle test); other
/// tests print it, so that they test their own feature.
func withController<T: Sendable>(
    workloadLease: Duration = .seconds(15),
    heartbeatInterval: Duration = .seconds(3),
    metrics: @escaping @Sendable () -> String = { "" },
    strictShutdown: Bool = false,
    certifyRateLimit: CertifyRateLimit = .standard,
    apiHost: String = "127.0.0.1",
    gatewayHosted: Bool = true,
    _ body: (TestController) async throws -> T
) async throws -> T {
    let directory = FileManager.default.temporaryDirectory
        .appendingPathComponent("starling-controller-test-\(UUID().uuidString.prefix(8).lowercased())").path
    defer { try? FileManager.default.removeItem(atPath: directory) }
    var configuration = ControllerConfiguration(
        clusterName: "test", dataDirectory: directory, apiHost: apiHost, apiPort: 0,
        adminHost: "127.0.0.1", adminPort: 0, workloadLease: workloadLease, heartbeatInterval: heartbeatInterval)
    configuration.certifyRateLimit = certifyRateLimit
    configuration.gatewayHosted = gatewayHosted
    let controller = Controller(configuration: configuration, logger: harnessLogger, metrics: metrics)

    let (listening, announce) = AsyncStream<Controller.Listening>.makeStream()
    let task = Task {
        defer { announce.finish() }
        try await controller.run { announce.yield($0) }
    }
    do {
        var iterator = listening.makeAsyncIterator()
        guard let ports = await iterator.next() else {
            try await task.value
            throw HarnessError("the controller returned before it was listening")
        }
        func read(_ name: String) throws -> String {
            try String(contentsOfFile: (directory as NSString).appendingPathComponent(name), encoding: .utf8)
        }
        let running = TestController(
            apiPort: ports.apiPort, adminPort: ports.adminPort, dataDirectory: directory, apiHost: apiHost,
            adminToken: try read("admin-token").trimmingCharacters(in: .whitespacesAndNewlines),
            apiCertificatePEM: try read("api.crt"), workloadLease: workloadLease)
        try await running.waitUntilReady()
        let result = try await body(running)
        do {
            try await stop(task)
        } catch let error as HarnessError {
            throw error
        } catch where !strictShutdown {
            print("controller: run threw after being cancelled: \(error)")
        }
        return result
    } catch {
        try? await stop(task)
        throw error
    }
}

/// Cancels the controller's task and waits for it to return; a controller that does not stop
/// within a few seconds fails the test (and is left behind).
private func stop(_ task: Task<Void, any Error>, within limit: Duration = .seconds(5)) async throws {
    task.cancel()
    guard let result = await firstResult(of: task, within: limit) else {
        throw HarnessError("the controller did not stop within \(limit) of being cancelled")
    }
    try result.get()
}

/// The task's result, or nil when it takes longer than `limit` (the task keeps running).
func firstResult<T: Sendable>(of task: Task<T, any Error>, within limit: Duration) async -> Result<T, any Error>? {
    let once = ResumeOnce<Result<T, any Error>?>()
    return await withCheckedContinuation { continuation in
        once.set(continuation)
        Task { once.resume(await task.result) }
        Task {
            try? await Task.sleep(for: limit)
            once.resume(nil)
        }
    }
}

/// Resumes a continuation once, whichever of several racing tasks gets there first.
final class ResumeOnce<Value: Sendable>: Sendable {
    private let continuation = Mutex<CheckedContinuation<Value, Never>?>(nil)
    func set(_ c: CheckedContinuation<Value, Never>) { continuation.withLock { $0 = c } }
    func resume(_ value: Value) { continuation.withLock { $0.take() }?.resume(returning: value) }
}

// MARK: - Streams

/// Messages of a server stream, collected by a background task so a test can wait for the next
/// one with a deadline while it changes the store.
final class StreamInbox<Message: Sendable>: Sendable {
    private struct State {
        var buffer: [Message] = []
        var end: Result<Void, any Error>?
        var waiter: (id: Int, continuation: CheckedContinuation<Message, any Error>)?
        var nextID = 0
        /// Waits whose deadline passed before they were registered.
        var expired: Set<Int> = []
    }
    private enum Now { case message(Message), end(any Error), expired, wait }
    private let state = Mutex(State())
    private let reader = Mutex<Task<Void, Never>?>(nil)

    /// Starts `call`, which must pass the handler it is given as the RPC's `onResponse`.
    init(
        _ call: @escaping @Sendable (
            _ handler: @escaping @Sendable (StreamingClientResponse<Message>) async throws -> Void
        ) async throws -> Void
    ) {
        let task = Task { [self] in
            do {
                try await call { response in
                    for try await message in response.messages { self.push(message) }
                }
                self.finish(.success(()))
            } catch {
                self.finish(.failure(error))
            }
        }
        reader.withLock { $0 = task }
    }

    /// Ends the RPC.
    func cancel() { reader.withLock { $0 }?.cancel() }

    private func push(_ message: Message) {
        let waiter = state.withLock { s -> CheckedContinuation<Message, any Error>? in
            if let w = s.waiter {
                s.waiter = nil
                return w.continuation
            }
            s.buffer.append(message)
            return nil
        }
        waiter?.resume(returning: message)
    }

    private func finish(_ end: Result<Void, any Error>) {
        let waiter = state.withLock { s -> CheckedContinuation<Message, any Error>? in
            s.end = end
            defer { s.waiter = nil }
            return s.waiter?.continuation
        }
        waiter?.resume(throwing: Self.endError(end))
    }

    private static func endError(_ end: Result<Void, any Error>) -> any Error {
        switch end {
        case .success: HarnessError("the stream ended")
        case .failure(let error): error
        }
    }

    /// The next message; throws when none arrives within `limit` or the stream ends.
    func next(within limit: Duration = .seconds(5)) async throws -> Message {
        let id = state.withLock { s -> Int in
            s.nextID += 1
            return s.nextID
        }
        let timer = Task { [self] in
            try? await Task.sleep(for: limit)
            guard !Task.isCancelled else { return }
            let waiter = state.withLock { s -> CheckedContinuation<Message, any Error>? in
                guard let w = s.waiter, w.id == id else {
                    s.expired.insert(id)
                    return nil
                }
                s.waiter = nil
                return w.continuation
            }
            waiter?.resume(throwing: HarnessError("no stream message within \(limit)"))
        }
        defer { timer.cancel() }
        return try await withCheckedThrowingContinuation { continuation in
            let now = state.withLock { s -> Now in
                if !s.buffer.isEmpty { return .message(s.buffer.removeFirst()) }
                if let end = s.end { return .end(Self.endError(end)) }
                if s.expired.remove(id) != nil { return .expired }
                s.waiter = (id, continuation)
                return .wait
            }
            switch now {
            case .message(let m): continuation.resume(returning: m)
            case .end(let e): continuation.resume(throwing: e)
            case .expired: continuation.resume(throwing: HarnessError("no stream message within \(limit)"))
            case .wait: break
            }
        }
    }

    /// True when no message arrives within `limit` (used to check that nothing more is sent).
    func staysQuiet(for limit: Duration) async -> Bool {
        do {
            _ = try await next(within: limit)
            return false
        } catch {
            return true
        }
    }
}

// MARK: - Polling and timing

/// Polls `condition` every 20 ms until it is true; false when `limit` passes first.
func eventually(
    within limit: Duration = .seconds(5), _ condition: () async throws -> Bool
) async throws -> Bool {
    let clock = ContinuousClock()
    let deadline = clock.now.advanced(by: limit)
    while true {
        if try await condition() { return true }
        if clock.now >= deadline { return false }
        try await Task.sleep(for: .milliseconds(20))
    }
}

extension Duration {
    var milliseconds: Double {
        Double(components.seconds) * 1000 + Double(components.attoseconds) / 1e15
    }
}

// MARK: - Resources

/// Resource documents for tests.
enum TestResources {
    static func namespace(_ name: String) -> Resource {
        Resource(name: name, spec: NamespaceSpec())
    }

    static func service(
        _ name: String, namespace: String = "test", labels: [String: String] = [:],
        selector: [String: String]? = nil, port: Int = 80, targetPort: Int = 8080
    ) -> Resource {
        Resource(
            name: name, namespace: namespace, labels: labels,
            spec: ServiceSpec(ports: [ServicePort(name: "http", port: port, targetPort: targetPort)], selector: selector ?? ["app": name]))
    }

    static func workload(
        _ name: String, namespace: String = "test", app: String, address: String,
        port: Int = 4143, appPort: Int = 8080, serviceAccount: String = "default"
    ) -> Resource {
        Resource(
            name: name, namespace: namespace, labels: ["app": app],
            spec: WorkloadSpec(
                address: address, ports: [WorkloadPort(name: "http", port: port, appPort: appPort)],
                serviceAccount: serviceAccount,
                identity: MeshIdentity(namespace: namespace, serviceAccount: serviceAccount).dnsName))
    }

    /// An SMI TrafficSplit as users write it (v1alpha2, integer weights).
    static func trafficSplit(_ name: String, namespace: String = "test", service: String, backends: [(String, Int)]) -> String {
        let list = backends.map { #"{"service":"\#($0.0)","weight":\#($0.1)}"# }.joined(separator: ",")
        return #"{"apiVersion":"split.smi-spec.io/v1alpha2","kind":"TrafficSplit","metadata":{"name":"\#(name)","namespace":"\#(namespace)"},"spec":{"service":"\#(service)","backends":[\#(list)]}}"#
    }
}

// MARK: - Admin HTTP

struct HTTPResponse: Sendable {
    var status: Int
    var headers: [String: String]  // lowercased names
    var body: String
}

/// A plain HTTP/1.1 GET over a loopback socket (`Connection: close`), for the admin endpoint.
func httpGet(port: Int, path: String) async throws -> HTTPResponse {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw HarnessError("socket() failed: errno \(errno)") }
    defer { close(fd) }
    var timeout = timeval(tv_sec: 5, tv_usec: 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = in_port_t(UInt16(port).bigEndian)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let connected = withUnsafePointer(to: address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
        }
    }
    guard connected == 0 else { throw HarnessError("connect to 127.0.0.1:\(port) failed: errno \(errno)") }
    let request = Array("GET \(path) HTTP/1.1\r\nHost: 127.0.0.1:\(port)\r\nConnection: close\r\n\r\n".utf8)
    let sent = request.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, 0) }
    guard sent == request.count else { throw HarnessError("send failed: errno \(errno)") }
    var data: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 4096)
    while true {
        let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if n < 0 { throw HarnessError("recv failed: errno \(errno)") }
        if n == 0 { break }
        data += chunk[0..<n]
    }
    let text = String(decoding: data, as: UTF8.self)
    guard let split = text.range(of: "\r\n\r\n") else { throw HarnessError("not an HTTP response: \(text.prefix(200))") }
    let lines = text[..<split.lowerBound].components(separatedBy: "\r\n")
    let statusParts = lines[0].split(separator: " ")
    guard statusParts.count >= 2, statusParts[0].hasPrefix("HTTP/1."), let status = Int(statusParts[1]) else {
        throw HarnessError("bad status line: \(lines[0])")
    }
    var headers: [String: String] = [:]
    for line in lines.dropFirst() {
        guard let colon = line.firstIndex(of: ":") else { continue }
        headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
    }
    return HTTPResponse(status: status, headers: headers, body: String(text[split.upperBound...]))
}
