#if canImport(Glibc)
import Glibc
#endif
public import NIOCore

/// The destination a connection was addressed to before an iptables `REDIRECT` sent it to the
/// proxy (`SO_ORIGINAL_DST`), for transparent capture.
public enum OriginalDestination {
    /// `SO_ORIGINAL_DST` from `linux/netfilter_ipv4.h` (same value for IPv6 at `SOL_IPV6`).
    static let soOriginalDestination: Int32 = 80

    /// The original destination of `channel`, or nil when it is the channel's own local address
    /// (no redirect happened), when the kernel has none (no NAT entry) or off Linux.
    public static func of(_ channel: any Channel) -> EventLoopFuture<SocketAddress?> {
        #if os(Linux)
        guard let provider = channel as? any SocketOptionProvider else {
            return channel.eventLoop.makeSucceededFuture(nil)
        }
        let local = channel.localAddress
        let v4: EventLoopFuture<sockaddr_in> = provider.unsafeGetSocketOption(
            level: SocketOptionLevel(IPPROTO_IP), name: SocketOptionName(soOriginalDestination))
        return v4.map { raw -> SocketAddress? in
            let address = SocketAddress(raw, host: "")
            return differs(address, from: local) ? address : nil
        }.flatMapError { _ in
            let v6: EventLoopFuture<sockaddr_in6> = provider.unsafeGetSocketOption(
                level: SocketOptionLevel(IPPROTO_IPV6), name: SocketOptionName(soOriginalDestination))
            return v6.map { raw -> SocketAddress? in
                let address = SocketAddress(raw, host: "")
                return differs(address, from: local) ? address : nil
            }.recover { _ in nil }
        }
        #else
        return channel.eventLoop.makeSucceededFuture(nil)
        #endif
    }

    static func differs(_ address: SocketAddress, from local: SocketAddress?) -> Bool {
        guard let local else { return true }
        return address.ipAddress != local.ipAddress || address.port != local.port
    }

    /// `ip:port` (IPv6 in brackets), the authority a transparently captured connection is routed by.
    public static func authority(of address: SocketAddress) -> String? {
        guard let ip = address.ipAddress, let port = address.port else { return nil }
        return ip.contains(":") ? "[\(ip)]:\(port)" : "\(ip):\(port)"
    }
}
