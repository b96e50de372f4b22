import Logging
import NIOCore
package import NIOHPACK
import NIOHTTP2
import StarlingCore

/// Serves each stream a caller opens on an inbound HTTP/2 connection: reads the request's
/// HEADERS, decides where the request goes (``InboundRequestRewrite``) and hands the stream, with
/// the rewritten headers, to the forwarder for the application's protocol.
struct InboundStreamRouter {
    let environment: InboundStreamEnvironment

    /// The ``HTTP2StreamDispatcher/Accept`` of an inbound connection.
    func accept(
        _ stream: HTTP2FrameStream, _ first: HTTP2Frame.FramePayload.Headers
    ) -> (any HTTP2FrameStreamOwner, HTTP2Frame.FramePayload) {
        var headers = first
        let rewrite = InboundRequestRewrite(
            headers.headers, client: environment.client, clientName: environment.clientName,
            clientAddress: environment.clientAddress, configuration: environment.configuration)
        headers.headers = rewrite.headers
        var logger = environment.logger
        // Only debug lines read these; setting metadata re-renders the logger's metadata, which
        // costs more than the rest of the routing on every request.
        if logger.logLevel <= .debug {
            logger[metadataKey: "authority"] = "\(rewrite.authority)"
            logger[metadataKey: "app_port"] = "\(rewrite.appPort)"
        }
        let recorder = InboundRequestRecorder(
            authority: rewrite.authority, client: environment.client, isGRPCCall: rewrite.isGRPC, tap: tapRequest(rewrite))
        // Inbound policy, on every request: a refused one never reaches the application. Where
        // routes authorize, the path is matched, and forwarded, in normal form.
        let requestHeaders = headers.headers
        let (decision, normalizedPath) = environment.authorizer.authorizeHTTP(
            port: rewrite.appPort, caller: rewrite.caller, method: requestHeaders.first(name: ":method") ?? "",
            path: requestHeaders.first(name: ":path") ?? "/", header: { requestHeaders.first(name: $0) })
        if let normalizedPath { headers.headers = requestHeaders.replacingPath(with: normalizedPath) }
        guard decision.allowed else {
            return (
                InboundRefusal(
                    stream: stream, reason: decision.reason, grpc: rewrite.isGRPC, head: requestHeaders.first(name: ":method") == "HEAD",
                    recorder: recorder),
                .headers(headers)
            )
        }
        let forwarder: any HTTP2FrameStreamOwner
        switch rewrite.appProtocol {
        case .http1:
            forwarder = InboundHTTP1Forwarder(
                stream: stream, environment: environment, appPort: rewrite.appPort, recorder: recorder, logger: logger)
        case .http2:
            forwarder = InboundHTTP2Forwarder(
                stream: stream, environment: environment, appPort: rewrite.appPort, recorder: recorder, logger: logger)
        }
        return (forwarder, .headers(headers))
    }

    /// What a tap shows of this request, read only while a tap is open.
    private func tapRequest(_ rewrite: InboundRequestRewrite) -> InboundRequestRecorder.TapRequest? {
        guard environment.tap.isActive else { return nil }
        let headers = rewrite.headers
        return InboundRequestRecorder.TapRequest(
            hub: environment.tap, method: headers.first(name: ":method") ?? "", path: headers.first(name: ":path") ?? "",
            source: headers.first(name: MeshHeaders.clientIdentity) ?? environment.clientName,
            // Only a gateway names another cluster (the rewrite set it from what the gateway verified).
            sourceCluster: environment.client.isGateway
                ? headers.first(name: GatewayHeaders.clientCluster) : environment.configuration.clusterName,
            destination: environment.localIdentity, destinationCluster: environment.configuration.clusterName)
    }
}

extension HPACKHeaders {
    /// The same headers with `:path` replaced where it stands: pseudo-headers must stay first
    /// (NIOHPACK's `replaceOrAdd` moves the field to the end).
    package func replacingPath(with path: String) -> HPACKHeaders {
        var out = HPACKHeaders()
        out.reserveCapacity(count)
        for field in self {
            out.add(name: field.name, value: field.name == ":path" ? path : field.value, indexing: field.indexable)
        }
        return out
    }
}

extension HTTP2FrameStream {
    /// Answers the caller with the inbound proxy's own error (``ErrorResponse``). If the caller is
    /// still sending, nobody reads the rest: the answer is complete, so a reset asks it to stop
    /// without an error (RFC 9113, 8.1).
    func respond(with error: ProxyError, requestEnded: Bool) {
        let frames = ErrorResponse.http2Frames(error)
        write(frames.head)
        write(frames.body)
        flush()
        if !requestEnded { reset(.noError) }
    }
}
