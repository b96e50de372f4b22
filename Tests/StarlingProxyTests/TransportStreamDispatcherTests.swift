import NIOCore
import NIOEmbedded
import NIOHPACK
import NIOHTTP2
import Testing

@testable import StarlingProxy

/// The frame-mode stream dispatcher against a real NIOHTTP2 server, both in memory: the cases
/// where the dispatcher itself must do what NIOHTTP2's stream channels used to.
@Suite struct TransportStreamDispatcherTests {
    @Test func aStreamResetWhileQueuedBehindThePeersLimitClosesAtOnce() throws {
        let pair = try DispatcherPair(serverMaxConcurrentStreams: 1)
        let first = RecordingOwner()
        let a = try #require(pair.dispatcher.openStream(owner: first))
        a.write(.headers(.init(headers: requestHeaders)))
        a.flush()
        try pair.interact()
        // The server allows one stream: NIOHTTP2 holds the second one's HEADERS back.
        let second = RecordingOwner()
        let b = try #require(pair.dispatcher.openStream(owner: second))
        b.write(.headers(.init(headers: requestHeaders)))
        b.flush()
        try pair.interact()
        #expect(pair.activity.openStreams == 2)
        b.reset()
        try pair.interact()
        // NIOHTTP2 reports no close for a stream it never sent; the dispatcher closes it itself.
        #expect(second.closedReason == .some(.cancel))
        #expect(pair.activity.openStreams == 1)
        #expect(pair.dispatcher.openStreams == 1)
        #expect(first.closedReason == nil)
    }

    @Test func creditForDataDroppedOnAResetStreamIsReturnedToTheConnection() throws {
        let pair = try DispatcherPair()
        let first = RecordingOwner()
        let a = try #require(pair.dispatcher.openStream(owner: first))
        a.write(.headers(.init(headers: requestHeaders, endStream: true)))
        a.flush()
        try pair.interact()
        let aID = try #require(pair.server.streamIDs.first)
        // The client gives up on the stream while the server is still sending: the server's DATA
        // crosses the reset, and NIOHTTP2 drops it on arrival (it still counts against the
        // connection's window).
        a.reset()
        try pair.server.send(.headers(.init(headers: [":status": "200"])), on: aID)
        try pair.server.send(.data(.init(data: .byteBuffer(ByteBuffer(repeating: 1, count: 60_000)))), on: aID)
        try pair.interact()
        #expect(first.received.isEmpty)
        // A second stream gets a whole window's worth again only if that credit came back.
        let second = RecordingOwner()
        let b = try #require(pair.dispatcher.openStream(owner: second))
        b.write(.headers(.init(headers: requestHeaders, endStream: true)))
        b.flush()
        try pair.interact()
        let bID = try #require(pair.server.streamIDs.last)
        try pair.server.send(.headers(.init(headers: [":status": "200"])), on: bID)
        try pair.server.send(
            .data(.init(data: .byteBuffer(ByteBuffer(repeating: 2, count: 60_000)), endStream: true)), on: bID)
        try pair.interact()
        #expect(second.bodyBytes == 60_000)
        #expect(second.ended)
    }

    @Test func aStreamWhoseOwnerHoldsBackGetsNoMoreThanItsWindow() throws {
        let pair = try DispatcherPair()
        let owner = RecordingOwner()
        let stream = try #require(pair.dispatcher.openStream(owner: owner))
        stream.write(.headers(.init(headers: requestHeaders, endStream: true)))
        stream.flush()
        try pair.interact()
        let id = try #require(pair.server.streamIDs.first)
        stream.isReceiving = false
        try pair.server.send(.headers(.init(headers: [":status": "200"])), on: id)
        try pair.server.send(
            .data(.init(data: .byteBuffer(ByteBuffer(repeating: 3, count: 200_000)), endStream: true)), on: id)
        try pair.interact()
        // Credit is withheld: the server can send one stream window and no more.
        #expect(owner.bodyBytes == HTTP2StreamDispatcher.windowSize)
        stream.isReceiving = true
        try pair.interact()
        #expect(owner.bodyBytes == 200_000)
        #expect(owner.ended)
    }

    @Test func runningOutOfStreamIDsMarksTheConnectionExhausted() throws {
        let pair = try DispatcherPair(firstStreamID: HTTP2StreamID(Int32.max - 2))
        let owner = RecordingOwner()
        let last = try #require(pair.dispatcher.openStream(owner: owner))
        #expect(!pair.dispatcher.isExhausted)
        let veryLast = try #require(pair.dispatcher.openStream(owner: owner))
        #expect(veryLast.id == HTTP2StreamID(Int32.max))
        #expect(last.id == HTTP2StreamID(Int32.max - 2))
        #expect(pair.dispatcher.isExhausted)
        #expect(pair.dispatcher.openStream(owner: owner) == nil)
    }

