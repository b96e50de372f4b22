import Foundation

/// Picks the loopback address a local workload runs on: each workload gets one address in its
/// cluster's range (`127.N.0.0/16`, the controller being `127.N.0.1`), so that every workload can
/// use the default proxy ports (4143 inbound, 4140 outbound, 4191 admin) without collisions.
enum WorkloadAddress {
    /// The first address `127.N.1.K` whose proxy ports are all free.
    static func allocate(controllerHost: String, ports: [Int]) throws -> String {
        let octets = controllerHost.split(separator: ".").compactMap { Int($0) }
        guard octets.count == 4, octets[0] == 127 else {
            throw CLIError(
                "cannot pick a workload address: the controller \(controllerHost) is not on a local loopback range",
                hint: "pass --address with this workload's address")
        }
        for third in 1...254 {
            for fourth in 1...254 {
                let candidate = "127.\(octets[1]).\(third).\(fourth)"
                if ports.allSatisfy({ isFree(host: candidate, port: $0) }) { return candidate }
            }
        }
        throw CLIError("no free workload address left in 127.\(octets[1]).0.0/16", hint: "stop some workloads or pass --address")
    }

    /// True when `host:port` can be bound right now.
    static func isFree(host: String, port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        guard inet_pton(AF_INET, host, &address.sin_addr) == 1 else { return false }
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
            }
        }
    }

    /// Waits until something accepts connections on `host:port` (the application is up).
    static func waitUntilListening(host: String, port: Int, timeout: Duration) async -> Bool {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        while ContinuousClock.now < deadline {
            if canConnect(host: host, port: port) { return true }
            try? await Task.sleep(for: .milliseconds(100))
        }
        return false
    }

    static func canConnect(host: String, port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        guard inet_pton(AF_INET, host, &address.sin_addr) == 1 else { return false }
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
            }
        }
    }
}
