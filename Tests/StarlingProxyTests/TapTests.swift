import Crypto
import Foundation
import Logging
import StarlingIdentity
import StarlingObservability
import Testing

@testable import StarlingProxy

/// Tap: the tickets a proxy admits, the filters, the hub's zero-cost-when-closed publishing, and
/// the admin route's refusals.
@Suite struct TapTests {
    static let me = "web.test.serviceaccount.identity.starling.cluster.local"
    static let here = "127.0.0.5:4191"

    static func controller() throws -> (pem: String, key: P256.Signing.PrivateKey) {
        let (certificate, key) = try ServingCertificate.selfSigned(commonName: "starling-controller", ipAddresses: ["127.0.0.1"])
        return (PEMFile.pem(certificate), key)
    }

    static func event(_ direction: String = "inbound", method: String = "GET", path: String = "/", authority: String = "podinfo.test:9898") -> TapEvent {
        TapEvent(
            direction: direction, method: method, authority: authority, path: path, status: 200, latency: .milliseconds(2),
            sourceIdentity: "a", destinationIdentity: "b", tls: true)
    }

    @Test func ticketVerifiesWithTheSigningControllersKeyOnly() throws {
        let (_, key) = try Self.controller()
        let ticket = try TapTicket.sign(TapTicket.Claims(cluster: "c1", subject: Self.me, address: Self.here), key: key)
        #expect(try TapTicket.verify(ticket, key: key.publicKey, subject: Self.me, address: Self.here).cluster == "c1")
        let other = P256.Signing.PrivateKey()
        #expect(throws: IdentityError.self) { try TapTicket.verify(ticket, key: other.publicKey, subject: Self.me, address: Self.here) }
        // An altered payload does not verify either.
        var parts = ticket.split(separator: ".").map(String.init)
        let claims = try JSONEncoder().encode(TapTicket.Claims(cluster: "another", subject: Self.me, address: Self.here))
        parts[1] = claims.base64EncodedString().replacingOccurrences(of: "=", with: "")
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
        #expect(throws: IdentityError.self) { try TapTicket.verify(parts.joined(separator: "."), key: key.publicKey, subject: Self.me, address: Self.here) }
    }

    @Test func ticketForAnotherProxyIsRefused() throws {
        let (_, key) = try Self.controller()
        let other = try TapTicket.sign(
            TapTicket.Claims(cluster: "c1", subject: "db.test.serviceaccount.identity.starling.cluster.local", address: Self.here), key: key)
        #expect(throws: IdentityError.self) { try TapTicket.verify(other, key: key.publicKey, subject: Self.me, address: Self.here) }
        let elsewhere = try TapTicket.sign(TapTicket.Claims(cluster: "c1", subject: Self.me, address: "10.0.0.9:4191"), key: key)
        #expect(throws: IdentityError.self) { try TapTicket.verify(elsewhere, key: key.publicKey, subject: Self.me, address: Self.here) }
        // A proxy on a wildcard address checks the identity only.
        #expect(try TapTicket.verify(elsewhere, key: key.publicKey, subject: Self.me, address: nil).address == "10.0.0.9:4191")
    }

    @Test func expiredTicketIsRefusedSayingSo() throws {
        let (_, key) = try Self.controller()
        let claims = TapTicket.Claims(cluster: "c1", subject: Self.me, address: Self.here, now: Date(timeIntervalSinceNow: -600), lifetime: 60)
        let ticket = try TapTicket.sign(claims, key: key)
        do {
            _ = try TapTicket.verify(ticket, key: key.publicKey, subject: Self.me, address: Self.here)
            Issue.record("an expired ticket verified")
        } catch {
            #expect(error.code == .tokenExpired)
            #expect(error.message.contains("expired"))
        }
    }

    @Test func ticketForAnotherAudienceIsRefused() throws {
        let (_, key) = try Self.controller()
        var claims = TapTicket.Claims(cluster: "c1", subject: Self.me, address: Self.here)
        claims.audience = JoinToken.Audience.join
        let ticket = try TapTicket.sign(claims, key: key)
        #expect(throws: IdentityError.self) { try TapTicket.verify(ticket, key: key.publicKey, subject: Self.me, address: Self.here) }
    }

