public import StarlingCore

/// A listener could not bind its address (taken, not this host's, no permission): which
/// listener, where, and the system's reason. Every listener of the proxy and the gateway says it
/// the same way, and at once.
public struct ListenError: Error, CustomStringConvertible {
    /// `inbound`, `outbound`, `admin`, `gateway`, or `opaque binding SVC.NS:PORT`.
    public var listener: String
    public var host: String
    public var port: Int
    public var cause: any Error

    package init(_ listener: String, host: String, port: Int, cause: any Error) {
        self.listener = listener
        self.host = host
        self.port = port
        self.cause = cause
    }

    public var description: String {
        "the \(listener) listener could not listen on \(NetworkAddress.joinHostPort(host, port)): \(cause)"
    }
}
