import ArgumentParser
import Foundation
import StarlingCore
import StarlingProxy

/// What `viz tap` and `viz top` tap, and the filters they send to the proxies.
struct TapOptions: ParsableArguments {
    @Argument(help: "What to tap: ns/NAME (every workload of a namespace, the default), workload/NAME, or svc/NAME (calls to that service, as its callers' proxies see them).")
    var resource: String?

    @Option(name: .shortAndLong, help: "The namespace.")
    var namespace = "default"

    @Option(help: "Only requests to this service (NAME, NAME.NAMESPACE…, or HOST:PORT).")
    var to: String?

    @Option(help: "Only requests with this method.")
    var method: String?

    @Option(help: "Only requests whose path starts with this.")
    var path: String?

    @Option(help: "Only requests seen going out (outbound), coming in (inbound), or through the multicluster gateway (gateway).")
    var direction: String?

    @OptionGroup var context: ContextOptions

    func validate() throws {
        if let problem = ResourceNames.dns1123LabelProblem(namespace) { throw ValidationError("-n \(namespace): \(problem)") }
        if let direction, !["inbound", "outbound", "gateway"].contains(direction) {
            throw ValidationError("--direction takes inbound, outbound or gateway, got \(direction)")
        }
        if let path, !path.hasPrefix("/") { throw ValidationError("--path must start with /, got \(path)") }
        _ = try target()
    }

    enum Target {
        case namespace(String)
        case workload(String)
        case service(String)
    }

    func target() throws -> Target {
        guard let resource else { return .namespace(namespace) }
        let parts = resource.split(separator: "/", maxSplits: 1).map(String.init)
        guard parts.count == 2, !parts[1].isEmpty else {
            throw ValidationError("tap takes ns/NAME, workload/NAME or svc/NAME, got \(resource)")
        }
        switch parts[0].lowercased() {
        case "ns", "namespace": return .namespace(parts[1])
        case "workload", "workloads", "wl", "deploy", "deployment": return .workload(parts[1])
        case "svc", "service", "services": return .service(parts[1])
        default:
            throw ValidationError("tap takes ns/NAME, workload/NAME or svc/NAME; '\(parts[0])' is none of those")
        }
    }

    /// The session for these options.
    /// the target decides one.
    func session() throws -> TapSession {
        let resolved = try context.resolve()
        var selection = TapSession.Selection(
            namespace: namespace, workload: nil,
            filter: TapFilter(direction: direction, method: method?.uppercased(), pathPrefix: path, authority: to))
        switch try target() {
        case .namespace(let name): selection.namespace = name
        case .workload(let name): selection.workload = name
        case .service(let name):
            // A service is tapped where its callers send, as `viz stat svc` measures it.
            selection.filter.authority = name
            selection.filter.direction = direction ?? "outbound"
        }
        return TapSession(context: resolved, selection: selection)
    }
}

