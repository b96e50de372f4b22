import Logging
public import NIOCore
public import NIOHTTP2
public import NIOPosix
import StarlingCore
import Synchronization

/// The HTTP/2 connections to peer proxies: one per endpoint (address + expected identity) and
/// event loop, shared by all requests to that endpoint from that loop, opened on first use,
/// replaced when closed or GOAWAY'd, and closed by the peer connection itself after
/// `idleTimeout` without streams.
///
/// One connection per event loop (as Envoy keeps one pool per worker thread): a request's client
/// connection and its upstream stream then live on the same thread, so relaying a request costs
/// no thread hop. With N loops a busy peer sees up to N connections from this proxy.
///
/// Concurrent first requests to an endpoint on one loop share one dial.
public final class PeerConnectionPool: Sendable {
    struct Key: Hashable {
        var host: String
        var port: Int
        var identity: MeshIdentity
        var loop: ObjectIdentifier
    }

    private enum Entry {
        case connecting(EventLoopFuture<PeerConnection>)
        case ready(PeerConnection)
    }

    private struct State {
        var entries: [Key: Entry] = [:]
        var closed = false
    }

    private let dialer: PeerDialer
    private let group: any EventLoopGroup
    private let idleTimeout: TimeAmount
    private let configuration: NIOHTTP2Handler.Configuration
    private let state = Mutex(State())

    public init(
        dialer: PeerDialer, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        idleTimeout: Duration = .seconds(60), configuration: NIOHTTP2Handler.Configuration? = nil
    ) {
        self.dialer = dialer
        self.group = group
        self.idleTimeout = TimeAmount(idleTimeout)
        self.configuration = configuration ?? HTTP2Limits.configuration()
    }

    /// A usable connection to `endpoint` (which must be meshed), dialing when there is none.
    public func connection(to endpoint: Endpoint, timeout: Duration? = nil) async throws(ProxyError) -> PeerConnection {
        do {
            return try await connection(to: endpoint, on: group.any(), timeout: timeout).get()
        } catch let error as ProxyError {
            throw error
        } catch {
            throw ProxyError(.connectFailed, "setting up HTTP/2 with \(endpoint) failed: \(error)")
        }
    }

    /// The live connection to `endpoint` on `eventLoop`, if there is one (no allocation, no wait:
    /// the per-request fast path).
    func readyConnection(to endpoint: Endpoint, on eventLoop: any EventLoop) -> PeerConnection? {
        guard let identity = endpoint.identity else { return nil }
        let key = Key(host: endpoint.host, port: endpoint.port, identity: identity, loop: ObjectIdentifier(eventLoop))
        return state.withLock { state in
            if case .ready(let connection)? = state.entries[key], connection.isUsable { return connection }
            return nil
        }
    }

    /// A usable connection to `endpoint` living on `eventLoop`; the future fails with a
    /// `ProxyError` when dialing fails.
    func connection(
        to endpoint: Endpoint, on eventLoop: any EventLoop, timeout: Duration? = nil
    ) -> EventLoopFuture<PeerConnection> {
        guard let identity = endpoint.identity else {
            return eventLoop.makeFailedFuture(
                ProxyError(.connectFailed, "\(endpoint) is not meshed; it has no pooled HTTP/2 connection"))
        }
        let key = Key(host: endpoint.host, port: endpoint.port, identity: identity, loop: ObjectIdentifier(eventLoop))
        enum Found {
            case ready(PeerConnection)
            case pending(EventLoopFuture<PeerConnection>)
            case dial(EventLoopPromise<PeerConnection>)
            case closed
        }
        let found = state.withLock { state -> Found in
            guard !state.closed else { return .closed }
            switch state.entries[key] {
            case .ready(let connection) where connection.isUsable:
                return .ready(connection)
            case .connecting(let future):
                return .pending(future)
            case .ready, nil:
                state.entries = state.entries.filter { _, entry in
                    if case .ready(let connection) = entry { return connection.isUsable }
                    return true
                }
                let promise = eventLoop.makePromise(of: PeerConnection.self)
                state.entries[key] = .connecting(promise.futureResult)
                return .dial(promise)
            }
        }
        switch found {
        case .ready(let connection):
            return eventLoop.makeSucceededFuture(connection)
        case .pending(let future):
            return future.hop(to: eventLoop)
        case .closed:
            return eventLoop.makeFailedFuture(ProxyError(.connectFailed, "the proxy is shutting down"))
        case .dial(let promise):
            let dialer = self.dialer
            let idleTimeout = self.idleTimeout
            let configuration = self.configuration
            promise.completeWithTask {
                // HTTP/2 goes in when the channel is created, behind TLS: the peer's SETTINGS
                // follow its handshake at once and would be lost if the handlers came later.
                let configured = Mutex<PeerConnection?>(nil)
                let dialed = try await dialer.dial(endpoint, alpn: ["h2"], group: eventLoop, timeout: timeout) { channel in
                    let connection = try PeerConnection.configure(
                        channel, idleTimeout: idleTimeout, configuration: configuration)
                    configured.withLock { $0 = connection }
                }
                guard let connection = configured.withLock({ $0 }) else {
                    dialed.channel.close(promise: nil)
                    throw ProxyError(.connectFailed, "HTTP/2 was not set up on the connection to \(endpoint)")
                }
                return connection
            }
            let future = promise.futureResult
            future.whenComplete { [self] result in
                // After `close()` the entry is gone and `close()` closes what this dial made.
                state.withLock { state in
                    guard case .connecting(let pending)? = state.entries[key], pending === future else { return }
                    switch result {
                    case .success(let connection): state.entries[key] = .ready(connection)
                    case .failure: state.entries[key] = nil
                    }
                }
            }
            return future
        }
    }

    /// Number of live pooled connections (for tests and metrics).
    public var count: Int {
        state.withLock { state in
            state.entries.values.reduce(0) { count, entry in
                if case .ready(let connection) = entry, connection.isUsable { return count + 1 }
                return count
            }
        }
    }

    /// Closes every pooled connection; later requests fail with `connect-failed`.
    public func close() {
        let current = state.withLock { state -> [Entry] in
            state.closed = true
            defer { state.entries = [:] }
            return Array(state.entries.values)
        }
        for entry in current {
            switch entry {
            // Not awaited: a TLS close waits for the peer's close_notify.
            case .ready(let connection): connection.channel.close(promise: nil)
            case .connecting(let future): future.whenSuccess { $0.channel.close(promise: nil) }
            }
        }
    }
}
