import NIOCore
import NIOHPACK
import NIOHTTP1
import NIOHTTP2
import StarlingCore
import Synchronization
import Testing

@testable import StarlingProxy

/// The exchange every front end forwards with (outbound HTTP/1, h2c/gRPC, the gateway), driven
/// without a channel: what it asks for, what it holds, what it retries, and that each pick's
/// outcome reaches the balancer exactly once.
struct UpstreamExchangeTests {
    /// The outcomes reported for the picks it made, as `PORT:OUTCOME` (and `@LATENCY` where the
    /// outcome has one).
    final class Reports: Sendable {
        private let outcomes = Mutex<[(endpoint: Int, outcome: String)]>([])
        private let latencies = Mutex<[Duration]>([])

        func pick(_ port: Int, timeout: Duration = .seconds(10)) -> Pick {
            Pick(
                endpoint: Endpoint(host: "127.0.0.1", port: port, identity: .init(namespace: "test", serviceAccount: "web")),
                backend: "web.test:80", timeout: timeout,
                complete: { outcome in
                    let name: String
                    switch outcome {
                    case .success(let latency):
                        name = "success"
                        self.latencies.withLock { $0.append(latency) }
                    case .failure(let latency):
                        name = "failure"
                        self.latencies.withLock { $0.append(latency) }
                    case .abandoned:
                        name = "abandoned"
                    }
                    self.outcomes.withLock { $0.append((port, name)) }
                })
        }

        var all: [String] { outcomes.withLock { $0.map { "\($0.endpoint):\($0.outcome)" } } }
        /// The latencies reported with successes and failures, in order.
        var reportedLatencies: [Duration] { latencies.withLock { $0 } }
    }

    let reports = Reports()
    let start = ContinuousClock.now

    private func body(_ text: String, ends: Bool = false) -> HTTP2Frame.FramePayload {
        .data(.init(data: .byteBuffer(ByteBuffer(string: text)), endStream: ends))
    }

    /// Picks `port` and opens its stream; the exchange is then streaming.
    private func open(_ exchange: inout UpstreamExchange, port: Int, timeout: Duration = .seconds(10)) -> UpstreamExchange.OpenedAction {
        guard case .connect = exchange.picked(.success(reports.pick(port, timeout: timeout)), now: start) else {
            Issue.record("a pick did not lead to a connect")
            return .discard
        }
        let opened = exchange.streamOpened()
        if case .discard = opened { Issue.record("the stream opened for a live exchange was discarded") }
        return opened
    }

    @Test func aBodyThatArrivesWhileConnectingIsHeldAndSentInOrderWhenTheStreamOpens() {
        var exchange = UpstreamExchange(authority: "web.test:80", method: .POST, hasBody: true, requestEnded: false)
        #expect(exchange.phase == .picking)
        guard case .connect(_, let timeout) = exchange.picked(.success(reports.pick(1)), now: start) else {
            Issue.record("no connect")
            return
        }
        #expect(timeout == .seconds(10))
        guard case .hold = exchange.requestReceived(body("a"), ends: false),
            case .hold = exchange.requestReceived(body("b", ends: true), ends: true)
        else {
            Issue.record("parts before the stream were not held")
            return
        }
        #expect(exchange.heldCount == 2)
        guard case .send(_, let held, let armTimeout) = exchange.streamOpened() else {
            Issue.record("the open stream got nothing to send")
            return
        }
        #expect(held.count == 2)
        if case .data(let first) = held[0], case .byteBuffer(let buffer) = first.data {
            #expect(String(buffer: buffer) == "a")
        } else {
            Issue.record("the first held part is not the first body part")
        }
        // The request ended before the stream opened: the response timeout starts now.
        #expect(armTimeout == TimeAmount.seconds(10))
        #expect(exchange.heldCount == 0)
    }

