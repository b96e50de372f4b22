import Logging
import NIOCore
import NIOHPACK
import NIOHTTP1
import NIOHTTP2

/// Forwards one HTTP/2 stream's request to the application over a pooled HTTP/1.1 connection,
/// and relays the response back.
///
/// It converts between the stream's frames and HTTP/1 parts itself; the response's last frame
/// carries END_STREAM (``HTTP1ResponseFramer``).
///
/// Bodies stream both ways with backpressure: the stream's credit flows only while the
/// application connection is writable, and the application is read only while the stream is
/// writable.
final class InboundHTTP1Forwarder: HTTP2FrameStreamOwner, HTTP1AppConnectionOwner {
    private let stream: HTTP2FrameStream
    private let environment: InboundStreamEnvironment
    private let appPort: Int
    private var logger: Logger
    private var recorder: InboundRequestRecorder
    private var machine = InboundHTTP1ForwardStateMachine()
    private var app: (channel: any Channel, handler: HTTP1AppConnectionHandler)?
    private var responseKeepAlive = true
    /// A read is owed to the application once the stream drains.
    private var appReadWaiting = false
    /// Whether the request head has arrived (a later HEADERS frame carries trailers).
    private var requestHeadSeen = false
    /// Whether the caller ended its side of the stream.
    private var requestEnded = false
    /// The response in frames, the last one held until the next part or the end of the read.
    private var framer = HTTP1ResponseFramer()

    init(
        stream: HTTP2FrameStream, environment: InboundStreamEnvironment, appPort: Int, recorder: InboundRequestRecorder,
        logger: Logger
    ) {
        self.stream = stream
        self.environment = environment
        self.appPort = appPort
        self.logger = logger
        self.recorder = recorder
        // Nothing takes the request's body until the application connection is there.
        stream.isReceiving = false
    }

    // MARK: - Stream side

    func streamReceived(_ payload: HTTP2Frame.FramePayload) {
        switch payload {
        case .headers(let headers) where !requestHeadSeen:
            requestHeadSeen = true
            if headers.endStream { requestEnded = true }
            let head: HTTPRequestHead
            do {
                head = try HTTPHeadConversion.http1RequestHead(from: headers.headers, hasBody: !headers.endStream)
            } catch {
                respondWithError(ProxyError(.badRequest, "\(error)"))
                return
            }
            received(.head(head))
            if headers.endStream { received(.end(nil)) }
        case .headers(let trailers):
            requestEnded = true
            received(.end(HTTPHeadConversion.http1Trailers(from: trailers.headers)))
        case .data(let data):
            if data.endStream { requestEnded = true }
            if case .byteBuffer(let body) = data.data, body.readableBytes > 0 {
                received(.body(body))
            }
            if data.endStream { received(.end(nil)) }
        default:
            break
        }
    }

    private func received(_ part: HTTPServerRequestPart) {
        switch machine.requestReceived(part) {
        case .connect:
            connect()
        case .hold, .drop:
            break
        case .forward(let part):
            app?.handler.send(clientPart(part))
        }
    }

    func streamReadComplete() {
        guard let app else { return }
        app.handler.flush()
        updateReceiving()
    }

    func streamWritable() {
        if appReadWaiting {
            appReadWaiting = false
            app?.handler.read()
        }
    }

    func streamClosed(reason: HTTP2ErrorCode?) {
        // Only an exchange still under way makes the app connection unusable. The stream also
        // closes once its last response frame is written (`finish`), after the connection went
        // back to the pool: closing it then would cost one TCP connection to the app per request.
        if machine.streamClosed(), let app {
            // The stream ended before its exchange finished: the app connection may hold half
            // of it, so it is closed — never left leased and open (that leaked connections).
            app.handler.endLease()
            app.channel.close(promise: nil)
            self.app = nil
        }
    }

    /// The stream's credit flows while the request body is wanted and the application connection
    /// can take it.
    private func updateReceiving() {
        stream.isReceiving = machine.wantsRequestBody && (app?.handler.isWritable ?? false)
    }

    // MARK: - Connecting

    private func connect() {
        let pool = environment.http1Pool
        let eventLoop = stream.eventLoop
        if let channel = pool.idleConnection(host: environment.configuration.appHost, port: appPort, on: eventLoop) {
            connected(channel)
            return
        }
        let loopBound = NIOLoopBound(self, eventLoop: eventLoop)
        pool.connect(host: environment.configuration.appHost, port: appPort, on: eventLoop).whenComplete { result in
            let forwarder = loopBound.value
            switch result {
            case .success(let channel):
                forwarder.connected(channel)
            case .failure(let error):
                forwarder.connectFailed(error)
            }
        }
    }

