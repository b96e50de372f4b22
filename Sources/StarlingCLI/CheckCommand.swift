import ArgumentParser
import Foundation
import GRPCCore
import StarlingAPI

/// `starling check [--pre] [-o json]`: ✓/× per check with a hint for each failure; exits
/// non-zero when one fails. Warnings (‼) do not fail the command.
struct CheckCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check", abstract: "Check that the cluster's control plane and mesh are healthy.")

    @OptionGroup var context: ContextOptions

    @Flag(help: "Checks to run before installing the mesh.")
    var pre = false

    @Flag(help: "Also check links to other clusters: credentials, trust anchors, mirrors, gateways.")
    var multicluster = false

    @Option(name: .shortAndLong, help: "Output: table (default) or json.")
    var output: OutputFormat = .table

    func validate() throws {
        guard output == .table || output == .json else { throw ValidationError("-o must be json (or omitted)") }
    }

    struct Result: Codable {
        var category: String
        var name: String
        var status: String  // ok, warning, error
        var message: String
        var hint: String?
    }

    func run() async throws {
        var results: [Result] = []
        func add(_ category: String, _ name: String, _ status: String, _ message: String, _ hint: String? = nil) {
            results.append(Result(category: category, name: name, status: status, message: message, hint: hint))
        }
        let resolved: ResolvedContext
        do {
            resolved = try context.resolve()
            add("starling-config", "config", "ok", "context \(resolved.name) found in \(resolved.configPath)")
        } catch {
            add("starling-config", "config", "error", "no usable context: \(error)",
                "create a cluster (`starling cluster create NAME`) or point STARLING_CONFIG at a credentials file")
            try report(results)
            return
        }
        let isPre = pre
        do {
            let status = try await ControllerClient.with(resolved, timeout: .seconds(5)) { client in
                try await client.mesh.status(Starling_V1_StatusRequest())
            }
            add("starling-controller", "reachable", "ok", "controller API is reachable at \(resolved.serverHost):\(resolved.serverPort)")
            add("starling-controller", "credential", "ok", "admin credential is accepted")
            let skewMs = abs(Int64(Date().timeIntervalSince1970 * 1000) - status.nowMs)
            if skewMs < 5_000 {
                add("starling-controller", "clock", "ok", "clocks agree (skew \(skewMs) ms)")
            } else {
                add("starling-controller", "clock", "error", "the controller's clock is \(skewMs / 1000) s off",
                    "synchronize the clocks (chrony/ntp): certificates and tokens depend on them")
            }
            let byName = Dictionary(status.checks.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
            if let store = byName["store"] {
                add("starling-controller", "store", store.status, store.message, store.hint.isEmpty ? nil : store.hint)
            }
            if isPre {
                if byName["identity"]?.status == "ok" {
                    add("pre-install", "not-installed", "warning", "the mesh is already installed in cluster \(status.clusterName)",
                        "installing again replaces the identity configuration")
                } else {
                    add("pre-install", "not-installed", "ok", "the mesh is not installed yet in cluster \(status.clusterName)")
                }
            } else {
                for check in status.checks where check.name != "store" && check.name != "destination" {
                    add("starling-identity", check.name, check.status, check.message, check.hint.isEmpty ? nil : check.hint)
                }
                let destination = await destinationAnswers(resolved)
                if let problem = destination {
                    add("starling-destination", "destination", "error", "destination API did not answer: \(problem)",
                        "see the controller log (`starling cluster list` shows where)")
                } else {
                    add("starling-destination", "destination", "ok", "destination API answers")
                }
            }
        } catch let error as CLIError {
            add("starling-controller", "reachable", "error", error.message, error.hint)
        }
        if multicluster {
            for r in await MulticlusterChecks(context: resolved).run() {
                add("starling-multicluster", r.name, r.status, r.message, r.hint)
            }
        }
        try report(results)
    }

    /// Opens a destination stream and waits for its first message: the whole path a proxy uses.
    private func destinationAnswers(_ resolved: ResolvedContext) async -> String? {
        do {
            return try await withThrowingTaskGroup(of: String?.self) { group in
                group.addTask {
                    try await ControllerClient.with(resolved) { client in
                        var request = Starling_V1_GetDestination()
                        request.path = "starling-check.starling.svc.cluster.local:80"
                        return try await client.destination.getProfile(request) { response in
                            for try await _ in response.messages { return nil }
                            return "the stream ended without an answer"
                        }
                    }
                }
                group.addTask {
                    try await Task.sleep(for: .seconds(5))
                    return "no answer within 5 s"
                }
                let first = try await group.next() ?? "no answer"
                group.cancelAll()
                return first
            }
        } catch {
            return "\(error)"
        }
    }

    private func report(_ results: [Result]) throws {
        let failed = results.contains { $0.status == "error" }
        if output == .json {
            struct Report: Codable { var success: Bool; var checks: [Result] }
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            let data = try encoder.encode(Report(success: !failed, checks: results))
            print(String(decoding: data, as: UTF8.self))
        } else {
            var category = ""
            for r in results {
                if r.category != category {
                    if !category.isEmpty { print("") }
                    category = r.category
                    print(category)
                    print(String(repeating: "-", count: category.count))
                }
                let mark = r.status == "ok" ? "✓" : (r.status == "warning" ? "‼" : "×")
                print("\(mark) \(r.message)")
                if r.status != "ok", let hint = r.hint { print("    hint: \(hint)") }
            }
            print("")
            print("Status check results are \(failed ? "×" : "✓")")
        }
        if failed { throw ExitCode.failure }
    }
}
