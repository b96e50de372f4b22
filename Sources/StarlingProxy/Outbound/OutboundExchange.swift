import NIOCore
import NIOHPACK
import NIOHTTP1
import NIOHTTP2
import NIOPosix
import Synchronization

/// One request on its way out, in HTTP/2 form whatever the client spoke.
struct OutboundRequest: Sendable {
    /// Pseudo-headers and fields, hop-by-hop fields removed, mesh headers not yet added.
    var headers: HPACKHeaders
    /// What the picker is asked for: `host:port` of the service (or the original destination).
    var routingAuthority: String
    /// The `:authority` the client used, for logs and metrics.
    var authority: String
    var method: String
    /// `HTTP/1.1` / `HTTP/1.0` when the client spoke HTTP/1; nil for HTTP/2 clients.
    var originalProtocol: String?
    /// False when the request ends with its head.
    var hasBody: Bool
}

/// Where the response goes: the client's HTTP/1 connection or HTTP/2 stream.
protocol OutboundResponseSink: Sendable {
    /// The final response head (`:status` and fields, as the upstream sent them).
    func head(_ headers: HPACKHeaders) async throws
    func body(_ data: ByteBuffer) async throws
    /// The end of the response, with trailers if any.
    func end(_ trailers: HPACKHeaders?) async throws
    /// An error response instead of the upstream's, before any head went out. `abortRequest`:
    /// the request body was not fully read, so stop reading it (HTTP/1: close after responding).
    func error(_ error: ProxyError, abortRequest: Bool) async throws
    /// A response that is only a head (HTTP/2 "trailers-only", as gRPC errors are).
    func headOnly(_ headers: HPACKHeaders) async throws
}

extension OutboundResponseSink {
    func headOnly(_ headers: HPACKHeaders) async throws {
        try await head(headers)
        try await end(nil)
    }
}

/// Where the request body goes: the upstream stream or connection.
protocol UpstreamBodyWriter: Sendable {
    func body(_ data: ByteBuffer) async throws
    func end(_ trailers: HPACKHeaders?) async throws
}

/// How an exchange with the upstream ended.
enum ExchangeResult: Sendable {
    /// The upstream's response went to the client; `status` is its status code.
    case responded(status: Int, peerFailed: Bool, latency: Duration)
    /// The exchange failed. `responded`: an error response (or part of the upstream's) already
    /// went to the client, so the caller must not write one.
    case failed(ProxyError, headSent: Bool, errorResponded: Bool)
}

/// Guards the one transition that both the response pump and the timeout race for: the first
/// response head (or the timeout's error response) reaches the client, never both.
final class ExchangePhase: Sendable {
    enum Phase: Sendable {
        case awaitingHead
        case headSent(status: Int)
        case timedOut
    }

    private let phase = Mutex(Phase.awaitingHead)
    private let requestRead: Mutex<Bool>

    init(hasBody: Bool) {
        requestRead = Mutex(!hasBody)
    }

    /// Whether the client's request body was read to its end.
    var isRequestRead: Bool {
        get { requestRead.withLock { $0 } }
    }

    func markRequestRead() { requestRead.withLock { $0 = true } }

    /// True when the caller won the race to send the head.
    func markHeadSent(status: Int) -> Bool {
        phase.withLock {
            guard case .awaitingHead = $0 else { return false }
            $0 = .headSent(status: status)
            return true
        }
    }

    /// True when the caller won the race to time out.
    func markTimedOut() -> Bool {
        phase.withLock {
            guard case .awaitingHead = $0 else { return false }
            $0 = .timedOut
            return true
        }
    }

    var current: Phase { phase.withLock { $0 } }
}

// MARK: - Upstreams

/// The upstream of one request: a stream on a peer's HTTP/2 connection (meshed), or a plain
/// HTTP/1.1 connection (endpoints outside the mesh).
enum Upstream: Sendable {
    case http2(PeerStream)
    case http1(NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>)

    /// Ends the exchange early: resets the stream, or closes the connection.
    func close() {
        switch self {
        case .http2(let stream): stream.close()
        case .http1(let connection): connection.channel.close(promise: nil)
        }
    }

