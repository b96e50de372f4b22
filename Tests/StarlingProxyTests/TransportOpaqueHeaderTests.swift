import NIOCore
import StarlingProxy
import Testing

struct TransportOpaqueHeaderTests {
    @Test func headerRoundTripsAndMatchesTheWireFormat() throws {
        let header = OpaqueTransportHeader(authority: "db.test.svc.cluster.local:5432")
        var buffer = try header.encoded()
        let bytes = buffer.getBytes(at: 0, length: buffer.readableBytes) ?? []
        #expect(Array(bytes.prefix(4)) == Array("SOT1".utf8))
        #expect(bytes[4] == 0 && Int(bytes[5]) == "db.test.svc.cluster.local:5432".utf8.count)
        buffer.writeString("payload")
        #expect(try OpaqueTransportHeader.decode(from: &buffer) == header)
        #expect(buffer.readString(length: buffer.readableBytes) == "payload")
    }

    @Test func partialHeaderNeedsMoreBytesAndBadHeadersAreRefused() throws {
        let full = try OpaqueTransportHeader(authority: "a:1").encoded()
        var partial = full.getSlice(at: 0, length: 5)!
        #expect(try OpaqueTransportHeader.decode(from: &partial) == nil)
        #expect(partial.readableBytes == 5)
        var wrong = ByteBuffer(string: "GET / HTTP/1.1")
        #expect(throws: ProxyError(.upstreamProtocol, "")) { try OpaqueTransportHeader.decode(from: &wrong) }
        var zero = ByteBuffer(bytes: Array("SOT1".utf8) + [0, 0])
        #expect(throws: ProxyError(.upstreamProtocol, "")) { try OpaqueTransportHeader.decode(from: &zero) }
        #expect(throws: ProxyError(.badRequest, "")) {
            try OpaqueTransportHeader(authority: String(repeating: "a", count: 1025)).encoded()
        }
    }
}
