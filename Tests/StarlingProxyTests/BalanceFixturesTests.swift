import Logging
import Synchronization
import Testing

@testable import StarlingProxy

// Shared fixtures of the balancing tests: a discovery source, a clock and a random source that
// the tests control.

/// Discovery answers set by the test. An authority without a profile gets a plain one; an
/// authority without endpoints does not exist.
final class BalanceFakeDiscovery: DiscoverySource {
    private let state = Mutex<(profiles: [String: ServiceProfile], endpoints: [String: EndpointSet])>(([:], [:]))

    func setProfile(_ profile: ServiceProfile, for authority: String) {
        state.withLock { $0.profiles[authority] = profile }
    }

    func setEndpoints(_ endpoints: [Endpoint], for authority: String) {
        state.withLock { $0.endpoints[authority] = EndpointSet(endpoints: Set(endpoints), exists: true) }
    }

    func profile(_ authority: String) async throws(ProxyError) -> ServiceProfile {
        state.withLock { $0.profiles[authority] } ?? ServiceProfile(fullyQualifiedName: authority)
    }

    func endpoints(_ authority: String) async throws(ProxyError) -> EndpointSet {
        state.withLock { $0.endpoints[authority] } ?? EndpointSet(exists: false)
    }

    // Everything set is known at once, as a discovery client's cache is after its first answer.
    func cachedProfile(_ authority: String) -> ServiceProfile? {
        state.withLock { $0.profiles[authority] } ?? ServiceProfile(fullyQualifiedName: authority)
    }

    func cachedEndpoints(_ authority: String) -> EndpointSet? {
        state.withLock { $0.endpoints[authority] } ?? EndpointSet(exists: false)
    }
}

/// A clock that moves only when the test says so.
final class BalanceManualClock: Sendable {
    private let instant = Mutex(ContinuousClock.now)

    var now: ContinuousClock.Instant { instant.withLock { $0 } }

    func advance(by duration: Duration) {
        instant.withLock { $0 += duration }
    }

    var function: @Sendable () -> ContinuousClock.Instant { { [self] in now } }
}

/// SplitMix64: a small deterministic generator, so that statistical tests do not flake.
struct BalanceSeededRandom: RandomNumberGenerator, Sendable {
    private var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

func balanceEndpoint(_ last: Int, port: Int = 4143) -> Endpoint {
    Endpoint(host: "10.0.0.\(last)", port: port)
}

func makeBalancePicker(
    _ discovery: BalanceFakeDiscovery, clock: BalanceManualClock, seed: UInt64 = 42,
    configuration: MeshPicker.Configuration = .init()
) -> MeshPicker {
    MeshPicker(
        discovery: discovery, configuration: configuration, logger: Logger(label: "balance-test"),
        now: clock.function, random: BalanceSeededRandom(seed: seed))
}
