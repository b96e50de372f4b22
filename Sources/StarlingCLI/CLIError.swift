/// A CLI failure: what went wrong, and what the operator can do about it.
/// Printed by the root command as `Error: MESSAGE` followed by `hint: HINT`.
struct CLIError: Error, CustomStringConvertible {
    var message: String
    var hint: String?

    init(_ message: String, hint: String? = nil) {
        self.message = message
        self.hint = hint
    }

    var description: String {
        if let hint { "\(message)\nhint: \(hint)" } else { message }
    }
}