    @Test func aBodyThatArrivesWhileTheFrontAdmitsTheRequestIsHeldUntilTheStreamOpens() {
        var exchange = UpstreamExchange(authority: nil, method: .POST, hasBody: true, requestEnded: false)
        #expect(exchange.phase == .admitting)
        guard case .hold = exchange.requestReceived(body("a", ends: true), ends: true) else {
            Issue.record("a part during admission was not held")
            return
        }
        // Nothing is picked before the front has said where the request goes.
        guard case .ignore = exchange.picked(.success(reports.pick(9)), now: start) else {
            Issue.record("a pick during admission was taken")
            return
        }
        exchange.admitted(authority: "web.test:80")
        #expect(exchange.authority == "web.test:80")
        #expect(exchange.phase == .picking)
        guard case .send(_, let held, let armTimeout) = open(&exchange, port: 1) else {
            Issue.record("no send")
            return
        }
        #expect(held.count == 1)
        #expect(armTimeout == TimeAmount.seconds(10))
        #expect(reports.all == ["9:abandoned"])
    }

    @Test func theResponseTimeoutStartsWhenTheRequestEndsNotWhenTheStreamOpens() {
        var exchange = UpstreamExchange(authority: "web.test:80", method: .POST, hasBody: true, requestEnded: false)
        guard case .send(_, _, let armAtOpen) = open(&exchange, port: 1) else {
            Issue.record("no send")
            return
        }
        #expect(armAtOpen == nil)
        guard case .write(let armMidBody) = exchange.requestReceived(body("a"), ends: false),
            case .write(let armAtEnd) = exchange.requestReceived(body("b", ends: true), ends: true)
        else {
            Issue.record("parts on an open stream were not written")
            return
        }
        #expect(armMidBody == nil)
        #expect(armAtEnd == TimeAmount.seconds(10))
        // What follows the end is not part of the request.
        guard case .drop = exchange.requestReceived(body("c"), ends: false) else {
            Issue.record("a part after the end was taken")
            return
        }
    }

    @Test func aFinalResponseIsReportedOnceAsSuccessOrAsFailureFor5xx() {
        for (status, expected) in [(200, "1:success"), (503, "1:failure")] {
            let reports = Reports()
            var exchange = UpstreamExchange(authority: "web.test:80", method: .GET, hasBody: false, requestEnded: true)
            _ = exchange.picked(.success(reports.pick(1)), now: start)
            _ = exchange.streamOpened()
            guard case .interim = exchange.responseHeadReceived(status: 100),
                case .forward = exchange.responseHeadReceived(status: status)
            else {
                Issue.record("heads were not told apart")
                return
            }
            guard case .finish(_, let finalStatus, let latency, let resetStream) = exchange.responseEnded(now: start + .milliseconds(5))
            else {
                Issue.record("the end did not finish the exchange")
                return
            }
            #expect(finalStatus == status)
            #expect(latency == .milliseconds(5))
            #expect(reports.reportedLatencies == [.milliseconds(5)])
            #expect(!resetStream)
            #expect(exchange.phase == .finished)
            // Late events change nothing and report nothing more.
            _ = exchange.streamFailed(ProxyError(.upstreamProtocol, "late"), now: start)
            #expect(exchange.clientClosed() == false)
            #expect(reports.all == [expected])
        }
    }

    @Test func aRefusedConnectIsTriedElsewhereThenTheLastFailureIsAnswered() {
        var exchange = UpstreamExchange(authority: "web.test:80", method: .POST, hasBody: true, requestEnded: true)
        var attempts = 0
        var answered: ProxyError?
        while answered == nil {
            attempts += 1
            guard case .connect = exchange.picked(.success(reports.pick(attempts)), now: start) else {
                Issue.record("no connect")
                return
            }
            switch exchange.connectFailed(ProxyError(.connectFailed, "refused \(attempts)"), now: start) {
            case .pick:
                // Each failed endpoint is avoided by the next pick; a POST is safe here: nothing was sent.
                #expect(exchange.avoided.map(\.port) == Array(1...attempts))
            case .respond(let error, let pick):
                answered = error
                #expect(pick.endpoint.port == attempts)
            case .ignore:
                Issue.record("a connect failure was ignored")
                return
            }
        }
        #expect(attempts == ConnectAttempts.maximum)
        #expect(answered?.message == "refused \(ConnectAttempts.maximum)")
        #expect(reports.all == ["1:failure", "2:failure", "3:failure"])
    }

