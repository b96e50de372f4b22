import NIOHPACK
import NIOHTTP1
import StarlingCore
@testable import StarlingProxy
import Testing

struct HTTPConversionTests {
    @Test func http1RequestBecomesHTTP2WithoutHopByHopHeaders() {
        var headers = HTTPHeaders()
        headers.add(name: "Host", value: "podinfo.test:9898")
        headers.add(name: "Connection", value: "keep-alive, X-Drop")
        headers.add(name: "Keep-Alive", value: "timeout=5")
        headers.add(name: "Proxy-Connection", value: "keep-alive")
        headers.add(name: "Upgrade", value: "websocket")
        headers.add(name: "TE", value: "trailers")
        headers.add(name: "X-Drop", value: "1")
        headers.add(name: "Accept", value: "*/*")
        let head = HTTPRequestHead(version: .http1_1, method: .GET, uri: "http://podinfo.test:9898/a?b=c", headers: headers)
        let h2 = HTTPHeadConversion.http2RequestHeaders(from: head, authority: "podinfo.test:9898")
        #expect(Array(h2.map(\.name).prefix(4)) == [":method", ":scheme", ":authority", ":path"])
        #expect(h2.first(name: ":path") == "/a?b=c")
        #expect(h2.first(name: "accept") == "*/*")
        #expect(h2.first(name: "te") == "trailers")
        for name in ["connection", "keep-alive", "proxy-connection", "upgrade", "x-drop", "host"] {
            #expect(h2.first(name: name) == nil, "\(name)")
        }
    }

    /// The response side (HTTP/1 from the application): nginx's `Connection: keep-alive` and
    /// whatever `Connection` names go, in any case; the other fields stay in their order.
    @Test func http1ResponseLosesItsHopByHopFieldsInPlace() {
        var headers = HTTPHeaders([
            ("Server", "nginx"), ("Connection", "keep-alive, X-Private"), ("Content-Length", "100"),
            ("Keep-Alive", "timeout=5"), ("x-private", "secret"), ("TE", "trailers"), ("Date", "today"),
        ])
        HopByHopHeaders.remove(from: &headers)
        #expect(headers.map(\.name) == ["Server", "Content-Length", "Date", "te"])
        #expect(headers.first(name: "te") == "trailers")

        var plain = HTTPHeaders([("content-type", "text/plain"), ("content-length", "2")])
        HopByHopHeaders.remove(from: &plain)
        #expect(plain.map(\.name) == ["content-type", "content-length"])

        // The common case (a lone `Connection: keep-alive` or `close`) takes a shorter path; it
        // must remove exactly the same.
        for value in ["keep-alive", " Keep-Alive ", "close", "CLOSE"] {
            var lone = HTTPHeaders([("Server", "nginx"), ("Connection", value), ("Content-Length", "2")])
            HopByHopHeaders.remove(from: &lone)
            #expect(lone.map(\.name) == ["Server", "Content-Length"], "Connection: \(value)")
        }
        var twice = HTTPHeaders([("Connection", "close"), ("connection", "x-a"), ("X-A", "1"), ("B", "2")])
        HopByHopHeaders.remove(from: &twice)
        #expect(twice.map(\.name) == ["B"])
        var upgrade = HTTPHeaders([("Connection", "keep-alive"), ("Upgrade", "h2c"), ("B", "2")])
        HopByHopHeaders.remove(from: &upgrade)
        #expect(upgrade.map(\.name) == ["B"])
    }

    /// The copy-free walk over end-to-end fields keeps exactly what removal keeps.
    @Test func endToEndFieldsAreWhatRemovalKeeps() {
        let lists: [[(String, String)]] = [
            [("content-type", "text/plain"), ("content-length", "2")],
            [("Server", "nginx"), ("Connection", "keep-alive"), ("Content-Length", "2")],
            [("Connection", "close, X-A"), ("X-A", "1"), ("B", "2"), ("TE", "trailers")],
            [("Connection", "keep-alive"), ("Keep-Alive", "timeout=5"), ("Transfer-Encoding", "chunked"), ("B", "2")],
        ]
        for list in lists {
            var removed = HTTPHeaders(list)
            HopByHopHeaders.remove(from: &removed)
            var walked: [String] = []
            HopByHopHeaders.forEachEndToEnd(HTTPHeaders(list)) { name, value in walked.append("\(name)=\(value)") }
            #expect(walked == removed.map { "\($0.name)=\($0.value)" }, "\(list)")
        }
    }

