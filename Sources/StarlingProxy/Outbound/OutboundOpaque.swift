import Logging
import NIOCore
import NIOPosix
import StarlingCore

/// Opaque TCP out of the workload: a declared binding (or a transparently captured connection no
/// protocol was detected on) goes to one endpoint of its service as raw bytes. Meshed endpoints
/// are dialed with ALPN `starling-opaque` and get the transport header first; others get a plain
/// TCP connection. Bytes are then spliced both ways with backpressure and half-close.
struct OutboundOpaque: Sendable {
    let picker: any EndpointPicker
    let dialer: PeerDialer

    /// Connects `client` to `authority`. The client's pipeline either ends in an unlinked
    /// ``SpliceHandler`` (declared bindings: it holds early bytes and a half-close until linked) or
    /// has `autoRead` off with the protocol detector holding its first bytes (transparent capture).
    func serve(_ client: any Channel, authority: String, logger: Logger) async {
        let pick: Pick
        let upstream: PeerDialer.Connection
        let started: ContinuousClock.Instant
        do throws(PickFailure) {
            (pick, upstream, started) = try await picker.connect(authority, logger: logger) { pick, timeout throws(ProxyError) in
                try await dialer.dial(pick.endpoint, alpn: [MeshHeaders.opaqueALPN], group: client.eventLoop, timeout: timeout,
                    halfClosure: true
                ) {
                    channel in try channel.pipeline.syncOperations.addHandler(SpliceHandler())
                }
            }
        } catch {
            logger.warning(
                "opaque connection refused",
                metadata: ["authority": "\(authority)", "endpoint": "\(error.pick.map { "\($0.endpoint)" } ?? "-")", "error": "\(error.error)"])
            try? await client.close()
            return
        }
        let meshed = pick.endpoint.identity != nil
        pick.complete(.success(latency: ContinuousClock.now - started))
        let target = pick.endpoint.authorityOverride ?? pick.backend
        do {
            if meshed {
                let header = try OpaqueTransportHeader(authority: target).encoded()
                try await upstream.channel.writeAndFlush(header)
            }
            let upstreamChannel = upstream.channel
            try await client.eventLoop.submit {
                let clientSplice: SpliceHandler
                if let existing = try? client.pipeline.syncOperations.handler(type: SpliceHandler.self) {
                    clientSplice = existing
                } else {
                    clientSplice = SpliceHandler()
                    try client.pipeline.syncOperations.addHandler(clientSplice)
                }
                let upstreamSplice = try upstreamChannel.pipeline.syncOperations.handler(type: SpliceHandler.self)
                SpliceHandler.link(clientSplice, upstreamSplice)
                // A transparently captured connection still holds its first bytes in the detector.
                if let detector = try? client.pipeline.syncOperations.handler(type: ProtocolDetectionHandler.self) {
                    client.pipeline.syncOperations.removeHandler(detector, promise: nil)
                }
                if client.syncOptions.map({ (try? $0.getOption(ChannelOptions.autoRead)) == false }) ?? false {
                    client.setOption(ChannelOptions.autoRead, value: true).whenFailure { _ in client.close(promise: nil) }
                }
            }.get()
        } catch {
            logger.warning(
                "opaque splice failed", metadata: ["authority": "\(authority)", "endpoint": "\(pick.endpoint)", "error": "\(error)"])
            upstream.channel.close(promise: nil)
            try? await client.close()
            return
        }
        logger.debug(
            "opaque connection spliced",
            metadata: ["authority": "\(authority)", "endpoint": "\(pick.endpoint)", "meshed": "\(meshed)"])
        try? await client.closeFuture.get()
        try? await upstream.channel.closeFuture.get()
    }
}