    /// A lone endpoint that refuses (a process restarting) is tried again after each backoff
    /// (0.1 to 2.5 s), the failed endpoint no longer avoided; when the backoffs are spent the connect
    /// failure is answered, not the empty pick.
    @Test func aRePickThatFindsNothingTriesAgainAfterABackoffThenAnswersTheConnectFailure() {
        var exchange = UpstreamExchange(authority: "web.test:80", method: .GET, hasBody: false, requestEnded: true)
        let noneLeft = ProxyError(.noEndpoints, "no endpoint left")
        var now = start
        for (attempt, backoff) in zip(1..., ConnectAttempts.backoffs) {
            _ = exchange.picked(.success(reports.pick(1)), now: now)
            guard case .pick = exchange.connectFailed(ProxyError(.connectFailed, "refused \(attempt)", transient: true), now: now) else {
                Issue.record("no re-pick after attempt \(attempt)")
                return
            }
            #expect(exchange.avoided.map(\.port) == [1])
            guard case .pickAfter(let wait) = exchange.picked(.failure(noneLeft), now: now) else {
                Issue.record("no backoff after attempt \(attempt)")
                return
            }
            #expect(wait == backoff)
            #expect(exchange.avoided.isEmpty)
            #expect(exchange.phase == .picking)
            now += wait
        }
        #expect(now - start == .milliseconds(5500))
        let last = ConnectAttempts.backoffs.count + 1
        _ = exchange.picked(.success(reports.pick(1)), now: now)
        guard case .pick = exchange.connectFailed(ProxyError(.connectFailed, "refused \(last)", transient: true), now: now) else {
            Issue.record("no re-pick after the last backoff's attempt")
            return
        }
        guard case .respond(let error, let pick) = exchange.picked(.failure(noneLeft), now: now) else {
            Issue.record("the last failed attempt was not answered")
            return
        }
        #expect(error.message == "refused \(last)")
        #expect(pick == nil)
        #expect(reports.all == Array(repeating: "1:failure", count: last))
    }

    /// A peer that failed verification is not waited for: the failure is answered at once.
    @Test func noBackoffForAPeerThatFailedVerification() {
        var exchange = UpstreamExchange(authority: "web.test:80", method: .GET, hasBody: false, requestEnded: true)
        _ = exchange.picked(.success(reports.pick(1)), now: start)
        _ = exchange.connectFailed(ProxyError(.peerIdentityRejected, "another identity"), now: start)
        guard case .respond(let error, _) = exchange.picked(.failure(ProxyError(.noEndpoints, "none")), now: start) else {
            Issue.record("a backoff after a rejected identity")
            return
        }
        #expect(error.code == .peerIdentityRejected)
    }

    /// Many endpoints that all refuse: ``ConnectAttempts/maximum`` attempts, no backoff (one is
    /// taken only when no other endpoint is left).
    @Test func connectAttemptsAreBoundedWhateverTheEndpoints() {
        var attempts = ConnectAttempts(started: start, timeout: .seconds(30))
        var tries = 0
        var port = 0
        while true {
            tries += 1
            port += 1
            guard attempts.failed(Endpoint(host: "127.0.0.1", port: port, identity: nil), now: start) else { break }
        }
        #expect(tries == ConnectAttempts.maximum)
    }

