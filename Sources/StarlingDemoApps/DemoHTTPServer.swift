import Logging
import NIOCore
import NIOHTTP1
import NIOPosix

/// One HTTP/1.1 request as the demo apps see it: bodies are ignored (the apps serve GETs only).
struct DemoRequest: Sendable {
    var method: HTTPMethod
    /// The path without query; absolute-form targets (`http://host/path`) are reduced to their path.
    var path: String
    var headers: HTTPHeaders

    init(head: HTTPRequestHead) {
        method = head.method
        headers = head.headers
        var target = Substring(head.uri)
        if let scheme = target.firstRange(of: "://") {
            target = target[scheme.upperBound...]
            target = target.firstIndex(of: "/").map { target[$0...] } ?? "/"
        }
        path = String(target.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first ?? "/")
        if path.isEmpty { path = "/" }
    }
}

/// A response of the demo apps: a status, a content type and a complete body.
struct DemoResponse: Sendable {
    var status: HTTPResponseStatus
    var contentType: String
    var body: String

    static func json(_ body: String, status: HTTPResponseStatus = .ok) -> DemoResponse {
        DemoResponse(status: status, contentType: "application/json", body: body)
    }
}

/// The small HTTP/1.1 server both demo apps use: binds, hands each request to `respond`, keeps
/// connections alive when the client asks, and runs until the calling task is cancelled.
enum DemoHTTPServer {
    static func run(
        host: String, port: Int, logger: Logger, onBound: @Sendable (Int) async -> Void,
        respond: @escaping @Sendable (DemoRequest) async -> DemoResponse
    ) async throws {
        let server = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .bind(host: host, port: port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    return try NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>(
                        wrappingChannelSynchronously: channel)
                }
            }
        let boundPort = server.channel.localAddress?.port ?? port
        logger.info("demo app listening", metadata: ["address": "\(host):\(boundPort)"])
        await onBound(boundPort)
        try await withTaskCancellationHandler {
            try await server.executeThenClose { connections in
                try await withThrowingDiscardingTaskGroup { group in
                    for try await connection in connections {
                        group.addTask {
                            do {
                                try await serve(connection, respond: respond)
                            } catch {
                                logger.debug("demo app connection ended", metadata: ["error": "\(error)"])
                            }
                        }
                    }
                }
            }
        } onCancel: {
            server.channel.close(promise: nil)
        }
        logger.info("demo app stopped", metadata: ["address": "\(host):\(boundPort)"])
    }

    private static func serve(
        _ connection: NIOAsyncChannel<HTTPServerRequestPart, HTTPServerResponsePart>,
        respond: @Sendable (DemoRequest) async -> DemoResponse
    ) async throws {
        try await connection.executeThenClose { inbound, outbound in
            var head: HTTPRequestHead?
            for try await part in inbound {
                switch part {
                case .head(let requestHead):
                    head = requestHead
                case .body:
                    break
                case .end:
                    guard let requestHead = head else { continue }
                    head = nil
                    let response = await respond(DemoRequest(head: requestHead))
                    var headers = HTTPHeaders()
                    headers.add(name: "content-type", value: response.contentType)
                    headers.add(name: "content-length", value: "\(response.body.utf8.count)")
                    headers.add(name: "cache-control", value: "no-store")
                    if !requestHead.isKeepAlive { headers.add(name: "connection", value: "close") }
                    try await outbound.write(
                        .head(HTTPResponseHead(version: requestHead.version, status: response.status, headers: headers)))
                    if requestHead.method != .HEAD {
                        try await outbound.write(.body(.byteBuffer(ByteBuffer(string: response.body))))
                    }
                    try await outbound.write(.end(nil))
                    if !requestHead.isKeepAlive { return }
                }
            }
        }
    }
}

/// Writes JSON text by hand: the demo apps' answers are small and flat, and the servers use no
/// Foundation.
enum DemoJSON {
    /// `value` as a JSON string literal, quotes included.
    static func string(_ value: String) -> String {
        var out = "\""
        for scalar in value.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "<": out += "\\u003c"  // safe to embed in HTML
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }

    /// `value` as a JSON string literal, or `null`.
    static func optional(_ value: String?) -> String {
        value.map(string) ?? "null"
    }

    /// An object from already encoded members, in order.
    static func object(_ members: [(String, String)]) -> String {
        "{" + members.map { "\(string($0.0)): \($0.1)" }.joined(separator: ", ") + "}"
    }

    static func array(_ elements: [String]) -> String {
        "[" + elements.joined(separator: ", ") + "]"
    }
}
