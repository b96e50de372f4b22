import GRDB
import StarlingCore

extension StoreError {
    /// A store error for a failed SQLite operation: names the file, what was being done, SQLite's own
    /// message, and what the operator can do about it.
    static func sqlite(_ error: DatabaseError, path: String, doing what: String) -> StoreError {
        let detail = error.message ?? "SQLite error \(error.extendedResultCode.rawValue)"
        let hint: String? =
            switch error.resultCode {
            case .SQLITE_CANTOPEN:
                "check that the path is not a directory and that its directory exists and is writable by this user"
            case .SQLITE_PERM, .SQLITE_READONLY, .SQLITE_AUTH:
                "the file or its directory is read-only for this user; fix the permissions or choose another path"
            case .SQLITE_NOTADB:
                "the file is not a SQLite database; move it away or point the store at another file"
            case .SQLITE_CORRUPT:
                "the database file is damaged; restore it from a backup or move it away to start empty"
            case .SQLITE_FULL:
                "the disk is full; free space on the volume that holds the file"
            case .SQLITE_IOERR:
                "the disk reported an I/O error; check the volume that holds the file"
            case .SQLITE_BUSY, .SQLITE_LOCKED:
                "the file is locked by another process; is another controller using the same data directory?"
            case .SQLITE_MISUSE:
                "the store was closed"
            default:
                nil
            }
        var message = "SQLite store \(path): \(what) failed: \(detail)"
        if let hint { message += " (\(hint))" }
        return StoreError(.unavailable, message, cause: error)
    }

    /// The error of every operation on a store after `close()`.
    static func closed(path: String) -> StoreError {
        StoreError(.unavailable, "SQLite store \(path) is closed; open it again to use it")
    }

    /// Wraps any error of an operation into a `StoreError` that names the file, keeping store errors
    /// and task cancellation as they are.
    static func wrapping(_ error: any Error, path: String, doing what: String) -> any Error {
        switch error {
        case let error as StoreError: error
        case is CancellationError: error
        case let error as DatabaseError: sqlite(error, path: path, doing: what)
        default: StoreError(.unavailable, "SQLite store \(path): \(what) failed", cause: error)
        }
    }
}
