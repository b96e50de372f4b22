import ArgumentParser
import Foundation
import Hummingbird
import StarlingAPI
import StarlingCore
import SwiftProtobuf

/// `starling dashboard`: a web UI of every cluster in the config (Hummingbird, plain HTML, CSS
/// and JavaScript served from the binary): linked clusters and their gateways with a sparkline
/// of probe latency, each TrafficSplit's live shares per backend across clusters, services with
/// golden metrics, and the edges between workloads. The page polls `/api/overview`, which asks
/// every cluster's controller and its Prometheus (`--prometheus CLUSTER=URL`, else the one `viz
/// install` started beside it); its tap view
/// polls `/api/tap`, live requests tapped from the cluster's proxies (``DashboardTaps``).
struct DashboardCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dashboard",
        abstract: "Serve a web dashboard of every cluster in the config (gateways, splits, services, edges, tap).")

    @Option(help: "The address to listen on.")
    var address = "127.0.0.1"

    @Option(help: "The port to listen on.")
    var port = 50750

    @Option(name: [.customShort("t"), .customLong("time-window")], help: "The window rates are taken over.")
    var timeWindow = "1m"

    @Option(help: "The config file whose contexts are shown (default: $STARLING_CONFIG, else $STARLING_HOME/config).")
    var config: String?

    @Option(
        name: .customLong("prometheus"),
        help: ArgumentHelp(
            "A cluster's Prometheus, CLUSTER=http://HOST:PORT (repeatable).",
            discussion: "For a cluster whose Prometheus `viz install` did not start on this machine: one added with `config add-cluster`, or on other hosts. Give it the output of `starling viz prometheus-config`."))
    var prometheusURLs: [String] = []

    /// `--prometheus` by cluster name.
    func prometheusByCluster() throws -> [String: String] {
        var urls: [String: String] = [:]
        for entry in prometheusURLs {
            let parts = entry.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2, ResourceNames.dns1123LabelProblem(parts[0]) == nil, parts[1].hasPrefix("http://") else {
                throw ValidationError("--prometheus takes CLUSTER=http://HOST:PORT, got \(entry)")
            }
            guard urls.updateValue(parts[1], forKey: parts[0]) == nil else {
                throw ValidationError("--prometheus names cluster \(parts[0]) twice")
            }
        }
        return urls
    }

    func validate() throws {
        guard (1...65535).contains(port) else { throw ValidationError("--port must be 1–65535, got \(port)") }
        _ = try prometheusByCluster()
        guard VizQueries.isDuration(timeWindow) else {
            throw ValidationError("-t must be a Prometheus duration such as 30s, 1m or 1h, got \(timeWindow)")
        }
    }

    func run() async throws {
        let path = StarlingPaths.configPath(flag: config, environment: ProcessInfo.processInfo.environment)
        let file = try loadContextFile(path: path)
        let contexts = try file.contexts.map { try ContextOptions.resolve($0, path: path) }
        guard !contexts.isEmpty else {
            throw CLIError("\(path) has no contexts to show", hint: "create a cluster with `starling cluster create NAME`")
        }
        let prometheus = try prometheusByCluster()
        if let unknown = prometheus.keys.sorted().first(where: { name in !contexts.contains { $0.clusterName == name } }) {
            throw CLIError(
                "--prometheus names cluster \(unknown), which \(path) has no context for",
                hint: "the clusters it has: \(contexts.map(\.clusterName).joined(separator: ", "))")
        }
        let overview = DashboardOverview(contexts: contexts, window: timeWindow, prometheus: prometheus)
        let taps = DashboardTaps(contexts: contexts)
        let router = Router()
        router.get("/") { _, _ in
            Response(
                status: .ok, headers: [.contentType: "text/html; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(string: DashboardPage.html)))
        }
        router.get("/api/overview") { _, _ in
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            let body = try encoder.encode(await overview.snapshot())
            return Response(
                status: .ok, headers: [.contentType: "application/json", .cacheControl: "no-store"],
                body: .init(byteBuffer: ByteBuffer(bytes: body)))
        }
        router.get("/api/tap") { request, _ in
            let cluster = request.uri.queryParameters.get("cluster") ?? ""
            let after = request.uri.queryParameters.get("after").flatMap(Int.init) ?? 0
            guard let reply = await taps.poll(cluster: cluster, after: after) else {
                return Response(
                    status: .notFound, headers: [.contentType: "text/plain"],
                    body: .init(byteBuffer: ByteBuffer(string: "no cluster named '\(cluster)' in the config\n")))
            }
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            return Response(
                status: .ok, headers: [.contentType: "application/json", .cacheControl: "no-store"],
                body: .init(byteBuffer: ByteBuffer(bytes: try encoder.encode(reply))))
        }
        let app = Application(
            router: router, configuration: .init(address: .hostname(address, port: port), serverName: "starling-dashboard"),
            onServerRunning: { channel in
                let bound = NetworkAddress.joinHostPort(address, channel.localAddress?.port ?? port)
                print("Starling dashboard of \(contexts.map(\.clusterName).joined(separator: ", ")): http://\(bound)/")
                print("Ctrl-C stops it.")
                // Written to a file (`starling demo` waits for the URL in its log), stdout is
                // block-buffered: flush now, not at exit.
                fflush(nil)
            })
        let sweeper = Task { await taps.sweep() }
        defer { sweeper.cancel() }
        try await app.runService()
    }
}

/// What the dashboard shows, gathered from every cluster on each request; probe latencies are
/// kept between requests for the sparklines.
actor DashboardOverview {
    struct Gateway: Codable {
        var cluster: String
        var alive: Bool
        var latencyP50Ms: Double?
        var services: Int
        /// The last probe latencies seen, oldest first (for the sparkline).
        var history: [Double]
    }

    struct Service: Codable {
        var namespace: String
        var name: String
        var figures: VizQueries.Figures
    }

    struct Workload: Codable {
        var namespace: String
        var name: String
        var figures: VizQueries.Figures
    }

    struct Split: Codable {
        var namespace: String
        var name: String
        var backends: [VizQueries.SplitBackend]
    }

    struct Cluster: Codable {
        var name: String
        var error: String?
        var prometheus: String?
        var metricsError: String?
        var gateways: [Gateway] = []
        var splits: [Split] = []
        var services: [Service] = []
        var workloads: [Workload] = []
        var edges: [VizQueries.Edge] = []
    }

    struct Snapshot: Codable {
        var window: String
        var clusters: [Cluster]
    }

    private let contexts: [ResolvedContext]
    private let window: String
    /// `--prometheus`: a cluster's Prometheus, where `viz install` did not start one here.
    private let prometheus: [String: String]
    private var history: [String: [Double]] = [:]
    private static let historyLength = 60

    init(contexts: [ResolvedContext], window: String, prometheus: [String: String] = [:]) {
        self.contexts = contexts
        self.window = window
        self.prometheus = prometheus
    }

    /// Every cluster at once (one that does not answer takes its 3 s timeout beside the others),
    /// in the config's order; the sparklines' history is kept here, on the actor.
    func snapshot() async -> Snapshot {
        let window = window
        let prometheus = prometheus
        var clusters = await withTaskGroup(of: (Int, Cluster).self) { group in
            for (i, context) in contexts.enumerated() {
                group.addTask { (i, await Self.cluster(context, window: window, prometheus: prometheus[context.clusterName])) }
            }
            var all: [(Int, Cluster)] = []
            for await result in group { all.append(result) }
            return all.sorted { $0.0 < $1.0 }.map(\.1)
        }
        for c in clusters.indices {
            for g in clusters[c].gateways.indices {
                let gateway = clusters[c].gateways[g]
                let key = "\(clusters[c].name)→\(gateway.cluster)"
                if let p50 = gateway.latencyP50Ms { history[key, default: []].append(p50) }
                history[key] = Array((history[key] ?? []).suffix(Self.historyLength))
                clusters[c].gateways[g].history = history[key] ?? []
            }
        }
        return Snapshot(window: window, clusters: clusters)
    }

    /// One cluster's view (its gateways without the sparklines' history, which the actor keeps).
    private static func cluster(_ context: ResolvedContext, window: String, prometheus configured: String?) async -> Cluster {
        var cluster = Cluster(name: context.clusterName)
        let splits: [Resource]
        do {
            let (gateways, listed) = try await ControllerClient.with(context, timeout: .seconds(3)) { client in
                let gateways = try await client.mesh.gateways(.init()).gateways
                let splits = try await client.resources.list(.with { $0.kind = "TrafficSplit"; $0.allNamespaces = true })
                    .resourcesJson.map { try ResourceDecoder.decodeStored($0) }
                return (gateways, splits)
            }
            splits = listed
            for g in gateways {
                cluster.gateways.append(
                    Gateway(
                        cluster: g.cluster, alive: g.alive, latencyP50Ms: g.latencyP50Ms < 0 ? nil : g.latencyP50Ms,
                        services: Int(g.numServices), history: []))
            }
        } catch {
            cluster.error = "the controller does not answer: \(error)"
            return cluster
        }
        let directory = ClusterCommand.registry().directory(of: context.clusterName)
        guard let prometheus = configured ?? VizPrometheus.Local(clusterDirectory: directory).url else {
            cluster.metricsError =
                "no Prometheus for \(context.clusterName): run `starling viz install` with its context, or pass `--prometheus \(context.clusterName)=http://HOST:PORT`"
            cluster.splits = splits.map { Split(namespace: $0.metadata.namespace ?? "default", name: $0.metadata.name, backends: []) }
            return cluster
        }
        cluster.prometheus = prometheus
        do {
            for split in splits {
                cluster.splits.append(
                    Split(
                        namespace: split.metadata.namespace ?? "default", name: split.metadata.name,
                        backends: try await VizQueries.backends(of: split, window: window, prometheus: prometheus)))
            }
            let services = try await VizQueries.figures(
                selector: "direction=\"outbound\",dst_service=~\".+\\\\.svc\\\\..+\"", by: "dst_service", window: window,
                prometheus: prometheus)
            cluster.services = services.map { fqdn, figures in
                let labels = fqdn.split(separator: ".")
                return Service(
                    namespace: labels.count > 1 ? String(labels[1]) : "-", name: OutboundName.short(fqdn), figures: figures)
            }.sorted { ($0.namespace, $0.name) < ($1.namespace, $1.name) }
            // Workloads as they serve (inbound), as `viz stat workload` measures them.
            cluster.workloads = try await VizQueries.figures(
                selector: "direction=\"inbound\"", by: ["namespace", "workload"], window: window, prometheus: prometheus
            ).map { key, figures in Workload(namespace: key[0], name: key[1], figures: figures) }
                .sorted { ($0.namespace, $0.name) < ($1.namespace, $1.name) }
            cluster.edges = try await VizQueries.edges(selector: "direction=\"outbound\"", window: window, prometheus: prometheus)
        } catch {
            cluster.metricsError = "\(error)"
        }
        return cluster
    }
}
