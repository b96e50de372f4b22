import NIOCore
import NIOHPACK
import NIOHTTP1
import NIOHTTP2

/// The response a client gets when a proxy (outbound or inbound) or the gateway answers a
/// request itself: the status (`ProxyError.httpStatus`, or a gateway refusal's),
/// `starling-error: <code>` and the message as a short text body. Built here only.
enum ErrorResponse {
    static func body(_ error: ProxyError) -> ByteBuffer {
        body(error.message)
    }

    static func body(_ message: String) -> ByteBuffer {
        ByteBuffer(string: "\(message)\n")
    }

    static func http1Head(_ error: ProxyError, version: HTTPVersion, close: Bool) -> HTTPResponseHead {
        var headers = HTTPHeaders()
        headers.add(name: ProxyError.headerName, value: error.code.name)
        headers.add(name: "content-type", value: "text/plain; charset=utf-8")
        headers.add(name: "content-length", value: String(body(error).readableBytes))
        if close { headers.add(name: "connection", value: "close") }
        return HTTPResponseHead(version: version, status: HTTPResponseStatus(statusCode: error.httpStatus), headers: headers)
    }

    static func http2Headers(status: Int, code: ProxyError.Code, bodyLength: Int) -> HPACKHeaders {
        [
            ":status": String(status),
            ProxyError.headerName: code.name,
            "content-type": "text/plain; charset=utf-8",
            "content-length": String(bodyLength),
        ]
    }

    /// The HTTP/2 frames of the answer: its head, then its body with END_STREAM.
    static func http2Frames(_ error: ProxyError) -> (head: HTTP2Frame.FramePayload, body: HTTP2Frame.FramePayload) {
        let body = body(error)
        return (
            .headers(.init(headers: http2Headers(status: error.httpStatus, code: error.code, bodyLength: body.readableBytes))),
            .data(.init(data: .byteBuffer(body), endStream: true))
        )
    }
}
