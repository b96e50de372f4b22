import ArgumentParser
import Foundation
import StarlingAPI
import StarlingCore
import SwiftProtobuf

/// The PromQL behind `viz stat`: per group, the request rate, the share that did not fail
/// (no 5xx, no gRPC status but OK), latency percentiles from the histogram, and open TCP connections.
enum VizQueries {
    static let requests = "starling_proxy_requests_total"
    static let latency = "starling_proxy_response_latency_seconds_bucket"
    static let tcpOpen = "starling_proxy_tcp_open_total"
    static let tcpClose = "starling_proxy_tcp_close_total"

    /// The matchers of a request that succeeded: no 5xx and, for a gRPC call, status OK (its
    /// failures answer HTTP 200; other requests have no `grpc_status`, which matches "").
    static let successful = #"status_code!~"5..",grpc_status=~"|0""#

    /// True for a Prometheus duration: digits and a unit (`30s`, `1m`, `2h`).
    static func isDuration(_ text: String) -> Bool {
        text.range(of: #"^[0-9]+(ms|s|m|h|d)$"#, options: .regularExpression) != nil
    }

    /// A name as a PromQL regex string literal's content, its dots escaped.
    static func literal(_ name: String) -> String { name.replacingOccurrences(of: ".", with: "\\\\.") }

    /// The seconds of a Prometheus duration (`isDuration`), nil for anything else.
    static func seconds(of duration: String) -> Double? {
        guard isDuration(duration) else { return nil }
        // Go's units less `d`, which Prometheus adds.
        if duration.hasSuffix("d") { return Double(duration.dropLast()).map { $0 * 86400 } }
        return try? GoDuration.seconds(duration)
    }

    /// The figures of one group.
    struct Figures: Codable, Equatable {
        var rps: Double = 0
        /// The requests over the window: the rate times the window, which is what PromQL's
        /// `increase` gives (a series that appeared inside the window loses what it counted
        /// before its first scrape).
        var requests: Int?
        /// Of those, the ones that failed (5xx, or a gRPC status other than OK).
        var failures: Int?
        var success: Double?
        var latencyP50Ms: Double?
        var latencyP95Ms: Double?
        var latencyP99Ms: Double?
        var tcpConnections: Int?
    }

    /// Figures of the requests matching `selector` over `window`, by the label `key`.
    static func figures(selector: String, by key: String, window: String, prometheus: String) async throws -> [String: Figures] {
        let grouped = try await figures(selector: selector, by: [key], window: window, prometheus: prometheus)
        return Dictionary(grouped.map { ($0.key[0], $0.value) }, uniquingKeysWith: { a, _ in a })
    }

    /// Figures of the requests matching `selector` over `window`, by the labels `keys` (their
    /// values in that order), from the counter `requests` and the histogram `latency`.
    static func figures(
        selector: String, by keys: [String], window: String, prometheus: String,
        requests: String = requests, latency: String = latency
    ) async throws -> [[String]: Figures] {
        let key = keys.joined(separator: ", ")
        func matching(_ more: String) -> String { [selector, more].filter { !$0.isEmpty }.joined(separator: ",") }
        func group(_ sample: VizPrometheus.Sample) -> [String] { keys.map { sample.labels[$0] ?? "" } }
        let all = "sum by (\(key)) (rate(\(requests){\(selector)}[\(window)]))"
        // Every query at one instant, so the figures of a group agree (requests and failures).
        let now = Date().timeIntervalSince1970
        async let total = VizPrometheus.query(all, at: prometheus, time: now)
        // One expression, so both rates come from the same evaluation (a group with no success
        // at all has no series on the left: `or` gives it 0).
        async let success = VizPrometheus.query(
            "(sum by (\(key)) (rate(\(requests){\(matching(successful))}[\(window)])) or \(all) * 0) / \(all)",
            at: prometheus, time: now)
        func quantile(_ q: String) async throws -> [VizPrometheus.Sample] {
            try await VizPrometheus.query(
                "histogram_quantile(\(q), sum by (\(key), le) (rate(\(latency){\(selector)}[\(window)])))", at: prometheus, time: now)
        }
        async let p50 = quantile("0.5")
        async let p95 = quantile("0.95")
        async let p99 = quantile("0.99")
        let windowSeconds = seconds(of: window)
        var result: [[String]: Figures] = [:]
        for sample in try await total {
            result[group(sample)] = Figures(rps: sample.value, requests: windowSeconds.map { Int((sample.value * $0).rounded()) })
        }
        for sample in try await success where sample.value.isFinite {
            var figures = result[group(sample), default: Figures()]
            figures.success = sample.value
            if let windowSeconds {
                figures.failures = Int((figures.rps * windowSeconds * (1 - sample.value)).rounded())
            }
            result[group(sample)] = figures
        }
        for (samples, path) in [
            (try await p50, \Figures.latencyP50Ms), (try await p95, \Figures.latencyP95Ms), (try await p99, \Figures.latencyP99Ms),
        ] {
            for sample in samples where sample.value.isFinite {
                result[group(sample), default: Figures()][keyPath: path] = sample.value * 1000
            }
        }
        return result
    }

    /// One backend of a TrafficSplit as the callers' proxies measured it.
    struct SplitBackend: Codable {
        var apex: String
        var leaf: String
        /// As the TrafficSplit wrote it (`weight: 50`).
        var weight: Double
        /// Its part of the split's requests over the window; nil without traffic.
        var share: Double?
        var figures: Figures
    }

    /// Each backend of `split` (a TrafficSplit resource): weight, measured share and figures.
    /// `matchers`: more label matchers (`,name="value"`…) for the callers' series.
    static func backends(of split: Resource, window: String, prometheus: String, matchers: String = "") async throws -> [SplitBackend] {
        let spec = try TrafficSplitSpec(split)
        let namespace = split.metadata.namespace ?? "default"
        let figures = try await figures(
            selector: "direction=\"outbound\",service=~\"\(literal(spec.service))\\\\.\(literal(namespace))\\\\.svc\\\\..+\"" + matchers,
            by: "dst_service", window: window, prometheus: prometheus)
        let total = figures.values.reduce(0) { $0 + $1.rps }
        return spec.backends.map { backend in
            let measured = figures.first { OutboundName.short($0.key) == backend.service }?.value ?? .init()
            return SplitBackend(
                apex: spec.service, leaf: backend.service, weight: Double(backend.weight) / 1000,
                share: total > 0 ? measured.rps / total : nil, figures: measured)
        }
    }

    /// A caller and a callee as the caller's proxy saw them.
    struct Edge: Codable {
        var source: String
        var sourceIdentity: String
        var destination: String
        var destinationIdentity: String
        var secured: Bool
        var rps: Double
    }

    /// The edges of the outbound requests matching `selector` over `window`: source workload and
    /// identity (discovery's labels), the destination service and the identity its proxy proved.
    static func edges(selector: String, window: String, prometheus: String) async throws -> [Edge] {
        let samples = try await VizPrometheus.query(
            "sum by (namespace, workload, identity, dst_service, peer_identity, tls) "
                + "(rate(\(requests){\(selector)}[\(window)])) > 0",
            at: prometheus)
        return samples.map { s in
            Edge(
                source: s.labels["workload"] ?? "-", sourceIdentity: s.labels["identity"] ?? "-",
                destination: s.labels["dst_service"].map(OutboundName.short) ?? "-",
                destinationIdentity: s.labels["peer_identity"].flatMap { $0.isEmpty ? nil : $0 } ?? "-",
                secured: s.labels["tls"] == "true", rps: s.value)
        }.sorted { ($0.source, $0.destination, $0.destinationIdentity) < ($1.source, $1.destination, $1.destinationIdentity) }
    }

    /// Open TCP connections of the inbound proxies matching `selector`, by the label `key`.
    static func connections(selector: String, by key: String, prometheus: String) async throws -> [String: Int] {
        // A proxy that has closed nothing yet has no close series: count it as 0.
        let samples = try await VizPrometheus.query(
            "sum by (\(key)) (\(tcpOpen){\(selector)}) - sum by (\(key)) (\(tcpClose){\(selector)} or \(tcpOpen){\(selector)} * 0)",
            at: prometheus)
        return Dictionary(samples.map { ($0.labels[key] ?? "", max(0, Int($0.value.rounded()))) }, uniquingKeysWith: +)
    }
}

extension VizCommand {
    /// `starling viz stat svc|workload|route|trafficsplit|gateway[/NAME]`.
    struct Stat: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Success rate, request rate, latency and connections, from Prometheus.",
            discussion: """
                svc: the requests callers sent to each service (a mirror such as podinfo-workload2
                included, as its local callers see it); workload: the requests each workload's
                proxy served; route: the requests each HTTPRoute matched, by route and service, as
                callers see them; trafficsplit: each backend's share, success and latency; gateway: the
                requests this cluster's gateway forwarded, per exported service and calling cluster
                (all namespaces).
                """)

