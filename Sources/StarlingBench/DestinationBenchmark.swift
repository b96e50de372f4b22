import ArgumentParser
import GRPCCore
import StarlingAPI
import StarlingCore
import SwiftProtobuf

/// `starling-bench destination`: how long a change takes to reach every open `Destination.Get`.
///
/// It applies a Service (port 9898) and one baseline Workload in `--namespace`, opens `--streams`
/// `Destination.Get` streams for the service over `--connections` HTTP/2 connections, waits until
/// every stream has the baseline endpoint, and then alternates: apply a Workload (every stream
/// must see `add` of its address), delete it (every stream must see `remove`). For each change it
/// measures from just before the Apply/Delete RPC is sent to the moment the last stream read the
/// update. The streams have their own connections; the Apply and Delete calls use one more. The
/// baseline keeps the endpoint set non-empty, so each change is exactly one message per stream.
/// The first `--warmup` changes are not counted. Endpoint addresses are in 127.254.0.0/16 and are
/// never dialled: the only traffic is to the controller.
struct DestinationBenchmark: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "destination",
        abstract: "Latency from a workload change to the last of N Destination.Get streams."
    )

    @Option(help: "Destination.Get streams to keep open.")
    var streams = 1000

    @Option(help: "Measured changes (workload applies and deletes, alternating).")
    var changes = 30

    @Option(help: "Changes made first and not measured.")
    var warmup = 2

    @Option(
        help: """
            HTTP/2 connections the streams are spread over (default: one per \(Self.streamsPerConnection) streams). \
            The gRPC client allows \(Self.streamsPerConnection) concurrent streams on a connection whose server \
            advertises no limit; streams beyond that wait for others to close.
            """)
    var connections: Int?

    /// What swift-nio-http2 assumes a peer allows until it advertises SETTINGS_MAX_CONCURRENT_STREAMS,
    /// which the controller does not: more streams than this on one connection are queued, not opened.
    static let streamsPerConnection = 100

    @Option(help: "The namespace of the benchmark's Service and Workloads.")
    var namespace = "starling-bench"

    @Option(help: "The benchmark Service's name; its Workloads carry the label app=NAME.")
    var service = "bench-dest"

    @Option(help: "Seconds to wait for every stream to see one change before giving up.")
    var timeout = 10

    @Option(help: "Milliseconds to pause between changes, so each starts from quiet streams.")
    var pause = 100

    @OptionGroup(title: "Controller")
    var contextOptions: ContextOptions

    func validate() throws {
        try contextOptions.validateRequired()
        guard (1...20_000).contains(streams) else {
            throw ValidationError("--streams must be between 1 and 20000, got \(streams)")
        }
        guard (1...400).contains(changes) else { throw ValidationError("--changes must be between 1 and 400, got \(changes)") }
        guard (0...20).contains(warmup) else { throw ValidationError("--warmup must be between 0 and 20, got \(warmup)") }
        if let connections, !(1...256).contains(connections) {
            throw ValidationError("--connections must be between 1 and 256, got \(connections)")
        }
        guard (1...120).contains(timeout) else { throw ValidationError("--timeout must be between 1 and 120 s, got \(timeout)") }
        guard (0...5_000).contains(pause) else { throw ValidationError("--pause must be between 0 and 5000 ms, got \(pause)") }
        for (flag, value) in [("--namespace", namespace), ("--service", service)] {
            if let problem = ResourceNames.dns1123LabelProblem(value) {
                throw ValidationError("\(flag) '\(value)': \(problem)")
            }
            guard value.count <= 50 else {
                throw ValidationError("\(flag) '\(value)' is longer than 50 characters (workload names add a suffix)")
            }
        }
    }

    private var workloads: BenchWorkloads { BenchWorkloads(namespace: namespace, service: service) }
    private var authority: String { workloads.authority }
    private var baseline: String { "\(service)-base" }
    private var steps: Int { warmup + changes }
    private var connectionCount: Int {
        connections ?? (streams + Self.streamsPerConnection - 1) / Self.streamsPerConnection
    }
    /// Workload `pair` (1-based) is applied by step 2·pair−1 and deleted by step 2·pair.
    private var pairs: Int { (steps + 1) / 2 }

    private static func address(ofPair pair: Int) -> String { "127.254.\(1 + pair / 250).\(1 + pair % 250)" }
    private static let baselineAddress = "127.254.0.1"
    private func workloadName(ofPair pair: Int) -> String { "\(service)-\(pair)" }

    func run() async throws {
        let context = try contextOptions.resolve()
        print(
            "Destination.Get fan-out against \(context.server) (context \(context.name)): \(streams) streams "
                + "on \(connectionCount) connection(s), \(changes) measured changes (+\(warmup) warm-up)")
        if streams > connectionCount * Self.streamsPerConnection {
            print(
                "warning: more than \(Self.streamsPerConnection) streams per connection; unless the controller "
                    + "advertises a higher SETTINGS_MAX_CONCURRENT_STREAMS, the rest will wait and the run will time out")
        }
        // One more connection for the Apply and Delete calls, so that they never queue behind
        // the streams' concurrency limit and the stream connections carry only the streams.
        try await ControllerConnections.with(context, count: connectionCount + 1) { clients in
            let resources = Starling_V1_Resources.Client(wrapping: clients[0])
            try await prepare(resources)
            do {
                try await measure(clients: Array(clients.dropFirst()), resources: resources)
            } catch {
                await cleanUp(resources)
                throw error
            }
            await cleanUp(resources)
        }
    }

    // MARK: - Resources

    private func workload(_ name: String, address: String) -> Resource {
        workloads.workload(name, address: address)
    }

    private func apply(_ resources: Starling_V1_Resources.Client<some ClientTransport>, _ items: [Resource]) async throws {
        try await workloads.apply(resources, items, source: "starling-bench destination")
    }

    @discardableResult
    private func deleteWorkload(
        _ resources: Starling_V1_Resources.Client<some ClientTransport>, _ name: String
    ) async throws -> Bool {
        try await workloads.delete(resources, name)
    }

    /// The Service and the baseline Workload, with any Workload a previous aborted run left behind
    /// removed (a leftover would make its apply a no-op, and the benchmark would wait for nothing).
    private func prepare(_ resources: Starling_V1_Resources.Client<some ClientTransport>) async throws {
        for pair in 1...pairs {
            try await deleteWorkload(resources, workloadName(ofPair: pair))
        }
        try await apply(resources, [workloads.serviceResource, workload(baseline, address: Self.baselineAddress)])
    }

    /// Removes what the benchmark applied; failures are reported, not thrown, so that they do not
    /// hide the benchmark's own outcome.
    private func cleanUp(_ resources: Starling_V1_Resources.Client<some ClientTransport>) async {
        do {
            for pair in 1...pairs {
                try await deleteWorkload(resources, workloadName(ofPair: pair))
            }
            try await deleteWorkload(resources, baseline)
            try await workloads.delete(resources, kind: "Service", service)
        } catch {
            print("warning: cleaning up the benchmark's resources in namespace \(namespace) failed: \(error)")
        }
    }

    // MARK: - Measurement

    private func measure(
        clients: [GRPCClient<some ClientTransport>], resources: Starling_V1_Resources.Client<some ClientTransport>
    ) async throws {
        let tracker = UpdateTracker()
        let clock = ContinuousClock()
        let destination = Starling_V1_GetDestination.with { $0.path = authority }

        try await withThrowingTaskGroup(of: Void.self) { group in
            let openStart = clock.now
            for index in 0..<streams {
                let client = Starling_V1_Destination.Client(wrapping: clients[index % clients.count])
                group.addTask { await Self.follow(client, destination, index: index, tracker: tracker) }
            }
            let initial = "add \(Self.baselineAddress)"
            guard await tracker.wait(for: initial, count: streams, timeout: .seconds(max(30, timeout))) else {
                let perConnection = (streams + clients.count - 1) / clients.count
                throw BenchError(
                    "only \(tracker.seen(initial).count) of \(streams) streams received the baseline endpoint of "
                        + "\(authority)\(Self.describe(tracker.failures))"
                        + (perConnection > Self.streamsPerConnection
                            ? " (\(perConnection) streams per connection: raise --connections)" : ""))
            }
            print("opened \(streams) streams, all with the baseline endpoint, in \(Self.milliseconds(clock.now - openStart)) ms")

            var latencies: [Double] = []
            var acknowledgements: [Double] = []
            for step in 1...steps {
                let pair = (step + 1) / 2
                let adding = step % 2 == 1
                let name = workloadName(ofPair: pair)
                let address = Self.address(ofPair: pair)
                let event = adding ? "add \(address)" : "remove \(address)"

                let start = clock.now
                if adding {
                    try await apply(resources, [workload(name, address: address)])
                } else if try await !deleteWorkload(resources, name) {
                    throw BenchError("workload/\(name) vanished before the benchmark deleted it")
                }
                let acknowledged = clock.now - start
                guard await tracker.wait(for: event, count: streams, timeout: .seconds(timeout)) else {
                    throw BenchError(
                        "after \(adding ? "applying" : "deleting") workload/\(name), only "
                            + "\(tracker.seen(event).count) of \(streams) streams saw `\(event)` within \(timeout) s"
                            + Self.describe(tracker.failures))
                }
                guard let last = tracker.seen(event).last else {
                    throw BenchError("no instant was recorded for `\(event)`")
                }
                let latency = (last - start).inSeconds * 1000
                let measured = step > warmup
                if measured {
                    latencies.append(latency)
                    acknowledgements.append(acknowledged.inSeconds * 1000)
                }
                print(
                    "  \(measured ? "change \(step - warmup)" : "warm-up \(step)"): \(event): "
                        + "RPC answered in \(Self.format(acknowledged)) ms, last of \(streams) streams after "
                        + "\(Statistics.format(latency, digits: 1)) ms")
                if pause > 0 { try await Task.sleep(for: .milliseconds(pause)) }
            }
            group.cancelAll()
            report(latencies: latencies, acknowledgements: acknowledgements)
        }
    }

    /// Reads one stream until it is cancelled, recording every message's events.
    private static func follow(
        _ client: Starling_V1_Destination.Client<some ClientTransport>, _ request: Starling_V1_GetDestination,
        index: Int, tracker: UpdateTracker
    ) async {
        let clock = ContinuousClock()
        do {
            try await client.get(request) { response in
                for try await update in response.messages {
                    tracker.record(events(of: update), at: clock.now)
                }
            }
            if !Task.isCancelled { tracker.streamFailed("stream \(index) ended") }
        } catch {
            if !Task.isCancelled { tracker.streamFailed("stream \(index) failed: \(error)") }
        }
    }

    private static func events(of update: Starling_V1_Update) -> [String] {
        switch update.update {
        case .add(let set): set.addrs.map { "add \($0.ip)" }
        case .remove(let set): set.addrs.map { "remove \($0.ip)" }
        case .noEndpoints: ["none"]
        case .resumed, nil: []
        }
    }

    private func report(latencies: [Double], acknowledgements: [Double]) {
        let latency = Statistics.Latencies(latencies)
        print(
            "change to last of \(streams) streams over \(latencies.count) changes: \(latency.summary) (nearest rank); "
                + "Apply/Delete RPC p50 \(Statistics.format(Statistics.percentile(acknowledgements, 50) ?? 0)) ms")
        Statistics.result("destination.streams", Double(streams), "streams")
        latency.printResults("destination.latency")
    }

    private static func describe(_ failures: [String]) -> String {
        guard let first = failures.first else { return "" }
        return "; \(failures.count) stream(s) ended early, first: \(first)"
    }

    private static func milliseconds(_ duration: Duration) -> String {
        Statistics.format(duration.inSeconds * 1000, digits: 0)
    }

    private static func format(_ duration: Duration) -> String {
        Statistics.format(duration.inSeconds * 1000, digits: 1)
    }
}