extension VizCommand {
    struct Tap: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Watch requests live: method, path, status, latency, both identities and clusters.",
            discussion: """
                Each selected workload's proxy streams the requests it handles from its admin port; \
                the controller hands out the short-lived ticket they require (admin credential only).
                """)

        @OptionGroup var options: TapOptions

        @Option(help: "Stop after this many requests (default: run until interrupted).")
        var maxEvents: Int?

        @Option(name: .shortAndLong, help: "Output: json (one object per line), or a line per request.")
        var output: OutputFormat = .table

        func validate() throws {
            guard output == .table || output == .json else { throw ValidationError("-o takes json (or nothing for lines)") }
            if let maxEvents, maxEvents < 1 { throw ValidationError("--max-events must be at least 1") }
        }

        func run() async throws {
            let session = try options.session()
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            var count = 0
            for try await tapped in session.events() {
                if output == .json {
                    print(String(decoding: try encoder.encode(tapped), as: UTF8.self))
                } else {
                    print(Self.line(tapped))
                }
                fflush(nil)
                count += 1
                if let maxEvents, count >= maxEvents { return }
            }
        }

        /// `rsp proxy=in workload=… src=… dst=… tls=true :method=GET :authority=… :path=/ :status=200 latency=1.2ms`
        static func line(_ t: TapSession.Tapped) -> String {
            let e = t.event
            var fields = [
                "proxy=\(e.direction == "inbound" ? "in" : e.direction == "outbound" ? "out" : e.direction)", "workload=\(t.namespace)/\(t.workload)",
                "src=\(e.sourceIdentity.isEmpty ? "-" : e.sourceIdentity)",
                "dst=\(e.destinationIdentity.isEmpty ? "-" : e.destinationIdentity)",
            ]
            if let c = e.sourceCluster { fields.append("src_cluster=\(c)") }
            if let c = e.destinationCluster { fields.append("dst_cluster=\(c)") }
            if let w = e.destinationWorkload { fields.append("dst_workload=\(w)") }
            fields += [
                "tls=\(e.tls)", ":method=\(e.method)", ":authority=\(e.authority)", ":path=\(e.path)", ":status=\(e.status)",
                "latency=\(e.latencyMilliseconds.map { String(format: "%.3fms", $0) } ?? "-")",
            ]
            return "rsp " + fields.joined(separator: " ")
        }
    }

    struct Top: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "The busiest paths, from a live tap: count, best, worst and last latency, success.",
            discussion: """
                Counts what is served (inbound at workloads, and what linked clusters sent through the \
                gateway) unless --direction or svc/NAME says otherwise, so that a call between two \
                tapped workloads is counted once.
                """)

        @OptionGroup var options: TapOptions

        @Option(help: "How long to watch (e.g. 10s, 1m); 0 runs until interrupted, redrawing the table.")
        var duration = "10s"

        @Option(help: "Rows to show.")
        var rows = 20

        @Option(name: .shortAndLong, help: "Output: json (at the end), or a table.")
        var output: OutputFormat = .table

        func validate() throws {
            guard output == .table || output == .json else { throw ValidationError("-o takes json (or nothing for a table)") }
            guard (try? GoDuration.parse(duration)) != nil else { throw ValidationError("--duration must be a duration such as 10s or 1m, got \(duration)") }
            if rows < 1 { throw ValidationError("--rows must be at least 1") }
        }

        struct Row: Encodable {
            var source: String
            var destination: String
            var method: String
            var path: String
            var count = 0
            var successes = 0
            var bestMilliseconds: Double?
            var worstMilliseconds: Double?
            var lastMilliseconds: Double?

            var successRate: Double { count == 0 ? 0 : Double(successes) / Double(count) }

            enum CodingKeys: String, CodingKey {
                case source, destination, method, path, count, successRate = "success_rate"
                case bestMilliseconds = "best_ms", worstMilliseconds = "worst_ms", lastMilliseconds = "last_ms"
            }

            func encode(to encoder: any Encoder) throws {
                var c = encoder.container(keyedBy: CodingKeys.self)
                try c.encode(source, forKey: .source)
                try c.encode(destination, forKey: .destination)
                try c.encode(method, forKey: .method)
                try c.encode(path, forKey: .path)
                try c.encode(count, forKey: .count)
                try c.encode(successRate, forKey: .successRate)
                try c.encodeIfPresent(bestMilliseconds, forKey: .bestMilliseconds)
                try c.encodeIfPresent(worstMilliseconds, forKey: .worstMilliseconds)
                try c.encodeIfPresent(lastMilliseconds, forKey: .lastMilliseconds)
            }
        }

        /// Counts one event into `rows`, keyed by source, destination, method and path.
        static func add(_ t: TapSession.Tapped, to rows: inout [String: Row]) {
            let e = t.event
            let source = Self.name(e.sourceIdentity, cluster: e.sourceCluster)
            let destination = e.destinationWorkload ?? Self.name(e.destinationIdentity, cluster: e.destinationCluster)
            let key = [source, destination, e.method, e.path].joined(separator: "\u{1}")
            var row = rows[key] ?? Row(source: source, destination: destination, method: e.method, path: e.path)
            row.count += 1
            if e.status < 500 { row.successes += 1 }
            if let ms = e.latencyMilliseconds {
                row.bestMilliseconds = min(row.bestMilliseconds ?? ms, ms)
                row.worstMilliseconds = max(row.worstMilliseconds ?? ms, ms)
                row.lastMilliseconds = ms
            }
            rows[key] = row
        }

        /// `sa.namespace` of an identity, with its cluster when there is one.
        static func name(_ identity: String, cluster: String?) -> String {
            guard !identity.isEmpty else { return "-" }
            let short = MeshIdentity(dnsName: identity).map { "\($0.serviceAccount).\($0.namespace)" } ?? identity
            return cluster.map { "\(short)@\($0)" } ?? short
        }

        static func sorted(_ rows: [String: Row]) -> [Row] {
            rows.values.sorted { ($0.count, $1.path) > ($1.count, $0.path) }
        }

        static func render(_ rows: [Row]) -> String {
            var table = Table(["SOURCE", "DESTINATION", "METHOD", "PATH", "COUNT", "BEST", "WORST", "LAST", "SUCCESS"])
            func ms(_ v: Double?) -> String { v.map { String(format: "%.1fms", $0) } ?? "-" }
            for r in rows {
                table.add([
                    r.source, r.destination, r.method, r.path, String(r.count), ms(r.bestMilliseconds), ms(r.worstMilliseconds),
                    ms(r.lastMilliseconds), String(format: "%.2f%%", r.successRate * 100),
                ])
            }
            return table.render()
        }

        func run() async throws {
            let session = try options.session()
            // Unless told otherwise, what is served: inbound at workloads, and at the gateway what
            // linked clusters sent through it; not the callers' outbound view of the same calls.
            let servedOnly = session.selection.filter.direction == nil
            let limit = (try? GoDuration.parse(duration)) ?? .seconds(10)
            let live = output == .table && isatty(STDOUT_FILENO) != 0
            let rowLimit = rows
            let rows = try await withThrowingTaskGroup(of: [String: Row]?.self) { group in
                group.addTask {
                    var rows: [String: Row] = [:]
                    var lastDraw = ContinuousClock.now
                    for try await tapped in session.events() where !servedOnly || tapped.event.direction != "outbound" {
                        Self.add(tapped, to: &rows)
                        if live, ContinuousClock.now - lastDraw > .seconds(1) {
                            lastDraw = ContinuousClock.now
                            print("\u{1B}[H\u{1B}[2J" + Self.render(Array(Self.sorted(rows).prefix(rowLimit))))
                            fflush(nil)
                        }
                        if Task.isCancelled { break }
                    }
                    return rows
                }
                if limit > .zero {
                    group.addTask {
                        try await Task.sleep(for: limit)
                        return nil
                    }
                }
                // The tap ends only with the session; the timer ends the watch.
                var collected: [String: Row] = [:]
                for try await result in group {
                    if let result {
                        collected = result
                        group.cancelAll()
                        break
                    }
                    group.cancelAll()
                }
                return collected
            }
            let top = Array(Self.sorted(rows).prefix(rowLimit))
            if output == .json {
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
                print(String(decoding: try encoder.encode(top), as: UTF8.self))
            } else if top.isEmpty {
                print("No requests seen in \(duration).")
            } else {
                print(Self.render(top))
            }
        }
    }
}
