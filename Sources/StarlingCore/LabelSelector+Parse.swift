extension LabelSelector {
    /// Parses kubectl's selector syntax: `a=b,c!=d,e in (x,y),f notin (z),g,!h` (also `a==b`).
    /// Requirements are joined by commas and must all hold. Empty text selects everything.
    /// Keys must be qualified names and values valid label values.
    public static func parse(_ text: String) throws(ResourceError) -> LabelSelector {
        var parser = SelectorParser(text: text)
        return LabelSelector(requirements: try parser.parse())
    }
}

/// A small lexer and recursive-descent parser for label selectors.
private struct SelectorParser {
    enum Token: Equatable {
        case word(String)
        case equals, doubleEquals, notEquals, not, open, close, comma
        case end

        var text: String {
            switch self {
            case .word(let w): "'\(w)'"
            case .equals: "'='"
            case .doubleEquals: "'=='"
            case .notEquals: "'!='"
            case .not: "'!'"
            case .open: "'('"
            case .close: "')'"
            case .comma: "','"
            case .end: "the end"
            }
        }
    }

    let text: String
    private var scalars: [Unicode.Scalar]
    private var position = 0
    private var token: Token = .end
    private var tokenStart = 0

    init(text: String) {
        self.text = text
        scalars = Array(text.unicodeScalars)
    }

    mutating func parse() throws(ResourceError) -> [LabelSelector.Requirement] {
        advance()
        if token == .end { return [] }
        var requirements: [LabelSelector.Requirement] = []
        while true {
            requirements.append(try requirement())
            switch token {
            case .comma: advance()
            case .end: return requirements
            default: throw error("expected ',' or the end, found \(token.text)")
            }
        }
    }

    private mutating func requirement() throws(ResourceError) -> LabelSelector.Requirement {
        if token == .not {
            advance()
            let key = try key()
            return .doesNotExist(key)
        }
        let key = try key()
        switch token {
        case .equals, .doubleEquals:
            advance()
            return .equals(key, try value())
        case .notEquals:
            advance()
            return .notEquals(key, try value())
        case .word("in"):
            advance()
            return .isIn(key, try valueSet())
        case .word("notin"):
            advance()
            return .notIn(key, try valueSet())
        case .comma, .end:
            return .exists(key)
        default:
            throw error("expected '=', '==', '!=', 'in', 'notin', ',' or the end after key '\(key)', found \(token.text)")
        }
    }

    private mutating func key() throws(ResourceError) -> String {
        guard case .word(let key) = token else { throw error("expected a label key, found \(token.text)") }
        if let problem = ResourceNames.qualifiedNameProblem(key) {
            throw error("invalid label key '\(key)': \(problem)")
        }
        advance()
        return key
    }

    /// A value after `=`/`!=`; may be empty (`a=` selects an empty value).
    private mutating func value() throws(ResourceError) -> String {
        guard case .word(let value) = token else { return "" }
        if let problem = ResourceNames.labelValueProblem(value) {
            throw error("invalid label value '\(value)': \(problem)")
        }
        advance()
        return value
    }

    /// `( v1, v2, ... )`: one or more values separated by commas.
    private mutating func valueSet() throws(ResourceError) -> Set<String> {
        guard token == .open else { throw error("expected '(' after 'in' or 'notin', found \(token.text)") }
        advance()
        var values = Set<String>()
        while true {
            guard case .word = token else { throw error("expected a value in the list, found \(token.text)") }
            values.insert(try value())
            switch token {
            case .comma: advance()
            case .close:
                advance()
                return values
            default: throw error("expected ',' or ')' in the value list, found \(token.text)")
            }
        }
    }

    // MARK: - Lexer

    private mutating func advance() {
        while position < scalars.count, scalars[position].properties.isWhitespace { position += 1 }
        tokenStart = position
        guard position < scalars.count else { token = .end; return }
        let c = scalars[position]
        func next() -> Unicode.Scalar? { position + 1 < scalars.count ? scalars[position + 1] : nil }
        switch c {
        case "=":
            if next() == "=" { position += 2; token = .doubleEquals } else { position += 1; token = .equals }
        case "!":
            if next() == "=" { position += 2; token = .notEquals } else { position += 1; token = .not }
        case "(": position += 1; token = .open
        case ")": position += 1; token = .close
        case ",": position += 1; token = .comma
        default:
            var word = ""
            while position < scalars.count {
                let s = scalars[position]
                if s.properties.isWhitespace || "=!(),".unicodeScalars.contains(s) { break }
                word.unicodeScalars.append(s)
                position += 1
            }
            token = .word(word)
        }
    }

    private func error(_ message: String) -> ResourceError {
        ResourceError(
            .invalidSelector,
            "invalid label selector \(JSONTextWriter.quoted(text)) at character \(tokenStart + 1): \(message)")
    }
}
