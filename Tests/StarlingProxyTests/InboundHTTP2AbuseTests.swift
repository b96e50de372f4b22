// The inbound mTLS HTTP/2 listener under two HTTP/2 denial-of-service attacks, driven with raw
// frames over a real mTLS connection on loopback: rapid reset (CVE-2023-44487) and a CONTINUATION
// flood (CVE-2024-27316 class). Each attack must end with the inbound sending GOAWAY
// ENHANCE_YOUR_CALM and closing the connection long before the attack is over, and the inbound
// must still serve a well-behaved caller afterwards. A connection held open without streams
// (the cheap way to hoard connections) must get GOAWAY after the idle timeout.
//
// What the inbound is expected to enforce (HTTP2Limits, used by every HTTP/2 connection):
// - at most 1,000 RST_STREAM frames from the caller per 10 s window
//   (`streamResetFrameRateLimit`); NIOHTTP2 fails the connection on the 1,001st;
// - at most 5 CONTINUATION frames in a row (`maximumSequentialContinuationFrames`, NIOHTTP2's
//   default); NIOHTTP2 fails the connection on the 6th.
//
// Memory is not asserted: the proxy runs in the test process, so the process's RSS says nothing
// sound about what one attacking connection costs the proxy.
import NIOCore
import NIOHPACK
import NIOHTTP1
import NIOPosix
import NIOSSL
import StarlingIdentity
import StarlingProxy
import StarlingTLS
import Synchronization
import Testing

@Suite(.timeLimit(.minutes(1)))
struct InboundHTTP2AbuseTests {
    /// The inbound's RST_STREAM budget per window (`streamResetFrameRateLimit.maximumCount`).
    static let resetLimit = 1_000
    /// HTTP/2 error code ENHANCE_YOUR_CALM, which NIOHTTP2 puts in GOAWAY when a DoS limit trips.
    static let enhanceYourCalm: UInt32 = 0xB

    let pki: InboundTestPKI
    let serverTLS: MeshTLS
    let clientContext: NIOSSLContext

    init() throws {
        pki = try InboundTestPKI()
        serverTLS = try pki.tls(.inboundServer)
        let (chain, key) = try pki.workload(.inboundClient)
        clientContext = try inboundClientContext(chain: chain, key: key, trustRoot: pki.root, alpn: ["h2"])
    }

    // MARK: - Rapid reset

