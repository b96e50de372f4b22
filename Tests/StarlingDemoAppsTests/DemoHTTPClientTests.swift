import Testing

@testable import StarlingDemoApps

struct DemoHTTPClientTests {
    @Test func proxyAddressReadsTheHttpProxyShapes() {
        #expect(DemoHTTPClient.Address(proxyURL: "http://127.0.0.1:4140") == .init(host: "127.0.0.1", port: 4140))
        #expect(DemoHTTPClient.Address(proxyURL: "http://127.0.0.1:4140/") == .init(host: "127.0.0.1", port: 4140))
        #expect(DemoHTTPClient.Address(proxyURL: "127.1.0.5:4140") == .init(host: "127.1.0.5", port: 4140))
        #expect(DemoHTTPClient.Address(proxyURL: "http://[::1]:4140") == .init(host: "::1", port: 4140))
        #expect(DemoHTTPClient.Address(proxyURL: "http://proxy") == .init(host: "proxy", port: 80))
        #expect(DemoHTTPClient.Address(proxyURL: "") == nil)
        #expect(DemoHTTPClient.Address(proxyURL: "http://host:notaport") == nil)
    }

    @Test func targetSplitsAnHTTPURL() throws {
        let target = try #require(DemoHTTPClient.Target(url: "http://podinfo.test:9898/"))
        #expect(target.address == .init(host: "podinfo.test", port: 9898))
        #expect(target.authority == "podinfo.test:9898")
        #expect(target.pathAndQuery == "/")
        #expect(target.absoluteURL == "http://podinfo.test:9898/")
        #expect(DemoHTTPClient.Target(url: "http://podinfo.test")?.pathAndQuery == "/")
        #expect(DemoHTTPClient.Target(url: "https://podinfo.test/") == nil)
    }

    @Test func connectionRefusedIsAnError() async throws {
        let closedPort = try await withRunningDemoApp(podinfo().run) { $0 }
        await #expect(throws: (any Error).self) {
            _ = try await DemoHTTPClient.get("http://127.0.0.1:\(closedPort)/", timeout: .seconds(2))
        }
    }
}
