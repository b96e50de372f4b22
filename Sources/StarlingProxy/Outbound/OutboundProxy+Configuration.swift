public import Logging
import StarlingCore
public import StarlingTLS

extension OutboundProxy {
    /// A declared opaque-TCP port: connections to `listenHost:listenPort` go, without protocol
    /// detection, to `service` (`--outbound-tcp SVC.NS:PORT=LOCAL_ADDR:LOCAL_PORT`).
    public struct OpaqueBinding: Sendable, Hashable {
        /// The service authority, `svc.ns:PORT`.
        public var service: String
        public var listenHost: String
        /// 0 picks a free port.
        public var listenPort: Int

        public init(service: String, listenHost: String, listenPort: Int) {
            self.service = service
            self.listenHost = listenHost
            self.listenPort = listenPort
        }

        /// Parses `SVC.NS:PORT=LOCAL_ADDR:LOCAL_PORT`; nil when either side is not `host:port`.
        public init?(flag: String) {
            let parts = flag.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2, let service = HostPort(authority: parts[0], defaultPort: 0), service.port > 0,
                parts[0].contains(":"), let local = HostPort(authority: parts[1], defaultPort: 0), parts[1].contains(":")
            else { return nil }
            self.init(service: service.description, listenHost: local.host, listenPort: local.port)
        }
    }

    /// Listener addresses, limits and timeouts of the outbound proxy.
    public struct Configuration: Sendable {
        /// Address of the outbound listener (HTTP forward proxy, h2c, transparent capture).
        public var listenHost: String
        /// Port of the outbound listener (default 4140; 0 picks a free port).
        public var listenPort: Int
        /// Declared opaque-TCP bindings, each with its own listener.
        public var opaqueBindings: [OpaqueBinding]
        /// How long to wait for a client's first bytes to decide HTTP/1 vs HTTP/2 (default 1 s).
        public var detectionTimeout: Duration
        /// Largest request head accepted, field names and values together (default 64 KiB; 431 above).
        public var maximumHeaderBytes: Int
        /// Once a request head starts arriving, it must be complete within this (default 10 s).
        public var headerReadTimeout: Duration
        /// A client connection with no traffic (HTTP/1) or no streams (HTTP/2) is closed after this
        /// (default 60 s).
        public var idleTimeout: Duration
        /// Pooled peer connections without streams are closed after this (default 60 s).
        public var peerIdleTimeout: Duration
        /// Bound on connecting to and handshaking with an endpoint (default 5 s; never beyond the
        /// request's own timeout).
        public var connectTimeout: Duration
        /// Streams an HTTP/2 client may have open at once (default 250).
        public var maximumConcurrentStreams: Int
        /// How long a shutdown waits for in-flight requests before closing connections (default 10 s).
        public var drainGracePeriod: Duration
        /// This cluster's name; when set, mesh requests carry it as `starling-client-cluster`
        /// (a remote cluster's gateway passes it on to the serving workload). Default nil.
        public var clusterName: String?

        public init(
            listenHost: String = "127.0.0.1", listenPort: Int = 4140, opaqueBindings: [OpaqueBinding] = [],
            detectionTimeout: Duration = .seconds(1), maximumHeaderBytes: Int = 64 * 1024,
            headerReadTimeout: Duration = .seconds(10), idleTimeout: Duration = .seconds(60),
            peerIdleTimeout: Duration = .seconds(60), connectTimeout: Duration = .seconds(5),
            maximumConcurrentStreams: Int = 250, drainGracePeriod: Duration = .seconds(10),
            clusterName: String? = nil
        ) {
            self.clusterName = clusterName
            self.listenHost = listenHost
            self.listenPort = listenPort
            self.opaqueBindings = opaqueBindings
            self.detectionTimeout = detectionTimeout
            self.maximumHeaderBytes = maximumHeaderBytes
            self.headerReadTimeout = headerReadTimeout
            self.idleTimeout = idleTimeout
            self.peerIdleTimeout = peerIdleTimeout
            self.connectTimeout = connectTimeout
            self.maximumConcurrentStreams = maximumConcurrentStreams
            self.drainGracePeriod = drainGracePeriod
        }
    }

    /// The runtime handles the outbound proxy works with (kept apart from configuration).
    public struct Runtime: Sendable {
        /// Chooses the endpoint of each request or connection.
        public var picker: any EndpointPicker
        /// This workload's mTLS material for dialing peers.
        public var tls: any MeshTLSSource
        public var logger: Logger
        /// Where finished requests are shown to open taps (`GET /tap` on the admin server).
        public var tap: TapHub

        public init(picker: any EndpointPicker, tls: any MeshTLSSource, logger: Logger, tap: TapHub = TapHub()) {
            self.picker = picker
            self.tls = tls
            self.logger = logger
            self.tap = tap
        }
    }
}