    /// Opens streams (a complete GET to the application) and cancels each at once, 50 at a time
    /// followed by a PING. The PING is a barrier: the inbound handles frames in order, so its ACK
    /// means every frame before it was processed, and `streamsSent` counts streams the inbound
    /// had read when it closed the connection (not bytes sitting in socket buffers). With a limit
    /// of 1,000 resets the connection must end in the 21st batch (1,050 streams); the bound of
    /// 2,000 leaves room for a tighter or looser limit of the same order, while an unprotected
    /// listener takes all 5,000. At most 100 PINGs are sent, half NIOHTTP2's control frame budget, so that
    /// limit cannot be what ends the connection.
    @Test func rapidResetEndsTheConnectionEarlyAndTheInboundStillServes() async throws {
        try await withRawCaller { peer, port, counter in

            // First, one of the attack's requests left alone: it is a valid request the
            // application answers (so the attack is made of real requests).
            let request = Self.getRequestHeaderBlock(path: "/rapid-reset")
            var single = ByteBuffer()
            single.writeRawHTTP2Frame(
                type: RawFrameType.headers, flags: RawFrameFlags.endStream | RawFrameFlags.endHeaders, streamID: 1,
                payload: request)
            try await peer.send(single)
            let served = await peer.waitUntil(timeout: .seconds(5)) { $0.responseHeaderBlocks[1] != nil }
            try #require(served, "the inbound did not answer a raw GET")
            var responseBlock = try #require(peer.observations.snapshot.responseHeaderBlocks[1])
            var decoder = HPACKDecoder(allocator: ByteBufferAllocator())
            let response = try decoder.decodeHeaders(from: &responseBlock)
            #expect(response.first(name: ":status") == "200")
            #expect(response.first(name: "echo-path") == "/rapid-reset")
            #expect(counter.value == 1)

            let streamLimit = 5_000
            let batchSize = 50
            var streamsSent = 0
            var nextStreamID: UInt32 = 3
            var pings: UInt64 = 0
            var barrierTimedOut = false
            let start = ContinuousClock.now
            while streamsSent < streamLimit, !peer.observations.isClosed {
                var batch = ByteBuffer()
                for _ in 0..<batchSize {
                    batch.writeRawHTTP2Frame(
                        type: RawFrameType.headers, flags: RawFrameFlags.endStream | RawFrameFlags.endHeaders,
                        streamID: nextStreamID, payload: request)
                    batch.writeRawHTTP2Frame(
                        type: RawFrameType.rstStream, streamID: nextStreamID, payload: [0, 0, 0, 0x8])  // CANCEL
                    nextStreamID += 2
                }
                pings += 1
                batch.writeRawHTTP2Frame(type: RawFrameType.ping, streamID: 0, payload: pingPayload(pings))
                do {
                    try await peer.send(batch)
                } catch {
                    break  // the inbound closed the connection while this batch was on its way
                }
                streamsSent += batchSize
                let ping = pings
                let answered = await peer.waitUntil(timeout: .seconds(10)) { $0.pingAcks.contains(ping) || $0.isClosed }
                if !answered {
                    barrierTimedOut = true
                    break
                }
            }
            #expect(!barrierTimedOut, "the inbound neither answered a PING nor closed within 10 s")
            let closed = await peer.waitUntil(timeout: .seconds(5)) { $0.isClosed }
            let elapsed = ContinuousClock.now - start
            let state = peer.observations.snapshot
            await peer.close()

            #expect(closed, "the inbound kept the connection open through \(streamsSent) reset streams")
            #expect(
                streamsSent < 2 * Self.resetLimit,
                "the inbound processed \(streamsSent) opened-and-reset streams before closing (limit \(Self.resetLimit))")
            #expect(state.goAway?.errorCode == Self.enhanceYourCalm, "GOAWAY seen: \(String(describing: state.goAway))")
            #expect(elapsed < .seconds(5), "the attack took \(elapsed) to be cut off")

            // Every request the application saw came from a stream the inbound accepted before the
            // limit tripped: at most one per reset it tolerated, plus the one that tripped it.
            // Requests still being forwarded when the connection closed get a moment to land.
            // (The request on stream 1 was not part of the attack.)
            try await Task.sleep(for: .milliseconds(300))
            let appRequests = counter.value - 1
            #expect(appRequests <= Self.resetLimit + 1, "the application saw \(appRequests) requests")
            #expect(appRequests < streamsSent)

            try await expectAWellBehavedCallerIsServed(port: port)
        }
    }

    // MARK: - CONTINUATION flood

    /// Opens a header block on stream 1 and never ends it: CONTINUATION after CONTINUATION, each a
    /// complete literal header field, 10 frames per write with a short pause between writes (up to
    /// 10,000 frames, about 2 s or more when nothing stops it). The inbound must fail the
    /// connection on the 6th frame with GOAWAY ENHANCE_YOUR_CALM. Frames already in flight when
    /// the close is noticed still count as sent, so the bound is loose (1,000): it stays well below
    /// the ~6,000 frames (64 KiB, the inbound's maximum header list size) where NIOHTTP2's header
    /// block size check, not the CONTINUATION limit, would end the connection (with
    /// PROTOCOL_ERROR, so the GOAWAY code tells the two apart too).
    @Test func aContinuationFloodEndsTheConnectionQuicklyAndTheInboundStillServes() async throws {
        try await withRawCaller { peer, port, counter in

            let frameLimit = 10_000
            let framesPerWrite = 10
            let field = Self.literalHeaderField(name: "x-flood", value: "a")
            var opening = ByteBuffer()
            // END_STREAM but not END_HEADERS: the header block stays open.
            opening.writeRawHTTP2Frame(
                type: RawFrameType.headers, flags: RawFrameFlags.endStream, streamID: 1,
                payload: Self.getRequestHeaderBlock(path: "/continuation-flood"))
            let start = ContinuousClock.now
            try await peer.send(opening)
            var framesSent = 0
            while framesSent < frameLimit, !peer.observations.isClosed {
                var batch = ByteBuffer()
                for _ in 0..<framesPerWrite {
                    batch.writeRawHTTP2Frame(type: RawFrameType.continuation, streamID: 1, payload: field)
                }
                do {
                    try await peer.send(batch)
                } catch {
                    break  // the inbound closed the connection while this batch was on its way
                }
                framesSent += framesPerWrite
                try await Task.sleep(for: .milliseconds(2))
            }
            let closed = await peer.waitUntil(timeout: .seconds(5)) { $0.isClosed }
            let state = peer.observations.snapshot
            await peer.close()

            #expect(closed, "the inbound kept the connection open through \(framesSent) CONTINUATION frames")
            #expect(framesSent < 1_000, "\(framesSent) CONTINUATION frames were sent before the inbound closed")
            #expect(state.goAway?.errorCode == Self.enhanceYourCalm, "GOAWAY seen: \(String(describing: state.goAway))")
            let closedAfter = state.closedAt.map { $0 - start }
            #expect(closedAfter.map { $0 < .seconds(2) } == true, "closed after \(String(describing: closedAfter))")
            // The header block never completed, so no request may have reached the application.
            #expect(counter.value == 0)

            try await expectAWellBehavedCallerIsServed(port: port)
            #expect(counter.value == 1)
        }
    }

    // MARK: - Idle connections

    /// A connection with no open stream for the idle timeout gets GOAWAY (no error, naming the
    /// last stream it served) and is closed; each request in between moves the deadline (one
    /// re-armed check per connection, not a timer per request).
    @Test func anIdleConnectionGetsGoAwayAfterTheIdleTimeoutCountedFromItsLastStream() async throws {
        try await withRawCaller(idleTimeout: .milliseconds(1_200)) { peer, _, counter in
            // Three requests 500 ms apart: each comes well before the previous one's idle
            // deadline, even on a loaded machine (600 ms against 400 ms failed once under a build).
            for (index, streamID) in [UInt32(1), 3, 5].enumerated() {
                if index > 0 { try await Task.sleep(for: .milliseconds(500)) }
                var request = ByteBuffer()
                request.writeRawHTTP2Frame(
                    type: RawFrameType.headers, flags: RawFrameFlags.endStream | RawFrameFlags.endHeaders,
                    streamID: streamID, payload: Self.getRequestHeaderBlock(path: "/idle-\(streamID)"))
                try await peer.send(request)
                let served = await peer.waitUntil(timeout: .seconds(5)) { $0.responseHeaderBlocks[streamID] != nil }
                try #require(served, "stream \(streamID) was not answered")
                #expect(!peer.observations.isClosed, "closed while requests kept coming")
            }
            let lastAnswer = ContinuousClock.now
            let closed = await peer.waitUntil(timeout: .seconds(5)) { $0.isClosed }
            try #require(closed, "an idle connection was never closed")
            let state = peer.observations.snapshot
            #expect(state.goAway?.errorCode == 0)
            #expect(state.goAway?.lastStreamID == 5)
            let idleFor = try #require(state.closedAt) - lastAnswer
            #expect(idleFor >= .milliseconds(1_100) && idleFor < .seconds(4), "closed after \(idleFor)")
            #expect(counter.value == 3)
            await peer.close()
        }
    }

    // MARK: - Helpers

    /// An inbound in front of a request-counting HTTP/1 application, and a raw HTTP/2 caller with
    /// a mesh certificate connected to it, past the preface and the SETTINGS exchange.
    // MARK: - An answer before the request's end

    /// The application answers before the caller has sent its whole body (40,000 bytes, more than
    /// the caller's 16 KiB stream window): the whole answer reaches the caller, and only then is
    /// its stream reset with NO_ERROR (RFC 9113 §8.1), which tells it to stop sending. A reset
    /// as soon as the answer was handed to NIOHTTP2 dropped what still waited for the window.
    @Test func anAnswerBeforeTheRequestsEndArrivesWholeThenTheStreamIsResetWithNoError() async throws {
        let app = try await startEarlyAnsweringHTTP1App(bodyBytes: 40_000)
        defer { Task { await app.close() } }
        let configuration = InboundProxy.Configuration(appPorts: [app.port], defaultAppPort: app.port)
        let context = clientContext
        try await withInboundProxy(configuration: configuration, tls: serverTLS) { port in
            let peer = try await RawHTTP2Peer.connect(port: port, context: context)
            defer { Task { await peer.close() } }
            try await peer.startHTTP2(initialWindow: 16_384)
            var request = ByteBuffer()
            request.writeRawHTTP2Frame(
                type: RawFrameType.headers, flags: RawFrameFlags.endHeaders, streamID: 1,
                payload: Self.requestHeaderBlock(method: 0x83, path: "/upload"))  // :method POST
            request.writeRawHTTP2Frame(type: RawFrameType.data, streamID: 1, payload: Array(repeating: 0x61, count: 1_000))
            try await peer.send(request)
            let windowFull = await peer.waitUntil(timeout: .seconds(5)) { $0.dataBytes[1] == 16_384 }
            try #require(windowFull, "got \(peer.observations.snapshot.dataBytes[1] ?? 0) bytes of the answer")
            try await Task.sleep(for: .milliseconds(300))
            #expect(peer.observations.snapshot.resets[1] == nil, "reset while the answer still waited for the window")
            var window = ByteBuffer()
            window.writeRawHTTP2Frame(type: RawFrameType.windowUpdate, streamID: 1, payload: windowIncrement(65_535))
            try await peer.send(window)
            let whole = await peer.waitUntil(timeout: .seconds(5)) { $0.dataEnded.contains(1) }
            try #require(whole, "got \(peer.observations.snapshot.dataBytes[1] ?? 0) of 40000 bytes")
            #expect(peer.observations.snapshot.dataBytes[1] == 40_000)
            let reset = await peer.waitUntil(timeout: .seconds(5)) { $0.resets[1] != nil }
            #expect(reset)
            #expect(peer.observations.snapshot.resets[1] == 0, "NO_ERROR")
        }
    }

    private func withRawCaller(
        idleTimeout: Duration? = nil,
        _ body: @Sendable (_ peer: RawHTTP2Peer, _ port: Int, _ counter: RequestCounter) async throws -> Void
    ) async throws {
        let app = try await startRequestCountingHTTP1App()
        defer { Task { await app.server.close() } }
        var configuration = InboundProxy.Configuration(appPorts: [app.server.port], defaultAppPort: app.server.port)
        if let idleTimeout { configuration.idleTimeout = idleTimeout }
        let context = clientContext
        try await withInboundProxy(configuration: configuration, tls: serverTLS) { port in
            let peer = try await RawHTTP2Peer.connect(port: port, context: context)
            try await peer.startHTTP2()
            try await body(peer, port, app.counter)
        }
    }

    /// A new mTLS HTTP/2 connection with a mesh certificate gets a normal GET answered with 200
    /// by the application.
    private func expectAWellBehavedCallerIsServed(port: Int) async throws {
        let context = clientContext
        let client = try await InboundTestClient.connect(port: port) {
            try NIOSSLClientHandler(context: context, serverHostname: nil)
        }
        let response = try await client.send(
            path: "/after-the-attack", authority: "podinfo.test", headers: [("starling-orig-proto", "HTTP/1.1")])
        await client.close()
        #expect(response.status == 200)
        #expect(response.header("echo-path") == "/after-the-attack")
    }

    /// An HPACK header block for `GET https://podinfo.test<path>` routed to an HTTP/1 application,
    /// using only the static table and literals without indexing (so blocks stay independent of
    /// the HPACK dynamic table and can be sent any number of times).
    static func getRequestHeaderBlock(path: String) -> [UInt8] {
        requestHeaderBlock(method: 0x82, path: path)
    }

    /// The same block with another `:method` (static table index byte: 0x82 GET, 0x83 POST).
    static func requestHeaderBlock(method: UInt8, path: String) -> [UInt8] {
        var block: [UInt8] = [method, 0x87]  // :method, :scheme https (static table 7)
        block += literalHeaderField(nameIndex: 4, value: path)  // :path
        block += literalHeaderField(nameIndex: 1, value: "podinfo.test")  // :authority
        block += literalHeaderField(name: "starling-orig-proto", value: "HTTP/1.1")
        return block
    }

    /// A literal header field without indexing whose name is static table entry `nameIndex` (< 15).
    static func literalHeaderField(nameIndex: UInt8, value: String) -> [UInt8] {
        precondition(nameIndex < 15 && value.utf8.count < 127)
        return [nameIndex, UInt8(value.utf8.count)] + Array(value.utf8)
    }

    /// A literal header field without indexing with a literal name (no Huffman coding).
    static func literalHeaderField(name: String, value: String) -> [UInt8] {
        precondition(name.utf8.count < 127 && value.utf8.count < 127)
        return [0x00, UInt8(name.utf8.count)] + Array(name.utf8) + [UInt8(value.utf8.count)] + Array(value.utf8)
    }
}

