import ArgumentParser
import Foundation
import GRPCCore
import StarlingAPI
import StarlingCore
import StarlingIdentity
import SwiftASN1
import X509

/// `starling-bench identity`: certificate signing throughput.
///
/// In-process (the default) it builds a throw-away root and issuer, makes `--count` CSRs from as
/// many distinct P-256 keys, then calls `Issuer.certify(csrDER:granted:)` on each, one after another
/// on the calling thread, `--runs` times, and reports the median rate. Run it under
/// `taskset -c 0` for the one-core figure: nothing else in the process runs while it signs.
///
/// With `--rpc` it does the same through a controller's `Identity.Certify` (TLS, the context's
/// admin token, `--callers` concurrent callers on one HTTP/2 connection). The controller needs a
/// mesh installed (`starling install ... | starling apply -f -`) to have an issuer.
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

    @Option(help: "Concurrent callers with --rpc, sharing one HTTP/2 connection (default: 4).")
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
        print("prepared \(count) CSRs from distinct P-256 keys in \(Statistics.format(Statistics.seconds(clock.now - start), digits: 2)) s")
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
            let elapsed = Statistics.seconds(clock.now - start)
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
        print("Identity.Certify against \(context.server) (context \(context.name)), \(callers) callers on one connection")
        try await ControllerConnections.with(context, count: 1) { clients in
            let identity = Starling_V1_Identity.Client(wrapping: clients[0])
            // Untimed: connects, waits (up to 15 s) for the controller to load the issuer of a mesh
            // applied just before, and checks one answer fully before trusting the counts.
            let first = try await Self.firstCertify(identity, requests[0], patience: .seconds(15))
            guard let leafDER = first.chain.first else {
                throw BenchError("Identity.Certify for \(requests[0].identity) returned an empty chain")
            }
            let leaf = try Certificate(derEncoded: Array(leafDER))
            guard requests[0].key.matches(leaf) else {
                throw BenchError("the certificate issued for \(requests[0].identity) is not for the key of its CSR")
            }

            let clock = ContinuousClock()
            var rates: [Double] = []
            for run in 1...runs {
                let start = clock.now
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for caller in 0..<callers {
                        group.addTask {
                            for index in stride(from: caller, to: requests.count, by: callers) {
                                let response = try await Self.certify(identity, requests[index])
                                guard !response.chain.isEmpty else {
                                    throw BenchError("Identity.Certify for \(requests[index].identity) returned an empty chain")
                                }
                            }
                        }
                    }
                    try await group.waitForAll()
                }
                let elapsed = Statistics.seconds(clock.now - start)
                let rate = Double(requests.count) / elapsed
                rates.append(rate)
                print("  run \(run): \(requests.count) RPCs in \(Statistics.format(elapsed, digits: 3)) s = \(Statistics.format(rate, digits: 0)) /s")
            }
            let median = Statistics.median(rates) ?? 0
            print("median of \(runs): \(Statistics.format(median, digits: 0)) Certify RPCs/s")
            Statistics.result("identity.rpc.certify_per_second", median, "per_s")
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
