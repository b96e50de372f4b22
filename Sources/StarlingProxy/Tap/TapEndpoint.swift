@preconcurrency import Crypto
public import Foundation
public import Logging
public import StarlingObservability
import StarlingIdentity
import X509

/// `GET /tap` on a proxy's admin server: a live stream of the requests this proxy handles, one
/// JSON object per line (``TapEvent``), for a caller holding a tap ticket the cluster's
/// controller signed (``TapTicket``, given only to admin callers). The ticket is checked against
/// the controller certificate the proxy already pins; the stream ends when the ticket expires.
///
/// Query parameters filter the events (``TapFilter``).
public struct TapEndpoint: Sendable {
    public static let path = "/tap"

    private let hub: TapHub
    private let key: P256.Signing.PublicKey?
    private let identity: String
    private let address: String?
    private let logger: Logger

    /// `controllerCertificatePEM`: the controller API certificate the proxy pins. When its key is
    /// not P-256 no ticket can verify, and every tap is refused saying so. `identity` and
    /// `address` (this admin server's `host:port`; nil when it listens on a wildcard) must be
    /// the ones a ticket names.
    public init(hub: TapHub, controllerCertificatePEM: String, identity: String, address: String?, logger: Logger) {
        self.hub = hub
        self.identity = identity
        self.address = address
        self.logger = logger
        let certificate = try? PEMFile.certificates(pem: controllerCertificatePEM, source: "controller certificate").first
        self.key = certificate.flatMap { P256.Signing.PublicKey($0.publicKey) }
    }

    public func answer(_ request: AdminServer.Request, now: Date = Date()) -> AdminServer.StreamAnswer {
        guard let key else {
            return .refused(status: 503, message: "tap is unavailable: the pinned controller certificate has no P-256 key to check tickets with")
        }
        guard let authorization = request.authorization, authorization.hasPrefix("Bearer "),
            case let ticket = String(authorization.dropFirst("Bearer ".count)), !ticket.isEmpty
        else {
            return .refused(status: 401, message: "tap needs `authorization: Bearer TICKET` (get one with `starling viz tap`, which asks the controller)")
        }
        let claims: TapTicket.Claims
        do throws(IdentityError) {
            claims = try TapTicket.verify(ticket, key: key, subject: identity, address: address, now: now)
        } catch {
            logger.warning("tap refused", metadata: ["error": "\(error.message)"])
            return .refused(status: error.code == .tokenExpired ? 401 : 403, message: error.message)
        }
        let filter: TapFilter
        do throws(TapRequestError) {
            filter = try TapFilter(query: request.query)
        } catch {
            return .refused(status: 400, message: error.description)
        }
        guard let events = hub.subscribe(filter) else {
            return .refused(status: 429, message: "this proxy already serves \(TapHub.maximumTaps) taps; close one and try again")
        }
        logger.info("tap opened", metadata: ["ticket": "\(claims.id)", "until": "\(claims.expiresAt)"])
        let remaining = max(0, claims.expiry.timeIntervalSince(now))
        // Bounded like the hub's buffer: a client that stops reading loses the oldest lines (and
        // the admin server closes it when a write stalls), the proxy keeps nothing more. Ends at
        // the ticket's expiry.
        return .stream(contentType: "application/x-ndjson", buffer: TapHub.bufferSize) { lines in
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            lines.yield("{\"tap\":\"open\"}\n")
            await withTaskGroup(of: Void.self) { group in
                group.addTask {
                    for await event in events {
                        guard let data = try? encoder.encode(event) else { continue }
                        lines.yield(String(decoding: data, as: UTF8.self) + "\n")
                    }
                }
                group.addTask { try? await Task.sleep(for: .seconds(remaining)) }
                await group.next()
                group.cancelAll()
            }
        }
    }
}
