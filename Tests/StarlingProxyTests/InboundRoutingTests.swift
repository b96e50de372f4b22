import NIOCore
import NIOHPACK
import NIOHTTP1
import NIOSSL
import StarlingCore
import StarlingTLS
import Testing

@testable import StarlingProxy

/// The inbound side's pure pieces: port mapping, header rewriting, refusal reasons and the
/// HTTP/1 forwarding state machine.
struct InboundRoutingTests {
    let configuration = InboundProxy.Configuration(appPorts: [8080, 9898], defaultAppPort: 8080)
    let client = MeshIdentity(namespace: "test", serviceAccount: "frontend")

    @Test func aDeclaredTargetPortIsUsedAndAnythingElseGetsTheDefault() {
        #expect(configuration.appPort(forTarget: "podinfo.test.svc.cluster.local:9898") == 9898)
        #expect(configuration.appPort(forTarget: "podinfo.test.svc.cluster.local:9999") == 8080)
        #expect(configuration.appPort(forTarget: "podinfo.test.svc.cluster.local") == 8080)
        #expect(configuration.appPort(forTarget: "[::1]:9898") == 9898)
        #expect(configuration.appPort(forTarget: "host:98x8") == 8080)
        #expect(configuration.appPort(forTarget: "host:") == 8080)
        #expect(configuration.appPort(forTarget: nil) == 8080)
    }

    @Test func meshHeadersAreConsumedAndTheClientIdentityIsSetOnce() {
        let incoming: HPACKHeaders = [
            ":method": "GET", ":path": "/", ":authority": "podinfo.test:9898", ":scheme": "https",
            "starling-target": "podinfo.test.svc.cluster.local:9898", "starling-orig-proto": "HTTP/1.1",
            "Starling-Client-Id": "forged", "x-app": "kept",
        ]
        let rewrite = InboundRequestRewrite(incoming, client: client, configuration: configuration)
        #expect(rewrite.appPort == 9898)
        #expect(rewrite.appProtocol == .http1)
        #expect(rewrite.authority == "podinfo.test.svc.cluster.local:9898")
        #expect(rewrite.headers["starling-target"].isEmpty)
        #expect(rewrite.headers["starling-orig-proto"].isEmpty)
        #expect(rewrite.headers["starling-client-id"] == [client.dnsName])
        #expect(rewrite.headers.first(name: "x-app") == "kept")
        #expect(rewrite.headers.first(name: ":authority") == "podinfo.test:9898")
    }

    @Test func aGRPCRequestStaysHTTP2AndAPlainHTTP2RequestReachesTheAppAsHTTP1() {
        let incoming: HPACKHeaders = [
            ":method": "POST", ":path": "/svc/M", ":authority": "grpc:50051", ":scheme": "https",
            "content-type": "application/grpc+proto",
        ]
        let rewrite = InboundRequestRewrite(incoming, client: client, configuration: configuration)
        #expect(rewrite.appProtocol == .http2)
        let plain: HPACKHeaders = [":method": "GET", ":path": "/", ":authority": "web:8080", ":scheme": "http"]
        #expect(InboundRequestRewrite(plain, client: client, configuration: configuration).appProtocol == .http1)
        #expect(rewrite.appPort == 8080)
        #expect(rewrite.authority == "grpc:50051")
        #expect(InboundRequestRewrite.isHTTP1("HTTP/1.0"))
        #expect(InboundRequestRewrite.isHTTP1("http/1.1"))
        #expect(!InboundRequestRewrite.isHTTP1("HTTP/2"))
    }

    @Test func handshakeErrorsAreClassifiedByBoringSSLReason() {
        #expect(InboundHandshakeFailure.classify(ChannelError.eof) == .closed)
        #expect(InboundHandshakeFailure.classify(NIOSSLError.uncleanShutdown) == .closed)
        #expect(InboundHandshakeFailure.classify(TestError("error:1000007d:SSL routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED")) == .certificateRejected)
        #expect(InboundHandshakeFailure.classify(TestError("PEER_DID_NOT_RETURN_A_CERTIFICATE")) == .noClientCertificate)
        #expect(InboundHandshakeFailure.classify(TestError("SSL routines:OPENSSL_internal:WRONG_VERSION_NUMBER")) == .notTLS)
        #expect(InboundHandshakeFailure.classify(TestError("UNSUPPORTED_PROTOCOL")) == .protocolMismatch)
        #expect(InboundHandshakeFailure.classify(TestError("something new")) == .other)
    }

