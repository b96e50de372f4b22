/// Header names the proxies use between themselves (and the gateway). Set by the sending proxy,
/// consumed and removed by the receiving one; an application never sees them except
/// `clientIdentity`, which the inbound side sets for the application to read.
public enum MeshHeaders {
    /// The original HTTP version of a request carried over the mesh's HTTP/2 connection
    /// (`HTTP/1.1`, `HTTP/1.0`); absent for requests that were HTTP/2 at the application.
    public static let originalProtocol = "starling-orig-proto"
    /// The service authority the caller is reaching (the gateway routes on it).
    public static let target = "starling-target"
    /// Set by the inbound proxy: the verified identity of the calling workload.
    public static let clientIdentity = "starling-client-id"
    /// ALPN for opaque TCP carried over mTLS behind a transport header.
    public static let opaqueALPN = "starling-opaque"
}
