import ArgumentParser
import Foundation
import GRPCCore
import GRPCNIOTransportHTTP2Posix
import StarlingAPI
import StarlingCore
import StarlingIdentity
import SwiftASN1
import X509

/// `starling-bench certify-flood`: one join-token holder sending CSRs as fast as it can, and
/// what that costs everyone else (issue #16, item 4).
///
/// With a context (admin), it mints join tokens through `Mesh.CreateToken` — namespace `bench`,
/// service account `flood`, and `--victims` well-behaved ones `victim-1`… —, pre-makes every CSR
/// (P-256; a pool reused by the flooder, one fresh key per victim call), then runs timed
/// phases of `--duration` seconds against the controller's `Identity.Certify`:
///
/// 1. baseline: the victims alone, one call every `--victim-interval-ms`, open loop (each call
///    starts on its schedule, however slow the previous one), cycling over the victim identities;
/// 2. flood: `--callers` concurrent callers certify with the flood token back to back, while the
///    victims repeat their paced calls;
/// 3. (unless `--no-unlimited`) the same flood with the admin's token, which the limit exempts:
///    every CSR signed, what the victims would see if any token holder could do that.
///
/// The victims cycle over several identities so that each stays well under its own limit
/// (defaults: 20 calls/s over 4 identities = 5/s each against 10/s): a refusal a victim sees can
/// only come from the flood, not from its own budget.
///
/// It prints the flooder's requests, grants and refusals per second, then a table — victim
/// p50/p99 and failures, baseline against flood, and their ratio; flooder requests/s, granted/s,
/// refused/s — and whether the flooder's granted rate after its burst stays at the configured
/// rate (and, with `--controller-pid`, the controller's CPU use in each phase). The flooder and
/// the victims use separate HTTP/2 connections, as separate workloads would; every workload call
/// carries its join token in the request's `token` field, which the controller reads in place of
/// the connection's bearer token.
struct CertifyFloodBenchmark: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "certify-flood",
        abstract: "Victim Identity.Certify latency while another token holder floods the controller with CSRs."
    )

    @Option(help: "Seconds of each phase (baseline, flood, admin flood).")
    var duration = 10.0

    @Option(help: "Concurrent flooding callers, all with the flood token.")
    var callers = 32

    @Option(help: "HTTP/2 connections the flooding callers are spread over.")
    var floodConnections = 1

    @Option(help: "Pre-made CSRs (distinct P-256 keys) the flooder cycles through.")
    var floodCSRs = 256

    @Option(name: .customLong("victim-interval-ms"), help: "Milliseconds between two victim calls (open loop).")
    var victimIntervalMs = 50

    @Option(help: "Victim identities (bench/victim-1…) the paced calls cycle over.")
    var victims = 4

    @Option(help: "The controller's --certify-rate (its default: 10), to judge the flooder's granted rate against.")
    var expectedRate = 10.0

    @Option(help: "The controller's --certify-burst (its default: 100).")
    var expectedBurst = 100

    @Flag(inversion: .prefixedNo, help: "Phase 3: the same flood with the admin token, which is not rate limited (what victims would see without the limit).")
    var unlimited = true

    @Option(name: .customLong("controller-pid"), help: "The controller's process, to report its CPU use in each phase (from /proc).")
    var controllerPID: Int32?

    @Option(help: "The trust domain of the installed mesh.")
    var trustDomain = "cluster.local"

    @OptionGroup(title: "Controller")
    var contextOptions: ContextOptions

    func validate() throws {
        try contextOptions.validateRequired()
        guard duration >= 1, duration <= 600 else { throw ValidationError("--duration must be between 1 and 600 s, got \(duration)") }
        guard (1...512).contains(callers) else { throw ValidationError("--callers must be between 1 and 512, got \(callers)") }
        guard (1...64).contains(floodConnections) else { throw ValidationError("--flood-connections must be between 1 and 64") }
        guard (1...10_000).contains(floodCSRs) else { throw ValidationError("--flood-csrs must be between 1 and 10000") }
        guard (5...10_000).contains(victimIntervalMs) else { throw ValidationError("--victim-interval-ms must be between 5 and 10000") }
        guard (1...100).contains(victims) else { throw ValidationError("--victims must be between 1 and 100") }
        guard expectedRate > 0, expectedBurst >= 1 else { throw ValidationError("--expected-rate and --expected-burst must be positive") }
        guard MeshIdentity(dnsName: "flood.bench.serviceaccount.identity.starling.\(trustDomain)") != nil else {
            throw ValidationError("--trust-domain '\(trustDomain)' is not a valid trust domain")
        }
    }

    typealias IdentityClient = Starling_V1_Identity.Client<HTTP2ClientTransport.Posix>

    /// One CSR and the token to present with it.
    struct Attempt: Sendable {
        var request: IdentityBenchmark.SigningRequest
        var token: String
    }

    enum Outcome: Sendable {
        case granted
        /// RESOURCE_EXHAUSTED: the rate limit.
        case refused
        /// Anything else: another status, a deadline, an empty chain.
        case failed
    }

    /// One finished call: when it started (seconds since its phase began), how long it took.
    struct Call: Sendable {
        var start: Double
        var milliseconds: Double
        var outcome: Outcome
        /// The status message of a refused or failed call.
        var detail: String?
    }

    func run() async throws {
        let context = try contextOptions.resolve()
        let interval = Duration.milliseconds(victimIntervalMs)
        let perPhase = max(1, Int((duration * 1000 / Double(victimIntervalMs)).rounded(.down)))
        let victimRate = 1000 / Double(victimIntervalMs) / Double(victims)
        print("certify-flood against \(context.server) (context \(context.name)): \(Statistics.format(duration)) s per phase")
        print("victims: \(victims) identities, one call every \(victimIntervalMs) ms in turn (\(Statistics.format(victimRate)) /s per identity); "
            + "flooder: \(callers) callers on \(floodConnections) connection(s); configured limit \(Statistics.format(expectedRate)) /s, burst \(expectedBurst)")
        if victimRate >= expectedRate {
            print("note: each victim identity asks for \(Statistics.format(victimRate)) /s, at or above the limit of \(Statistics.format(expectedRate)) /s: "
                + "victims will be refused by their own budget (raise --victims or --victim-interval-ms)")
        }

        // --- untimed: keys and CSRs, tokens, a first answer checked fully ---
        let clock = ContinuousClock()
        let prepared = clock.now
        let floodIdentity = MeshIdentity(namespace: "bench", serviceAccount: "flood", trustDomain: trustDomain)
        let victimIdentities = (1...victims).map { MeshIdentity(namespace: "bench", serviceAccount: "victim-\($0)", trustDomain: trustDomain) }
        let floodRequests = try (0..<floodCSRs).map { _ in try Self.signingRequest(floodIdentity) }
        let victimRequests = try (0..<((unlimited ? 3 : 2) * perPhase)).map { try Self.signingRequest(victimIdentities[$0 % victims]) }
        let probe = try Self.signingRequest(MeshIdentity(namespace: "bench", serviceAccount: "probe", trustDomain: trustDomain))
        print("prepared \(floodCSRs + victimRequests.count + 1) CSRs from distinct P-256 keys in \(Statistics.format((clock.now - prepared).inSeconds, digits: 2)) s")

        let (floodToken, victimTokens) = try await ControllerConnections.with(context, count: 1) { clients in
            let mesh = Starling_V1_Mesh.Client(wrapping: clients[0])
            let identity = IdentityClient(wrapping: clients[0])
            // The admin's own certify is not rate limited: it waits for the issuer without
            // spending any bucket the phases use.
            try await Self.waitForIssuer(identity, probe, patience: .seconds(15))
            let flood = try await Self.createToken(mesh, serviceAccount: "flood")
            var victims: [String] = []
            for identity in victimIdentities { victims.append(try await Self.createToken(mesh, serviceAccount: identity.serviceAccount)) }
            return (flood, victims)
        }
        print("minted join tokens for bench/flood and \(victimIdentities.map { "bench/\($0.serviceAccount)" }.joined(separator: ", "))")
        let floodAttempts = floodRequests.map { Attempt(request: $0, token: floodToken) }
        let victimAttempts = victimRequests.enumerated().map { Attempt(request: $1, token: victimTokens[$0 % victims]) }

        var victimContext = context
        victimContext.token = victimTokens[0]
        var floodContext = context
        floodContext.token = floodToken
        let phase = Duration.milliseconds(Int64(duration * 1000))
        let phases = try await ControllerConnections.with(victimContext, count: 1) { victimClients in
            try await ControllerConnections.with(floodContext, count: floodConnections) { floodClients in
                try await ControllerConnections.with(context, count: unlimited ? floodConnections : 0) { adminClients in
                    let victim = IdentityClient(wrapping: victimClients[0])
                    let flooders = floodClients.map { IdentityClient(wrapping: $0) }
                    // Both sides' connections up, and one certificate each checked against its key
                    // (this spends one token of victim-1's and of the flooder's buckets).
                    try await Self.checkedCertify(victim, Attempt(request: try Self.signingRequest(victimIdentities[0]), token: victimTokens[0]))
                    for client in flooders {
                        try await Self.checkedCertify(client, Attempt(request: try Self.signingRequest(floodIdentity), token: floodToken))
                    }
                    var phases = Phases()

                    print("\n== 1. baseline: the victims alone, \(perPhase) calls")
                    var cpu = controllerCPU()
                    phases.baseline = await Self.paced(victim, Array(victimAttempts[0..<perPhase]), interval: interval)
                    phases.controllerCores[0] = controllerCores(since: &cpu)
                    print("   " + Self.describe(phases.baseline))
                    try await Task.sleep(for: .seconds(1))

                    print("\n== 2. flood: \(callers) callers with the flood token, the victims as before")
                    cpu = controllerCPU()
                    let start = ContinuousClock.now
                    async let victimCalls = Self.paced(
                        victim, Array(victimAttempts[perPhase..<(2 * perPhase)]), interval: interval, start: start)
                    async let floodCalls = Self.flood(flooders, floodAttempts, callers: callers, start: start, for: phase)
                    (phases.victimUnderFlood, phases.flood) = (await victimCalls, await floodCalls)
                    phases.controllerCores[1] = controllerCores(since: &cpu)
                    print("   victims: " + Self.describe(phases.victimUnderFlood))

                    if unlimited {
                        // The same flood with the admin's token, which is not limited: every CSR is
                        // signed, as every token holder's would be without the limit.
                        try await Task.sleep(for: .seconds(1))
                        let admins = adminClients.map { IdentityClient(wrapping: $0) }
                        let adminAttempts = floodRequests.map { Attempt(request: $0, token: "") }
                        print("\n== 3. the same flood with the admin token (not rate limited), the victims as before")
                        cpu = controllerCPU()
                        let start = ContinuousClock.now
                        async let victimCalls = Self.paced(
                            victim, Array(victimAttempts[(2 * perPhase)..<(3 * perPhase)]), interval: interval, start: start)
                        async let floodCalls = Self.flood(admins, adminAttempts, callers: callers, start: start, for: phase)
                        (phases.victimUnlimited, phases.unlimited) = (await victimCalls, await floodCalls)
                        phases.controllerCores[2] = controllerCores(since: &cpu)
                        print("   victims: " + Self.describe(phases.victimUnlimited))
                    }
                    return phases
                }
            }
        }
        report(phases)
    }

    /// The calls of each phase.
    struct Phases: Sendable {
        var baseline: [Call] = []
        var victimUnderFlood: [Call] = []
        var flood: [Call] = []
        /// Phase 3 (empty with --no-unlimited).
        var victimUnlimited: [Call] = []
        var unlimited: [Call] = []
        /// The controller's CPU use (user + system, in cores) in each phase, with --controller-pid.
        var controllerCores: [Double?] = [nil, nil, nil]
    }

    /// The controller's user + system CPU seconds and when they were read; nil without
    /// --controller-pid (or when /proc cannot tell).
    private func controllerCPU() -> (seconds: Double, at: ContinuousClock.Instant)? {
        guard let controllerPID,
            let stat = try? String(contentsOfFile: "/proc/\(controllerPID)/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return nil }
        // After "pid (comm)": state is field 3, utime and stime fields 14 and 15, in clock ticks.
        let fields = stat[stat.index(after: close)...].split(separator: " ")
        guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { return nil }
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        return ((user + system) / (ticks > 0 ? ticks : 100), .now)
    }

    /// Cores the controller used since `start` (which it then moves to now).
    private func controllerCores(since start: inout (seconds: Double, at: ContinuousClock.Instant)?) -> Double? {
        guard let before = start, let now = controllerCPU() else { return nil }
        start = now
        let wall = (now.at - before.at).inSeconds
        return wall > 0 ? (now.seconds - before.seconds) / wall : nil
    }

    // MARK: - Report

    private func report(_ phases: Phases) {
        let (baseline, victimUnderFlood, flood) = (phases.baseline, phases.victimUnderFlood, phases.flood)
        let seconds = Int(duration.rounded(.up))
        print("\nflooder per second (by the second each request started):")
        print("  second  requests  granted  refused  failed")
        for second in 0..<seconds {
            let calls = flood.filter { Int($0.start) == second }
            print("  " + [
                pad("\(second)", 6), pad("\(calls.count)", 9), pad("\(calls.count { $0.outcome == .granted })", 8),
                pad("\(calls.count { $0.outcome == .refused })", 8), pad("\(calls.count { $0.outcome == .failed })", 7),
            ].joined(separator: "  "))
        }
        if let refusal = flood.first(where: { $0.outcome == .refused })?.detail { print("  a refusal reads: \(refusal)") }
        if let failure = flood.first(where: { $0.outcome == .failed })?.detail { print("  a failure reads: \(failure)") }

        let before = Statistics.Latencies(baseline.filter { $0.outcome == .granted }.map(\.milliseconds))
        let during = Statistics.Latencies(victimUnderFlood.filter { $0.outcome == .granted }.map(\.milliseconds))
        let failedBefore = baseline.count { $0.outcome != .granted }
        let failedDuring = victimUnderFlood.count { $0.outcome != .granted }
        let granted = flood.count { $0.outcome == .granted }
        let refused = flood.count { $0.outcome == .refused }
        let failed = flood.count { $0.outcome == .failed }
        let requestsPerSecond = Double(flood.count) / duration
        let grantedPerSecond = Double(granted) / duration
        let refusedPerSecond = Double(refused) / duration
        // After the burst: from the first refusal (the bucket empty) to the end of the phase.
        let firstRefusal = flood.filter { $0.outcome == .refused }.map(\.start).min()
        let sustained: Double? = firstRefusal.flatMap { first in
            let window = duration - first
            return window >= 1 ? Double(flood.count { $0.outcome == .granted && $0.start > first }) / window : nil
        }
        let grantedAtRefusal = firstRefusal.map { first in flood.count { $0.outcome == .granted && $0.start <= first } }
        let ceiling = Double(expectedBurst) + expectedRate * duration

        let unlimitedRun = !phases.victimUnlimited.isEmpty
        let without = Statistics.Latencies(phases.victimUnlimited.filter { $0.outcome == .granted }.map(\.milliseconds))
        let failedWithout = phases.victimUnlimited.count { $0.outcome != .granted }

        func ratio(_ a: Double, _ b: Double) -> String { b > 0 ? Statistics.format(a / b, digits: 2) + "x" : "-" }
        print("\nvictim Identity.Certify (granted calls), baseline against under flood\(unlimitedRun ? ", and under the unlimited admin flood" : ""):")
        func line(_ label: String, _ a: String, _ b: String, _ r: String = "", _ c: String = "", _ rc: String = "") {
            print("  " + pad(label, 24) + pad(a, 10) + pad(b, 13) + pad(r, 8) + (unlimitedRun ? pad(c, 16) + rc : ""))
        }
        line("", "baseline", "under flood", "ratio", "admin, no limit", "ratio")
        line("calls", "\(baseline.count)", "\(victimUnderFlood.count)", "", "\(phases.victimUnlimited.count)")
        for (label, a, b, c) in [("p50 (ms)", before.p50, during.p50, without.p50), ("p99 (ms)", before.p99, during.p99, without.p99), ("max (ms)", before.max, during.max, without.max)] {
            line(label, Statistics.format(a, digits: 2), Statistics.format(b, digits: 2), ratio(b, a), Statistics.format(c, digits: 2), ratio(c, a))
        }
        line("failures", "\(failedBefore)", "\(failedDuring)", "", "\(failedWithout)")
        let cores = phases.controllerCores.map { $0.map { Statistics.format($0, digits: 2) } ?? "-" }
        if phases.controllerCores[0] != nil { line("controller CPU (cores)", cores[0], cores[1], "", cores[2]) }
        for (label, calls) in [("baseline", baseline), ("flood", victimUnderFlood), ("admin flood", phases.victimUnlimited)] {
            if let detail = calls.first(where: { $0.outcome != .granted })?.detail { print("  a victim failure (\(label)): \(detail)") }
        }
        print("flooder, \(callers) callers for \(Statistics.format(duration)) s:")
        print("  requests/s \(Statistics.format(requestsPerSecond)), granted/s \(Statistics.format(grantedPerSecond)), refused/s \(Statistics.format(refusedPerSecond)), failed \(failed)")
        print("  granted \(granted) in all (burst \(expectedBurst) + \(Statistics.format(expectedRate)) /s x \(Statistics.format(duration)) s = \(Int(ceiling)) at most)")
        let atRate: Bool
        if let sustained, let firstRefusal, let grantedAtRefusal {
            // Within 20 % (or 1 /s for low rates) of the configured rate, and never above the
            // bucket's ceiling (one grant of slack for a refill landing at the edge).
            let tolerance = max(1, expectedRate * 0.2)
            atRate = abs(sustained - expectedRate) <= tolerance && Double(granted) <= ceiling + 1
            print("  burst spent after \(Statistics.format(firstRefusal * 1000, digits: 0)) ms (\(grantedAtRefusal) granted by then); "
                + "granted after the burst: \(Statistics.format(sustained, digits: 2)) /s against \(Statistics.format(expectedRate)) /s configured: "
                + (atRate ? "stays at the configured rate" : "NOT at the configured rate"))
        } else {
            atRate = false
            print("  the flooder was \(firstRefusal == nil ? "never refused" : "refused only in the last second"): the limit was not reached, NOT at the configured rate")
        }

        Statistics.result("certify_flood.victim.baseline.calls", Double(baseline.count), "calls")
        before.printResults("certify_flood.victim.baseline")
        Statistics.result("certify_flood.victim.baseline.failures", Double(failedBefore), "calls")
        Statistics.result("certify_flood.victim.flood.calls", Double(victimUnderFlood.count), "calls")
        during.printResults("certify_flood.victim.flood")
        Statistics.result("certify_flood.victim.flood.failures", Double(failedDuring), "calls")
        if before.p50 > 0 { Statistics.result("certify_flood.victim.p50_ratio", during.p50 / before.p50, "x") }
        if before.p99 > 0 { Statistics.result("certify_flood.victim.p99_ratio", during.p99 / before.p99, "x") }
        Statistics.result("certify_flood.flood.requests_per_second", requestsPerSecond, "per_s")
        Statistics.result("certify_flood.flood.granted_per_second", grantedPerSecond, "per_s")
        Statistics.result("certify_flood.flood.refused_per_second", refusedPerSecond, "per_s")
        Statistics.result("certify_flood.flood.failed", Double(failed), "calls")
        Statistics.result("certify_flood.flood.granted", Double(granted), "calls")
        Statistics.result("certify_flood.flood.refused", Double(refused), "calls")
        if let sustained { Statistics.result("certify_flood.flood.granted_after_burst_per_second", sustained, "per_s") }
        Statistics.result("certify_flood.flood.at_configured_rate", atRate ? 1 : 0, "bool")
        for (index, name) in ["baseline", "flood", "unlimited"].enumerated() {
            if let used = phases.controllerCores[index] { Statistics.result("certify_flood.controller_cpu.\(name)", used, "cores") }
        }
        if unlimitedRun {
            let unlimitedGranted = phases.unlimited.count { $0.outcome == .granted }
            let unlimitedFailed = phases.unlimited.count { $0.outcome != .granted }
            print("the same flood with the admin token (not limited): requests/s \(Statistics.format(Double(phases.unlimited.count) / duration)), "
                + "granted/s \(Statistics.format(Double(unlimitedGranted) / duration)), failed \(unlimitedFailed)")
            if let detail = phases.unlimited.first(where: { $0.outcome != .granted })?.detail { print("  a failure reads: \(detail)") }
            Statistics.result("certify_flood.victim.unlimited.calls", Double(phases.victimUnlimited.count), "calls")
            without.printResults("certify_flood.victim.unlimited")
            Statistics.result("certify_flood.victim.unlimited.failures", Double(failedWithout), "calls")
            if before.p50 > 0 { Statistics.result("certify_flood.victim.unlimited_p50_ratio", without.p50 / before.p50, "x") }
            if before.p99 > 0 { Statistics.result("certify_flood.victim.unlimited_p99_ratio", without.p99 / before.p99, "x") }
            Statistics.result("certify_flood.unlimited.requests_per_second", Double(phases.unlimited.count) / duration, "per_s")
            Statistics.result("certify_flood.unlimited.granted_per_second", Double(unlimitedGranted) / duration, "per_s")
        }
    }

    private func pad(_ text: String, _ width: Int) -> String {
        text.count >= width ? text + " " : text + String(repeating: " ", count: width - text.count)
    }

    private static func describe(_ calls: [Call]) -> String {
        let latencies = Statistics.Latencies(calls.filter { $0.outcome == .granted }.map(\.milliseconds))
        return "\(calls.count) calls, \(calls.count { $0.outcome == .granted }) granted, "
            + "\(calls.count { $0.outcome == .refused }) refused, \(calls.count { $0.outcome == .failed }) failed; \(latencies.summary)"
    }

    // MARK: - Phases

    /// `attempts` one every `interval` from `start`, each in its own task (open loop).
    private static func paced(
        _ client: IdentityClient, _ attempts: [Attempt], interval: Duration, start: ContinuousClock.Instant = .now
    ) async -> [Call] {
        await withTaskGroup(of: Call.self) { group in
            for (index, attempt) in attempts.enumerated() {
                try? await Task.sleep(until: start + interval * index, clock: .continuous)
                group.addTask { await certify(client, attempt, since: start) }
            }
            var calls: [Call] = []
            for await call in group { calls.append(call) }
            return calls.sorted { $0.start < $1.start }
        }
    }

    /// `callers` loops, spread over `clients`, each certifying the next CSR of the pool as soon as
    /// its previous call answered, until `length` after `start`.
    private static func flood(
        _ clients: [IdentityClient], _ pool: [Attempt], callers: Int, start: ContinuousClock.Instant, for length: Duration
    ) async -> [Call] {
        let end = start + length
        return await withTaskGroup(of: [Call].self) { group in
            for caller in 0..<callers {
                group.addTask {
                    let client = clients[caller % clients.count]
                    var calls: [Call] = []
                    var next = caller
                    while ContinuousClock.now < end {
                        calls.append(await certify(client, pool[next % pool.count], since: start))
                        next += callers
                    }
                    return calls
                }
            }
            var all: [Call] = []
            for await calls in group { all += calls }
            return all
        }
    }

    // MARK: - Calls

    private static func message(_ attempt: Attempt) -> Starling_V1_CertifyRequest {
        var message = Starling_V1_CertifyRequest()
        message.identity = attempt.request.identity.dnsName
        message.token = attempt.token
        message.certificateSigningRequest = Data(attempt.request.der)
        return message
    }

    /// One Identity.Certify, timed, its outcome classified; never throws.
    private static func certify(_ client: IdentityClient, _ attempt: Attempt, since origin: ContinuousClock.Instant) async -> Call {
        let begin = ContinuousClock.now
        var outcome = Outcome.granted
        var detail: String?
        do {
            let response = try await client.certify(message(attempt), options: ControllerConnections.unary(timeout: .seconds(10)))
            if response.chain.isEmpty { (outcome, detail) = (.failed, "an empty chain") }
        } catch let error as RPCError where error.code == .resourceExhausted {
            (outcome, detail) = (.refused, error.message)
        } catch let error as RPCError {
            (outcome, detail) = (.failed, "\(error.code): \(error.message)")
        } catch {
            (outcome, detail) = (.failed, "\(error)")
        }
        let end = ContinuousClock.now
        return Call(
            start: (begin - origin).inSeconds, milliseconds: (end - begin).inSeconds * 1000,
            outcome: outcome, detail: detail)
    }

    /// A certify that must be granted, with a leaf for the CSR's key and identity.
    private static func checkedCertify(_ client: IdentityClient, _ attempt: Attempt) async throws {
        let response: Starling_V1_CertifyResponse
        do {
            response = try await client.certify(message(attempt), options: ControllerConnections.unary())
        } catch let error as RPCError {
            throw BenchError("Identity.Certify for \(attempt.request.identity) with its join token failed: \(error.message) (\(error.code))")
        }
        guard let leafDER = response.chain.first else {
            throw BenchError("Identity.Certify for \(attempt.request.identity) returned an empty chain")
        }
        let leaf = try Certificate(derEncoded: Array(leafDER))
        guard attempt.request.key.matches(leaf) else {
            throw BenchError("the certificate issued for \(attempt.request.identity) is not for the key of its CSR")
        }
        let expected = attempt.request.identity
        let names = (try? leaf.extensions.subjectAlternativeNames) ?? SubjectAlternativeNames()
        let named = names.contains { name in
            switch name {
            case .dnsName(let value): return MeshIdentity(dnsName: value) == expected
            case .uniformResourceIdentifier(let value): return MeshIdentity(spiffeURI: value) == expected
            default: return false
            }
        }
        guard named else { throw BenchError("the certificate issued for \(expected) does not name that identity") }
    }

    /// The admin certifies `probe` until the controller has an issuer (a mesh applied just before).
    private static func waitForIssuer(_ client: IdentityClient, _ probe: IdentityBenchmark.SigningRequest, patience: Duration) async throws {
        let deadline = ContinuousClock.now + patience
        var message = Starling_V1_CertifyRequest()
        message.identity = probe.identity.dnsName
        message.certificateSigningRequest = Data(probe.der)
        while true {
            do {
                _ = try await client.certify(message, options: ControllerConnections.unary())
                return
            } catch let error as RPCError where error.code == .failedPrecondition && ContinuousClock.now < deadline {
                try await Task.sleep(for: .milliseconds(250))
            } catch let error as RPCError {
                throw BenchError(
                    "the controller cannot sign: \(error.message) (\(error.code)). Install a mesh first: "
                        + "`starling install ... | starling apply -f -`")
            }
        }
    }

    private static func createToken(_ mesh: Starling_V1_Mesh.Client<HTTP2ClientTransport.Posix>, serviceAccount: String) async throws -> String {
        var request = Starling_V1_CreateTokenRequest()
        request.namespace = "bench"
        request.serviceAccount = serviceAccount
        request.ttlSeconds = 3600
        do {
            let token = try await mesh.createToken(request, options: ControllerConnections.unary()).token
            guard !token.isEmpty else { throw BenchError("Mesh.CreateToken for bench/\(serviceAccount) returned an empty token") }
            return token
        } catch let error as RPCError {
            throw BenchError("Mesh.CreateToken for bench/\(serviceAccount) failed: \(error.message) (\(error.code)); the context must be an admin's")
        }
    }

    private static func signingRequest(_ identity: MeshIdentity) throws -> IdentityBenchmark.SigningRequest {
        let key = WorkloadKey()
        return IdentityBenchmark.SigningRequest(der: try key.csr(for: identity).der, identity: identity, key: key)
    }
}
