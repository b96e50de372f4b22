import StarlingProxy
import Testing

struct ProxyErrorTests {
    @Test func errorsMapToTheStatusAClientExpects() {
        #expect(ProxyError(.noEndpoints, "x").httpStatus == 503)
        #expect(ProxyError(.unknownService, "x").httpStatus == 503)
        #expect(ProxyError(.timeout, "x").httpStatus == 504)
        #expect(ProxyError(.connectFailed, "x").httpStatus == 502)
        #expect(ProxyError(.peerIdentityRejected, "x").httpStatus == 502)
        #expect(ProxyError(.headersTooLarge, "x").httpStatus == 431)
        #expect(ProxyError(.badRequest, "x").httpStatus == 400)
    }
}
