/// Writes resources as YAML or JSON, as `starling get -o yaml|json` prints them and as the store
/// keeps them. `ResourceDecoder.decode` reads every output back to equal resources.
public enum ResourceEncoder {
    /// YAML documents separated by `---`: apiVersion, kind, metadata, then the body in its
    /// original order. Strings are quoted only when YAML would read them as something else;
    /// multi-line strings (PEM) are literal blocks.
    public static func yaml(_ resources: [Resource]) -> String {
        resources.map { resource in
            guard case .object(let object) = resource.jsonValue else { return "" }
            return YAMLTextWriter.document(object)
        }.joined(separator: "---\n")
    }

    /// Any JSON object (a report, not a resource) as one YAML document, in the same style.
    public static func yaml(object: JSONObject) -> String {
        YAMLTextWriter.document(object)
    }

    /// One resource as its object; zero or several as a `v1` `List` with `items`, like kubectl.
    /// `pretty` indents by four spaces and ends with a newline.
    public static func json(_ resources: [Resource], pretty: Bool = true) -> String {
        let value: JSONValue
        if resources.count == 1 {
            value = resources[0].jsonValue
        } else {
            value = .object(
                JSONObject([
                    ("apiVersion", .string("v1")), ("kind", .string("List")),
                    ("items", .array(resources.map(\.jsonValue))),
                ]))
        }
        return JSONTextWriter.text(value, pretty: pretty) + (pretty ? "\n" : "")
    }

    /// One resource as compact JSON on one line, the store's format
    /// (read back with `ResourceDecoder.decodeStored`).
    public static func compactJSON(_ resource: Resource) -> String {
        JSONTextWriter.text(resource.jsonValue, pretty: false)
    }

    /// Any JSON value as text (for `-o json` of non-resource output, e.g. `check -o json`).
    public static func jsonText(_ value: JSONValue, pretty: Bool = true) -> String {
        JSONTextWriter.text(value, pretty: pretty)
    }
}
