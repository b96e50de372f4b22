import NIOCore
import NIOHTTP2

/// Where a front end (the outbound's HTTP/1 and HTTP/2 front ends, the gateway) sends one request,
/// in HTTP/2 frames whatever the upstream speaks: a stream on the pooled mTLS connection to a
/// peer proxy (``HTTP2FrameStream``), or an HTTP/1.1 exchange on a pooled connection to a plain
/// endpoint outside the mesh (``PlainHTTP1Stream``). Its frames come back to the
/// ``HTTP2FrameStreamOwner`` it was opened for, on the same event loop.
protocol UpstreamStream: AnyObject {
    /// Whether the owner takes more of the response now; while false, the upstream is held
    /// (HTTP/2 credit withheld, or the HTTP/1 connection not read).
    var isReceiving: Bool { get set }
    /// False while the upstream cannot take more of the request; the owner's
    /// ``HTTP2FrameStreamOwner/streamWritable()`` follows when that changes.
    var isWritable: Bool { get }
    /// Sends one frame of the request: its HEADERS (once), DATA, and trailers.
    func write(_ payload: HTTP2Frame.FramePayload)
    func flush()
    /// Abandons the exchange unless it has ended (RST_STREAM, or the HTTP/1 connection closed);
    /// the owner is told (``HTTP2FrameStreamOwner/streamClosed(reason:)``) unless it detached.
    func reset(_ code: HTTP2ErrorCode)
    /// Stops telling the owner anything; whatever still arrives is dropped.
    func detach()
    /// Abandons the exchange if it has not ended within `limit` (a detached stream left to end
    /// by itself).
    func resetUnlessClosed(after limit: TimeAmount)
}

extension UpstreamStream {
    func reset() { reset(.cancel) }
}

extension HTTP2FrameStream: UpstreamStream {}