// MARK: - Raw HTTP/2 frames

private enum RawFrameType {
    static let data: UInt8 = 0x0
    static let headers: UInt8 = 0x1
    static let rstStream: UInt8 = 0x3
    static let windowUpdate: UInt8 = 0x8
    static let settings: UInt8 = 0x4
    static let ping: UInt8 = 0x6
    static let goAway: UInt8 = 0x7
    static let continuation: UInt8 = 0x9
}

private enum RawFrameFlags {
    static let endStream: UInt8 = 0x1
    static let ack: UInt8 = 0x1
    static let endHeaders: UInt8 = 0x4
}

private func pingPayload(_ value: UInt64) -> [UInt8] {
    (0..<8).map { UInt8(truncatingIfNeeded: value >> (56 - 8 * $0)) }
}

extension ByteBuffer {
    /// Appends one HTTP/2 frame: 24-bit length, type, flags, 31-bit stream ID, payload.
    fileprivate mutating func writeRawHTTP2Frame(type: UInt8, flags: UInt8 = 0, streamID: UInt32, payload: [UInt8]) {
        precondition(payload.count < 1 << 24)
        writeInteger(UInt8(truncatingIfNeeded: payload.count >> 16))
        writeInteger(UInt16(truncatingIfNeeded: payload.count), endianness: .big)
        writeInteger(type)
        writeInteger(flags)
        writeInteger(streamID & 0x7FFF_FFFF, endianness: .big)
        writeBytes(payload)
    }
}

