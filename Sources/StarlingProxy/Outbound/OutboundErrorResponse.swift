import NIOCore
import NIOHPACK
import NIOHTTP1

/// The response a client gets when the proxy or the gateway answers a request itself: the
/// status (`ProxyError.httpStatus`, or a gateway refusal's), `starling-error: <code>` and the
/// message as a short text body. Built here only.
enum OutboundErrorResponse {
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

    static func http2Headers(_ error: ProxyError) -> HPACKHeaders {
        http2Headers(status: error.httpStatus, code: error.code, bodyLength: body(error).readableBytes)
    }

    static func http2Headers(status: Int, code: ProxyError.Code, bodyLength: Int) -> HPACKHeaders {
        [
            ":status": String(status),
            ProxyError.headerName: code.name,
            "content-type": "text/plain; charset=utf-8",
            "content-length": String(bodyLength),
        ]
    }
}
