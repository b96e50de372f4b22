import NIOHPACK
import NIOHTTP2

/// Serves a stream the inbound policy refused: answers `403 Forbidden` (a gRPC request: status 7,
/// PERMISSION_DENIED, in trailers-only form) with the reason in `starling-error`, and nothing of
/// the request reaches the application. A caller still sending is asked to stop (RST_STREAM
/// NO_ERROR: the answer is complete).
final class InboundRefusal: HTTP2FrameStreamOwner {
    private let stream: HTTP2FrameStream
    private let error: ProxyError
    private let grpc: Bool
    /// A HEAD request: the answer has no body.
    private let head: Bool
    private var recorder: InboundRequestRecorder
    private var answered = false

    init(stream: HTTP2FrameStream, reason: String, grpc: Bool, head: Bool = false, recorder: InboundRequestRecorder) {
        self.head = head
        self.stream = stream
        self.error = ProxyError(.forbidden, reason)
        self.grpc = grpc
        self.recorder = recorder
    }

    func streamReceived(_ payload: HTTP2Frame.FramePayload) {
        guard !answered, case .headers(let headers) = payload else { return }
        answered = true
        // Counted as it goes out: a gRPC call gets a trailers-only PERMISSION_DENIED.
        if grpc {
            recorder.responded(status: 200, grpcStatus: ErrorResponse.grpcPermissionDenied)
        } else {
            recorder.responded(status: error.httpStatus)
        }
        if grpc {
            stream.write(ErrorResponse.grpcTrailersOnly(error, status: ErrorResponse.grpcPermissionDenied))
            stream.flush()
            if !headers.endStream { stream.reset(.noError) }
        } else if head {
            var answer = ErrorResponse.http2Headers(status: error.httpStatus, code: error.code, bodyLength: 0, headerValue: error.headerValue)
            answer.remove(name: "content-length")
            stream.write(.headers(.init(headers: answer, endStream: true)))
            stream.flush()
            if !headers.endStream { stream.reset(.noError) }
        } else {
            stream.respond(with: error, requestEnded: headers.endStream)
        }
    }

    func streamReadComplete() {}
    func streamWritable() {}
    func streamClosed(reason: HTTP2ErrorCode?) {}
}
