import ArgumentParser
import Foundation
import Logging
import StarlingDemoApps

/// `starling demo-app podinfo|frontend`: the walkthrough's applications. Defaults come from the
/// environment `starling run` gives its command (STARLING_WORKLOAD_ADDRESS, STARLING_CLUSTER,
/// PORT, http_proxy), so `starling run ... -- starling demo-app podinfo` needs no flags.
struct DemoAppCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo-app", abstract: "Run a demo application (podinfo, or the frontend that calls it through the mesh).")

    @Argument(help: "podinfo or frontend.")
    var app: String

    @Option(help: "Address to listen on (default: $STARLING_WORKLOAD_ADDRESS, else 127.0.0.1).")
    var host: String?

    @Option(help: "Port to listen on (default: $PORT, else 9898 for podinfo and 8080 for the frontend).")
    var port: Int?

    @Option(help: "podinfo: the message it answers with.")
    var message: String = "greetings from podinfo"

    @Option(help: "podinfo: the cluster it names (default: $STARLING_CLUSTER).")
    var cluster: String?

    @Option(help: "frontend: the URL it calls every second.")
    var upstream: String = "http://podinfo.test:9898/"

    @Option(help: "frontend: the mesh's outbound proxy (default: $http_proxy).")
    var proxy: String?

    func validate() throws {
        guard DemoApp(rawValue: app) != nil else { throw ValidationError("unknown demo app \"\(app)\": podinfo or frontend") }
        if let port, !(1...65535).contains(port) { throw ValidationError("--port \(port) is not a port") }
    }

    func run() async throws {
        Observability.bootstrapLogging(level: .notice)
        let env = ProcessInfo.processInfo.environment
        let host = host ?? env["STARLING_WORKLOAD_ADDRESS"] ?? "127.0.0.1"
        let logger = Logger(label: "starling.demo-app")
        switch DemoApp(rawValue: app) {
        case .podinfo:
            let instance = "\(env["STARLING_SERVICE"] ?? "podinfo")@\(host)"
            let podinfo = PodinfoApp(
                configuration: .init(
                    host: host, port: port ?? env["PORT"].flatMap(Int.init) ?? 9898, message: message,
                    cluster: cluster ?? env["STARLING_CLUSTER"] ?? "local", instance: instance),
                logger: logger)
            try await SignalScope.runUntilSignalled(logger: logger) {
                try await podinfo.run { port in print("podinfo listening on http://\(host):\(port)/"); fflush(nil) }
            }
        case .frontend:
            let proxyURL = proxy ?? env["http_proxy"] ?? env["HTTP_PROXY"]
            let proxyAddress = try proxyURL.map { url in
                guard let a = DemoHTTPClient.Address(proxyURL: url) else {
                    throw CLIError("proxy \"\(url)\" is not http://HOST:PORT")
                }
                return a
            }
            let frontend = FrontendApp(
                configuration: .init(
                    host: host, port: port ?? env["PORT"].flatMap(Int.init) ?? 8080, upstream: upstream, proxy: proxyAddress),
                logger: logger)
            try await SignalScope.runUntilSignalled(logger: logger) {
                try await frontend.run { port in print("frontend listening on http://\(host):\(port)/"); fflush(nil) }
            }
        case nil:
            return
        }
    }
}
