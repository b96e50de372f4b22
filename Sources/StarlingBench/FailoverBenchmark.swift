import ArgumentParser
import Foundation
import GRPCCore
import StarlingAPI
import StarlingCore
import SwiftProtobuf
import Synchronization

/// `starling-bench failover`: a controller replica killed under open `Destination.Get` streams.
///
/// It opens `--streams` streams over the context's replicas (round robin, as proxies do), waits
/// until each holds the baseline endpoint of its Service, then kills `--kill-pid` with SIGKILL.
/// Each stream that loses its replica re-opens the way a proxy's does: after 250 ms ± 20 %, on any
/// replica, with the version and digest of the last message it read. It measures, for each of
/// those streams, the time from the kill to the first message of its re-opened stream, and counts
/// how many replicas answered `Resumed` (the state kept) rather than resending the endpoints.
struct FailoverBenchmark: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "failover",
        abstract: "A replica killed under N Destination.Get streams: time until its streams are open on the others.")

    @Option(help: "Destination.Get streams to keep open.")
    var streams = 1000

    @Option(help: "gRPC clients the streams are spread over (each has a connection to every replica; default one per 100 streams).")
    var connections: Int?

    @Option(name: .customLong("kill-pid"), help: "The controller replica to kill (SIGKILL) once every stream is open.")
    var killPID: Int32

    @Option(help: "Seconds to wait for the moved streams before giving up.")
    var timeout = 30

    @Option(help: "The namespace of the benchmark's Service and Workload.")
    var namespace = "starling-bench"

    @Option(help: "The benchmark Service's name.")
    var service = "bench-failover"

    @OptionGroup(title: "Controller")
    var contextOptions: ContextOptions

    func validate() throws {
        try contextOptions.validateRequired()
        guard (1...20_000).contains(streams) else { throw ValidationError("--streams must be between 1 and 20000, got \(streams)") }
        if let connections, !(1...256).contains(connections) {
            throw ValidationError("--connections must be between 1 and 256, got \(connections)")
        }
        guard killPID > 1 else { throw ValidationError("--kill-pid must name a controller replica's process, got \(killPID)") }
        guard (1...300).contains(timeout) else { throw ValidationError("--timeout must be between 1 and 300 s, got \(timeout)") }
        if let problem = ResourceNames.dns1123LabelProblem(namespace) ?? ResourceNames.dns1123LabelProblem(service) {
            throw ValidationError("--namespace/--service: \(problem)")
        }
    }

    private static let baselineAddress = "127.254.0.1"

    func run() async throws {
        let context = try contextOptions.resolve()
        guard context.replicas.count > 1 else {
            throw BenchError("context \(context.name) lists one replica (\(context.server)): a failover needs several")
        }
        let clients = connections ?? max(1, (streams + 99) / 100)
        print("Destination.Get failover against \(context.server): \(streams) streams on \(clients) client(s), killing pid \(killPID)")
        let workloads = BenchWorkloads(namespace: namespace, service: service)
        let baseline = "\(service)-base"
        try await ControllerConnections.with(context, count: clients + 1) { connected in
            let resources = Starling_V1_Resources.Client(wrapping: connected[0])
            try await workloads.apply(
                resources, [workloads.serviceResource, workloads.workload(baseline, address: Self.baselineAddress)],
                source: "starling-bench failover")
            let outcome: Result<Void, any Error>
            do {
                try await measure(Array(connected.dropFirst()), authority: workloads.authority)
                outcome = .success(())
            } catch {
                outcome = .failure(error)
            }
            do {
                try await workloads.delete(resources, baseline)
                try await workloads.delete(resources, kind: "Service", service)
            } catch {
                print("warning: cleaning up namespace \(namespace) failed: \(error)")
            }
            try outcome.get()
        }
    }

    private func measure(_ clients: [GRPCClient<some ClientTransport>], authority: String) async throws {
        let tracker = FailoverTracker(streams: streams, baseline: "add \(Self.baselineAddress)")
        let clock = ContinuousClock()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<streams {
                let client = Starling_V1_Destination.Client(wrapping: clients[index % clients.count])
                group.addTask { await Self.follow(client, path: authority, index: index, tracker: tracker) }
            }
            let opened = clock.now
            while tracker.withBaseline < streams {
                guard clock.now - opened < .seconds(60) else {
                    throw BenchError("only \(tracker.withBaseline) of \(streams) streams received the baseline endpoint within 60 s")
                }
                try await Task.sleep(for: .milliseconds(50))
            }
            print("opened \(streams) streams, all with the baseline endpoint, in \(Int((clock.now - opened).inSeconds * 1000)) ms")
            let killed = clock.now
            guard kill(killPID, SIGKILL) == 0 else {
                throw BenchError("cannot kill pid \(killPID): \(String(cString: strerror(errno)))")
            }
            // Streams on the killed replica see their connection close at once; wait for every one
            // of them to be open again, and a little longer for stragglers.
            while true {
                let (lost, resumed) = tracker.moved
                if lost > 0, resumed == lost, clock.now - killed > .seconds(2) { break }
                guard clock.now - killed < .seconds(timeout) else {
                    throw BenchError("\(resumed) of \(lost) streams lost with the killed replica were open again after \(timeout) s")
                }
                try await Task.sleep(for: .milliseconds(50))
            }
            group.cancelAll()
            report(tracker.outcomes(since: killed))
        }
    }

    /// Follows one stream like a proxy: re-opens it with backoff and its resume position.
    private static func follow(
        _ client: Starling_V1_Destination.Client<some ClientTransport>, path: String, index: Int, tracker: FailoverTracker
    ) async {
        var request = Starling_V1_GetDestination.with { $0.path = path }
        while !Task.isCancelled {
            // The position of the last message read, also when the stream breaks off.
            let position: (Int64, Data)? = try? await client.get(request) { response in
                var last: (Int64, Data)?
                do {
                    for try await update in response.messages {
                        if update.version > 0 { last = (update.version, update.digest) }
                        tracker.received(index, update)
                    }
                } catch {}
                return last
            }
            if let (version, digest) = position {
                request.resumeVersion = version
                request.resumeDigest = digest
            }
            if Task.isCancelled { return }
            tracker.lost(index)
            try? await Task.sleep(for: .milliseconds(250) * Double.random(in: 0.8...1.2))
        }
    }

    private func report(_ outcomes: [FailoverTracker.Outcome]) {
        let latencies = outcomes.map { ($0.after).inSeconds * 1000 }
        let kept = outcomes.filter(\.kept).count
        let latency = Statistics.Latencies(latencies)
        print(
            "\(outcomes.count) of \(streams) streams were on the killed replica; open again on the others after "
                + "\(latency.summary); \(kept) resumed with their state kept, \(outcomes.count - kept) were sent it again")
        Statistics.result("failover.streams_moved", Double(outcomes.count), "streams")
        latency.printResults("failover.resume")
        Statistics.result("failover.kept", Double(kept), "streams")
        Statistics.result("failover.resent", Double(outcomes.count - kept), "streams")
    }
}

