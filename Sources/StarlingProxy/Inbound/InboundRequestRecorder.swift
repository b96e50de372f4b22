import NIOHTTP2
import StarlingCore

/// Records one inbound request's response: the latency to the response head and the request
/// counter with its status (a gRPC call's with its `grpc-status`), and — when a tap was open as
/// the request came in — a tap event. Records at most once.
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
    /// The request is a gRPC call: its response's `grpc-status` is counted.
    let isGRPCCall: Bool
    private let tap: TapRequest?
    private let start = ContinuousClock.now
    private var recorded = false
    /// A gRPC call's 200 head went out; it is counted when the response ends.
    private var pendingLatency: Duration?

    init(authority: String, client: MeshIdentity, isGRPCCall: Bool = false, tap: TapRequest? = nil) {
        self.authority = authority
        self.client = client
        self.isGRPCCall = isGRPCCall
        self.tap = tap
    }

    /// The application's response head is on its way to the caller. A gRPC call's 200 response
    /// is counted when it ends, since its status comes in the trailers; any other at once.
    mutating func responseHead(status: Int, last: HTTP2Frame.FramePayload?) {
        guard isGRPCCall, status == 200 else {
            responded(status: status)
            return
        }
        if let last {
            responded(status: status, grpcStatus: GRPCStatus.ofResponse(httpStatus: status, ending: last))
        } else if !recorded, pendingLatency == nil {
            pendingLatency = ContinuousClock.now - start
        }
    }

    /// The response ended with `last` (nil: it broke off, or the caller cancelled it): a gRPC
    /// call waiting for its status is counted now, with the latency of its head.
    mutating func responseEnded(last: HTTP2Frame.FramePayload?, cancelledByCaller: Bool = false) {
        guard let latency = pendingLatency else { return }
        pendingLatency = nil
        let status: Int
        if let last {
            status = GRPCStatus.ofResponse(httpStatus: 200, ending: last) ?? GRPCStatus.internalError
        } else {
            status = cancelledByCaller ? GRPCStatus.cancelled : GRPCStatus.internalError
        }
        record(status: 200, grpcStatus: status, latency: latency)
    }

    /// The response head (`status`) is on its way to the caller: the proxy's own answer, or an
    /// application's over HTTP/1; `grpcStatus` when it is a gRPC status.
    mutating func responded(status: Int, grpcStatus: Int? = nil) {
        record(status: status, grpcStatus: grpcStatus, latency: ContinuousClock.now - start)
    }

    private mutating func record(status: Int, grpcStatus: Int?, latency: Duration) {
        guard !recorded else { return }
        recorded = true
        InboundMetrics.recordResponse(authority: authority, status: status, grpcStatus: grpcStatus, client: client, latency: latency)
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
