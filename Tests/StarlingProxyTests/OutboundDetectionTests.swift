import NIOCore
import Testing

@testable import StarlingProxy

struct OutboundDetectionTests {
    @Test func detectorTellsHTTP2HTTP1AndOpaqueApart() {
        func decide(_ text: String) -> ProtocolDetector.Decision { ProtocolDetector.decide(ByteBuffer(string: text)) }
        #expect(decide("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n") == .detected(.http2))
        #expect(decide("PRI * HTTP/2") == .needMoreBytes)
        #expect(decide("GET / HTTP/1.1\r\n") == .detected(.http1))
        #expect(decide("OPTIONS") == .needMoreBytes)
        #expect(decide("M-SEARCH * HTTP/1.1") == .detected(.http1))
        #expect(decide("\u{16}\u{3}\u{1}") == .detected(.unknown))
        #expect(decide(" GET") == .detected(.unknown))
        #expect(decide(String(repeating: "A", count: 30)) == .detected(.unknown))
    }

    @Test func silentClientIsClosedAfterTheDetectionTimeout() async throws {
        let pki = try OutboundTestPKI()
        var configuration = OutboundProxy.Configuration(
            listenHost: "127.0.0.1", listenPort: 0, drainGracePeriod: .milliseconds(200))
        configuration.detectionTimeout = .milliseconds(200)
        let started = ContinuousClock.now
        let response = try await withOutboundProxy(
            configuration: configuration, picker: FixedPicker(endpoints: [:]), tls: try pki.tls(clientIdentity)
        ) { port in
            try await rawExchange(port: port, send: "", timeout: .seconds(5))
        }
        #expect(response.isEmpty)
        // Far below the 5 s the client would wait, with room for a loaded CI machine.
        #expect(ContinuousClock.now - started < .seconds(4.5))
    }
}
