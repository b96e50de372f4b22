import NIOCore
import NIOHPACK
import NIOHTTP1
import NIOHTTP2
import NIOPosix
import Synchronization

/// One request on its way out, in HTTP/2 form whatever the client spoke.
struct OutboundRequest: Sendable {
    /// Pseudo-headers and fields, hop-by-hop fields removed, mesh headers not yet added.
    var headers: HPACKHeaders
    /// What the picker is asked for: `host:port` of the service (or the original destination).
    var routingAuthority: String
    /// The `:authority` the client used, for logs and metrics.
    var authority: String
    var method: String
    /// `HTTP/1.1` / `HTTP/1.0` when the client spoke HTTP/1; nil for HTTP/2 clients.
    var originalProtocol: String?
    /// False when the request ends with its head.
    var hasBody: Bool
}
