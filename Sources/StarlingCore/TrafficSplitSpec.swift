/// One backend of a TrafficSplit and its share of traffic.
public struct TrafficSplitBackend: Sendable, Hashable {
    /// The backend Service's name.
    public var service: String
    /// The weight in thousandths of a unit, whatever the SMI version wrote: `weight: 50` is
    /// 50_000 and the v1alpha1 quantity `500m` is 500. Only ratios between backends matter.
    public var weight: Int64

    public init(service: String, weight: Int64) {
        self.service = service
        self.weight = weight
    }
}

/// The spec of an SMI `TrafficSplit`, normalized across `split.smi-spec.io` v1alpha1–v1alpha4.
///
/// v1alpha1 weights are Kubernetes quantities (`50`, `500m`, `1`); later versions use
/// non-negative integers. Both are kept in thousandths so they compare on one scale. The
/// v1alpha3/v1alpha4 `matches` are kept verbatim.
public struct TrafficSplitSpec: ResourceSpec {
    public static var resourceKind: ResourceKind { .trafficSplit }

    /// The SMI version the spec was read from (or is to be written as).
    public var apiVersion: String
    /// The root (apex) service whose traffic is split.
    public var service: String
    public var backends: [TrafficSplitBackend]
    /// v1alpha3+ `matches` references (e.g. HTTPRouteGroup), verbatim.
    public var matches: [JSONValue]

    public init(
        service: String, backends: [TrafficSplitBackend], matches: [JSONValue] = [],
        apiVersion: String = "split.smi-spec.io/v1alpha2"
    ) {
        self.apiVersion = apiVersion
        self.service = service
        self.backends = backends
        self.matches = matches
    }

    public init(_ resource: Resource) throws(ResourceError) {
        let spec = try FieldReader.spec(of: resource)
        let isQuantityVersion = resource.apiVersion == "split.smi-spec.io/v1alpha1"
        let service = try spec.requiredString("service")
        if let problem = ResourceNames.dns1123LabelProblem(service) {
            throw spec.invalid("service", "invalid service name \(JSONTextWriter.quoted(service)): \(problem)")
        }
        guard let readers = try spec.objects("backends"), !readers.isEmpty else {
            throw ResourceError(.missingField, "a TrafficSplit needs at least one backend", fieldPath: spec.at("backends"))
        }
        var backends: [TrafficSplitBackend] = []
        var names = Set<String>()
        var total: Int64 = 0
        for reader in readers {
            let name = try reader.requiredString("service")
            if let problem = ResourceNames.dns1123LabelProblem(name) {
                throw reader.invalid("service", "invalid service name \(JSONTextWriter.quoted(name)): \(problem)")
            }
            guard names.insert(name).inserted else {
                throw reader.invalid("service", "backend \(JSONTextWriter.quoted(name)) is listed twice")
            }
            guard let raw = reader.value("weight") else { throw reader.missing("weight") }
            let weight = isQuantityVersion ? try Self.quantityWeight(raw, reader) : try Self.integerWeight(raw, reader)
            let (sum, overflow) = total.addingReportingOverflow(weight)
            if overflow { throw reader.invalid("weight", "weights add up to more than the largest supported total") }
            total = sum
            backends.append(TrafficSplitBackend(service: name, weight: weight))
        }
        guard total > 0 else {
            throw ResourceError(
                .invalidValue, "all backend weights are zero; at least one backend needs a positive weight",
                fieldPath: spec.at("backends"))
        }
        var matches: [JSONValue] = []
        if resource.apiVersion != "split.smi-spec.io/v1alpha1", resource.apiVersion != "split.smi-spec.io/v1alpha2" {
            matches = try spec.array("matches") ?? []
        }
        self.init(service: service, backends: backends, matches: matches, apiVersion: resource.apiVersion)
    }

    /// v1alpha1: an integer, or a quantity string such as `500m`.
    private static func quantityWeight(_ raw: JSONValue, _ reader: FieldReader) throws(ResourceError) -> Int64 {
        let bad = reader.invalid(
            "weight", "expected a non-negative integer or quantity (e.g. 50 or 500m), got \(FieldReader.describe(raw))")
        let milli: Int64
        switch raw {
        case .int(let i):
            let (m, overflow) = i.multipliedReportingOverflow(by: 1000)
            if overflow { throw bad }
            milli = m
        case .double(let d):
            guard d.isFinite, d >= 0, d < 9e12 else { throw bad }
            milli = Int64((d * 1000).rounded(.up))
        case .string(let s):
            do {
                milli = try Quantity.parseMilli(s)
            } catch {
                throw bad
            }
        default: throw bad
        }
        guard milli >= 0 else { throw bad }
        return milli
    }

    /// v1alpha2+: a non-negative integer.
    private static func integerWeight(_ raw: JSONValue, _ reader: FieldReader) throws(ResourceError) -> Int64 {
        guard case .int(let i) = raw, i >= 0, i <= Int64.max / 1000 else {
            throw reader.invalid("weight", "expected a non-negative integer, got \(FieldReader.describe(raw))")
        }
        return i * 1000
    }

    /// The sum of all weights, in thousandths.
    public var totalWeight: Int64 { backends.reduce(0) { $0 + $1.weight } }

    public var body: JSONObject {
        var spec = JSONObject()
        spec["service"] = .string(service)
        let quantities = apiVersion == "split.smi-spec.io/v1alpha1"
        spec["backends"] = .array(
            backends.map { b in
                let weight: JSONValue =
                    if quantities {
                        b.weight % 1000 == 0 ? .int(b.weight / 1000) : .string(Quantity.formatMilli(b.weight))
                    } else {
                        // Integer versions: round up so a small positive weight stays positive.
                        .int(b.weight / 1000 + (b.weight % 1000 == 0 ? 0 : 1))
                    }
                return .object(JSONObject([("service", .string(b.service)), ("weight", weight)]))
            })
        if !matches.isEmpty { spec["matches"] = .array(matches) }
        return JSONObject([("spec", .object(spec))])
    }
}
