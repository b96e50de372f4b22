/// A benchmark that could not produce a trustworthy figure: the controller refused a call, a
/// stream ended early, an update never came. The message says which and what was expected.
struct BenchError: Error, CustomStringConvertible {
    var message: String

    init(_ message: String) {
        self.message = message
    }

    var description: String { message }
}