    /// A stream left to close by itself (`resetUnlessClosed`) that does close is not held until its
    /// deadline: one held per HEAD request would pile up for the whole timeout under load.
    @Test func aStreamThatClosesBeforeItsDeadlineIsReleased() throws {
        let pair = try DispatcherPair()
        weak var released: HTTP2FrameStream?
        try {
            let stream = try #require(pair.dispatcher.openStream(owner: RecordingOwner()))
            released = stream
            stream.write(.headers(.init(headers: requestHeaders, endStream: true)))
            stream.flush()
            try pair.interact()
            stream.detach()
            stream.resetUnlessClosed(after: .hours(1))
        }()
        let id = try #require(pair.server.streamIDs.first)
        try pair.server.send(.headers(.init(headers: [":status": "204"], endStream: true)), on: id)
        try pair.interact()
        #expect(pair.dispatcher.openStreams == 0)
        #expect(released == nil, "the closed stream is still held (by its deadline's task)")
    }

    /// A response finished before the client ended its request (an early error, a server that
    /// does not read the body): the stream is reset with NO_ERROR once the response's last frame
    /// went out (RFC 9113 §8.1), not before (the frames waiting for the client's window would be
    /// lost) and not only at the idle timeout (the stream would be held until then).
    @Test func aResponseFinishedBeforeTheRequestResetsTheStreamOnceItsLastFrameWentOut() throws {
        let pair = try ServerDispatcherPair(clientWindow: 16_384)
        try pair.client.open(HTTP2StreamID(1), ending: false)
        try pair.interact()
        let stream = try #require(pair.accepted.first)
        stream.write(.headers(.init(headers: [":status": "413"])))
        stream.writeLast(.data(.init(data: .byteBuffer(ByteBuffer(repeating: 7, count: 40_000)), endStream: true)))
        stream.flush()
        try pair.interact()
        // The client's window holds 16 KiB of it: the rest waits in NIOHTTP2, the stream stays.
        #expect(pair.client.bodyBytes == 16_384)
        #expect(pair.client.resets.isEmpty)
        #expect(pair.dispatcher.openStreams == 1)
        try pair.client.grant(65_535, on: HTTP2StreamID(1))
        try pair.interact()
        #expect(pair.client.bodyBytes == 40_000)
        #expect(pair.client.ended)
        #expect(pair.client.resets == [.noError])
        #expect(pair.dispatcher.openStreams == 0)
        #expect(pair.owners.first?.closedReason == .some(.noError))
    }

    @Test func aResponseToAFinishedRequestClosesTheStreamWithoutAReset() throws {
        let pair = try ServerDispatcherPair(clientWindow: 65_535)
        try pair.client.open(HTTP2StreamID(1), ending: true)
        try pair.interact()
        let stream = try #require(pair.accepted.first)
        stream.write(.headers(.init(headers: [":status": "200"])))
        stream.writeLast(.data(.init(data: .byteBuffer(ByteBuffer(repeating: 7, count: 100)), endStream: true)))
        stream.flush()
        try pair.interact()
        #expect(pair.client.bodyBytes == 100)
        #expect(pair.client.ended)
        #expect(pair.client.resets.isEmpty)
        #expect(pair.dispatcher.openStreams == 0)
        #expect(pair.owners.first?.closedReason == .some(nil))
    }

