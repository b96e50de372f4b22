import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import StarlingAPI
import StarlingCore
import StarlingProxy
import SwiftProtobuf

/// One live tap of a cluster: asks the controller for a tap ticket and the proxies that serve
/// tap, opens `GET /tap` on each selected proxy's admin server, and merges their events. When the
/// ticket runs out the proxies end their streams; the session then asks again (which also picks
/// up workloads registered since) until the caller stops reading.
struct TapSession: Sendable {
    /// Which proxies to tap and what to ask them for.
    struct Selection: Sendable {
        var namespace: String?
        /// Only this workload's proxy; nil for every workload in `namespace`.
        var workload: String?
        var filter: TapFilter
    }

    /// An event with the workload whose proxy saw it.
    struct Tapped: Sendable, Encodable {
        var cluster: String
        var namespace: String
        var workload: String
        var event: TapEvent

        enum CodingKeys: String, CodingKey { case cluster, namespace, workload, event }
    }

    let context: ResolvedContext
    let selection: Selection
    /// Says what went wrong with one proxy (the others go on); standard error by default.
    var warn: @Sendable (String) -> Void = { FileHandle.standardError.write(Data(("warning: " + $0 + "\n").utf8)) }

    /// The merged events. Fails when the controller refuses or nothing can be tapped.
    func events() -> AsyncThrowingStream<Tapped, any Error> {
        AsyncThrowingStream(bufferingPolicy: .bufferingNewest(4096)) { continuation in
            let task = Task {
                do {
                    while !Task.isCancelled {
                        let started = ContinuousClock.now
                        try await round { continuation.yield($0) }
                        // Streams that ended at once (a proxy restarting) are not asked again in a loop.
                        if ContinuousClock.now - started < .seconds(1) { try await Task.sleep(for: .seconds(1)) }
                    }
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }

    /// One ticket's worth: every selected proxy's stream until the ticket expires.
    private func round(_ deliver: @escaping @Sendable (Tapped) -> Void) async throws {
        let response = try await ControllerClient.with(context) { client in
            try await client.mesh.tapTargets(.with { $0.namespace = selection.namespace ?? "" })
        }
        let targets = response.targets.filter { target in selection.workload.map { Self.names(target.workload, $0) } ?? true }
        guard !targets.isEmpty else {
            let scope = selection.workload.map { "workload \($0)" } ?? "any workload"
            throw CLIError(
                "cluster \(response.cluster) has no tappable proxy for \(scope) in \(selection.namespace.map { "namespace \($0)" } ?? "any namespace")",
                hint: "only registered workloads (started with `starling run` and listening) are tapped; see `starling get workloads -n NAMESPACE`")
        }
        let query = Self.query(selection.filter)
        let opened = await withTaskGroup(of: Bool.self) { group in
            for target in targets {
                group.addTask {
                    do {
                        try await Self.stream(
                            address: target.adminAddress, query: query, ticket: target.ticket
                        ) { event in
                            deliver(Tapped(cluster: response.cluster, namespace: target.namespace, workload: target.workload, event: event))
                        }
                        return true
                    } catch where Task.isCancelled || error is CancellationError {
                        return true  // the caller stopped reading: nothing went wrong
                    } catch {
                        warn("tap of \(target.namespace)/\(target.workload) at \(target.adminAddress): \(error)")
                        return false
                    }
                }
            }
            var any = false
            for await ok in group { any = any || ok }
            return any
        }
        if !opened {
            throw CLIError("no proxy of cluster \(response.cluster) could be tapped", hint: "see the warnings above")
        }
    }

    /// `workload/NAME` names a workload by its full name (`podinfo-480b8`) or by the name
    /// `starling run` gave it before its five-hex-digit suffix (`podinfo`).
    static func names(_ workload: String, _ name: String) -> Bool {
        guard workload != name else { return true }
        guard workload.count == name.count + 6, workload.hasPrefix(name + "-") else { return false }
        return workload.suffix(5).allSatisfy(\.isHexDigit)
    }

    static func query(_ filter: TapFilter) -> String {
        var items: [(String, String)] = []
        if let d = filter.direction { items.append(("direction", d)) }
        if let m = filter.method { items.append(("method", m)) }
        if let p = filter.pathPrefix { items.append(("path", p)) }
        if let a = filter.authority { items.append(("authority", a)) }
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~/:")
        let pairs = items.map { "\($0.0)=\($0.1.addingPercentEncoding(withAllowedCharacters: allowed) ?? $0.1)" }
        return pairs.isEmpty ? "" : "?" + pairs.joined(separator: "&")
    }

    /// Reads one proxy's tap until it ends; throws when it cannot be opened or is refused.
    static func stream(address: String, query: String, ticket: String, _ deliver: (TapEvent) -> Void) async throws {
        guard let hostPort = NetworkAddress.splitHostPort(address) else {
            throw CLIError("the admin address \(address) is not HOST:PORT")
        }
        let channel = try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connectTimeout(.seconds(5))
            .connect(host: hostPort.host, port: hostPort.port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    return try NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>(wrappingChannelSynchronously: channel)
                }
            }
        try await channel.executeThenClose { inbound, outbound in
            var head = HTTPRequestHead(version: .http1_1, method: .GET, uri: TapEndpoint.path + query)
            head.headers.add(name: "host", value: address)
            head.headers.add(name: "authorization", value: "Bearer \(ticket)")
            head.headers.add(name: "accept", value: "application/x-ndjson")
            try await outbound.write(contentsOf: [.head(head), .end(nil)])
            var status: HTTPResponseStatus = .ok
            var refusal = ""
            var pending: [UInt8] = []
            let decoder = JSONDecoder()
            for try await part in inbound {
                switch part {
                case .head(let response):
                    status = response.status
                case .body(let buffer):
                    if status != .ok {
                        refusal += String(buffer: buffer)
                        continue
                    }
                    pending += buffer.readableBytesView
                    while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
                        let line = pending[..<newline]
                        pending.removeSubrange(...newline)
                        // The first line says the tap is open; every other one is an event.
                        if let event = try? decoder.decode(TapEvent.self, from: Data(line)) { deliver(event) }
                    }
                case .end:
                    if status != .ok {
                        throw CLIError("refused (\(status.code)): \(refusal.trimmingCharacters(in: .whitespacesAndNewlines))")
                    }
                    return
                }
            }
        }
    }
}