    var peerDescription: String {
        switch self {
        case .http2(let stream): stream.peerDescription
        case .http1(let connection): connection.channel.remoteAddress.map { "\($0)" } ?? "the upstream"
        }
    }
}

struct HTTP2UpstreamBodyWriter: UpstreamBodyWriter {
    let stream: PeerStream

    func body(_ data: ByteBuffer) async throws {
        try await stream.write(.data(.init(data: .byteBuffer(data))))
    }

    func end(_ trailers: HPACKHeaders?) async throws {
        try await stream.write(.requestEnd(trailers))
    }
}

struct HTTP1UpstreamBodyWriter: UpstreamBodyWriter {
    let outbound: NIOAsyncChannelOutboundWriter<HTTPClientRequestPart>

    func body(_ data: ByteBuffer) async throws {
        try await outbound.write(.body(.byteBuffer(data)))
    }

    func end(_ trailers: HPACKHeaders?) async throws {
        try await outbound.write(.end(trailers.map(HTTPHeadConversion.http1Trailers(from:))))
    }
}

// MARK: - Exchange

/// Runs one request/response exchange with an upstream: sends the head, streams the request
/// body (`sendBody`, in the caller's task, which owns the client's read side) while a child task
/// streams the response to `sink`, and enforces `timeout` until the response head arrives
/// (504 `timeout`). Bodies are never buffered whole: every part is awaited on both sides, so
/// the slower side's backpressure reaches the other.
func runExchange(
    upstream: Upstream, headers: HPACKHeaders, hasBody: Bool, timeout: Duration, sink: some OutboundResponseSink,
    sendBody: (any UpstreamBodyWriter) async throws -> Void
) async -> ExchangeResult {
    let phase = ExchangePhase(hasBody: hasBody)
    let started = ContinuousClock.now
    do {
        switch upstream {
        case .http2(let stream):
            // A stream both sides ended is closed already; one still open is reset.
            defer { stream.close() }
            try await stream.write(.headers(.init(headers: headers, endStream: !hasBody)))
            return try await exchangeBody(
                phase: phase, started: started, timeout: timeout, sink: sink, upstream: upstream,
                hasBody: hasBody, writer: HTTP2UpstreamBodyWriter(stream: stream),
                sendBody: sendBody
            ) { try await pumpHTTP2Response(stream.inbound, sink: sink, phase: phase) }
        case .http1(let connection):
            let head = try HTTPHeadConversion.http1RequestHead(from: headers)
            return try await connection.executeThenClose { inbound, outbound in
                // A bodiless request goes out in one flush, so an upstream that answers and
                // closes on seeing the head cannot fail a second write before its answer is read.
                if hasBody {
                    try await outbound.write(.head(head))
                } else {
                    try await outbound.write(contentsOf: [.head(head), .end(nil)])
                }
                return try await exchangeBody(
                    phase: phase, started: started, timeout: timeout, sink: sink, upstream: upstream,
                    hasBody: hasBody, writer: HTTP1UpstreamBodyWriter(outbound: outbound),
                    sendBody: sendBody
                ) { try await pumpHTTP1Response(inbound, sink: sink, phase: phase) }
            }
        }
    } catch {
        let proxyError =
            (error as? ProxyError)
            ?? ProxyError(.upstreamProtocol, "the exchange with \(upstream.peerDescription) failed: \(error)")
        switch phase.current {
        case .awaitingHead: return .failed(proxyError, headSent: false, errorResponded: false)
        case .headSent: return .failed(proxyError, headSent: true, errorResponded: false)
        case .timedOut: return .failed(ProxyError(.timeout, "no response within \(timeout)"), headSent: false, errorResponded: true)
        }
    }
}

private enum ExchangeTask: Sendable {
    case response
    case watchdog
}

