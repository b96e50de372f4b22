import ArgumentParser
import Foundation
import StarlingCore

/// `starling viz install|uninstall|prometheus-config|stat|edges|tap|top`: the mesh's golden
/// metrics, read from a real Prometheus that finds every proxy through the controller (Linkerd's
/// viz), and live requests tapped from the proxies themselves.
struct VizCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "viz", abstract: "Golden metrics of the mesh, from Prometheus.",
        subcommands: [Install.self, Uninstall.self, PrometheusConfig.self, Stat.self, Edges.self, Tap.self, Top.self])

    /// The local cluster behind a context, for the commands that manage its Prometheus.
    static func localCluster(_ resolved: ResolvedContext) throws -> (name: String, directory: String) {
        let registry = ClusterCommand.registry()
        let directory = registry.directory(of: resolved.clusterName)
        guard FileManager.default.fileExists(atPath: directory + "/cluster.yaml") else {
            throw CLIError(
                "cluster \(resolved.clusterName) is not a local cluster (no \(directory)); viz install runs Prometheus for local clusters only",
                hint: "give your own Prometheus the output of `starling viz prometheus-config`, and pass its URL to `viz stat --prometheus`")
        }
        return (resolved.clusterName, directory)
    }

    static func adminServer(_ resolved: ResolvedContext) throws -> String {
        guard let admin = resolved.adminServer else {
            throw CLIError(
                "context \(resolved.name) names no admin-server, where the controller serves Prometheus discovery",
                hint: "re-export the context with `starling cluster credentials \(resolved.clusterName) --export-file FILE`")
        }
        return admin
    }

    struct PrometheusConfig: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "prometheus-config",
            abstract: "Print a prometheus.yml that scrapes every proxy and the controller of this cluster.")

        @OptionGroup var context: ContextOptions
        @OptionGroup var scrape: ScrapeOptions

        func run() async throws {
            let resolved = try context.resolve()
            print(
                VizPrometheus.configuration(
                    cluster: resolved.clusterName, adminServer: try VizCommand.adminServer(resolved),
                    scrapeInterval: scrape.scrapeInterval),
                terminator: "")
        }
    }

    struct Install: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Start Prometheus (Debian's package) beside a local cluster's controller.")

        @OptionGroup var context: ContextOptions
        @OptionGroup var scrape: ScrapeOptions

        func run() async throws {
            let resolved = try context.resolve()
            let cluster = try VizCommand.localCluster(resolved)
            let admin = try VizCommand.adminServer(resolved)
            let local = VizPrometheus.Local(clusterDirectory: cluster.directory)
            if let url = local.url {
                print("✓ Prometheus of cluster \(cluster.name) already runs at \(url)")
                return
            }
            let executable = try VizPrometheus.executable()
            guard let host = NetworkAddress.splitHostPort(admin)?.host else {
                throw CLIError("the admin-server \(admin) of context \(resolved.name) is not HOST:PORT")
            }
            let listen = NetworkAddress.joinHostPort(host, VizPrometheus.localPort)
            try FileManager.default.createDirectory(atPath: local.dataPath, withIntermediateDirectories: true)
            try VizPrometheus.configuration(cluster: cluster.name, adminServer: admin, scrapeInterval: scrape.scrapeInterval)
                .write(toFile: local.configPath, atomically: true, encoding: .utf8)
            let pid = try ClusterProcess.spawnDetached(
                executable: executable,
                arguments: [
                    "--config.file=\(local.configPath)", "--storage.tsdb.path=\(local.dataPath)",
                    "--storage.tsdb.retention.time=6h", "--web.listen-address=\(listen)",
                ],
                logPath: local.logPath)
            try "\(pid)\n".write(toFile: local.pidPath, atomically: true, encoding: .utf8)
            let url = "http://\(listen)"
            try "\(url)\n".write(toFile: local.urlPath, atomically: true, encoding: .utf8)
            print("starting Prometheus for cluster \(cluster.name) (pid \(pid)) ...")
            let deadline = ContinuousClock.now + .seconds(30)
            while ContinuousClock.now < deadline {
                if ClusterProcess.httpStatus(host: host, port: VizPrometheus.localPort, path: "/-/ready", timeout: .seconds(1)) == 200 {
                    print("✓ Prometheus of cluster \(cluster.name) at \(url), scraping the targets at http://\(admin)\(VizPrometheus.targetsPath)")
                    return
                }
                guard ClusterProcess.isAlive(pid) else { break }
                try await Task.sleep(for: .milliseconds(300))
            }
            let tail = ClusterProcess.tail(of: local.logPath, lines: 5).joined(separator: "\n")
            await local.remove()
            throw CLIError("Prometheus did not become ready within 30 s; its log ended with:\n\(tail)",
                           hint: "is \(listen) free? (`ss -ltnp | grep \(VizPrometheus.localPort)`)")
        }
    }

    struct Uninstall: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Stop the Prometheus that `viz install` started.")

        @OptionGroup var context: ContextOptions

        func run() async throws {
            let resolved = try context.resolve()
            let cluster = try VizCommand.localCluster(resolved)
            let local = VizPrometheus.Local(clusterDirectory: cluster.directory)
            if await local.remove() {
                print("✓ Prometheus of cluster \(cluster.name) stopped")
            } else {
                print("Prometheus of cluster \(cluster.name) was not running")
            }
        }
    }
}

/// How often the Prometheus `viz` configures scrapes and refreshes its targets.
struct ScrapeOptions: ParsableArguments {
    @Option(help: "How often Prometheus scrapes and refreshes its targets (a Prometheus duration).")
    var scrapeInterval = "5s"

    func validate() throws {
        guard VizQueries.isDuration(scrapeInterval) else {
            throw ValidationError("--scrape-interval must be a Prometheus duration such as 5s or 1m, got \(scrapeInterval)")
        }
    }
}