// MARK: - A raw HTTP/2 client over mTLS

/// What a raw HTTP/2 client has seen from the server.
private struct RawHTTP2State: Sendable {
    struct GoAway: Sendable, CustomStringConvertible {
        var lastStreamID: UInt32
        var errorCode: UInt32
        var description: String { "GOAWAY(last stream \(lastStreamID), error 0x\(String(errorCode, radix: 16)))" }
    }

    var receivedSettings = false
    var receivedSettingsAck = false
    var pingAcks: Set<UInt64> = []
    /// The first complete header block the server sent on each stream.
    var responseHeaderBlocks: [UInt32: ByteBuffer] = [:]
    var goAway: GoAway?
    var framesByType: [UInt8: Int] = [:]
    /// DATA bytes received on each stream, and the streams whose DATA ended (END_STREAM).
    var dataBytes: [UInt32: Int] = [:]
    var dataEnded: Set<UInt32> = []
    /// The error code of each RST_STREAM the server sent, by stream.
    var resets: [UInt32: UInt32] = [:]
    var closedAt: ContinuousClock.Instant?

    var isClosed: Bool { closedAt != nil }
}

private final class RawHTTP2Observations: Sendable {
    private let state = Mutex(RawHTTP2State())

    var snapshot: RawHTTP2State { state.withLock { $0 } }
    var isClosed: Bool { state.withLock { $0.isClosed } }

