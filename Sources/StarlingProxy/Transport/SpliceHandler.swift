import NIOCore

/// Copies bytes between two channels on the same event loop, in both directions, with
/// backpressure and half-close: one `SpliceHandler` sits at the end of each channel's pipeline and
/// the two are linked with ``link(_:_:)``.
///
/// - Backpressure: a side only asks its channel for more data while the partner channel is
///   writable (both channels should run with `autoRead` off or rely on `read()` being forwarded
///   here: a pending `read` is held back until the partner drains).
/// - Half-close: end of input on one side (`ChannelEvent.inputClosed`, needs
///   `allowRemoteHalfClosure`) shuts the partner's output; when both directions are done, or
///   either channel fails or closes, both are closed.
package final class SpliceHandler: ChannelDuplexHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private var partner: SpliceHandler?
    /// Bytes read before the partner was linked (at most one read's worth: reads wait for a partner).
    private var early: [ByteBuffer] = []
    private var context: ChannelHandlerContext?
    private var pendingRead = false
    private var closedBeforeLink = false
    private var inputClosed = false
    private var outputClosed = false
    /// Bytes read from this side's channel (for metrics).
    private(set) var bytesRead = 0
    private let onClose: (_ bytesRead: Int) -> Void

    package init(onClose: @escaping (_ bytesRead: Int) -> Void = { _ in }) {
        self.onClose = onClose
    }

    /// Links two handlers (call on their shared event loop, after both were added).
    package static func link(_ a: SpliceHandler, _ b: SpliceHandler) {
        a.partner = b
        b.partner = a
        a.deliverEarly()
        b.deliverEarly()
        // A side that closed before linking takes its partner down (or half-closes it).
        for (side, other) in [(a, b), (b, a)] {
            if side.context == nil || side.closedBeforeLink {
                other.partnerClosed()
            } else if side.inputClosed {
                other.closeOutputFromPartner()
            }
        }
        // Either side may have been asked to read before the partner existed.
        a.resumeReadIfNeeded()
        b.resumeReadIfNeeded()
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        partner = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        bytesRead += buffer.readableBytes
        if let partner {
            partner.writeFromPartner(buffer)
        } else {
            early.append(buffer)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        partner?.flushFromPartner()
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable { partner?.resumeReadIfNeeded() }
        context.fireChannelWritabilityChanged()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? ChannelEvent, case .inputClosed = event {
            inputClosed = true
            // Unlinked: link(_:_:) passes the half-close on.
            partner?.closeOutputFromPartner()
            closeIfDone()
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        onClose(bytesRead)
        if partner == nil { closedBeforeLink = true }
        let partner = self.partner
        self.partner = nil
        partner?.partnerClosed()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    func read(context: ChannelHandlerContext) {
        if let partner {
            if partner.isWritable { context.read() } else { pendingRead = true }
        } else if early.isEmpty {
            // Not linked yet (e.g. a TLS handshake is running below): reading is needed to make
            // progress, and at most one read's worth of application bytes is held until linking.
            context.read()
        } else {
            pendingRead = true
        }
    }

    private func deliverEarly() {
        guard let partner, !early.isEmpty else { return }
        for buffer in early { partner.writeFromPartner(buffer) }
        early = []
        partner.flushFromPartner()
    }

    // MARK: - Called by the partner

    private var isWritable: Bool { context?.channel.isWritable ?? false }

    private func writeFromPartner(_ buffer: ByteBuffer) {
        guard let context, !outputClosed else { return }
        context.write(wrapOutboundOut(buffer), promise: nil)
    }

    private func flushFromPartner() {
        context?.flush()
    }

    private func resumeReadIfNeeded() {
        guard pendingRead, let context, let partner, partner.isWritable else { return }
        pendingRead = false
        context.read()
    }

    private func closeOutputFromPartner() {
        guard let context, !outputClosed else { return }
        outputClosed = true
        let channel = context.channel
        afterPendingWrites(context) {
            channel.close(mode: .output).whenFailure { _ in
                // A channel that cannot half-close (or already lost its output) closes fully.
                channel.close(promise: nil)
            }
        }
        closeIfDone()
    }

    private func partnerClosed() {
        partner = nil
        guard let context else { return }
        let channel = context.channel
        afterPendingWrites(context) { channel.close(promise: nil) }
    }

    /// Runs `action` once everything written so far has been written out: a close right after
    /// a write would otherwise drop bytes the partner delivered in the same read burst.
    private func afterPendingWrites(_ context: ChannelHandlerContext, _ action: @escaping @Sendable () -> Void) {
        let promise = context.eventLoop.makePromise(of: Void.self)
        promise.futureResult.whenComplete { _ in action() }
        context.writeAndFlush(wrapOutboundOut(ByteBuffer()), promise: promise)
    }

    private func closeIfDone() {
        guard inputClosed, outputClosed, let context else { return }
        let channel = context.channel
        afterPendingWrites(context) { channel.close(promise: nil) }
    }
}

@available(*, unavailable)
extension SpliceHandler: Sendable {}
