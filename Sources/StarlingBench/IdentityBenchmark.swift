import ArgumentParser
import Foundation
import GRPCCore
import StarlingAPI
import StarlingCore
import StarlingIdentity
import SwiftASN1
import Synchronization
import X509

/// `starling-bench identity`: certificate signing throughput.
///
/// In-process (the default) it builds a throw-away root and issuer, makes `--count` CSRs from as
/// many distinct P-256 keys, then calls `Issuer.certify(csrDER:granted:)` on each, one after another
/// on the calling thread, `--runs` times, and reports the median rate. Run it under
/// `taskset -c 0` for the one-core figure: nothing else in the process runs while it signs.
///
/// With `--rpc` it does the same through a controller's `Identity.Certify` (TLS, the context's
/// admin token, `--callers` concurrent callers on one HTTP/2 connection). When the context lists
/// several replicas, each replica gets a connection of its own and the callers are dealt over them
/// in turn, so the rate is what the replicas sign together, reported with each one's part. The
/// controller needs a mesh installed (`starling install ... | starling apply -f -`) to have an
/// issuer.
struct IdentityBenchmark: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "identity",
        abstract: "CSRs signed per second: in-process Issuer.certify, or Identity.Certify RPCs with --rpc."
    )

    @Flag(help: "Measure Identity.Certify RPCs against the controller of a context instead of in-process signing.")
    var rpc = false

    @Option(help: "CSRs (from distinct keys) signed per run (default: 4000 in-process, 1500 with --rpc).")
    var count: Int?

    @Option(help: "Timed runs; the median rate is reported.")
    var runs = 3

    @Option(help: "Concurrent callers with --rpc, sharing one HTTP/2 connection, or dealt over one per replica (default: 4).")
    var callers: Int?

    @Option(help: "The trust domain of the identities requested (the installed mesh's, with --rpc).")
    var trustDomain = "cluster.local"

    @OptionGroup(title: "Controller (with --rpc)")
    var contextOptions: ContextOptions

    func validate() throws {
        if let count, !(1...100_000).contains(count) {
            throw ValidationError("--count must be between 1 and 100000, got \(count)")
        }
        guard (1...20).contains(runs) else { throw ValidationError("--runs must be between 1 and 20, got \(runs)") }
        if let callers, !(1...256).contains(callers) {
            throw ValidationError("--callers must be between 1 and 256, got \(callers)")
        }
        if rpc {
            try contextOptions.validateRequired()
        } else if callers != nil || contextOptions.config != nil || contextOptions.context != nil {
            throw ValidationError("--callers, --config and --context apply only with --rpc")
        }
        guard MeshIdentity(dnsName: "bench.bench.serviceaccount.identity.starling.\(trustDomain)") != nil else {
            throw ValidationError("--trust-domain '\(trustDomain)' is not a valid trust domain")
        }
    }

    func run() async throws {
        let count = count ?? (rpc ? 1500 : 4000)
        if rpc {
            let context = try contextOptions.resolve()
            try await runRPC(try Self.makeRequests(count: count, trustDomain: trustDomain), context: context)
        } else {
            try runInProcess(try Self.makeRequests(count: count, trustDomain: trustDomain))
        }
    }

    /// One CSR to sign: its DER, the identity it asks for, and the key that made it.
    struct SigningRequest: Sendable {
        var der: [UInt8]
        var identity: MeshIdentity
        var key: WorkloadKey
    }

    /// `count` CSRs, each from a fresh key and for its own service account in namespace `bench`.
    static func makeRequests(count: Int, trustDomain: String) throws -> [SigningRequest] {
        let clock = ContinuousClock()
        let start = clock.now
        var requests: [SigningRequest] = []
        requests.reserveCapacity(count)
        for index in 0..<count {
            let key = WorkloadKey()
            let identity = MeshIdentity(namespace: "bench", serviceAccount: "sa-\(index)", trustDomain: trustDomain)
            requests.append(SigningRequest(der: try key.csr(for: identity).der, identity: identity, key: key))
        }
        print("prepared \(count) CSRs from distinct P-256 keys in \(Statistics.format((clock.now - start).inSeconds, digits: 2)) s")
        return requests
    }

    // MARK: - In-process

    private func runInProcess(_ requests: [SigningRequest]) throws {
        let issuer = try Self.makeIssuer(trustDomain: trustDomain)
        print("in-process Issuer.certify, one thread; \(Self.allowedCPUs())")
        let clock = ContinuousClock()
        var rates: [Double] = []
        for run in 1...runs {
            var leaves: [Certificate] = []
            leaves.reserveCapacity(requests.count)
            let start = clock.now
            for request in requests {
                let chain = try issuer.certify(csrDER: request.der, granted: request.identity, now: Date())
                leaves.append(chain[0])
            }
            let elapsed = (clock.now - start).inSeconds
            // Checked outside the timed loop: every leaf is for the key whose CSR it answered.
            for (leaf, request) in zip(leaves, requests) where !request.key.matches(leaf) {
                throw BenchError("the certificate issued for \(request.identity) is not for the key of its CSR")
            }
            let rate = Double(requests.count) / elapsed
            rates.append(rate)
            print("  run \(run): \(requests.count) CSRs in \(Statistics.format(elapsed, digits: 3)) s = \(Statistics.format(rate, digits: 0)) /s")
        }
        let median = Statistics.median(rates) ?? 0
        print("median of \(runs): \(Statistics.format(median, digits: 0)) CSRs/s")
        Statistics.result("identity.local.csrs_per_second", median, "per_s")
    }

    /// A throw-away root and issuer made like `starling certs create` makes them.
    static func makeIssuer(trustDomain: String) throws -> Issuer {
        let root = try CertificateFactory.create(.init(subject: "root.bench.\(trustDomain)", profile: .rootCA))
        let intermediate = try CertificateFactory.create(
            .init(
                subject: "identity.starling.\(trustDomain)", profile: .intermediateCA,
                issuer: (root.certificate, root.key)))
        return try Issuer(
            certificate: intermediate.certificate, key: intermediate.key,
            trust: TrustBundle(anchors: [root.certificate], trustDomain: trustDomain), trustDomain: trustDomain)
    }

    /// `Cpus_allowed_list` from /proc/self/status, to show in the output whether the run was pinned.
    static func allowedCPUs() -> String {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("Cpus_allowed_list:") })
        else { return "allowed CPUs unknown" }
        return "allowed CPUs: " + line.dropFirst("Cpus_allowed_list:".count).trimmingCharacters(in: .whitespaces)
    }

    // MARK: - RPC

    private func runRPC(_ requests: [SigningRequest], context: ControllerContext) async throws {
        let callers = min(callers ?? 4, requests.count)
        // Several replicas: one client per replica and the callers dealt to them in turn, so every
        // replica signs and each answer is counted for the replica that gave it. One replica: one
        // connection, as always.
        let targets = context.replicas.count > 1 ? context.eachReplica : [context]
        let layout = targets.count > 1 ? "dealt over \(targets.count) replicas, one connection each" : "on one connection"
        print("Identity.Certify against \(context.server) (context \(context.name)), \(callers) callers \(layout)")
        try await ControllerConnections.with(targets) { clients in
            let identities = clients.map { Starling_V1_Identity.Client(wrapping: $0) }
            for (identity, target) in zip(identities, targets) {
                try await Self.checkFirst(identity, requests[0], replica: target.server)
            }
            var outcomes: [RunOutcome] = []
            for run in 1...runs {
                let outcome = try await Self.timedRun(requests, identities: identities, callers: callers)
                outcomes.append(outcome)
                let split = targets.count > 1 ? " (" + outcome.signed.map(String.init).joined(separator: " + ") + ")" : ""
                print("  run \(run): \(requests.count) RPCs\(split) in \(Statistics.format(outcome.elapsed, digits: 3)) s = \(Statistics.format(outcome.rate, digits: 0)) /s")
            }
            report(outcomes, replicas: targets.count > 1 ? targets.map(\.server) : [])
        }
    }

    /// Untimed: connects, waits (up to 15 s) for the controller (replica) to load the issuer of a
    /// mesh applied just before, and checks one answer fully before trusting the counts.
    private static func checkFirst(
        _ identity: Starling_V1_Identity.Client<some ClientTransport>, _ request: SigningRequest, replica: String
    ) async throws {
        let first = try await firstCertify(identity, request, patience: .seconds(15))
        guard let leafDER = first.chain.first else {
            throw BenchError("Identity.Certify for \(request.identity) on \(replica) returned an empty chain")
        }
        let leaf = try Certificate(derEncoded: Array(leafDER))
        guard request.key.matches(leaf) else {
            throw BenchError("the certificate issued for \(request.identity) by \(replica) is not for the key of its CSR")
        }
    }

    /// One timed run: what each client's callers signed, and the time until the last answer.
    private struct RunOutcome {
        /// Answers per client, in the order of the clients.
        var signed: [Int]
        var elapsed: Double

        var rate: Double { Double(signed.reduce(0, +)) / elapsed }

        /// The part of ``rate`` that client `index` answered.
        func rate(of index: Int) -> Double { Double(signed[index]) / elapsed }
    }

    /// Signs every request once with `callers` concurrent callers, caller `c` on client
    /// `c % identities.count`. Callers take requests from one queue rather than a fixed share each,
    /// so a slower replica takes fewer and no caller idles while another works through its share:
    /// the run ends when the replicas together are done, and the split says what each one did.
    private static func timedRun<Transport: ClientTransport>(
        _ requests: [SigningRequest], identities: [Starling_V1_Identity.Client<Transport>], callers: Int
    ) async throws -> RunOutcome {
        let queue = RequestQueue(count: requests.count)
        let clock = ContinuousClock()
        let start = clock.now
        let signed = try await withThrowingTaskGroup(of: (client: Int, signed: Int).self) { group in
            for caller in 0..<callers {
                let client = caller % identities.count
                let identity = identities[client]
                group.addTask {
                    var signed = 0
                    while let index = queue.take() {
                        let response = try await certify(identity, requests[index])
                        guard !response.chain.isEmpty else {
                            throw BenchError("Identity.Certify for \(requests[index].identity) returned an empty chain")
                        }
                        signed += 1
                    }
                    return (client, signed)
                }
            }
            var signed = Array(repeating: 0, count: identities.count)
            for try await caller in group { signed[caller.client] += caller.signed }
            return signed
        }
        return RunOutcome(signed: signed, elapsed: (clock.now - start).inSeconds)
    }

    /// The median rate of the runs; with several `replicas`, also what each signed in the run
    /// nearest that median (one run's parts add up to its rate; medians taken per replica would not).
    private func report(_ outcomes: [RunOutcome], replicas: [String]) {
        let median = Statistics.median(outcomes.map(\.rate)) ?? 0
        let across = replicas.isEmpty ? "" : " across \(replicas.count) replicas"
        print("median of \(runs): \(Statistics.format(median, digits: 0)) Certify RPCs/s\(across)")
        Statistics.result("identity.rpc.certify_per_second", median, "per_s")
        guard !replicas.isEmpty, let nearest = outcomes.min(by: { abs($0.rate - median) < abs($1.rate - median) }) else {
            return
        }
        print("per replica, in the run nearest the median (\(Statistics.format(nearest.rate, digits: 0)) /s):")
        Statistics.result("identity.rpc.replicas", Double(replicas.count), "count")
        for (index, replica) in replicas.enumerated() {
            let rate = nearest.rate(of: index)
            print("  replica \(index + 1), \(replica): \(nearest.signed[index]) RPCs = \(Statistics.format(rate, digits: 0)) /s")
            Statistics.result("identity.rpc.replica\(index + 1).certify_per_second", rate, "per_s")
        }
    }

    /// The first call, retried while the controller reports that identity is not configured yet.
    private static func firstCertify(
        _ client: Starling_V1_Identity.Client<some ClientTransport>, _ request: SigningRequest, patience: Duration
    ) async throws -> Starling_V1_CertifyResponse {
        let deadline = ContinuousClock.now + patience
        while true {
            do {
                return try await certify(client, request)
            } catch is NotConfiguredError where ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(250))
            } catch let error as NotConfiguredError {
                throw BenchError(
                    "the controller cannot sign: \(error.message). Install a mesh first: "
                        + "`starling install ... | starling apply -f -`")
            }
        }
    }

    /// The controller answered `failedPrecondition`: it has no issuer (yet).
    private struct NotConfiguredError: Error, CustomStringConvertible {
        var message: String
        var description: String { "the controller cannot sign: \(message)" }
    }

    private static func certify(
        _ client: Starling_V1_Identity.Client<some ClientTransport>, _ request: SigningRequest
    ) async throws -> Starling_V1_CertifyResponse {
        var message = Starling_V1_CertifyRequest()
        message.identity = request.identity.dnsName
        message.certificateSigningRequest = Data(request.der)
        do {
            return try await client.certify(message, options: ControllerConnections.unary())
        } catch let error as RPCError where error.code == .failedPrecondition {
            throw NotConfiguredError(message: error.message)
        } catch let error as RPCError {
            throw BenchError("Identity.Certify for \(request.identity) failed: \(error.message) (\(error.code))")
        }
    }
}

/// The indices of the requests still to sign, handed out one at a time to whichever caller asks
/// first.
private final class RequestQueue: Sendable {
    private let next = Atomic<Int>(0)
    private let count: Int

    init(count: Int) { self.count = count }

    /// The next request's index; nil once every request has been handed out.
    func take() -> Int? {
        let index = next.wrappingAdd(1, ordering: .relaxed).oldValue
        return index < count ? index : nil
    }
}
