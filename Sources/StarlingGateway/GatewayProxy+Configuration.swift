import StarlingProxy

extension GatewayProxy {
    /// What the gateway listener is built from. Defaults live here; `starling gateway` (or the
    /// controller hosting the gateway) fills in the address.
    package struct Configuration: Sendable {
        /// The address the mTLS listener binds.
        package var listenHost: String
        /// The mTLS listener's port (4143); 0 picks a free one (reported through `onBound`).
        package var listenPort: Int
        /// The largest HTTP/2 header list a caller may send (SETTINGS_MAX_HEADER_LIST_SIZE), 64 KiB.
        package var maxHeaderListSize: Int
        /// Concurrent streams a caller may open on one connection (SETTINGS_MAX_CONCURRENT_STREAMS).
        package var maxConcurrentStreams: Int
        /// How long a caller has to finish the TLS handshake.
        package var handshakeTimeout: Duration
        /// How long an opaque-TCP caller has to send its transport header after the handshake.
        package var transportHeaderTimeout: Duration
        /// A caller's HTTP/2 connection with no open stream for this long is closed.
        package var idleTimeout: Duration
        /// Pooled HTTP/2 connections to local workloads are closed after this long without streams.
        package var peerIdleTimeout: Duration
        /// Bound on connecting to and handshaking with a local workload (never beyond the
        /// request's own timeout).
        package var connectTimeout: Duration
        /// On shutdown, how long open connections get to finish their requests (HTTP/2 callers
        /// get GOAWAY first) before they are closed.
        package var drainTimeout: Duration

        package init(
            listenHost: String = "0.0.0.0",
            listenPort: Int = 4143,
            maxHeaderListSize: Int = 64 * 1024,
            maxConcurrentStreams: Int = 250,
            handshakeTimeout: Duration = .seconds(10),
            transportHeaderTimeout: Duration = .seconds(5),
            idleTimeout: Duration = .seconds(300),
            peerIdleTimeout: Duration = .seconds(60),
            connectTimeout: Duration = .seconds(5),
            drainTimeout: Duration = .seconds(30)
        ) {
            self.listenHost = listenHost
            self.listenPort = listenPort
            self.maxHeaderListSize = maxHeaderListSize
            self.maxConcurrentStreams = maxConcurrentStreams
            self.handshakeTimeout = handshakeTimeout
            self.transportHeaderTimeout = transportHeaderTimeout
            self.idleTimeout = idleTimeout
            self.peerIdleTimeout = peerIdleTimeout
            self.connectTimeout = connectTimeout
            self.drainTimeout = drainTimeout
        }
    }
}
