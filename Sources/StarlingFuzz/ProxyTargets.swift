import NIOCore
import NIOEmbedded
import NIOHPACK
import NIOHTTP1
import StarlingCore
import StarlingMulticluster
import StarlingProxy

/// Targets over the data plane's parsers: HTTP heads, authorities, protocol detection and the
/// opaque transport header.
enum ProxyTargets {
    // MARK: - HTTP/1 heads

    /// Bytes a client sends to the outbound or inbound HTTP/1 server, through NIO's parser (as
    /// the proxy receives them), then the proxy's validation and its HTTP/1 → HTTP/2 → HTTP/1
    /// conversion.
    static func http1Head(_ data: [UInt8]) {
        let channel = EmbeddedChannel()
        defer { _ = try? channel.finish() }
        do {
            try channel.pipeline.syncOperations.addHandler(
                ByteToMessageHandler(HTTPRequestDecoder(leftOverBytesStrategy: .dropBytes)))
            try channel.writeInbound(channel.allocator.buffer(bytes: data))
        } catch {
            // NIO refused the bytes; heads read before that are still checked.
        }
        while let part = try? channel.readInbound(as: HTTPServerRequestPart.self) {
            guard case .head(let head) = part else { continue }
            checkHTTP1Head(head)
        }
    }

    /// Header names a converted HTTP/2 request must never carry (RFC 9113 §8.2.2).
    static let connectionSpecific: Set<String> = ["connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "host"]

    static func checkHTTP1Head(_ head: HTTPRequestHead) {
        _ = try? HTTP1RequestValidation.validate(head, maximumHeaderBytes: 64 * 1024)
        let target = RequestTarget(head.uri)
        let authority = target?.authority ?? head.headers.first(name: "host") ?? ""
        checkAuthority(authority)
        let h2 = HTTPHeadConversion.http2RequestHeaders(from: head, authority: authority)
        for (name, _, _) in h2 where !name.hasPrefix(":") {
            check(!connectionSpecific.contains(name), "converted HTTP/2 request carries \(name)")
            check(!name.utf8.contains { $0 >= UInt8(ascii: "A") && $0 <= UInt8(ascii: "Z") }, "converted name \(name) is not lower-case")
        }
        let back: HTTPRequestHead
        do {
            back = try HTTPHeadConversion.http1RequestHead(from: h2, hasBody: false)
        } catch {
            check(false, "a parsed HTTP/1 head (\(head.method) \(head.uri)) does not convert back from HTTP/2: \(error)")
            return
        }
        check(back.method == head.method, "method \(head.method) came back as \(back.method)")
        check(back.uri == HTTPHeadConversion.originFormPath(head.uri), "target \(head.uri) came back as \(back.uri)")
        if !authority.isEmpty {
            check(back.headers["host"] == [authority], "authority \(authority) came back as \(back.headers["host"])")
        }
        _ = try? HTTP1RequestValidation.validate(back, maximumHeaderBytes: 64 * 1024)
    }

    // MARK: - HTTP/2 heads

    /// `name: value` lines as HTTP/2 headers (a peer's request, response or trailers), converted
    /// to HTTP/1; the response framing must never be ambiguous.
    static func http2Head(_ data: [UInt8]) {
        var input = FuzzInput(data)
        let flags = input.byte()
        var headers = HPACKHeaders()
        while !input.isEmpty {
            let line = input.line()
            // Split after the first ':' that is not the leading one of a pseudo-header.
            let start = line.hasPrefix(":") ? line.index(after: line.startIndex) : line.startIndex
            let colon = line[start...].firstIndex(of: ":") ?? line.endIndex
            let name = String(line[..<colon])
            // NIOHTTP2 refuses a header block with a name that is not a lower-case token before
            // it reaches the proxy (and NIOHPACK traps on a non-ASCII one), so such lines are
            // dropped: the proxy only ever converts validated blocks.
            guard isValidHTTP2FieldName(name) else { continue }
            headers.add(name: name, value: colon == line.endIndex ? "" : String(line[line.index(after: colon)...]))
        }
        _ = try? HTTPHeadConversion.http1RequestHead(from: headers, hasBody: true)
        let method: HTTPMethod = flags & 1 != 0 ? .HEAD : .GET
        let version: HTTPVersion = flags & 2 != 0 ? .http1_0 : .http1_1
        if let response = try? HTTPHeadConversion.http1ResponseHead(from: headers, requestMethod: method, version: version) {
            let code = Int(response.status.code)
            let lengths = response.headers["content-length"]
            let encodings = response.headers["transfer-encoding"]
            check(lengths.isEmpty || encodings.isEmpty, "response head has both Content-Length and Transfer-Encoding")
            if method == .HEAD || (100..<200).contains(code) || code == 204 || code == 304 {
                check(encodings.isEmpty, "a bodiless response (\(code), \(method)) is chunked")
            }
            if version == .http1_0 { check(encodings.isEmpty, "an HTTP/1.0 client got Transfer-Encoding") }
            _ = HTTPHeadConversion.http2ResponseHeaders(from: response)
        }
        let trailers = HTTPHeadConversion.http1Trailers(from: headers)
        _ = HTTPHeadConversion.http2Trailers(from: trailers)
    }

    /// NIOHTTP2's rule for a field name (its header block validation, on by default, which the
    /// proxy keeps): an optional leading `:` for a pseudo-header, then one or more `tchar`s of
    /// RFC 9110 §5.6.2 without upper-case letters.
    static func isValidHTTP2FieldName(_ name: String) -> Bool {
        var bytes = Substring(name).utf8
        if bytes.first == UInt8(ascii: ":") { bytes = bytes.dropFirst() }
        return !bytes.isEmpty && bytes.allSatisfy { byte in
            switch byte {
            case 0x21, 0x23...0x27, 0x2a, 0x2b, 0x2d, 0x2e, 0x30...0x39, 0x5e...0x7a, 0x7c, 0x7e: true
            default: false
            }
        }
    }

    // MARK: - Authorities

    /// One authority per line: every host:port parser of the proxy, the CLI and the links.
    static func authority(_ data: [UInt8]) {
        var input = FuzzInput(data)
        while !input.isEmpty {
            checkAuthority(input.line())
        }
    }

    static func checkAuthority(_ text: String) {
        // The per-request fast path must agree with the full parse.
        for port in [80, 443] {
            let full = HostPort(authority: text, defaultPort: port)
            let canonical = HostPort.canonical(text, defaultPort: port)
            check(canonical == full?.description, "canonical(\(text)) = \(String(describing: canonical)), HostPort gives \(String(describing: full?.description))")
            // (A host with a bracket in it, which no valid authority has, prints ambiguously.)
            if let full, !full.host.contains(where: { $0 == "[" || $0 == "]" }) {
                check(HostPort(authority: full.description, defaultPort: port) == full, "HostPort \(full) does not read its own description back")
            }
        }
        // The cache key of a service authority: normalizing twice changes nothing. (A name that
        // is no service authority keeps all but one trailing dot, as documented, so names with
        // `..` are left out, and so is `host:port.`, whose port only the second pass sees.)
        let key = ServiceAuthority.key(text)
        if !key.hasSuffix("."), !text.contains(".."), !(text.hasSuffix(".") && text.contains(":")) {
            check(ServiceAuthority.key(key) == key, "ServiceAuthority.key(\(text)) = \(key) is not stable")
        }
        if let split = NetworkAddress.splitHostPort(text) {
            let (host, port) = split
            let joined = NetworkAddress.joinHostPort(host, port)
            let again = NetworkAddress.splitHostPort(joined)
            check(again?.host == host && again?.port == port, "splitHostPort(\(text)) = \(host) \(port) joins as \(joined), which splits differently")
        }
        _ = NetworkAddress.isHost(text)
        _ = NetworkAddress.isIPAddress(text)
        _ = HostPort.list(parsing: text)
        _ = RequestTarget(text)
        _ = HTTPHeadConversion.originFormPath(text)
        _ = MirrorLabels.gatewayHosts(text)
        if let identity = MeshIdentity(dnsName: text) {
            check(MeshIdentity(dnsName: identity.dnsName) == identity, "mesh identity \(text) does not read its DNS name back")
        }
        if let identity = MeshIdentity(spiffeURI: text) {
            check(MeshIdentity(spiffeURI: identity.spiffeURI) == identity, "mesh identity \(text) does not read its SPIFFE URI back")
        }
    }

    // MARK: - Protocol detection

    /// The first bytes of an outbound connection, arriving in any split: once a prefix decides,
    /// every longer prefix decides the same (the handler acts on the first decision).
    static func protocolDetect(_ data: [UInt8]) {
        var decided: ProtocolDetector.Decision?
        for length in 0...data.count {
            let decision = ProtocolDetector.decide(ByteBuffer(bytes: data[..<length]))
            if let decided, decided != .needMoreBytes {
                check(decision == decided, "\(length) bytes decide \(decision) after a shorter prefix decided \(decided)")
            }
            decided = decision
        }
        if decided == .detected(.http2) {
            check(data.starts(with: ProtocolDetector.http2Preface), "HTTP/2 detected without the full preface")
        }
    }

    // MARK: - The gateway's target

    /// The opaque transport header (the target of a `starling-opaque` connection through the
    /// gateway), arriving in chunks of the size the first byte gives; then the target as the
    /// gateway and discovery read it (also what `starling-target` carries on HTTP).
    static func gatewayTarget(_ data: [UInt8]) {
        var input = FuzzInput(data)
        let chunk = max(1, Int(input.byte()) % 16)
        let bytes = input.restBytes()
        var whole = ByteBuffer(bytes: bytes)
        let atOnce = Result { () throws(ProxyError) -> OpaqueTransportHeader? in try OpaqueTransportHeader.decode(from: &whole) }
        var buffer = ByteBuffer()
        var incremental: Result<OpaqueTransportHeader?, ProxyError> = .success(nil)
        var offset = 0
        while offset < bytes.count {
            let end = min(bytes.count, offset + chunk)
            buffer.writeBytes(bytes[offset..<end])
            offset = end
            let before = buffer.readerIndex
            incremental = Result { () throws(ProxyError) -> OpaqueTransportHeader? in try OpaqueTransportHeader.decode(from: &buffer) }
            if case .success(nil) = incremental {
                check(buffer.readerIndex == before, "decode consumed bytes without returning a header")
                continue
            }
            break
        }
        switch (atOnce, incremental) {
        case (.success(let a), .success(let b)):
            check(a == b, "the header read at once (\(String(describing: a))) differs from the one read in chunks (\(String(describing: b)))")
        case (.failure, .failure):
            break
        default:
            check(false, "reading the header at once and in chunks disagree: \(atOnce) vs \(incremental)")
        }
        guard case .success(let header?) = atOnce else { return }
        let length = header.authority.utf8.count
        check(whole.readerIndex == 6 + length, "decode advanced \(whole.readerIndex) bytes for a \(length)-byte authority")
        let encoded = try? header.encoded()
        check(encoded.map { Array($0.readableBytesView) } == Array(bytes.prefix(6 + length)), "the header does not encode back to its bytes")
        checkAuthority(header.authority)
    }
}
