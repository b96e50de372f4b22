import Yams

/// Reads resources from YAML or JSON text, as `starling apply -f` takes them.
///
/// Input is one or more YAML documents separated by `---`, or JSON (one value or several,
/// whitespace-separated). Empty documents are skipped; a `kind: List` is unwrapped into its
/// items. Every resource is checked by `ResourceValidator` before it is returned, and every
/// error names the input, the document (1-based) and the field that was wrong.
public enum ResourceDecoder {
    /// Inputs larger than this (in UTF-8 bytes) are refused before parsing: 16 MiB.
    public static let maximumInputSize = 16 * 1024 * 1024

    /// Decodes and validates every resource in `text`.
    ///
    /// - Parameters:
    ///   - text: YAML or JSON.
    ///   - source: the input's name for messages: a file name, or `-` for standard input.
    public static func decode(_ text: String, source: String) throws(ResourceError) -> [Resource] {
        let documents = try parseDocuments(text, source: source)
        var resources: [Resource] = []
        for (index, document) in documents.enumerated() {
            do {
                resources += try Self.resources(fromDocument: document)
            } catch {
                throw error.located(source: source, documentIndex: index)
            }
        }
        return resources
    }

    /// Splits `text` into its documents as JSON values, without looking at their contents.
    /// Empty documents are left out. Document indexes in errors count every document, empty or not.
    public static func parseDocuments(_ text: String, source: String) throws(ResourceError) -> [JSONValue] {
        let size = text.utf8.count
        guard size <= maximumInputSize else {
            throw ResourceError(
                .tooLarge,
                "input is \(describeSize(size)), over the limit of \(describeSize(maximumInputSize)); "
                    + "split it into smaller files",
                source: source)
        }
        if looksLikeJSON(text) {
            do {
                return try JSONTextParser.parseAll(text).filter { $0 != .null }
            } catch let jsonError {
                // JSON is YAML: a flow-style YAML document starting with `{` may still read.
                // When it does not, the JSON error is the clearer one.
                if let documents = try? parseYAML(text, source: source) { return documents }
                throw jsonError.located(source: source)
            }
        }
        return try parseYAML(text, source: source)
    }

    /// Reads one resource the store wrote with `ResourceEncoder.compactJSON`. It checks the
    /// shape only (no kind or spec validation), so it stays fast for large lists.
    public static func decodeStored(_ json: String) throws(ResourceError) -> Resource {
        try Resource(json: try JSONTextParser.parseOne(json))
    }

    // MARK: - Documents to resources

    /// The resources in one document: one, or the items of a `List`.
    static func resources(fromDocument document: JSONValue) throws(ResourceError) -> [Resource] {
        guard case .object(let object) = document else {
            throw ResourceError(
                .notAnObject,
                "a document must be a mapping with apiVersion, kind and metadata, got \(FieldReader.describe(document))")
        }
        let root = FieldReader(object, path: "")
        let kind = try root.requiredString("kind")
        if kind == "List" {
            let apiVersion = try root.requiredString("apiVersion")
            guard apiVersion == "v1" else {
                throw ResourceError(
                    .unknownAPIVersion, "apiVersion \(JSONTextWriter.quoted(apiVersion)) is not accepted for kind List; accepted: v1",
                    fieldPath: "apiVersion")
            }
            guard let items = try root.array("items") else { throw root.missing("items") }
            var resources: [Resource] = []
            for (i, item) in items.enumerated() {
                let prefix = FieldPath.index("items", i)
                if case .object(let o) = item, o["kind"] == .string("List") {
                    throw ResourceError(.invalidValue, "a List cannot contain another List", fieldPath: prefix)
                }
                do {
                    resources.append(try resource(fromObject: item))
                } catch {
                    throw error.located(pathPrefix: prefix)
                }
            }
            return resources
        }
        return [try resource(fromObject: document)]
    }

    /// One validated resource.
    static func resource(fromObject value: JSONValue) throws(ResourceError) -> Resource {
        guard case .object(let object) = value else {
            throw ResourceError(
                .notAnObject, "expected a mapping with apiVersion, kind and metadata, got \(FieldReader.describe(value))")
        }
        let root = FieldReader(object, path: "")
        // Kind and apiVersion first: every later check depends on them.
        let kindName = try root.requiredString("kind")
        let apiVersion = try root.requiredString("apiVersion")
        _ = try ResourceValidator.kind(named: kindName, apiVersion: apiVersion)
        let resource = try Resource(json: value)
        try ResourceValidator.validate(resource)
        return resource
    }

    // MARK: - YAML

    private static func parseYAML(_ text: String, source: String) throws(ResourceError) -> [JSONValue] {
        var documents: [JSONValue] = []
        var index = 0
        do {
            let parser = try Parser(yaml: text)
            while let node = try parser.nextRoot() {
                var converter = YAMLNodeConverter(inputSize: text.utf8.count)
                let value: JSONValue
                do {
                    value = try converter.convert(node)
                } catch {
                    throw error.located(source: source, documentIndex: index)
                }
                if value != .null { documents.append(value) }
                index += 1
            }
        } catch let error as ResourceError {
            throw error
        } catch let error as YamlError {
            throw resourceError(from: error).located(source: source, documentIndex: index)
        } catch {
            throw ResourceError(.invalidYAML, "invalid YAML: \(error)", source: source, documentIndex: index, cause: error)
        }
        return documents
    }

    /// A YAML syntax error with its line and column, without Yams' multi-line snippet.
    private static func resourceError(from error: YamlError) -> ResourceError {
        func at(_ mark: Mark) -> String { "line \(mark.line), column \(mark.column)" }
        func context(_ c: YamlError.Context?) -> String {
            guard let c else { return "" }
            return " (\(c.text) at \(at(c.mark)))"
        }
        switch error {
        case .scanner(let c, let problem, let mark, _), .parser(let c, let problem, let mark, _),
            .composer(let c, let problem, let mark, _):
            return ResourceError(.invalidYAML, "invalid YAML: \(at(mark)): \(problem)\(context(c))", cause: error)
        case .duplicatedKeysInMapping(let duplicates, let c):
            let keys = duplicates.map { JSONTextWriter.quoted($0) }.joined(separator: ", ")
            return ResourceError(
                .duplicateKey, "duplicate key \(keys) in a mapping (first at \(at(c.mark)))", cause: error)
        case .reader(let problem, let offset, _, _):
            let position = offset.map { " at character \($0)" } ?? ""
            return ResourceError(.invalidYAML, "invalid YAML: \(problem)\(position)", cause: error)
        default:
            return ResourceError(.invalidYAML, "invalid YAML: \(error)", cause: error)
        }
    }

    // MARK: - Helpers

    /// JSON input starts (after blanks) with `{` or `[`.
    private static func looksLikeJSON(_ text: String) -> Bool {
        for b in text.utf8 {
            switch b {
            case UInt8(ascii: " "), UInt8(ascii: "\t"), UInt8(ascii: "\n"), UInt8(ascii: "\r"): continue
            case UInt8(ascii: "{"), UInt8(ascii: "["): return true
            default: return false
            }
        }
        return false
    }

    private static func describeSize(_ bytes: Int) -> String {
        if bytes >= 1024 * 1024 {
            let tenths = (bytes * 10) / (1024 * 1024)
            return tenths % 10 == 0 ? "\(tenths / 10) MiB" : "\(tenths / 10).\(tenths % 10) MiB"
        }
        if bytes >= 1024 { return "\(bytes / 1024) KiB" }
        return "\(bytes) bytes"
    }
}