        @Argument(help: "svc, workload, route, trafficsplit or gateway, optionally with /NAME (svc/podinfo).")
        var resource: String

        @OptionGroup var query: VizQueryOptions

        @Option(help: "Only requests from this source: workload/NAME (NAME-SUFFIX or NAME as `starling run` named it), or cluster/NAME for gateway.")
        var from: String?

        @Option(help: "The source workload's namespace (default: -n).")
        var fromNamespace: String?

        @Option(help: "Only requests to this service: svc/NAME (in -n).")
        var to: String?

        enum Kind: String, CaseIterable {
            case svc, workload, route, trafficsplit, gateway
        }

        /// `--from`: a source workload, or (gateway) a calling cluster.
        enum Source {
            case workload(String)
            case cluster(String)
        }

        var source: Source? {
            get throws {
                guard let from else { return nil }
                let parts = from.split(separator: "/", maxSplits: 1).map(String.init)
                guard parts.count == 2, ResourceNames.dns1123LabelProblem(parts[1]) == nil else {
                    throw ValidationError("--from takes workload/NAME (or cluster/NAME for gateway), got \(from)")
                }
                switch parts[0].lowercased() {
                case "workload", "workloads", "wl", "deploy", "deployment": return .workload(parts[1])
                case "cluster": return .cluster(parts[1])
                default: throw ValidationError("--from takes workload/NAME (or cluster/NAME for gateway), got \(from)")
                }
            }
        }