/// What each stream of the failover benchmark saw: its baseline, when it lost its replica, and
/// the first message of its re-opened stream.
final class FailoverTracker: Sendable {
    struct Outcome: Sendable {
        /// From the kill to the first message of the re-opened stream.
        var after: Duration
        /// The replica answered `Resumed`: the state was kept, not resent.
        var kept: Bool
    }

    private struct Stream {
        var hasBaseline = false
        var lostAt: ContinuousClock.Instant?
        var resumedAt: ContinuousClock.Instant?
        var kept = false
    }

    private let baseline: String
    private let state: Mutex<[Stream]>

    init(streams: Int, baseline: String) {
        self.baseline = baseline
        state = Mutex(Array(repeating: Stream(), count: streams))
    }

    func received(_ index: Int, _ update: Starling_V1_Update) {
        let now = ContinuousClock.now
        state.withLock { streams in
            if case .add(let set) = update.update, set.addrs.contains(where: { "add \($0.ip)" == baseline }) {
                streams[index].hasBaseline = true
            }
            if streams[index].lostAt != nil, streams[index].resumedAt == nil {
                streams[index].resumedAt = now
                if case .resumed = update.update { streams[index].kept = true }
            }
        }
    }

    /// Its stream ended or failed (once counted per stream: a stream that fails again while
    /// re-opening keeps its first loss).
    func lost(_ index: Int) {
        let now = ContinuousClock.now
        state.withLock { streams in
            guard streams[index].hasBaseline, streams[index].lostAt == nil else { return }
            streams[index].lostAt = now
        }
    }

    var withBaseline: Int { state.withLock { $0.filter(\.hasBaseline).count } }

    /// Streams that lost their replica, and how many of those are open again.
    var moved: (lost: Int, resumed: Int) {
        state.withLock { streams in
            let lost = streams.filter { $0.lostAt != nil }
            return (lost.count, lost.filter { $0.resumedAt != nil }.count)
        }
    }

    func outcomes(since killed: ContinuousClock.Instant) -> [Outcome] {
        state.withLock { streams in
            streams.compactMap { stream in
                guard stream.lostAt != nil, let resumed = stream.resumedAt else { return nil }
                return Outcome(after: resumed - killed, kept: stream.kept)
            }
        }
    }
}
