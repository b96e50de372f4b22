import StarlingCore

/// Records one inbound request's response: the latency to the response head and the request
/// counter with its status, and — when a tap was open as the request came in — a tap event.
/// Records at most once.
struct InboundRequestRecorder {
    /// What a tap shows of the request besides its outcome.
    struct TapRequest {
        var hub: TapHub
        var method: String
        var path: String
        var source: String
        var sourceCluster: String?
        var destination: String
        var destinationCluster: String?
    }

    let authority: String
    let client: MeshIdentity
    private let tap: TapRequest?
    private let start = ContinuousClock.now
    private var recorded = false

    init(authority: String, client: MeshIdentity, tap: TapRequest? = nil) {
        self.authority = authority
        self.client = client
        self.tap = tap
    }

    /// The response head (`status`) is on its way to the caller.
    mutating func responded(status: Int) {
        guard !recorded else { return }
        recorded = true
        let latency = ContinuousClock.now - start
        InboundMetrics.recordResponse(authority: authority, status: status, client: client, latency: latency)
        if let tap {
            tap.hub.publish {
                TapEvent(
                    direction: "inbound", method: tap.method, authority: authority, path: tap.path, status: status,
                    latency: latency, sourceIdentity: tap.source, destinationIdentity: tap.destination,
                    sourceCluster: tap.sourceCluster, destinationCluster: tap.destinationCluster, tls: true)
            }
        }
    }
}