    /// No backoff that would end past the request's deadline: the failure is answered at once.
    @Test func noBackoffPastTheDeadline() {
        var exchange = UpstreamExchange(authority: "web.test:80", method: .GET, hasBody: false, requestEnded: true)
        _ = exchange.picked(.success(reports.pick(1, timeout: .milliseconds(150))), now: start)
        _ = exchange.connectFailed(ProxyError(.connectFailed, "refused", transient: true), now: start + .milliseconds(60))
        guard case .respond(let error, let pick) = exchange.picked(.failure(ProxyError(.noEndpoints, "none")), now: start + .milliseconds(60))
        else {
            Issue.record("a backoff past the deadline")
            return
        }
        #expect(error.message == "refused")
        #expect(pick == nil)
    }

    @Test func aBrokenStreamBeforeAnyAnswerIsRetriedOnlyWhenTheRequestCanBeSentAgain() {
        // A GET without a body: sent again elsewhere.
        var get = UpstreamExchange(authority: "web.test:80", method: .GET, hasBody: false, requestEnded: true)
        _ = open(&get, port: 1)
        guard case .retry(let failed) = get.streamFailed(ProxyError(.upstreamProtocol, "reset"), now: start) else {
            Issue.record("a GET was not retried")
            return
        }
        #expect(failed.endpoint.port == 1)
        #expect(get.phase == .picking)
        #expect(get.avoided.map(\.port) == [1])
        guard case .send(_, let held, let armTimeout) = open(&get, port: 2) else {
            Issue.record("no send after the retry's pick")
            return
        }
        #expect(held.isEmpty)
        #expect(armTimeout != nil)

        // A POST (even without a body) is not: the answer is the failure.
        var post = UpstreamExchange(authority: "web.test:80", method: .POST, hasBody: false, requestEnded: true)
        _ = open(&post, port: 3)
        guard case .respond(_, let pick) = post.streamFailed(ProxyError(.upstreamProtocol, "reset"), now: start) else {
            Issue.record("a POST was retried")
            return
        }
        #expect(pick.endpoint.port == 3)

        // A GET with a body is not either: the body is gone.
        var withBody = UpstreamExchange(authority: "web.test:80", method: .GET, hasBody: true, requestEnded: true)
        _ = open(&withBody, port: 4)
        guard case .respond = withBody.streamFailed(ProxyError(.upstreamProtocol, "reset"), now: start) else {
            Issue.record("a GET with a body was retried")
            return
        }
        #expect(reports.all == ["1:failure", "3:failure", "4:failure"])
    }

    @Test func aStreamThatBreaksAfterTheResponseHeadBreaksOffTheClientsSide() {
        var exchange = UpstreamExchange(authority: "web.test:80", method: .GET, hasBody: false, requestEnded: true)
        _ = open(&exchange, port: 1)
        _ = exchange.responseHeadReceived(status: 200)
        guard case .breakOff = exchange.streamFailed(ProxyError(.upstreamProtocol, "reset"), now: start) else {
            Issue.record("a broken response was not broken off")
            return
        }
        #expect(reports.all == ["1:failure"])
    }

    /// The deadline itself is the front end's (armed as the exchange says); the exchange decides
    /// whether it still means a timeout, and reports the time the attempt took.
    @Test func aDeadlineThatPassesBeforeTheHeadIsATimeoutAndAfterItNothing() {
        var exchange = UpstreamExchange(authority: "web.test:80", method: .GET, hasBody: false, requestEnded: true)
        _ = open(&exchange, port: 1, timeout: .milliseconds(250))
        guard let (error, pick) = exchange.timedOut(now: start + .milliseconds(250)) else {
            Issue.record("no timeout")
            return
        }
        #expect(error.code == .timeout)
        #expect(pick.endpoint.port == 1)
        #expect(error.message == "no response within 0.25 seconds")
        #expect(exchange.timedOut(now: start) == nil)

        var answered = UpstreamExchange(authority: "web.test:80", method: .GET, hasBody: false, requestEnded: true)
        _ = open(&answered, port: 2)
        _ = answered.responseHeadReceived(status: 200)
        #expect(answered.timedOut(now: start + .seconds(60)) == nil)
        #expect(reports.all == ["1:failure"])
        #expect(reports.reportedLatencies == [.milliseconds(250)])
    }