    func record(type: UInt8, flags: UInt8, streamID: UInt32, payload: ByteBuffer) {
        state.withLock { state in
            state.framesByType[type, default: 0] += 1
            switch type {
            case RawFrameType.headers where flags & RawFrameFlags.endHeaders != 0:
                // The server pads nothing and sets no priority, so the payload is the block.
                if state.responseHeaderBlocks[streamID] == nil { state.responseHeaderBlocks[streamID] = payload }
            case RawFrameType.data:
                // The server pads nothing.
                state.dataBytes[streamID, default: 0] += payload.readableBytes
                if flags & RawFrameFlags.endStream != 0 { state.dataEnded.insert(streamID) }
            case RawFrameType.rstStream:
                state.resets[streamID] = payload.getInteger(at: payload.readerIndex, endianness: .big, as: UInt32.self)
            case RawFrameType.settings:
                if flags & RawFrameFlags.ack != 0 { state.receivedSettingsAck = true } else { state.receivedSettings = true }
            case RawFrameType.ping where flags & RawFrameFlags.ack != 0:
                if let value = payload.getInteger(at: payload.readerIndex, endianness: .big, as: UInt64.self) {
                    state.pingAcks.insert(value)
                }
            case RawFrameType.goAway:
                if state.goAway == nil,
                    let last = payload.getInteger(at: payload.readerIndex, endianness: .big, as: UInt32.self),
                    let code = payload.getInteger(at: payload.readerIndex + 4, endianness: .big, as: UInt32.self)
                {
                    state.goAway = .init(lastStreamID: last & 0x7FFF_FFFF, errorCode: code)
                }
            default:
                break
            }
        }
    }

