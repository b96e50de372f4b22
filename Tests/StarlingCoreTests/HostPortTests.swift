import StarlingCore
import Testing

/// The one `host:port` split and the readers built on it: addresses (flags, contexts), request
/// authorities, service authorities.
struct HostPortTests {
    @Test(arguments: [
        ("web.ns:80", "web.ns", "80", false), ("web.ns", "web.ns", nil, false), ("web.ns:", "web.ns", "", false),
        ("[::1]:8080", "::1", "8080", true), ("[::1]", "::1", nil, true), ("[::1]:", "::1", "", true),
        ("fd00::1:443", "fd00::1", "443", false), (":80", "", "80", false), ("", "", nil, false),
    ] as [(String, String, String?, Bool)])
    func splitsHostAndPortWithoutJudgingThem(text: String, host: String, port: String?, bracketed: Bool) throws {
        let parts = try #require(HostPort.split(text[...]))
        #expect(parts.host == host[...])
        #expect(parts.port == port.map { $0[...] })
        #expect(parts.bracketed == bracketed)
    }

    @Test(arguments: ["[::1", "[::1]80", "[::1]x:80"])
    func aBracketNotClosedOrFollowedByJunkDoesNotSplit(text: String) {
        #expect(HostPort.split(text[...]) == nil)
    }

    @Test(arguments: [
        ("web.ns:80", 80), ("web.ns:65535", 65535), ("[::1]:8080", 8080), ("web.ns", nil), ("web.ns:", nil),
        ("web.ns:0", nil), ("web.ns:65536", nil), ("web.ns:123456", nil), ("web.ns:8x", nil), ("web.ns:+80", nil),
    ] as [(String, Int?)])
    func anAuthoritysPortIsReadFromItsBytes(authority: String, port: Int?) {
        #expect(HostPort.port(ofAuthority: authority) == port)
    }

    @Test func addressesSayWhatIsWrong() throws {
        #expect(try HostPort.parse("127.1.0.1:8086", field: "--api").description == "127.1.0.1:8086")
        #expect(try HostPort.parse("[fd00::1]:0", field: "--api", allowingPortZero: true) == HostPort(host: "fd00::1", port: 0))
        let cases: [(String, String)] = [
            ("127.1.0.1", "expected HOST:PORT"), ("fd00::1:8086", "expected HOST:PORT"), (":8086", "the host is empty"),
            ("[fd00::1]", "expected [IPV6]:PORT"), ("[fd00::1]8086", "expected [IPV6]:PORT"),
            ("[web]:80", "'web' in brackets is not an IPv6 address"), ("bad_host!:80", "is not an IP address or a DNS name"),
            ("web:0", "the port must be a number from 1 to 65535"), ("web:+80", "the port must be a number"),
        ]
        for (text, problem) in cases {
            #expect(throws: HostPortError.self, "\(text)") { try HostPort.parse(text, field: "--api") }
            do {
                _ = try HostPort.parse(text, field: "--api")
            } catch {
                #expect(error.message.contains("--api is '\(text)'"), "\(error.message)")
                #expect(error.message.contains(problem), "\(text): \(error.message)")
            }
        }
    }

    @Test func requestAuthoritiesDefaultThePortAndLowerTheHost() {
        #expect(HostPort(authority: "Web.NS", defaultPort: 80) == HostPort(host: "web.ns", port: 80))
        #expect(HostPort(authority: "[FD00::1]:8443", defaultPort: 80) == HostPort(host: "fd00::1", port: 8443))
        #expect(HostPort(authority: "[::1]", defaultPort: 80)?.description == "[::1]:80")
        #expect(HostPort(authority: "web:0", defaultPort: 80) == nil)
        #expect(HostPort(authority: ":80", defaultPort: 80) == nil)
        #expect(HostPort(authority: "[::1", defaultPort: 80) == nil)
        #expect(HostPort.canonical("Web.ns", defaultPort: 8080) == "web.ns:8080")
        #expect(HostPort.canonical("web.ns:8080", defaultPort: 80) == "web.ns:8080")
    }

    @Test func serviceAuthoritiesShareTheSplit() {
        #expect(ServiceAuthority("web.ns:8080") == ServiceAuthority(service: "web", namespace: "ns", port: 8080))
        #expect(ServiceAuthority("web.ns.svc.cluster.local.") == ServiceAuthority(service: "web", namespace: "ns", port: nil))
        #expect(ServiceAuthority("web.ns:0") == nil)
        #expect(ServiceAuthority("[::1]:80") == nil)
        #expect(ServiceAuthority.key("WEB.ns:8080") == "web.ns.svc.cluster.local:8080")
        #expect(ServiceAuthority.key("api.example.com:80") == "api.example.com:80")
        #expect(ServiceAuthority.key("api.example.com:x") == "api.example.com:x")
        #expect(ServiceAuthority.key("[::1]:80") == "[::1]:80")
    }

    /// A replica's API address, read from how duty leases and the replicas table name it: what
    /// a hosted gateway dials besides its own replica. A wildcard listener has no address to dial.
    @Test func aReplicasAPIAddressIsReadFromItsName() {
        #expect(ReplicaSeen(replica: "10.0.0.2:8086 on db-2 pid 41", secondsAgo: 0).apiAddress == HostPort(host: "10.0.0.2", port: 8086))
        #expect(ReplicaSeen(replica: "[fd00::2]:8086 on b pid 7", secondsAgo: 0).apiAddress == HostPort(host: "fd00::2", port: 8086))
        #expect(ReplicaSeen(replica: "0.0.0.0:8086 on c pid 1", secondsAgo: 0).apiAddress == nil)
        #expect(ReplicaSeen(replica: "[::]:8086 on c pid 1", secondsAgo: 0).apiAddress == nil)
        #expect(ReplicaSeen(replica: "garbage", secondsAgo: 0).apiAddress == nil)
    }
}