    @Test func aRetriedRequestReportsEachAttemptOnceWithItsOwnLatency() {
        var exchange = UpstreamExchange(authority: "web.test:80", method: .GET, hasBody: false, requestEnded: true)
        var attempt = 0
        while true {
            attempt += 1
            let opened = start + .milliseconds(100 * attempt)
            _ = exchange.picked(.success(reports.pick(attempt)), now: opened)
            _ = exchange.streamOpened()
            let action = exchange.streamFailed(ProxyError(.upstreamProtocol, "reset \(attempt)"), now: opened + .milliseconds(attempt))
            if case .retry = action { continue }
            guard case .respond(let error, let pick) = action else {
                Issue.record("the last failure was not answered")
                return
            }
            #expect(error.message == "reset \(attempt)")
            #expect(pick.endpoint.port == attempt)
            break
        }
        #expect(attempt == ConnectAttempts.maximum)
        #expect(reports.all == ["1:failure", "2:failure", "3:failure"])
        #expect(reports.reportedLatencies == [.milliseconds(1), .milliseconds(2), .milliseconds(3)])
        #expect(exchange.clientClosed() == false)
        #expect(reports.all.count == 3)
    }

    @Test func aClientThatLeavesWhileStreamingAbandonsThePickAndResetsTheStream() {
        var exchange = UpstreamExchange(authority: "web.test:80", method: .POST, hasBody: true, requestEnded: false)
        _ = open(&exchange, port: 1)
        let resetStream = exchange.clientClosed()
        #expect(resetStream)
        #expect(exchange.phase == .finished)
        guard case .ignore = exchange.responseEnded(now: start) else {
            Issue.record("an abandoned exchange finished")
            return
        }
        #expect(reports.all == ["1:abandoned"])
    }

    @Test func aClientThatLeavesWhileConnectingAbandonsThePickAndTheLateStreamIsDiscarded() {
        var exchange = UpstreamExchange(authority: "web.test:80", method: .GET, hasBody: false, requestEnded: true)
        _ = exchange.picked(.success(reports.pick(1)), now: start)
        #expect(exchange.clientClosed() == false)
        guard case .discard = exchange.streamOpened() else {
            Issue.record("a stream opened for nobody was kept")
            return
        }
        guard case .ignore = exchange.connectFailed(ProxyError(.connectFailed, "late"), now: start) else {
            Issue.record("a late connect failure was acted on")
            return
        }
        #expect(reports.all == ["1:abandoned"])
    }

    @Test func aPickThatArrivesAfterTheClientLeftIsReportedAbandoned() {
        var exchange = UpstreamExchange(authority: "web.test:80", method: .GET, hasBody: false, requestEnded: true)
        #expect(exchange.clientClosed() == false)
        guard case .ignore = exchange.picked(.success(reports.pick(7)), now: start) else {
            Issue.record("a pick for nobody was connected")
            return
        }
        #expect(reports.all == ["7:abandoned"])
    }

    @Test func aResponseBeforeTheRequestEndedResetsTheStream() {
        var exchange = UpstreamExchange(authority: "web.test:80", method: .POST, hasBody: true, requestEnded: false)
        _ = open(&exchange, port: 1)
        _ = exchange.requestReceived(body("partial"), ends: false)
        _ = exchange.responseHeadReceived(status: 413)
        guard case .finish(_, _, _, let resetStream) = exchange.responseEnded(now: start) else {
            Issue.record("no finish")
            return
        }
        #expect(resetStream)
        #expect(!exchange.requestEnded)
        #expect(reports.all == ["1:success"])
    }
}