    private func connected(_ channel: any Channel) {
        switch machine.connected() {
        case .discard:
            channel.close(promise: nil)
        case .send(let held, let readMore):
            let handler: HTTP1AppConnectionHandler
            do {
                handler = try channel.pipeline.syncOperations.handler(type: HTTP1AppConnectionHandler.self)
            } catch {
                channel.close(promise: nil)
                _ = machine.appFailed()
                respondWithError(ProxyError(.connectFailed, "the application connection is unusable"))
                return
            }
            handler.lease(to: self)
            app = (channel, handler)
            for part in held { handler.send(clientPart(part)) }
            handler.flush()
            handler.read()
            if readMore { updateReceiving() }
        }
    }

    private func connectFailed(_ error: any Error) {
        guard machine.connectFailed() else { return }
        let host = environment.configuration.appHost
        logger.debug("connecting to the application failed", metadata: ["error": "\(error)"])
        respondWithError(
            ProxyError(.connectFailed, "connecting to the application at \(host):\(appPort) failed: \(error)"))
    }

    // MARK: - Application side

    func appReceived(_ part: HTTPClientResponsePart) {
        if case .head(let head) = part {
            responseKeepAlive = head.isKeepAlive
        }
        switch machine.responseReceived(part, keepAlive: responseKeepAlive) {
        case .drop:
            break
        case .forward(let part):
            write(part)
        case .finish(let part, let disposal, _):
            // The end's frame goes out with `writeLast`: a caller still sending a body nobody
            // will read (the machine's `resetStream`) is asked to stop without an error (RFC
            // 9113, 8.1) once that frame went out; a reset now would drop the frames still
            // waiting for its window.
            write(part)
            finishExchange(disposal)
            stream.flush()
        }
    }

    func appReadComplete() {
        writeHeldResponse()
        stream.flush()
        guard machine.wantsResponse else { return }
        if stream.isWritable {
            app?.handler.read()
        } else {
            appReadWaiting = true
        }
    }

    func appWritabilityChanged(isWritable: Bool) {
        updateReceiving()
    }

    func appFailed(_ error: (any Error)?) {
        let app = self.app
        self.app = nil
        app?.channel.close(promise: nil)
        switch machine.appFailed() {
        case .none:
            break
        case .respondWithError:
            let reason = error.map { "\($0)" } ?? "it closed the connection"
            logger.debug("the application failed before responding", metadata: ["error": "\(reason)"])
            respondWithError(ProxyError(.upstreamProtocol, "the application failed before responding: \(reason)"))
        case .resetStream:
            stream.reset(.cancel)
        }
    }

    // MARK: - Helpers

    /// Writes what `part` releases of the response (``HTTP1ResponseFramer``); its last frame
    /// with ``HTTP2FrameStream/writeLast(_:)``.
    private func write(_ part: HTTPClientResponsePart) {
        if case .head(let head) = part { recorder.responded(status: Int(head.status.code)) }
        let (released, last) = framer.push(part)
        if let released { stream.write(released) }
        if let last { stream.writeLast(last) }
    }

    private func writeHeldResponse() {
        if let held = framer.release() { stream.write(held) }
    }

    private func finishExchange(_ disposal: InboundHTTP1ForwardStateMachine.Disposal) {
        guard let app else { return }
        self.app = nil
        app.handler.endLease()
        switch disposal {
        case .reuse:
            environment.http1Pool.release(app.channel, host: environment.configuration.appHost, port: appPort)
        case .close:
            app.channel.close(promise: nil)
        }
    }

    private func respondWithError(_ error: ProxyError) {
        recorder.responded(status: error.httpStatus)
        _ = framer.release()
        stream.respond(with: error, requestEnded: requestEnded)
    }
}

@available(*, unavailable)
extension InboundHTTP1Forwarder: Sendable {}

/// The same request part, typed for an HTTP/1 client pipeline.
private func clientPart(_ part: HTTPServerRequestPart) -> HTTPClientRequestPart {
    switch part {
    case .head(let head): .head(head)
    case .body(let body): .body(.byteBuffer(body))
    case .end(let trailers): .end(trailers)
    }
}
