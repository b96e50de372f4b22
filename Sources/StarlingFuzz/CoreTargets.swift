import StarlingCore
import StarlingMulticluster

/// Targets over `StarlingCore`'s parsers: no I/O.
enum CoreTargets {
    // MARK: - Resources

    /// YAML or JSON as `starling apply -f` reads it. What decodes must survive each form the
    /// mesh writes it back in (the store's compact JSON, `get -o yaml`, `get -o json`: the
    /// encoder promises equal resources), and each kind's typed spec must read its own output.
    static func resources(_ data: [UInt8]) {
        let text = String(decoding: data, as: UTF8.self)
        guard let resources = try? ResourceDecoder.decode(text, source: "fuzz") else { return }
        for resource in resources {
            let compact = ResourceEncoder.compactJSON(resource)
            let stored = try? ResourceDecoder.decodeStored(compact)
            check(stored == resource, "the store's JSON does not read back the same: \(compact)")
            specRoundTrip(resource)
        }
        let yaml = ResourceEncoder.yaml(resources)
        let fromYAML = try? ResourceDecoder.decode(yaml, source: "fuzz-yaml")
        check(fromYAML == resources, "`get -o yaml` output does not read back the same:\n\(yaml)")
        let json = ResourceEncoder.json(resources)
        let fromJSON = try? ResourceDecoder.decode(json, source: "fuzz-json")
        check(fromJSON == resources, "`get -o json` output does not read back the same:\n\(json)")
    }

    private static func specRoundTrip(_ resource: Resource) {
        switch resource.kind {
        case ResourceKind.namespace.name: specRoundTrip(resource, as: NamespaceSpec.self)
        case ResourceKind.service.name: specRoundTrip(resource, as: ServiceSpec.self)
        case ResourceKind.secret.name: specRoundTrip(resource, as: SecretSpec.self)
        case ResourceKind.workload.name: specRoundTrip(resource, as: WorkloadSpec.self)
        case ResourceKind.trafficSplit.name: specRoundTrip(resource, as: TrafficSplitSpec.self)
        case ResourceKind.httpRoute.name:
            let spec = specRoundTrip(resource, as: HTTPRouteSpec.self)
            // The matches a proxy receives must order and match without trapping.
            let matches = spec?.rules.flatMap(\.requestMatches) ?? []
            for a in matches {
                for b in matches {
                    check(
                        !(HTTPRouteMatch.isMoreSpecific(a, than: b) && HTTPRouteMatch.isMoreSpecific(b, than: a)),
                        "isMoreSpecific is not a strict order: \(a) and \(b)")
                }
                _ = a.matches(method: a.method ?? "GET", path: Substring(a.path), header: { a.headers[$0] })
            }
        case ResourceKind.link.name:
            if let link = specRoundTrip(resource, as: LinkSpec.self) {
                check(!link.gatewayAddresses.isEmpty, "a Link decoded with no gateway address")
                _ = link.gatewayEndpoints
            }
        case ResourceKind.meshConfig.name: specRoundTrip(resource, as: MeshConfigSpec.self)
        case ResourceKind.server.name: specRoundTrip(resource, as: ServerSpec.self)
        case ResourceKind.authorizationPolicy.name: specRoundTrip(resource, as: AuthorizationPolicySpec.self)
        case ResourceKind.meshTLSAuthentication.name: specRoundTrip(resource, as: MeshTLSAuthenticationSpec.self)
        case ResourceKind.networkAuthentication.name: specRoundTrip(resource, as: NetworkAuthenticationSpec.self)
        default: break
        }
    }

    /// A validated resource's typed spec decodes, and decoding its own body gives the same spec.
    @discardableResult
    private static func specRoundTrip<Spec: ResourceSpec>(_ resource: Resource, as _: Spec.Type) -> Spec? {
        let spec: Spec
        do {
            spec = try Spec(resource)
        } catch {
            check(false, "\(resource.kind) \(resource.metadata.name) validated, but its spec does not decode: \(error)")
            return nil
        }
        var written = resource
        written.apiVersion = spec.apiVersion
        written.body = spec.body
        let again = try? Spec(written)
        check(again == spec, "\(resource.kind) spec does not read its own body back the same: \(spec.body)")
        return spec
    }

    // MARK: - Label selectors

    /// `-l` selector text; what parses prints back to an equal selector, and matching labels
    /// read from the rest of the input does not trap.
    static func labelSelector(_ data: [UInt8]) {
        var input = FuzzInput(data)
        let text = input.line()
        var labels: [String: String] = [:]
        while !input.isEmpty {
            let line = input.line()
            let parts = line.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            labels[String(parts[0])] = parts.count > 1 ? String(parts[1]) : ""
        }
        guard let selector = try? LabelSelector.parse(text) else { return }
        _ = selector.matches(labels)
        _ = selector.kubernetesJSON
        let printed = selector.description
        let reparsed = try? LabelSelector.parse(printed)
        check(reparsed == selector, "selector \(selector) prints as \(printed), which does not parse back the same")
        check(reparsed?.matches(labels) == selector.matches(labels), "printed selector matches differently")
    }

    // MARK: - Quantities and durations

