public import Logging
import NIOHTTP1
import Synchronization

/// The demo frontend: calls podinfo through the mesh every `interval`, counts which cluster and
/// instance answered, and serves a live page of it (`GET /`) and its data (`GET /api/state`).
/// With a proxy configured it sends absolute-form requests to it, as `curl` does with
/// `http_proxy` set; otherwise it calls the upstream directly.
public struct FrontendApp: Sendable {
    public struct Configuration: Sendable {
        /// The address to listen on.
        public var host: String
        /// The port to listen on (0 picks one).
        public var port: Int
        /// The service to call, e.g. `http://podinfo.test:9898/`.
        public var upstream: String
        /// The HTTP forward proxy to call through (the mesh's outbound listener); nil calls the
        /// upstream directly. The command reads it from `http_proxy`.
        public var proxy: DemoHTTPClient.Address?
        /// Time between the starts of two calls.
        public var interval: Duration
        /// The limit of one call.
        public var timeout: Duration
        /// How many answers the page lists.
        public var recentLimit: Int

        public init(
            host: String = "127.0.0.1", port: Int = 8080, upstream: String = "http://podinfo.test:9898/",
            proxy: DemoHTTPClient.Address? = nil, interval: Duration = .seconds(1), timeout: Duration = .seconds(5),
            recentLimit: Int = 20
        ) {
            self.host = host
            self.port = port
            self.upstream = upstream
            self.proxy = proxy
            self.interval = interval
            self.timeout = timeout
            self.recentLimit = recentLimit
        }
    }

    public var configuration: Configuration
    private let logger: Logger

    public init(configuration: Configuration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
    }

    /// Serves the page and calls the upstream until the calling task is cancelled; `onBound` gets
    /// the bound port once listening.
    public func run(onBound: @escaping @Sendable (Int) async -> Void = { _ in }) async throws {
        guard DemoHTTPClient.Target(url: configuration.upstream) != nil else {
            throw DemoHTTPClient.Failure(message: "the upstream must be an http:// URL, got \(configuration.upstream)")
        }
        let configuration = configuration
        let logger = logger
        let tally = FrontendState(FrontendTally(recentLimit: configuration.recentLimit))
        let via = configuration.proxy.map { "through proxy \($0)" } ?? "directly"
        try await withThrowingTaskGroup { group in
            group.addTask {
                try await DemoHTTPServer.run(
                    host: configuration.host, port: configuration.port, logger: logger, onBound: onBound
                ) { request in
                    Self.respond(to: request, configuration: configuration, via: via, tally: tally)
                }
            }
            group.addTask {
                await Self.callUpstream(configuration: configuration, logger: logger, tally: tally)
            }
            // The server ends only by cancellation or failure; either way the caller is told.
            defer { group.cancelAll() }
            try await group.next()
        }
    }

    static func respond(
        to request: DemoRequest, configuration: Configuration, via: String, tally: FrontendState
    ) -> DemoResponse {
        guard request.method == .GET || request.method == .HEAD else {
            return .json(DemoJSON.object([("error", DemoJSON.string("only GET is served"))]), status: .methodNotAllowed)
        }
        switch request.path {
        case "/", "/index.html":
            return DemoResponse(status: .ok, contentType: "text/html; charset=utf-8", body: FrontendPage.html)
        case "/api/state":
            return .json(tally.state.withLock { $0.json(upstream: configuration.upstream, via: via) })
        case "/healthz", "/readyz":
            return .json(DemoJSON.object([("status", DemoJSON.string("OK"))]))
        default:
            return .json(DemoJSON.object([("error", DemoJSON.string("not found: \(request.path)"))]), status: .notFound)
        }
    }

    /// Calls the upstream every `interval` (measured start to start) until cancelled.
    static func callUpstream(configuration: Configuration, logger: Logger, tally: FrontendState) async {
        let clock = ContinuousClock()
        let started = clock.now
        var next = started
        var failing = false
        while !Task.isCancelled {
            let callStart = clock.now
            let outcome: Result<DemoHTTPClient.Response, any Error>
            do {
                outcome = .success(
                    try await DemoHTTPClient.get(
                        configuration.upstream, via: configuration.proxy, timeout: configuration.timeout))
            } catch {
                if Task.isCancelled { return }
                outcome = .failure(error)
            }
            let end = clock.now
            let answer = tally.state.withLock { tally in
                let answer = Self.answer(
                    outcome, sequence: tally.nextSequence, elapsed: DemoTime.seconds(end - started),
                    latency: DemoTime.seconds(end - callStart) * 1000)
                tally.record(answer)
                return answer
            }
            // Log changes between working and failing, not every call.
            if answer.isError != failing {
                failing = answer.isError
                if failing {
                    logger.warning("upstream calls failing", metadata: ["upstream": "\(configuration.upstream)", "error": "\(answer.error ?? "")"])
                } else {
                    logger.info("upstream calls succeeding", metadata: ["upstream": "\(configuration.upstream)"])
                }
            }
            next += configuration.interval
            if next < clock.now { next = clock.now }
            do {
                try await Task.sleep(until: next, clock: clock)
            } catch {
                return
            }
        }
    }

    /// Turns one call's outcome into a tally entry: podinfo's answer, or an error named by the
    /// proxy's `starling-error` header, the status, or the connection failure.
    static func answer(
        _ outcome: Result<DemoHTTPClient.Response, any Error>, sequence: Int, elapsed: Double, latency: Double
    ) -> FrontendTally.Answer {
        var answer = FrontendTally.Answer(
            sequence: sequence, elapsed: elapsed, cluster: FrontendTally.errorCluster, instance: "",
            latencyMilliseconds: latency)
        switch outcome {
        case .failure(let error):
            answer.instance = "unreachable"
            answer.error = "\(error)"
        case .success(let response):
            answer.status = response.status
            if response.status == 200, let podinfo = PodinfoAnswer.parse(response.body) {
                answer.cluster = podinfo.cluster ?? "unknown"
                answer.instance = podinfo.hostname
                answer.message = podinfo.message
                answer.client = podinfo.client
            } else if let reason = response.headers["starling-error"] {
                answer.instance = reason
                answer.error = "\(response.status) \(reason)"
            } else if response.status == 200 {
                answer.instance = "bad answer"
                answer.error = "200 with a body that is not podinfo's JSON"
            } else {
                answer.instance = "HTTP \(response.status)"
                answer.error = "HTTP \(response.status)"
            }
        }
        return answer
    }
}

/// The tally shared by the page handler and the calling loop.
final class FrontendState: Sendable {
    let state: Mutex<FrontendTally>
    init(_ tally: FrontendTally) { state = Mutex(tally) }
}

/// Durations as fractional seconds.
enum DemoTime {
    static func seconds(_ duration: Duration) -> Double {
        let (s, attoseconds) = duration.components
        return Double(s) + Double(attoseconds) / 1e18
    }
}
