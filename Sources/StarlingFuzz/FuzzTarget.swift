import Foundation

/// One fuzz target: a name for the command line and a function that must not crash, trap or
/// fail one of its checks on any input.
struct FuzzTarget: Sendable {
    var name: String
    var summary: String
    var run: @Sendable ([UInt8]) -> Void

    static let all: [FuzzTarget] = [
        FuzzTarget(name: "resources", summary: "YAML and JSON resources of every kind; encoder round trips", run: CoreTargets.resources),
        FuzzTarget(name: "label-selector", summary: "label selector text and matching", run: CoreTargets.labelSelector),
        FuzzTarget(name: "quantity-duration", summary: "Kubernetes quantities and Go durations", run: CoreTargets.quantityAndDuration),
        FuzzTarget(name: "authz-policy", summary: "authorization resources compiled into a workload's policy, its JSON, and decisions", run: CoreTargets.authorizationPolicy),
        FuzzTarget(name: "route-match", summary: "HTTPRoute matches: precedence and request matching", run: CoreTargets.routeMatch),
        FuzzTarget(name: "pem", summary: "PEM and DER certificates, private keys, CSRs, trust bundles", run: IdentityTargets.pem),
        FuzzTarget(name: "join-token", summary: "join tokens verified with a fixed key (raw, and claims re-signed)", run: IdentityTargets.joinToken),
        FuzzTarget(name: "http1-head", summary: "HTTP/1 request bytes through NIO's parser, validation and HTTP/2 conversion", run: ProxyTargets.http1Head),
        FuzzTarget(name: "http2-head", summary: "HTTP/2 header lists converted to HTTP/1 request and response heads", run: ProxyTargets.http2Head),
        FuzzTarget(name: "authority", summary: "host:port parsers: HostPort (authorities, addresses, lists), NetworkAddress, ServiceAuthority keys, gateway lists", run: ProxyTargets.authority),
        FuzzTarget(name: "protocol-detect", summary: "outbound protocol detection from the first bytes", run: ProxyTargets.protocolDetect),
        FuzzTarget(name: "gateway-target", summary: "the opaque transport header naming the gateway's target, and starling-target", run: ProxyTargets.gatewayTarget),
        FuzzTarget(name: "store-apply", summary: "decoded resources applied to a SQLite store: all or nothing", run: StoreTargets.apply),
    ]
}

/// Stops the run when an invariant does not hold: libFuzzer reports the abort as a crash and
/// keeps the input.
func check(_ condition: @autoclosure () -> Bool, _ message: @autoclosure () -> String) {
    guard !condition() else { return }
    FileHandle.standardError.write(Data("fuzz check failed: \(message())\n".utf8))
    abort()
}

/// Splits fuzz bytes into the parts a target needs, so one input drives several arguments.
struct FuzzInput {
    private var bytes: ArraySlice<UInt8>

    init(_ bytes: [UInt8]) { self.bytes = bytes[...] }

    var isEmpty: Bool { bytes.isEmpty }

    /// The next byte, 0 when none is left.
    mutating func byte() -> UInt8 {
        bytes.popFirst() ?? 0
    }

    /// Text up to the next newline (or the end), decoded as UTF-8 with replacement.
    mutating func line() -> String {
        let end = bytes.firstIndex(of: UInt8(ascii: "\n")) ?? bytes.endIndex
        let text = String(decoding: bytes[..<end], as: UTF8.self)
        bytes = end == bytes.endIndex ? bytes[end...] : bytes[(end + 1)...]
        return text
    }

    /// The rest, decoded as UTF-8 with replacement.
    mutating func rest() -> String {
        defer { bytes = bytes[bytes.endIndex...] }
        return String(decoding: bytes, as: UTF8.self)
    }

    mutating func restBytes() -> [UInt8] {
        defer { bytes = bytes[bytes.endIndex...] }
        return Array(bytes)
    }
}

/// The harness could not set itself up (a temporary store, a throwaway issuer): says why and
/// exits with status 2, which `tests/fuzz/run.sh` reports as a failed target. No fuzzed input is
/// involved, so this is not a finding.
func setupFailed(_ message: String) -> Never {
    FileHandle.standardError.write(Data("starling-fuzz: \(message)\n".utf8))
    exit(2)
}
