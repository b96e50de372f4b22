import StarlingCore

extension InboundProxy {
    /// What the inbound listener is built from. Defaults live here; the command that starts the
    /// proxy fills in the workload's addresses.
    public struct Configuration: Sendable {
        /// The address the mTLS listener binds.
        public var listenHost: String
        /// The mTLS listener's port (4143); 0 picks a free one (reported through `onBound`).
        public var listenPort: Int
        /// Where the application listens.
        public var appHost: String
        /// The application's declared ports. A request or connection whose target port is one of
        /// them goes to that port; anything else goes to ``defaultAppPort``.
        public var appPorts: Set<Int>
        /// The port used when the caller's target port is not a declared app port.
        public var defaultAppPort: Int
        /// The largest HTTP/2 header list a caller may send (SETTINGS_MAX_HEADER_LIST_SIZE), 64 KiB.
        public var maxHeaderListSize: Int
        /// Concurrent streams a caller may open on one connection (SETTINGS_MAX_CONCURRENT_STREAMS).
        public var maxConcurrentStreams: Int
        /// How long a caller has to finish the TLS handshake.
        public var handshakeTimeout: Duration
        /// How long an opaque-TCP caller has to send its transport header after the handshake.
        public var transportHeaderTimeout: Duration
        /// An HTTP/2 connection with no open stream for this long is closed (GOAWAY first).
        public var idleTimeout: Duration
        /// A kept-alive HTTP/1.1 connection to the application is closed after this long unused.
        public var appConnectionIdleTimeout: Duration
        /// How many idle HTTP/1.1 connections to keep per application port and event loop. Above
        /// the number of requests in flight at once, or a burst closes connections only to open
        /// them again a moment later (at 32, fifty concurrent callers cost ~40 connects a second).
        /// Idle ones still close after `appConnectionIdleTimeout`.
        public var maxIdleAppConnectionsPerPort: Int
        /// How long connecting to the application may take before the request fails with 502.
        public var appConnectTimeout: Duration
        /// On shutdown, how long open connections get to finish their requests before they are
        /// closed.
        public var drainTimeout: Duration
        /// This cluster's name: the caller's cluster in tap events when no gateway names another.
        public var clusterName: String?

        public init(
            listenHost: String = "0.0.0.0",
            listenPort: Int = 4143,
            appHost: String = "127.0.0.1",
            appPorts: Set<Int> = [],
            defaultAppPort: Int,
            maxHeaderListSize: Int = 64 * 1024,
            maxConcurrentStreams: Int = 250,
            handshakeTimeout: Duration = .seconds(10),
            transportHeaderTimeout: Duration = .seconds(5),
            idleTimeout: Duration = .seconds(300),
            appConnectionIdleTimeout: Duration = .seconds(60),
            maxIdleAppConnectionsPerPort: Int = 256,
            appConnectTimeout: Duration = .seconds(5),
            drainTimeout: Duration = .seconds(30)
        ) {
            self.listenHost = listenHost
            self.listenPort = listenPort
            self.appHost = appHost
            self.appPorts = appPorts
            self.defaultAppPort = defaultAppPort
            self.maxHeaderListSize = maxHeaderListSize
            self.maxConcurrentStreams = maxConcurrentStreams
            self.handshakeTimeout = handshakeTimeout
            self.transportHeaderTimeout = transportHeaderTimeout
            self.idleTimeout = idleTimeout
            self.appConnectionIdleTimeout = appConnectionIdleTimeout
            self.maxIdleAppConnectionsPerPort = maxIdleAppConnectionsPerPort
            self.appConnectTimeout = appConnectTimeout
            self.drainTimeout = drainTimeout
        }

        /// The application port for a target authority (`host:port`): its port when that is a
        /// declared app port, else ``defaultAppPort``. A missing or unparsable authority also
        /// gets the default.
        func appPort(forTarget authority: String?) -> Int {
            guard let authority, let port = HostPort.port(ofAuthority: authority), appPorts.contains(port) else {
                return defaultAppPort
            }
            return port
        }

    }
}
