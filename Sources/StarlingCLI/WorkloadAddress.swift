import Foundation

/// Picks the loopback address a local workload runs on: each workload gets one address in its
/// cluster's range (`127.N.0.0/16`, the controller being `127.N.0.1`), so that every workload can
/// use the default proxy ports (4143 inbound, 4140 outbound, 4191 admin) without collisions.
enum WorkloadAddress {
    /// The first address `127.N.1.K` whose proxy ports are all free and that no other live
    /// `starling run` has claimed. Claims are files `DIR/ADDRESS` holding the claimer's pid, made
    /// with O_EXCL, so two workloads starting at the same moment never get the same address.
    static func allocate(controllerHost: String, ports: [Int], claims directory: String) throws -> String {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let octets = controllerHost.split(separator: ".").compactMap { Int($0) }
        guard octets.count == 4, octets[0] == 127 else {
            throw CLIError(
                "cannot pick a workload address: the controller \(controllerHost) is not on a local loopback range",
                hint: "pass --address with this workload's address")
        }
        for third in 1...254 {
            for fourth in 1...254 {
                let candidate = "127.\(octets[1]).\(third).\(fourth)"
                guard ports.allSatisfy({ isFree(host: candidate, port: $0) }) else { continue }
                if claim(candidate, in: directory) { return candidate }
            }
        }
        throw CLIError("no free workload address left in 127.\(octets[1]).0.0/16", hint: "stop some workloads or pass --address")
    }

    /// Claims `address` for this process; a claim left by a dead process is taken over.
    static func claim(_ address: String, in directory: String) -> Bool {
        let path = (directory as NSString).appendingPathComponent(address)
        for _ in 0..<2 {
            let fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0o644)
            if fd >= 0 {
                let pid = "\(getpid())\n"
                _ = pid.withCString { write(fd, $0, strlen($0)) }
                close(fd)
                return true
            }
            guard let text = try? String(contentsOfFile: path, encoding: .utf8),
                let owner = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)),
                kill(owner, 0) != 0, errno == ESRCH
            else { return false }
            unlink(path)
        }
        return false
    }

    /// Gives up this process's claim on `address`.
    static func release(_ address: String, in directory: String) {
        unlink((directory as NSString).appendingPathComponent(address))
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
    static func waitUntilListening(
        host: String, port: Int, timeout: Duration, interval: Duration = .milliseconds(100)
    ) async -> Bool {
        let deadline = ContinuousClock.now.advanced(by: timeout)
        while ContinuousClock.now < deadline, !Task.isCancelled {
            if canConnect(host: host, port: port) { return true }
            try? await Task.sleep(for: interval)
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
