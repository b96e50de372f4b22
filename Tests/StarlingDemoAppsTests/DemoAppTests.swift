import StarlingDemoApps
import Testing

struct DemoAppTests {
    @Test func bothDemoAppsAreNamedForTheCommandLine() {
        #expect(DemoApp(rawValue: "podinfo") == .podinfo)
        #expect(DemoApp(rawValue: "frontend") == .frontend)
        #expect(DemoApp(rawValue: "nope") == nil)
    }
}
