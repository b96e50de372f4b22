/// The one error of resource decoding and validation (STYLE.md §5): an extensible code, a human
/// message, and where the bad value came from — the input (`source`), the document in it, and the
/// field inside that document.
///
/// ```
/// split.yaml: document 2: spec.backends[0].weight: expected a non-negative integer or quantity (e.g. 50 or 500m), got "-5"
/// ```
///
/// Equality compares the code only, which keeps tests simple.
public struct ResourceError: Error, Sendable, CustomStringConvertible {
    /// What kind of problem this is. Extensible: new codes are new static constants.
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        public let name: String
        public init(_ name: String) { self.name = name }
        public var description: String { name }

        /// The input is over the size limit and was refused without parsing.
        public static let tooLarge = Code("tooLarge")
        /// The input is not well-formed YAML.
        public static let invalidYAML = Code("invalidYAML")
        /// The input looks like JSON and is not well-formed JSON.
        public static let invalidJSON = Code("invalidJSON")
        /// A mapping has the same key twice.
        public static let duplicateKey = Code("duplicateKey")
        /// A document is not a mapping (a list or a plain value at the top level).
        public static let notAnObject = Code("notAnObject")
        /// A required field is absent.
        public static let missingField = Code("missingField")
        /// The `kind` is not one Starling knows.
        public static let unknownKind = Code("unknownKind")
        /// The `apiVersion` is not accepted for the document's kind.
        public static let unknownAPIVersion = Code("unknownAPIVersion")
        /// A field has the wrong type or an out-of-range or malformed value.
        public static let invalidValue = Code("invalidValue")
        /// A label selector expression is malformed.
        public static let invalidSelector = Code("invalidSelector")
        /// A Go-style duration (`3s`, `1h30m`) is malformed.
        public static let invalidDuration = Code("invalidDuration")
        /// A Kubernetes quantity (`500m`, `1k`) is malformed or out of range.
        public static let invalidQuantity = Code("invalidQuantity")
    }

    public var code: Code
    public var message: String
    /// The input's name: a file name, or `-` for standard input.
    public var source: String?
    /// The 0-based index of the document in a multi-document input (printed 1-based).
    public var documentIndex: Int?
    /// The field inside the document, e.g. `spec.backends[0].weight`.
    public var fieldPath: String?
    public var cause: (any Error)?

    public init(
        _ code: Code, _ message: String, source: String? = nil, documentIndex: Int? = nil,
        fieldPath: String? = nil, cause: (any Error)? = nil
    ) {
        self.code = code
        self.message = message
        self.source = source
        self.documentIndex = documentIndex
        self.fieldPath = fieldPath
        self.cause = cause
    }

    /// `source: document N: field.path: message`, leaving out the parts that are unknown.
    public var description: String {
        var parts: [String] = []
        if let source { parts.append(source) }
        if let documentIndex { parts.append("document \(documentIndex + 1)") }
        if let fieldPath, !fieldPath.isEmpty { parts.append(fieldPath) }
        parts.append(message)
        return parts.joined(separator: ": ")
    }

    /// The same error placed in an input: fills `source` and `documentIndex` when unset and
    /// prefixes `fieldPath` with `pathPrefix` (e.g. `items[2]` for a resource inside a `List`).
    public func located(source: String? = nil, documentIndex: Int? = nil, pathPrefix: String? = nil) -> ResourceError {
        var copy = self
        if copy.source == nil { copy.source = source }
        if copy.documentIndex == nil { copy.documentIndex = documentIndex }
        if let pathPrefix, !pathPrefix.isEmpty {
            copy.fieldPath = FieldPath.join(pathPrefix, copy.fieldPath)
        }
        return copy
    }
}

extension ResourceError: Equatable {
    public static func == (a: ResourceError, b: ResourceError) -> Bool { a.code == b.code }
}