    @Test func theMeshsOwnRefusalsHaveTheirOwnReasonsAndBoringSSLsAreExplained() {
        #expect(InboundHandshakeFailure.reason(for: .certificateExpired) == .expired)
        #expect(InboundHandshakeFailure.reason(for: .certificateNotYetValid) == .notYetValid)
        #expect(InboundHandshakeFailure.reason(for: .unknownAuthority) == .unknownAuthority)
        #expect(InboundHandshakeFailure.reason(for: .noClientAuthUsage) == .noClientAuth)
        #expect(InboundHandshakeFailure.reason(for: .caCertificateAsLeaf) == .caAsLeaf)
        #expect(InboundHandshakeFailure.reason(for: .nonMeshName) == .nonMeshName)
        #expect(InboundHandshakeFailure.reason(for: .chainTooLong) == .chainTooLong)
        #expect(InboundHandshakeFailure.reason(for: .serverNameMismatch) == .serverNameMismatch)
        #expect(InboundHandshakeFailure.reason(for: .keyMismatch) == nil)
        let tls12 = InboundHandshakeFailure.explain(.protocolMismatch, TestError("error:100000f0:UNSUPPORTED_PROTOCOL"))
        #expect(tls12.hasPrefix("the client offered TLS 1.2 or older; TLS 1.3 is required"))
        #expect(tls12.contains("UNSUPPORTED_PROTOCOL"))
        #expect(InboundHandshakeFailure.explain(.protocolMismatch, TestError("NO_SHARED_CIPHER")).contains("no cipher"))
        #expect(InboundHandshakeFailure.explain(.notTLS, TestError("HTTP_REQUEST")).hasPrefix("the client did not speak TLS"))
    }

    struct TestError: Error, CustomStringConvertible {
        var description: String
        init(_ description: String) { self.description = description }
    }
}

/// ``InboundHTTP1ForwardStateMachine`` as a plain value.
struct InboundHTTP1ForwardStateMachineTests {
    let head = HTTPServerRequestPart.head(HTTPRequestHead(version: .http1_1, method: .POST, uri: "/"))
    let body = HTTPServerRequestPart.body(ByteBuffer(string: "x"))
    let end = HTTPServerRequestPart.end(nil)
    let responseHead = HTTPClientResponsePart.head(HTTPResponseHead(version: .http1_1, status: .ok))

    @Test func partsArrivingWhileConnectingAreHeldThenSent() {
        var machine = InboundHTTP1ForwardStateMachine()
        guard case .connect = machine.requestReceived(head) else { Issue.record("expected connect"); return }
        guard case .hold = machine.requestReceived(body) else { Issue.record("expected hold"); return }
        guard case .send(let held, let readMore) = machine.connected() else { Issue.record("expected send"); return }
        #expect(held.count == 2)
        #expect(readMore)
        #expect(machine.wantsRequestBody)
        guard case .forward = machine.requestReceived(end) else { Issue.record("expected forward"); return }
        #expect(!machine.wantsRequestBody)
    }

    @Test func aCompleteExchangeWithKeepAliveReusesTheConnection() {
        var machine = InboundHTTP1ForwardStateMachine()
        _ = machine.requestReceived(head)
        _ = machine.requestReceived(end)
        _ = machine.connected()
        guard case .forward = machine.responseReceived(responseHead, keepAlive: true) else {
            Issue.record("expected forward")
            return
        }
        guard case .finish(_, let disposal, let reset) = machine.responseReceived(.end(nil), keepAlive: true) else {
            Issue.record("expected finish")
            return
        }
        #expect(disposal == .reuse)
        #expect(!reset)
        let failure = machine.appFailed()
        #expect(failure == .none)
    }

    @Test func aResponseBeforeTheWholeRequestClosesTheConnectionAndResetsTheStream() {
        var machine = InboundHTTP1ForwardStateMachine()
        _ = machine.requestReceived(head)
        _ = machine.connected()
        _ = machine.responseReceived(responseHead, keepAlive: true)
        guard case .finish(_, let disposal, let reset) = machine.responseReceived(.end(nil), keepAlive: true) else {
            Issue.record("expected finish")
            return
        }
        #expect(disposal == .close)
        #expect(reset)
    }

    @Test func anAppFailureBeforeTheResponseAnswersWithAnErrorAndAfterItResets() {
        var before = InboundHTTP1ForwardStateMachine()
        _ = before.requestReceived(head)
        _ = before.connected()
        let beforeFailure = before.appFailed()
        #expect(beforeFailure == .respondWithError)

        var after = InboundHTTP1ForwardStateMachine()
        _ = after.requestReceived(head)
        _ = after.connected()
        _ = after.responseReceived(responseHead, keepAlive: true)
        let afterFailure = after.appFailed()
        #expect(afterFailure == .resetStream)
    }

    @Test func aConnectionArrivingAfterTheStreamClosedIsDiscarded() {
        var machine = InboundHTTP1ForwardStateMachine()
        _ = machine.requestReceived(head)
        let hadConnection = machine.streamClosed()
        #expect(!hadConnection)
        guard case .discard = machine.connected() else { Issue.record("expected discard"); return }
        let answered = machine.connectFailed()
        #expect(!answered)
    }

    @Test func interimResponsesAreNotRelayed() {
        var machine = InboundHTTP1ForwardStateMachine()
        _ = machine.requestReceived(head)
        _ = machine.connected()
        let interim = HTTPClientResponsePart.head(HTTPResponseHead(version: .http1_1, status: .continue))
        guard case .drop = machine.responseReceived(interim, keepAlive: true) else { Issue.record("expected drop"); return }
    }
}
