import ArgumentParser
import Foundation
import StarlingAPI
import StarlingCore

/// `starling get KIND [NAME] [-n NS | -A] [-l SELECTOR] [-o yaml|json|wide|name]`.
struct GetCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "get", abstract: "Show resources as a table, YAML or JSON.")

    @OptionGroup var context: ContextOptions

    @Argument(help: "The kind: a name, plural or short name (svc, ts, ns, wl, ...).")
    var kind: String

    @Argument(help: "A resource name; all when omitted.")
    var name: String?

    @Option(name: .shortAndLong, help: "Namespace (default: default).")
    var namespace: String?

    @Flag(name: [.customShort("A"), .customLong("all-namespaces")], help: "List across all namespaces.")
    var allNamespaces = false

    @Option(name: [.customShort("l"), .long], help: "Label selector, e.g. app=podinfo,tier!=db.")
    var selector: String?

    @Option(name: .shortAndLong, help: "Output: yaml, json, wide or name (default: a table).")
    var output: OutputFormat = .table

    func validate() throws {
        guard ResourceKind.lookup(kind) != nil else {
            throw ValidationError("unknown kind \"\(kind)\"; known: \(ResourceKind.all.map { $0.plural }.joined(separator: ", "))")
        }
        if let selector { _ = try LabelSelector.parse(selector) }
    }

    func run() async throws {
        guard let kind = ResourceKind.lookup(kind) else { return }
        let resolved = try context.resolve()
        let resources: [Resource] = try await ControllerClient.with(resolved) { client in
            if let name {
                var request = Starling_V1_GetRequest()
                request.kind = kind.name
                request.namespace = namespace ?? ""
                request.name = name
                let response = try await client.resources.get(request)
                return [try ResourceDecoder.decodeStored(response.resourceJson)]
            }
            var request = Starling_V1_ListRequest()
            request.kind = kind.name
            request.namespace = namespace ?? ""
            request.allNamespaces = allNamespaces
            request.labelSelector = selector ?? ""
            return try await client.resources.list(request).resourcesJson.map { json throws(ResourceError) in
                try ResourceDecoder.decodeStored(json)
            }
        }
        switch output {
        case .yaml: print(ResourceEncoder.yaml(resources), terminator: "")
        case .json: print(ResourceEncoder.json(resources))
        case .name: resources.forEach { print("\(kind.name.lowercased())/\($0.metadata.name)") }
        case .table, .wide:
            if resources.isEmpty {
                let scope = kind.namespaced ? (allNamespaces ? "" : " in \(namespace ?? "default") namespace") : ""
                FileHandle.standardError.write(Data("No resources found\(scope).\n".utf8))
                return
            }
            print(ResourceTable.render(resources, kind: kind, showNamespace: allNamespaces && kind.namespaced, wide: output == .wide))
        }
    }
}

/// The table columns of each kind, like kubectl's printers.
enum ResourceTable {
    static func render(_ resources: [Resource], kind: ResourceKind, showNamespace: Bool, wide: Bool) -> String {
        let (header, row) = columns(kind.name, wide: wide)
        var table = Table((showNamespace ? ["NAMESPACE"] : []) + header)
        for r in resources {
            table.add((showNamespace ? [r.metadata.namespace ?? ""] : []) + row(r))
        }
        return table.render()
    }

