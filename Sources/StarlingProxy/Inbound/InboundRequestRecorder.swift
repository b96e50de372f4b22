import StarlingCore

/// Records one inbound request's response: the latency to the response head and the request
/// counter with its status. Records at most once.
struct InboundRequestRecorder {
    let authority: String
    let client: MeshIdentity
    private let start = ContinuousClock.now
    private var recorded = false

    init(authority: String, client: MeshIdentity) {
        self.authority = authority
        self.client = client
    }

    /// The response head (`status`) is on its way to the caller.
    mutating func responded(status: Int) {
        guard !recorded else { return }
        recorded = true
        InboundMetrics.recordResponse(
            authority: authority, status: status, client: client, latency: ContinuousClock.now - start)
    }
}
