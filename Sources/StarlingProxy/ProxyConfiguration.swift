public import StarlingCore

/// Everything `starling proxy` (or `starling run`) starts a proxy with. Read once by the
/// command; the library never reads the environment.
public struct ProxyConfiguration: Sendable {
    /// The controller's gRPC API and the PEM of its certificate (pinned as the only root).
    public var controllerHost: String
    public var controllerPort: Int
    public var controllerCertificatePEM: String
    /// The join token that grants this workload's identity.
    public var token: String
    /// The identity to ask for (namespace and service account come from the token's grant).
    public var identity: MeshIdentity
    /// The address the proxy's listeners bind (the workload's address).
    public var listenHost: String
    /// Inbound mTLS listener (4143), outbound listener (4140), admin (4191).
    public var inboundPort: Int
    public var outboundPort: Int
    public var adminPort: Int
    /// Where the application listens: inbound traffic goes to `appHost` on one of `appPorts`.
    public var appHost: String
    public var appPorts: [Int]
    /// Opaque TCP bindings: a local address per remote service port (databases).
    public var opaqueBindings: [OutboundProxy.OpaqueBinding]
    /// This cluster's name, sent with mesh requests (`starling-client-cluster`): a linked
    /// cluster's gateway tells its workloads, and counts the calls, by the caller's cluster.
    public var clusterName: String?
    /// Every controller replica (empty: `controllerHost:controllerPort` alone). Identity and
    /// Destination streams are spread over the replicas that answer and move when one goes away.
    public var controllerReplicas: [HostPort] = []
    /// The registered workload's name: the proxy follows its inbound policy (nil: the
    /// namespace's default policy).
    public var workloadName: String?
    /// The workload's own default inbound policy, enforced until the controller's policy
    /// arrives (the controller's answer includes it too, from the registration).
    public var defaultInboundPolicy: AccessPolicy?
    /// The labels and ports the workload registers with: its Servers apply from the start, even
    /// before the registration lands.
    public var workloadLabels: [String: String] = [:]
    public var workloadPorts: [WorkloadPort] = []

    public init(
        controllerHost: String, controllerPort: Int, controllerCertificatePEM: String, token: String,
        identity: MeshIdentity, listenHost: String = "127.0.0.1", inboundPort: Int = 4143, outboundPort: Int = 4140,
        adminPort: Int = 4191, appHost: String = "127.0.0.1", appPorts: [Int] = [], opaqueBindings: [OutboundProxy.OpaqueBinding] = [],
        clusterName: String? = nil
    ) {
        self.clusterName = clusterName
        self.controllerHost = controllerHost
        self.controllerPort = controllerPort
        self.controllerCertificatePEM = controllerCertificatePEM
        self.token = token
        self.identity = identity
        self.listenHost = listenHost
        self.inboundPort = inboundPort
        self.outboundPort = outboundPort
        self.adminPort = adminPort
        self.appHost = appHost
        self.appPorts = appPorts
        self.opaqueBindings = opaqueBindings
    }
}
