import StarlingCore
import StarlingStore
import Testing

@Suite(.serialized) struct ScaleTests {
    static let count = 10_000

    static func services() -> [Resource] {
        (0..<count).map { i in
            service("svc-\(i)", namespace: "ns-\(i % 20)", labels: ["app": "svc-\(i)", "tier": i.isMultiple(of: 2) ? "front" : "back"])
        }
    }

    @Test func tenThousandServicesApplyInOneCallAndReapplyUnchanged() async throws {
        try await withStore { store, _ in
            let services = Self.services()
            let clock = ContinuousClock()
            let elapsed = try await clock.measure {
                let results = try await store.apply(services)
                #expect(results.count == Self.count)
            }
            let reapply = try await clock.measure {
                let results = try await store.apply(services)
                #expect(results.allSatisfy { $0.outcome == .unchanged })
            }
            let list = try await clock.measure {
                let listed = try await store.list(kind: "Service", namespace: nil, selector: nil)
                #expect(listed.count == Self.count)
            }
            print("10,000 Services in one apply: \(elapsed); unchanged re-apply: \(reapply); list all: \(list)")
            #expect(try await store.currentVersion() == Int64(Self.count))
        }
    }

    @Test func tenThousandServicesApplyInBatchesOf500() async throws {
        try await withStore { store, _ in
            let services = Self.services()
            let elapsed = try await ContinuousClock().measure {
                for start in stride(from: 0, to: services.count, by: 500) {
                    _ = try await store.apply(Array(services[start..<start + 500]))
                }
            }
            print("10,000 Services in batches of 500: \(elapsed)")
            #expect(try await store.currentVersion() == Int64(Self.count))
        }
    }
}
