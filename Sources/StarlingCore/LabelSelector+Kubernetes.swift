extension LabelSelector {
    /// Reads a Kubernetes `LabelSelector` object: `matchLabels` and `matchExpressions`
    /// (`In`, `NotIn`, `Exists`, `DoesNotExist`).
    init(reading reader: FieldReader) throws(ResourceError) {
        var requirements: [Requirement] = []
        if let labels = try reader.stringMap("matchLabels") {
            try ResourceValidator.validateLabels(labels, path: reader.at("matchLabels"))
            requirements += labels.sorted { $0.key < $1.key }.map { .equals($0.key, $0.value) }
        }
        for expression in try reader.objects("matchExpressions") ?? [] {
            let key = try expression.requiredString("key")
            if let problem = ResourceNames.qualifiedNameProblem(key) {
                throw expression.invalid("key", "invalid label key \(JSONTextWriter.quoted(key)): \(problem)")
            }
            let op = try expression.requiredString("operator")
            let values = try expression.strings("values") ?? []
            switch op {
            case "In", "NotIn":
                guard !values.isEmpty else {
                    throw ResourceError(.missingField, "operator \(op) needs at least one value", fieldPath: expression.at("values"))
                }
                requirements.append(op == "In" ? .isIn(key, Set(values)) : .notIn(key, Set(values)))
            case "Exists", "DoesNotExist":
                guard values.isEmpty else {
                    throw expression.invalid("values", "operator \(op) takes no values")
                }
                requirements.append(op == "Exists" ? .exists(key) : .doesNotExist(key))
            default:
                throw expression.invalid(
                    "operator", "expected In, NotIn, Exists or DoesNotExist, got \(JSONTextWriter.quoted(op))")
            }
        }
        self.init(requirements: requirements)
    }

    /// The selector as a Kubernetes object: equalities in `matchLabels`, the rest in
    /// `matchExpressions` (`a!=b` becomes `NotIn [b]`).
    public var kubernetesJSON: JSONObject {
        var matchLabels = JSONObject()
        var expressions: [JSONValue] = []
        func expression(_ key: String, _ op: String, _ values: [String]) -> JSONValue {
            var o = JSONObject([("key", .string(key)), ("operator", .string(op))])
            if !values.isEmpty { o["values"] = .array(values.map(JSONValue.string)) }
            return .object(o)
        }
        for requirement in requirements {
            switch requirement {
            case .equals(let k, let v): matchLabels[k] = .string(v)
            case .notEquals(let k, let v): expressions.append(expression(k, "NotIn", [v]))
            case .isIn(let k, let vs): expressions.append(expression(k, "In", vs.sorted()))
            case .notIn(let k, let vs): expressions.append(expression(k, "NotIn", vs.sorted()))
            case .exists(let k): expressions.append(expression(k, "Exists", []))
            case .doesNotExist(let k): expressions.append(expression(k, "DoesNotExist", []))
            }
        }
        var object = JSONObject()
        if !matchLabels.isEmpty { object["matchLabels"] = .object(matchLabels) }
        if !expressions.isEmpty { object["matchExpressions"] = .array(expressions) }
        return object
    }
}