        var destination: String? {
            get throws {
                guard let to else { return nil }
                let parts = to.split(separator: "/", maxSplits: 1).map(String.init)
                guard parts.count == 2, ["svc", "service", "services"].contains(parts[0].lowercased()),
                    ResourceNames.dns1123LabelProblem(parts[1]) == nil
                else { throw ValidationError("--to takes svc/NAME, got \(to)") }
                return parts[1]
            }
        }

        static let aliases: [String: Kind] = [
            "svc": .svc, "service": .svc, "services": .svc, "workload": .workload, "workloads": .workload, "wl": .workload,
            "trafficsplit": .trafficsplit, "trafficsplits": .trafficsplit, "ts": .trafficsplit,
            "gateway": .gateway, "gateways": .gateway, "gw": .gateway,
            "route": .route, "routes": .route, "httproute": .route, "httproutes": .route,
        ]

        var target: (kind: Kind, name: String?) {
            get throws {
                let parts = resource.split(separator: "/", maxSplits: 1).map(String.init)
                guard let kind = Self.aliases[parts.first?.lowercased() ?? ""] else {
                    throw ValidationError("cannot stat \(resource): the kinds are svc, workload, route, trafficsplit and gateway (svc/NAME for one)")
                }
                if parts.count == 2, ResourceNames.dns1123LabelProblem(parts[1]) != nil {
                    throw ValidationError("\(parts[1]) is not a valid name (lowercase letters, digits and '-')")
                }
                return (kind, parts.count == 2 ? parts[1] : nil)
            }
        }

        func validate() throws {
            let kind = try target.kind
            switch (try source, kind) {
            case (.cluster, let k) where k != .gateway:
                throw ValidationError("--from cluster/NAME is for `viz stat gateway`; use --from workload/NAME")
            case (.workload, .gateway):
                throw ValidationError("the gateway knows its callers by cluster: use --from cluster/NAME")
            default: break
            }
            _ = try destination
            if let fromNamespace, let problem = ResourceNames.dns1123LabelProblem(fromNamespace) {
                throw ValidationError("--from-namespace \(fromNamespace): \(problem)")
            }
        }

