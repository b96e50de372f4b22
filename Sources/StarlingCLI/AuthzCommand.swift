import ArgumentParser
import Foundation
import GRPCCore
import StarlingAPI
import StarlingCore
import SwiftProtobuf

/// `starling authz WORKLOAD -n NS`: the inbound policy the workload's proxy enforces, as the
/// controller computes it: per port and route, which policy admits whom, what happens to the
/// rest, and the default for ports no Server covers.
struct AuthzCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "authz", abstract: "Show the inbound authorization policy a workload enforces, per port and route.")

    @OptionGroup var context: ContextOptions

    @Argument(help: "The workload (NAME or workload/NAME; see starling get workloads).")
    var workload: String

    @Option(name: .shortAndLong, help: "Namespace (default: default).")
    var namespace: String = "default"

    @Option(name: .shortAndLong, help: "Output: json or yaml (default: a table).")
    var output: OutputFormat = .table

    func validate() throws {
        if let problem = ResourceNames.dns1123SubdomainProblem(workloadName) {
            throw ValidationError("workload \"\(workload)\": \(problem)")
        }
        if let problem = ResourceNames.dns1123LabelProblem(namespace) {
            throw ValidationError("--namespace \(namespace): \(problem)")
        }
    }

    var workloadName: String {
        for prefix in ["workload/", "workloads/", "wl/"] where workload.hasPrefix(prefix) { return String(workload.dropFirst(prefix.count)) }
        return workload
    }

    func run() async throws {
        let resolved = try context.resolve()
        let (namespace, name) = (self.namespace, workloadName)
        let update = try await ControllerClient.with(resolved) { client in
            try await client.policy.watchInbound(.with {
                $0.namespace = namespace
                $0.name = name
            }) { response in
                for try await update in response.messages { return update }
                throw CLIError("the controller closed the policy stream without an answer")
            }
        }
        guard update.workloadKnown else {
            throw CLIError("no workload \(name) in namespace \(namespace) (see: starling get workloads -n \(namespace))")
        }
        let policy = try InboundPolicyJSON.decode(update.policyJson)
        switch output {
        case .json:
            print(String(decoding: try InboundPolicyJSON.encode(policy, pretty: true), as: UTF8.self))
        case .yaml:
            // JSON is YAML: the policy's JSON read back as a document, then written as YAML.
            let text = String(decoding: try InboundPolicyJSON.encode(policy), as: UTF8.self)
            guard case .object(let object)? = try ResourceDecoder.parseDocuments(text, source: "policy").first else {
                throw CLIError("the controller's policy is not a JSON object")
            }
            print(ResourceEncoder.yaml(object: object), terminator: "")
        default:
            print(Self.render(policy))
            for problem in update.problems { print("warning: \(problem)") }
        }
    }

    /// The table: one row per authorization of each server and route, one for what no
    /// authorization admits, one for the ports no Server covers.
    static func render(_ policy: InboundPolicy) -> String {
        var table = Table(["SERVER", "PORTS", "ROUTE", "AUTHORIZATION", "CALLERS"])
        for server in policy.servers {
            let ports = server.ports.map(String.init).joined(separator: ",")
            for authorization in server.authorizations {
                table.add([server.name, ports, "*", authorization.policy, callers(authorization)])
            }
            for route in server.routes {
                for authorization in route.authorizations {
                    table.add([server.name, ports, route.name, authorization.policy, callers(authorization)])
                }
            }
            if !server.routes.isEmpty {
                table.add([server.name, ports, "(no route)", "-", "denied"])
            }
            table.add([server.name, ports, "(otherwise)", "accessPolicy: \(server.accessPolicy.rawValue)", describe(server.accessPolicy)])
        }
        table.add(["default", "other ports", "*", "\(policy.defaultPolicy.rawValue) (\(policy.defaultPolicySource.rawValue))", describe(policy.defaultPolicy)])
        return table.render()
    }

    static func callers(_ authorization: InboundPolicy.Authorization) -> String {
        authorization.requirements.map { r in
            var parts: [String] = []
            if !r.identities.isEmpty { parts.append(r.identities.joined(separator: ",")) }
            if !r.clusters.isEmpty { parts.append("clusters " + r.clusters.joined(separator: ",")) }
            if !r.networks.isEmpty {
                parts.append(
                    "networks " + r.networks.map { n in n.cidr.description + (n.except.isEmpty ? "" : " except " + n.except.map(\.description).joined(separator: ",")) }
                        .joined(separator: ","))
            }
            return parts.joined(separator: " from ")
        }.joined(separator: " and ")
    }

    static func describe(_ access: AccessPolicy) -> String {
        switch access {
        case .allUnauthenticated: "allowed"
        case .allAuthenticated: "allowed with a mesh identity"
        case .clusterAuthenticated: "allowed with a mesh identity from the cluster's networks or a linked gateway"
        case .deny: "denied"
        case .audit: "allowed, logged and counted as would-deny"
        }
    }
}
