import Logging
public import NIOCore
public import NIOHTTP2
public import NIOPosix
import StarlingCore
import Synchronization

/// The HTTP/2 connections to peer proxies: one per endpoint (address + expected identity), shared
/// by all requests to it, opened on first use, replaced when closed or GOAWAY'd, and closed by
/// the peer connection itself after `idleTimeout` without streams.
///
/// Concurrent first requests to an endpoint share one dial.
public actor PeerConnectionPool {
    struct Key: Hashable {
        var host: String
        var port: Int
        var identity: MeshIdentity
    }

    private enum Entry {
        case connecting(Task<PeerConnection, any Error>)
        case ready(PeerConnection)
    }

    private let dialer: PeerDialer
    private let group: any EventLoopGroup
    private let idleTimeout: TimeAmount
    private let configuration: NIOHTTP2Handler.Configuration
    private var entries: [Key: Entry] = [:]
    private var closed = false

    public init(
        dialer: PeerDialer, group: any EventLoopGroup = MultiThreadedEventLoopGroup.singleton,
        idleTimeout: Duration = .seconds(60), configuration: NIOHTTP2Handler.Configuration = .init()
    ) {
        self.dialer = dialer
        self.group = group
        self.idleTimeout = TimeAmount(idleTimeout)
        self.configuration = configuration
    }

    /// A usable connection to `endpoint` (which must be meshed), dialing when there is none.
    public func connection(to endpoint: Endpoint, timeout: Duration? = nil) async throws(ProxyError) -> PeerConnection {
        guard let identity = endpoint.identity else {
            throw ProxyError(.connectFailed, "\(endpoint) is not meshed; it has no pooled HTTP/2 connection")
        }
        guard !closed else { throw ProxyError(.connectFailed, "the proxy is shutting down") }
        let key = Key(host: endpoint.host, port: endpoint.port, identity: identity)
        switch entries[key] {
        case .ready(let connection) where connection.isUsable:
            return connection
        case .connecting(let task):
            return try await wait(for: task, key: key)
        case .ready, nil:
            sweep()
            let dialer = self.dialer
            let group = self.group
            let idleTimeout = self.idleTimeout
            let configuration = self.configuration
            let task = Task<PeerConnection, any Error> {
                // HTTP/2 goes in when the channel is created, behind TLS: the peer's SETTINGS
                // follow its handshake at once and would be lost if the handlers came later.
                let configured = Mutex<PeerConnection?>(nil)
                let dialed = try await dialer.dial(endpoint, alpn: ["h2"], group: group, timeout: timeout) { channel in
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
            entries[key] = .connecting(task)
            return try await wait(for: task, key: key)
        }
    }

    private func wait(for task: Task<PeerConnection, any Error>, key: Key) async throws(ProxyError) -> PeerConnection {
        do {
            let connection = try await task.value
            if case .connecting = entries[key] { entries[key] = .ready(connection) }
            return connection
        } catch {
            if case .connecting = entries[key] { entries[key] = nil }
            if let error = error as? ProxyError { throw error }
            throw ProxyError(.connectFailed, "setting up HTTP/2 with \(key.host):\(key.port) failed: \(error)")
        }
    }

    /// Drops entries whose connection is gone, so the table stays as small as the live set.
    private func sweep() {
        entries = entries.filter { _, entry in
            if case .ready(let connection) = entry { return connection.isUsable }
            return true
        }
    }

    /// Number of live pooled connections (for tests and metrics).
    public var count: Int {
        entries.values.reduce(0) { count, entry in
            if case .ready(let connection) = entry, connection.isUsable { return count + 1 }
            return count
        }
    }

    /// Closes every pooled connection; later requests fail with `connect-failed`.
    public func close() {
        closed = true
        let current = entries
        entries = [:]
        for entry in current.values {
            switch entry {
            // Not awaited: a TLS close waits for the peer's close_notify.
            case .ready(let connection): connection.channel.close(promise: nil)
            case .connecting(let task): task.cancel()
            }
        }
    }
}