    /// One line each: what parses formats back to the same value.
    static func quantityAndDuration(_ data: [UInt8]) {
        var input = FuzzInput(data)
        let quantity = input.line()
        if let milli = try? Quantity.parseMilli(quantity) {
            let formatted = Quantity.formatMilli(milli)
            let again = try? Quantity.parseMilli(formatted)
            check(again == milli, "quantity \(quantity) = \(milli)m formats as \(formatted), which reads as \(String(describing: again))")
        }
        let duration = input.line()
        if let nanos = try? GoDuration.nanoseconds(duration) {
            let formatted = GoDuration.format(nanoseconds: nanos)
            let again = try? GoDuration.nanoseconds(formatted)
            check(again == nanos, "duration \(duration) = \(nanos)ns formats as \(formatted), which reads as \(String(describing: again))")
        }
        if let parsed = try? GoDuration.parse(duration) {
            _ = GoDuration.format(parsed)
            _ = try? GoDuration.seconds(duration)
        }
    }

    // MARK: - Authorization policy

    /// A caller (identity, cluster, address, method, path: one line each), then YAML resources:
    /// the Workload among them (or a stand-in) gets its inbound policy compiled from the rest,
    /// which must survive its JSON form (what the Policy stream carries) unchanged, and decide the
    /// caller the same way every time, on every port it names.
    static func authorizationPolicy(_ data: [UInt8]) {
        var input = FuzzInput(data)
        let identity = input.line()
        let cluster = input.line()
        let address = input.line()
        let method = input.line()
        let path = input.line()
        let resources = (try? ResourceDecoder.decode(input.rest(), source: "fuzz")) ?? []
        var bundle = InboundPolicyCompiler.NamespaceResources()
        var workload = Resource(name: "w", namespace: "test", labels: ["app": "w"], spec: WorkloadSpec(address: "127.0.0.1"))
        for r in resources {
            switch r.kind {
            case "Workload": workload = r
            case "Namespace": bundle.namespace = r
            case "Server": bundle.servers.append(r)
            case "AuthorizationPolicy": bundle.authorizationPolicies.append(r)
            case "MeshTLSAuthentication": bundle.meshTLSAuthentications.append(r)
            case "NetworkAuthentication": bundle.networkAuthentications.append(r)
            case "HTTPRoute": bundle.httpRoutes.append(r)
            default: break
            }
        }
        let (policy, _) = InboundPolicyCompiler(clusterName: "c").compile(workload: workload, in: bundle)
        guard let json = try? InboundPolicyJSON.encode(policy) else {
            check(false, "the policy does not encode: \(policy)")
            return
        }
        let decoded = try? InboundPolicyJSON.decode(json)
        check(decoded == policy, "the policy's JSON does not read back the same: \(String(decoding: json, as: UTF8.self))")
        let evaluator = InboundPolicyEvaluator(policy)
        let caller = PolicyCaller(
            identity: identity.isEmpty ? nil : identity, cluster: cluster.isEmpty ? nil : cluster,
            address: IPNetwork.parseAddress(address), viaGateway: cluster.hasPrefix("gw-"))
        let request = InboundPolicyEvaluator.Request(method: method, path: Substring(path), header: { $0 == "x-fuzz" ? path : nil })
        for port in Set(policy.servers.flatMap(\.ports) + [1]) {
            for r in [request, nil] {
                let a = evaluator.decide(port: port, caller: caller, request: r)
                let b = evaluator.decide(port: port, caller: caller, request: r)
                check(a == b, "the same call was decided two ways: \(a) and \(b)")
                check(!a.wouldDeny || a.allowed, "a would-deny decision that denies: \(a)")
                check(a.allowed || !a.reason.isEmpty, "a denial without a reason: \(a)")
                check(!(a.allowed && !a.wouldDeny) || !a.policy.isEmpty, "an allowed call without the policy that allowed it: \(a)")
            }
        }
    }

    // MARK: - HTTPRoute matching

    /// Two matches and a request, read from lines; precedence must be a strict order and
    /// matching must not trap on any path.
    static func routeMatch(_ data: [UInt8]) {
        var input = FuzzInput(data)
        func match(_ input: inout FuzzInput) -> HTTPRouteMatch {
            let flags = input.byte()
            let path = input.line()
            let method = flags & 2 != 0 ? input.line() : nil
            var headers: [String: String] = [:]
            for _ in 0..<Int(flags >> 4) {
                let line = input.line()
                let parts = line.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
                headers[parts[0].lowercased()] = parts.count > 1 ? String(parts[1]) : ""
            }
            return HTTPRouteMatch(pathType: flags & 1 != 0 ? .exact : .prefix, path: path, method: method, headers: headers)
        }
        let a = match(&input)
        let b = match(&input)
        let method = input.line()
        let path = input.line()
        var requestHeaders: [String: String] = [:]
        while !input.isEmpty {
            let line = input.line()
            let parts = line.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
            requestHeaders[parts[0].lowercased()] = parts.count > 1 ? String(parts[1]) : ""
        }
        check(
            !(HTTPRouteMatch.isMoreSpecific(a, than: b) && HTTPRouteMatch.isMoreSpecific(b, than: a)),
            "isMoreSpecific is not a strict order")
        check(!HTTPRouteMatch.isMoreSpecific(a, than: a), "a match is more specific than itself")
        let header: (String) -> String? = { requestHeaders[$0] }
        let matchesA = a.matches(method: method, path: Substring(path), header: header)
        let matchesB = b.matches(method: method, path: Substring(path), header: header)
        _ = MirrorLabels.gatewayHosts(path)
        // A request whose path is exactly a prefix match's path always matches it (method and
        // headers aside).
        if a.pathType == .prefix, a.method == nil, a.headers.isEmpty, a.path.hasPrefix("/"),
            !a.path.contains(where: { $0 == "?" || $0 == "#" })
        {
            check(a.matches(method: method, path: Substring(a.path), header: header), "a prefix does not match its own path \(a.path)")
        }
        _ = (matchesA, matchesB)
    }
}
