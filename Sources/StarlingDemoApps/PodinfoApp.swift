public import Logging
import NIOHTTP1

/// A podinfo-like service (after stefanprodan/podinfo): `GET /` answers JSON naming the instance,
/// its message and cluster, and the calling workload's identity as the mesh's inbound proxy
/// reported it in `starling-client-id`. Health at `/healthz` and `/readyz`.
public struct PodinfoApp: Sendable {
    public struct Configuration: Sendable {
        /// The address to listen on.
        public var host: String
        /// The port to listen on (0 picks one).
        public var port: Int
        /// The message `/` answers with (the walkthrough uses the cluster's name).
        public var message: String
        /// The cluster this instance runs in.
        public var cluster: String
        /// The instance's name (the `hostname` field).
        public var instance: String
        /// The version reported in answers.
        public var version: String

        public init(
            host: String = "127.0.0.1", port: Int = 9898, message: String = "greetings from podinfo",
            cluster: String = "local", instance: String = "podinfo", version: String = "6.7.0"
        ) {
            self.host = host
            self.port = port
            self.message = message
            self.cluster = cluster
            self.instance = instance
            self.version = version
        }
    }

    public var configuration: Configuration
    private let logger: Logger

    public init(configuration: Configuration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
    }

    /// Serves until the calling task is cancelled; `onBound` gets the bound port once listening.
    public func run(onBound: @escaping @Sendable (Int) async -> Void = { _ in }) async throws {
        let configuration = configuration
        try await DemoHTTPServer.run(
            host: configuration.host, port: configuration.port, logger: logger, onBound: onBound
        ) { request in
            if let delay = Self.delay(in: request.path) {
                // `/delay/{seconds}`: answers after that long, as podinfo does.
                try? await Task.sleep(for: delay)
            }
            return Self.respond(to: request, configuration: configuration)
        }
    }

    /// The longest `/delay/{seconds}` served (podinfo has no limit; a demo app should).
    static let maximumDelay: Duration = .seconds(60)

    /// The wait `/delay/{seconds}` asks for; nil for any other path or a malformed one.
    static func delay(in path: String) -> Duration? {
        guard path.hasPrefix("/delay/"), let seconds = Double(path.dropFirst("/delay/".count)), seconds >= 0,
            seconds.isFinite
        else { return nil }
        return min(.milliseconds(Int64(seconds * 1000)), maximumDelay)
    }

    static func respond(to request: DemoRequest, configuration: Configuration) -> DemoResponse {
        guard request.method == .GET || request.method == .HEAD else {
            return .json(DemoJSON.object([("error", DemoJSON.string("only GET is served"))]), status: .methodNotAllowed)
        }
        switch request.path {
        case "/":
            return .json(
                DemoJSON.object([
                    ("hostname", DemoJSON.string(configuration.instance)),
                    ("message", DemoJSON.string(configuration.message)),
                    ("cluster", DemoJSON.string(configuration.cluster)),
                    ("version", DemoJSON.string(configuration.version)),
                    ("client", DemoJSON.optional(request.headers.first(name: "starling-client-id"))),
                ]))
        case "/healthz", "/readyz":
            return .json(DemoJSON.object([("status", DemoJSON.string("OK"))]))
        case let path where path.hasPrefix("/status/"):
            // `/status/{code}`: answers with that status, as podinfo does (for known errors).
            guard let code = Int(path.dropFirst("/status/".count)), (200...599).contains(code) else {
                return .json(
                    DemoJSON.object([("error", DemoJSON.string("/status/{code} takes a code from 200 to 599, got \(path)"))]),
                    status: .badRequest)
            }
            return .json(DemoJSON.object([("status", String(code))]), status: HTTPResponseStatus(statusCode: code))
        case let path where path.hasPrefix("/delay/"):
            guard let delay = delay(in: path) else {
                return .json(
                    DemoJSON.object([("error", DemoJSON.string("/delay/{seconds} takes a number of seconds, got \(path)"))]),
                    status: .badRequest)
            }
            return .json(DemoJSON.object([("delay", DemoJSON.string("\(delay)"))]))
        default:
            return .json(DemoJSON.object([("error", DemoJSON.string("not found: \(request.path)"))]), status: .notFound)
        }
    }
}
