import Logging
import NIOCore
import NIOHPACK
import NIOHTTP2

/// Forwards one inbound HTTP/2 stream to a stream on the application's h2c connection and relays
/// the response — headers, data and trailers (gRPC's status lives there) — back.
///
/// Frames move one for one with backpressure: the caller's stream gets credit only while the
/// application stream is writable, and the application stream is read only while the caller's
/// is. Frames that arrive while the application stream is being opened are held (at most one
/// stream window: credit is withheld meanwhile).
final class InboundHTTP2Forwarder: HTTP2FrameStreamOwner, InboundHTTP2AppOwner {
    private enum State {
        case connecting(held: [HTTP2Frame.FramePayload])
        case forwarding(InboundAppHTTP2StreamHandler)
        case done
    }

    private let stream: HTTP2FrameStream
    private let environment: InboundStreamEnvironment
    private let appPort: Int
    private let logger: Logger
    private var recorder: InboundRequestRecorder
    private var state: State = .connecting(held: [])
    private var requestEnded = false
    private var responseStarted = false
    private var responseEnded = false
    private var appReadWaiting = false
    private var connectStarted = false

    init(
        stream: HTTP2FrameStream, environment: InboundStreamEnvironment, appPort: Int, recorder: InboundRequestRecorder,
        logger: Logger
    ) {
        self.stream = stream
        self.environment = environment
        self.appPort = appPort
        self.logger = logger
        self.recorder = recorder
        stream.isReceiving = false
    }

    // MARK: - Caller side

    func streamReceived(_ payload: HTTP2Frame.FramePayload) {
        if Self.endsStream(payload) { requestEnded = true }
        switch state {
        case .connecting(var held):
            held.append(payload)
            state = .connecting(held: held)
            if !connectStarted {
                connectStarted = true
                connect()
            }
        case .forwarding(let app):
            app.send(payload)
        case .done:
            break
        }
    }

    func streamReadComplete() {
        guard case .forwarding(let app) = state else { return }
        app.flush()
        stream.isReceiving = !requestEnded && app.isWritable
    }

    func streamWritable() {
        if appReadWaiting, case .forwarding(let app) = state {
            appReadWaiting = false
            app.read()
        }
    }

    func streamClosed(reason: HTTP2ErrorCode?) {
        // The caller went away in the middle of the response: a gRPC call waiting for its status
        // is counted as the caller saw it, CANCELLED.
        if responseStarted, !responseEnded { recorder.responseEnded(last: nil, cancelledByCaller: true) }
        if case .forwarding(let app) = state {
            // Closing an open stream resets it; a finished one is already closed.
            app.close()
        }
        state = .done
    }

    // MARK: - Opening the application stream

    private func connect() {
        let eventLoop = stream.eventLoop
        let loopBound = NIOLoopBound(self, eventLoop: eventLoop)
        environment.http2Connections.openStream(port: appPort, on: eventLoop) { stream in
            stream.eventLoop.makeCompletedFuture {
                try stream.syncOptions?.setOption(ChannelOptions.autoRead, value: false)
                let handler = InboundAppHTTP2StreamHandler(owner: loopBound.value)
                try stream.pipeline.syncOperations.addHandler(handler)
            }
        }.whenComplete { result in
            let forwarder = loopBound.value
            switch result {
            case .success(let stream):
                forwarder.opened(stream)
            case .failure(let error):
                forwarder.openFailed(error)
            }
        }
    }

    private func opened(_ appStream: any Channel) {
        guard case .connecting(let held) = state,
            let app = try? appStream.pipeline.syncOperations.handler(type: InboundAppHTTP2StreamHandler.self)
        else {
            appStream.close(promise: nil)
            return
        }
        state = .forwarding(app)
        for payload in held { app.send(payload) }
        app.flush()
        app.read()
        stream.isReceiving = !requestEnded && app.isWritable
    }

    private func openFailed(_ error: any Error) {
        guard case .connecting = state else { return }
        state = .done
        let host = environment.configuration.appHost
        logger.debug("opening an HTTP/2 stream to the application failed", metadata: ["error": "\(error)"])
        respondWithError(
            ProxyError(.connectFailed, "connecting to the application at \(host):\(appPort) failed: \(error)"))
    }

    // MARK: - Application side

    func appReceived(_ payload: HTTP2Frame.FramePayload) {
        guard case .forwarding = state, Self.isRelayed(payload) else { return }
        // Interim (1xx) responses are relayed as they are; the final status is the one recorded.
        let ends = Self.endsStream(payload)
        if case .headers(let headers) = payload, !responseStarted,
            let status = headers.headers.first(name: ":status").flatMap(Int.init), status >= 200
        {
            responseStarted = true
            recorder.responseHead(status: status, last: ends ? payload : nil)
        }
        guard ends else {
            stream.write(payload)
            return
        }
        recorder.responseEnded(last: payload)
        // The last frame may close the stream as it is written, and with it this exchange
        // (no read-complete follows): it goes out at once.
        responseEnded = true
        // A caller still sending is reset with NO_ERROR once this frame went out (`writeLast`).
        stream.writeLast(payload)
        stream.flush()
    }

    func appReadComplete() {
        stream.flush()
        guard case .forwarding(let app) = state, !responseEnded else { return }
        if stream.isWritable {
            app.read()
        } else {
            appReadWaiting = true
        }
    }

    func appWritabilityChanged(isWritable: Bool) {
        guard case .forwarding = state else { return }
        stream.isReceiving = isWritable && !requestEnded
    }

    func appClosed(_ error: (any Error)?) {
        guard case .forwarding = state else { return }
        state = .done
        if responseEnded {
            // The application's close can come before the end of its read: what it sent last
            // goes out now. A caller still sending is asked to stop without an error once that
            // last frame went out (`writeLast`), not before: its frames may wait for its window.
            stream.flush()
            return
        }
        if responseStarted {
            recorder.responseEnded(last: nil)
            stream.reset(.cancel)
        } else {
            let reason = error.map { "\($0)" } ?? "the application reset the stream"
            respondWithError(ProxyError(.upstreamProtocol, "the application failed before responding: \(reason)"))
        }
    }

    // MARK: - Helpers

    private func respondWithError(_ error: ProxyError) {
        recorder.responded(status: error.httpStatus)
        stream.respond(with: error, requestEnded: requestEnded)
    }

    /// Only HEADERS and DATA carry the exchange; NIOHTTP2 handles the rest itself.
    static func isRelayed(_ payload: HTTP2Frame.FramePayload) -> Bool {
        switch payload {
        case .headers, .data: true
        default: false
        }
    }

    static func endsStream(_ payload: HTTP2Frame.FramePayload) -> Bool {
        switch payload {
        case .headers(let headers): headers.endStream
        case .data(let data): data.endStream
        default: false
        }
    }
}

@available(*, unavailable)
extension InboundHTTP2Forwarder: Sendable {}