    private static func columns(_ kind: String, wide: Bool) -> ([String], (Resource) -> [String]) {
        switch kind {
        case "Service":
            return (["NAME", "PORTS", "ENDPOINTS", "AGE"] + (wide ? ["LABELS"] : []), { r in
                let spec = try? ServiceSpec(r)
                let ports = spec?.ports.map { p in "\(p.port)\(p.targetPort.map { ":\($0)" } ?? "")/\(p.appProtocol ?? p.protocol)" }
                let selector = spec?.effectiveSelector(serviceName: r.metadata.name)
                let endpoints = r.metadata.labels["mirror.starling.io/mirrored-service"] == "true"
                    ? "<mirror of \(r.metadata.labels["mirror.starling.io/cluster-name"] ?? "?")>" : labels(selector ?? [:])
                return [r.metadata.name, ports?.joined(separator: ",") ?? "<invalid>", endpoints, Age.since(r.metadata.creationTimestamp)]
                    + (wide ? [labels(r.metadata.labels)] : [])
            })
        case "Workload":
            return (["NAME", "ADDRESS", "PORTS", "IDENTITY", "READY", "AGE"] + (wide ? ["LABELS"] : []), { r in
                let spec = try? WorkloadSpec(r)
                let ports = spec?.ports.map { p in p.appPort.map { "\(p.port)->\($0)" } ?? "\(p.port)" }.joined(separator: ",")
                return [r.metadata.name, spec?.address ?? "", ports ?? "", spec?.identity ?? "<none>",
                        spec.map { $0.ready ? "true" : "false" } ?? "", Age.since(r.metadata.creationTimestamp)]
                    + (wide ? [labels(r.metadata.labels)] : [])
            })
        case "TrafficSplit":
            return (["NAME", "SERVICE", "BACKENDS", "AGE"], { r in
                let spec = try? TrafficSplitSpec(r)
                let backends = spec?.backends.map { "\($0.service)=\(Quantity.formatMilli($0.weight))" }.joined(separator: ",")
                return [r.metadata.name, spec?.service ?? "", backends ?? "", Age.since(r.metadata.creationTimestamp)]
            })
        case "Link":
            return (["NAME", "CLUSTER", "API", "GATEWAY", "AGE"], { r in
                let spec = try? LinkSpec(r)
                return [r.metadata.name, spec?.targetClusterName ?? "", spec?.apiAddress ?? "",
                        spec.map { "\($0.gatewayAddress):\($0.gatewayPort)" } ?? "", Age.since(r.metadata.creationTimestamp)]
            })
        case "Secret":
            return (["NAME", "TYPE", "DATA", "AGE"], { r in
                let spec = try? SecretSpec(r)
                return [r.metadata.name, spec?.type ?? "", "\(spec?.data.count ?? 0)", Age.since(r.metadata.creationTimestamp)]
            })
        case "Server":
            return (["NAME", "PORT", "SELECTOR", "PROTOCOL", "ACCESS", "AGE"], { r in
                let spec = try? ServerSpec(r)
                return [r.metadata.name, spec.map { "\($0.port)" } ?? "", spec.map { "\($0.podSelector)" } ?? "",
                        spec?.proxyProtocol ?? "", spec?.accessPolicy.rawValue ?? "", Age.since(r.metadata.creationTimestamp)]
            })
        case "AuthorizationPolicy":
            return (["NAME", "TARGET", "AUTHENTICATIONS", "AGE"], { r in
                let spec = try? AuthorizationPolicySpec(r)
                let refs = spec?.requiredAuthenticationRefs.map { "\($0.kind)/\($0.name)" }.joined(separator: ",")
                return [r.metadata.name, spec.map { "\($0.targetRef.kind)/\($0.targetRef.name)" } ?? "", refs ?? "",
                        Age.since(r.metadata.creationTimestamp)]
            })
        case "MeshTLSAuthentication":
            return (["NAME", "IDENTITIES", "CLUSTERS", "AGE"], { r in
                let spec = try? MeshTLSAuthenticationSpec(r)
                let identities = (spec?.identities ?? []) + (spec?.identityRefs.map { "\($0.kind)/\($0.name)" } ?? [])
                return [r.metadata.name, identities.joined(separator: ","), spec.map { $0.clusters.isEmpty ? "*" : $0.clusters.joined(separator: ",") } ?? "",
                        Age.since(r.metadata.creationTimestamp)]
            })
        case "NetworkAuthentication":
            return (["NAME", "NETWORKS", "AGE"], { r in
                let spec = try? NetworkAuthenticationSpec(r)
                return [r.metadata.name, spec?.networks.map(\.cidr.description).joined(separator: ",") ?? "", Age.since(r.metadata.creationTimestamp)]
            })
        default:
            return (["NAME", "AGE"] + (wide ? ["LABELS"] : []), { r in
                [r.metadata.name, Age.since(r.metadata.creationTimestamp)] + (wide ? [labels(r.metadata.labels)] : [])
            })
        }
    }

    static func labels(_ l: [String: String]) -> String {
        l.isEmpty ? "<none>" : l.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
    }
}
