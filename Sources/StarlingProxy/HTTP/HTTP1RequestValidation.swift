public import NIOHTTP1

/// Checks an HTTP/1 request head before it is forwarded, for what NIOHTTP1's decoder accepts
/// but a proxy must not pass on: ambiguous message framing (request smuggling, RFC 9112 §6.3)
/// and oversized heads.
public enum HTTP1RequestValidation {
    /// How the request body is delimited.
    public enum BodyFraming: Sendable, Hashable {
        case none
        case contentLength(Int)
        case chunked
    }

    /// Validates `head` and returns its body framing.
    ///
    /// - Throws: `ProxyError.badRequest` for `Content-Length` together with `Transfer-Encoding`,
    ///   several differing or non-numeric `Content-Length` values, or a `Transfer-Encoding` other
    ///   than a final `chunked`, a TRACE with a body (RFC 9110 §9.3.8; NIO's client encoder writes
    ///   such a body unframed, so the upstream would read it as a second request);
    ///   `ProxyError.headersTooLarge` when the field names and values exceed `maximumHeaderBytes`.
    public static func validate(_ head: HTTPRequestHead, maximumHeaderBytes: Int) throws(ProxyError) -> BodyFraming {
        let framing = try framing(of: head, maximumHeaderBytes: maximumHeaderBytes)
        if framing != .none, head.method == .TRACE {
            throw ProxyError(.badRequest, "a TRACE request must not have a body")
        }
        return framing
    }

    private static func framing(of head: HTTPRequestHead, maximumHeaderBytes: Int) throws(ProxyError) -> BodyFraming {
        var size = head.uri.utf8.count + head.method.rawValue.utf8.count
        for (name, value) in head.headers {
            size += name.utf8.count + value.utf8.count + 4
        }
        guard size <= maximumHeaderBytes else {
            throw ProxyError(.headersTooLarge, "the request head is \(size) bytes; the limit is \(maximumHeaderBytes)")
        }
        let lengths = head.headers["content-length"]
            .flatMap { $0.split(separator: ",", omittingEmptySubsequences: false) }
            .map { $0.trimmingASCIIWhitespace() }
        let encodings = head.headers["transfer-encoding"]
            .flatMap { $0.split(separator: ",") }
            .map { $0.trimmingASCIIWhitespace().lowercased() }
        if !encodings.isEmpty {
            guard lengths.isEmpty else {
                throw ProxyError(.badRequest, "the request has both Content-Length and Transfer-Encoding")
            }
            guard head.version.major == 1, head.version.minor >= 1 else {
                throw ProxyError(.badRequest, "Transfer-Encoding in an HTTP/1.0 request")
            }
            guard encodings.last == "chunked", encodings.filter({ $0 == "chunked" }).count == 1 else {
                throw ProxyError(
                    .badRequest, "unsupported Transfer-Encoding '\(encodings.joined(separator: ", "))'")
            }
            return .chunked
        }
        guard let first = lengths.first else { return .none }
        guard lengths.allSatisfy({ $0 == first }) else {
            throw ProxyError(.badRequest, "the request has differing Content-Length values")
        }
        guard !first.isEmpty, first.allSatisfy({ $0.isASCII && $0.isNumber }), first.count <= 18, let length = Int(first)
        else {
            throw ProxyError(.badRequest, "Content-Length '\(first)' is not a number")
        }
        return length == 0 ? .none : .contentLength(length)
    }
}
