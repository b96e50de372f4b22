import Logging
import NIOHPACK
import StarlingCore
import Testing

@testable import StarlingGateway
@testable import StarlingProxy

/// The gateway's pure rules: admission, the headers it forwards, and how the serving inbound
/// proxy reads (or drops) what a gateway vouches for.
struct GatewayRulesTests {
    static let target = "podinfo.test.svc.cluster.local:9898"
    static let caller = MeshIdentity(namespace: "test", serviceAccount: "frontend")

    @Test func aRequestWithoutTargetIsABadRequest() throws {
        let refusal = try #require(GatewayAdmission.check(target: nil, hops: nil).failure)
        #expect(refusal.code == .badRequest)
        #expect(refusal.status == 400)
    }

    @Test func aRequestThatPassedAGatewayIsALoop() throws {
        let refusal = try #require(GatewayAdmission.check(target: Self.target, hops: "1").failure)
        #expect(refusal.code == .loop)
        #expect(refusal.status == 508)
    }

    @Test func onlyExportedServicesThatAreNotMirrorsAreAdmitted() {
        let name = "podinfo.test.svc.cluster.local"
        #expect(GatewayAdmission.check(target: Self.target, profile: .init(fullyQualifiedName: name))?.code == .notExported)
        #expect(
            GatewayAdmission.check(target: Self.target, profile: .init(fullyQualifiedName: name, exported: true, mirrored: true))?
                .code == .loop)
        #expect(GatewayAdmission.check(target: Self.target, profile: .init(fullyQualifiedName: name, exported: true)) == nil)
        #expect(GatewayRefusal(.notExported, "").status == 403)
    }

    @Test func forwardedHeadersNameTheVerifiedCallerAndDropItsClaims() {
        let incoming: HPACKHeaders = [
            ":method": "GET", ":path": "/", ":authority": "podinfo.test:9898", MeshHeaders.target: Self.target,
            MeshHeaders.originalProtocol: "HTTP/1.1", GatewayHeaders.clientCluster: "west",
            GatewayHeaders.forwardedClientIdentity: "admin.kube-system.serviceaccount.identity.starling.cluster.local",
            MeshHeaders.clientIdentity: "spoofed",
        ]
        let headers = GatewayHTTP2Server.forwardedHeaders(incoming, peer: Self.caller)
        #expect(headers[GatewayHeaders.forwardedClientIdentity] == [Self.caller.dnsName])
        #expect(headers[GatewayHeaders.forwardedClientCluster] == ["west"])
        #expect(headers[GatewayHeaders.hops] == ["1"])
        #expect(headers[MeshHeaders.target] == [Self.target])
        #expect(headers[MeshHeaders.originalProtocol] == ["HTTP/1.1"])
        #expect(headers[MeshHeaders.clientIdentity].isEmpty)
    }

    @Test func aCallerWithoutClusterIsForwardedAsUnknown() {
        let headers = GatewayHTTP2Server.forwardedHeaders([MeshHeaders.target: Self.target], peer: Self.caller)
        #expect(headers[GatewayHeaders.forwardedClientCluster] == [GatewayHeaders.unknownCluster])
    }

    @Test func inboundTrustsForwardedCallerOnlyFromAGateway() {
        let configuration = InboundProxy.Configuration(defaultAppPort: 8080)
        let incoming: HPACKHeaders = [
            ":authority": "podinfo.test:9898", MeshHeaders.target: Self.target, GatewayHeaders.hops: "1",
            GatewayHeaders.forwardedClientIdentity: Self.caller.dnsName, GatewayHeaders.forwardedClientCluster: "west",
        ]
        let viaGateway = InboundRequestRewrite(incoming, client: .gateway(), configuration: configuration).headers
        #expect(viaGateway[MeshHeaders.clientIdentity] == [Self.caller.dnsName])
        #expect(viaGateway[GatewayHeaders.clientCluster] == ["west"])
        #expect(viaGateway[GatewayHeaders.forwardedClientIdentity].isEmpty)
        #expect(viaGateway[GatewayHeaders.hops].isEmpty)

        let other = MeshIdentity(namespace: "test", serviceAccount: "mallory")
        let direct = InboundRequestRewrite(incoming, client: other, configuration: configuration).headers
        #expect(direct[MeshHeaders.clientIdentity] == [other.dnsName])
        #expect(direct[GatewayHeaders.forwardedClientIdentity].isEmpty)
        #expect(direct[GatewayHeaders.forwardedClientCluster].isEmpty)
    }

    @Test func outboundSendsItsClusterNameOnlyWhenConfigured() {
        let request = OutboundRequest(
            headers: [":method": "GET", ":authority": "podinfo.test:9898", GatewayHeaders.clientCluster: "spoofed"],
            routingAuthority: "podinfo.test:9898", authority: "podinfo.test:9898", method: "GET", originalProtocol: nil,
            hasBody: false)
        let pick = Pick(
            endpoint: Endpoint(host: "127.0.0.1", port: 1, identity: .gateway(), authorityOverride: Self.target),
            backend: "podinfo-east.test.svc.cluster.local:9898", timeout: .seconds(1))
        let named = OutboundForwarder(logger: .init(label: "test"), clusterName: "west")
        #expect(named.meshHeaders(for: request, pick: pick)[GatewayHeaders.clientCluster] == ["west"])
        let unnamed = OutboundForwarder(logger: .init(label: "test"))
        #expect(unnamed.meshHeaders(for: request, pick: pick)[GatewayHeaders.clientCluster].isEmpty)
    }
}

extension Result {
    fileprivate var failure: Failure? {
        if case .failure(let failure) = self { return failure }
        return nil
    }
}