    func markClosed() {
        let now = ContinuousClock.now
        state.withLock { state in
            if state.closedAt == nil { state.closedAt = now }
        }
    }
}

/// Splits the decrypted byte stream into HTTP/2 frames and records them; notices the close.
private final class RawHTTP2FrameReader: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    private let observations: RawHTTP2Observations
    private var pending = ByteBuffer()

    init(_ observations: RawHTTP2Observations) {
        self.observations = observations
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        pending.writeBuffer(&bytes)
        while pending.readableBytes >= 9,
            let high = pending.getInteger(at: pending.readerIndex, as: UInt8.self),
            let low = pending.getInteger(at: pending.readerIndex + 1, endianness: .big, as: UInt16.self)
        {
            let length = Int(high) << 16 | Int(low)
            guard pending.readableBytes >= 9 + length else { break }
            pending.moveReaderIndex(forwardBy: 3)
            let type = pending.readInteger(as: UInt8.self)!
            let flags = pending.readInteger(as: UInt8.self)!
            let streamID = pending.readInteger(endianness: .big, as: UInt32.self)! & 0x7FFF_FFFF
            let payload = pending.readSlice(length: length)!
            observations.record(type: type, flags: flags, streamID: streamID, payload: payload)
        }
        pending.discardReadBytes()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        observations.markClosed()
        context.fireChannelInactive()
    }
}

/// An mTLS (ALPN h2) connection on which the test writes HTTP/2 frames as bytes.
private struct RawHTTP2Peer: Sendable {
    let channel: any Channel
    let observations: RawHTTP2Observations

