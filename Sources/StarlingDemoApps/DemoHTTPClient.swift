import NIOCore
import NIOHTTP1
import NIOPosix

/// A minimal HTTP/1.1 client for the demo apps (and their tests): one request per connection,
/// either straight to the origin (origin-form target) or through an HTTP forward proxy such as
/// the mesh's outbound listener (absolute-form target, `GET http://host:port/path HTTP/1.1`).
public enum DemoHTTPClient {
    /// A host and port, e.g. the outbound proxy `127.0.0.1:4140`.
    public struct Address: Sendable, Hashable, CustomStringConvertible {
        public var host: String
        public var port: Int

        public init(host: String, port: Int) {
            self.host = host
            self.port = port
        }

        /// Reads `http://host:port`, `http://host:port/`, or `host:port` (the shapes `http_proxy`
        /// takes); nil for anything else.
        public init?(proxyURL: String) {
            var rest = Substring(proxyURL.trimmingSpaces)
            if rest.hasPrefix("http://") { rest = rest.dropFirst("http://".count) }
            if let slash = rest.firstIndex(of: "/") { rest = rest[..<slash] }
            if let at = rest.lastIndex(of: "@") { rest = rest[rest.index(after: at)...] }
            guard let address = Self.split(authority: rest, defaultPort: 80) else { return nil }
            self = address
        }

        /// `host[:port]`, with IPv6 literals in brackets.
        static func split(authority: Substring, defaultPort: Int) -> Address? {
            guard !authority.isEmpty else { return nil }
            if authority.hasPrefix("[") {
                guard let close = authority.firstIndex(of: "]") else { return nil }
                let host = String(authority[authority.index(after: authority.startIndex)..<close])
                let after = authority[authority.index(after: close)...]
                if after.isEmpty { return Address(host: host, port: defaultPort) }
                guard after.hasPrefix(":"), let port = Int(after.dropFirst()), (1...65535).contains(port) else { return nil }
                return Address(host: host, port: port)
            }
            guard let colon = authority.lastIndex(of: ":") else {
                return Address(host: String(authority), port: defaultPort)
            }
            guard let port = Int(authority[authority.index(after: colon)...]), (1...65535).contains(port) else {
                return nil
            }
            let host = authority[..<colon]
            return host.isEmpty ? nil : Address(host: String(host), port: port)
        }

        public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
    }

    /// An `http://` URL taken apart.
    public struct Target: Sendable, Hashable {
        /// Where the origin is.
        public var address: Address
        /// `host:port` as written in the URL (the `Host` header).
        public var authority: String
        /// Path and query, at least `/`.
        public var pathAndQuery: String

        /// Parses `http://host[:port][/path]`; nil for other schemes or a missing host.
        public init?(url: String) {
            var rest = Substring(url.trimmingSpaces)
            guard rest.hasPrefix("http://") else { return nil }
            rest = rest.dropFirst("http://".count)
            let slash = rest.firstIndex(of: "/") ?? rest.endIndex
            let authority = rest[..<slash]
            guard let address = Address.split(authority: authority, defaultPort: 80) else { return nil }
            self.address = address
            self.authority = String(authority)
            self.pathAndQuery = slash == rest.endIndex ? "/" : String(rest[slash...])
        }

        /// The URL again, for absolute-form requests.
        public var absoluteURL: String { "http://\(authority)\(pathAndQuery)" }
    }

    public struct Response: Sendable {
        public var status: Int
        /// Header names in lower case, values as received (repeated names joined with ", ").
        public var headers: [String: String]
        public var body: String
    }

    public struct Failure: Error, Sendable, CustomStringConvertible {
        public var message: String
        public var description: String { message }
    }

    /// Sends `GET url` and returns the complete response.
    /// - Parameters:
    ///   - url: an `http://` URL.
    ///   - proxy: an HTTP forward proxy to send the request through, if any.
    ///   - headers: extra request headers.
    ///   - timeout: the limit for connecting, sending and receiving.
    public static func get(
        _ url: String, via proxy: Address? = nil, headers extra: [(String, String)] = [],
        timeout: Duration = .seconds(5)
    ) async throws -> Response {
        guard let target = Target(url: url) else {
            throw Failure(message: "not an http:// URL: \(url)")
        }
        let connectTo = proxy ?? target.address
        return try await withThrowingTaskGroup(of: Response.self) { group in
            group.addTask {
                try await exchange(
                    connectTo: connectTo, uri: proxy == nil ? target.pathAndQuery : target.absoluteURL,
                    authority: target.authority, extra: extra)
            }
            group.addTask {
                try await Task.sleep(for: timeout)
                throw Failure(message: "no answer from \(connectTo) within \(timeout)")
            }
            defer { group.cancelAll() }
            guard let response = try await group.next() else {
                throw Failure(message: "request to \(url) ended without an answer")
            }
            return response
        }
    }

    private static func exchange(
        connectTo: Address, uri: String, authority: String, extra: [(String, String)]
    ) async throws -> Response {
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connectTimeout(.seconds(3))
            .connect(host: connectTo.host, port: connectTo.port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    return try NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>(
                        wrappingChannelSynchronously: channel)
                }
            }
        return try await withTaskCancellationHandler {
            try await channel.executeThenClose { inbound, outbound in
                var headers = HTTPHeaders()
                headers.add(name: "host", value: authority)
                headers.add(name: "user-agent", value: "starling-demo-frontend")
                headers.add(name: "accept", value: "application/json")
                headers.add(name: "connection", value: "close")
                for (name, value) in extra { headers.add(name: name, value: value) }
                // Head and end in one flush: a server that answers a bodiless request as soon as it
                // has the head and then closes (`connection: close`) must not turn a separate
                // write of the end into "I/O on closed channel" before its answer is read.
                try await outbound.write(contentsOf: [
                    .head(HTTPRequestHead(version: .http1_1, method: .GET, uri: uri, headers: headers)), .end(nil),
                ])

                var status: Int?
                var responseHeaders: [String: String] = [:]
                var body = ByteBuffer()
                for try await part in inbound {
                    switch part {
                    case .head(let head):
                        status = Int(head.status.code)
                        for (name, value) in head.headers {
                            let key = name.lowercased()
                            responseHeaders[key] = responseHeaders[key].map { "\($0), \(value)" } ?? value
                        }
                    case .body(var chunk):
                        body.writeBuffer(&chunk)
                    case .end:
                        guard let status else { throw Failure(message: "\(connectTo) ended the response before its head") }
                        return Response(status: status, headers: responseHeaders, body: String(buffer: body))
                    }
                }
                throw Failure(message: "\(connectTo) closed the connection before a complete response")
            }
        } onCancel: {
            channel.channel.close(promise: nil)
        }
    }
}

extension String {
    fileprivate var trimmingSpaces: Substring {
        let trimmed = drop { $0 == " " || $0 == "\t" || $0 == "\n" }
        var end = trimmed.endIndex
        while end > trimmed.startIndex, [" ", "\t", "\n"].contains(trimmed[trimmed.index(before: end)]) {
            end = trimmed.index(before: end)
        }
        return trimmed[..<end]
    }
}
