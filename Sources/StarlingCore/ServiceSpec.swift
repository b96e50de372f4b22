/// One port of a Service.
public struct ServicePort: Sendable, Hashable {
    /// Required when the Service has several ports; a DNS-1123 label.
    public var name: String?
    /// The port clients call, 1–65535.
    public var port: Int
    /// The workload port traffic goes to; nil means the same as `port`.
    public var targetPort: Int?
    /// `TCP` (default), `UDP` or `SCTP`.
    public var `protocol`: String
    /// The application protocol, e.g. `http`, `http2`, `grpc`, `opaque`, `postgresql`.
    public var appProtocol: String?

    public init(name: String? = nil, port: Int, targetPort: Int? = nil, protocol: String = "TCP", appProtocol: String? = nil) {
        self.name = name
        self.port = port
        self.targetPort = targetPort
        self.protocol = `protocol`
        self.appProtocol = appProtocol
    }

    /// The workload port traffic goes to.
    public var effectiveTargetPort: Int { targetPort ?? port }
}

/// The spec of a `Service`: its ports and the labels of the Workloads behind it.
public struct ServiceSpec: ResourceSpec {
    public static var resourceKind: ResourceKind { .service }

    public var ports: [ServicePort]
    /// Workload labels to match; empty means `app: SERVICE-NAME` (see `effectiveSelector`).
    public var selector: [String: String]
    /// `ClusterIP`, `NodePort`, ... kept for Kubernetes compatibility; Starling does not use it.
    public var type: String?

    public init(ports: [ServicePort], selector: [String: String] = [:], type: String? = nil) {
        self.ports = ports
        self.selector = selector
        self.type = type
    }

    public init(_ resource: Resource) throws(ResourceError) {
        let spec = try FieldReader.spec(of: resource)
        guard let portReaders = try spec.objects("ports"), !portReaders.isEmpty else {
            throw ResourceError(.missingField, "a Service needs at least one port", fieldPath: spec.at("ports"))
        }
        var ports: [ServicePort] = []
        var names = Set<String>()
        var numbers = Set<String>()
        for reader in portReaders {
            let name = try reader.string("name")
            if let name {
                if let problem = ResourceNames.dns1123LabelProblem(name) {
                    throw reader.invalid("name", "invalid port name \(JSONTextWriter.quoted(name)): \(problem)")
                }
                guard names.insert(name).inserted else {
                    throw reader.invalid("name", "duplicate port name \(JSONTextWriter.quoted(name))")
                }
            } else if portReaders.count > 1 {
                throw ResourceError(
                    .missingField, "each port needs a name when a Service has several ports", fieldPath: reader.at("name"))
            }
            guard let port = try reader.port("port") else { throw reader.missing("port") }
            let proto = try reader.string("protocol") ?? "TCP"
            guard ["TCP", "UDP", "SCTP"].contains(proto) else {
                throw reader.invalid("protocol", "expected TCP, UDP or SCTP, got \(JSONTextWriter.quoted(proto))")
            }
            guard numbers.insert("\(port)/\(proto)").inserted else {
                throw reader.invalid("port", "port \(port)/\(proto) is listed twice")
            }
            let targetPort: Int?
            switch reader.value("targetPort") {
            case .string(let s)?:
                guard let number = Int(s) else {
                    throw reader.invalid(
                        "targetPort",
                        "named target ports are not supported; give the port number instead of \(JSONTextWriter.quoted(s))")
                }
                targetPort = try Self.checkedPort(number, reader: reader)
            default:
                targetPort = try reader.port("targetPort")
            }
            ports.append(
                ServicePort(
                    name: name, port: port, targetPort: targetPort, protocol: proto,
                    appProtocol: try reader.string("appProtocol")))
        }
        let selector = try spec.stringMap("selector") ?? [:]
        try ResourceValidator.validateLabels(selector, path: spec.at("selector"))
        self.init(ports: ports, selector: selector, type: try spec.string("type"))
    }

    private static func checkedPort(_ value: Int, reader: FieldReader) throws(ResourceError) -> Int {
        guard (1...65535).contains(value) else {
            throw reader.invalid("targetPort", "expected a port number from 1 to 65535, got \(value)")
        }
        return value
    }

    /// The selector in force: `selector`, or `app: serviceName` when it is empty.
    public func effectiveSelector(serviceName: String) -> [String: String] {
        selector.isEmpty ? ["app": serviceName] : selector
    }

    /// `effectiveSelector` as a `LabelSelector`.
    public func labelSelector(serviceName: String) -> LabelSelector {
        LabelSelector(matchLabels: effectiveSelector(serviceName: serviceName))
    }

    /// The port named `name`, or numbered `name` when it is a number.
    public func port(named name: String) -> ServicePort? {
        ports.first { $0.name == name } ?? Int(name).flatMap { number in ports.first { $0.port == number } }
    }

    public var body: JSONObject {
        var spec = JSONObject()
        if let type { spec["type"] = .string(type) }
        spec["ports"] = .array(
            ports.map { p in
                var o = JSONObject()
                if let name = p.name { o["name"] = .string(name) }
                o["port"] = .int(Int64(p.port))
                if let target = p.targetPort { o["targetPort"] = .int(Int64(target)) }
                o["protocol"] = .string(p.protocol)
                if let app = p.appProtocol { o["appProtocol"] = .string(app) }
                return .object(o)
            })
        if !selector.isEmpty {
            spec["selector"] = .object(JSONObject(selector.sorted { $0.key < $1.key }.map { ($0.key, .string($0.value)) }))
        }
        return JSONObject([("spec", .object(spec))])
    }
}
