package import NIOHPACK
import NIOHTTP2

/// The gRPC status of a response, for the `grpc_status` label of the request counters: a gRPC
/// call that fails answers HTTP 200 with `grpc-status` ≠ 0 in its trailers (or in a trailers-only
/// head), so the HTTP status alone counts it as a success.
package enum GRPCStatus {
    /// CANCELLED: what a gRPC client that went away in the middle of a response reports.
    static let cancelled = 1
    /// UNKNOWN: what a gRPC client makes of a `grpc-status` outside 0–16.
    static let unknown = 2
    /// INTERNAL: what a gRPC client reports for a 200 response that ended without a status.
    static let internalError = 13

    /// True when `headers` (a request's) are a gRPC call's: `content-type: application/grpc`,
    /// alone or followed by `+` (`+proto`) or `;`. Not gRPC-Web (`application/grpc-web…`), whose
    /// status travels in the body, and which an HTTP/1.1 server answers.
    package static func isCall(_ headers: HPACKHeaders) -> Bool {
        guard let type = headers.first(name: "content-type"), type.hasASCIICaseInsensitivePrefix("application/grpc") else {
            return false
        }
        let rest = type.utf8.dropFirst("application/grpc".utf8.count)
        return rest.first.map { $0 == UInt8(ascii: "+") || $0 == UInt8(ascii: ";") } ?? true
    }

    /// The status in `headers` (trailers, or a trailers-only head): 0–16, ``unknown`` for
    /// anything else, nil without `grpc-status`. The label stays bounded to 17 values.
    static func of(_ headers: HPACKHeaders) -> Int? {
        guard let text = headers.first(name: "grpc-status") else { return nil }
        guard let code = Int(text), (0...16).contains(code) else { return unknown }
        return code
    }

    /// The status of a gRPC call's response whose HTTP status was `httpStatus` and whose last
    /// frame was `last`. nil for a response other than 200 (its HTTP status says how it failed,
    /// and gRPC clients derive their status from it).
    static func ofResponse(httpStatus: Int, ending last: HTTP2Frame.FramePayload) -> Int? {
        guard httpStatus == 200 else { return nil }
        if case .headers(let trailers) = last, let status = of(trailers.headers) { return status }
        return internalError
    }
}
