import NIOCore
import NIOHTTP1
import NIOHTTP2

/// Turns the parts of an HTTP/1 response into HTTP/2 frames, one frame behind: each frame is held
/// until the next part shows whether it is the last, so the last one carries END_STREAM (a body
/// part followed by the end goes out as one DATA frame, a head followed by the end as one
/// HEADERS frame) instead of an empty DATA frame after it. The holder releases the held frame at
/// the end of each read, so nothing waits longer than that. Used wherever an HTTP/1 upstream
/// answers an HTTP/2 stream (the inbound's application, the outbound's plain endpoints).
struct HTTP1ResponseFramer {
    private var held: HTTP2Frame.FramePayload?

    /// The frames to write now for `part`, in order: the one held before (if `part` releases it)
    /// and, for the end, the last frame of the response. Interim (1xx) heads are the caller's to drop.
    mutating func push(_ part: HTTPClientResponsePart) -> (released: HTTP2Frame.FramePayload?, last: HTTP2Frame.FramePayload?) {
        switch part {
        case .head(let head):
            defer { held = .headers(.init(headers: HTTPHeadConversion.http2ResponseHeaders(from: head))) }
            return (held, nil)
        case .body(let body):
            defer { held = .data(.init(data: .byteBuffer(body))) }
            return (held, nil)
        case .end(let trailers?) where !trailers.isEmpty:
            defer { held = nil }
            return (held, .headers(.init(headers: HTTPHeadConversion.http2Trailers(from: trailers), endStream: true)))
        case .end:
            defer { held = nil }
            switch held {
            case .headers(var headers):
                headers.endStream = true
                return (nil, .headers(headers))
            case .data(var data):
                data.endStream = true
                return (nil, .data(data))
            default:
                return (nil, .data(.init(data: .byteBuffer(ByteBuffer()), endStream: true)))
            }
        }
    }

    /// The held frame, released (the end of a read), or dropped.
    mutating func release() -> HTTP2Frame.FramePayload? {
        defer { held = nil }
        return held
    }
}