        /// Matchers for the callers' (outbound) series: the source workload's own target labels.
        private func outboundMatchers() throws -> String {
            var m = ""
            if case .workload(let name)? = try source {
                m += ",namespace=\"\(fromNamespace ?? query.namespace)\",workload=~\"\(VizQueries.literal(name))(-[0-9a-f]{5})?\""
            }
            if let service = try destination {
                m += ",dst_service=~\"\(VizQueries.literal(service))\\\\.\(VizQueries.literal(query.namespace))\\\\.svc\\\\..+\""
            }
            return m
        }

        /// Matchers for the served (inbound) series: the caller's identity (looked up from its
        /// Workload) and the authority it was sent to.
        private func inboundMatchers(_ resolved: ResolvedContext) async throws -> String {
            var m = ""
            if case .workload(let name)? = try source {
                let namespace = fromNamespace ?? query.namespace
                let workloads = try await ControllerClient.with(resolved) { client in
                    try await client.resources.list(.with { $0.kind = "Workload"; $0.namespace = namespace })
                        .resourcesJson.map { try ResourceDecoder.decodeStored($0) }
                }
                guard let workload = workloads.first(where: { $0.metadata.name == name })
                    ?? workloads.first(where: { TapSession.names($0.metadata.name, name) }),
                    let identity = try WorkloadSpec(workload).identity
                else {
                    throw CLIError(
                        "no workload \(name) with a mesh identity in namespace \(namespace)",
                        hint: "see `starling get workloads -n \(namespace)`")
                }
                m += ",client_identity=\"\(identity)\""
            }
            if let service = try destination {
                m += ",authority=~\"\(VizQueries.literal(service))(\\\\.\(VizQueries.literal(query.namespace))(\\\\..*)?)?(:[0-9]+)?\""
            }
            return m
        }

        struct Row: Codable {
            var name: String
            /// A split's apex service.
            var apex: String?
            var leaf: String?
            /// The calling cluster, for gateway rows.
            var cluster: String?
            /// The service a route belongs to, for route rows.
            var service: String?
            /// As the TrafficSplit wrote it (`weight: 50`).
            var weight: Double?
            var share: Double?
            var figures: VizQueries.Figures
        }

        func run() async throws {
            let (resolved, base) = try query.resolve()
            let (kind, name) = try target
            let ns = VizQueries.literal(query.namespace)
            let outbound = try outboundMatchers()
            var rows: [Row] = []
            switch kind {
            case .svc:
                // As callers see it: every outbound request whose destination is the service.
                let service = name.map(VizQueries.literal) ?? "[^.]+"
                let figures = try await VizQueries.figures(
                    selector: "direction=\"outbound\",dst_service=~\"\(service)\\\\.\(ns)\\\\.svc\\\\..+\"" + outbound, by: "dst_service",
                    window: query.timeWindow, prometheus: base)
                let connections = try await VizQueries.connections(
                    selector: "direction=\"inbound\",namespace=\"\(query.namespace)\"", by: "app", prometheus: base)
                for (fqdn, f) in figures {
                    let short = OutboundName.short(fqdn)
                    var f = f
                    f.tcpConnections = connections[short]
                    rows.append(Row(name: short, figures: f))
                }
                if let name, rows.isEmpty { rows.append(Row(name: name, figures: .init())) }
            case .workload:
                let selector = "direction=\"inbound\",namespace=\"\(query.namespace)\"" + (name.map { ",workload=\"\($0)\"" } ?? "")
                let figures = try await VizQueries.figures(
                    selector: selector + (try await inboundMatchers(resolved)), by: "workload", window: query.timeWindow, prometheus: base)
                let connections = try await VizQueries.connections(selector: selector, by: "workload", prometheus: base)
                for (workload, f) in figures {
                    var f = f
                    f.tcpConnections = connections[workload]
                    rows.append(Row(name: workload, figures: f))
                }
                if let name, rows.isEmpty { rows.append(Row(name: name, figures: .init())) }
            case .route:
                // As callers see it: the outbound requests each HTTPRoute matched, by route and
                // the service it is attached to.
                let route = name.map { ",route=\"\($0)\"" } ?? ",route=~\".+\""
                let figures = try await VizQueries.figures(
                    selector: "direction=\"outbound\",service=~\"[^.]+\\\\.\(ns)\\\\.svc\\\\..+\"" + route + outbound, by: ["route", "service"],
                    window: query.timeWindow, prometheus: base)
                for (key, f) in figures {
                    rows.append(Row(name: key[0], service: OutboundName.short(key[1]), figures: f))
                }
                if let name, rows.isEmpty { rows.append(Row(name: name, figures: .init())) }
            case .trafficsplit:
                rows = try await splitRows(resolved, name: name, prometheus: base, matchers: outbound)
            case .gateway:
                // The requests this cluster's gateway forwarded, by target and calling cluster.
                var matchers: [String] = []
                let to = try destination
                if let name = name ?? to { matchers.append("target=~\"\(VizQueries.literal(name))\\\\..+\"") }
                if case .cluster(let cluster)? = try source { matchers.append("client_cluster=\"\(cluster)\"") }
                let selector = matchers.joined(separator: ",")
                let figures = try await VizQueries.figures(
                    selector: selector, by: ["target", "client_cluster"], window: query.timeWindow, prometheus: base,
                    requests: "starling_gateway_requests_total", latency: "starling_gateway_response_latency_seconds_bucket")
                for (key, f) in figures {
                    rows.append(Row(name: OutboundName.short(key[0]), cluster: key[1], figures: f))
                }
            }
            rows.sort {
                ($0.name, $0.leaf ?? "", $0.cluster ?? "", $0.service ?? "") < ($1.name, $1.leaf ?? "", $1.cluster ?? "", $1.service ?? "")
            }
            print(render(rows, kind: kind))
        }

