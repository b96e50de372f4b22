import Yams

/// Turns a Yams `Node` tree into a `JSONValue`, keeping mapping key order and resolving plain
/// scalars by the YAML 1.2 core schema (quoted scalars are always strings).
///
/// It refuses what JSON cannot hold or what Kubernetes refuses: duplicate keys (also keys that
/// only differ in YAML type, like `1` and `"1"`), non-scalar keys, unknown tags, and alias
/// expansions past a node budget (the "billion laughs" document).
struct YAMLNodeConverter {
    /// The most values one document may expand to, counting each alias use.
    let budget: Int
    private var remaining: Int

    /// Every value takes at least one byte of input unless an alias repeats it, so a budget of
    /// twice the input size never refuses a document without aliases.
    init(inputSize: Int) {
        budget = max(100_000, 2 * inputSize)
        remaining = budget
    }

    mutating func convert(_ node: Node, path: String = "") throws(ResourceError) -> JSONValue {
        remaining -= 1
        guard remaining >= 0 else {
            throw ResourceError(
                .tooLarge,
                "document expands to more than \(budget) values (aliases repeated too often)",
                fieldPath: path)
        }
        switch node {
        case .scalar(let scalar):
            return try convertScalar(scalar, path: path)
        case .sequence(let sequence):
            var items: [JSONValue] = []
            items.reserveCapacity(sequence.count)
            for (i, item) in sequence.enumerated() {
                items.append(try convert(item, path: FieldPath.index(path, i)))
            }
            return .array(items)
        case .mapping(let mapping):
            var object = JSONObject()
            var seen = Set<String>()
            for (keyNode, valueNode) in mapping {
                guard case .scalar(let keyScalar) = keyNode else {
                    throw ResourceError(
                        .invalidValue, "\(location(keyNode.mark))a mapping key must be a plain value, not a list or mapping",
                        fieldPath: path)
                }
                let key = keyScalar.string
                guard seen.insert(key).inserted else {
                    throw ResourceError(
                        .duplicateKey, "\(location(keyNode.mark))duplicate key \(JSONTextWriter.quoted(key))",
                        fieldPath: path.isEmpty ? nil : path)
                }
                object[key] = try convert(valueNode, path: FieldPath.child(path, key))
            }
            return .object(object)
        case .alias:
            throw ResourceError(.invalidYAML, "\(location(node.mark))unresolved alias", fieldPath: path)
        }
    }

    private func convertScalar(_ scalar: Node.Scalar, path: String) throws(ResourceError) -> JSONValue {
        let value = try resolveScalar(scalar, path: path)
        // JSON, and so the store, has no infinity or NaN (the JSON parser refuses them too): a
        // value the store would keep as null, and that never equals itself when re-applied, is
        // refused here, as kubectl refuses it.
        if case .double(let d) = value, !d.isFinite {
            throw ResourceError(
                .invalidValue,
                "\(location(scalar.mark))\(JSONTextWriter.quoted(scalar.string)) is not a finite number, which JSON "
                    + "cannot hold; quote it to keep it as a string",
                fieldPath: path)
        }
        return value
    }

    private func resolveScalar(_ scalar: Node.Scalar, path: String) throws(ResourceError) -> JSONValue {
        let tag = scalar.tag.rawValue
        switch tag {
        case Tag.Name.implicit.rawValue:
            switch scalar.style {
            case .plain, .any: return YAMLScalars.resolvePlain(scalar.string)
            default: return .string(scalar.string)
            }
        case Tag.Name.str.rawValue, Tag.Name.nonSpecific.rawValue:
            return .string(scalar.string)
        case Tag.Name.null.rawValue, Tag.Name.bool.rawValue, Tag.Name.int.rawValue, Tag.Name.float.rawValue:
            let value = YAMLScalars.resolvePlain(scalar.string)
            let matches: Bool =
                switch (tag, value) {
                case (Tag.Name.null.rawValue, .null), (Tag.Name.bool.rawValue, .bool), (Tag.Name.int.rawValue, .int),
                    (Tag.Name.float.rawValue, .double):
                    true
                case (Tag.Name.float.rawValue, .int): true
                default: false
                }
            guard matches else {
                throw ResourceError(
                    .invalidValue,
                    "\(location(scalar.mark))\(JSONTextWriter.quoted(scalar.string)) is not a valid \(tag)",
                    fieldPath: path)
            }
            if tag == Tag.Name.float.rawValue, case .int(let i) = value { return .double(Double(i)) }
            return value
        default:
            throw ResourceError(
                .invalidValue, "\(location(scalar.mark))unsupported YAML tag \(JSONTextWriter.quoted(tag))",
                fieldPath: path)
        }
    }

    private func location(_ mark: Mark?) -> String {
        guard let mark else { return "" }
        return "line \(mark.line), column \(mark.column): "
    }
}
