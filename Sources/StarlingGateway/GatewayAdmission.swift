import StarlingProxy

/// Why a gateway refuses a request or connection after the handshake, and the one place those
/// refusals map to an HTTP status and `starling-error` (``status``).
///
/// `ProxyError.httpStatus` knows only the proxy's own codes (an unknown code is 502), so the
/// gateway's refusal codes are mapped here.
struct GatewayRefusal: Error, Sendable, Hashable, CustomStringConvertible {
    var code: ProxyError.Code
    var message: String

    init(_ code: ProxyError.Code, _ message: String) {
        self.code = code
        self.message = message
    }

    var description: String { "\(code): \(message)" }

    /// The HTTP status the caller sees.
    var status: Int {
        switch code {
        case .notExported: 403
        case .loop: 508
        case .badRequest: 400
        default: 502
        }
    }

    /// The `reason` dimension of `starling_gateway_refused_total`.
    var reason: String { code.name }

    static func == (a: GatewayRefusal, b: GatewayRefusal) -> Bool { a.code == b.code }
    func hash(into h: inout Hasher) { h.combine(code) }
}

extension ProxyError.Code {
    /// The gateway was asked for a service that is not exported (403).
    static let notExported = ProxyError.Code("not-exported")
    /// The request would go from gateway to gateway (508): it already passed one, or its
    /// target is itself a mirror of another cluster's service.
    static let loop = ProxyError.Code("loop")
}

/// The gateway's admission rules, applied in order to each request (HTTP) or connection
/// (opaque): a named target, no earlier gateway hop, a service that is exported and not a mirror.
enum GatewayAdmission {
    /// The target before discovery: it must be named, and the request must not have passed a
    /// gateway already.
    static func check(target: String?, hops: String?) -> Result<String, GatewayRefusal> {
        if hops != nil {
            return .failure(GatewayRefusal(.loop, "the request already passed a gateway (\(GatewayHeaders.hops): \(hops ?? ""))"))
        }
        guard let target, !target.isEmpty else {
            return .failure(GatewayRefusal(.badRequest, "the request names no target (\(MeshHeaders.target))"))
        }
        return .success(target)
    }

    /// The target's profile: mirrors are refused (forwarding would go to another gateway), and
    /// only exported services are served.
    static func check(target: String, profile: ServiceProfile) -> GatewayRefusal? {
        if profile.mirrored {
            return GatewayRefusal(.loop, "\(target) is a mirror of another cluster's service")
        }
        guard profile.exported else {
            return GatewayRefusal(.notExported, "\(target) is not exported")
        }
        return nil
    }
}