        /// One row per backend of each TrafficSplit: its weight, its measured share, its figures.
        private func splitRows(_ resolved: ResolvedContext, name: String?, prometheus: String, matchers: String) async throws -> [Row] {
            let splits: [Resource] = try await ControllerClient.with(resolved) { client in
                if let name {
                    let json = try await client.resources.get(.with {
                        $0.kind = "TrafficSplit"; $0.namespace = query.namespace; $0.name = name
                    }).resourceJson
                    return [try ResourceDecoder.decodeStored(json)]
                }
                return try await client.resources.list(.with { $0.kind = "TrafficSplit"; $0.namespace = query.namespace })
                    .resourcesJson.map { try ResourceDecoder.decodeStored($0) }
            }
            // Each local backend's open connections, as for `viz stat svc` (a backend behind a
            // gateway has none here: its workloads' proxies are in the other cluster).
            let connections = try await VizQueries.connections(
                selector: "direction=\"inbound\",namespace=\"\(query.namespace)\"", by: "app", prometheus: prometheus)
            var rows: [Row] = []
            for split in splits {
                for backend in try await VizQueries.backends(of: split, window: query.timeWindow, prometheus: prometheus, matchers: matchers) {
                    var figures = backend.figures
                    figures.tcpConnections = connections[backend.leaf]
                    rows.append(
                        Row(
                            name: split.metadata.name, apex: backend.apex, leaf: backend.leaf, weight: backend.weight,
                            share: backend.share, figures: figures))
                }
            }
            return rows
        }

        private func render(_ rows: [Row], kind: Kind) -> String {
            if query.output == .json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
                return String(decoding: (try? encoder.encode(rows)) ?? Data("[]".utf8), as: UTF8.self)
            }
            if rows.isEmpty { return "No traffic in \(query.namespace) over the last \(query.timeWindow)." }
            func percent(_ v: Double?) -> String { v.map { String(format: "%.2f%%", $0 * 100) } ?? "-" }
            func rps(_ v: Double) -> String { String(format: v < 10 ? "%.2frps" : "%.1frps", v) }
            func ms(_ v: Double?) -> String {
                guard let v else { return "-" }
                return v < 10 ? String(format: "%.1fms", v) : "\(Int(v.rounded()))ms"
            }
            let figureColumns = ["SUCCESS", "RPS", "REQUESTS", "LATENCY_P50", "LATENCY_P95", "LATENCY_P99"]
            var table: Table
            switch kind {
            case .trafficsplit:
                table = Table(["NAME", "APEX", "LEAF", "WEIGHT", "SHARE"] + figureColumns + ["TCP_CONN"])
            case .svc, .workload:
                table = Table(["NAME"] + figureColumns + ["TCP_CONN"])
            case .gateway:
                table = Table(["NAME", "CLIENT_CLUSTER"] + figureColumns)
            case .route:
                table = Table(["ROUTE", "SERVICE"] + figureColumns)
            }
            for row in rows {
                let f = row.figures
                let figures = [
                    percent(f.success), rps(f.rps), f.requests.map(String.init) ?? "-",
                    ms(f.latencyP50Ms), ms(f.latencyP95Ms), ms(f.latencyP99Ms),
                ]
                let connections = f.tcpConnections.map(String.init) ?? "-"
                switch kind {
                case .trafficsplit:
                    table.add(
                        [row.name, row.apex ?? "-", row.leaf ?? "-", row.weight.map { String(format: "%g", $0) } ?? "-", percent(row.share)]
                            + figures + [connections])
                case .gateway:
                    table.add([row.name, row.cluster ?? "-"] + figures)
                case .route:
                    table.add([row.name, row.service ?? "-"] + figures)
                case .svc, .workload:
                    table.add([row.name] + figures + [connections])
                }
            }
            return table.render()
        }
    }
}

