import NIOCore
import NIOHPACK
import NIOHTTP1
import NIOHTTP2

/// The response a client gets when a proxy (outbound or inbound) or the gateway answers a
/// request itself: the status (`ProxyError.httpStatus`, or a gateway refusal's),
/// `starling-error: <code>` and the message as a short text body. Built here only.
package enum ErrorResponse {
    static func body(_ error: ProxyError) -> ByteBuffer {
        body(error.message)
    }

    static func body(_ message: String) -> ByteBuffer {
        ByteBuffer(string: "\(message)\n")
    }

    static func http1Head(_ error: ProxyError, version: HTTPVersion, close: Bool) -> HTTPResponseHead {
        var headers = HTTPHeaders()
        headers.add(name: ProxyError.headerName, value: error.headerValue)
        headers.add(name: "content-type", value: "text/plain; charset=utf-8")
        headers.add(name: "content-length", value: String(body(error).readableBytes))
        if close { headers.add(name: "connection", value: "close") }
        return HTTPResponseHead(version: version, status: HTTPResponseStatus(statusCode: error.httpStatus), headers: headers)
    }

    static func http2Headers(status: Int, code: ProxyError.Code, bodyLength: Int, headerValue: String? = nil) -> HPACKHeaders {
        [
            ":status": String(status),
            ProxyError.headerName: headerValue ?? code.name,
            "content-type": "text/plain; charset=utf-8",
            "content-length": String(bodyLength),
        ]
    }

    /// The HTTP/2 frames of the answer: its head, then its body with END_STREAM.
    static func http2Frames(_ error: ProxyError) -> (head: HTTP2Frame.FramePayload, body: HTTP2Frame.FramePayload) {
        let body = body(error)
        return (
            .headers(
                .init(
                    headers: http2Headers(
                        status: error.httpStatus, code: error.code, bodyLength: body.readableBytes, headerValue: error.headerValue))),
            .data(.init(data: .byteBuffer(body), endStream: true))
        )
    }

    /// A gRPC answer in trailers-only form (one HEADERS frame with END_STREAM): HTTP 200, the
    /// gRPC status and message, and `starling-error`. gRPC clients read the status from it.
    /// gRPC's PERMISSION_DENIED, the status of a refusal by policy.
    package static let grpcPermissionDenied = 7

    static func grpcTrailersOnly(_ error: ProxyError, status: Int) -> HTTP2Frame.FramePayload {
        let headers: HPACKHeaders = [
            ":status": "200",
            "content-type": "application/grpc",
            "grpc-status": String(status),
            "grpc-message": percentEncoded(error.message),
            ProxyError.headerName: error.headerValue,
        ]
        return .headers(.init(headers: headers, endStream: true))
    }

    /// gRPC's percent-encoding of `grpc-message`: printable ASCII but `%` as is, the rest as %XX of UTF-8.
    static func percentEncoded(_ s: String) -> String {
        var out = ""
        for byte in s.utf8.prefix(1024) {
            if byte >= 0x20, byte <= 0x7e, byte != UInt8(ascii: "%") {
                out.unicodeScalars.append(Unicode.Scalar(byte))
            } else {
                out += "%" + String(byte, radix: 16, uppercase: true).leftPadded(to: 2)
            }
        }
        return out
    }
}

extension String {
    fileprivate func leftPadded(to width: Int) -> String {
        count >= width ? self : String(repeating: "0", count: width - count) + self
    }
}
