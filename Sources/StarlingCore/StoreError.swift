/// The one error of `ResourceStore` implementations (STYLE.md §5): an extensible code, a message
/// naming what was wrong, and an optional cause.
public struct StoreError: Error, Sendable, CustomStringConvertible {
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        public let name: String
        public init(_ name: String) { self.name = name }
        public var description: String { name }

        /// A watch asked to resume from a version whose history was compacted away.
        public static let versionTooOld = Code("versionTooOld")
        /// The store file cannot be opened, read or written (permissions, full disk, corruption).
        public static let unavailable = Code("unavailable")
        /// The store refuses this controller's settings (a wrong password, a missing database, another
        /// cluster's database, a newer schema): retrying will not help, the operator must fix them.
        public static let misconfigured = Code("misconfigured")
        /// A write made as the holder of a duty whose lease this replica no longer holds.
        public static let fenced = Code("fenced")
        /// A resource could not be stored as given.
        public static let invalid = Code("invalid")
        /// The store gave no answer in time: the operation may or may not have taken effect (a
        /// write may have committed), so it must not be repeated blindly. `unavailable` means the
        /// operation was not done.
        public static let noAnswer = Code("noAnswer")
    }

    public var code: Code
    public var message: String
    public var cause: (any Error)?

    public init(_ code: Code, _ message: String, cause: (any Error)? = nil) {
        self.code = code
        self.message = message
        self.cause = cause
    }

    public var description: String {
        if let cause { "\(message): \(cause)" } else { message }
    }
}

extension StoreError: Equatable {
    public static func == (a: StoreError, b: StoreError) -> Bool { a.code == b.code }
}