/// Names as the proxies' series carry them.
enum OutboundName {
    /// `podinfo` of `podinfo.test.svc.cluster.local[:9898]`.
    static func short(_ fqdn: String) -> String { String(fqdn.prefix { $0 != "." && $0 != ":" }) }
}

extension VizCommand {
    /// `starling viz edges -n NS`: who called whom, with both identities and whether the call was
    /// mutual TLS, from the callers' proxies (outbound series, the source's labels from discovery).
    struct Edges: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Who called whom: source workload and identity, destination service and identity, mTLS.")

        @OptionGroup var query: VizQueryOptions

        func run() async throws {
            let (_, base) = try query.resolve()
            let edges = try await VizQueries.edges(
                selector: "direction=\"outbound\",namespace=\"\(query.namespace)\"", window: query.timeWindow, prometheus: base)
            if query.output == .json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
                print(String(decoding: try encoder.encode(edges), as: UTF8.self))
                return
            }
            if edges.isEmpty {
                print("No calls from workloads in \(query.namespace) over the last \(query.timeWindow).")
                return
            }
            var table = Table(["SRC", "DST", "CLIENT_ID", "SERVER_ID", "SECURED", "RPS"])
            for e in edges {
                table.add([e.source, e.destination, e.sourceIdentity, e.destinationIdentity, e.secured ? "√" : "×", String(format: "%.2f", e.rps)])
            }
            print(table.render())
        }
    }
}

/// The options `viz stat` and `viz edges` share: where to look and how to print.
struct VizQueryOptions: ParsableArguments {
    @Option(name: .shortAndLong, help: "The namespace (for edges: of the calling workloads).")
    var namespace = "default"

    @Option(name: [.customShort("t"), .customLong("time-window")], help: "The window rates are taken over.")
    var timeWindow = "1m"

    @Option(name: .shortAndLong, help: "Output: json (default: a table).")
    var output: OutputFormat = .table

    @Option(help: "The Prometheus to query, http://HOST:PORT (default: the one `viz install` started for a local cluster).")
    var prometheus: String?

    @OptionGroup var context: ContextOptions

    func validate() throws {
        if let problem = ResourceNames.dns1123LabelProblem(namespace) { throw ValidationError("-n \(namespace): \(problem)") }
        guard VizQueries.isDuration(timeWindow) else {
            throw ValidationError("-t must be a Prometheus duration such as 30s, 1m or 1h, got \(timeWindow)")
        }
        guard output == .table || output == .json else { throw ValidationError("-o takes json (or nothing for a table)") }
        if let prometheus, !prometheus.hasPrefix("http://") {
            throw ValidationError("--prometheus must be an http:// URL, got \(prometheus)")
        }
    }

    /// The context, and the Prometheus to ask: `--prometheus`, else the one `viz install` started
    /// for the context's local cluster.
    func resolve() throws -> (ResolvedContext, prometheus: String) {
        let resolved = try context.resolve()
        if let prometheus {
            return (resolved, prometheus.hasSuffix("/") ? String(prometheus.dropLast()) : prometheus)
        }
        let directory = ClusterCommand.registry().directory(of: resolved.clusterName)
        guard let url = VizPrometheus.Local(clusterDirectory: directory).url else {
            throw CLIError(
                "no Prometheus runs for cluster \(resolved.clusterName)",
                hint: "start one with `starling viz install` (local clusters), or pass --prometheus http://HOST:PORT")
        }
        return (resolved, url)
    }
}