    /// Deadlines of several streams on one connection, checked by one timer: each fires once, at
    /// its own time, after disarms (taken out of the middle of the list), a deadline moved
    /// earlier, a stream closed while armed, and an owner that re-arms when told.
    @Test func streamDeadlinesFireOnceEachAtTheirOwnTime() throws {
        let pair = try DispatcherPair()
        let loop = pair.client.embeddedEventLoop
        let start = loop.now
        let owners = (0..<6).map { _ in RecordingOwner() }
        var streams: [HTTP2FrameStream] = []
        for owner in owners {
            owner.clock = { loop.now }
            streams.append(try #require(pair.dispatcher.openStream(owner: owner)))
        }
        streams[0].armDeadline(in: .seconds(5))
        streams[1].armDeadline(in: .seconds(1))
        streams[2].armDeadline(in: .seconds(3))
        streams[3].armDeadline(in: .seconds(2))
        streams[4].armDeadline(in: .seconds(4))
        streams[5].armDeadline(in: .seconds(6))
        streams[1].disarmDeadline()
        streams[4].armDeadline(in: .milliseconds(500))
        streams[5].reset()
        // Told at 3 s, stream 2 asks again for 10 s more; stream 0's 5 s must not wait for it.
        let rearmed = streams[2]
        owners[2].onDeadline = { rearmed.armDeadline(in: .seconds(10)) }

        loop.advanceTime(by: .seconds(14))
        func times(_ owner: RecordingOwner) -> [Int64] { owner.deadlinesPassed.map { ($0 - start).nanoseconds / 1_000_000 } }
        #expect(times(owners[4]) == [500])
        #expect(times(owners[1]).isEmpty, "a disarmed deadline fired")
        #expect(times(owners[3]) == [2_000])
        #expect(times(owners[2]) == [3_000, 13_000])
        #expect(times(owners[0]) == [5_000])
        #expect(times(owners[5]).isEmpty, "a closed stream's deadline fired")
    }

    @Test func aGoAwayFromThePeerStopsNewStreams() throws {
        let pair = try DispatcherPair()
        try pair.server.send(.goAway(lastStreamID: .rootStream, errorCode: .noError, opaqueData: nil), on: .rootStream)
        try pair.interact()
        #expect(pair.dispatcher.isExhausted)
        #expect(pair.dispatcher.openStream(owner: RecordingOwner()) == nil)
    }
}

private let requestHeaders: HPACKHeaders = [":method": "GET", ":path": "/", ":scheme": "https", ":authority": "a.test"]

/// A client channel with NIOHTTP2 in frame mode under the dispatcher, and a NIOHTTP2 server
/// channel whose frames the test writes; ``interact()`` carries bytes both ways until both are
/// quiet.
private final class DispatcherPair {
    let client = EmbeddedChannel()
    let server: ServerSide
    let activity = HTTP2ConnectionActivity()
    let dispatcher: HTTP2StreamDispatcher

    init(serverMaxConcurrentStreams: Int = 100, firstStreamID: HTTP2StreamID = HTTP2StreamID(1)) throws {
        dispatcher = HTTP2StreamDispatcher(observer: activity, firstStreamID: firstStreamID)
        try client.pipeline.syncOperations.addHandler(NIOHTTP2Handler(mode: .client))
        try client.pipeline.syncOperations.addHandler(dispatcher)
        server = try ServerSide(maxConcurrentStreams: serverMaxConcurrentStreams)
        let address = try SocketAddress(ipAddress: "127.0.0.1", port: 1)
        try client.connect(to: address).wait()
        try server.channel.connect(to: address).wait()
        try interact()
    }

    func interact() throws {
        var moved = true
        while moved {
            moved = false
            while let bytes = try client.readOutbound(as: ByteBuffer.self) {
                try server.channel.writeInbound(bytes)
                moved = true
            }
            while let bytes = try server.channel.readOutbound(as: ByteBuffer.self) {
                try client.writeInbound(bytes)
                moved = true
            }
        }
    }
}

/// The server side of the dispatcher: a server channel with NIOHTTP2 in frame mode under a
/// dispatcher that accepts every stream (a ``RecordingOwner`` each), and a NIOHTTP2 client
/// channel whose frames the test writes and whose received frames it records.
private final class ServerDispatcherPair {
    let server = EmbeddedChannel()
    let client: ClientSide
    let dispatcher: HTTP2StreamDispatcher
    private(set) var accepted: [HTTP2FrameStream] = []
    private(set) var owners: [RecordingOwner] = []

    init(clientWindow: Int) throws {
        var accepted: (HTTP2FrameStream, RecordingOwner) -> Void = { _, _ in }
        dispatcher = HTTP2StreamDispatcher(observer: nil) { stream, headers in
            let owner = RecordingOwner()
            accepted(stream, owner)
            return (owner, .headers(headers))
        }
        client = try ClientSide(initialWindow: clientWindow)
        accepted = { [unowned self] stream, owner in
            self.accepted.append(stream)
            self.owners.append(owner)
        }
        try server.pipeline.syncOperations.addHandler(NIOHTTP2Handler(mode: .server))
        try server.pipeline.syncOperations.addHandler(dispatcher)
        let address = try SocketAddress(ipAddress: "127.0.0.1", port: 1)
        try server.connect(to: address).wait()
        try client.channel.connect(to: address).wait()
        try interact()
    }