    @Test func fixedHopByHopNamesAreRecognisedInAnyCase() {
        let fixed = [
            "connection", "keep-alive", "proxy-connection", "proxy-authenticate", "proxy-authorization",
            "transfer-encoding", "upgrade", "te", "trailer",
        ]
        for name in fixed {
            #expect(HopByHopHeaders.isFixedName(name), "\(name)")
            #expect(HopByHopHeaders.isFixedName(name.uppercased()), "\(name)")
        }
        for name in ["trailers", "t", "tk", "content-length", "connectionx", "upgrades", "proxy-authorisation", ""] {
            #expect(!HopByHopHeaders.isFixedName(name), "\(name)")
        }
    }

    @Test func asciiCaseInsensitivePrefixes() {
        #expect("Starling-Forwarded-Client-Id".hasASCIICaseInsensitivePrefix("starling-forwarded-client-"))
        #expect("application/GRPC+proto".hasASCIICaseInsensitivePrefix("application/grpc"))
        #expect("http/1.1".hasASCIICaseInsensitivePrefix("HTTP/1"))
        #expect(!"HTTP/2".hasASCIICaseInsensitivePrefix("HTTP/1"))
        #expect(!"starling".hasASCIICaseInsensitivePrefix("starling-forwarded"))
        #expect("anything".hasASCIICaseInsensitivePrefix(""))
    }

    @Test func teOtherThanTrailersIsDropped() {
        var headers = HPACKHeaders()
        headers.add(name: "te", value: "gzip")
        HopByHopHeaders.remove(from: &headers)
        #expect(headers.isEmpty)
    }

    @Test func responseWithoutLengthIsChunkedForHTTP11AndCloseDelimitedForHTTP10() throws {
        let h2: HPACKHeaders = [":status": "200", "content-type": "text/plain"]
        let chunked = try HTTPHeadConversion.http1ResponseHead(from: h2, requestMethod: .GET, version: .http1_1)
        #expect(chunked.status == .ok)
        #expect(chunked.headers["transfer-encoding"] == ["chunked"])
        let old = try HTTPHeadConversion.http1ResponseHead(from: h2, requestMethod: .GET, version: .http1_0)
        #expect(old.headers["transfer-encoding"].isEmpty)
        #expect(old.headers["connection"] == ["close"])
        let head = try HTTPHeadConversion.http1ResponseHead(from: h2, requestMethod: .HEAD, version: .http1_1)
        #expect(head.headers["transfer-encoding"].isEmpty)
        let sized = try HTTPHeadConversion.http1ResponseHead(
            from: [":status": "404", "content-length": "3"], requestMethod: .GET, version: .http1_1)
        #expect(sized.headers["content-length"] == ["3"])
        #expect(sized.headers["transfer-encoding"].isEmpty)
    }

