/// Why the proxy could not serve a request or connection. Mapped to an HTTP status and the
/// `starling-error` response header in one place (`ProxyError.httpStatus`).
public struct ProxyError: Error, Sendable, Hashable, CustomStringConvertible {
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        public let name: String
        public init(_ name: String) { self.name = name }
        public var description: String { name }

        /// The authority is not a known service (503).
        public static let unknownService = Code("unknown-service")
        /// The service has no live endpoints (503).
        public static let noEndpoints = Code("no-endpoints")
        /// The destination API has not answered yet and nothing is cached (503).
        public static let discoveryUnavailable = Code("discovery-unavailable")
        /// Connecting to the endpoint failed (502).
        public static let connectFailed = Code("connect-failed")
        /// The peer failed mTLS verification or named another identity (502).
        public static let peerIdentityRejected = Code("peer-identity-rejected")
        /// The request did not complete within its timeout (504).
        public static let timeout = Code("timeout")
        /// The request was malformed (400), too large (431/413).
        public static let badRequest = Code("bad-request")
        public static let headersTooLarge = Code("headers-too-large")
        /// The peer or upstream broke the protocol (502).
        public static let upstreamProtocol = Code("upstream-protocol-error")
        /// The serving workload's inbound policy refuses the caller (403; gRPC: PERMISSION_DENIED).
        public static let forbidden = Code("forbidden")
    }

    public var code: Code
    public var message: String
    /// The endpoint could not be reached at all (TCP refused or timed out): what a process that
    /// is restarting gives, which waiting may cure (``ConnectAttempts/backoffs``). Not set for a
    /// peer that failed verification, an endpoint this path may not use, or a proxy stopping.
    public var transient: Bool

    public init(_ code: Code, _ message: String, transient: Bool = false) {
        self.code = code
        self.message = message
        self.transient = transient
    }

    /// TCP to `endpoint` failed (refused, unreachable, timed out): a transient connect failure.
    public static func unreachable(_ endpoint: some CustomStringConvertible, _ error: any Error) -> ProxyError {
        ProxyError(.connectFailed, "connecting to \(endpoint) failed: \(error)", transient: true)
    }

    public var description: String { "\(code): \(message)" }

    public static func == (a: ProxyError, b: ProxyError) -> Bool { a.code == b.code }
    public func hash(into h: inout Hasher) { h.combine(code) }

    /// The HTTP status a client sees for this error.
    public var httpStatus: Int {
        switch code {
        case .unknownService, .noEndpoints, .discoveryUnavailable: 503
        case .timeout: 504
        case .badRequest: 400
        case .headersTooLarge: 431
        case .forbidden: 403
        default: 502
        }
    }

    /// The response header naming the reason.
    public static let headerName = "starling-error"

    /// The `starling-error` value: the code; for a refusal by policy, the code and the reason
    /// (`forbidden: no authorization of server … admits …`), printable ASCII only.
    public var headerValue: String {
        guard code == .forbidden else { return code.name }
        return String(String.UnicodeScalarView(description.unicodeScalars.prefix(512).map { $0.isASCII && $0.value >= 0x20 && $0.value < 0x7f ? $0 : "?" }))
    }
}