    @Test func filterFromQueryRefusesWhatItDoesNotKnow() throws {
        #expect(throws: TapRequestError.self) { try TapFilter(query: ["colour": "red"]) }
        #expect(throws: TapRequestError.self) { try TapFilter(query: ["direction": "sideways"]) }
        #expect(throws: TapRequestError.self) { try TapFilter(query: ["path": "api"]) }
        #expect(try TapFilter(query: ["direction": "gateway"]).direction == "gateway")
        let filter = try TapFilter(query: ["method": "post", "path": "/api", "authority": "podinfo"])
        #expect(filter.matches(Self.event(method: "POST", path: "/api/x")))
        #expect(!filter.matches(Self.event(method: "GET", path: "/api/x")))
        #expect(!filter.matches(Self.event(method: "POST", path: "/other")))
    }

    @Test func authorityFilterNamesAServiceNotAPrefixOfOne() {
        let filter = TapFilter(authority: "podinfo")
        #expect(filter.matches(Self.event(authority: "podinfo.test.svc.cluster.local:9898")))
        #expect(filter.matches(Self.event(authority: "podinfo:9898")))
        #expect(!filter.matches(Self.event(authority: "podinfo-workload2.test:9898")))
    }

    @Test func hubBuildsNothingWhileNoTapIsOpen() async throws {
        let hub = TapHub()
        var built = 0
        hub.publish { built += 1; return Self.event() }
        #expect(built == 0 && !hub.isActive)

        let stream = try #require(hub.subscribe(TapFilter(direction: "outbound")))
        #expect(hub.isActive)
        hub.publish { Self.event("inbound", path: "/skipped") }
        hub.publish { Self.event("outbound", path: "/seen") }
        var iterator = stream.makeAsyncIterator()
        #expect(await iterator.next()?.path == "/seen")
    }

    @Test func hubClosesATapWhenItsReaderStops() async throws {
        let hub = TapHub()
        let task = Task {
            guard let stream = hub.subscribe(TapFilter()) else { return }
            for await _ in stream {}
        }
        for _ in 0..<100 where !hub.isActive { try await Task.sleep(for: .milliseconds(10)) }
        #expect(hub.isActive)
        task.cancel()
        for _ in 0..<100 where hub.isActive { try await Task.sleep(for: .milliseconds(10)) }
        #expect(!hub.isActive)
    }

    @Test func hubRefusesTapsBeyondItsLimit() {
        let hub = TapHub()
        let streams = (0..<TapHub.maximumTaps).compactMap { _ in hub.subscribe(TapFilter()) }
        #expect(streams.count == TapHub.maximumTaps)
        #expect(hub.subscribe(TapFilter()) == nil)
    }

    @Test func endpointRefusesWithoutAValidTicket() throws {
        let (pem, key) = try Self.controller()
        let endpoint = TapEndpoint(
            hub: TapHub(), controllerCertificatePEM: pem, identity: Self.me, address: Self.here, logger: Logger(label: "test"))
        func status(_ answer: AdminServer.StreamAnswer) -> Int {
            if case .refused(let status, _) = answer { return status }
            return 200
        }
        #expect(status(endpoint.answer(.init(path: TapEndpoint.path))) == 401)
        let forged = try TapTicket.sign(TapTicket.Claims(cluster: "c1", subject: Self.me, address: Self.here), key: P256.Signing.PrivateKey())
        #expect(status(endpoint.answer(.init(path: TapEndpoint.path, authorization: "Bearer \(forged)"))) == 403)
        let good = try TapTicket.sign(TapTicket.Claims(cluster: "c1", subject: Self.me, address: Self.here), key: key)
        #expect(status(endpoint.answer(.init(path: TapEndpoint.path, query: ["direction": "up"], authorization: "Bearer \(good)"))) == 400)
        #expect(status(endpoint.answer(.init(path: TapEndpoint.path, authorization: "Bearer \(good)"))) == 200)
    }
}