private func exchangeBody(
    phase: ExchangePhase, started: ContinuousClock.Instant, timeout: Duration, sink: some OutboundResponseSink,
    upstream: Upstream, hasBody: Bool, writer: some UpstreamBodyWriter,
    sendBody: (any UpstreamBodyWriter) async throws -> Void,
    pump: @escaping @Sendable () async throws -> Void
) async throws -> ExchangeResult {
    try await withThrowingTaskGroup(of: ExchangeTask.self) { group in
        group.addTask {
            try await pump()
            return .response
        }
        group.addTask {
            // On a loop's timer, which a cancel removes (not Task.sleep: docs/data-plane.md).
            try await sleep(for: timeout, on: MultiThreadedEventLoopGroup.singleton.any())
            if phase.markTimedOut() {
                let unread = !phase.isRequestRead
                try? await sink.error(ProxyError(.timeout, "no response within \(timeout)"), abortRequest: unread)
                upstream.close()
                throw ProxyError(.timeout, "no response within \(timeout)")
            }
            return .watchdog
        }
        if hasBody {
            do {
                try await sendBody(writer)
                phase.markRequestRead()
            } catch {
                // The upstream may have answered (and closed) before taking the whole body; the
                // response pump decides the outcome. The caller sees the body as unread.
                if case .awaitingHead = phase.current, !(error is ProxyError) {
                    upstream.close()
                }
                if let error = error as? ProxyError { throw error }
            }
        }
        while let finished = try await group.next() {
            if case .response = finished {
                group.cancelAll()
                break
            }
        }
        guard case .headSent(let status) = phase.current else {
            throw ProxyError(.upstreamProtocol, "the upstream ended without a response")
        }
        return .responded(status: status, peerFailed: false, latency: ContinuousClock.now - started)
    }
}

/// Streams an HTTP/2 response to `sink`. Informational (1xx) heads are dropped.
private func pumpHTTP2Response(
    _ inbound: PeerStream.Inbound, sink: some OutboundResponseSink,
    phase: ExchangePhase
) async throws {
    var headSent = false
    for try await payload in inbound {
        switch payload {
        case .headers(let frame):
            if !headSent {
                guard let status = frame.headers.first(name: ":status").flatMap(Int.init) else {
                    throw ProxyError(.upstreamProtocol, "the peer's response has no valid :status")
                }
                if (100..<200).contains(status) { continue }
                guard phase.markHeadSent(status: status) else { return }
                headSent = true
                if frame.endStream {
                    try await sink.headOnly(frame.headers)
                    return
                }
                try await sink.head(frame.headers)
            } else {
                try await sink.end(frame.headers)
                return
            }
        case .data(let frame):
            guard headSent else { throw ProxyError(.upstreamProtocol, "the peer sent data before its response head") }
            if case .byteBuffer(let buffer) = frame.data, buffer.readableBytes > 0 {
                try await sink.body(buffer)
            }
            if frame.endStream {
                try await sink.end(nil)
                return
            }
        case .rstStream(let code):
            throw ProxyError(.upstreamProtocol, "the peer reset the stream (\(code))")
        default:
            continue
        }
    }
    throw ProxyError(.upstreamProtocol, "the peer closed the stream before the response ended")
}

/// Streams an HTTP/1 response to `sink` (the decoder already drops 1xx heads).
private func pumpHTTP1Response(
    _ inbound: NIOAsyncChannelInboundStream<HTTPClientResponsePart>, sink: some OutboundResponseSink,
    phase: ExchangePhase
) async throws {
    var headSent = false
    for try await part in inbound {
        switch part {
        case .head(let head):
            guard phase.markHeadSent(status: Int(head.status.code)) else { return }
            headSent = true
            try await sink.head(HTTPHeadConversion.http2ResponseHeaders(from: head))
        case .body(let buffer):
            guard headSent else { throw ProxyError(.upstreamProtocol, "the upstream sent a body before its head") }
            try await sink.body(buffer)
        case .end(let trailers):
            guard headSent else { throw ProxyError(.upstreamProtocol, "the upstream ended before its head") }
            try await sink.end(trailers.map(HTTPHeadConversion.http2Trailers(from:)))
            return
        }
    }
    throw ProxyError(.upstreamProtocol, "the upstream closed the connection before the response ended")
}