    @Test func http2RequestBecomesHTTP1WithHost() throws {
        let head = try HTTPHeadConversion.http1RequestHead(
            from: [":method": "POST", ":scheme": "http", ":authority": "svc:80", ":path": "/x", "content-length": "2"],
            hasBody: true)
        #expect(head.method == .POST)
        #expect(head.uri == "/x")
        #expect(head.headers["host"] == ["svc:80"])
        #expect(head.headers["content-length"] == ["2"])
        #expect(throws: HTTPHeadConversion.ConversionError.self) {
            try HTTPHeadConversion.http1RequestHead(from: [":path": "/"], hasBody: false)
        }
    }

    /// A body of unknown length goes chunked whatever the method (NIO frames only POST, PUT and
    /// PATCH itself, and would write a GET's body unframed); a TRACE with a body is refused.
    @Test func http2RequestBodiesAreFramedForHTTP1() throws {
        let get = try HTTPHeadConversion.http1RequestHead(
            from: [":method": "GET", ":scheme": "http", ":authority": "svc:80", ":path": "/"], hasBody: true)
        #expect(get.headers["transfer-encoding"] == ["chunked"])
        let sized = try HTTPHeadConversion.http1RequestHead(
            from: [":method": "GET", ":scheme": "http", ":authority": "svc:80", ":path": "/", "content-length": "4"],
            hasBody: true)
        #expect(sized.headers["transfer-encoding"].isEmpty)
        let bodyless = try HTTPHeadConversion.http1RequestHead(
            from: [":method": "GET", ":scheme": "http", ":authority": "svc:80", ":path": "/"], hasBody: false)
        #expect(bodyless.headers["transfer-encoding"].isEmpty)
        #expect(throws: HTTPHeadConversion.ConversionError.self) {
            try HTTPHeadConversion.http1RequestHead(
                from: [":method": "TRACE", ":scheme": "http", ":authority": "svc:80", ":path": "/"], hasBody: true)
        }
    }

    @Test func aTraceWithABodyIsRefusedBeforeItIsForwarded() throws {
        var head = HTTPRequestHead(version: .http1_1, method: .TRACE, uri: "/")
        head.headers.add(name: "content-length", value: "40")
        #expect(throws: ProxyError.self) { try HTTP1RequestValidation.validate(head, maximumHeaderBytes: 8192) }
        head.headers.remove(name: "content-length")
        #expect(try HTTP1RequestValidation.validate(head, maximumHeaderBytes: 8192) == .none)
    }

    @Test func targetsAndAuthoritiesParse() throws {
        let target = try #require(RequestTarget("http://user@podinfo.test:9898?q=1#frag"))
        #expect(target.authority == "podinfo.test:9898")
        #expect(target.path == "/?q=1")
        #expect(RequestTarget("/origin/form") == nil)
        #expect(HostPort(authority: "podinfo.test", defaultPort: 80)?.description == "podinfo.test:80")
        #expect(HostPort(authority: "[::1]:8080", defaultPort: 80)?.description == "[::1]:8080")
        #expect(HostPort(authority: "host:99999", defaultPort: 80) == nil)
        #expect(HostPort(authority: ":80", defaultPort: 80) == nil)
    }

    /// The per-request fast path must agree with the parser on every spelling it accepts, and
    /// hand the parser everything else.
    @Test(arguments: [
        "web.bench:8080", "Web.Bench:8080", "web.bench", "web.bench:08080", "web.bench:", ":80", "web.bench:0",
        "web.bench:65536", "web.bench:65535", "[::1]:8080", "[::1]", "a:b:80", "10.0.0.1:80", "web_1.ns:9",
        "wéb.ns:80", "web.ns:80x", "web.ns:123456",
    ])
    func canonicalAuthoritiesMatchTheParser(text: String) {
        #expect(HostPort.canonical(text, defaultPort: 80) == HostPort(authority: text, defaultPort: 80)?.description)
    }

    @Test func requestValidationRefusesAmbiguousFraming() throws {
        func head(_ fields: [(String, String)], version: HTTPVersion = .http1_1) -> HTTPRequestHead {
            HTTPRequestHead(version: version, method: .POST, uri: "/", headers: HTTPHeaders(fields))
        }
        #expect(try HTTP1RequestValidation.validate(head([]), maximumHeaderBytes: 1024) == .none)
        #expect(try HTTP1RequestValidation.validate(head([("Content-Length", "5")]), maximumHeaderBytes: 1024) == .contentLength(5))
        #expect(try HTTP1RequestValidation.validate(head([("Content-Length", "5"), ("content-length", "5")]), maximumHeaderBytes: 1024) == .contentLength(5))
        #expect(try HTTP1RequestValidation.validate(head([("Transfer-Encoding", "chunked")]), maximumHeaderBytes: 1024) == .chunked)
        let refused: [[(String, String)]] = [
            [("Content-Length", "5"), ("Transfer-Encoding", "chunked")],
            [("Content-Length", "5"), ("Content-Length", "6")],
            [("Content-Length", "5, 6")],
            [("Content-Length", "-1")],
            [("Content-Length", "0x10")],
            [("Transfer-Encoding", "gzip")],
            [("Transfer-Encoding", "chunked, chunked")],
        ]
        for fields in refused {
            #expect(throws: ProxyError(.badRequest, "")) {
                try HTTP1RequestValidation.validate(head(fields), maximumHeaderBytes: 1024)
            }
        }
        #expect(throws: ProxyError(.badRequest, "")) {
            try HTTP1RequestValidation.validate(head([("Transfer-Encoding", "chunked")], version: .http1_0), maximumHeaderBytes: 1024)
        }
        #expect(throws: ProxyError(.headersTooLarge, "")) {
            try HTTP1RequestValidation.validate(head([("X", String(repeating: "a", count: 2000))]), maximumHeaderBytes: 1024)
        }
    }

    @Test func timeoutStateMachineArmsOnFirstByteAndCancelsOnHead() {
        var machine = HTTP1ServerTimeoutStateMachine()
        #expect(machine.bytesRead() == .armHeaderTimer)
        #expect(machine.bytesRead() == .none)
        #expect(machine.headReceived() == .cancelHeaderTimer)
        #expect(machine.bytesRead() == .none)
        #expect(machine.responseCompleted() == .none)
        #expect(machine.state == .idle)
        #expect(machine.bytesRead() == .armHeaderTimer)
    }
}