    func interact() throws {
        var moved = true
        while moved {
            moved = false
            while let bytes = try server.readOutbound(as: ByteBuffer.self) {
                try client.channel.writeInbound(bytes)
                moved = true
            }
            while let bytes = try client.channel.readOutbound(as: ByteBuffer.self) {
                try server.writeInbound(bytes)
                moved = true
            }
        }
    }
}

private final class ClientSide: ChannelInboundHandler {
    typealias InboundIn = HTTP2Frame
    let channel = EmbeddedChannel()
    var bodyBytes = 0
    var ended = false
    var resets: [HTTP2ErrorCode] = []

    init(initialWindow: Int) throws {
        var configuration = NIOHTTP2Handler.ConnectionConfiguration()
        configuration.initialSettings = [HTTP2Setting(parameter: .initialWindowSize, value: initialWindow)]
        try channel.pipeline.syncOperations.addHandler(NIOHTTP2Handler(mode: .client, connectionConfiguration: configuration))
        try channel.pipeline.syncOperations.addHandler(self)
    }

    func open(_ id: HTTP2StreamID, ending: Bool) throws {
        channel.writeAndFlush(HTTP2Frame(streamID: id, payload: .headers(.init(headers: requestHeaders, endStream: ending))), promise: nil)
        try channel.throwIfErrorCaught()
    }

    /// Opens the stream's and the connection's windows by `amount`.
    func grant(_ amount: Int, on id: HTTP2StreamID) throws {
        channel.write(HTTP2Frame(streamID: id, payload: .windowUpdate(windowSizeIncrement: amount)), promise: nil)
        channel.writeAndFlush(HTTP2Frame(streamID: .rootStream, payload: .windowUpdate(windowSizeIncrement: amount)), promise: nil)
        try channel.throwIfErrorCaught()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data).payload {
        case .data(let data):
            bodyBytes += data.data.readableBytes
            if data.endStream { ended = true }
        case .headers(let headers):
            if headers.endStream { ended = true }
        case .rstStream(let code):
            resets.append(code)
        default:
            break
        }
    }
}

private final class ServerSide {
    let channel = EmbeddedChannel()
    private let recorder = FrameRecorder()

    init(maxConcurrentStreams: Int) throws {
        var configuration = NIOHTTP2Handler.ConnectionConfiguration()
        configuration.initialSettings = [
            HTTP2Setting(parameter: .maxConcurrentStreams, value: maxConcurrentStreams),
            HTTP2Setting(parameter: .initialWindowSize, value: 65_535),
        ]
        try channel.pipeline.syncOperations.addHandler(
            NIOHTTP2Handler(mode: .server, connectionConfiguration: configuration))
        try channel.pipeline.syncOperations.addHandler(recorder)
    }

    /// The streams the client opened, in order.
    var streamIDs: [HTTP2StreamID] { recorder.streamIDs }

    /// Writes a frame without waiting for it: NIOHTTP2 holds DATA beyond the client's window.
    func send(_ payload: HTTP2Frame.FramePayload, on id: HTTP2StreamID) throws {
        channel.writeAndFlush(HTTP2Frame(streamID: id, payload: payload), promise: nil)
        try channel.throwIfErrorCaught()
    }
}

private final class FrameRecorder: ChannelInboundHandler {
    typealias InboundIn = HTTP2Frame
    var streamIDs: [HTTP2StreamID] = []

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let frame = unwrapInboundIn(data)
        if case .headers = frame.payload, !streamIDs.contains(frame.streamID) { streamIDs.append(frame.streamID) }
    }
}

private final class RecordingOwner: HTTP2FrameStreamOwner {
    var received: [HTTP2Frame.FramePayload] = []
    var bodyBytes = 0
    var ended = false
    var closedReason: HTTP2ErrorCode??

    func streamReceived(_ payload: HTTP2Frame.FramePayload) {
        received.append(payload)
        switch payload {
        case .data(let data):
            bodyBytes += data.data.readableBytes
            if data.endStream { ended = true }
        case .headers(let headers):
            if headers.endStream { ended = true }
        default:
            break
        }
    }

    func streamReadComplete() {}
    func streamWritable() {}

    func streamClosed(reason: HTTP2ErrorCode?) {
        closedReason = .some(reason)
    }

    /// When each deadline passed (the loop's clock), and what to do then.
    var deadlinesPassed: [NIODeadline] = []
    var onDeadline: (() -> Void)?
    var clock: (() -> NIODeadline)?

    func streamDeadlinePassed() {
        deadlinesPassed.append(clock?() ?? .now())
        onDeadline?()
    }
}