    static func connect(port: Int, context: NIOSSLContext) async throws -> RawHTTP2Peer {
        let observations = RawHTTP2Observations()
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(NIOSSLClientHandler(context: context, serverHostname: nil))
                    try channel.pipeline.syncOperations.addHandler(RawHTTP2FrameReader(observations))
                }
            }
            .connect(host: "127.0.0.1", port: port).get()
        return RawHTTP2Peer(channel: channel, observations: observations)
    }

    /// The connection preface and an empty SETTINGS; acknowledges the server's SETTINGS and waits
    /// for it to acknowledge ours, so nothing the test sends later is interleaved with settings.
    /// `initialWindow`: the SETTINGS_INITIAL_WINDOW_SIZE sent (each stream's receive window).
    func startHTTP2(initialWindow: UInt32? = nil) async throws {
        var preface = ByteBuffer(string: "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        var settings: [UInt8] = []
        if let initialWindow {
            settings = [0x00, 0x04] + withUnsafeBytes(of: initialWindow.bigEndian) { Array($0) }
        }
        preface.writeRawHTTP2Frame(type: RawFrameType.settings, streamID: 0, payload: settings)
        try await send(preface)
        guard await waitUntil(timeout: .seconds(5), { $0.receivedSettings }) else {
            throw InboundTestError("the inbound sent no SETTINGS")
        }
        var ack = ByteBuffer()
        ack.writeRawHTTP2Frame(type: RawFrameType.settings, flags: RawFrameFlags.ack, streamID: 0, payload: [])
        try await send(ack)
        guard await waitUntil(timeout: .seconds(5), { $0.receivedSettingsAck }) else {
            throw InboundTestError("the inbound did not acknowledge SETTINGS")
        }
    }

    func send(_ bytes: ByteBuffer) async throws {
        try await channel.writeAndFlush(bytes)
    }

    /// Polls until `condition` holds (true) or `timeout` passes (false).
    func waitUntil(timeout: Duration, _ condition: (RawHTTP2State) -> Bool) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while true {
            if condition(observations.snapshot) { return true }
            if ContinuousClock.now >= deadline { return false }
            try? await Task.sleep(for: .milliseconds(1))
        }
    }

    func close() async { try? await channel.close() }
}

// MARK: - An application that counts requests

private final class RequestCounter: Sendable {
    private let count = Mutex(0)
    func increment() { count.withLock { $0 += 1 } }
    var value: Int { count.withLock { $0 } }
}

/// Counts request heads on their way to the echo handler.
private final class RequestCountingHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart

    private let counter: RequestCounter
    init(_ counter: RequestCounter) { self.counter = counter }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .head = unwrapInboundIn(data) { counter.increment() }
        context.fireChannelRead(data)
    }
}

/// The HTTP/1.1 echo application of the inbound tests, counting the requests it receives.
private func startRequestCountingHTTP1App() async throws -> (server: InboundTestServer, counter: RequestCounter) {
    let counter = RequestCounter()
    let server = try await startHTTP1TestApp { [RequestCountingHandler(counter), InboundHTTP1EchoHandler()] }
    return (server, counter)
}

/// A WINDOW_UPDATE payload.
private func windowIncrement(_ amount: UInt32) -> [UInt8] {
    withUnsafeBytes(of: amount.bigEndian) { Array($0) }
}

// MARK: - An application that answers before the request's end

/// Answers each request as soon as its head arrives, with `bodyBytes` bytes, and drops the body.
private final class EarlyAnswerHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let bodyBytes: Int
    init(bodyBytes: Int) { self.bodyBytes = bodyBytes }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .head = unwrapInboundIn(data) else { return }
        var head = HTTPResponseHead(version: .http1_1, status: .ok)
        head.headers.add(name: "content-length", value: "\(bodyBytes)")
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(repeating: 0x62, count: bodyBytes)))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
    }
}

private func startEarlyAnsweringHTTP1App(bodyBytes: Int) async throws -> InboundTestServer {
    try await startHTTP1TestApp { [EarlyAnswerHandler(bodyBytes: bodyBytes)] }
}
